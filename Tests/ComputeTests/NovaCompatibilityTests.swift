import Foundation
import NimbusCore
import NimbusTesting
import Testing

/// What Tempest's compute interop tests found Nimbus answering differently from Nova.
@Suite struct NovaCompatibilityTests {
    @Test func versionsAndRequestIDs() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let root = try await session.request(.get, "/compute/")
            #expect(root.body?["versions"]?.arrayValue?.map { $0["id"] } == ["v2.0", "v2.1"])
            // /v2 is 2.1 that reads and echoes no microversion.
            let legacy = try await session.request(.get, "/compute/v2/flavors", token: f.demo, headers: ["OpenStack-API-Version": "compute 2.79"])
            #expect(legacy.status == 200)
            #expect(legacy.header("OpenStack-API-Version") == nil)
            let current = try await f.get("/flavors")
            #expect(current.header("x-compute-request-id") != nil)
            #expect(current.header("x-compute-request-id") == current.header("x-openstack-request-id"))
        }
    }

    @Test func updateAndRebuildAnswersAndAccessAddresses() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let id = try await f.bootID("access")
            _ = try await f.waitForStatus(id, "ACTIVE")
            let old = try await f.put("/servers/\(id)", json: ["server": ["accessIPv6": "0000:0000:0000:0000:0000:babe:220.12.22.2"]], version: "2.1")
            #expect(old.status == 200, "\(old.text)")
            #expect(old.body?["server"]?["accessIPv6"] == "::babe:dc0c:1602")
            #expect(old.body?["server"]?["OS-EXT-STS:vm_state"] == nil, "before 2.75 the answer has no extensions' attributes")
            #expect(old.body?["server"]?["security_groups"] == nil)
            let new = try await f.put("/servers/\(id)", json: ["server": ["accessIPv4": "10.0.0.9"]], version: "2.75")
            #expect(new.body?["server"]?["OS-EXT-STS:vm_state"] == "active")
            #expect(new.body?["server"]?["accessIPv4"] == "10.0.0.9")
            let bad = try await f.put("/servers/\(id)", json: ["server": ["accessIPv6": "2.2.2.2"]], version: "2.1")
            #expect(bad.status == 400)
            #expect(try await f.server(id)?["accessIPv6"] == "::babe:dc0c:1602")
            #expect(try await f.boot("bad-access", extra: ["accessIPv4": "::1"]).status == 400)
        }
    }

    @Test func quotaSetBefore236HasNetworkQuotas() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let project = try #require(try await session.request(.get, "/identity/v3/projects?name=demo", token: f.admin)
                .body?["projects"]?.arrayValue?.first?["id"]?.stringValue)
            let old = try await f.get("/os-quota-sets/\(project)", version: "2.1").body?["quota_set"]
            #expect(old?["floating_ips"] == -1)
            #expect(old?["security_group_rules"] == -1)
            #expect(try await f.get("/os-quota-sets/\(project)", version: "2.36").body?["quota_set"]?["floating_ips"] == nil)
        }
    }

    @Test func imageAPIBefore236AndSnapshotMetadata() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let shown = try await f.get("/images/\(f.imageID)", version: "2.1")
            #expect(shown.status == 200, "\(shown.text)")
            #expect(shown.body?["image"]?["status"] == "ACTIVE")
            #expect(shown.body?["image"]?["OS-EXT-IMG-SIZE:size"] == 8192)
            #expect(try await f.get("/images/\(f.imageID)", version: "2.36").status == 404)
            let listed = try await f.get("/images/detail", version: "2.1").body?["images"]?.arrayValue ?? []
            #expect(listed.contains { $0["id"] == .string(f.imageID) })

            let id = try await f.bootID("snap")
            _ = try await f.waitForStatus(id, "ACTIVE")
            let snap = try await f.post("/servers/\(id)/action", json: ["createImage": ["name": "snap", "metadata": ["image_type": "test"]]], version: "2.45")
            let image = try #require(snap.body?["image_id"]?.stringValue, "\(snap.text)")
            #expect(try await session.request(.get, "/image/v2/images/\(image)", token: f.demo).body?["image_type"] == "test")
            try await f.waitUntil("snapshot active") { try await f.get("/images/\(image)", version: "2.1").body?["image"]?["status"] == "ACTIVE" }
            #expect(try await f.get("/images/\(image)", version: "2.1").body?["image"]?["server"]?["id"] == .string(id))
            #expect(try await f.delete("/images/\(image)", version: "2.1").status == 204)
            #expect(try await f.get("/images/\(image)", version: "2.1").status == 404)
        }
    }

    @Test func x509KeypairsAreMadeAndImported() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let made = try await f.post("/os-keypairs", json: ["keypair": ["name": "cert", "type": "x509"]], version: "2.2")
            #expect(made.status == 201, "\(made.text)")
            let keypair = try #require(made.body?["keypair"])
            let certificate = try #require(keypair["public_key"]?.stringValue)
            #expect(certificate.hasPrefix("-----BEGIN CERTIFICATE-----"))
            #expect(keypair["private_key"]?.stringValue?.contains("PRIVATE KEY-----") == true)
            let fingerprint = try #require(keypair["fingerprint"]?.stringValue)
            #expect(fingerprint.count == 59, "SHA-1 as 20 colon-separated bytes: \(fingerprint)")
            let imported = try await f.post("/os-keypairs", json: ["keypair": ["name": "again", "type": "x509", "public_key": .string(certificate)]], version: "2.2")
            #expect(imported.body?["keypair"]?["fingerprint"] == .string(fingerprint))
            #expect(imported.body?["keypair"]?["private_key"] == nil)
            let bad = try await f.post("/os-keypairs", json: ["keypair": ["name": "bad", "type": "x509", "public_key": "not a certificate"]], version: "2.2")
            #expect(bad.status == 400)
            #expect(try await f.get("/os-keypairs/bad").status == 404)
        }
    }
}
