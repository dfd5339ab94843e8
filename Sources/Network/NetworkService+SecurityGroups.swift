import NimbusCore
import SQLKit
import Store

extension NetworkService {
    static let groupFields: Set<String> = ["name", "description", "project_id", "tenant_id", "stateful", "tags"]

    func groupNotFound(_ id: String) -> NimbusError {
        .neutron(.notFound, "SecurityGroupNotFound", "Security group \(id) does not exist")
    }

    func visibleGroup(_ id: String, _ caller: AuthContext, on db: any SQLDatabase) async throws -> Record {
        guard let record = try await NetworkSchema.securityGroups.fetch(id, on: db), Self.owns(record, caller) else { throw groupNotFound(id) }
        return record
    }

    /// A group a port of `project` may use: one of that project's.
    func visibleSecurityGroup(_ id: String, project: String, on db: any SQLDatabase) async throws -> Record {
        guard let record = try await NetworkSchema.securityGroups.fetch(id, on: db), record.string("project_id") == project else { throw groupNotFound(id) }
        return record
    }

    /// The project's `default` group, created with Neutron's default rules on first need. Its row
    /// in `net_default_groups` is claimed first, so two racing first requests make one group.
    func defaultSecurityGroup(project: String, on db: any SQLDatabase) async throws -> String {
        let id = Identifier.uuid()
        let claimed = try await db.raw("""
            INSERT INTO net_default_groups (project_id, security_group_id) VALUES (\(bind: project), \(bind: id))
            ON CONFLICT DO NOTHING RETURNING security_group_id
            """).all()
        guard !claimed.isEmpty else {
            let row = try await db.select().column("security_group_id").from("net_default_groups")
                .where("project_id", .equal, SQLBind(project)).first()
            return try row?.decode(column: "security_group_id", as: String.self) ?? ""
        }
        var group: Record = ["id": .string(id), "project_id": .string(project), "name": "default",
                             "description": "Default security group", "stateful": true]
        Self.standardAttributes(&group)
        try await NetworkSchema.securityGroups.insert(group, on: db)
        for (direction, ethertype) in [("egress", "IPv4"), ("egress", "IPv6"), ("ingress", "IPv4"), ("ingress", "IPv6")] {
            var rule: Record = ["id": .string(Identifier.uuid()), "project_id": .string(project), "security_group_id": .string(id),
                                "direction": .string(direction), "ethertype": .string(ethertype), "description": "",
                                "remote_group_id": direction == "ingress" ? .string(id) : .null]
            Self.standardAttributes(&rule)
            rule["tags"] = nil
            try await NetworkSchema.rules.insert(rule, on: db)
        }
        return id
    }

    /// Makes sure the caller's project has its default group (Neutron creates it on first listing).
    func ensureDefaultGroup(_ caller: AuthContext) async throws {
        guard let project = caller.projectID else { return }
        let exists = try await database.read { db in
            try await db.select().column("project_id").from("net_default_groups").where("project_id", .equal, SQLBind(project)).first() != nil
        }
        if !exists { try await write { db in _ = try await self.defaultSecurityGroup(project: project, on: db) } }
    }

    public func listSecurityGroups(caller: AuthContext) async throws -> [Record] {
        try await ensureDefaultGroup(caller)
        return try await database.read { db in
            let filter: [RecordTable.Filter] = caller.isAdmin ? [] : [.init("project_id", .equal, .optional(caller.projectID))]
            let groups = try await NetworkSchema.securityGroups.list(filter, on: db)
            let rules = Dictionary(grouping: try await NetworkSchema.rules.list(filter, on: db)) { $0.string("security_group_id") ?? "" }
            return groups.map { Self.groupView($0, rules: rules[$0.string("id") ?? ""] ?? []) }
        }
    }

    public func securityGroup(_ id: String, caller: AuthContext) async throws -> Record {
        try await database.read { db in
            let group = try await self.visibleGroup(id, caller, on: db)
            return Self.groupView(group, rules: try await NetworkSchema.rules.list([.init("security_group_id", .equal, .string(id))], on: db))
        }
    }

    public func createSecurityGroup(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "create_security_group")
        let input = try FieldReader(body: body, root: "security_group")
        try Self.rejectUnknown(input, Self.groupFields)
        let project = try Self.owningProject(input, caller, "create_security_group")
        let name = try input.string("name", maxLength: 255) ?? ""
        if name == "default" {
            throw NimbusError.neutron(.conflict, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
        }
        var group: Record = ["id": .string(Identifier.uuid()), "project_id": .string(project), "name": .string(name),
                             "description": .string(try input.string("description", maxLength: 255) ?? ""),
                             "stateful": .bool(try input.bool("stateful") ?? true)]
        Self.standardAttributes(&group, tags: try input.stringArray("tags") ?? [])
        let row = group
        return try await write { db in
            _ = try await self.defaultSecurityGroup(project: project, on: db)
            try await self.enforceQuota("security_group", project: project, on: db)
            try await self.enforceQuota("security_group_rule", project: project, adding: 2, on: db)
            try await NetworkSchema.securityGroups.insert(row, on: db)
            // Neutron gives a new group egress-anywhere rules, one per ethertype.
            var rules: [Record] = []
            for ethertype in ["IPv4", "IPv6"] {
                var rule: Record = ["id": .string(Identifier.uuid()), "project_id": .string(project), "security_group_id": row["id"]!,
                                    "direction": "egress", "ethertype": .string(ethertype), "description": ""]
                Self.standardAttributes(&rule)
                rule["tags"] = nil
                try await NetworkSchema.rules.insert(rule, on: db)
                rules.append(rule)
            }
            return Self.groupView(row, rules: rules)
        }
    }

    public func updateSecurityGroup(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "update_security_group")
        let input = try FieldReader(body: body, root: "security_group")
        try Self.rejectUnknown(input, Self.groupFields.subtracting(["project_id", "tenant_id"]))
        var changes: Record = [:]
        if let name = try input.string("name", maxLength: 255) { changes["name"] = .string(name) }
        if let text = try input.string("description", maxLength: 255) { changes["description"] = .string(text) }
        let fixed = changes
        return try await write { db in
            let group = try await self.visibleGroup(id, caller, on: db)
            if group.string("name") == "default", let name = fixed["name"], name != "default" {
                throw NimbusError.neutron(.badRequest, "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
            }
            let revised = Self.revised(fixed, from: group)
            try await NetworkSchema.securityGroups.update(id, revised, on: db)
            return Self.groupView(group.merging(revised) { _, new in new },
                                  rules: try await NetworkSchema.rules.list([.init("security_group_id", .equal, .string(id))], on: db))
        }
    }

    public func deleteSecurityGroup(_ id: String, caller: AuthContext) async throws {
        try Self.requireWriter(caller, "delete_security_group")
        try await write { db in
            let group = try await self.visibleGroup(id, caller, on: db)
            let isDefault = try await db.select().column("project_id").from("net_default_groups")
                .where("security_group_id", .equal, SQLBind(id)).first() != nil
            if isDefault && !caller.isAdmin {
                throw NimbusError.neutron(.conflict, "SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.")
            }
            let users = try await db.select().column("port_id").from("net_port_security_groups")
                .where("security_group_id", .equal, SQLBind(id)).limit(1).all()
            let remoteUsers = try await NetworkSchema.rules.count([.init("remote_group_id", .equal, .string(id)),
                                                                   .init("security_group_id", .notEqual, .string(id))], on: db)
            if !users.isEmpty || remoteUsers > 0 {
                throw NimbusError.neutron(.conflict, "SecurityGroupInUse", "Security Group \(id) in use.")
            }
            if isDefault { try await db.delete(from: "net_default_groups").where("security_group_id", .equal, SQLBind(id)).run() }
            try await NetworkSchema.rules.delete([.init("security_group_id", .equal, .string(id))], on: db)
            try await NetworkSchema.securityGroups.delete(id: group.string("id") ?? id, on: db)
        }
    }

    static func groupView(_ record: Record, rules: [Record]) -> Record {
        var view = record
        view["tenant_id"] = record["project_id"]
        view["shared"] = false
        view["security_group_rules"] = .array(rules.map { .object(ruleView($0)) })
        return view
    }
}
