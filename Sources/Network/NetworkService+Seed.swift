import Foundation
import NimbusCore
import SQLKit
import Store

/// The networks a fresh cloud starts with, as DevStack lays them out.
public struct NetworkSeed: Sendable {
    public var publicCIDR = "172.24.4.0/24"
    public var publicGateway = "172.24.4.1"
    public var publicPool = ("172.24.4.2", "172.24.4.254")
    public var privateCIDR = "10.0.0.0/26"
    public var privateGateway = "10.0.0.1"
    /// A network every project may use (admin's own servers land there with `auto`).
    public var sharedCIDR = "192.168.233.0/24"

    public init() {}
}

extension NetworkService {
    /// Creates `public` (external, flat), `private` (the demo project's VXLAN network), `shared`
    /// (admin's, shared with all) and `router1` joining public and private, unless they exist:
    /// safe on every start.
    public func seedDefaults(adminProject: String, demoProject: String, configuration seed: NetworkSeed = .init()) async throws {
        let existing = try await database.read { db in try await NetworkSchema.networks.list(on: db).compactMap { $0.string("name") } }
        guard !existing.contains("public") && !existing.contains("private") else { return }
        let admin = Self.seedCaller(adminProject, admin: true)
        let demo = Self.seedCaller(demoProject, admin: false)
        let publicNet = try await createNetwork(["network": [
            "name": "public", "router:external": true, "provider:network_type": "flat", "provider:physical_network": "public",
        ]], caller: admin)
        let publicID = publicNet.string("id") ?? ""
        _ = try await createSubnet(["subnet": [
            "name": "public-subnet", "network_id": .string(publicID), "ip_version": 4, "cidr": .string(seed.publicCIDR),
            "gateway_ip": .string(seed.publicGateway), "enable_dhcp": false,
            "allocation_pools": [["start": .string(seed.publicPool.0), "end": .string(seed.publicPool.1)]],
        ]], caller: admin)
        let privateNet = try await createNetwork(["network": ["name": "private"]], caller: demo)
        let privateSubnet = try await createSubnet(["subnet": [
            "name": "private-subnet", "network_id": privateNet["id"] ?? .null, "ip_version": 4, "cidr": .string(seed.privateCIDR),
            "gateway_ip": .string(seed.privateGateway),
        ]], caller: demo)
        let sharedNet = try await createNetwork(["network": ["name": "shared", "shared": true]], caller: admin)
        _ = try await createSubnet(["subnet": [
            "name": "shared-subnet", "network_id": sharedNet["id"] ?? .null, "ip_version": 4, "cidr": .string(seed.sharedCIDR),
        ]], caller: admin)
        let router = try await createRouter(["router": ["name": "router1", "external_gateway_info": ["network_id": .string(publicID)]]], caller: demo)
        _ = try await addRouterInterface(router.string("id") ?? "", ["subnet_id": privateSubnet["id"] ?? .null], caller: demo)
    }

    /// A stand-in caller for the bootstrap writes, acting as the project's admin or member.
    static func seedCaller(_ project: String, admin: Bool) -> AuthContext {
        let reference = AuthContext.Reference(id: project, name: project)
        return AuthContext(user: .init(id: "nimbus-seed", name: "nimbus-seed"), userDomain: .init(id: "default", name: "Default"),
                           scope: .project(reference, domain: .init(id: "default", name: "Default")),
                           roles: [.init(id: "r", name: admin ? "admin" : "member")], methods: [], auditIDs: [],
                           issuedAt: .distantPast, expiresAt: .distantFuture, applicationCredentialID: nil, token: "")
    }
}
