import NimbusCore
@testable import Placement
import Testing

/// The pure parts: capacity math, inventory rules, microversion negotiation, candidate selection.
@Suite struct CapacityTests {
    @Test func capacityIsTotalMinusReservedTimesRatioTruncated() {
        #expect(Inventory(total: 8, reserved: 2, allocationRatio: 16).capacity == 96)
        #expect(Inventory(total: 4096, reserved: 512, allocationRatio: 1.5).capacity == 5376)
        #expect(Inventory(total: 3, allocationRatio: 0.5).capacity == 1)
        #expect(Inventory(total: 4, reserved: 4).capacity == 0)
    }

    @Test func allocationsRespectUnitsStepsAndCapacity() {
        let disk = Inventory(total: 100, minUnit: 10, maxUnit: 50, stepSize: 10)
        #expect(disk.allows(amount: 20))
        #expect(!disk.allows(amount: 5))
        #expect(!disk.allows(amount: 60))
        #expect(!disk.allows(amount: 25))
        #expect(disk.fits(50, used: 50))
        #expect(!disk.fits(10, used: 95))
        #expect(!Inventory(total: 1).fits(Int64.max, used: 1), "overflow must not wrap into a fit")
    }

    @Test func inventoryProblemsUsePlacementWording() {
        #expect(Inventory(total: 4).problem(resourceClass: "VCPU", provider: "p") == nil)
        #expect(Inventory(total: 4, reserved: 5).problem(resourceClass: "VCPU", provider: "p")?.contains("The reserved value is greater than total") == true)
        #expect(Inventory(total: 4, reserved: 4).problem(resourceClass: "VCPU", provider: "p") == nil)
        #expect(Inventory(total: 4, reserved: 4).problem(resourceClass: "VCPU", provider: "p", reservedMayEqualTotal: false) != nil)
        #expect(Inventory(total: 4, minUnit: 3, maxUnit: 2).problem(resourceClass: "VCPU", provider: "p") != nil)
    }

    @Test func microversionNegotiation() {
        #expect(Microversion.negotiate(nil) == .success(Microversion(0)))
        #expect(Microversion.negotiate("placement 1.20") == .success(Microversion(20)))
        #expect(Microversion.negotiate("compute 2.1, placement 1.28") == .success(Microversion(28)))
        #expect(Microversion.negotiate("placement latest") == .success(Microversion.maximum))
        #expect(Microversion.negotiate("compute 2.90") == .success(Microversion(0)))
        #expect(Microversion.negotiate("placement 1.40") == .failure(.unacceptable("Unacceptable version header: 1.40")))
        #expect(Microversion.negotiate("placement 2.0") == .failure(.unacceptable("Unacceptable version header: 2.0")))
        #expect(Microversion.negotiate("placement 1.1.1") == .failure(.invalid("invalid version string: 1.1.1")))
    }

    @Test func customNamesFollowTheRules() {
        #expect(StandardNames.isValidCustom("CUSTOM_GOLD_1"))
        #expect(!StandardNames.isValidCustom("CUSTOM_"))
        #expect(!StandardNames.isValidCustom("GOLD"))
        #expect(!StandardNames.isValidCustom("CUSTOM_gold"))
        #expect(StandardNames.resourceClasses.prefix(3) == ["VCPU", "MEMORY_MB", "DISK_GB"])
    }

    static func state(_ uuid: String, vcpu: Int64, used: Int64 = 0, root: String? = nil, traits: [String] = [], aggregates: [String] = []) -> ProviderState {
        ProviderState(snapshot: ProviderSnapshot(
            provider: ResourceProvider(uuid: uuid, name: uuid, generation: 3, parentProviderUUID: root, rootProviderUUID: root ?? uuid),
            inventories: ["VCPU": Inventory(total: vcpu), "MEMORY_MB": Inventory(total: 1024)], used: ["VCPU": used]),
            traits: traits, aggregates: aggregates)
    }

    @Test func selectionFiltersByResourcesTraitsAggregatesAndTree() {
        let providers = [
            Self.state("a", vcpu: 4, traits: ["HW_CPU_X86_AVX2"], aggregates: ["agg1"]), Self.state("b", vcpu: 4, used: 3),
            Self.state("c", vcpu: 8, traits: ["CUSTOM_GOLD", "HW_CPU_X86_AVX2"], aggregates: ["agg2"]),
            Self.state("d", vcpu: 8, root: "c", traits: ["CUSTOM_GOLD"]),
        ]
        func pick(_ request: CandidateRequest) -> [String] {
            CandidateSelection.select(request, from: providers).map(\.provider.uuid)
        }
        #expect(pick(CandidateRequest(resources: ["VCPU": 2])) == ["a", "c", "d"])
        #expect(pick(CandidateRequest(resources: ["VCPU": 2, "DISK_GB": 1])) == [])
        #expect(pick(CandidateRequest(resources: ["VCPU": 1], required: ["HW_CPU_X86_AVX2"])) == ["a", "c"])
        #expect(pick(CandidateRequest(resources: ["VCPU": 1], forbidden: ["CUSTOM_GOLD"])) == ["a", "b"])
        #expect(pick(CandidateRequest(resources: ["VCPU": 1], anyOf: [["CUSTOM_GOLD", "CUSTOM_SILVER"]])) == ["c", "d"])
        #expect(pick(CandidateRequest(resources: ["VCPU": 1], memberOf: [["agg1", "agg2"]])) == ["a", "c"])
        #expect(pick(CandidateRequest(resources: ["VCPU": 1], memberOf: [["agg1"], ["agg2"]])) == [])
        #expect(pick(CandidateRequest(resources: ["VCPU": 1], notMemberOf: ["agg1"])) == ["b", "c", "d"])
        #expect(pick(CandidateRequest(resources: ["VCPU": 1], inTree: "d")) == ["c", "d"])
        #expect(pick(CandidateRequest(resources: ["VCPU": 1], limit: 2)) == ["a", "b"])
        let second = CandidateSelection.select(CandidateRequest(resources: ["VCPU": 1]), from: providers)[1]
        #expect(second.resources["VCPU"] == ResourceUsage(capacity: 4, used: 3))
        #expect(second.resources["MEMORY_MB"]?.free == 1024)
        #expect(second.provider.generation == 3)
        #expect(second.allocation == ["VCPU": 1])
    }

    @Test func allocationDeltaNetsOldAgainstNew() {
        let delta = PlacementService.delta(old: ["p1": ["VCPU": 2, "MEMORY_MB": 512], "p2": ["VCPU": 1]],
                                           new: ["p1": ["VCPU": 2, "MEMORY_MB": 1024], "p3": ["VCPU": 4]])
        #expect(delta == ["p1": ["MEMORY_MB": 512], "p2": ["VCPU": -1], "p3": ["VCPU": 4]])
    }
}

@Suite struct CandidateWireTests {
    @Test func rendersValidJSONShapedByMicroversion() throws {
        let provider = ResourceProvider(uuid: "p1", name: "n", generation: 1, parentProviderUUID: nil, rootProviderUUID: "p1")
        let candidate = Candidate(provider: provider, allocation: ["VCPU": 1],
                                  resources: ["VCPU": ResourceUsage(capacity: 8, used: 2), "DISK_GB": ResourceUsage(capacity: 10, used: 0)],
                                  traits: ["CUSTOM_Q"])
        let latest = try JSONValue.parse(CandidateWire.render([candidate], requested: ["VCPU": 1], Microversion(39)).readableBytesView)
        #expect(latest == [
            "allocation_requests": [["allocations": ["p1": ["resources": ["VCPU": 1]]], "mappings": ["": ["p1"]]]],
            "provider_summaries": ["p1": [
                "resources": ["VCPU": ["capacity": 8, "used": 2], "DISK_GB": ["capacity": 10, "used": 0]],
                "traits": ["CUSTOM_Q"], "parent_provider_uuid": nil, "root_provider_uuid": "p1",
            ]],
        ])
        let old = try JSONValue.parse(CandidateWire.render([candidate], requested: ["VCPU": 1], Microversion(10)).readableBytesView)
        #expect(old == [
            "allocation_requests": [["allocations": [["resource_provider": ["uuid": "p1"], "resources": ["VCPU": 1]]]]],
            "provider_summaries": ["p1": ["resources": ["VCPU": ["capacity": 8, "used": 2]]]],
        ])
    }
}
