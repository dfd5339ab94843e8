import Foundation
import NimbusCore
import SQLKit
import Store

/// One stored role assignment.
struct Assignment: Sendable, Hashable {
    var actorType: String   // "user" | "group"
    var actorID: String
    var targetType: String  // "project" | "domain" | "system"
    var targetID: String
    var roleID: String
    var inherited: Bool
    /// Set on effective entries that came through a group.
    var viaGroup: String? = nil

    init(actorType: String, actorID: String, targetType: String, targetID: String, roleID: String, inherited: Bool) {
        self.actorType = actorType
        self.actorID = actorID
        self.targetType = targetType
        self.targetID = targetID
        self.roleID = roleID
        self.inherited = inherited
    }

    init(_ record: RecordTable.Record) {
        self.init(actorType: record.string("actor_type") ?? "", actorID: record.string("actor_id") ?? "",
                  targetType: record.string("target_type") ?? "", targetID: record.string("target_id") ?? "",
                  roleID: record.string("role_id") ?? "", inherited: record["inherited"]?.boolValue ?? false)
    }
}

extension IdentityService {
    /// Every assignment, expanded as `?effective` asks: group grants become grants to each member,
    /// inherited grants land on every project below their target, implied roles are added.
    func effectiveAssignments(_ stored: [Assignment], on db: any SQLDatabase) async throws -> [Assignment] {
        let members = try await IdentityTables.groupMembers.list(on: db)
        let projects = try await IdentityTables.projects.list(on: db)
        let implications = try await IdentityTables.impliedRoles.list(on: db)
        var out: [Assignment] = []
        var seen = Set<Assignment>()
        for assignment in stored {
            var actors: [(String, String?)] = [(assignment.actorID, nil)]
            if assignment.actorType == "group" {
                actors = members.filter { $0.string("group_id") == assignment.actorID }.map { ($0.string("user_id") ?? "", assignment.actorID) }
            }
            var targets: [(String, String)] = [(assignment.targetType, assignment.targetID)]
            if assignment.inherited {
                targets = Self.projectsBelow(assignment, projects: projects).map { ("project", $0) }
            }
            var roles = [assignment.roleID]
            var index = 0
            while index < roles.count {
                for rule in implications where rule.string("prior_role_id") == roles[index] {
                    if let implied = rule.string("implied_role_id"), !roles.contains(implied) { roles.append(implied) }
                }
                index += 1
            }
            for (user, group) in actors {
                for (targetType, targetID) in targets {
                    for role in roles {
                        var entry = Assignment(actorType: "user", actorID: user, targetType: targetType, targetID: targetID,
                                               roleID: role, inherited: false)
                        entry.viaGroup = group
                        if seen.insert(entry).inserted { out.append(entry) }
                    }
                }
            }
        }
        return out
    }

    /// Projects an inherited grant reaches: all of a domain's, or all descendants of a project.
    static func projectsBelow(_ assignment: Assignment, projects: [RecordTable.Record]) -> [String] {
        if assignment.targetType == "domain" {
            return projects.filter { $0.string("domain_id") == assignment.targetID }.compactMap { $0.string("id") }
        }
        var found: [String] = []
        var frontier = [assignment.targetID]
        while let parent = frontier.popLast() {
            for child in projects where child.string("parent_id") == parent {
                if let id = child.string("id"), !found.contains(id) {
                    found.append(id)
                    frontier.append(id)
                }
            }
        }
        return found
    }

    /// The assignments that apply to a user directly or through their groups.
    func assignments(ofUser userID: String, on db: any SQLDatabase) async throws -> [Assignment] {
        let groups = try await IdentityTables.groupMembers.list([.init("user_id", .equal, .string(userID))], on: db)
            .compactMap { $0["group_id"] }
        var filters: [[RecordTable.Filter]] = [[.init("actor_type", .equal, "user"), .init("actor_id", .equal, .string(userID))]]
        filters += groups.map { [.init("actor_type", .equal, "group"), .init("actor_id", .equal, $0)] }
        var stored: [Assignment] = []
        for filter in filters {
            stored += try await IdentityTables.assignments.list(filter, on: db).map(Assignment.init)
        }
        return try await effectiveAssignments(stored, on: db).filter { $0.actorID == userID }
    }

    /// Enabled projects the user has a role on: `GET /v3/auth/projects` and `/v3/users/{id}/projects`.
    func projectsOf(userID: String) async throws -> [JSONValue] {
        try await database.read { db in
            let ids = Set(try await self.assignments(ofUser: userID, on: db).filter { $0.targetType == "project" }.map(\.targetID))
            var out: [JSONValue] = []
            for id in ids.sorted() {
                if let project = try await IdentityTables.projects.fetch(id, on: db), project["enabled"]?.boolValue == true {
                    out.append(IdentityResources.projects.render(project, "\(self.baseURL)/projects/\(id)"))
                }
            }
            return out
        }
    }

    /// Enabled domains the user has a role on.
    func domainsOf(userID: String) async throws -> [JSONValue] {
        try await database.read { db in
            let ids = Set(try await self.assignments(ofUser: userID, on: db).filter { $0.targetType == "domain" }.map(\.targetID))
            var out: [JSONValue] = []
            for id in ids.sorted() {
                if let domain = try await IdentityTables.domains.fetch(id, on: db), domain["enabled"]?.boolValue == true {
                    out.append(IdentityResources.domains.render(domain, "\(self.baseURL)/domains/\(id)"))
                }
            }
            return out
        }
    }
}
