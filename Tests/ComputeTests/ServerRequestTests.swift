import Foundation
import NimbusCore
import NimbusTesting
import Testing

/// What the API refuses, and how it negotiates microversions; refusals must write nothing.
@Suite struct ServerRequestTests {
    @Test func quotaExceededIs403AndCreatesNothing() async throws {
        try await TestCloud.with(configure: { $0.defaultQuotas["instances"] = 2 }) { session in
            let f = try await ComputeFixture.make(session)
            let first = try await f.bootID("q-1")
            _ = try await f.bootID("q-2")
            #expect(try await f.serverCount() == 2)

            let refused = try await f.boot("q-3")
            #expect(refused.status == 403)
            #expect(refused.body == ["forbidden": ["code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"]])
            let many = try await f.boot("q-many", extra: ["min_count": 2, "max_count": 3])
            #expect(many.status == 403)
            #expect(many.body?["forbidden"]?["message"]?.stringValue?.hasPrefix("Quota exceeded for instances: Requested 2") == true)
            #expect(try await f.serverCount() == 2)

            // A deleted server gives its place back.
            try await f.waitForStatus(first, "ACTIVE")
            #expect(try await f.delete("/servers/\(first)").status == 204)
            try await f.waitUntil("q-1 deleted") { try await f.get("/servers/\(first)").status == 404 }
            #expect(try await f.boot("q-4").status == 202)
            #expect(try await f.serverCount() == 2)
        }
    }

    @Test func concurrentCreatesCannotOvershootQuota() async throws {
        try await TestCloud.with(configure: { $0.defaultQuotas["instances"] = 2 }) { session in
            let f = try await ComputeFixture.make(session)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<6 { group.addTask { try await f.boot("race-\(index)").status } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.sorted() == [202, 202, 403, 403, 403, 403])
            #expect(try await f.serverCount() == 2)
        }
    }

    @Test func badInputIs400AndCreatesNothing() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let unknownImage = "0b5e4ba6-7c1a-4e0e-9d3a-2f1c9e3b6a11"
            let cases: [(String, JSONValue?, String?, String?)] = [
                ("unknown flavor", f.bootBody("x", flavor: "999"), nil, "Flavor 999 could not be found."),
                ("unknown image", f.bootBody("x", extra: ["imageRef": .string(unknownImage)]), nil, "Image \(unknownImage) could not be found."),
                ("image not a uuid", f.bootBody("x", extra: ["imageRef": "not-a-uuid"]), nil, "Invalid imageRef provided."),
                ("name of 256 characters", f.bootBody(String(repeating: "n", count: 256)), nil, nil),
                ("empty name", f.bootBody(""), nil, nil),
                ("min_count -1", f.bootBody("x", extra: ["min_count": -1]), nil, nil),
                ("max_count 0", f.bootBody("x", extra: ["max_count": 0]), nil, nil),
                ("min_count above max_count", f.bootBody("x", extra: ["min_count": 3, "max_count": 2]), nil, nil),
                ("unknown field", f.bootBody("x", extra: ["colour": "blue"]), nil, nil),
                ("malformed JSON", nil, "{\"server\": {\"name\": ", "Malformed request body: the body is not valid JSON."),
                ("missing networks at 2.79", ["server": ["name": "x", "flavorRef": "42", "imageRef": .string(f.imageID)]], nil,
                 "Invalid input for field/attribute server. Value: 'networks' is a required property"),
                ("missing flavorRef", ["server": ["name": "x", "imageRef": .string(f.imageID), "networks": "none"]], nil, nil),
            ]
            for (what, json, raw, message) in cases {
                let reply = try await f.post("/servers", json: json, raw: raw)
                #expect(reply.status == 400, "\(what): \(reply.status) \(reply.text)")
                #expect(reply.body?["badRequest"]?["code"] == 400, "\(what)")
                if let message {
                    #expect(reply.body?["badRequest"]?["message"] == .string(message), "\(what)")
                }
            }
            #expect(try await f.serverCount() == 0)
            #expect(try await f.serverCount(token: f.admin) == 0)
            let usage = try await f.get("/os-quota-sets/\(try await projectID(f, "demo"))/detail").body?["quota_set"]
            #expect(usage?["instances"]?["in_use"] == 0)
        }
    }

    @Test func anotherProjectsServerIs404() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let id = try await f.bootID("private")
            let (stranger, _) = try await session.newProjectUser("stranger")
            let reply = try await f.get("/servers/\(id)", token: stranger)
            #expect(reply.status == 404)
            #expect(reply.body == ["itemNotFound": ["code": 404, "message": .string("Instance \(id) could not be found.")]])
            #expect(try await f.delete("/servers/\(id)", token: stranger).status == 404)
            #expect(try await f.action(id, ["os-stop": nil], token: stranger).status == 404)
            #expect(try await f.serverCount(token: stranger) == 0)
            #expect(try await f.get("/servers/\(id)").status == 200, "its owner still sees it")
        }
    }

    @Test func microversionNegotiation() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let id = try await f.bootID("versions")

            let tooNew = try await f.get("/servers/\(id)", version: "2.200")
            #expect(tooNew.status == 406)
            #expect(tooNew.body?["computeFault"]?["code"] == 406)
            #expect(try await f.get("/servers/\(id)", version: "3.0").status == 406)
            #expect(try await f.get("/servers/\(id)", version: "2.x").status == 400)

            let latest = try await f.get("/servers/\(id)", version: "latest")
            #expect(latest.status == 200)
            #expect(latest.header("OpenStack-API-Version") == "compute 2.79")
            #expect(latest.header("X-OpenStack-Nova-API-Version") == "2.79")
            #expect(latest.body?["server"]?["flavor"]?["original_name"] == "m1.nano", "2.47+ embeds the flavor")

            let legacy = try await session.request(.get, ComputeFixture.prefix + "/servers/\(id)", token: f.demo,
                                                   headers: ["X-OpenStack-Nova-API-Version": "2.47"])
            #expect(legacy.header("OpenStack-API-Version") == "compute 2.47")

            let plain = try await f.get("/servers/\(id)", version: nil)
            #expect(plain.status == 200)
            #expect(plain.header("OpenStack-API-Version") == "compute 2.1")
            let flavor = plain.body?["server"]?["flavor"]
            #expect(flavor?["id"] == "42")
            #expect(flavor?["links"]?.arrayValue?.isEmpty == false)
            #expect(flavor?["original_name"] == nil)
            #expect(plain.body?["server"]?["locked"] == nil, "2.9 fields stay out of 2.1")

            // networks may be left out before 2.37.
            let old = try await f.post("/servers", json: ["server": ["name": "old", "flavorRef": "42", "imageRef": .string(f.imageID)]],
                                       version: "2.36")
            #expect(old.status == 202, "\(old.text)")
        }
    }

    func projectID(_ f: ComputeFixture, _ name: String) async throws -> String {
        let reply = try await f.session.request(.get, "/identity/v3/projects?name=\(name)", token: f.admin)
        return reply.body?["projects"]?.arrayValue?.first?["id"]?.stringValue ?? ""
    }
}
