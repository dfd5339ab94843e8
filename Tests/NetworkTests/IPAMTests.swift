import Foundation
import NimbusCore
import NimbusTesting
import Testing

/// The IPAM never hands out an address twice, also to concurrent requests, and says so when full.
@Suite struct IPAMTests {
    @Test func concurrentAllocationExhaustsWithoutDuplicates() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let project = try await session.cloud.identity.projectID(named: "demo") ?? ""
            _ = try await f.put("/quotas/\(project)", ["quota": ["port": -1]], token: f.admin)
            // /24 without DHCP: 253 pool addresses (gateway .1 is outside the pool).
            let (network, _) = try await f.networkWithSubnet("full", cidr: "192.168.60.0/24", dhcp: false)
            let results = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        var mine: [String] = []
                        while true {
                            let reply = try await f.post("/ports", ["port": ["network_id": .string(network)]])
                            if reply.status != 201 {
                                if reply.body?["NeutronError"]?["type"] != "IpAddressGenerationFailure" {
                                    throw Stopped(description: "unexpected \(reply.status) \(reply.text)")
                                }
                                return mine
                            }
                            mine.append(reply.body?["port"]?["fixed_ips"]?.arrayValue?.first?["ip_address"]?.stringValue ?? "")
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(results.count == 253)
            #expect(Set(results).count == 253)
            #expect(!results.contains("192.168.60.1") && !results.contains("192.168.60.0") && !results.contains("192.168.60.255"))
            let refused = try await f.post("/ports", ["port": ["network_id": .string(network)]])
            #expect(NetworkFixture.fault(refused) == "409 IpAddressGenerationFailure")
        }
    }
}
