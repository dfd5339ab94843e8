import Foundation
import Gateway
import Hummingbird
import NimbusCore
import SQLKit
import Store

extension IdentityAPI {
    /// Grants on projects, domains and the system, for users and groups, direct or inherited
    /// (`OS-INHERIT`), and `GET /v3/role_assignments`.
    static func registerAssignments(_ routes: inout ServiceRoutes, _ service: IdentityService) {
        var shapes: [(base: String, targetType: String, suffix: String, inherited: Bool)] = []
        for target in ["projects", "domains"] {
            shapes.append(("/v3/\(target)/{id}", String(target.dropLast()), "", false))
            shapes.append(("/v3/OS-INHERIT/\(target)/{id}", String(target.dropLast()), "/inherited_to_projects", true))
        }
        shapes.append(("/v3/system", "system", "", false))
        for shape in shapes {
            for actors in ["users", "groups"] {
                let actorType = String(actors.dropLast())
                let collection = "\(shape.base)/\(actors)/{actor}/roles"
                let key: @Sendable (NimbusContext, String) -> Assignment = { context, role in
                    Assignment(actorType: actorType, actorID: context.path("actor"), targetType: shape.targetType,
                               targetID: shape.targetType == "system" ? "all" : context.path("id"), roleID: role,
                               inherited: shape.inherited)
                }
                routes.get(collection + shape.suffix) { _, context in
                    try IdentityPolicy.enforce(IdentityPolicy.canReadAll(try context.caller()), "list_grants")
                    let probe = key(context, "")
                    let roles = try await service.database.read { db in
                        try await IdentityTables.assignments.list(assignmentFilters(probe, includeRole: false), on: db)
                            .compactMap { $0.string("role_id") }
                            .asyncCompactMap { try await IdentityTables.roles.fetch($0, on: db) }
                    }
                    return .json(["roles": .array(roles.map { IdentityResources.roles.render($0, "\(service.baseURL)/roles/\($0.string("id") ?? "")") }),
                                  "links": ["self": nil, "previous": nil, "next": nil]])
                }
                routes.put(collection + "/{role}" + shape.suffix) { _, context in
                    try IdentityPolicy.enforce(IdentityPolicy.canManage(try context.caller()), "create_grant")
                    let assignment = key(context, context.path("role"))
                    try await service.database.transaction { db in
                        try await checkExists(assignment, on: db)
                        try await IdentityService.grant(
                            actorType: assignment.actorType, actor: assignment.actorID, targetType: assignment.targetType,
                            target: assignment.targetID, role: assignment.roleID, inherited: assignment.inherited, on: db)
                    }
                    return .empty()
                }
                routes.get(collection + "/{role}" + shape.suffix) { _, context in
                    try IdentityPolicy.enforce(IdentityPolicy.canReadAll(try context.caller()), "check_grant")
                    let assignment = key(context, context.path("role"))
                    let found = try await service.database.read { db in
                        try await !IdentityTables.assignments.list(assignmentFilters(assignment, includeRole: true), on: db).isEmpty
                    }
                    guard found else { throw NimbusError.notFound("Could not find role assignment.") }
                    return .empty()
                }
                routes.delete(collection + "/{role}" + shape.suffix) { _, context in
                    try IdentityPolicy.enforce(IdentityPolicy.canManage(try context.caller()), "revoke_grant")
                    let assignment = key(context, context.path("role"))
                    try await service.database.transaction { db in
                        let filters = assignmentFilters(assignment, includeRole: true)
                        guard let existing = try await IdentityTables.assignments.list(filters, on: db).first else {
                            throw NimbusError.notFound("Could not find role assignment.")
                        }
                        try await IdentityTables.assignments.delete(filters, on: db)
                        // Tokens carry roles: the actor's tokens must not keep the removed one.
                        let hook = ResourceAPI.HookContext(service: service, caller: try context.caller(), fields: nil, existing: nil, db: db)
                        try await IdentityResources.revokeActor(existing, hook: hook)
                    }
                    return .empty()
                }
            }
        }
        routes.get("/v3/role_assignments") { request, context in
            try await listRoleAssignments(request, context, service)
        }
    }

    static func assignmentFilters(_ assignment: Assignment, includeRole: Bool) -> [RecordTable.Filter] {
        var filters: [RecordTable.Filter] = [
            .init("actor_type", .equal, .string(assignment.actorType)), .init("actor_id", .equal, .string(assignment.actorID)),
            .init("target_type", .equal, .string(assignment.targetType)), .init("target_id", .equal, .string(assignment.targetID)),
            .init("inherited", .equal, .bool(assignment.inherited)),
        ]
        if includeRole { filters.append(.init("role_id", .equal, .string(assignment.roleID))) }
        return filters
    }

    /// 404s name the first missing part, as Keystone's do.
    static func checkExists(_ assignment: Assignment, on db: any SQLDatabase) async throws {
        let actorTable = assignment.actorType == "user" ? IdentityTables.users : IdentityTables.groups
        guard try await actorTable.fetch(assignment.actorID, on: db) != nil else {
            throw NimbusError.notFound("Could not find \(assignment.actorType): \(assignment.actorID).")
        }
        if assignment.targetType != "system" {
            let targetTable = assignment.targetType == "project" ? IdentityTables.projects : IdentityTables.domains
            guard try await targetTable.fetch(assignment.targetID, on: db) != nil else {
                throw NimbusError.notFound("Could not find \(assignment.targetType): \(assignment.targetID).")
            }
        }
        guard try await IdentityTables.roles.fetch(assignment.roleID, on: db) != nil else {
            throw NimbusError.notFound("Could not find role: \(assignment.roleID).")
        }
    }
}
