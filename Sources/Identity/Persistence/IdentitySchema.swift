import Store

/// Identity's tables. Keystone's uniqueness rules are constraints here, so a race between two
/// creates ends in one row and one 409, never two rows.
public enum IdentitySchema {
    public static let migrations: [Migration] = [
        Migration(id: "identity-0001") { engine in
            let sequence = engine == .postgres ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT"
            return [
                """
                CREATE TABLE identity_domains (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT '',
                    enabled BOOLEAN NOT NULL, tags TEXT NOT NULL DEFAULT '[]', extra TEXT NOT NULL DEFAULT '{}',
                    created_at TEXT NOT NULL)
                """,
                """
                CREATE TABLE identity_projects (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL,
                    domain_id TEXT NOT NULL REFERENCES identity_domains(id),
                    parent_id TEXT REFERENCES identity_projects(id),
                    description TEXT NOT NULL DEFAULT '', enabled BOOLEAN NOT NULL,
                    tags TEXT NOT NULL DEFAULT '[]', extra TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL,
                    UNIQUE (domain_id, name))
                """,
                "CREATE INDEX identity_projects_parent ON identity_projects (parent_id)",
                """
                CREATE TABLE identity_users (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL,
                    domain_id TEXT NOT NULL REFERENCES identity_domains(id),
                    enabled BOOLEAN NOT NULL, password_hash TEXT, default_project_id TEXT,
                    description TEXT, extra TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL,
                    UNIQUE (domain_id, name))
                """,
                """
                CREATE TABLE identity_groups (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL,
                    domain_id TEXT NOT NULL REFERENCES identity_domains(id),
                    description TEXT NOT NULL DEFAULT '', extra TEXT NOT NULL DEFAULT '{}',
                    UNIQUE (domain_id, name))
                """,
                """
                CREATE TABLE identity_group_members (
                    group_id TEXT NOT NULL REFERENCES identity_groups(id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL REFERENCES identity_users(id) ON DELETE CASCADE,
                    PRIMARY KEY (group_id, user_id))
                """,
                "CREATE INDEX identity_group_members_user ON identity_group_members (user_id)",
                """
                CREATE TABLE identity_roles (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL DEFAULT '',
                    description TEXT, extra TEXT NOT NULL DEFAULT '{}',
                    UNIQUE (domain_id, name))
                """,
                """
                CREATE TABLE identity_implied_roles (
                    prior_role_id TEXT NOT NULL REFERENCES identity_roles(id) ON DELETE CASCADE,
                    implied_role_id TEXT NOT NULL REFERENCES identity_roles(id) ON DELETE CASCADE,
                    PRIMARY KEY (prior_role_id, implied_role_id))
                """,
                """
                CREATE TABLE identity_assignments (
                    id TEXT PRIMARY KEY,
                    actor_type TEXT NOT NULL, actor_id TEXT NOT NULL,
                    target_type TEXT NOT NULL, target_id TEXT NOT NULL,
                    role_id TEXT NOT NULL REFERENCES identity_roles(id) ON DELETE CASCADE,
                    inherited BOOLEAN NOT NULL,
                    UNIQUE (actor_type, actor_id, target_type, target_id, role_id, inherited))
                """,
                "CREATE INDEX identity_assignments_actor ON identity_assignments (actor_id)",
                "CREATE INDEX identity_assignments_target ON identity_assignments (target_id)",
                """
                CREATE TABLE identity_regions (
                    id TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '',
                    parent_region_id TEXT REFERENCES identity_regions(id), extra TEXT NOT NULL DEFAULT '{}')
                """,
                """
                CREATE TABLE identity_services (
                    id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
                    description TEXT NOT NULL DEFAULT '', enabled BOOLEAN NOT NULL, extra TEXT NOT NULL DEFAULT '{}')
                """,
                """
                CREATE TABLE identity_endpoints (
                    id TEXT PRIMARY KEY,
                    service_id TEXT NOT NULL REFERENCES identity_services(id) ON DELETE CASCADE,
                    interface TEXT NOT NULL, region_id TEXT REFERENCES identity_regions(id),
                    url TEXT NOT NULL, enabled BOOLEAN NOT NULL, extra TEXT NOT NULL DEFAULT '{}')
                """,
                """
                CREATE TABLE identity_application_credentials (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL,
                    user_id TEXT NOT NULL REFERENCES identity_users(id) ON DELETE CASCADE,
                    project_id TEXT NOT NULL, secret_hash TEXT NOT NULL, description TEXT,
                    expires_at TEXT, unrestricted BOOLEAN NOT NULL, roles TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    UNIQUE (user_id, name))
                """,
                """
                CREATE TABLE identity_revocations (
                    seq \(sequence), user_id TEXT, project_id TEXT, domain_id TEXT, audit_id TEXT,
                    issued_before DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION NOT NULL)
                """,
            ]
        },
    ]
}
