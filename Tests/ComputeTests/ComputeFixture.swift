import Foundation
import NimbusCore
import NimbusTesting
import Testing

/// A wait that ran out or a request refused that the test builds on: it stops there, since what
/// follows would only report noise.
struct Stopped: Error, CustomStringConvertible {
    let description: String
}

/// What compute tests share: admin and demo tokens, a bootable public image, requests at
/// microversion 2.79 and polling for the compute loops' asynchronous work.
struct ComputeFixture: Sendable {
    static let prefix = "/compute/v2.1"
    /// Long enough for a loaded 2-core machine, short enough to keep a broken test quick.
    static let deadline: Duration = .seconds(15)

    let session: TestSession
    let admin: String
    let demo: String
    let imageID: String

    /// Tokens and an image, and waits until every local host has registered: a server asked for
    /// before its hosts exist would rightly find no valid host.
    static func make(_ session: TestSession) async throws -> ComputeFixture {
        let admin = try await session.adminToken()
        let demo = try await session.token(user: "demo", password: session.passwords["demo"] ?? "", project: "demo")
        let created = try await session.request(.post, "/image/v2/images", token: admin, json: [
            "name": "raw-guest", "disk_format": "raw", "container_format": "bare", "visibility": "public",
        ])
        #expect(created.status == 201, "\(created.text)")
        let imageID = created.body?["id"]?.stringValue ?? ""
        let data = (0..<8192).map { UInt8($0 % 251) }
        let upload = try await session.request(.put, "/image/v2/images/\(imageID)/file", token: admin, bytes: data,
                                                headers: ["Content-Type": "application/octet-stream"])
        #expect(upload.status == 204, "\(upload.text)")
        let fixture = ComputeFixture(session: session, admin: admin, demo: demo, imageID: imageID)
        let hosts = session.cloud.configuration.localHosts?.count ?? 0
        try await fixture.waitUntil("\(hosts) compute hosts registered and up") {
            let list = try await fixture.get("/os-hypervisors", token: admin).body?["hypervisors"]?.arrayValue ?? []
            return list.count == hosts && list.allSatisfy { $0["state"] == "up" }
        }
        return fixture
    }

    // MARK: - Requests (2.79 unless told otherwise; the demo user unless a token is given)

    func headers(_ version: String?) -> [String: String] {
        version.map { ["OpenStack-API-Version": "compute \($0)"] } ?? [:]
    }

    func get(_ path: String, token: String? = nil, version: String? = "2.79") async throws -> TestReply {
        try await session.request(.get, Self.prefix + path, token: token ?? demo, headers: headers(version))
    }

    func post(_ path: String, token: String? = nil, json: JSONValue? = nil, raw: String? = nil,
              version: String? = "2.79") async throws -> TestReply {
        try await session.request(.post, Self.prefix + path, token: token ?? demo, json: json, raw: raw, headers: headers(version))
    }

    func put(_ path: String, token: String? = nil, json: JSONValue, version: String? = "2.79") async throws -> TestReply {
        try await session.request(.put, Self.prefix + path, token: token ?? demo, json: json, headers: headers(version))
    }

    func delete(_ path: String, token: String? = nil, version: String? = "2.79") async throws -> TestReply {
        try await session.request(.delete, Self.prefix + path, token: token ?? demo, headers: headers(version))
    }

    func action(_ id: String, _ body: JSONValue, token: String? = nil) async throws -> TestReply {
        try await post("/servers/\(id)/action", token: token, json: body)
    }

    // MARK: - Servers

    /// A boot request body: m1.nano, the fixture's image, no networks, plus `extra` fields.
    func bootBody(_ name: String, flavor: String = "42", extra: [String: JSONValue] = [:], hints: JSONValue? = nil) -> JSONValue {
        var server: [String: JSONValue] = ["name": .string(name), "flavorRef": .string(flavor), "imageRef": .string(imageID), "networks": "none"]
        server.merge(extra) { _, new in new }
        var body: [String: JSONValue] = ["server": .object(server)]
        if let hints { body["os:scheduler_hints"] = hints }
        return .object(body)
    }

    func boot(_ name: String, token: String? = nil, flavor: String = "42", extra: [String: JSONValue] = [:],
              hints: JSONValue? = nil) async throws -> TestReply {
        try await post("/servers", token: token, json: bootBody(name, flavor: flavor, extra: extra, hints: hints))
    }

    /// Boots one server and returns its id; a refusal fails the test at once.
    func bootID(_ name: String, token: String? = nil, hints: JSONValue? = nil) async throws -> String {
        let reply = try await boot(name, token: token, hints: hints)
        guard reply.status == 202, let id = reply.body?["server"]?["id"]?.stringValue else {
            throw Stopped(description: "boot of \(name) refused: \(reply.status) \(reply.text)")
        }
        return id
    }

    func server(_ id: String, token: String? = nil) async throws -> JSONValue? {
        try await get("/servers/\(id)", token: token).body?["server"]
    }

    /// Polls the server until its status is `status` with no task in flight. - Returns: that view.
    @discardableResult
    func waitForStatus(_ id: String, _ status: String, token: String? = nil) async throws -> JSONValue {
        var last: JSONValue?
        let settled = try await poll {
            last = try await server(id, token: token)
            return last?["status"]?.stringValue == status && last?["OS-EXT-STS:task_state"] == .null
        }
        guard settled, let last else {
            throw Stopped(description: "server \(id) did not reach \(status); last seen: \(last?.serialized() ?? "nothing")")
        }
        return last
    }

    /// Polls `condition` until it holds; throws when it never does.
    func waitUntil(_ what: String, _ condition: @Sendable () async throws -> Bool) async throws {
        guard try await poll(condition) else { throw Stopped(description: "timed out waiting: \(what)") }
    }

    private func poll(_ condition: () async throws -> Bool) async throws -> Bool {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: Self.deadline)
        while true {
            if try await condition() { return true }
            if clock.now >= end { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The admin view's host of a server (host names are admin-only in Nova).
    func host(of id: String) async throws -> String? {
        try await server(id, token: admin)?["OS-EXT-SRV-ATTR:host"]?.stringValue
    }

    /// Servers the token's project has, all states.
    func serverCount(token: String? = nil) async throws -> Int {
        try await get("/servers", token: token).body?["servers"]?.arrayValue?.count ?? -1
    }

    /// The events of the server's action named `name`, as an admin sees them (with host and traceback).
    func events(_ id: String, action name: String) async throws -> [JSONValue] {
        let actions = try await get("/servers/\(id)/os-instance-actions", token: admin).body?["instanceActions"]?.arrayValue ?? []
        guard let requestID = actions.first(where: { $0["action"]?.stringValue == name })?["request_id"]?.stringValue else { return [] }
        let action = try await get("/servers/\(id)/os-instance-actions/\(requestID)", token: admin).body?["instanceAction"]
        return action?["events"]?.arrayValue ?? []
    }

    /// The server's Placement allocations, provider → class → amount; nil when it holds none.
    func allocations(_ id: String) async throws -> [String: [String: Int64]]? {
        try await session.cloud.placement.allocations(consumer: id)?.allocations
    }

    func waitForNoAllocations(_ id: String) async throws {
        try await waitUntil("allocations of \(id) released") { try await allocations(id) == nil }
    }
}
