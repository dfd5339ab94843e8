import Foundation
import NimbusCore
import NimbusTesting
import Testing

/// Tokens and short request helpers for the Neutron API under `/network/v2.0`.
struct NetworkFixture: Sendable {
    static let prefix = "/network/v2.0"
    let session: TestSession
    let admin: String
    let demo: String

    static func make(_ session: TestSession) async throws -> NetworkFixture {
        let admin = try await session.adminToken()
        let demo = try await session.token(user: "demo", password: session.passwords["demo"] ?? "", project: "demo")
        return NetworkFixture(session: session, admin: admin, demo: demo)
    }

    func get(_ path: String, token: String? = nil) async throws -> TestReply {
        try await session.request(.get, Self.prefix + path, token: token ?? demo)
    }

    func post(_ path: String, _ body: JSONValue, token: String? = nil) async throws -> TestReply {
        try await session.request(.post, Self.prefix + path, token: token ?? demo, json: body)
    }

    func put(_ path: String, _ body: JSONValue, token: String? = nil) async throws -> TestReply {
        try await session.request(.put, Self.prefix + path, token: token ?? demo, json: body)
    }

    func delete(_ path: String, token: String? = nil) async throws -> TestReply {
        try await session.request(.delete, Self.prefix + path, token: token ?? demo)
    }

    /// Creates a resource and returns its id; anything but 201 stops the test.
    func create(_ collection: String, _ key: String, _ body: JSONValue, token: String? = nil) async throws -> String {
        let reply = try await post("/" + collection, [key: body], token: token)
        guard reply.status == 201, let id = reply.body?[key]?["id"]?.stringValue else {
            throw Stopped(description: "create \(key) failed: \(reply.status) \(reply.text)")
        }
        return id
    }

    /// A network with one IPv4 subnet. - Returns: (network, subnet).
    func networkWithSubnet(_ name: String, cidr: String, dhcp: Bool = true, token: String? = nil) async throws -> (String, String) {
        let network = try await create("networks", "network", ["name": .string(name)], token: token)
        let subnet = try await create("subnets", "subnet", ["network_id": .string(network), "ip_version": 4, "cidr": .string(cidr),
                                                             "enable_dhcp": .bool(dhcp)], token: token)
        return (network, subnet)
    }

    /// The fault's type and status, for asserting Neutron's answers.
    static func fault(_ reply: TestReply) -> String { "\(reply.status) \(reply.body?["NeutronError"]?["type"]?.stringValue ?? reply.text)" }
}

struct Stopped: Error, CustomStringConvertible {
    let description: String
}
