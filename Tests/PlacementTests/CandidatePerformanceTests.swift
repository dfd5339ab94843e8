import Foundation
import NimbusCore
import NimbusTesting
@testable import Placement
import Store
import Testing

/// `GET /allocation_candidates` over 1,000 providers: checks the answers are complete and prints
/// p50/p99 for the in-process call and for the HTTP route (router in-process, no socket).
/// Timing is a figure for BENCHMARKS.md, never an assertion: a loaded machine must not fail CI.
@Suite(.serialized) struct CandidatePerformanceTests {
    static let providers = 1000

    static func seed(_ placement: PlacementService) async throws {
        let aggregates = (0..<10).map { _ in Identifier.uuid() }
        for index in 0..<providers {
            let uuid = Identifier.uuid()
            try await placement.ensureProvider(
                uuid: uuid, name: "compute-\(index)",
                inventories: ["VCPU": Inventory(total: 32, allocationRatio: 4), "MEMORY_MB": Inventory(total: 131_072, reserved: 2048),
                              "DISK_GB": Inventory(total: 2000)],
                traits: index % 3 == 0 ? ["COMPUTE_NODE", "HW_CPU_X86_AVX2"] : ["COMPUTE_NODE"])
            try await placement.setProviderAggregates(uuid, [aggregates[index % 10]], generation: nil)
            if index % 2 == 0 {
                try await placement.claim(consumer: Identifier.uuid(), project: "p", user: "u",
                                          allocations: [uuid: ["VCPU": 4, "MEMORY_MB": 8192, "DISK_GB": 40]], consumerGeneration: nil)
            }
        }
    }

    static func percentiles(_ samples: [Duration]) -> (p50: Double, p99: Double) {
        let sorted = samples.map { Double($0.components.attoseconds) / 1e15 + Double($0.components.seconds) * 1000 }.sorted()
        return (sorted[sorted.count / 2], sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))])
    }

    static func measure(_ runs: Int, _ body: () async throws -> Void) async throws -> (p50: Double, p99: Double) {
        for _ in 0..<10 { try await body() }
        var samples: [Duration] = []
        let clock = ContinuousClock()
        for _ in 0..<runs { samples.append(try await clock.measure { try await body() }) }
        return percentiles(samples)
    }

    @Test(arguments: TestDatabase.engines)
    func candidatesOverAThousandProviders(engine: DatabaseEngine) async throws {
        try await TestCloud.with(engine, configure: { $0.localHosts = nil }) { session in
            let placement = session.cloud.placement
            try await Self.seed(placement)
            let token = try await session.adminToken()
            let request = CandidateRequest(resources: ["VCPU": 1, "MEMORY_MB": 512])
            #expect(try await placement.allocationCandidates(request).count == Self.providers)
            let direct = try await Self.measure(200) { _ = try await placement.allocationCandidates(request) }
            let rendering = try await Self.measure(200) {
                _ = CandidateWire.render(try await placement.allocationCandidates(request), requested: request.resources, Microversion(39))
            }
            // Over the router (token check, negotiation, query parsing included). The test client
            // parses every reply into `JSONValue`, which costs more than the server in debug
            // builds, so this one asks for a page; the full answer is measured over a socket.
            let headers = ["OpenStack-API-Version": "placement 1.39"]
            let path = "/placement/allocation_candidates?resources=VCPU:1,MEMORY_MB:512"
            let full = try await session.request(.get, path, token: token, headers: headers)
            #expect(full.body?["allocation_requests"]?.arrayValue?.count == Self.providers)
            let http = try await Self.measure(200) {
                _ = try await session.request(.get, path + "&required=HW_CPU_X86_AVX2&limit=50", token: token, headers: headers)
            }
            print(String(format: "placement candidates %@ (1000 providers, all fit): in-process p50 %.2f ms p99 %.2f ms; with JSON p50 %.2f p99 %.2f; router limit=50+trait p50 %.2f p99 %.2f",
                         engine.rawValue, direct.p50, direct.p99, rendering.p50, rendering.p99, http.p50, http.p99))
        }
    }
}
