import Foundation
import NimbusCore
import SQLKit
import Store

extension ComputeService {
    static let groupPolicies = ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]

    public func createServerGroup(_ body: JSONValue, caller: AuthContext, version: Int) async throws -> Record {
        guard let projectID = caller.projectID, caller.isMember else {
            throw NimbusError.forbidden("Policy doesn't allow os_compute_api:os-server-groups:create to be performed.")
        }
        let fields = try FieldReader(body: body, root: "server_group")
        let policy: String
        var rules: [String: JSONValue] = [:]
        if version >= 64 {
            try fields.rejectUnknown(["name", "policy", "rules"])
            policy = try fields.string("policy", required: true)!
            if let given = try fields.object("rules") {
                try given.rejectUnknown(["max_server_per_host"])
                if let max = try given.int("max_server_per_host", minimum: 1) {
                    guard policy == "anti-affinity" else {
                        throw NimbusError.badRequest("Invalid input for field/attribute rules. Only anti-affinity policy supports max_server_per_host rule.")
                    }
                    rules["max_server_per_host"] = .int(max)
                }
            }
        } else {
            try fields.rejectUnknown(["name", "policies"])
            let policies = try fields.stringArray("policies", required: true)!
            guard policies.count == 1 else {
                throw NimbusError.badRequest("Invalid input for field/attribute policies. Value: \(policies). exactly one policy is required")
            }
            policy = policies[0]
        }
        guard Self.groupPolicies.contains(policy) else {
            throw NimbusError.badRequest("Invalid input for field/attribute policy. Value: \(policy). '\(policy)' is not one of \(Self.groupPolicies)")
        }
        let name = try fields.string("name", required: true, minLength: 1, maxLength: 255)!
        let record: Record = [
            "id": .string(Identifier.uuid()), "name": .string(name), "project_id": .string(projectID),
            "user_id": .string(caller.user.id), "policy": .string(policy), "rules": .object(rules), "members": [],
            "created_at": .string(Self.now()),
        ]
        try await database.transaction { db in
            let limit = try await self.quotaLimits(projectID, on: db)["server_groups"] ?? -1
            let used = try await ComputeSchema.serverGroups.count([.init("project_id", .equal, .string(projectID))], on: db)
            if limit >= 0 && used >= limit { throw NimbusError(.overQuota, "Quota exceeded, too many server groups.") }
            try await ComputeSchema.serverGroups.insert(record, on: db)
        }
        return record
    }

    public func serverGroups(caller: AuthContext, allProjects: Bool) async throws -> [Record] {
        try await database.read { db in
            var filters: [RecordTable.Filter] = []
            if !(allProjects && caller.isAdmin) { filters.append(.init("project_id", .equal, .string(caller.projectID ?? ""))) }
            return try await ComputeSchema.serverGroups.list(filters, orderBy: "created_at", on: db)
        }
    }

    public func serverGroup(_ id: String, caller: AuthContext) async throws -> Record {
        try await database.read { db in
            guard let group = try await ComputeSchema.serverGroups.fetch(id, on: db),
                  caller.isAdmin || group.string("project_id") == caller.projectID else {
                throw NimbusError.notFound("Server group \(id) could not be found.")
            }
            return group
        }
    }

    public func deleteServerGroup(_ id: String, caller: AuthContext) async throws {
        _ = try await serverGroup(id, caller: caller)
        try await database.transaction { try await ComputeSchema.serverGroups.delete(id: id, on: $0) }
    }

    func addGroupMembersCheck(_ group: String, adding count: Int, projectID: String, on db: any SQLDatabase) async throws {
        guard let record = try await ComputeSchema.serverGroups.fetchForUpdate(group, on: db) else { return }
        let members = record["members"]?.arrayValue?.count ?? 0
        let limit = try await quotaLimits(projectID, on: db)["server_group_members"] ?? -1
        if limit >= 0 && members + count > limit {
            throw NimbusError(.overQuota, "Quota exceeded, too many servers in group")
        }
    }

    func addGroupMembers(_ group: String, _ ids: [String], on db: any SQLDatabase) async throws {
        guard let record = try await ComputeSchema.serverGroups.fetchForUpdate(group, on: db) else { return }
        let members = (record["members"]?.arrayValue ?? []) + ids.map { .string($0) }
        try await ComputeSchema.serverGroups.update(group, ["members": .array(members)], on: db)
    }

    func removeGroupMember(_ group: String, _ id: String, on db: any SQLDatabase) async throws {
        guard let record = try await ComputeSchema.serverGroups.fetchForUpdate(group, on: db) else { return }
        let members = (record["members"]?.arrayValue ?? []).filter { $0.stringValue != id }
        try await ComputeSchema.serverGroups.update(group, ["members": .array(members)], on: db)
    }

    // MARK: - Instance actions

    func recordAction(_ action: String, instance: Instance, caller: AuthContext, requestID: String, on db: any SQLDatabase) async throws {
        let now = Self.now()
        try await ComputeSchema.actions.insert([
            "id": .string(Identifier.uuid()), "instance_id": .string(instance.id), "request_id": .string(requestID),
            "action": .string(action), "user_id": .string(caller.user.id), "project_id": .string(caller.projectID ?? instance.projectID),
            "start_time": .string(now), "updated_at": .string(now), "message": nil, "events": [],
        ], on: db)
    }

    /// Appends an event to the instance's action of `requestID` (its latest operation).
    func recordEvent(
        instance: String, requestID: String, event: String, host: String?, started: String, failure: String? = nil,
        on db: any SQLDatabase
    ) async throws {
        guard let action = try await ComputeSchema.actions.list(
            [.init("instance_id", .equal, .string(instance)), .init("request_id", .equal, .string(requestID))], on: db).first,
            let id = action.string("id") else { return }
        var events = action["events"]?.arrayValue ?? []
        events.append([
            "event": .string(event), "start_time": .string(started), "finish_time": .string(Self.now()),
            "result": .string(failure == nil ? "Success" : "Error"), "traceback": .optional(failure), "host": .optional(host),
        ])
        var changes: Record = ["events": .array(events), "updated_at": .string(Self.now())]
        if failure != nil { changes["message"] = "Error" }
        try await ComputeSchema.actions.update(id, changes, on: db)
    }

    public func instanceActions(_ id: String, caller: AuthContext) async throws -> [Record] {
        try await database.read { db in
            guard let record = try await ComputeSchema.instances.fetch(id, on: db),
                  caller.isAdmin || record.string("project_id") == caller.projectID else {
                throw NimbusError.notFound("Instance \(id) could not be found.")
            }
            return try await ComputeSchema.actions.list([.init("instance_id", .equal, .string(id))], orderBy: "start_time",
                                                        descending: true, on: db)
        }
    }
}
