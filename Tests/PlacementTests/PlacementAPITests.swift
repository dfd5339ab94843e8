import NimbusCore
import NimbusTesting
import Placement
import Store
import Testing

/// Placement's HTTP API through the gateway, in-process.
@Suite struct PlacementAPITests {
    static let latest = ["OpenStack-API-Version": "placement 1.39"]

    /// Requests at a microversion (the latest by default) with the admin token.
    struct Client: Sendable {
        let session: TestSession
        let token: String

        enum Verb { case get, put, post, delete }

        func call(_ verb: Verb, _ path: String, _ json: JSONValue? = nil, version: String = "1.39", token: String? = nil) async throws -> TestReply {
            let (path, token, headers) = ("/placement" + path, token ?? self.token, ["OpenStack-API-Version": "placement \(version)"])
            switch verb {
            case .get: return try await session.request(.get, path, token: token, headers: headers)
            case .put: return try await session.request(.put, path, token: token, json: json, headers: headers)
            case .post: return try await session.request(.post, path, token: token, json: json, headers: headers)
            case .delete: return try await session.request(.delete, path, token: token, headers: headers)
            }
        }

        func provider(_ name: String, _ inventories: JSONValue? = nil) async throws -> String {
            let created = try await call(.post, "/resource_providers", ["name": .string(name)])
            #expect(created.status == 200, "\(created.text)")
            let uuid = created.body?["uuid"]?.stringValue ?? ""
            if let inventories {
                let put = try await call(.put, "/resource_providers/\(uuid)/inventories",
                                         ["resource_provider_generation": 0, "inventories": inventories])
                #expect(put.status == 200, "\(put.text)")
            }
            return uuid
        }
    }

    static func with(_ engine: DatabaseEngine, _ body: @Sendable @escaping (Client) async throws -> Void) async throws {
        try await TestCloud.with(engine, configure: { $0.localHosts = nil }) { session in
            try await body(Client(session: session, token: try await session.adminToken()))
        }
    }

    static let host: JSONValue = ["VCPU": ["total": 4, "allocation_ratio": .double(2)], "MEMORY_MB": ["total": 4096, "reserved": 512], "DISK_GB": ["total": 50]]

    @Test(arguments: TestDatabase.engines)
    func providersCRUDWithMicroversions(engine: DatabaseEngine) async throws {
        try await Self.with(engine) { api in
            let discovery = try await api.session.request(.get, "/placement")
            #expect(discovery.status == 200)
            #expect(discovery.body?["versions"]?.arrayValue?.first?["max_version"] == "1.39")
            #expect(discovery.body?["versions"]?.arrayValue?.first?["id"] == "v1.0")

            let old = try await api.call(.post, "/resource_providers", ["name": "old-style"], version: "1.19")
            #expect(old.status == 201)
            #expect(old.header("Location")?.hasPrefix("/placement/resource_providers/") == true)
            let uuid = try await api.provider("node1")
            let shown = try await api.call(.get, "/resource_providers/\(uuid)")
            #expect(shown.header("OpenStack-API-Version") == "placement 1.39")
            #expect(shown.header("Vary") == "openstack-api-version")
            #expect(shown.body?["generation"] == 0)
            #expect(shown.body?["root_provider_uuid"] == .string(uuid))
            #expect(shown.body?["parent_provider_uuid"] == .null)
            #expect(try await api.call(.get, "/resource_providers/\(uuid)", version: "1.0").body?["root_provider_uuid"] == nil)

            let duplicate = try await api.call(.post, "/resource_providers", ["name": "node1"])
            #expect(duplicate.status == 409)
            #expect(duplicate.body?["errors"]?[0]?["code"] == "placement.duplicate_name")

            let child = try await api.call(.post, "/resource_providers", ["name": "numa0", "parent_provider_uuid": .string(uuid)])
            #expect(child.body?["root_provider_uuid"] == .string(uuid))
            let listed = try await api.call(.get, "/resource_providers?in_tree=\(uuid)")
            #expect(listed.body?["resource_providers"]?.arrayValue?.count == 2)
            #expect(try await api.call(.get, "/resource_providers?name=node1").body?["resource_providers"]?.arrayValue?.count == 1)
            #expect(try await api.call(.delete, "/resource_providers/\(uuid)").body?["errors"]?[0]?["code"] == "placement.resource_provider.cannot_delete_parent")

            let renamed = try await api.call(.put, "/resource_providers/\(uuid)", ["name": "node-one"])
            #expect(renamed.body?["name"] == "node-one")
            #expect(try await api.call(.delete, "/resource_providers/\(child.body?["uuid"]?.stringValue ?? "")").status == 204)
            #expect(try await api.call(.delete, "/resource_providers/\(uuid)").status == 204)

            let missing = try await api.call(.get, "/resource_providers/\(uuid)")
            #expect(missing.status == 404)
            #expect(missing.body?["errors"]?[0]?["title"] == "Not Found")
            #expect(missing.body?["errors"]?[0]?["request_id"]?.stringValue?.hasPrefix("req-") == true)
            #expect(try await api.call(.get, "/resource_providers/\(uuid)/inventories").status == 404)
            #expect(try await api.call(.get, "/allocation_candidates?resources=VCPU:1", version: "1.9").status == 404)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func inventoriesCheckGenerationsAndUsage(engine: DatabaseEngine) async throws {
        try await Self.with(engine) { api in
            let uuid = try await api.provider("node", Self.host)
            let inventories = try await api.call(.get, "/resource_providers/\(uuid)/inventories")
            #expect(inventories.body?["resource_provider_generation"] == 1)
            #expect(inventories.body?["inventories"]?["VCPU"]?["allocation_ratio"]?.intValue == 2)
            #expect(inventories.body?["inventories"]?["MEMORY_MB"]?["max_unit"] == 2_147_483_647)

            let stale = try await api.call(.put, "/resource_providers/\(uuid)/inventories", ["resource_provider_generation": 0, "inventories": Self.host])
            #expect(stale.status == 409)
            #expect(stale.body?["errors"]?[0]?["code"] == "placement.concurrent_update")
            #expect(stale.body?["errors"]?[0]?["detail"] == "resource provider generation conflict")

            let badReserved = try await api.call(.put, "/resource_providers/\(uuid)/inventories",
                                                 ["resource_provider_generation": 1, "inventories": ["VCPU": ["total": 2, "reserved": 3]]])
            #expect(badReserved.status == 400)
            let unknown = try await api.call(.put, "/resource_providers/\(uuid)/inventories",
                                             ["resource_provider_generation": 1, "inventories": ["CUSTOM_NOPE": ["total": 2]]])
            #expect(unknown.status == 400)

            let consumer = Identifier.uuid()
            let claim = try await api.call(.put, "/allocations/\(consumer)", Self.allocation(uuid, ["VCPU": 6, "DISK_GB": 10]))
            #expect(claim.status == 204, "\(claim.text)")
            let shrink = try await api.call(.put, "/resource_providers/\(uuid)/inventories/VCPU",
                                            ["resource_provider_generation": 2, "total": 2])
            #expect(shrink.status == 409)
            #expect(shrink.body?["errors"]?[0]?["code"] == "placement.inventory.inuse")
            let remove = try await api.call(.put, "/resource_providers/\(uuid)/inventories",
                                            ["resource_provider_generation": 2, "inventories": ["VCPU": ["total": 4, "allocation_ratio": .double(2)]]])
            #expect(remove.body?["errors"]?[0]?["code"] == "placement.inventory.inuse")
            #expect(try await api.call(.delete, "/resource_providers/\(uuid)/inventories/DISK_GB").status == 409)
            #expect(try await api.call(.delete, "/resource_providers/\(uuid)").body?["errors"]?[0]?["code"] == "placement.resource_provider.inuse")

            let grow = try await api.call(.put, "/resource_providers/\(uuid)/inventories/VCPU", ["resource_provider_generation": 2, "total": 8])
            #expect(grow.status == 200)
            #expect(grow.body?["resource_provider_generation"] == 3)
            let usages = try await api.call(.get, "/resource_providers/\(uuid)/usages")
            #expect(usages.body?["usages"] == ["VCPU": 6, "MEMORY_MB": 0, "DISK_GB": 10])
            let added = try await api.call(.post, "/resource_providers/\(uuid)/inventories",
                                           ["resource_provider_generation": 3, "resource_class": "IPV4_ADDRESS", "total": 16])
            #expect(added.status == 201)
            #expect(try await api.call(.get, "/resource_providers/\(uuid)/inventories/IPV4_ADDRESS").body?["total"] == 16)
            #expect(try await api.call(.delete, "/resource_providers/\(uuid)/inventories/IPV4_ADDRESS").status == 204)
            #expect(try await api.call(.get, "/resource_providers/\(uuid)/inventories/IPV4_ADDRESS").status == 404)
        }
    }

    static func allocation(_ provider: String, _ resources: [String: Int64], generation: Int64? = nil, project: String = "proj") -> JSONValue {
        ["allocations": .object([provider: ["resources": .object(resources.mapValues { .int($0) })]]),
         "project_id": .string(project), "user_id": "user", "consumer_generation": generation.map { .int($0) } ?? .null,
         "consumer_type": "INSTANCE"]
    }

    @Test(arguments: TestDatabase.engines)
    func allocationsUseConsumerGenerationsAndRefuseOvercommit(engine: DatabaseEngine) async throws {
        try await Self.with(engine) { api in
            let uuid = try await api.provider("node", Self.host)
            let consumer = Identifier.uuid()
            #expect(try await api.call(.get, "/allocations/\(consumer)").body == ["allocations": [:]])
            #expect(try await api.call(.put, "/allocations/\(consumer)", Self.allocation(uuid, ["VCPU": 2, "MEMORY_MB": 512])).status == 204)
            let held = try await api.call(.get, "/allocations/\(consumer)")
            #expect(held.body?["consumer_generation"] == 1)
            #expect(held.body?["project_id"] == "proj")
            #expect(held.body?["consumer_type"] == "INSTANCE")
            #expect(held.body?["allocations"]?[uuid]?["resources"] == ["VCPU": 2, "MEMORY_MB": 512])
            #expect(held.body?["allocations"]?[uuid]?["generation"] == 2)

            let asNew = try await api.call(.put, "/allocations/\(consumer)", Self.allocation(uuid, ["VCPU": 3]))
            #expect(asNew.status == 409)
            #expect(asNew.body?["errors"]?[0]?["code"] == "placement.concurrent_update")
            #expect(asNew.body?["errors"]?[0]?["detail"] == "consumer generation conflict - expected null but got 1")
            #expect(try await api.call(.put, "/allocations/\(consumer)", Self.allocation(uuid, ["VCPU": 3], generation: 7)).status == 409)
            #expect(try await api.call(.put, "/allocations/\(consumer)", Self.allocation(uuid, ["VCPU": 3], generation: 1)).status == 204)

            // VCPU capacity is (4 - 0) * 2 = 8: 3 held, 6 more do not fit.
            let over = try await api.call(.put, "/allocations/\(Identifier.uuid())", Self.allocation(uuid, ["VCPU": 6]))
            #expect(over.status == 409)
            #expect(over.body?["errors"]?[0]?["detail"]?.stringValue?.contains("The requested amount would exceed the capacity.") == true)
            #expect(over.body?["errors"]?[0]?["code"] == "placement.undefined_code")
            #expect(try await api.call(.put, "/allocations/\(Identifier.uuid())", Self.allocation(uuid, ["PCPU": 1])).status == 409)
            #expect(try await api.call(.put, "/allocations/\(Identifier.uuid())", Self.allocation(Identifier.uuid(), ["VCPU": 1])).status == 400)
            #expect(try await api.call(.put, "/allocations/\(Identifier.uuid())", ["allocations": [:]], version: "1.39").status == 400)

            let (a, b) = (Identifier.uuid(), Identifier.uuid())
            let batch: JSONValue = .object([
                a: Self.allocation(uuid, ["VCPU": 4]), b: Self.allocation(uuid, ["VCPU": 4]),
            ])
            #expect(try await api.call(.post, "/allocations", batch).status == 409, "3 + 4 + 4 > 8: nothing is written")
            #expect(try await api.call(.get, "/allocations/\(a)").body == ["allocations": [:]])
            let fitting: JSONValue = .object([a: Self.allocation(uuid, ["VCPU": 2]), b: Self.allocation(uuid, ["VCPU": 3], project: "other")])
            #expect(try await api.call(.post, "/allocations", fitting).status == 204)

            let onProvider = try await api.call(.get, "/resource_providers/\(uuid)/allocations")
            #expect(onProvider.body?["allocations"]?.objectValue?.count == 3)
            #expect(onProvider.body?["allocations"]?[b]?["resources"] == ["VCPU": 3])
            let usage = try await api.call(.get, "/usages?project_id=proj", version: "1.37")
            // The first consumer now holds VCPU 3 (its memory went with the replacement), `a` VCPU 2.
            #expect(usage.body == ["usages": ["VCPU": 5]])
            let grouped = try await api.call(.get, "/usages?project_id=proj")
            #expect(grouped.body == ["usages": ["INSTANCE": ["consumer_count": 2, "VCPU": 5]]])

            #expect(try await api.call(.delete, "/allocations/\(consumer)").status == 204)
            #expect(try await api.call(.delete, "/allocations/\(consumer)").status == 404)
            #expect(try await api.call(.get, "/resource_providers/\(uuid)/usages").body?["usages"]?["VCPU"] == 5)
            // Before 1.12 allocations are a list, and no consumer generation is checked.
            let legacy: JSONValue = ["allocations": [["resource_provider": ["uuid": .string(uuid)], "resources": ["DISK_GB": 5]]],
                                     "project_id": "proj", "user_id": "user"]
            #expect(try await api.call(.put, "/allocations/\(a)", legacy, version: "1.8").status == 204)
            #expect(try await api.call(.get, "/allocations/\(a)").body?["allocations"]?[uuid]?["resources"] == ["DISK_GB": 5])
        }
    }
}

extension JSONValue {
    /// The element at `index` of an array, for reading fault lists and candidate requests.
    subscript(_ index: Int) -> JSONValue? {
        guard let items = arrayValue, items.indices.contains(index) else { return nil }
        return items[index]
    }
}
