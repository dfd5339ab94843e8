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
    /// (admin's, shared with all) and `router1` joining public and private, once. Each piece is
    /// looked up before it is made, so a start that crashed half-way through finishes the layout
    /// on the next start; once complete it is recorded and never made again (an operator may
    /// delete any of it).
    public func seedDefaults(adminProject: String, demoProject: String, configuration seed: NetworkSeed = .init()) async throws {
        try await Migrator(database: database).runOnce("network-seed-devstack-layout") {
            try await seedLayout(adminProject: adminProject, demoProject: demoProject, seed: seed)
        }
    }

    private func seedLayout(adminProject: String, demoProject: String, seed: NetworkSeed) async throws {
        let admin = Self.seedCaller(adminProject, admin: true)
        let demo = Self.seedCaller(demoProject, admin: false)
        let publicID = try await seededNetwork("public", project: adminProject, caller: admin, extra: [
            "router:external": true, "provider:network_type": "flat", "provider:physical_network": "public",
        ])
        _ = try await seededSubnet(network: publicID, caller: admin, [
            "name": "public-subnet", "ip_version": 4, "cidr": .string(seed.publicCIDR),
            "gateway_ip": .string(seed.publicGateway), "enable_dhcp": false,
            "allocation_pools": [["start": .string(seed.publicPool.0), "end": .string(seed.publicPool.1)]],
        ])
        let privateID = try await seededNetwork("private", project: demoProject, caller: demo)
        let privateSubnet = try await seededSubnet(network: privateID, caller: demo, [
            "name": "private-subnet", "ip_version": 4, "cidr": .string(seed.privateCIDR), "gateway_ip": .string(seed.privateGateway),
        ])
        let sharedID = try await seededNetwork("shared", project: adminProject, caller: admin, extra: ["shared": true])
        _ = try await seededSubnet(network: sharedID, caller: admin, [
            "name": "shared-subnet", "ip_version": 4, "cidr": .string(seed.sharedCIDR),
        ])
        let router = try await database.read { db in
            try await NetworkSchema.routers.list([.init("name", .equal, "router1"), .init("project_id", .equal, .string(demoProject))], on: db).first
        }
        let routerID: String
        if let existing = router?.string("id") {
            routerID = existing
        } else {
            routerID = try await createRouter(
                ["router": ["name": "router1", "external_gateway_info": ["network_id": .string(publicID)]]], caller: demo).string("id") ?? ""
        }
        let attached = try await database.read { db in
            try await NetworkSchema.ports.list([.init("device_id", .equal, .string(routerID)), .init("network_id", .equal, .string(privateID))], on: db)
        }
        if attached.isEmpty {
            _ = try await addRouterInterface(routerID, ["subnet_id": .string(privateSubnet)], caller: demo)
        }
    }

    /// The project's network of that name, made if missing. - Returns: its id.
    private func seededNetwork(_ name: String, project: String, caller: AuthContext, extra: [String: JSONValue] = [:]) async throws -> String {
        let found = try await database.read { db in
            try await NetworkSchema.networks.list([.init("name", .equal, .string(name)), .init("project_id", .equal, .string(project))], on: db).first
        }
        if let id = found?.string("id") { return id }
        var body = extra
        body["name"] = .string(name)
        return try await createNetwork(["network": .object(body)], caller: caller).string("id") ?? ""
    }

    /// The network's subnet of that name, made if missing. - Returns: its id.
    private func seededSubnet(network: String, caller: AuthContext, _ fields: [String: JSONValue]) async throws -> String {
        let found = try await database.read { db in
            try await NetworkSchema.subnets.list([.init("network_id", .equal, .string(network)), .init("name", .equal, fields["name"] ?? .null)], on: db).first
        }
        if let id = found?.string("id") { return id }
        var body = fields
        body["network_id"] = .string(network)
        return try await createSubnet(["subnet": .object(body)], caller: caller).string("id") ?? ""
    }

    /// A stand-in caller for the bootstrap writes, acting as the project's admin or member.
    static func seedCaller(_ project: String, admin: Bool) -> AuthContext {
        .internalCaller("nimbus-seed", scope: AuthContext.defaultDomainProject(project), role: admin ? "admin" : "member")
    }
}
