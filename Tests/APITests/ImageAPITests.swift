import Foundation
import NimbusCore
import NimbusTesting
import Store
import Testing

/// Glance v2 behaviour through the gateway, in-process.
@Suite struct ImageAPITests {
    static let patchType = ["Content-Type": "application/openstack-images-v2.1-json-patch"]

    static func qcow2(_ extra: [String] = [], size: String = "16M") throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let base = directory.appendingPathComponent("base.qcow2")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        process.arguments = ["create", "-q", "-f", "qcow2", base.path, size]
        try process.run()
        process.waitUntilExit()
        guard !extra.isEmpty else { return Array(try Data(contentsOf: base)) }
        let top = directory.appendingPathComponent("top.qcow2")
        let second = Process()
        second.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        second.arguments = ["create", "-q", "-f", "qcow2"] + extra + ["-b", base.path, "-F", "qcow2", top.path]
        try second.run()
        second.waitUntilExit()
        return Array(try Data(contentsOf: top))
    }

    static func create(_ cloud: TestSession, _ token: String, _ fields: JSONValue) async throws -> String {
        let reply = try await cloud.request(.post, "/image/v2/images", token: token, json: fields)
        #expect(reply.status == 201, "\(reply.text)")
        return reply.body?["id"]?.stringValue ?? ""
    }

    @Test(arguments: TestDatabase.engines)
    func uploadDownloadAndHashes(engine: DatabaseEngine) async throws {
        try await TestCloud.with(engine) { cloud in
            let token = try await cloud.adminToken()
            let id = try await Self.create(cloud, token, ["name": "blob", "disk_format": "raw", "container_format": "bare", "os_distro": "test"])
            let data = (0..<100_000).map { UInt8($0 % 251) }
            #expect(try await cloud.request(.put, "/image/v2/images/\(id)/file", token: token, bytes: data, headers: ["Content-Type": "application/octet-stream"]).status == 204)
            let image = try await cloud.request(.get, "/image/v2/images/\(id)", token: token).body
            #expect(image?["status"] == "active")
            #expect(image?["size"] == 100_000)
            #expect(image?["os_hash_algo"] == "sha512")
            #expect(image?["checksum"]?.stringValue?.count == 32)
            #expect(image?["os_distro"] == "test")
            let download = try await cloud.request(.get, "/image/v2/images/\(id)/file", token: token)
            #expect(download.status == 200)
            let identical = download.bytes == data
            #expect(identical, "downloaded bytes differ from the upload")
            #expect(download.header("Content-MD5") == image?["checksum"]?.stringValue)
            let range = try await cloud.request(.get, "/image/v2/images/\(id)/file", token: token, headers: ["Range": "bytes=10-19"])
            #expect(range.status == 206)
            let rangeMatches = range.bytes == Array(data[10...19])
            #expect(rangeMatches)
            #expect(try await cloud.request(.put, "/image/v2/images/\(id)/file", token: token, bytes: data).status == 409)
        }
    }

    @Test func lyingAndDangerousContentIsRejected() async throws {
        try await TestCloud.with { cloud in
            let token = try await cloud.adminToken()
            let liar = try await Self.create(cloud, token, ["name": "liar", "disk_format": "raw", "container_format": "bare"])
            let rejected = try await cloud.request(.put, "/image/v2/images/\(liar)/file", token: token, bytes: try Self.qcow2())
            #expect(rejected.status == 400)
            #expect(rejected.body?["code"] == "400 Bad Request")
            let after = try await cloud.request(.get, "/image/v2/images/\(liar)", token: token).body
            #expect(after?["status"] == "queued")
            #expect(after?["size"] == nil || after?["size"] == .null)

            let backed = try await Self.create(cloud, token, ["name": "backed", "disk_format": "qcow2", "container_format": "bare"])
            let reply = try await cloud.request(.put, "/image/v2/images/\(backed)/file", token: token, bytes: try Self.qcow2(["-o", "cluster_size=65536"]))
            #expect(reply.status == 400)
            #expect(reply.text.contains("backing file"))

            let good = try await Self.create(cloud, token, ["name": "good", "disk_format": "qcow2", "container_format": "bare"])
            #expect(try await cloud.request(.put, "/image/v2/images/\(good)/file", token: token, bytes: try Self.qcow2()).status == 204)
            #expect(try await cloud.request(.get, "/image/v2/images/\(good)", token: token).body?["virtual_size"] == .int(16 << 20))
        }
    }

    @Test func quotasAnswer413AndKeepNothing() async throws {
        try await TestCloud.with(configure: { $0.imageQuotaBytes = 1000; $0.imageQuotaCount = 2 }) { cloud in
            let token = try await cloud.adminToken()
            let id = try await Self.create(cloud, token, ["name": "big", "disk_format": "raw", "container_format": "bare"])
            let reply = try await cloud.request(.put, "/image/v2/images/\(id)/file", token: token, bytes: [UInt8](repeating: 1, count: 5000))
            #expect(reply.status == 413)
            #expect(try await cloud.request(.get, "/image/v2/images/\(id)", token: token).body?["status"] == "queued")
            _ = try await Self.create(cloud, token, ["name": "second"])
            #expect(try await cloud.request(.post, "/image/v2/images", token: token, json: ["name": "third"]).status == 413)
        }
    }

    @Test func patchRulesAndReadOnlyAttributes() async throws {
        try await TestCloud.with { cloud in
            let token = try await cloud.adminToken()
            let id = try await Self.create(cloud, token, ["name": "p", "disk_format": "raw", "container_format": "bare"])
            let patch: JSONValue = [["op": "replace", "path": "/name", "value": "renamed"], ["op": "add", "path": "/hw_disk_bus", "value": "virtio"]]
            let patched = try await cloud.request(.patch, "/image/v2/images/\(id)", token: token, json: patch, headers: Self.patchType)
            #expect(patched.status == 200)
            #expect(patched.body?["name"] == "renamed")
            #expect(patched.body?["hw_disk_bus"] == "virtio")
            let readOnly: JSONValue = [["op": "replace", "path": "/status", "value": "active"]]
            #expect(try await cloud.request(.patch, "/image/v2/images/\(id)", token: token, json: readOnly, headers: Self.patchType).status == 403)
            #expect(try await cloud.request(.patch, "/image/v2/images/\(id)", token: token, json: patch).status == 415)
            #expect(try await cloud.request(.post, "/image/v2/images", token: token, json: ["name": "x", "size": 5]).status == 403)
            #expect(try await cloud.request(.post, "/image/v2/images", token: token, json: ["name": "x", "disk_format": "floppy"]).status == 400)
        }
    }

    @Test func privacyMembersAndProtection() async throws {
        try await TestCloud.with { cloud in
            let admin = try await cloud.adminToken()
            let (alice, aliceProject) = try await cloud.newProjectUser("alice")
            let (bob, _) = try await cloud.newProjectUser("bob")
            let privateID = try await Self.create(cloud, alice, ["name": "mine", "visibility": "private"])
            #expect(try await cloud.request(.get, "/image/v2/images/\(privateID)", token: bob).status == 404)
            #expect(try await cloud.request(.post, "/image/v2/images", token: alice, json: ["name": "pub", "visibility": "public"]).status == 403)

            let shared = try await Self.create(cloud, admin, ["name": "shared", "visibility": "shared", "protected": true])
            let add = try await cloud.request(.post, "/image/v2/images/\(shared)/members", token: admin, json: ["member": .string(aliceProject)])
            #expect(add.body?["status"] == "pending")
            #expect(try await cloud.request(.get, "/image/v2/images", token: alice).body?["images"]?.arrayValue?.contains { $0["id"] == .string(shared) } == false)
            let accept = try await cloud.request(.put, "/image/v2/images/\(shared)/members/\(aliceProject)", token: alice, json: ["status": "accepted"])
            #expect(accept.status == 200)
            #expect(try await cloud.request(.get, "/image/v2/images", token: alice).body?["images"]?.arrayValue?.contains { $0["id"] == .string(shared) } == true)
            #expect(try await cloud.request(.get, "/image/v2/images/\(shared)", token: bob).status == 404)
            #expect(try await cloud.request(.delete, "/image/v2/images/\(shared)", token: alice).status == 403)
            #expect(try await cloud.request(.delete, "/image/v2/images/\(shared)", token: admin).status == 403)
            let unprotect: JSONValue = [["op": "replace", "path": "/protected", "value": false]]
            #expect(try await cloud.request(.patch, "/image/v2/images/\(shared)", token: admin, json: unprotect, headers: Self.patchType).status == 200)
            #expect(try await cloud.request(.delete, "/image/v2/images/\(shared)", token: admin).status == 204)
        }
    }

    @Test func listPagesWithMarkers() async throws {
        try await TestCloud.with { cloud in
            let token = try await cloud.adminToken()
            var created: Set<String> = []
            for index in 0..<5 { created.insert(try await Self.create(cloud, token, ["name": .string("page-\(index)"), "tags": ["paged"]])) }
            var seen: [String] = []
            var next: String? = "/image/v2/images?limit=2&tag=paged"
            while let path = next {
                let reply = try await cloud.request(.get, path, token: token)
                seen += reply.body?["images"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                next = reply.body?["next"]?.stringValue.map { "/image" + $0 }
            }
            #expect(Set(seen) == created)
            #expect(seen.count == 5)
            #expect(try await cloud.request(.get, "/image/v2/images?marker=nope", token: token).status == 400)
        }
    }

    @Test func stageAndImport() async throws {
        try await TestCloud.with { cloud in
            let token = try await cloud.adminToken()
            let id = try await Self.create(cloud, token, ["name": "imported", "disk_format": "qcow2", "container_format": "bare"])
            #expect(try await cloud.request(.put, "/image/v2/images/\(id)/stage", token: token, bytes: try Self.qcow2()).status == 204)
            #expect(try await cloud.request(.get, "/image/v2/images/\(id)", token: token).body?["status"] == "uploading")
            let imported = try await cloud.request(.post, "/image/v2/images/\(id)/import", token: token, json: ["method": ["name": "glance-direct"]])
            #expect(imported.status == 202)
            let image = try await cloud.request(.get, "/image/v2/images/\(id)", token: token).body
            #expect(image?["status"] == "active")
            #expect(image?["stores"] == "file")
            let tasks = try await cloud.request(.get, "/image/v2/images/\(id)/tasks", token: token)
            #expect(tasks.status == 200)
            let task = tasks.body?["tasks"]?.arrayValue
            #expect(task?.count == 1)
            #expect(task?.first?["status"] == "success")
            #expect(task?.first?["type"] == "api_image_import")
            #expect(task?.first?["request_id"]?.stringValue == imported.header("x-openstack-request-id"))
            #expect(task?.first?["input"]?["import_req"]?["method"]?["name"] == "glance-direct")
            #expect(task?.first?.objectValue?["result"] == .null, "Glance shows result: null")
        }
    }

    /// What Tempest's Glance tests found: the draft-10 patch, paths with a trailing slash,
    /// reserved `os_glance_` names, who may set `owner`, and members (not readers) acting for a project.
    @Test func glanceRulesTempestChecks() async throws {
        try await TestCloud.with { cloud in
            let admin = try await cloud.adminToken()
            let (alice, aliceProject) = try await cloud.newProjectUser("alice")
            let (reader, readerProject) = try await cloud.newProjectUser("rita", role: "reader")
            let id = try await Self.create(cloud, alice, ["name": "a", "disk_format": "raw", "container_format": "bare"])

            let draft10: JSONValue = [["replace": "/name", "value": "renamed"], ["add": "/os_distro", "value": "debian"]]
            let patched = try await cloud.request(.patch, "/image/v2/images/\(id)", token: alice, json: draft10,
                                                  headers: ["Content-Type": "application/openstack-images-v2.0-json-patch"])
            #expect(patched.status == 200, "\(patched.text)")
            #expect(patched.body?["name"] == "renamed")
            #expect(patched.body?["os_distro"] == "debian")
            let ambiguous: JSONValue = [["replace": "/name", "add": "/name", "value": "x"]]
            #expect(try await cloud.request(.patch, "/image/v2/images/\(id)", token: alice, json: ambiguous,
                                            headers: ["Content-Type": "application/openstack-images-v2.0-json-patch"]).status == 400)

            #expect(try await cloud.request(.get, "/image/v2/images/", token: alice).status == 404)
            #expect(try await cloud.request(.delete, "/image/v2/images/", token: alice).status == 404)
            #expect(try await cloud.request(.get, "/image/", token: alice).status == 300)

            #expect(try await cloud.request(.post, "/image/v2/images", token: alice, json: ["name": "r", "os_glance_foo": "bar"]).status == 403)
            let reserved: JSONValue = [["op": "add", "path": "/os_glance_foo", "value": "bar"]]
            #expect(try await cloud.request(.patch, "/image/v2/images/\(id)", token: alice, json: reserved, headers: Self.patchType).status == 403)

            let given = try await cloud.request(.post, "/image/v2/images", token: admin, json: ["name": "given", "owner": .string(aliceProject)])
            #expect(given.status == 201)
            #expect(given.body?["owner"] == .string(aliceProject))
            #expect(try await cloud.request(.post, "/image/v2/images", token: alice, json: ["name": "x", "owner": .string(readerProject)]).status == 403)
            let giveAway: JSONValue = [["op": "replace", "path": "/owner", "value": .string(readerProject)]]
            #expect(try await cloud.request(.patch, "/image/v2/images/\(id)", token: alice, json: giveAway, headers: Self.patchType).status == 403)

            let readers = try await Self.create(cloud, admin, ["name": "theirs", "owner": .string(readerProject)])
            #expect(try await cloud.request(.get, "/image/v2/images/\(readers)", token: reader).status == 200)
            let rename: JSONValue = [["op": "replace", "path": "/name", "value": "no"]]
            #expect(try await cloud.request(.patch, "/image/v2/images/\(readers)", token: reader, json: rename, headers: Self.patchType).status == 403)
            #expect(try await cloud.request(.delete, "/image/v2/images/\(readers)", token: reader).status == 403)

            #expect(try await cloud.request(.put, "/image/v2/images/\(id)/file", token: alice, bytes: [1, 2, 3]).status == 204)
            #expect(try await cloud.request(.post, "/image/v2/images/\(id)/actions/deactivate", token: alice).status == 204)
            #expect(try await cloud.request(.get, "/image/v2/images/\(id)", token: alice).body?["status"] == "deactivated")
            #expect(try await cloud.request(.post, "/image/v2/images/\(id)/actions/reactivate", token: alice).status == 204)
        }
    }
}
