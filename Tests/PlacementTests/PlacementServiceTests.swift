import Logging
import NimbusCore
import NimbusTesting
@testable import Placement
import SQLKit
import Store
import Testing

/// The in-process API the scheduler uses, on SQLite and PostgreSQL.
@Suite struct PlacementServiceTests {
    static func with(_ engine: DatabaseEngine, _ body: @Sendable (PlacementService) async throws -> Void) async throws {
        try await TestDatabase.with(engine, migrations: PlacementSchema.migrations) { database in
            try await body(PlacementService(database: database, logger: Logger(label: "test")))
        }
    }

    static let host: [String: Inventory] = [
        "VCPU": Inventory(total: 10), "MEMORY_MB": Inventory(total: 8192, reserved: 512), "DISK_GB": Inventory(total: 100),
    ]

    @Test(arguments: TestDatabase.engines)
    func concurrentClaimsNeverOvercommit(engine: DatabaseEngine) async throws {
        try await Self.with(engine) { placement in
            let node = Identifier.uuid()
            try await placement.ensureProvider(uuid: node, name: "node", inventories: Self.host)
            // 20 claims of 1 VCPU race for 10: exactly 10 must win, whatever the interleaving.
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        do {
                            try await placement.claim(consumer: Identifier.uuid(), project: "p", user: "u",
                                                      allocations: [node: ["VCPU": 1, "MEMORY_MB": 64]], consumerGeneration: nil)
                            return true
                        } catch let error as NimbusError where error.kind == .conflict {
                            #expect(error.message.contains("would exceed the capacity"))
                            return false
                        }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 10)
            let (generation, usages) = try await placement.usages(of: node)
            #expect(usages["VCPU"] == 10)
            #expect(usages["MEMORY_MB"] == 640)
            #expect(generation == 11, "one move for the inventory, one per successful claim")
            #expect(try await placement.allocationCandidates(CandidateRequest(resources: ["VCPU": 1])).isEmpty)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func consumerGenerationsGuardReplacement(engine: DatabaseEngine) async throws {
        try await Self.with(engine) { placement in
            let (a, b) = (Identifier.uuid(), Identifier.uuid())
            try await placement.ensureProvider(uuid: a, name: "a", inventories: Self.host)
            try await placement.ensureProvider(uuid: b, name: "b", inventories: Self.host)
            let vm = Identifier.uuid()
            #expect(try await placement.claim(consumer: vm, project: "p", user: "u", allocations: [a: ["VCPU": 4]], consumerGeneration: nil) == 1)
            // A second "new consumer" claim lost the race: retryable conflict.
            let stale = await #expect(throws: NimbusError.self) {
                try await placement.claim(consumer: vm, project: "p", user: "u", allocations: [a: ["VCPU": 1]], consumerGeneration: nil)
            }
            #expect(stale?.isPlacementConcurrentUpdate == true)
            #expect(stale?.message == "consumer generation conflict - expected null but got 1")
            // Moving the consumer replaces its allocations: usage leaves a and lands on b.
            #expect(try await placement.claim(consumer: vm, project: "p", user: "u", allocations: [b: ["VCPU": 6]], consumerGeneration: 1) == 2)
            #expect(try await placement.usages(of: a).usages["VCPU"] == 0)
            #expect(try await placement.usages(of: b).usages["VCPU"] == 6)
            let held = try await placement.allocations(consumer: vm)
            #expect(held?.allocations == [b: ["VCPU": 6]])
            #expect(held?.generation == 2)
            #expect(try await placement.releaseAllocations(consumer: vm))
            #expect(try await !placement.releaseAllocations(consumer: vm))
            #expect(try await placement.usages(of: b).usages["VCPU"] == 0)
            #expect(try await placement.allocations(consumer: vm) == nil)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func multiConsumerWritesAreAllOrNothing(engine: DatabaseEngine) async throws {
        try await Self.with(engine) { placement in
            let node = Identifier.uuid()
            try await placement.ensureProvider(uuid: node, name: "node", inventories: Self.host)
            let (one, two) = (Identifier.uuid(), Identifier.uuid())
            let writes = [
                AllocationWrite(consumer: one, projectID: "p", userID: "u", allocations: [node: ["VCPU": 6]], generation: .new),
                AllocationWrite(consumer: two, projectID: "p", userID: "u", allocations: [node: ["VCPU": 6]], generation: .new),
            ]
            await #expect(throws: NimbusError.self) { try await placement.writeAllocations(writes) }
            #expect(try await placement.usages(of: node).usages["VCPU"] == 0)
            #expect(try await placement.allocations(consumer: one) == nil)
            let fitting = writes.map { var write = $0; write.allocations = [node: ["VCPU": 5]]; return write }
            #expect(try await placement.writeAllocations(fitting) == [one: 1, two: 1])
            #expect(try await placement.usages(project: "p") == ["unknown": UsageGroup(consumerCount: 2, resources: ["VCPU": 10])])
        }
    }

    @Test(arguments: TestDatabase.engines)
    func ensureProviderIsIdempotentAndProtectsUsage(engine: DatabaseEngine) async throws {
        try await Self.with(engine) { placement in
            let node = Identifier.uuid()
            let first = try await placement.ensureProvider(uuid: node, name: "node", inventories: Self.host, traits: ["COMPUTE_NODE", "CUSTOM_FAST"])
            let again = try await placement.ensureProvider(uuid: node, name: "node", inventories: Self.host, traits: ["COMPUTE_NODE"])
            #expect(first.generation == 1)
            #expect(again.generation == 1, "a resync that changes nothing must not move the generation")
            #expect(try await placement.traitExists("CUSTOM_FAST"))
            try await placement.claim(consumer: Identifier.uuid(), project: "p", user: "u", allocations: [node: ["VCPU": 8]], consumerGeneration: nil)
            var smaller = Self.host
            smaller["VCPU"] = Inventory(total: 4)
            let refused = await #expect(throws: NimbusError.self) {
                try await placement.ensureProvider(uuid: node, name: "node", inventories: smaller)
            }
            #expect(refused?.code == PlacementCode.inventoryInUse)
            smaller["VCPU"] = Inventory(total: 4, allocationRatio: 2)
            #expect(try await placement.ensureProvider(uuid: node, name: "node", inventories: smaller).generation == 3)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func candidatesCarryStateForWeighingAndKeptUsageMatchesAllocations(engine: DatabaseEngine) async throws {
        try await Self.with(engine) { placement in
            var nodes: [String] = []
            for index in 0..<5 {
                let uuid = Identifier.uuid()
                nodes.append(uuid)
                try await placement.ensureProvider(uuid: uuid, name: "n\(index)", inventories: Self.host,
                                                   traits: index % 2 == 0 ? ["HW_CPU_X86_AVX2"] : [])
            }
            try await placement.setProviderAggregates(nodes[4], ["5a1f2a63-3c1b-4bd6-8a4c-1f0e52b0e001"], generation: nil)
            try await placement.claim(consumer: Identifier.uuid(), project: "p", user: "u", allocations: [nodes[0]: ["VCPU": 9]], consumerGeneration: nil)
            let avx = try await placement.allocationCandidates(CandidateRequest(resources: ["VCPU": 2], required: ["HW_CPU_X86_AVX2"]))
            #expect(Set(avx.map(\.provider.uuid)) == [nodes[2], nodes[4]])
            let inAggregate = try await placement.allocationCandidates(
                CandidateRequest(resources: ["VCPU": 1], memberOf: [["5a1f2a63-3c1b-4bd6-8a4c-1f0e52b0e001"]]))
            #expect(inAggregate.map(\.provider.uuid) == [nodes[4]])
            #expect(inAggregate.first?.provider.generation == 2)
            #expect(inAggregate.first?.resources["MEMORY_MB"] == ResourceUsage(capacity: 7680, used: 0))
            let all = try await placement.allocationCandidates(CandidateRequest(resources: ["VCPU": 1]))
            #expect(all.first { $0.provider.uuid == nodes[0] }?.resources["VCPU"] == ResourceUsage(capacity: 10, used: 9))
            await #expect(throws: NimbusError.self) {
                try await placement.allocationCandidates(CandidateRequest(resources: ["CUSTOM_NOPE": 1]))
            }
            // The usage kept beside each inventory equals the sum of the allocations.
            let kept = try await placement.usages(of: nodes[0]).usages
            try await placement.database.transaction { try await PlacementStore.recountUsage(on: $0) }
            #expect(try await placement.usages(of: nodes[0]).usages == kept)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func candidatesSeeWritesOfAnotherReplicaAtOnce(engine: DatabaseEngine) async throws {
        try await TestDatabase.with(engine, migrations: PlacementSchema.migrations) { database in
            // Two services over one database: two control-plane replicas, each with its own cache.
            let one = PlacementService(database: database, logger: Logger(label: "one"))
            let two = PlacementService(database: database, logger: Logger(label: "two"))
            let (a, b) = (Identifier.uuid(), Identifier.uuid())
            try await one.ensureProvider(uuid: a, name: "a", inventories: Self.host)
            let request = CandidateRequest(resources: ["VCPU": 6])
            #expect(try await two.allocationCandidates(request).map(\.provider.uuid) == [a])
            try await one.ensureProvider(uuid: b, name: "b", inventories: Self.host)
            try await one.claim(consumer: Identifier.uuid(), project: "p", user: "u", allocations: [a: ["VCPU": 5]], consumerGeneration: nil)
            #expect(try await two.allocationCandidates(request).map(\.provider.uuid) == [b])
            try await one.setProviderTraits(b, ["COMPUTE_NODE"], generation: nil)
            #expect(try await two.allocationCandidates(CandidateRequest(resources: ["VCPU": 1], required: ["COMPUTE_NODE"])).map(\.provider.uuid) == [b])
            try await one.deleteProvider(b)
            #expect(try await two.allocationCandidates(request).isEmpty)
            #expect(try await two.allocationCandidates(CandidateRequest(resources: ["VCPU": 5])).first?.resources["VCPU"] == ResourceUsage(capacity: 10, used: 5))
        }
    }
}
