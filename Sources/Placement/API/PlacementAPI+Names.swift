import Gateway
import HTTPTypes
import Hummingbird
import NimbusCore

/// `/resource_classes`, `/traits`, and providers' traits and aggregates.
extension PlacementAPI {
    static func registerNames(_ table: inout Table, _ service: PlacementService) {
        table.add(.get, "/resource_classes", since: 2, "placement:resource_classes:list") { _, _, _ in
            .json(["resource_classes": .array(try await service.resourceClasses().map(PlacementWire.resourceClass))])
        }
        table.add(.post, "/resource_classes", since: 2, "placement:resource_classes:create") { request, context, _ in
            let body = try FieldReader(try await request.json(context: context), path: "body")
            try body.rejectUnknown(["name"])
            let name = try body.string("name", required: true, maxLength: 255)!
            try await service.createResourceClass(name)
            return .empty(.created, headers: [.location: "\(prefix)/resource_classes/\(name)"])
        }
        table.add(.get, "/resource_classes/{name}", since: 2, "placement:resource_classes:show") { _, context, _ in
            let name = context.path("name")
            guard try await service.resourceClassExists(name) else { throw NimbusError.notFound("No such resource class \(name).") }
            return .json(PlacementWire.resourceClass(name))
        }
        table.add(.put, "/resource_classes/{name}", since: 7, "placement:resource_classes:update") { _, context, _ in
            let name = context.path("name")
            let created = try await service.ensureResourceClass(name)
            return .empty(created ? .created : .noContent, headers: [.location: "\(prefix)/resource_classes/\(name)"])
        }
        table.add(.delete, "/resource_classes/{name}", since: 2, "placement:resource_classes:delete") { _, context, _ in
            try await service.deleteResourceClass(context.path("name"))
            return .empty()
        }

        table.add(.get, "/traits", since: 6, "placement:traits:list") { request, _, _ in
            try rejectUnknown(request, ["name", "associated"])
            var prefixFilter: String?
            var names: Set<String>?
            if let name = request.query("name") {
                if name.hasPrefix("startswith:") {
                    prefixFilter = String(name.dropFirst("startswith:".count))
                } else if name.hasPrefix("in:") {
                    names = Set(name.dropFirst(3).split(separator: ",").map(String.init))
                } else {
                    throw NimbusError.badRequest("Badly formatted name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"\(name)\"")
                }
            }
            var associated: Bool?
            if let value = request.query("associated") {
                guard let flag = ["true": true, "false": false][value.lowercased()] else {
                    throw NimbusError.badRequest("The query parameter \"associated\" only accepts \"true\" or \"false\"")
                }
                associated = flag
            }
            let traits = try await service.traits(prefix: prefixFilter, names: names, associated: associated)
            return .json(["traits": .array(traits.map { .string($0) })])
        }
        table.add(.get, "/traits/{name}", since: 6, "placement:traits:show") { _, context, _ in
            let name = context.path("name")
            guard try await service.traitExists(name) else { throw NimbusError.notFound("No such trait(s): \(name)") }
            return .empty()
        }
        table.add(.put, "/traits/{name}", since: 6, "placement:traits:update") { _, context, _ in
            let name = context.path("name")
            let created = try await service.ensureTrait(name)
            return .empty(created ? .created : .noContent, headers: [.location: "\(prefix)/traits/\(name)"])
        }
        table.add(.delete, "/traits/{name}", since: 6, "placement:traits:delete") { _, context, _ in
            try await service.deleteTrait(context.path("name"))
            return .empty()
        }
    }

    static func registerAssociations(_ table: inout Table, _ service: PlacementService) {
        let traits = "/resource_providers/{uuid}/traits"
        table.add(.get, traits, since: 6, "placement:resource_providers:traits:list") { _, context, _ in
            let (generation, names) = try await service.providerTraits(context.path("uuid"))
            return .json(["traits": .array(names.map { .string($0) }), "resource_provider_generation": .int(generation)])
        }
        table.add(.put, traits, since: 6, "placement:resource_providers:traits:update") { request, context, _ in
            let body = try FieldReader(try await request.json(context: context), path: "body")
            try body.rejectUnknown(["traits", "resource_provider_generation"])
            let generation = try PlacementWire.generation(body)
            let names = Set(try body.stringArray("traits", required: true)!)
            let uuid = context.path("uuid")
            let newGeneration = try await service.setProviderTraits(uuid, names, generation: generation)
            return .json(["traits": .array(names.sorted().map { .string($0) }), "resource_provider_generation": .int(newGeneration)])
        }
        table.add(.delete, traits, since: 6, "placement:resource_providers:traits:delete") { _, context, _ in
            try await service.setProviderTraits(context.path("uuid"), [], generation: nil)
            return .empty()
        }

        let aggregates = "/resource_providers/{uuid}/aggregates"
        table.add(.get, aggregates, since: 1, "placement:resource_providers:aggregates:list") { _, context, version in
            let (generation, uuids) = try await service.providerAggregates(context.path("uuid"))
            return .json(aggregateBody(uuids, generation: generation, version))
        }
        table.add(.put, aggregates, since: 1, "placement:resource_providers:aggregates:update") { request, context, version in
            let json = try await request.json(context: context)
            let items: [JSONValue]
            var generation: Int64?
            // 1.19 wraps the list in an object with the generation; before, the body is the bare list.
            if version >= 19 {
                let body = try FieldReader(json, path: "body")
                try body.rejectUnknown(["aggregates", "resource_provider_generation"])
                generation = try PlacementWire.generation(body)
                items = try body.array("aggregates", required: true)!
            } else {
                guard let list = json.arrayValue else {
                    throw NimbusError.badRequest("Invalid input for field 'body': \(json.serialized()) is not of type 'array'")
                }
                items = list
            }
            var uuids: Set<String> = []
            for item in items {
                guard let text = item.stringValue, Identifier.looksLikeUUID(text) else {
                    throw NimbusError.badRequest("Invalid input for field 'aggregates': \(item.serialized()) is not a 'uuid'")
                }
                guard uuids.insert(PlacementWire.normalizedUUID(text)).inserted else {
                    throw NimbusError.badRequest("Invalid input for field 'aggregates': has non-unique elements")
                }
            }
            let newGeneration = try await service.setProviderAggregates(context.path("uuid"), uuids, generation: generation)
            return .json(aggregateBody(uuids.sorted(), generation: newGeneration, version))
        }
    }

    static func aggregateBody(_ uuids: [String], generation: Int64, _ version: Microversion) -> JSONValue {
        var body: [String: JSONValue] = ["aggregates": .array(uuids.map { .string($0) })]
        if version >= 19 { body["resource_provider_generation"] = .int(generation) }
        return .object(body)
    }
}
