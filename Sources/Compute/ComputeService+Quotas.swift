import Foundation
import NimbusCore
import SQLKit
import Store

extension ComputeService {
    /// Resources `os-quota-sets` shows at the negotiated microversion (2.36 dropped the network
    /// ones, 2.57 the injected files).
    static func quotaResources(version: Int) -> [String] {
        var names = ["cores", "instances", "ram", "key_pairs", "metadata_items", "server_groups", "server_group_members"]
        // Nova-network's, which Neutron enforces now: unlimited here unless set.
        if version < 36 { names += ["fixed_ips", "floating_ips", "security_groups", "security_group_rules"] }
        if version < 57 { names += ["injected_files", "injected_file_content_bytes", "injected_file_path_bytes"] }
        return names
    }

    /// The project's limits: its own where set, else the defaults. -1 means unlimited.
    func quotaLimits(_ projectID: String, on db: any SQLDatabase) async throws -> [String: Int64] {
        var limits = configuration.defaultQuotas
        let rows = try await db.select().columns("resource", "hard_limit").from("compute_quotas")
            .where("project_id", .equal, SQLBind(projectID)).all()
        for row in rows {
            limits[try row.decode(column: "resource", as: String.self)] = try row.decode(column: "hard_limit", as: Int64.self)
        }
        return limits
    }

    /// Holds the project's quota lock until the transaction ends, so a concurrent create cannot
    /// count the same free room. SQLite's write transactions exclude each other already; under
    /// PostgreSQL's READ COMMITTED two creates would both see room and both insert.
    func lockQuota(_ projectID: String, on db: any SQLDatabase) async throws {
        guard database.engine == .postgres else { return }
        try await db.raw("SELECT pg_advisory_xact_lock(hashtext(\(bind: "compute-quota:" + projectID)))").run()
    }

    /// What the project uses now: live instances, their cores and RAM, and its server groups.
    func quotaUsage(_ projectID: String, on db: any SQLDatabase) async throws -> [String: Int64] {
        let row = try await db.select()
            .column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n")
            .column(BigIntSum(column: "vcpus"), as: "c")
            .column(BigIntSum(column: "memory_mb"), as: "r")
            .from("compute_instances")
            .where("project_id", .equal, SQLBind(projectID)).where("deleted", .equal, SQLBind(false))
            .first()
        let groups = try await ComputeSchema.serverGroups.count([.init("project_id", .equal, .string(projectID))], on: db)
        return [
            "instances": try row?.decode(column: "n", as: Int64.self) ?? 0,
            "cores": try row?.decode(column: "c", as: Int64.self) ?? 0,
            "ram": try row?.decode(column: "r", as: Int64.self) ?? 0,
            "server_groups": Int64(groups),
        ]
    }

    func requireQuotaReader(_ projectID: String, _ caller: AuthContext) throws {
        guard caller.isAdmin || caller.projectID == projectID else {
            throw NimbusError.forbidden("Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")
        }
    }

    public func quotaSet(_ projectID: String, caller: AuthContext, detail: Bool, defaults: Bool, version: Int) async throws -> JSONValue {
        if !defaults { try requireQuotaReader(projectID, caller) }
        let (limits, usage) = try await database.read { db in
            (defaults ? self.configuration.defaultQuotas : try await self.quotaLimits(projectID, on: db),
             detail ? try await self.quotaUsage(projectID, on: db) : [:])
        }
        var out: [String: JSONValue] = ["id": .string(projectID)]
        for name in Self.quotaResources(version: version) {
            let limit = limits[name] ?? -1
            out[name] = detail ? ["limit": .int(limit), "in_use": .int(usage[name] ?? 0), "reserved": 0] : .int(limit)
        }
        return ["quota_set": .object(out)]
    }

    public func updateQuotaSet(_ projectID: String, _ body: JSONValue, caller: AuthContext, version: Int) async throws -> JSONValue {
        try Self.requireAdmin(caller, "os_compute_api:os-quota-sets:update")
        let fields = try FieldReader(body: body, root: "quota_set")
        let known = Set(Self.quotaResources(version: version))
        try fields.rejectUnknown(known.union(["force"]))
        var changes: [String: Int64] = [:]
        for name in known where fields.has(name) {
            let value = fields.fields[name]!
            guard let number = value.intValue ?? value.stringValue.flatMap({ Int64($0) }), number >= -1 else {
                throw NimbusError.badRequest("Invalid input for field/attribute \(name). Value: \(value.serialized()). \(value.serialized()) is less than the minimum of -1")
            }
            changes[name] = number
        }
        let updates = changes
        try await database.transaction { db in
            for (name, limit) in updates {
                try await db.delete(from: "compute_quotas").where("project_id", .equal, SQLBind(projectID))
                    .where("resource", .equal, SQLBind(name)).run()
                try await db.insert(into: "compute_quotas").columns("project_id", "resource", "hard_limit")
                    .values(SQLBind(projectID), SQLBind(name), SQLBind(limit)).run()
            }
        }
        var out = try await quotaSet(projectID, caller: caller, detail: false, defaults: false, version: version)
        if case .object(var inner)? = out["quota_set"] {
            inner["id"] = nil
            out = ["quota_set": .object(inner)]
        }
        return out
    }

    public func deleteQuotaSet(_ projectID: String, caller: AuthContext) async throws {
        try Self.requireAdmin(caller, "os_compute_api:os-quota-sets:delete")
        try await database.transaction { db in
            try await db.delete(from: "compute_quotas").where("project_id", .equal, SQLBind(projectID)).run()
        }
    }

    /// `GET /limits`: the absolute limits and usage of the caller's project.
    public func limits(caller: AuthContext, projectID requested: String?, version: Int) async throws -> JSONValue {
        let projectID = requested ?? caller.projectID ?? ""
        try requireQuotaReader(projectID, caller)
        let (limits, usage) = try await database.read { db in
            (try await self.quotaLimits(projectID, on: db), try await self.quotaUsage(projectID, on: db))
        }
        var absolute: [String: JSONValue] = [
            "maxServerMeta": .int(limits["metadata_items"] ?? -1), "maxTotalInstances": .int(limits["instances"] ?? -1),
            "maxTotalCores": .int(limits["cores"] ?? -1), "maxTotalRAMSize": .int(limits["ram"] ?? -1),
            "maxTotalKeypairs": .int(limits["key_pairs"] ?? -1), "maxServerGroups": .int(limits["server_groups"] ?? -1),
            "maxServerGroupMembers": .int(limits["server_group_members"] ?? -1),
            "totalInstancesUsed": .int(usage["instances"] ?? 0), "totalCoresUsed": .int(usage["cores"] ?? 0),
            "totalRAMUsed": .int(usage["ram"] ?? 0), "totalServerGroupsUsed": .int(usage["server_groups"] ?? 0),
        ]
        if version < 57 {
            absolute["maxPersonality"] = .int(limits["injected_files"] ?? -1)
            absolute["maxPersonalitySize"] = .int(limits["injected_file_content_bytes"] ?? -1)
            absolute["maxImageMeta"] = .int(limits["metadata_items"] ?? -1)
        }
        return ["limits": ["rate": [], "absolute": .object(absolute)]]
    }
}

/// `CAST(COALESCE(SUM(column), 0) AS BIGINT)`: PostgreSQL sums BIGINT as NUMERIC, which does
/// not decode as Int64; SQLite is unaffected by the cast.
private struct BigIntSum: SQLExpression {
    let column: String

    func serialize(to serializer: inout SQLSerializer) {
        serializer.write("CAST(COALESCE(SUM(")
        SQLIdentifier(column).serialize(to: &serializer)
        serializer.write("), 0) AS BIGINT)")
    }
}
