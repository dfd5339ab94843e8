import Foundation
import Gateway
import HummingbirdBcrypt
import Hummingbird
import NimbusCore
import Store

extension IdentityAPI {
    /// A user's own routes (password change, projects, groups) and group membership.
    static func registerUserRoutes(_ routes: inout ServiceRoutes, _ service: IdentityService) {
        routes.post("/v3/users/{id}/password") { request, context in
            let caller = try context.caller()
            let id = context.path("id")
            try IdentityPolicy.enforce(caller.user.id == id, "change_password")
            let fields = try FieldReader(body: try await request.json(context: context), root: "user")
            try fields.rejectUnknown(["password", "original_password"])
            let original = try fields.string("original_password", required: true)!
            let password = try fields.string("password", required: true, minLength: 1, maxLength: 4096)!
            guard let hash = try await IdentityResources.users.fetch(id, service).string("password_hash"),
                  try await service.offload({ Bcrypt.verify(original, hash: hash) })
            else { throw NimbusError.unauthorized() }
            let newHash = try await service.hashPassword(password)
            try await service.database.transaction { db in
                try await IdentityTables.users.update(id, ["password_hash": newHash], on: db)
                try await service.revokeUser(id, on: db)
            }
            return .empty()
        }
        routes.get("/v3/users/{id}/projects") { _, context in
            let caller = try context.caller()
            let id = context.path("id")
            try IdentityPolicy.enforce(IdentityPolicy.isSelfOrReader(caller, userID: id), "list_user_projects")
            _ = try await IdentityResources.users.fetch(id, service)
            return .json(["projects": .array(try await service.projectsOf(userID: id)),
                          "links": ["self": .string("\(service.baseURL)/users/\(id)/projects"), "previous": nil, "next": nil]])
        }
        routes.get("/v3/users/{id}/groups") { _, context in
            let caller = try context.caller()
            let id = context.path("id")
            try IdentityPolicy.enforce(IdentityPolicy.isSelfOrReader(caller, userID: id), "list_groups_for_user")
            _ = try await IdentityResources.users.fetch(id, service)
            let groups = try await service.database.read { db in
                try await IdentityTables.groupMembers.list([.init("user_id", .equal, .string(id))], on: db)
                    .asyncCompactMap { try await IdentityTables.groups.fetch($0.string("group_id") ?? "", on: db) }
            }
            return .json(["groups": .array(groups.map { IdentityResources.groups.render($0, "\(service.baseURL)/groups/\($0.string("id") ?? "")") }),
                          "links": ["self": nil, "previous": nil, "next": nil]])
        }
        routes.get("/v3/groups/{id}/users") { _, context in
            try IdentityPolicy.enforce(IdentityPolicy.canReadAll(try context.caller()), "list_users_in_group")
            let group = context.path("id")
            _ = try await IdentityResources.groups.fetch(group, service)
            let users = try await service.database.read { db in
                try await IdentityTables.groupMembers.list([.init("group_id", .equal, .string(group))], on: db)
                    .asyncCompactMap { try await IdentityTables.users.fetch($0.string("user_id") ?? "", on: db) }
            }
            return .json(["users": .array(users.map { IdentityResources.users.render($0, "\(service.baseURL)/users/\($0.string("id") ?? "")") }),
                          "links": ["self": nil, "previous": nil, "next": nil]])
        }
        routes.put("/v3/groups/{id}/users/{user}") { _, context in
            try IdentityPolicy.enforce(IdentityPolicy.canManage(try context.caller()), "add_user_to_group")
            let (group, user) = (context.path("id"), context.path("user"))
            _ = try await IdentityResources.groups.fetch(group, service)
            _ = try await IdentityResources.users.fetch(user, service)
            try await service.database.transaction { db in
                let filters: [RecordTable.Filter] = [.init("group_id", .equal, .string(group)), .init("user_id", .equal, .string(user))]
                if try await IdentityTables.groupMembers.list(filters, on: db).isEmpty {
                    try await IdentityTables.groupMembers.insert(["group_id": .string(group), "user_id": .string(user)], on: db)
                }
            }
            return .empty()
        }
        routes.get("/v3/groups/{id}/users/{user}") { _, context in
            try IdentityPolicy.enforce(IdentityPolicy.canReadAll(try context.caller()), "check_user_in_group")
            let (group, user) = (context.path("id"), context.path("user"))
            let member = try await service.database.read { db in
                try await !IdentityTables.groupMembers.list([.init("group_id", .equal, .string(group)), .init("user_id", .equal, .string(user))], on: db).isEmpty
            }
            guard member else { throw NimbusError.notFound("User \(user) is not a member of group \(group).") }
            return .empty()
        }
        routes.delete("/v3/groups/{id}/users/{user}") { _, context in
            try IdentityPolicy.enforce(IdentityPolicy.canManage(try context.caller()), "remove_user_from_group")
            let (group, user) = (context.path("id"), context.path("user"))
            try await service.database.transaction { db in
                let filters: [RecordTable.Filter] = [.init("group_id", .equal, .string(group)), .init("user_id", .equal, .string(user))]
                guard try await !IdentityTables.groupMembers.list(filters, on: db).isEmpty else {
                    throw NimbusError.notFound("User \(user) is not a member of group \(group).")
                }
                try await IdentityTables.groupMembers.delete(filters, on: db)
                // Roles held through the group leave with the membership.
                try await service.revokeUser(user, on: db)
            }
            return .empty()
        }
    }

    /// `/v3/users/{id}/application_credentials`: a user manages their own.
    static func registerApplicationCredentials(_ routes: inout ServiceRoutes, _ service: IdentityService) {
        let base = "/v3/users/{id}/application_credentials"
        let render: @Sendable (RecordTable.Record) -> JSONValue = { record in
            [
                "id": record["id"] ?? nil, "name": record["name"] ?? nil, "description": record["description"] ?? nil,
                "project_id": record["project_id"] ?? nil, "user_id": record["user_id"] ?? nil,
                "expires_at": record["expires_at"] ?? nil, "unrestricted": record["unrestricted"] ?? false,
                "roles": record["roles"] ?? [], "access_rules": [],
                "links": ["self": .string("\(service.baseURL)/users/\(record.string("user_id") ?? "")/application_credentials/\(record.string("id") ?? "")")],
            ]
        }
        routes.post(base) { request, context in
            let caller = try context.caller()
            let id = context.path("id")
            try IdentityPolicy.enforce(caller.user.id == id, "create_application_credential")
            let fields = try FieldReader(body: try await request.json(context: context), root: "application_credential")
            let (record, secret) = try await service.createApplicationCredential(userID: id, caller: caller, fields: fields)
            guard case .object(var body) = render(record) else { throw NimbusError.internal("render failed") }
            body["secret"] = .string(secret)
            return .json(["application_credential": .object(body)], status: .created)
        }
        routes.get(base) { request, context in
            let caller = try context.caller()
            let id = context.path("id")
            try IdentityPolicy.enforce(IdentityPolicy.isSelfOrReader(caller, userID: id), "list_application_credentials")
            var filters: [RecordTable.Filter] = [.init("user_id", .equal, .string(id))]
            if let name = request.query("name") { filters.append(.init("name", .equal, .string(name))) }
            let frozen = filters
            let records = try await service.database.read { try await IdentityTables.applicationCredentials.list(frozen, on: $0) }
            return .json(["application_credentials": .array(records.map(render)), "links": ["self": nil, "previous": nil, "next": nil]])
        }
        routes.get(base + "/{credential}") { _, context in
            let caller = try context.caller()
            let id = context.path("id")
            try IdentityPolicy.enforce(IdentityPolicy.isSelfOrReader(caller, userID: id), "get_application_credential")
            return .json(["application_credential": render(try await ownCredential(context, service))])
        }
        routes.delete(base + "/{credential}") { _, context in
            let caller = try context.caller()
            let id = context.path("id")
            try IdentityPolicy.enforce(caller.user.id == id || IdentityPolicy.canManage(caller), "delete_application_credential")
            let record = try await ownCredential(context, service)
            let credentialID = record.string("id") ?? ""
            try await service.database.transaction { db in
                try await IdentityTables.applicationCredentials.delete(id: credentialID, on: db)
                try await service.revokeUser(id, on: db)
            }
            return .empty()
        }
    }

    private static func ownCredential(_ context: NimbusContext, _ service: IdentityService) async throws -> RecordTable.Record {
        let (user, credential) = (context.path("id"), context.path("credential"))
        let record = try await service.database.read { try await IdentityTables.applicationCredentials.fetch(credential, on: $0) }
        guard let record, record.string("user_id") == user else {
            throw NimbusError.notFound("Could not find Application Credential: \(credential).")
        }
        return record
    }
}
