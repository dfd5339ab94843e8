import Gateway
import HTTPTypes
import Hummingbird
import NimbusCore

/// `/allocations`, a provider's allocations, and `/usages`.
extension PlacementAPI {
    /// Placement's `incomplete_consumer_project_id`: owner of allocations written before 1.8.
    static let incompleteConsumer = "00000000-0000-0000-0000-000000000000"

    static func registerAllocations(_ table: inout Table, _ service: PlacementService) {
        table.add(.get, "/allocations/{consumer}", "placement:allocations:list") { _, context, version in
            let consumer = context.path("consumer")
            guard let held = try await service.allocations(consumer: consumer) else { return .json(["allocations": [:]]) }
            var body: [String: JSONValue] = [
                "allocations": .object(held.allocations.reduce(into: [:]) { out, entry in
                    out[entry.key] = ["resources": PlacementWire.amounts(entry.value),
                                      "generation": .int(held.providerGenerations[entry.key] ?? 0)]
                }),
            ]
            if version >= 12 {
                body["project_id"] = .string(held.projectID)
                body["user_id"] = .string(held.userID)
            }
            if version >= 28 { body["consumer_generation"] = .int(held.generation) }
            if version >= 38 { body["consumer_type"] = .string(held.consumerType) }
            return .json(.object(body))
        }
        table.add(.put, "/allocations/{consumer}", "placement:allocations:update") { request, context, version in
            let consumer = context.path("consumer")
            try PlacementWire.requireUUID(consumer, field: "consumer_uuid")
            let write = try allocationWrite(consumer, try await request.json(context: context), version)
            try await service.writeAllocations([write])
            return .empty()
        }
        table.add(.post, "/allocations", since: 13, "placement:allocations:manage") { request, context, version in
            let body = try FieldReader(try await request.json(context: context), path: "body")
            var writes: [AllocationWrite] = []
            for (consumer, value) in body.fields.sorted(by: { $0.key < $1.key }) {
                try PlacementWire.requireUUID(consumer, field: "consumer_uuid")
                writes.append(try allocationWrite(consumer, value, version))
            }
            guard !writes.isEmpty else { throw NimbusError.badRequest("Invalid input for field 'body': {} does not have enough properties") }
            try await service.writeAllocations(writes)
            return .empty()
        }
        table.add(.delete, "/allocations/{consumer}", "placement:allocations:delete") { _, context, _ in
            let consumer = context.path("consumer")
            guard try await service.releaseAllocations(consumer: consumer) else {
                throw NimbusError.notFound("No allocations for consumer '\(consumer)'")
            }
            return .empty()
        }
        table.add(.get, "/resource_providers/{uuid}/allocations", "placement:resource_providers:allocations:list") { _, context, _ in
            let (generation, allocations) = try await service.providerAllocations(context.path("uuid"))
            return .json([
                "allocations": .object(allocations.mapValues { ["resources": PlacementWire.amounts($0)] }),
                "resource_provider_generation": .int(generation),
            ])
        }
        table.add(.get, "/usages", since: 9, "placement:usages") { request, _, version in
            try rejectUnknown(request, ["project_id", "user_id", "consumer_type"])
            guard let project = request.query("project_id") else {
                throw NimbusError.badRequest("Invalid query string parameters: 'project_id' is a required property")
            }
            let groups = try await service.usages(project: project, user: request.query("user_id"))
            if version >= 38 {
                return .json(["usages": .object(groups.mapValues { group in
                    var body = group.resources.mapValues { JSONValue.int($0) }
                    body["consumer_count"] = .int(Int64(group.consumerCount))
                    return .object(body)
                })])
            }
            let totals = groups.values.reduce(into: [String: Int64]()) { out, group in out.merge(group.resources, uniquingKeysWith: +) }
            return .json(["usages": PlacementWire.amounts(totals)])
        }
    }

    /// One consumer's allocations from a PUT or POST body, in the shape of the request's microversion:
    /// a list of `{resource_provider: {uuid}, resources}` before 1.12, a map by provider since.
    static func allocationWrite(_ consumer: String, _ json: JSONValue, _ version: Microversion) throws -> AllocationWrite {
        let body = try FieldReader(json, path: "body")
        var allowed: Set<String> = ["allocations"]
        if version >= 8 { allowed.formUnion(["project_id", "user_id"]) }
        if version >= 28 { allowed.insert("consumer_generation") }
        if version >= 34 { allowed.insert("mappings") }
        if version >= 38 { allowed.insert("consumer_type") }
        try body.rejectUnknown(allowed)
        var allocations: [String: [String: Int64]] = [:]
        if version >= 12 {
            let map = try body.object("allocations", required: true)!
            if map.fields.isEmpty && version < 26 {
                throw NimbusError.badRequest("Invalid input for field 'allocations': {} does not have enough properties")
            }
            for (provider, entry) in map.fields {
                let fields = try FieldReader(entry, path: provider)
                try fields.rejectUnknown(["resources", "generation"])
                allocations[PlacementWire.normalizedUUID(provider)] = try PlacementWire.resources(fields.fields["resources"], path: "resources")
            }
        } else {
            let list = try body.array("allocations", required: true)!
            guard !list.isEmpty else { throw NimbusError.badRequest("Invalid input for field 'allocations': [] is too short") }
            for item in list {
                let entry = try FieldReader(item, path: "allocations")
                let provider = try entry.object("resource_provider", required: true)!
                let uuid = try provider.string("uuid", required: true)!
                try PlacementWire.requireUUID(uuid, field: "uuid")
                allocations[PlacementWire.normalizedUUID(uuid)] = try PlacementWire.resources(entry.fields["resources"], path: "resources")
            }
        }
        let required = version >= 8
        let project = try body.string("project_id", required: required, minLength: 1, maxLength: 255) ?? incompleteConsumer
        let user = try body.string("user_id", required: required, minLength: 1, maxLength: 255) ?? incompleteConsumer
        var generation = AllocationWrite.GenerationCheck.none
        if version >= 28 {
            guard body.has("consumer_generation") else {
                throw NimbusError.badRequest("Invalid input for field 'consumer_generation': 'consumer_generation' is a required property")
            }
            generation = body.fields["consumer_generation"]?.isNull == true
                ? .new : .expect(try body.int("consumer_generation", minimum: 0) ?? 0)
        }
        var consumerType: String?
        if version >= 38 {
            consumerType = try body.string("consumer_type", required: true, minLength: 1, maxLength: 255)
            guard let type = consumerType, PlacementWire.isClassName(type) else {
                throw NimbusError.badRequest("Invalid input for field 'consumer_type': does not match '^[A-Z0-9_]+$'")
            }
        }
        return AllocationWrite(consumer: consumer, projectID: project, userID: user, allocations: allocations,
                               generation: generation, consumerType: consumerType)
    }
}
