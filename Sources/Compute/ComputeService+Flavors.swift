import Foundation
import NimbusCore
import SQLKit
import Store

extension ComputeService {
    /// Flavors a caller may use: public ones, private ones shared with their project, all for admins.
    func visibleFlavors(_ caller: AuthContext, isPublic: Bool?) async throws -> [Record] {
        let (flavors, access) = try await database.read { db in
            (try await ComputeSchema.flavors.list(on: db), try await ComputeSchema.flavorAccess.list(on: db))
        }
        let shared = Set(access.filter { $0.string("project_id") == caller.projectID }.compactMap { $0.string("flavor_id") })
        return flavors.filter { flavor in
            let flavorIsPublic = flavor["is_public"] == true
            if let isPublic, caller.isAdmin { return flavorIsPublic == isPublic }
            if flavorIsPublic { return isPublic != false }
            return caller.isAdmin || shared.contains(flavor.string("id") ?? "")
        }
    }

    /// A flavor by id (or, as clients fall back to, by name). - Throws: 404 as Nova words it.
    public func flavor(_ id: String, _ caller: AuthContext) async throws -> Record {
        let (flavor, shared) = try await database.read { db in
            let flavor = try await ComputeSchema.flavors.fetch(id, on: db)
            let access = try await ComputeSchema.flavorAccess.list(
                [.init("flavor_id", .equal, .string(id)), .init("project_id", .equal, .string(caller.projectID ?? ""))], on: db)
            return (flavor, !access.isEmpty)
        }
        guard let flavor, flavor["is_public"] == true || caller.isAdmin || shared else {
            throw NimbusError.notFound("Flavor \(id) could not be found.")
        }
        return flavor
    }

    public func createFlavor(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        guard caller.isAdmin else { throw NimbusError.forbidden("Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.") }
        let fields = try FieldReader(body: body, root: "flavor")
        try fields.rejectUnknown(["name", "ram", "vcpus", "disk", "id", "OS-FLV-EXT-DATA:ephemeral", "swap", "rxtx_factor",
                                  "os-flavor-access:is_public", "description"])
        let name = try fields.string("name", required: true, minLength: 1, maxLength: 255)!
        guard name.trimmingCharacters(in: .whitespaces) == name else {
            throw NimbusError.badRequest("Invalid input for field/attribute name. Value: \(name). Leading and trailing whitespace is not allowed.")
        }
        var id = try fields.string("id", nullable: true, minLength: 1, maxLength: 255)
        if id == nil || id == "auto" { id = Identifier.uuid() }
        let record: Record = [
            "id": .string(id!), "name": .string(name),
            "vcpus": .int(try Self.requiredInt(fields, "vcpus", minimum: 1)),
            "ram": .int(try Self.requiredInt(fields, "ram", minimum: 1)),
            "disk": .int(try Self.requiredInt(fields, "disk", minimum: 0)),
            "ephemeral": .int(try fields.int("OS-FLV-EXT-DATA:ephemeral", minimum: 0, maximum: Int64(Int32.max)) ?? 0),
            "swap": .int(try fields.int("swap", minimum: 0, maximum: Int64(Int32.max)) ?? 0),
            "rxtx_factor": .double(Self.number(fields.fields["rxtx_factor"]) ?? 1.0),
            "is_public": .bool(try fields.bool("os-flavor-access:is_public") ?? true), "disabled": false,
            "description": .optional(try fields.string("description", nullable: true, maxLength: 65_535)),
            "extra_specs": [:], "created_at": .string(Timestamp.seconds(Date())),
        ]
        do {
            try await database.transaction { try await ComputeSchema.flavors.insert(record, on: $0) }
        } catch where Database.isUniqueViolation(error) {
            throw NimbusError.conflict("Flavor with name \(name) already exists.")
        }
        return record
    }

    static func requiredInt(_ fields: FieldReader, _ key: String, minimum: Int64) throws -> Int64 {
        guard fields.has(key) else { throw NimbusError.badRequest("Invalid input for field/attribute flavor. Value: '\(key)' is a required property") }
        if let text = fields.fields[key]?.stringValue, let number = Int64(text), number >= minimum { return number }
        guard let number = try fields.int(key, minimum: minimum, maximum: Int64(Int32.max)) else {
            throw NimbusError.badRequest("Invalid input for field/attribute \(key).")
        }
        return number
    }

    static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .double(let number)?: number
        case .int(let number)?: Double(number)
        case .string(let text)?: Double(text)
        default: nil
        }
    }

    /// Seeds the usual flavors once (`m1.nano` … `m1.large`), as devstack does.
    public func seedFlavors() async throws {
        let standard: [(String, String, Int64, Int64, Int64)] = [
            ("42", "m1.nano", 1, 128, 1), ("84", "m1.micro", 1, 192, 1), ("1", "m1.tiny", 1, 512, 1),
            ("2", "m1.small", 1, 2048, 20), ("3", "m1.medium", 2, 4096, 40), ("4", "m1.large", 4, 8192, 80),
        ]
        try await database.transaction { db in
            for (id, name, vcpus, ram, disk) in standard where try await ComputeSchema.flavors.fetch(id, on: db) == nil {
                try await ComputeSchema.flavors.insert([
                    "id": .string(id), "name": .string(name), "vcpus": .int(vcpus), "ram": .int(ram), "disk": .int(disk),
                    "ephemeral": 0, "swap": 0, "rxtx_factor": .double(1), "is_public": true, "disabled": false,
                    "description": nil, "extra_specs": [:], "created_at": .string(Timestamp.seconds(Date())),
                ], on: db)
            }
        }
    }

    /// The flavor as Nova embeds it in a server from microversion 2.47 (a snapshot, not a link).
    static func embedded(_ flavor: Record) -> JSONValue {
        [
            "vcpus": flavor["vcpus"] ?? 0, "ram": flavor["ram"] ?? 0, "disk": flavor["disk"] ?? 0,
            "ephemeral": flavor["ephemeral"] ?? 0, "swap": flavor["swap"] ?? 0, "original_name": flavor["name"] ?? "",
            "extra_specs": flavor["extra_specs"] ?? [:],
        ]
    }
}

extension ComputeService {
    static func requireAdmin(_ caller: AuthContext, _ policy: String) throws {
        guard caller.isAdmin else { throw NimbusError.forbidden("Policy doesn't allow \(policy) to be performed.") }
    }

    public func deleteFlavor(_ id: String, caller: AuthContext) async throws {
        try Self.requireAdmin(caller, "os_compute_api:os-flavor-manage:delete")
        try await database.transaction { db in
            guard try await ComputeSchema.flavors.fetch(id, on: db) != nil else { throw NimbusError.notFound("Flavor \(id) could not be found.") }
            try await ComputeSchema.flavorAccess.delete([.init("flavor_id", .equal, .string(id))], on: db)
            try await ComputeSchema.flavors.delete(id: id, on: db)
        }
    }

    /// Only the description changes after creation (microversion 2.55).
    public func updateFlavor(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireAdmin(caller, "os_compute_api:os-flavor-manage:update")
        let fields = try FieldReader(body: body, root: "flavor")
        try fields.rejectUnknown(["description"])
        guard fields.has("description") else { throw NimbusError.badRequest("Invalid input for field/attribute flavor. Value: {}. 'description' is a required property") }
        let description = try fields.string("description", nullable: true, maxLength: 65_535)
        return try await database.transaction { db in
            guard var record = try await ComputeSchema.flavors.fetch(id, on: db) else { throw NimbusError.notFound("Flavor \(id) could not be found.") }
            record["description"] = .optional(description)
            try await ComputeSchema.flavors.update(id, ["description": .optional(description)], on: db)
            return record
        }
    }

    public func setExtraSpecs(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> [String: String] {
        try Self.requireAdmin(caller, "os_compute_api:os-flavor-extra-specs:create")
        guard let specs = body["extra_specs"]?.objectValue else {
            throw NimbusError.badRequest("Invalid input for field/attribute extra_specs. Value: \(body.serialized()). 'extra_specs' is a required property")
        }
        var incoming: [String: String] = [:]
        for (key, value) in specs {
            guard !key.isEmpty, key.count <= 255, key.allSatisfy({ $0.isLetter || $0.isNumber || "-_:. ".contains($0) }) else {
                throw NimbusError.badRequest("Invalid input for field/attribute extra_specs. Value: \(key). Invalid extra spec key.")
            }
            let text: String? = switch value {
            case .string(let s): s
            case .int(let n): String(n)
            case .double(let d): String(d)
            case .bool(let b): b ? "True" : "False"
            default: nil
            }
            guard let text, text.count <= 255 else {
                throw NimbusError.badRequest("Invalid input for field/attribute \(key). Value: \(value.serialized()). Invalid extra spec value.")
            }
            incoming[key] = text
        }
        let given = incoming
        return try await database.transaction { db in
            guard let record = try await ComputeSchema.flavors.fetchForUpdate(id, on: db) else { throw NimbusError.notFound("Flavor \(id) could not be found.") }
            var current = (record["extra_specs"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
            current.merge(given) { _, new in new }
            try await ComputeSchema.flavors.update(id, ["extra_specs": .object(current.mapValues { .string($0) })], on: db)
            return given
        }
    }

    public func extraSpecs(_ id: String, caller: AuthContext) async throws -> [String: String] {
        let record = try await flavor(id, caller)
        return (record["extra_specs"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
    }

    public func deleteExtraSpec(_ id: String, key: String, caller: AuthContext) async throws {
        try Self.requireAdmin(caller, "os_compute_api:os-flavor-extra-specs:delete")
        try await database.transaction { db in
            guard let record = try await ComputeSchema.flavors.fetchForUpdate(id, on: db) else { throw NimbusError.notFound("Flavor \(id) could not be found.") }
            var current = record["extra_specs"]?.objectValue ?? [:]
            guard current.removeValue(forKey: key) != nil else {
                throw NimbusError.notFound("Flavor \(id) has no extra specs with key \(key).")
            }
            try await ComputeSchema.flavors.update(id, ["extra_specs": .object(current)], on: db)
        }
    }

    public func flavorAccess(_ id: String, caller: AuthContext) async throws -> [String] {
        try Self.requireAdmin(caller, "os_compute_api:os-flavor-access")
        return try await database.read { db in
            guard let flavor = try await ComputeSchema.flavors.fetch(id, on: db) else { throw NimbusError.notFound("Flavor \(id) could not be found.") }
            if flavor["is_public"]?.boolValue == true { throw NimbusError.notFound("Access list not available for public flavors.") }
            return try await ComputeSchema.flavorAccess.list([.init("flavor_id", .equal, .string(id))], orderBy: "project_id", on: db)
                .compactMap { $0.string("project_id") }
        }
    }

    public func setFlavorAccess(_ id: String, project: String, granted: Bool, caller: AuthContext) async throws -> [String] {
        try Self.requireAdmin(caller, granted ? "os_compute_api:os-flavor-access:add_tenant_access" : "os_compute_api:os-flavor-access:remove_tenant_access")
        try await database.transaction { db in
            guard let flavor = try await ComputeSchema.flavors.fetch(id, on: db) else { throw NimbusError.notFound("Flavor \(id) could not be found.") }
            if flavor["is_public"]?.boolValue == true {
                throw NimbusError.conflict("Can not add access to a public flavor.")
            }
            let existing = try await ComputeSchema.flavorAccess.list(
                [.init("flavor_id", .equal, .string(id)), .init("project_id", .equal, .string(project))], on: db)
            if granted {
                guard existing.isEmpty else { throw NimbusError.conflict("Flavor access already exists for flavor \(id) and project \(project) combination.") }
                try await ComputeSchema.flavorAccess.insert(["flavor_id": .string(id), "project_id": .string(project)], on: db)
            } else {
                guard !existing.isEmpty else { throw NimbusError.notFound("Flavor access not found for \(id) / \(project) combination.") }
                try await ComputeSchema.flavorAccess.delete(
                    [.init("flavor_id", .equal, .string(id)), .init("project_id", .equal, .string(project))], on: db)
            }
        }
        return try await flavorAccess(id, caller: caller)
    }
}
