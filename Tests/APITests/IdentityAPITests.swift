import Foundation
import NimbusCore
import NimbusTesting
import Store
import Testing

/// Keystone v3 behaviour through the gateway, in-process.
@Suite struct IdentityAPITests {
    @Test func versionDiscoveryIsOpen() async throws {
        try await TestCloud.with { cloud in
            let root = try await cloud.request(.get, "/identity")
            #expect(root.status == 300)
            #expect(root.body?["versions"]?["values"]?.arrayValue?.first?["id"] == "v3.14")
            let v3 = try await cloud.request(.get, "/identity/v3")
            #expect(v3.status == 200)
            #expect(v3.body?["version"]?["status"] == "stable")
        }
    }

    @Test func wrongPasswordIs401WithKeystoneBody() async throws {
        try await TestCloud.with { cloud in
            let reply = try await cloud.request(.post, "/identity/v3/auth/tokens", json: [
                "auth": ["identity": ["methods": ["password"], "password": ["user": ["name": "admin", "domain": ["id": "default"], "password": "wrong"]]]],
            ])
            #expect(reply.status == 401)
            #expect(reply.body == ["error": ["code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"]])
            #expect(reply.header("WWW-Authenticate") != nil)
            #expect(reply.header("x-openstack-request-id")?.hasPrefix("req-") == true)
        }
    }

    /// Tempest's test_validate_token compares the two documents whole.
    @Test func unscopedTokenIsTheSameOnIssueAndValidation() async throws {
        try await TestCloud.with { cloud in
            // A user without a default project gets an unscoped token when it names no scope.
            let admin = try await cloud.adminToken()
            #expect(try await cloud.request(.post, "/identity/v3/users", token: admin, json: ["user": ["name": "loose", "password": "pw"]]).status == 201)
            let issued = try await cloud.request(.post, "/identity/v3/auth/tokens", json: [
                "auth": ["identity": ["methods": ["password"], "password": ["user": ["name": "loose", "domain": ["id": "default"], "password": "pw"]]]],
            ])
            #expect(issued.status == 201)
            #expect(issued.body?["token"]?.objectValue?.keys.contains("catalog") == false, "\(issued.text)")
            let token = try #require(issued.header("X-Subject-Token"))
            let validated = try await cloud.request(.get, "/identity/v3/auth/tokens", token: token, headers: ["X-Subject-Token": token])
            #expect(validated.status == 200)
            #expect(validated.body == issued.body)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func projectLifecycle(engine: DatabaseEngine) async throws {
        try await TestCloud.with(engine) { cloud in
            let token = try await cloud.adminToken()
            let created = try await cloud.request(.post, "/identity/v3/projects", token: token,
                                                  json: ["project": ["name": "web", "description": "front", "colour": "blue"]])
            #expect(created.status == 201)
            let id = try #require(created.body?["project"]?["id"]?.stringValue)
            #expect(created.body?["project"]?["domain_id"] == "default")
            #expect(created.body?["project"]?["parent_id"] == "default")
            #expect(created.body?["project"]?["colour"] == "blue", "unknown attributes are kept as Keystone keeps extras")

            let duplicate = try await cloud.request(.post, "/identity/v3/projects", token: token, json: ["project": ["name": "web"]])
            #expect(duplicate.status == 409)

            let listed = try await cloud.request(.get, "/identity/v3/projects?name=web", token: token)
            #expect(listed.body?["projects"]?.arrayValue?.count == 1)
            let inexact = try await cloud.request(.get, "/identity/v3/projects?name__startswith=we", token: token)
            #expect(inexact.body?["projects"]?.arrayValue?.count == 1)

            let patched = try await cloud.request(.patch, "/identity/v3/projects/\(id)", token: token,
                                                  json: ["project": ["description": "new", "enabled": false]])
            #expect(patched.status == 200)
            #expect(patched.body?["project"]?["enabled"] == false)
            #expect(patched.body?["project"]?["colour"] == "blue")

            #expect(try await cloud.request(.delete, "/identity/v3/projects/\(id)", token: token).status == 204)
            let gone = try await cloud.request(.get, "/identity/v3/projects/\(id)", token: token)
            #expect(gone.status == 404)
            #expect(gone.body?["error"]?["message"] == .string("Could not find project: \(id)."))
        }
    }

    @Test func badInputIsRejectedAndWritesNothing() async throws {
        try await TestCloud.with { cloud in
            let token = try await cloud.adminToken()
            let before = try await cloud.request(.get, "/identity/v3/projects", token: token).body?["projects"]?.arrayValue?.count
            let cases: [(String?, JSONValue?, Int)] = [
                ("{\"project\": ", nil, 400),
                (nil, ["project": ["name": .string(String(repeating: "x", count: 65))]], 400),
                (nil, ["project": ["name": ""]], 400),
                (nil, ["project": ["name": "ok", "enabled": "yes"]], 400),
                (nil, ["project": ["name": "ok", "domain_id": "nope"]], 400),
                (nil, ["projects": ["name": "ok"]], 400),
            ]
            for (raw, json, status) in cases {
                let reply = try await cloud.request(.post, "/identity/v3/projects", token: token, json: json, raw: raw)
                #expect(reply.status == status, "\(raw ?? json?.serialized() ?? "")")
                #expect(reply.body?["error"]?["code"] == .int(Int64(status)))
            }
            let after = try await cloud.request(.get, "/identity/v3/projects", token: token).body?["projects"]?.arrayValue?.count
            #expect(before == after)
        }
    }

    @Test func gatewayAnswers404405413WithRequestIDs() async throws {
        try await TestCloud.with { cloud in
            let token = try await cloud.adminToken()
            let unknown = try await cloud.request(.get, "/identity/v3/nothing", token: token)
            #expect(unknown.status == 404)
            #expect(unknown.header("x-openstack-request-id") != nil)
            #expect(try await cloud.request(.patch, "/identity/v3/auth/tokens", token: token).status == 405)
            let huge = "{\"project\": {\"name\": \"" + String(repeating: "a", count: 1 << 21) + "\"}}"
            let tooLarge = try await cloud.request(.post, "/identity/v3/projects", token: token, raw: huge)
            #expect(tooLarge.status == 413)
            #expect(try await cloud.request(.get, "/identity/v3/projects").status == 401)
            #expect(try await cloud.request(.get, "/identity/v3/projects", token: "garbage").status == 401)
        }
    }

    @Test func membersSeeOnlyTheirOwnScope() async throws {
        try await TestCloud.with { cloud in
            let member = try await cloud.token(user: "demo", password: cloud.passwords["demo"] ?? "")
            let forbidden = try await cloud.request(.get, "/identity/v3/projects", token: member)
            #expect(forbidden.status == 403)
            #expect(forbidden.body?["error"]?["message"] == "You are not authorized to perform the requested action: identity:list_projects.")
            #expect(try await cloud.request(.post, "/identity/v3/users", token: member, json: ["user": ["name": "x"]]).status == 403)
            let validated = try await cloud.request(.get, "/identity/v3/auth/tokens", token: member, headers: ["X-Subject-Token": member])
            #expect(validated.body?["token"]?["project"]?["name"] == "demo")
            let demoID = try #require(validated.body?["token"]?["project"]?["id"]?.stringValue)
            #expect(try await cloud.request(.get, "/identity/v3/projects/\(demoID)", token: member).status == 200)
            let mine = try await cloud.request(.get, "/identity/v3/auth/projects", token: member)
            #expect(mine.body?["projects"]?.arrayValue?.map { $0["name"] } == ["demo"])
            let roles = validated.body?["token"]?["roles"]?.arrayValue?.compactMap { $0["name"]?.stringValue }.sorted()
            #expect(roles == ["member", "reader"], "member implies reader")
        }
    }

    @Test func revokedTokensStopWorking() async throws {
        try await TestCloud.with { cloud in
            let admin = try await cloud.adminToken()
            let victim = try await cloud.adminToken()
            #expect(try await cloud.request(.head, "/identity/v3/auth/tokens", token: admin, headers: ["X-Subject-Token": victim]).status == 200)
            #expect(try await cloud.request(.delete, "/identity/v3/auth/tokens", token: admin, headers: ["X-Subject-Token": victim]).status == 204)
            #expect(try await cloud.request(.get, "/identity/v3/auth/tokens", token: admin, headers: ["X-Subject-Token": victim]).status == 404)
            #expect(try await cloud.request(.get, "/identity/v3/projects", token: victim).status == 401)
            #expect(try await cloud.request(.get, "/identity/v3/projects", token: admin).status == 200)
        }
    }

    @Test func roleRemovalPasswordChangeAndDisableRevoke() async throws {
        try await TestCloud.with { cloud in
            let admin = try await cloud.adminToken()
            let user = try await cloud.request(.post, "/identity/v3/users", token: admin, json: ["user": ["name": "bob", "password": "pw-1"]])
            let userID = try #require(user.body?["user"]?["id"]?.stringValue)
            #expect(user.body?["user"]?["password"] == nil && user.body?["user"]?["password_hash"] == nil)
            let project = try await cloud.request(.get, "/identity/v3/projects?name=demo", token: admin).body?["projects"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            let role = try await cloud.request(.get, "/identity/v3/roles?name=member", token: admin).body?["roles"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            let grant = "/identity/v3/projects/\(project)/users/\(userID)/roles/\(role)"
            #expect(try await cloud.request(.put, grant, token: admin).status == 204)
            #expect(try await cloud.request(.head, grant, token: admin).status == 204)

            let first = try await cloud.token(user: "bob", password: "pw-1", project: "demo")
            #expect(try await cloud.request(.delete, grant, token: admin).status == 204)
            #expect(try await cloud.request(.get, "/identity/v3/auth/catalog", token: first).status == 401)
            await #expect(throws: NimbusError.self) { try await cloud.token(user: "bob", password: "pw-1", project: "demo") }

            let unscoped = try await cloud.token(user: "bob", password: "pw-1")
            let change = try await cloud.request(.post, "/identity/v3/users/\(userID)/password", token: unscoped,
                                                 json: ["user": ["original_password": "pw-1", "password": "pw-2"]])
            #expect(change.status == 204)
            #expect(try await cloud.request(.get, "/identity/v3/users/\(userID)", token: unscoped).status == 401)
            let second = try await cloud.token(user: "bob", password: "pw-2")
            #expect(try await cloud.request(.get, "/identity/v3/users/\(userID)", token: second).status == 200)

            #expect(try await cloud.request(.patch, "/identity/v3/users/\(userID)", token: admin, json: ["user": ["enabled": false]]).status == 200)
            #expect(try await cloud.request(.get, "/identity/v3/users/\(userID)", token: second).status == 401)
            await #expect(throws: NimbusError.self) { try await cloud.token(user: "bob", password: "pw-2") }
        }
    }

    @Test func systemReaderReadsButCannotWrite() async throws {
        try await TestCloud.with { cloud in
            let admin = try await cloud.adminToken()
            let user = try await cloud.request(.post, "/identity/v3/users", token: admin, json: ["user": ["name": "auditor", "password": "pw"]])
            let userID = user.body?["user"]?["id"]?.stringValue ?? ""
            let reader = try await cloud.request(.get, "/identity/v3/roles?name=reader", token: admin).body?["roles"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            #expect(try await cloud.request(.put, "/identity/v3/system/users/\(userID)/roles/\(reader)", token: admin).status == 204)
            let token = try await cloud.token(user: "auditor", password: "pw", system: true)
            #expect(try await cloud.request(.get, "/identity/v3/projects", token: token).status == 200)
            #expect(try await cloud.request(.get, "/identity/v3/role_assignments?include_names", token: token).status == 200)
            #expect(try await cloud.request(.post, "/identity/v3/projects", token: token, json: ["project": ["name": "nope"]]).status == 403)
        }
    }

    @Test func applicationCredentialsAuthenticateToTheirProject() async throws {
        try await TestCloud.with { cloud in
            let demo = try await cloud.token(user: "demo", password: cloud.passwords["demo"] ?? "", project: "demo")
            let me = try await cloud.request(.get, "/identity/v3/auth/tokens", token: demo, headers: ["X-Subject-Token": demo])
            let userID = me.body?["token"]?["user"]?["id"]?.stringValue ?? ""
            let created = try await cloud.request(.post, "/identity/v3/users/\(userID)/application_credentials", token: demo,
                                                  json: ["application_credential": ["name": "ci"]])
            #expect(created.status == 201)
            let credential = try #require(created.body?["application_credential"]?["id"]?.stringValue)
            let secret = try #require(created.body?["application_credential"]?["secret"]?.stringValue)
            let auth: JSONValue = ["auth": ["identity": ["methods": ["application_credential"],
                                                         "application_credential": ["id": .string(credential), "secret": .string(secret)]]]]
            let issued = try await cloud.request(.post, "/identity/v3/auth/tokens", json: auth)
            #expect(issued.status == 201)
            #expect(issued.body?["token"]?["project"]?["name"] == "demo")
            #expect(issued.body?["token"]?["application_credential"]?["id"] == .string(credential))
            let wrong: JSONValue = ["auth": ["identity": ["methods": ["application_credential"],
                                                          "application_credential": ["id": .string(credential), "secret": "nope"]]]]
            #expect(try await cloud.request(.post, "/identity/v3/auth/tokens", json: wrong).status == 401)
            #expect(try await cloud.request(.delete, "/identity/v3/users/\(userID)/application_credentials/\(credential)", token: demo).status == 204)
            #expect(try await cloud.request(.post, "/identity/v3/auth/tokens", json: auth).status == 401)
        }
    }

    @Test func groupsGrantRolesToTheirMembers() async throws {
        try await TestCloud.with { cloud in
            let admin = try await cloud.adminToken()
            let userID = try await cloud.request(.post, "/identity/v3/users", token: admin, json: ["user": ["name": "gina", "password": "pw"]])
                .body?["user"]?["id"]?.stringValue ?? ""
            let groupID = try await cloud.request(.post, "/identity/v3/groups", token: admin, json: ["group": ["name": "ops"]])
                .body?["group"]?["id"]?.stringValue ?? ""
            #expect(try await cloud.request(.put, "/identity/v3/groups/\(groupID)/users/\(userID)", token: admin).status == 204)
            let project = try await cloud.request(.get, "/identity/v3/projects?name=demo", token: admin).body?["projects"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            let role = try await cloud.request(.get, "/identity/v3/roles?name=reader", token: admin).body?["roles"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            #expect(try await cloud.request(.put, "/identity/v3/projects/\(project)/groups/\(groupID)/roles/\(role)", token: admin).status == 204)
            _ = try await cloud.token(user: "gina", password: "pw", project: "demo")
            let effective = try await cloud.request(.get, "/identity/v3/role_assignments?effective&user.id=\(userID)", token: admin)
            let entries = effective.body?["role_assignments"]?.arrayValue ?? []
            #expect(entries.count == 1)
            #expect(entries.first?["links"]?["membership"] != nil)
        }
    }

    @Test func domainsMustBeDisabledBeforeDelete() async throws {
        try await TestCloud.with { cloud in
            let admin = try await cloud.adminToken()
            let domain = try await cloud.request(.post, "/identity/v3/domains", token: admin, json: ["domain": ["name": "acme"]])
            let id = domain.body?["domain"]?["id"]?.stringValue ?? ""
            #expect(try await cloud.request(.post, "/identity/v3/projects", token: admin, json: ["project": ["name": "p", "domain_id": .string(id)]]).status == 201)
            #expect(try await cloud.request(.delete, "/identity/v3/domains/\(id)", token: admin).status == 403)
            #expect(try await cloud.request(.patch, "/identity/v3/domains/\(id)", token: admin, json: ["domain": ["enabled": false]]).status == 200)
            #expect(try await cloud.request(.delete, "/identity/v3/domains/\(id)", token: admin).status == 204)
            #expect(try await cloud.request(.get, "/identity/v3/projects?domain_id=\(id)", token: admin).body?["projects"]?.arrayValue?.isEmpty == true)
        }
    }
}
