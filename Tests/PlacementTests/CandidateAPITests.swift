import NimbusCore
import NimbusTesting
import Placement
import Store
import Testing

/// Candidates, traits, aggregates, resource classes, policy and microversions over HTTP.
@Suite struct CandidateAPITests {
    typealias Client = PlacementAPITests.Client
    static let aggregate = "6e3c2d1f-59d5-4a36-9d8b-0f5f9f1d2b11"

    @Test(arguments: TestDatabase.engines)
    func candidatesFilterByResourcesTraitsAndAggregates(engine: DatabaseEngine) async throws {
        try await PlacementAPITests.with(engine) { api in
            let small = try await api.provider("small", ["VCPU": ["total": 2], "MEMORY_MB": ["total": 1024]])
            let big = try await api.provider("big", ["VCPU": ["total": 16], "MEMORY_MB": ["total": 65536], "DISK_GB": ["total": 500]])
            let gpu = try await api.provider("gpu", ["VCPU": ["total": 16], "MEMORY_MB": ["total": 65536]])
            #expect(try await api.call(.put, "/traits/CUSTOM_GPU").status == 201)
            #expect(try await api.call(.put, "/traits/CUSTOM_GPU").status == 204)
            let traits = try await api.call(.put, "/resource_providers/\(gpu)/traits",
                                            ["resource_provider_generation": 1, "traits": ["CUSTOM_GPU", "HW_CPU_X86_AVX2"]])
            #expect(traits.body?["resource_provider_generation"] == 2)
            #expect(try await api.call(.put, "/resource_providers/\(gpu)/traits", ["resource_provider_generation": 1, "traits": []]).status == 409)
            #expect(try await api.call(.put, "/resource_providers/\(gpu)/traits", ["resource_provider_generation": 2, "traits": ["CUSTOM_NOPE"]]).status == 400)
            let aggregates = try await api.call(.put, "/resource_providers/\(big)/aggregates",
                                                ["resource_provider_generation": 1, "aggregates": [.string(Self.aggregate)]])
            #expect(aggregates.body == ["aggregates": [.string(Self.aggregate)], "resource_provider_generation": 2])
            #expect(try await api.call(.get, "/resource_providers/\(big)/aggregates", version: "1.1").body == ["aggregates": [.string(Self.aggregate)]])

            func uuids(_ query: String, version: String = "1.39") async throws -> Set<String> {
                let reply = try await api.call(.get, "/allocation_candidates?" + query, version: version)
                #expect(reply.status == 200, "\(reply.text)")
                return Set(reply.body?["provider_summaries"]?.objectValue?.keys.map { $0 } ?? [])
            }
            #expect(try await uuids("resources=VCPU:1,MEMORY_MB:512") == [small, big, gpu])
            #expect(try await uuids("resources=VCPU:4,MEMORY_MB:512") == [big, gpu])
            #expect(try await uuids("resources=VCPU:4,DISK_GB:10") == [big])
            #expect(try await uuids("resources=VCPU:1&required=CUSTOM_GPU") == [gpu])
            #expect(try await uuids("resources=VCPU:1&required=!CUSTOM_GPU") == [small, big])
            #expect(try await uuids("resources=VCPU:1&required=in:CUSTOM_GPU,HW_CPU_X86_AVX2") == [gpu])
            #expect(try await uuids("resources=VCPU:1&member_of=\(Self.aggregate)") == [big])
            #expect(try await uuids("resources=VCPU:1&member_of=in:\(Self.aggregate),\(Identifier.uuid())") == [big])
            #expect(try await uuids("resources=VCPU:1&member_of=!in:\(Self.aggregate)") == [small, gpu])
            #expect(try await uuids("resources=VCPU:1&limit=2").count == 2)

            let reply = try await api.call(.get, "/allocation_candidates?resources=VCPU:2,DISK_GB:10")
            let request = reply.body?["allocation_requests"]?[0]
            #expect(request?["allocations"] == .object([big: ["resources": ["VCPU": 2, "DISK_GB": 10]]]))
            #expect(request?["mappings"] == ["": [.string(big)]])
            let summary = reply.body?["provider_summaries"]?[big]
            #expect(summary?["resources"]?["MEMORY_MB"] == ["capacity": 65536, "used": 0])
            #expect(summary?["root_provider_uuid"] == .string(big))
            let legacy = try await api.call(.get, "/allocation_candidates?resources=VCPU:2,DISK_GB:10", version: "1.10")
            #expect(legacy.body?["allocation_requests"]?[0]?["allocations"]?[0]?["resource_provider"]?["uuid"] == .string(big))
            #expect(legacy.body?["provider_summaries"]?[big]?["resources"]?["MEMORY_MB"] == nil)

            // Claiming what a candidate offered makes it disappear once full.
            let claim = PlacementAPITests.allocation(small, ["VCPU": 2, "MEMORY_MB": 512])
            #expect(try await api.call(.put, "/allocations/\(Identifier.uuid())", claim).status == 204)
            #expect(try await uuids("resources=VCPU:1") == [big, gpu])

            #expect(try await api.call(.get, "/allocation_candidates").status == 400)
            #expect(try await api.call(.get, "/allocation_candidates?resources=VCPU").status == 400)
            #expect(try await api.call(.get, "/allocation_candidates?resources=VCPU:0").status == 400)
            #expect(try await api.call(.get, "/allocation_candidates?resources=CUSTOM_NOPE:1").status == 400)
            #expect(try await api.call(.get, "/allocation_candidates?resources=VCPU:1&required=CUSTOM_NOPE").status == 400)
            #expect(try await api.call(.get, "/allocation_candidates?resources=VCPU:1&member_of=not-a-uuid").status == 400)
            #expect(try await api.call(.get, "/allocation_candidates?resources=VCPU:1&bogus=1").status == 400)
            #expect(try await api.call(.get, "/allocation_candidates?resources1=VCPU:1").status == 400)
        }
    }

    @Test func resourceClassesAndTraits() async throws {
        try await PlacementAPITests.with(.sqlite) { api in
            let classes = try await api.call(.get, "/resource_classes")
            #expect(classes.body?["resource_classes"]?[0] == ["name": "VCPU", "links": [["rel": "self", "href": "/placement/resource_classes/VCPU"]]])
            #expect(try await api.call(.post, "/resource_classes", ["name": "CUSTOM_FPGA_X"]).status == 201)
            #expect(try await api.call(.post, "/resource_classes", ["name": "CUSTOM_FPGA_X"]).status == 409)
            #expect(try await api.call(.post, "/resource_classes", ["name": "FPGA_X"]).status == 400)
            #expect(try await api.call(.put, "/resource_classes/CUSTOM_FPGA_X").status == 204)
            #expect(try await api.call(.put, "/resource_classes/CUSTOM_NEW").status == 201)
            #expect(try await api.call(.get, "/resource_classes/CUSTOM_FPGA_X").body?["name"] == "CUSTOM_FPGA_X")
            #expect(try await api.call(.get, "/resource_classes/CUSTOM_NONE").status == 404)
            let node = try await api.provider("fpga-host", ["CUSTOM_FPGA_X": ["total": 2]])
            #expect(try await api.call(.delete, "/resource_classes/CUSTOM_FPGA_X").status == 409)
            #expect(try await api.call(.delete, "/resource_classes/VCPU").status == 400)
            #expect(try await api.call(.delete, "/resource_providers/\(node)").status == 204)
            #expect(try await api.call(.delete, "/resource_classes/CUSTOM_FPGA_X").status == 204)

            #expect(try await api.call(.get, "/traits/HW_CPU_X86_AVX2").status == 204)
            #expect(try await api.call(.get, "/traits/CUSTOM_MISSING").status == 404)
            #expect(try await api.call(.put, "/traits/NOT_CUSTOM").status == 400)
            #expect(try await api.call(.put, "/traits/CUSTOM_A").status == 201)
            #expect(try await api.call(.get, "/traits?name=startswith:CUSTOM").body == ["traits": ["CUSTOM_A"]])
            #expect(try await api.call(.get, "/traits?name=in:CUSTOM_A,COMPUTE_NODE").body == ["traits": ["COMPUTE_NODE", "CUSTOM_A"]])
            #expect(try await api.call(.get, "/traits?associated=true").body == ["traits": []])
            #expect(try await api.call(.delete, "/traits/COMPUTE_NODE").status == 400)
            #expect(try await api.call(.delete, "/traits/CUSTOM_A").status == 204)
            #expect(try await api.call(.delete, "/traits/CUSTOM_A").status == 404)
        }
    }

    @Test func onlyAdminsAndServicesMayUsePlacement() async throws {
        try await TestCloud.with(configure: { $0.localHosts = nil }) { session in
            let (member, _) = try await session.newProjectUser("carol")
            let (service, _) = try await session.newProjectUser("nova", role: "service")
            let api = Client(session: session, token: try await session.adminToken())
            let denied = try await api.call(.get, "/resource_providers", token: member)
            #expect(denied.status == 403)
            #expect(denied.body?["errors"]?[0]?["detail"] == "Policy does not allow placement:resource_providers:list to be performed.")
            #expect(try await api.call(.post, "/resource_providers", ["name": "x"], token: member).status == 403)
            #expect(try await api.call(.get, "/resource_providers", token: service).status == 200)
            #expect(try await session.request(.get, "/placement/resource_providers").status == 401)
            #expect(try await session.request(.get, "/placement", token: member).status == 200, "version discovery is open")
        }
    }

    @Test func microversionsAreNegotiatedAndEchoed() async throws {
        try await TestCloud.with(configure: { $0.localHosts = nil }) { session in
            let api = Client(session: session, token: try await session.adminToken())
            let none = try await session.request(.get, "/placement/resource_providers", token: api.token)
            #expect(none.header("OpenStack-API-Version") == "placement 1.0")
            let latest = try await api.call(.get, "/resource_providers", version: "latest")
            #expect(latest.header("OpenStack-API-Version") == "placement 1.39")
            let tooHigh = try await api.call(.get, "/resource_providers", version: "1.40")
            #expect(tooHigh.status == 406)
            #expect(tooHigh.body?["errors"]?[0]?["detail"] == "Unacceptable version header: 1.40")
            #expect(try await api.call(.get, "/resource_providers", version: "1.x").status == 400)
            let error = try await api.call(.get, "/resource_providers/\(Identifier.uuid())", version: "1.20")
            #expect(error.status == 404)
            #expect(error.header("OpenStack-API-Version") == "placement 1.20", "faults carry the version too")
            #expect(try await api.call(.get, "/traits", version: "1.5").status == 404)
        }
    }
}
