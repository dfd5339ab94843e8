import NimbusCore

/// Placement's JSON: rendering of providers, inventories and allocations, and validation of the
/// bodies that carry them.
enum PlacementWire {
    // MARK: - Rendering

    static func provider(_ provider: ResourceProvider, _ version: Microversion) -> JSONValue {
        var links: [JSONValue] = [
            link("self", PlacementAPI.providerPath(provider.uuid)),
            link("inventories", PlacementAPI.providerPath(provider.uuid, "/inventories")),
            link("usages", PlacementAPI.providerPath(provider.uuid, "/usages")),
        ]
        if version >= 1 { links.append(link("aggregates", PlacementAPI.providerPath(provider.uuid, "/aggregates"))) }
        if version >= 6 { links.append(link("traits", PlacementAPI.providerPath(provider.uuid, "/traits"))) }
        if version >= 11 { links.append(link("allocations", PlacementAPI.providerPath(provider.uuid, "/allocations"))) }
        var body: [String: JSONValue] = [
            "uuid": .string(provider.uuid), "name": .string(provider.name), "generation": .int(provider.generation),
            "links": .array(links),
        ]
        if version >= 14 {
            body["parent_provider_uuid"] = .optional(provider.parentProviderUUID)
            body["root_provider_uuid"] = .string(provider.rootProviderUUID)
        }
        return .object(body)
    }

    static func link(_ rel: String, _ href: String) -> JSONValue { ["rel": .string(rel), "href": .string(href)] }

    static func inventory(_ inventory: Inventory) -> JSONValue {
        ["total": .int(inventory.total), "reserved": .int(inventory.reserved), "min_unit": .int(inventory.minUnit),
         "max_unit": .int(inventory.maxUnit), "step_size": .int(inventory.stepSize),
         "allocation_ratio": .double(inventory.allocationRatio)]
    }

    static func inventories(_ inventories: [String: Inventory], generation: Int64) -> JSONValue {
        ["inventories": .object(inventories.mapValues(inventory)), "resource_provider_generation": .int(generation)]
    }

    static func resourceClass(_ name: String) -> JSONValue {
        ["name": .string(name), "links": [link("self", "\(PlacementAPI.prefix)/resource_classes/\(name)")]]
    }

    static func amounts(_ resources: [String: Int64]) -> JSONValue { .object(resources.mapValues { .int($0) }) }

    // MARK: - Validation

    /// The `resource_provider_generation` a write must carry.
    static func generation(_ body: FieldReader) throws(NimbusError) -> Int64 {
        guard let generation = try body.int("resource_provider_generation") else {
            throw .badRequest("Invalid input for field 'resource_provider_generation': 'resource_provider_generation' is a required property")
        }
        return generation
    }

    static let inventoryFields: Set<String> = ["total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio"]

    /// One inventory from its JSON object; `extra` names other fields the body may carry.
    static func inventory(_ value: JSONValue?, path: String, extra: Set<String> = []) throws(NimbusError) -> Inventory {
        let fields = try FieldReader(value, path: path)
        try fields.rejectUnknown(inventoryFields.union(extra))
        let maximum: Int64 = 2_147_483_647
        guard let total = try fields.int("total", minimum: 1, maximum: maximum) else {
            throw .badRequest("Invalid input for field 'total': 'total' is a required property")
        }
        var inventory = Inventory(total: total)
        inventory.reserved = try fields.int("reserved", minimum: 0, maximum: maximum) ?? 0
        inventory.minUnit = try fields.int("min_unit", minimum: 1, maximum: maximum) ?? 1
        inventory.maxUnit = try fields.int("max_unit", minimum: 1, maximum: maximum) ?? Inventory.maxUnitDefault
        inventory.stepSize = try fields.int("step_size", minimum: 1, maximum: maximum) ?? 1
        if let ratio = fields.fields["allocation_ratio"] {
            let number: Double? = switch ratio {
            case .double(let value): value
            case .int(let value): Double(value)
            default: nil
            }
            guard let number, number > 0, number <= 3.40282e38 else {
                throw .badRequest("Invalid input for field 'allocation_ratio': \(ratio.serialized()) is not a positive number")
            }
            inventory.allocationRatio = number
        }
        return inventory
    }

    /// `{"VCPU": 1, ...}`: class names as Placement allows them, positive integer amounts.
    static func resources(_ value: JSONValue?, path: String) throws(NimbusError) -> [String: Int64] {
        let fields = try FieldReader(value, path: path)
        guard !fields.fields.isEmpty else { throw .badRequest("Invalid input for field '\(path)': {} does not have enough properties") }
        var out: [String: Int64] = [:]
        for (name, amount) in fields.fields {
            guard isClassName(name) else {
                throw .badRequest("Invalid input for field '\(path)': '\(name)' does not match any of the regexes: '^[0-9A-Z_]+$'")
            }
            guard let number = amount.intValue, number >= 1 else {
                throw .badRequest("Invalid input for field '\(name)': \(amount.serialized()) is not a positive integer")
            }
            out[name] = number
        }
        return out
    }

    static func isClassName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255
            && name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }

    static func requireUUID(_ value: String, field: String) throws(NimbusError) {
        guard Identifier.looksLikeUUID(value) else {
            throw .badRequest("Invalid input for field '\(field)': '\(value)' is not a 'uuid'")
        }
    }

    /// Placement stores dashed uuids; clients may send 32 hex digits.
    static func normalizedUUID(_ value: String) -> String {
        guard value.count == 32, !value.contains("-") else { return value.lowercased() }
        let chars = Array(value.lowercased())
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(chars[$0]) }.joined(separator: "-")
    }
}
