import Dataplane
import Foundation
import Logging
import NimbusCore
@testable import NimbusNetwork
import NimbusTesting
import Store
import Testing

/// What agents get: compute hosts their ports with resolved rules, the network node DHCP and routers.
@Suite struct HostStateTests {
    @Test func computeHostAndNetworkNodeStates() async throws {
        try await TestCloud.with { session in
            let network = session.cloud.network
            let demo = try await session.cloud.identity.projectID(named: "demo") ?? ""
            try await network.registerNetworkHost(host: "node", tunnelAddress: "192.0.2.1", networkNode: true)
            try await network.registerNetworkHost(host: "c1", tunnelAddress: "192.0.2.11", networkNode: false)
            try await network.registerNetworkHost(host: "c2", tunnelAddress: "192.0.2.12", networkNode: false)
            let a = try await network.allocateInstancePorts(project: demo, instance: "vm-a", requests: [.auto])
            let b = try await network.allocateInstancePorts(project: demo, instance: "vm-b", requests: [.auto])
            try await network.bindInstancePorts(instance: "vm-a", host: "c1")
            try await network.bindInstancePorts(instance: "vm-b", host: "c2")
            let addressA = a.first?["fixed_ips"]?.arrayValue?.first?["ip_address"]?.stringValue ?? ""
            let addressB = b.first?["fixed_ips"]?.arrayValue?.first?["ip_address"]?.stringValue ?? ""
            #expect(addressA.hasPrefix("10.0.0.") && addressB.hasPrefix("10.0.0.") && addressA != addressB)

            let c1 = try await network.hostNetworkState(host: "c1", after: nil, wait: .seconds(1))
            #expect(c1.ports.map(\.deviceID) == ["vm-a"])
            #expect(c1.dhcp.isEmpty && c1.routers.isEmpty)
            let privateID = a.first?["network_id"]?.stringValue ?? ""
            let wiring = c1.networks.first { $0.id == privateID }
            #expect(wiring?.networkType == "vxlan" && wiring?.mtu == 1450)
            #expect(wiring?.peers == ["192.0.2.1", "192.0.2.12"])
            // The default group's ingress rules admit the group's members: both VMs and nothing else.
            let ingressV4 = c1.ports.first?.ingress.first { $0.ethertype == "IPv4" }
            #expect(ingressV4?.remoteCIDRs == ["\(addressA)/32", "\(addressB)/32"].sorted())
            #expect(c1.ports.first?.egress.contains { $0.ethertype == "IPv4" && $0.remoteCIDRs == nil } == true)

            let node = try await network.hostNetworkState(host: "node", after: nil, wait: .seconds(1))
            // DHCP for the seeded `private` and `shared` networks; the VMs' leases are private's.
            #expect(node.dhcp.count == 2)
            let privateDHCP = node.dhcp.first { $0.networkID == privateID }
            #expect(Set(privateDHCP?.hosts.map(\.address) ?? []) == [addressA, addressB])
            #expect(privateDHCP?.hosts.first { $0.address == addressA }?.hostname == "host-" + addressA.replacingOccurrences(of: ".", with: "-"))
            #expect(node.routers.count == 1)
            #expect(node.routers.first?.gateway?.nextHop == "172.24.4.1")
            #expect(node.routers.first?.interfaces.first?.addresses.first?.address == "10.0.0.1")
            let external = node.networks.first { $0.networkType == "flat" }
            #expect(external?.hostAddresses == ["172.24.4.1/24"])
            #expect(try await network.instance(network: privateID, address: addressA) == "vm-a")

            let addresses = try await network.instanceAddresses(["vm-a"])
            #expect(addresses["vm-a"]?.map(\.type) == ["fixed"])
            try await network.releaseInstancePorts(instance: "vm-a")
            #expect(try await network.instanceAddresses(["vm-a"])["vm-a"] == nil)
        }
    }

    @Test func longPollWaitsForAChange() async throws {
        try await TestCloud.with { session in
            let network = session.cloud.network
            let first = try await network.hostNetworkState(host: "c1", after: nil, wait: .seconds(5))
            // Nothing changes: the poll waits the whole (short) timeout and keeps the generation.
            let start = ContinuousClock.now
            let idle = try await network.hostNetworkState(host: "c1", after: first.generation, wait: .milliseconds(300))
            #expect(ContinuousClock.now - start >= .milliseconds(250))
            #expect(idle.generation == first.generation)
            // A write wakes the waiter at once with a newer generation.
            async let woken = network.hostNetworkState(host: "c1", after: first.generation, wait: .seconds(10))
            try await Task.sleep(for: .milliseconds(100))
            let began = ContinuousClock.now
            try await network.registerNetworkHost(host: "c1", tunnelAddress: "192.0.2.11", networkNode: false)
            let state = try await woken
            #expect(state.generation > first.generation)
            #expect(ContinuousClock.now - began < .seconds(5))
            // An old generation answers at once.
            let quick = ContinuousClock.now
            _ = try await network.hostNetworkState(host: "c1", after: first.generation, wait: .seconds(10))
            #expect(ContinuousClock.now - quick < .seconds(2))
        }
    }

    @Test func floatingIPNeedsARouterAndShowsAsAddress() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let network = session.cloud.network
            let demo = try await session.cloud.identity.projectID(named: "demo") ?? ""
            let ports = try await network.allocateInstancePorts(project: demo, instance: "vm-f", requests: [.auto])
            let portID = ports.first?["id"]?.stringValue ?? ""
            let publicID = try await f.get("/networks?name=public").body?["networks"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            let fip = try await f.post("/floatingips", ["floatingip": ["floating_network_id": .string(publicID), "port_id": .string(portID)]])
            #expect(fip.status == 201)
            #expect(fip.body?["floatingip"]?["router_id"] != .null)
            #expect(fip.body?["floatingip"]?["status"] == "ACTIVE")
            let addresses = try await network.instanceAddresses(["vm-f"])["vm-f"] ?? []
            #expect(addresses.map(\.type) == ["fixed", "floating"])
            // A network the router does not reach: 404 as Neutron.
            let (isolated, _) = try await f.networkWithSubnet("isolated", cidr: "192.168.70.0/24")
            let lonely = try await f.post("/ports", ["port": ["network_id": .string(isolated)]])
            let lonelyID = lonely.body?["port"]?["id"]?.stringValue ?? ""
            let refused = try await f.post("/floatingips", ["floatingip": ["floating_network_id": .string(publicID), "port_id": .string(lonelyID)]])
            #expect(NetworkFixture.fault(refused) == "404 ExternalGatewayForFloatingIPNotFound")
            // The router cannot go while it has interfaces.
            let router = try await f.get("/routers").body?["routers"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            #expect(NetworkFixture.fault(try await f.delete("/routers/\(router)")) == "409 RouterInUse")
        }
    }
}

/// `nimbus up` lays out DevStack's networks once: a start that stopped half-way finishes the
/// layout, and a finished one never brings back what an operator deleted.
@Suite struct NetworkSeedTests {
    @Test func seedingResumesOnceAndNeverResurrects() async throws {
        try await TestCloud.with { session in
            let network = session.cloud.network
            let admin = try await session.cloud.identity.projectID(named: "admin") ?? ""
            let demo = try await session.cloud.identity.projectID(named: "demo") ?? ""
            let f = try await NetworkFixture.make(session)
            func names() async throws -> [String] {
                try await f.get("/networks", token: f.admin).body?["networks"]?.arrayValue?.compactMap { $0["name"]?.stringValue }.sorted() ?? []
            }
            func sharedID() async throws -> String {
                try await f.get("/networks?name=shared", token: f.admin).body?["networks"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            }
            #expect(try await names() == ["private", "public", "shared"])

            // A start that stopped before `shared` and before recording the layout as done.
            #expect(try await f.delete("/networks/\(try await sharedID())", token: f.admin).status == 204)
            try await session.cloud.database.transaction { db in
                try await db.raw("DELETE FROM nimbus_migrations WHERE id = 'network-seed-devstack-layout'").run()
            }
            try await network.seedDefaults(adminProject: admin, demoProject: demo)
            #expect(try await names() == ["private", "public", "shared"], "finished, nothing doubled")
            let routers = try await f.get("/routers").body?["routers"]?.arrayValue ?? []
            #expect(routers.count == 1)
            let legs = try await f.get("/ports?device_owner=network:router_interface", token: f.admin).body?["ports"]?.arrayValue ?? []
            #expect(legs.count == 1, "router1 keeps one leg on private")

            // Done now: what the operator deletes stays deleted.
            #expect(try await f.delete("/networks/\(try await sharedID())", token: f.admin).status == 204)
            try await network.seedDefaults(adminProject: admin, demoProject: demo)
            #expect(try await names() == ["private", "public"])
        }
    }
}

/// Replicas of the control plane on one PostgreSQL database: an agent long-polling one replica
/// wakes for a write made through another (NOTIFY/LISTEN), not at the end of its poll.
@Suite struct ReplicaAnnouncementTests {
    @Test(arguments: TestDatabase.engines.filter { $0 == .postgres })
    func aWriteThroughOneReplicaWakesTheOthersAgents(engine: DatabaseEngine) async throws {
        try await TestDatabase.with(engine, migrations: NetworkSchema.migrations) { database in
            var logger = Logger(label: "test")
            logger.logLevel = .warning
            let polled = NetworkService(database: database, logger: logger)
            let written = NetworkService(database: database, logger: logger)
            try await polled.registerNetworkHost(host: "node", tunnelAddress: "192.0.2.1", networkNode: true)
            let before = try await polled.hostNetworkState(host: "node", after: nil, wait: .seconds(1))
            async let woken = polled.hostNetworkState(host: "node", after: before.generation, wait: .seconds(60))
            // The listening connection is opened in the background; give it a moment.
            try await Task.sleep(for: .seconds(2))
            _ = try await written.createNetwork(["network": ["name": "from-the-other-replica"]],
                                                caller: NetworkService.seedCaller("p", admin: true))
            let after = try await woken
            #expect(after.generation > before.generation, "woken by the announcement, not by the end of the poll")
        }
    }
}

@Suite struct WorldCacheTests {
    final class Reads: @unchecked Sendable {
        let lock = NSLock()
        var count = 0
        var failNext = false
        func read() async throws -> NetworkService.World {
            let fail = lock.withLock { () -> Bool in
                count += 1
                defer { failNext = false }
                return failNext
            }
            try await Task.sleep(for: .milliseconds(50))
            if fail { throw Stopped(description: "read failed") }
            return NetworkService.World()
        }
    }

    @Test func oneReadPerGenerationAndFailuresAreForgotten() async throws {
        let cache = WorldCache(), reads = Reads()
        // Twenty agents woken by one change share one read.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 { group.addTask { _ = try await cache.world(at: 7) { try await reads.read() } } }
            try await group.waitForAll()
        }
        #expect(reads.count == 1)
        _ = try await cache.world(at: 8) { try await reads.read() }
        #expect(reads.count == 2)
        reads.failNext = true
        await #expect(throws: Stopped.self) { _ = try await cache.world(at: 9) { try await reads.read() } }
        _ = try await cache.world(at: 9) { try await reads.read() }
        #expect(reads.count == 4, "the failed read is not served again")
    }
}
