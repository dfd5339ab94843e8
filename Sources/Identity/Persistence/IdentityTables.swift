import Store

/// Column lists of Identity's tables, for the generic record CRUD.
enum IdentityTables {
    static let domains = RecordTable("identity_domains", columns: [
        .init("id"), .init("name"), .init("description"), .init("enabled", .bool), .init("tags", .json),
        .init("extra", .json), .init("created_at"),
    ])
    static let projects = RecordTable("identity_projects", columns: [
        .init("id"), .init("name"), .init("domain_id"), .init("parent_id"), .init("description"),
        .init("enabled", .bool), .init("tags", .json), .init("extra", .json), .init("created_at"),
    ])
    static let users = RecordTable("identity_users", columns: [
        .init("id"), .init("name"), .init("domain_id"), .init("enabled", .bool), .init("password_hash"),
        .init("default_project_id"), .init("description"), .init("extra", .json), .init("created_at"),
    ])
    static let groups = RecordTable("identity_groups", columns: [
        .init("id"), .init("name"), .init("domain_id"), .init("description"), .init("extra", .json),
    ])
    static let groupMembers = RecordTable("identity_group_members", primaryKey: "group_id", columns: [
        .init("group_id"), .init("user_id"),
    ])
    static let roles = RecordTable("identity_roles", columns: [
        .init("id"), .init("name"), .init("domain_id"), .init("description"), .init("extra", .json),
    ])
    static let impliedRoles = RecordTable("identity_implied_roles", primaryKey: "prior_role_id", columns: [
        .init("prior_role_id"), .init("implied_role_id"),
    ])
    static let assignments = RecordTable("identity_assignments", columns: [
        .init("id"), .init("actor_type"), .init("actor_id"), .init("target_type"), .init("target_id"),
        .init("role_id"), .init("inherited", .bool),
    ])
    static let regions = RecordTable("identity_regions", columns: [
        .init("id"), .init("description"), .init("parent_region_id"), .init("extra", .json),
    ])
    static let services = RecordTable("identity_services", columns: [
        .init("id"), .init("type"), .init("name"), .init("description"), .init("enabled", .bool), .init("extra", .json),
    ])
    static let endpoints = RecordTable("identity_endpoints", columns: [
        .init("id"), .init("service_id"), .init("interface"), .init("region_id"), .init("url"),
        .init("enabled", .bool), .init("extra", .json),
    ])
    static let applicationCredentials = RecordTable("identity_application_credentials", columns: [
        .init("id"), .init("name"), .init("user_id"), .init("project_id"), .init("secret_hash"),
        .init("description"), .init("expires_at"), .init("unrestricted", .bool), .init("roles", .json),
        .init("created_at"),
    ])
    static let revocations = RecordTable("identity_revocations", primaryKey: "seq", columns: [
        .init("seq", .int), .init("user_id"), .init("project_id"), .init("domain_id"), .init("audit_id"),
        .init("issued_before", .double), .init("revoked_at", .double),
    ])
}
