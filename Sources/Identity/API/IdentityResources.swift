import Foundation
import HummingbirdBcrypt
import NimbusCore
import SQLKit
import Store

/// Each Keystone resource: its fields, filters, policy exceptions, hooks and wire shape.
enum IdentityResources {
    typealias Record = RecordTable.Record

    static let domains = ResourceAPI(
        singular: "domain", plural: "domains", table: IdentityTables.domains,
        fields: [.name(maxLength: 64), .description, .enabled, .tags],
        filters: ["name": "name", "enabled": "enabled"],
        canRead: { auth, id in
            guard let id else { return IdentityPolicy.canReadAll(auth) }
            if IdentityPolicy.canReadAll(auth) || auth.userDomain.id == id || auth.domainID == id { return true }
            if case .project(_, let domain) = auth.scope { return domain.id == id }
            return false
        },
        afterWrite: { hook, record in
            if hook.existing?["enabled"]?.boolValue == true, record["enabled"]?.boolValue == false, let id = record.string("id") {
                try await hook.service.revoke(RevocationEvent(domainID: id, issuedBefore: Date().timeIntervalSince1970), on: hook.db)
            }
        },
        beforeDelete: { hook, record in
            guard record["enabled"]?.boolValue == false else {
                throw NimbusError.forbidden("Cannot delete a domain that is enabled, please disable it first.")
            }
            try await purgeDomain(record.string("id") ?? "", on: hook.db)
        },
        render: { record, link in
            record.rendered([
                "id": record["id"] ?? nil, "name": record["name"] ?? nil, "description": record["description"] ?? "",
                "enabled": record["enabled"] ?? true, "tags": record["tags"] ?? [], "options": [:],
            ], link: link)
        })

    static let projects = ResourceAPI(
        singular: "project", plural: "projects", table: IdentityTables.projects,
        fields: [
            .name(maxLength: 64), .description, .enabled, .tags,
            .init(name: "domain_id", kind: .nullableString(maxLength: 64), onCreate: .optional(default: .null), updatable: false),
            .init(name: "parent_id", kind: .nullableString(maxLength: 64), onCreate: .optional(default: .null), updatable: false),
        ],
        consumed: ["is_domain", "options"],
        filters: ["name": "name", "enabled": "enabled", "domain_id": "domain_id", "parent_id": "parent_id"],
        canRead: { auth, id in IdentityPolicy.canReadAll(auth) || (id != nil && auth.projectID == id) },
        beforeCreate: { hook, record in
            if try hook.fields?.bool("is_domain") == true {
                throw NimbusError.badRequest("Invalid input for field 'is_domain': projects acting as domains are not supported; create a domain")
            }
            let parent = record.string("parent_id")
            var domain = record.string("domain_id")
            if let parent, let parentRecord = try await IdentityTables.projects.fetch(parent, on: hook.db) {
                if let domain, domain != parentRecord.string("domain_id") {
                    throw NimbusError.badRequest("Cannot create project: the parent project is in another domain.")
                }
                domain = parentRecord.string("domain_id")
            } else if let parent {
                guard try await IdentityTables.domains.fetch(parent, on: hook.db) != nil else {
                    throw NimbusError.badRequest("Could not find parent project: \(parent).")
                }
                domain = domain ?? parent
                record["parent_id"] = .null
            }
            let domainID = domain ?? hook.caller.scopeDomainID ?? "default"
            guard try await IdentityTables.domains.fetch(domainID, on: hook.db) != nil else {
                throw NimbusError.badRequest("Could not find domain: \(domainID).")
            }
            record["domain_id"] = .string(domainID)
        },
        afterWrite: { hook, record in
            if hook.existing?["enabled"]?.boolValue == true, record["enabled"]?.boolValue == false, let id = record.string("id") {
                try await hook.service.revoke(RevocationEvent(projectID: id, issuedBefore: Date().timeIntervalSince1970), on: hook.db)
            }
        },
        beforeDelete: { hook, record in
            let id = record.string("id") ?? ""
            let children = try await IdentityTables.projects.count([.init("parent_id", .equal, .string(id))], on: hook.db)
            if children > 0 {
                throw NimbusError.forbidden("Cannot delete the project \(id) since it is not a leaf in the hierarchy.")
            }
            try await IdentityTables.assignments.delete([.init("target_type", .equal, "project"), .init("target_id", .equal, .string(id))], on: hook.db)
            try await IdentityTables.applicationCredentials.delete([.init("project_id", .equal, .string(id))], on: hook.db)
            try await hook.service.revoke(RevocationEvent(projectID: id, issuedBefore: Date().timeIntervalSince1970), on: hook.db)
        },
        render: { record, link in
            record.rendered([
                "id": record["id"] ?? nil, "name": record["name"] ?? nil, "domain_id": record["domain_id"] ?? nil,
                "description": record["description"] ?? "", "enabled": record["enabled"] ?? true,
                "parent_id": record.nonNull("parent_id") ?? record["domain_id"] ?? nil,
                "is_domain": false, "tags": record["tags"] ?? [], "options": [:],
            ], link: link)
        })

    static let users = ResourceAPI(
        singular: "user", plural: "users", table: IdentityTables.users,
        fields: [
            .name(maxLength: 255), .enabled,
            .init(name: "description", kind: .nullableString(maxLength: nil), onCreate: .optional(default: .null), updatable: true),
            .init(name: "domain_id", kind: .nullableString(maxLength: 64), onCreate: .optional(default: .null), updatable: false),
            .init(name: "default_project_id", kind: .nullableString(maxLength: 64), onCreate: .optional(default: .null), updatable: true),
        ],
        consumed: ["password", "options", "federated"],
        filters: ["name": "name", "enabled": "enabled", "domain_id": "domain_id"],
        canRead: { auth, id in IdentityPolicy.canReadAll(auth) || (id != nil && auth.user.id == id) },
        beforeCreate: { hook, record in
            let domainID = record.string("domain_id") ?? hook.caller.scopeDomainID ?? "default"
            guard try await IdentityTables.domains.fetch(domainID, on: hook.db) != nil else {
                throw NimbusError.badRequest("Could not find domain: \(domainID).")
            }
            record["domain_id"] = .string(domainID)
            if let password = try hook.fields?.string("password", nullable: true, maxLength: 4096) {
                record["password_hash"] = try await hook.service.hashPassword(password)
            }
        },
        beforeUpdate: { hook, changes in
            if hook.fields?.has("password") == true {
                let password = try hook.fields?.string("password", nullable: true, maxLength: 4096)
                changes["password_hash"] = try await password.asyncMap { try await hook.service.hashPassword($0) } ?? .null
            }
        },
        afterWrite: { hook, record in
            guard let existing = hook.existing, let id = record.string("id") else { return }
            let disabled = existing["enabled"]?.boolValue == true && record["enabled"]?.boolValue == false
            if disabled || existing["password_hash"] != record["password_hash"] {
                try await hook.service.revokeUser(id, on: hook.db)
            }
        },
        beforeDelete: { hook, record in
            let id = record.string("id") ?? ""
            try await IdentityTables.assignments.delete([.init("actor_type", .equal, "user"), .init("actor_id", .equal, .string(id))], on: hook.db)
            try await hook.service.revokeUser(id, on: hook.db)
        },
        render: { record, link in
            var base: [String: JSONValue] = [
                "id": record["id"] ?? nil, "name": record["name"] ?? nil, "domain_id": record["domain_id"] ?? nil,
                "enabled": record["enabled"] ?? true, "password_expires_at": nil, "options": [:],
            ]
            if let project = record["default_project_id"], !project.isNull { base["default_project_id"] = project }
            if let description = record["description"], !description.isNull { base["description"] = description }
            return record.rendered(base, link: link)
        })

    static let groups = ResourceAPI(
        singular: "group", plural: "groups", table: IdentityTables.groups,
        fields: [
            .name(maxLength: 64), .description,
            .init(name: "domain_id", kind: .nullableString(maxLength: 64), onCreate: .optional(default: .null), updatable: false),
        ],
        filters: ["name": "name", "domain_id": "domain_id"],
        beforeCreate: { hook, record in
            let domainID = record.string("domain_id") ?? hook.caller.scopeDomainID ?? "default"
            guard try await IdentityTables.domains.fetch(domainID, on: hook.db) != nil else {
                throw NimbusError.badRequest("Could not find domain: \(domainID).")
            }
            record["domain_id"] = .string(domainID)
        },
        beforeDelete: { hook, record in
            let id = record.string("id") ?? ""
            let members = try await IdentityTables.groupMembers.list([.init("group_id", .equal, .string(id))], on: hook.db)
            for member in members { try await hook.service.revokeUser(member.string("user_id") ?? "", on: hook.db) }
            try await IdentityTables.assignments.delete([.init("actor_type", .equal, "group"), .init("actor_id", .equal, .string(id))], on: hook.db)
        },
        render: { record, link in
            record.rendered([
                "id": record["id"] ?? nil, "name": record["name"] ?? nil, "domain_id": record["domain_id"] ?? nil,
                "description": record["description"] ?? "",
            ], link: link)
        })

    static let roles = ResourceAPI(
        singular: "role", plural: "roles", table: IdentityTables.roles,
        fields: [
            .name(maxLength: 255),
            .init(name: "description", kind: .nullableString(maxLength: 255), onCreate: .optional(default: .null), updatable: true),
            .init(name: "domain_id", kind: .nullableString(maxLength: 64), onCreate: .optional(default: .null), updatable: false),
        ],
        consumed: ["options"],
        filters: ["name": "name", "domain_id": "domain_id"],
        beforeCreate: { _, record in
            if record["domain_id"]?.isNull != false { record["domain_id"] = "" }
        },
        beforeDelete: { hook, record in
            // Tokens carry their roles, so every holder of this role loses its tokens.
            let holders = try await IdentityTables.assignments.list([.init("role_id", .equal, record["id"] ?? nil)], on: hook.db)
            for holder in holders { try await revokeActor(holder, hook: hook) }
        },
        render: { record, link in
            let domain = record.string("domain_id") ?? ""
            return record.rendered([
                "id": record["id"] ?? nil, "name": record["name"] ?? nil, "domain_id": domain.isEmpty ? nil : .string(domain),
                "description": record["description"] ?? nil, "options": [:],
            ], link: link)
        })

    /// Revokes the tokens of an assignment's actor: the user, or every member of the group.
    static func revokeActor(_ assignment: Record, hook: ResourceAPI.HookContext) async throws {
        let actor = assignment.string("actor_id") ?? ""
        if assignment.string("actor_type") == "group" {
            for member in try await IdentityTables.groupMembers.list([.init("group_id", .equal, .string(actor))], on: hook.db) {
                try await hook.service.revokeUser(member.string("user_id") ?? "", on: hook.db)
            }
        } else {
            try await hook.service.revokeUser(actor, on: hook.db)
        }
    }

    /// Deletes a (disabled) domain's projects, users and groups with their assignments, as Keystone does.
    static func purgeDomain(_ id: String, on db: any SQLDatabase) async throws {
        let byDomain: [RecordTable.Filter] = [.init("domain_id", .equal, .string(id))]
        for project in try await IdentityTables.projects.list(byDomain, on: db) {
            try await IdentityTables.assignments.delete([.init("target_id", .equal, project["id"] ?? nil)], on: db)
            try await IdentityTables.projects.update(project.string("id") ?? "", ["parent_id": .null], on: db)
        }
        for table in [IdentityTables.users, IdentityTables.groups] {
            for actor in try await table.list(byDomain, on: db) {
                try await IdentityTables.assignments.delete([.init("actor_id", .equal, actor["id"] ?? nil)], on: db)
            }
        }
        try await IdentityTables.assignments.delete([.init("target_type", .equal, "domain"), .init("target_id", .equal, .string(id))], on: db)
        try await IdentityTables.projects.delete(byDomain, on: db)
        try await IdentityTables.users.delete(byDomain, on: db)
        try await IdentityTables.groups.delete(byDomain, on: db)
        try await IdentityTables.roles.delete(byDomain, on: db)
    }
}

extension AuthContext {
    /// The domain a token acts in: its domain scope, or its project's domain.
    var scopeDomainID: String? {
        switch scope {
        case .domain(let domain): domain.id
        case .project(_, let domain): domain.id
        default: nil
        }
    }
}

extension IdentityService {
    func hashPassword(_ password: String) async throws -> JSONValue {
        let cost = configuration.bcryptCost
        return .string(try await offload { Bcrypt.hash(password, cost: cost) })
    }
}
