import Foundation
import NimbusCore
import SQLKit
import Store

/// Host aggregates (`os-aggregates`): named groups of hosts with metadata, which set hosts'
/// availability zone and feed the scheduler (AggregateMultiTenancyIsolation's `filter_tenant_id`).
extension ComputeService {
    public func aggregates(caller: AuthContext) async throws -> [Record] {
        try Self.requireAdmin(caller, "os_compute_api:os-aggregates:index")
        return try await database.read { try await ComputeSchema.aggregates.list(orderBy: "number", on: $0) }
    }

    /// By number (as Nova's API addresses them) or uuid.
    public func aggregate(_ id: String, caller: AuthContext) async throws -> Record {
        try Self.requireAdmin(caller, "os_compute_api:os-aggregates:show")
        let all = try await database.read { try await ComputeSchema.aggregates.list(on: $0) }
        guard let found = all.first(where: { String($0["number"]?.intValue ?? -1) == id || $0.string("id") == id }) else {
            throw NimbusError.notFound("Aggregate \(id) could not be found.")
        }
        return found
    }

    public func createAggregate(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireAdmin(caller, "os_compute_api:os-aggregates:create")
        let fields = try FieldReader(body: body, root: "aggregate")
        try fields.rejectUnknown(["name", "availability_zone"])
        let name = try fields.string("name", required: true, minLength: 1, maxLength: 255)!
        let zone = try fields.string("availability_zone", nullable: true, minLength: 1, maxLength: 255)
        do {
            return try await database.transaction { db in
                let numbers = try await ComputeSchema.aggregates.list(on: db).compactMap { $0["number"]?.intValue }
                var metadata: [String: JSONValue] = [:]
                if let zone { metadata["availability_zone"] = .string(zone) }
                let record: Record = [
                    "id": .string(Identifier.uuid()), "number": .int((numbers.max() ?? 0) + 1), "name": .string(name),
                    "availability_zone": .optional(zone), "metadata": .object(metadata), "hosts": [],
                    "created_at": .string(Self.now()), "updated_at": nil,
                ]
                try await ComputeSchema.aggregates.insert(record, on: db)
                return record
            }
        } catch where Database.isUniqueViolation(error) {
            throw NimbusError.conflict("Aggregate \(name) already exists.")
        }
    }

    public func updateAggregate(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        let fields = try FieldReader(body: body, root: "aggregate")
        try fields.rejectUnknown(["name", "availability_zone"])
        let name = try fields.string("name", minLength: 1, maxLength: 255)
        let zoneGiven = fields.has("availability_zone")
        let zone = try fields.string("availability_zone", nullable: true, minLength: 1, maxLength: 255)
        return try await changeAggregate(id, caller: caller) { record in
            if let name { record["name"] = .string(name) }
            if zoneGiven { Self.setZone(&record, zone) }
        }
    }

    static func setZone(_ record: inout Record, _ zone: String?) {
        record["availability_zone"] = .optional(zone)
        var metadata = record["metadata"]?.objectValue ?? [:]
        metadata["availability_zone"] = zone.map { .string($0) }
        record["metadata"] = .object(metadata)
    }

    public func deleteAggregate(_ id: String, caller: AuthContext) async throws {
        let record = try await aggregate(id, caller: caller)
        guard (record["hosts"]?.arrayValue ?? []).isEmpty else {
            throw NimbusError.badRequest("Cannot remove aggregate \(id): it still has hosts.")
        }
        try await database.transaction { try await ComputeSchema.aggregates.delete(id: record.string("id") ?? "", on: $0) }
    }

    public func aggregateAction(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        guard let object = body.objectValue, object.count == 1, let (action, argument) = object.first else {
            throw NimbusError.badRequest("Invalid input: the body must name exactly one action.")
        }
        switch action {
        case "add_host", "remove_host":
            let host = try FieldReader(argument, path: action).string("host", required: true, minLength: 1, maxLength: 255)!
            let known = try await database.read { db in
                try await ComputeSchema.services.count([.init("host", .equal, .string(host)), .init("service_binary", .equal, "nova-compute")], on: db)
            }
            guard known > 0 else { throw NimbusError.notFound("Compute host \(host) could not be found.") }
            return try await changeAggregate(id, caller: caller) { record in
                var hosts = (record["hosts"]?.arrayValue ?? []).compactMap(\.stringValue)
                if action == "add_host" {
                    guard !hosts.contains(host) else { throw NimbusError.conflict("Aggregate \(id) already has host \(host).") }
                    hosts.append(host)
                } else {
                    guard hosts.contains(host) else { throw NimbusError.notFound("Cannot remove host \(host) in aggregate \(id)") }
                    hosts.removeAll { $0 == host }
                }
                record["hosts"] = .array(hosts.map { .string($0) })
            }
        case "set_metadata":
            guard let items = argument["metadata"]?.objectValue else {
                throw NimbusError.badRequest("Invalid input for field/attribute set_metadata. Value: 'metadata' is a required property")
            }
            return try await changeAggregate(id, caller: caller) { record in
                var metadata = record["metadata"]?.objectValue ?? [:]
                for (key, value) in items {
                    guard !key.isEmpty, key.count <= 255 else { throw NimbusError.badRequest("Invalid metadata key \(key)") }
                    if value.isNull { metadata[key] = nil } else if let text = value.stringValue { metadata[key] = .string(text) } else {
                        throw NimbusError.badRequest("Invalid input for field/attribute \(key). Value: \(value.serialized()). not a string")
                    }
                }
                record["metadata"] = .object(metadata)
                record["availability_zone"] = metadata["availability_zone"] ?? .null
            }
        default:
            throw NimbusError.badRequest("There is no such action: \(action)")
        }
    }

    func changeAggregate(_ id: String, caller: AuthContext, _ change: @escaping @Sendable (inout Record) throws -> Void) async throws -> Record {
        try Self.requireAdmin(caller, "os_compute_api:os-aggregates:update")
        let current = try await aggregate(id, caller: caller)
        do {
            let result = try await database.transaction { db in
                guard var record = try await ComputeSchema.aggregates.fetchForUpdate(current.string("id") ?? "", on: db) else {
                    throw NimbusError.notFound("Aggregate \(id) could not be found.")
                }
                try change(&record)
                record["updated_at"] = .string(Self.now())
                try await ComputeSchema.aggregates.update(current.string("id") ?? "", record, on: db)
                return record
            }
            invalidateHostViews()
            return result
        } catch where Database.isUniqueViolation(error) {
            throw NimbusError.conflict("Aggregate name already exists.")
        }
    }

    /// Per host: the metadata of every aggregate it is in (for the scheduler) and the zone they give it.
    func aggregatesByHost() async throws -> [String: [[String: String]]] {
        let all = try await database.read { try await ComputeSchema.aggregates.list(on: $0) }
        var out: [String: [[String: String]]] = [:]
        for record in all {
            let metadata = (record["metadata"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
            for host in (record["hosts"]?.arrayValue ?? []).compactMap(\.stringValue) { out[host, default: []].append(metadata) }
        }
        return out
    }
}
