import Foundation
import NimbusCore
import SQLKit
import Store

extension IdentityService {
    /// The scope a token request asks for. Without one, an application credential gets its project,
    /// and a user their default project when they have a role on it (else the token is unscoped).
    func requestedScope(_ scope: JSONValue?, caller: inout Caller, user: UserSummary) async throws -> AuthContext.Scope {
        if let project = caller.applicationCredentialProject {
            if scope != nil { throw NimbusError.unauthorized("Application credentials cannot request a scope.") }
            return try await projectScope(id: project)
        }
        guard let scope else {
            if let previous = caller.previousScope { return previous }
            if let project = user.defaultProjectID, let resolved = try? await projectScope(id: project) {
                caller.scopeWasDefaulted = true
                return resolved
            }
            return .unscoped
        }
        if scope.stringValue == "unscoped" { return .unscoped }
        let fields = try FieldReader(scope, path: "scope")
        if let project = try fields.object("project") {
            if let id = try project.string("id") { return try await projectScope(id: id) }
            let name = try project.string("name", required: true)!
            let domain = try await resolveDomain(try project.object("domain", required: true)!)
            let record = try await database.read { db in
                try await IdentityTables.projects.list([.init("name", .equal, .string(name)),
                                                        .init("domain_id", .equal, .string(domain.id))], on: db).first
            }
            guard let id = record?["id"]?.stringValue else { throw NimbusError.unauthorized() }
            return try await projectScope(id: id)
        }
        if let domain = try fields.object("domain") {
            return .domain(try await resolveDomain(domain))
        }
        if let system = try fields.object("system") {
            guard try system.bool("all") == true else {
                throw NimbusError.badRequest("Invalid input for field 'scope/system': only {\"all\": true} is supported")
            }
            return .system
        }
        throw NimbusError.badRequest("Invalid input for field 'scope': one of 'project', 'domain' or 'system' is required")
    }

    /// A project scope, refused (401) when the project or its domain is disabled or missing.
    func projectScope(id: String) async throws -> AuthContext.Scope {
        let (project, domain) = try await database.read { db in
            let project = try await IdentityTables.projects.fetch(id, on: db)
            let domain = try await project.flatMap { $0["domain_id"]?.stringValue }.asyncMap {
                try await IdentityTables.domains.fetch($0, on: db)
            } ?? nil
            return (project, domain)
        }
        guard let project, let domain, project["enabled"]?.boolValue == true, domain["enabled"]?.boolValue == true else {
            throw NimbusError.unauthorized()
        }
        return .project(.init(id: id, name: project["name"]?.stringValue ?? ""),
                        domain: .init(id: domain["id"]?.stringValue ?? "", name: domain["name"]?.stringValue ?? ""))
    }

    /// Roles the user holds on a scope: direct and through groups, inherited from the project's
    /// domain and parents, then expanded through implied roles (admin ⇒ member ⇒ reader).
    func effectiveRoles(userID: String, scope: AuthContext.Scope) async throws -> [AuthContext.Reference] {
        try await database.read { db in
            let groups = try await IdentityTables.groupMembers.list([.init("user_id", .equal, .string(userID))], on: db)
                .compactMap { $0["group_id"]?.stringValue }
            var targets: [(type: String, id: String, inherited: Bool)] = []
            switch scope {
            case .unscoped: return []
            case .system: targets = [("system", "all", false)]
            case .domain(let domain): targets = [("domain", domain.id, false)]
            case .project(let project, let domain):
                targets = [("project", project.id, false), ("domain", domain.id, true)]
                for ancestor in try await self.ancestors(of: project.id, on: db) {
                    targets.append(("project", ancestor, true))
                }
            }
            let query = db.select().distinct().column("role_id").from("identity_assignments")
                .where("actor_id", .in, SQLBind.group([userID] + groups))
                .where { outer in
                    for target in targets {
                        outer.orWhere { inner in
                            inner.where("target_type", .equal, SQLBind(target.type))
                                .where("target_id", .equal, SQLBind(target.id))
                                .where("inherited", .equal, SQLBind(target.inherited))
                        }
                    }
                    return outer
                }
            let direct = try await query.all().map { try $0.decode(column: "role_id", as: String.self) }
            return try await self.expandImplied(Set(direct), on: db)
        }
    }

    /// Parent, grandparent, … of a project, nearest first.
    func ancestors(of projectID: String, on db: any SQLDatabase) async throws -> [String] {
        var chain: [String] = []
        var current = projectID
        while let parent = try await IdentityTables.projects.fetch(current, on: db)?["parent_id"]?.stringValue,
              !chain.contains(parent), chain.count < 64 {
            chain.append(parent)
            current = parent
        }
        return chain
    }

    /// Adds implied roles transitively and returns id+name pairs sorted by name.
    func expandImplied(_ roleIDs: Set<String>, on db: any SQLDatabase) async throws -> [AuthContext.Reference] {
        guard !roleIDs.isEmpty else { return [] }
        let implications = try await IdentityTables.impliedRoles.list(on: db)
        var all = roleIDs
        var frontier = Array(roleIDs)
        while let next = frontier.popLast() {
            for rule in implications where rule["prior_role_id"]?.stringValue == next {
                if let implied = rule["implied_role_id"]?.stringValue, all.insert(implied).inserted {
                    frontier.append(implied)
                }
            }
        }
        let roles = try await db.select().columns("id", "name").from("identity_roles")
            .where("id", .in, SQLBind.group(Array(all))).orderBy("name").all()
        return try roles.map { .init(id: try $0.decode(column: "id", as: String.self), name: try $0.decode(column: "name", as: String.self)) }
    }
}
