import Foundation
import HummingbirdBcrypt
import NimbusCore
import SQLKit
import Store

/// A service to list in the catalog: its type, name and path under the gateway's public URL.
public struct CatalogEntry: Sendable {
    public var type: String
    public var name: String
    public var path: String
    public init(type: String, name: String, path: String) {
        self.type = type
        self.name = name
        self.path = path
    }
}

extension IdentityService {
    /// Passwords of users the bootstrap created; empty on a restart, when they exist already.
    public struct BootstrapResult: Sendable {
        public var createdPasswords: [String: String] = [:]
    }

    /// Creates what `keystone-manage bootstrap` does, and is safe to run on every start: the Default
    /// domain, projects admin and demo, roles admin ⇒ member ⇒ reader, users admin and demo,
    /// and one catalog service with public/internal/admin endpoints per entry, in RegionOne.
    public func bootstrap(catalog entries: [CatalogEntry], passwords: [String: String] = [:]) async throws -> BootstrapResult {
        var result = BootstrapResult()
        let cost = configuration.bcryptCost
        let now = Timestamp.seconds(Date())
        var hashes: [String: (plain: String, hash: String)] = [:]
        for user in ["admin", "demo"] {
            let plain = passwords[user] ?? Self.randomSecret().prefix(20).description
            hashes[user] = (plain, try await offload { Bcrypt.hash(plain, cost: cost) })
        }
        let publicURL = configuration.publicURL
        let hashed = hashes
        let created = try await database.transaction { db -> [String: String] in
            var created: [String: String] = [:]
            if try await IdentityTables.domains.fetch("default", on: db) == nil {
                try await IdentityTables.domains.insert([
                    "id": "default", "name": "Default", "description": "The default domain", "enabled": true,
                    "tags": [], "extra": [:], "created_at": .string(now),
                ], on: db)
            }
            var projectIDs: [String: String] = [:]
            for name in ["admin", "demo"] {
                projectIDs[name] = try await Self.ensure(IdentityTables.projects, named: name, domain: "default", on: db) {
                    ["name": .string(name), "domain_id": "default", "parent_id": .null,
                     "description": .string("Bootstrap project \(name)"), "enabled": true, "tags": [], "extra": [:],
                     "created_at": .string(now)]
                }
            }
            var roleIDs: [String: String] = [:]
            for name in ["admin", "member", "reader", "service"] {
                roleIDs[name] = try await Self.ensure(IdentityTables.roles, named: name, domain: "", on: db) {
                    ["name": .string(name), "domain_id": "", "description": .null, "extra": [:]]
                }
            }
            for (prior, implied) in [("admin", "member"), ("member", "reader")] {
                let rule: RecordTable.Record = ["prior_role_id": .string(roleIDs[prior]!), "implied_role_id": .string(roleIDs[implied]!)]
                let existing = try await IdentityTables.impliedRoles.list(
                    [.init("prior_role_id", .equal, rule["prior_role_id"]!), .init("implied_role_id", .equal, rule["implied_role_id"]!)], on: db)
                if existing.isEmpty { try await IdentityTables.impliedRoles.insert(rule, on: db) }
            }
            var userIDs: [String: String] = [:]
            for name in ["admin", "demo"] {
                var isNew = false
                userIDs[name] = try await Self.ensure(IdentityTables.users, named: name, domain: "default", on: db) {
                    isNew = true
                    return ["name": .string(name), "domain_id": "default", "enabled": true,
                            "password_hash": .string(hashed[name]!.hash), "default_project_id": .string(projectIDs[name]!),
                            "description": .null, "extra": [:], "created_at": .string(now)]
                }
                if isNew { created[name] = hashed[name]!.plain }
            }
            let grants: [(String, String, String, String)] = [
                (userIDs["admin"]!, "project", projectIDs["admin"]!, roleIDs["admin"]!),
                (userIDs["admin"]!, "system", "all", roleIDs["admin"]!),
                (userIDs["demo"]!, "project", projectIDs["demo"]!, roleIDs["member"]!),
            ]
            for (user, targetType, target, role) in grants {
                try await Self.grant(actorType: "user", actor: user, targetType: targetType, target: target, role: role,
                                     inherited: false, on: db)
            }
            try await Self.ensureRegion("RegionOne", on: db)
            for entry in entries {
                try await Self.ensureCatalogEntry(entry, url: publicURL + entry.path, on: db)
            }
            return created
        }
        result.createdPasswords = created
        invalidateCatalog()
        return result
    }

    /// The id of the row with this name in this domain, inserting it first if missing.
    static func ensure(
        _ table: RecordTable, named name: String, domain: String, on db: any SQLDatabase,
        make: () -> RecordTable.Record
    ) async throws -> String {
        let existing = try await table.list([.init("name", .equal, .string(name)), .init("domain_id", .equal, .string(domain))], on: db)
        if let id = existing.first?["id"]?.stringValue { return id }
        var record = make()
        let id = Identifier.hex()
        record["id"] = .string(id)
        try await table.insert(record, on: db)
        return id
    }

    /// Inserts an assignment unless it exists. - Returns: whether it was new.
    @discardableResult
    static func grant(
        actorType: String, actor: String, targetType: String, target: String, role: String, inherited: Bool,
        on db: any SQLDatabase
    ) async throws -> Bool {
        let filters: [RecordTable.Filter] = [
            .init("actor_type", .equal, .string(actorType)), .init("actor_id", .equal, .string(actor)),
            .init("target_type", .equal, .string(targetType)), .init("target_id", .equal, .string(target)),
            .init("role_id", .equal, .string(role)), .init("inherited", .equal, .bool(inherited)),
        ]
        if try await !IdentityTables.assignments.list(filters, on: db).isEmpty { return false }
        var record: RecordTable.Record = ["id": .string(Identifier.hex())]
        for filter in filters { record[filter.column] = filter.value }
        try await IdentityTables.assignments.insert(record, on: db)
        return true
    }

    static func ensureRegion(_ id: String, on db: any SQLDatabase) async throws {
        if try await IdentityTables.regions.fetch(id, on: db) == nil {
            try await IdentityTables.regions.insert(["id": .string(id), "description": "", "parent_region_id": .null, "extra": [:]], on: db)
        }
    }

    /// One service of this type, with public, internal and admin endpoints at `url` (updated when
    /// the listen address changed since the last start).
    static func ensureCatalogEntry(_ entry: CatalogEntry, url: String, on db: any SQLDatabase) async throws {
        var serviceID = try await IdentityTables.services.list([.init("type", .equal, .string(entry.type))], on: db)
            .first?["id"]?.stringValue
        if serviceID == nil {
            let id = Identifier.hex()
            try await IdentityTables.services.insert([
                "id": .string(id), "type": .string(entry.type), "name": .string(entry.name), "description": "",
                "enabled": true, "extra": [:],
            ], on: db)
            serviceID = id
        }
        for interface in ["public", "internal", "admin"] {
            let existing = try await IdentityTables.endpoints.list(
                [.init("service_id", .equal, .string(serviceID!)), .init("interface", .equal, .string(interface))], on: db)
            if let endpoint = existing.first, let id = endpoint["id"]?.stringValue {
                if endpoint["url"]?.stringValue != url { try await IdentityTables.endpoints.update(id, ["url": .string(url)], on: db) }
            } else {
                try await IdentityTables.endpoints.insert([
                    "id": .string(Identifier.hex()), "service_id": .string(serviceID!), "interface": .string(interface),
                    "region_id": "RegionOne", "url": .string(url), "enabled": true, "extra": [:],
                ], on: db)
            }
        }
    }
}

extension IdentityService {
    /// The id of a project in the Default domain, for services that seed resources at start-up.
    public func projectID(named name: String) async throws -> String? {
        try await database.read { db in
            try await IdentityTables.projects.list([.init("name", .equal, .string(name)), .init("domain_id", .equal, "default")], on: db)
                .first?["id"]?.stringValue
        }
    }
}
