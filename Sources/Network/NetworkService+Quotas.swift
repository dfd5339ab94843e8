import NimbusCore
import SQLKit
import Store

extension NetworkService {
    /// Resources whose creation counts against a quota, and the table each lives in.
    static let quotaTables: [String: String] = [
        "network": "net_networks", "subnet": "net_subnets", "port": "net_ports", "router": "net_routers",
        "floatingip": "net_floatingips", "security_group": "net_security_groups",
        "security_group_rule": "net_security_group_rules",
    ]

    func limits(_ project: String, on db: any SQLDatabase) async throws -> [String: Int64] {
        var limits = configuration.defaultQuotas
        for row in try await db.select().columns("resource", "hard_limit").from("net_quotas")
            .where("project_id", .equal, SQLBind(project)).all() {
            limits[try row.decode(column: "resource", as: String.self)] = try row.decode(column: "hard_limit", as: Int64.self)
        }
        return limits
    }

    func usage(_ resource: String, project: String, on db: any SQLDatabase) async throws -> Int64 {
        guard let table = Self.quotaTables[resource] else { return 0 }
        let row = try await db.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from(table)
            .where("project_id", .equal, SQLBind(project)).first()
        return Int64(try row?.decode(column: "n", as: Int.self) ?? 0)
    }

    /// Refuses one more `resource` for `project` past its limit: 409 `OverQuota`, as Neutron.
    func enforceQuota(_ resource: String, project: String, adding count: Int64 = 1, on db: any SQLDatabase) async throws {
        if QuotaBypass.active { return }
        let limit = try await limits(project, on: db)[resource] ?? -1
        guard limit >= 0 else { return }
        if try await usage(resource, project: project, on: db) + count > limit {
            throw NimbusError.neutron(.conflict, "OverQuota", "Quota exceeded for resources: ['\(resource)'].")
        }
    }

    public func quota(project: String, caller: AuthContext) async throws -> Record {
        try Self.requireQuotaReader(project, caller)
        return try await database.read { db in try await self.limits(project, on: db).mapValues { JSONValue.int($0) } }
    }

    public func defaultQuota(project: String, caller: AuthContext) throws -> Record {
        try Self.requireQuotaReader(project, caller)
        return configuration.defaultQuotas.mapValues { .int($0) }
    }

    /// `details.json`: limit, used and reserved per resource.
    public func quotaDetails(project: String, caller: AuthContext) async throws -> Record {
        try Self.requireQuotaReader(project, caller)
        return try await database.read { db in
            var details: Record = [:]
            for (resource, limit) in try await self.limits(project, on: db) {
                let used = try await self.usage(resource, project: project, on: db)
                details[resource] = ["limit": .int(limit), "used": .int(used), "reserved": 0]
            }
            return details
        }
    }

    public func updateQuota(project: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireAdmin(caller, "update_quota")
        let input = try FieldReader(body: body, root: "quota")
        try Self.rejectUnknown(input, Set(configuration.defaultQuotas.keys))
        var values: [String: Int64] = [:]
        for key in input.fields.keys { values[key] = try input.int(key, minimum: -1) }
        let limits = values
        try await write { db in
            for (resource, limit) in limits {
                try await db.delete(from: "net_quotas").where("project_id", .equal, SQLBind(project))
                    .where("resource", .equal, SQLBind(resource)).run()
                try await db.insert(into: "net_quotas").columns("project_id", "resource", "hard_limit")
                    .values(SQLBind(project), SQLBind(resource), SQLBind(limit)).run()
            }
        }
        return try await quota(project: project, caller: caller)
    }

    public func deleteQuota(project: String, caller: AuthContext) async throws {
        try Self.requireAdmin(caller, "delete_quota")
        try await write { db in try await db.delete(from: "net_quotas").where("project_id", .equal, SQLBind(project)).run() }
    }

    /// Projects with limits of their own, for `GET /quotas` (admin).
    public func listQuotas(caller: AuthContext) async throws -> [Record] {
        try Self.requireAdmin(caller, "get_quota")
        let projects = try await database.read { db in
            Set(try await db.select().column("project_id").from("net_quotas").all().map { try $0.decode(column: "project_id", as: String.self) })
        }
        var out: [Record] = []
        for project in projects.sorted() {
            var record = try await quota(project: project, caller: caller)
            record["project_id"] = .string(project)
            record["tenant_id"] = .string(project)
            out.append(record)
        }
        return out
    }

    static func requireQuotaReader(_ project: String, _ caller: AuthContext) throws {
        guard caller.isAdmin || caller.projectID == project else { throw NimbusError.policy("get_quota") }
    }
}
