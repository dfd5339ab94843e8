import Foundation
import Gateway
import Hummingbird
import NimbusCore
import SQLKit
import Store

extension IdentityAPI {
    /// `GET /v3/role_assignments` with Keystone's filters, `effective` and `include_names`.
    static func listRoleAssignments(_ request: Request, _ context: NimbusContext, _ service: IdentityService) async throws -> Response {
        let caller = try context.caller()
        let userFilter = request.query("user.id")
        try IdentityPolicy.enforce(IdentityPolicy.canReadAll(caller) || userFilter == caller.user.id, "list_role_assignments")
        let effective = request.query("effective") != nil
        let names = request.query("include_names").map { !["0", "false", "no"].contains($0.lowercased()) } ?? false
        let groupFilter = request.query("group.id")
        let roleFilter = request.query("role.id")
        let projectFilter = request.query("scope.project.id")
        let domainFilter = request.query("scope.domain.id")
        let systemFilter = request.query("scope.system")
        let inheritedFilter = request.query("scope.OS-INHERIT:inherited_to")
        if effective && groupFilter != nil {
            throw NimbusError.badRequest("Combining effective and group filter will always result in an empty list.")
        }
        let entries = try await service.database.read { db -> [JSONValue] in
            var assignments = try await IdentityTables.assignments.list(on: db).map(Assignment.init)
            if effective { assignments = try await service.effectiveAssignments(assignments, on: db) }
            assignments = assignments.filter { assignment in
                if let userFilter, !(assignment.actorType == "user" && assignment.actorID == userFilter) { return false }
                if let groupFilter, !(assignment.actorType == "group" && assignment.actorID == groupFilter) { return false }
                if let roleFilter, assignment.roleID != roleFilter { return false }
                if let projectFilter, !(assignment.targetType == "project" && assignment.targetID == projectFilter) { return false }
                if let domainFilter, !(assignment.targetType == "domain" && assignment.targetID == domainFilter) { return false }
                if systemFilter != nil, assignment.targetType != "system" { return false }
                if inheritedFilter != nil, !assignment.inherited { return false }
                return true
            }
            var names = NameCache(db: db, enabled: names)
            var out: [JSONValue] = []
            for assignment in assignments {
                out.append(try await render(assignment, names: &names, base: service.baseURL))
            }
            return out
        }
        return .json(["role_assignments": .array(entries),
                      "links": ["self": .string(service.baseURL + "/role_assignments"), "previous": nil, "next": nil]])
    }

    private static func render(_ assignment: Assignment, names: inout NameCache, base: String) async throws -> JSONValue {
        var role: [String: JSONValue] = ["id": .string(assignment.roleID)]
        if names.enabled, let record = try await names.record(IdentityTables.roles, assignment.roleID) {
            role["name"] = record["name"] ?? nil
            if let domain = record.string("domain_id"), !domain.isEmpty { role["domain"] = try await names.domain(domain) }
        }
        var actor: [String: JSONValue] = ["id": .string(assignment.actorID)]
        let actorTable = assignment.actorType == "user" ? IdentityTables.users : IdentityTables.groups
        if names.enabled, let record = try await names.record(actorTable, assignment.actorID) {
            actor["name"] = record["name"] ?? nil
            actor["domain"] = try await names.domain(record.string("domain_id") ?? "")
        }
        var scope: [String: JSONValue]
        switch assignment.targetType {
        case "system": scope = ["system": ["all": true]]
        case let kind:
            var target: [String: JSONValue] = ["id": .string(assignment.targetID)]
            let table = kind == "project" ? IdentityTables.projects : IdentityTables.domains
            if names.enabled, let record = try await names.record(table, assignment.targetID) {
                target["name"] = record["name"] ?? nil
                if kind == "project" { target["domain"] = try await names.domain(record.string("domain_id") ?? "") }
            }
            scope = [kind: .object(target)]
        }
        if assignment.inherited { scope["OS-INHERIT:inherited_to"] = "projects" }
        let targetPath = assignment.targetType == "system" ? "system" : "\(assignment.targetType)s/\(assignment.targetID)"
        var links: [String: JSONValue] = [
            "assignment": .string("\(base)/\(targetPath)/\(assignment.actorType)s/\(assignment.actorID)/roles/\(assignment.roleID)"),
        ]
        if let group = assignment.viaGroup { links["membership"] = .string("\(base)/groups/\(group)/users/\(assignment.actorID)") }
        return ["role": .object(role), .init(stringLiteral: assignment.actorType): .object(actor), "scope": .object(scope), "links": .object(links)]
    }

    /// Looks each id up once per response when `include_names` is set.
    struct NameCache {
        let db: any SQLDatabase
        let enabled: Bool
        var cache: [String: RecordTable.Record?] = [:]

        init(db: any SQLDatabase, enabled: Bool) {
            self.db = db
            self.enabled = enabled
        }

        mutating func record(_ table: RecordTable, _ id: String) async throws -> RecordTable.Record? {
            let key = table.name + "/" + id
            if let hit = cache[key] { return hit }
            let record = try await table.fetch(id, on: db)
            cache[key] = record
            return record
        }

        mutating func domain(_ id: String) async throws -> JSONValue {
            let record = try await record(IdentityTables.domains, id)
            return ["id": .string(id), "name": record?["name"] ?? nil]
        }
    }
}
