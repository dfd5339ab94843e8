import Gateway
import HTTPTypes
import Hummingbird
import NimbusCore

/// `/resource_providers` and their inventories.
extension PlacementAPI {
    static func registerProviders(_ table: inout Table, _ service: PlacementService) {
        table.add(.get, "/resource_providers", "placement:resource_providers:list") { request, _, version in
            try rejectUnknown(request, ["name", "uuid", "member_of", "resources", "in_tree", "required"])
            var query = ProviderQuery(name: request.query("name"), uuid: request.query("uuid"))
            if let uuid = query.uuid { try PlacementWire.requireUUID(uuid, field: "uuid") }
            query.filters = try filters(request, version, resources: request.query("resources").map { try parseResources($0) } ?? [:])
            let providers = try await service.providers(query)
            return .json(["resource_providers": .array(providers.map { PlacementWire.provider($0, version) })])
        }
        table.add(.post, "/resource_providers", "placement:resource_providers:create") { request, context, version in
            let body = try FieldReader(try await request.json(context: context), path: "resource_provider")
            try body.rejectUnknown(version >= 14 ? ["name", "uuid", "parent_provider_uuid"] : ["name", "uuid"])
            let name = try body.string("name", required: true, minLength: 1, maxLength: 200)!
            let uuid = try body.string("uuid")
            if let uuid { try PlacementWire.requireUUID(uuid, field: "uuid") }
            let parent = try body.string("parent_provider_uuid", nullable: true)
            if let parent { try PlacementWire.requireUUID(parent, field: "parent_provider_uuid") }
            let provider = try await service.createProvider(uuid: uuid.map(PlacementWire.normalizedUUID), name: name,
                                                            parent: parent.map(PlacementWire.normalizedUUID))
            let location: HTTPFields = [.location: providerPath(provider.uuid)]
            // 1.20 answers the new provider, so clients learn its uuid and generation without a GET.
            if version >= 20 { return .json(PlacementWire.provider(provider, version), headers: location) }
            return .empty(.created, headers: location)
        }
        table.add(.get, "/resource_providers/{uuid}", "placement:resource_providers:show") { _, context, version in
            .json(PlacementWire.provider(try await service.provider(context.path("uuid")), version))
        }
        table.add(.put, "/resource_providers/{uuid}", "placement:resource_providers:update") { request, context, version in
            let body = try FieldReader(try await request.json(context: context), path: "resource_provider")
            try body.rejectUnknown(version >= 14 ? ["name", "parent_provider_uuid"] : ["name"])
            let name = try body.string("name", required: true, minLength: 1, maxLength: 200)!
            var parent: String??
            if body.has("parent_provider_uuid") {
                let value = try body.string("parent_provider_uuid", nullable: true)
                if let value { try PlacementWire.requireUUID(value, field: "parent_provider_uuid") }
                parent = .some(value.map(PlacementWire.normalizedUUID))
            }
            let provider = try await service.updateProvider(context.path("uuid"), name: name, parent: parent,
                                                            allowReparent: version >= 37)
            return .json(PlacementWire.provider(provider, version))
        }
        table.add(.delete, "/resource_providers/{uuid}", "placement:resource_providers:delete") { _, context, _ in
            try await service.deleteProvider(context.path("uuid"))
            return .empty()
        }
        table.add(.get, "/resource_providers/{uuid}/usages", "placement:resource_providers:usages") { _, context, _ in
            let (generation, usages) = try await service.usages(of: context.path("uuid"))
            return .json(["usages": PlacementWire.amounts(usages), "resource_provider_generation": .int(generation)])
        }
    }

    static func registerInventories(_ table: inout Table, _ service: PlacementService) {
        let base = "/resource_providers/{uuid}/inventories"
        table.add(.get, base, "placement:resource_providers:inventories:list") { _, context, _ in
            let (generation, inventories) = try await service.inventories(of: context.path("uuid"))
            return .json(PlacementWire.inventories(inventories, generation: generation))
        }
        table.add(.put, base, "placement:resource_providers:inventories:update") { request, context, version in
            let uuid = context.path("uuid")
            let body = try FieldReader(try await request.json(context: context), path: "body")
            try body.rejectUnknown(["inventories", "resource_provider_generation"])
            let generation = try PlacementWire.generation(body)
            var wanted: [String: Inventory] = [:]
            for (resourceClass, value) in try body.object("inventories", required: true)!.fields {
                let inventory = try PlacementWire.inventory(value, path: resourceClass)
                if let problem = inventory.problem(resourceClass: resourceClass, provider: uuid, reservedMayEqualTotal: version >= 26) {
                    throw NimbusError.badRequest(problem)
                }
                wanted[resourceClass] = inventory
            }
            let frozen = wanted
            let result = try await service.changeInventories(of: uuid, generation: generation) { _ in frozen }
            return .json(PlacementWire.inventories(result.inventories, generation: result.generation))
        }
        table.add(.delete, base, since: 5, "placement:resource_providers:inventories:delete") { _, context, _ in
            try await service.changeInventories(of: context.path("uuid"), generation: nil) { _ in [:] }
            return .empty()
        }
        table.add(.post, base, "placement:resource_providers:inventories:create") { request, context, version in
            let uuid = context.path("uuid")
            let json = try await request.json(context: context)
            let body = try FieldReader(json, path: "body")
            let generation = try PlacementWire.generation(body)
            guard let resourceClass = try body.string("resource_class", required: true), PlacementWire.isClassName(resourceClass) else {
                throw NimbusError.badRequest("Invalid input for field 'resource_class': does not match '^[A-Z0-9_]+$'")
            }
            let inventory = try PlacementWire.inventory(json, path: "body", extra: ["resource_class", "resource_provider_generation"])
            if let problem = inventory.problem(resourceClass: resourceClass, provider: uuid, reservedMayEqualTotal: version >= 26) {
                throw NimbusError.badRequest(problem)
            }
            let result = try await service.changeInventories(of: uuid, generation: generation) { current in
                if current[resourceClass] != nil {
                    throw NimbusError.conflict("Update conflict: Inventory for \(resourceClass) on resource provider \(uuid) already exists.")
                }
                return current.merging([resourceClass: inventory]) { _, new in new }
            }
            return try single(resourceClass, result, status: .created, location: providerPath(uuid, "/inventories/\(resourceClass)"))
        }
        table.add(.get, base + "/{class}", "placement:resource_providers:inventories:show") { _, context, _ in
            let (generation, inventories) = try await service.inventories(of: context.path("uuid"))
            return try single(context.path("class"), (generation, inventories), uuid: context.path("uuid"))
        }
        table.add(.put, base + "/{class}", "placement:resource_providers:inventories:update") { request, context, version in
            let (uuid, resourceClass) = (context.path("uuid"), context.path("class"))
            let json = try await request.json(context: context)
            let generation = try PlacementWire.generation(try FieldReader(json, path: "body"))
            let inventory = try PlacementWire.inventory(json, path: "body", extra: ["resource_provider_generation"])
            if let problem = inventory.problem(resourceClass: resourceClass, provider: uuid, reservedMayEqualTotal: version >= 26) {
                throw NimbusError.badRequest(problem)
            }
            let result = try await service.changeInventories(of: uuid, generation: generation) { current in
                guard current[resourceClass] != nil else {
                    throw NimbusError.badRequest("No inventory record with resource class for resource provider \(uuid)")
                }
                return current.merging([resourceClass: inventory]) { _, new in new }
            }
            return try single(resourceClass, result, uuid: uuid)
        }
        table.add(.delete, base + "/{class}", "placement:resource_providers:inventories:delete") { _, context, _ in
            let (uuid, resourceClass) = (context.path("uuid"), context.path("class"))
            try await service.changeInventories(of: uuid, generation: nil) { current in
                guard current[resourceClass] != nil else {
                    throw NimbusError.notFound("No inventory of class \(resourceClass) found for delete")
                }
                return current.filter { $0.key != resourceClass }
            }
            return .empty()
        }
    }

    /// One class's inventory with the provider generation, as the single-inventory routes answer.
    static func single(
        _ resourceClass: String, _ result: (generation: Int64, inventories: [String: Inventory]), uuid: String = "",
        status: HTTPResponse.Status = .ok, location: String? = nil
    ) throws -> Response {
        guard let inventory = result.inventories[resourceClass] else {
            throw NimbusError.notFound("No inventory of class \(resourceClass) for \(uuid)")
        }
        var body = PlacementWire.inventory(inventory).objectValue ?? [:]
        body["resource_provider_generation"] = .int(result.generation)
        return .json(.object(body), status: status, headers: location.map { [.location: $0] } ?? [:])
    }

    /// Placement validates query strings against a schema with `additionalProperties: false`.
    static func rejectUnknown(_ request: Request, _ allowed: Set<String>) throws {
        if let extra = request.queryNames.sorted().first(where: { !allowed.contains($0) }) {
            throw NimbusError.badRequest("Invalid query string parameters: Additional properties are not allowed ('\(extra)' was unexpected)")
        }
    }
}
