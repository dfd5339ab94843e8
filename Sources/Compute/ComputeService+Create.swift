import Foundation
import NimbusCore
import SQLKit
import Store

/// What `POST /servers` asked for, validated.
struct BootRequest: Sendable {
    var name: String
    var flavor: FlavorSnapshot
    var imageRef: String
    var keyName: String?
    var keyData: String?
    var userData: String?
    var metadata: [String: String]
    var tags: [String]
    var availabilityZone: String?
    var minCount: Int
    var maxCount: Int
    var networks: JSONValue
    var securityGroups: [String] = []
    var schedulerHints: [String: JSONValue]
    var serverGroup: String?
    var description: String?
    var accessIPv4: String
    var accessIPv6: String
    var configDrive: Bool
    var adminPass: String
    var returnReservationID: Bool
    var requestedHost: String?
}

public struct BootResult: Sendable {
    public var instances: [Instance]
    public var adminPass: String
    public var reservationID: String
    public var returnReservationID: Bool
}

extension ComputeService {
    /// Validates a boot request, checks quota and writes the instances with their `create`
    /// actions in one transaction, then wakes the scheduler. Nothing is written when any check fails.
    public func createServers(_ body: JSONValue, caller: AuthContext, requestID: String, version: Int) async throws -> BootResult {
        guard let projectID = caller.projectID else {
            throw NimbusError.forbidden("Policy doesn't allow os_compute_api:servers:create to be performed.")
        }
        guard caller.isMember else { throw NimbusError.forbidden("Policy doesn't allow os_compute_api:servers:create to be performed.") }
        let request = try await parseBoot(body, caller: caller, version: version)
        let reservationID = "r-" + String(Identifier.hex().prefix(8))
        let now = Self.now()
        let created: [Instance] = try await database.transaction { db in
            try await self.lockQuota(projectID, on: db)
            let count = try await self.quotaCheckedCount(request, projectID: projectID, on: db)
            if let group = request.serverGroup {
                try await self.addGroupMembersCheck(group, adding: count, projectID: projectID, on: db)
            }
            var instances: [Instance] = []
            for index in 0..<count {
                let name = count > 1 ? "\(request.name)-\(index + 1)" : request.name
                var instance = Instance(record: [:])
                instance.id = Identifier.uuid()
                instance.name = name
                instance.projectID = projectID
                instance.userID = caller.user.id
                instance.hostname = Self.hostname(from: name)
                instance.flavor = request.flavor
                instance.imageRef = request.imageRef
                instance.keyName = request.keyName
                instance.keyData = request.keyData
                instance.userData = request.userData
                instance.metadata = request.metadata
                instance.tags = request.tags
                instance.availabilityZone = request.availabilityZone
                instance.vmState = .building
                instance.taskState = .scheduling
                instance.powerState = 0
                instance.createdAt = now
                instance.updatedAt = now
                instance.configDrive = request.configDrive ? "True" : ""
                instance.reservationID = reservationID
                instance.launchIndex = Int64(index)
                instance.requestedNetworks = request.networks
                instance.securityGroups = request.securityGroups
                instance.schedulerHints = request.schedulerHints
                if let host = request.requestedHost { instance.schedulerHints["nimbus:requested_host"] = .string(host) }
                instance.serverGroup = request.serverGroup
                instance.description = request.description
                instance.accessIPv4 = request.accessIPv4
                instance.accessIPv6 = request.accessIPv6
                instance.requestID = requestID
                try await ComputeSchema.instances.insert(instance.record, on: db)
                try await self.recordAction("create", instance: instance, caller: caller, requestID: requestID, on: db)
                instances.append(instance)
            }
            if let group = request.serverGroup {
                try await self.addGroupMembers(group, instances.map(\.id), on: db)
            }
            return instances
        }
        schedulerWake.notify()
        return BootResult(instances: created, adminPass: request.adminPass, reservationID: reservationID,
                          returnReservationID: request.returnReservationID)
    }

    /// How many instances to create: `max_count` if the quota allows, else as many as fit down
    /// to `min_count`, as Nova does. - Throws: 403 with Nova's message when not even `min_count` fits.
    func quotaCheckedCount(_ request: BootRequest, projectID: String, on db: any SQLDatabase) async throws -> Int {
        let limits = try await quotaLimits(projectID, on: db)
        let usage = try await quotaUsage(projectID, on: db)
        let perInstance: [(String, Int64)] = [("instances", 1), ("cores", request.flavor.vcpus), ("ram", request.flavor.ram)]
        var fits = request.maxCount
        for (resource, amount) in perInstance where amount > 0 {
            let limit = limits[resource] ?? -1
            guard limit >= 0 else { continue }
            let room = max(0, limit - (usage[resource] ?? 0)) / amount
            fits = min(fits, Int(room))
        }
        if fits >= request.minCount { return fits }
        // Name the first resource that does not fit even min_count, as Nova's message does.
        for (resource, amount) in perInstance where amount > 0 {
            let limit = limits[resource] ?? -1
            let used = usage[resource] ?? 0
            let requested = amount * Int64(request.minCount)
            if limit >= 0 && used + requested > limit {
                throw NimbusError(.overQuota, "Quota exceeded for \(resource): Requested \(requested), but already used \(used) of \(limit) \(resource)")
            }
        }
        throw NimbusError(.overQuota, "Quota exceeded for instances: Requested \(request.minCount)")
    }

    /// A DNS-safe hostname from a display name, as Nova sanitises it.
    static func hostname(from name: String) -> String {
        var out = ""
        var lastWasDash = false
        for scalar in name.lowercased().unicodeScalars {
            if (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9") {
                out.unicodeScalars.append(scalar)
                lastWasDash = false
            } else if scalar == "-" || scalar == " " || scalar == "_" || scalar == "." {
                if !lastWasDash && !out.isEmpty { out.append("-") }
                lastWasDash = true
            }
        }
        // Cut to a DNS label first, then drop trailing dashes: the cut may end on one.
        var trimmed = String(out.prefix(63))
        while trimmed.hasSuffix("-") { trimmed.removeLast() }
        return trimmed.isEmpty ? "server" : trimmed
    }

    static let serverFields: Set<String> = [
        "name", "imageRef", "flavorRef", "adminPass", "metadata", "networks", "key_name", "user_data",
        "availability_zone", "min_count", "max_count", "return_reservation_id", "block_device_mapping_v2",
        "block_device_mapping", "config_drive", "accessIPv4", "accessIPv6", "description", "tags",
        "security_groups", "OS-DCF:diskConfig", "personality", "trusted_image_certificates", "host",
        "hypervisor_hostname", "hostname",
    ]

    func parseBoot(_ body: JSONValue, caller: AuthContext, version: Int) async throws -> BootRequest {
        guard let outer = body.objectValue else { throw NimbusError.badRequest("Invalid input: the request body must be a JSON object.") }
        if let extra = outer.keys.sorted().first(where: { !["server", "os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"].contains($0) }) {
            throw NimbusError.badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('\(extra)' was unexpected)")
        }
        let fields = try FieldReader(outer["server"], path: "server")
        try fields.rejectUnknown(Self.serverFields)
        let name = try Self.displayName(fields, required: true)!
        let flavorRef: String
        switch fields.fields["flavorRef"] {
        case .string(let text)?: flavorRef = text
        case .int(let number)?: flavorRef = String(number)
        case nil: throw NimbusError.badRequest("Invalid input for field/attribute server. Value: 'flavorRef' is a required property")
        default: throw NimbusError.badRequest("Invalid input for field/attribute flavorRef. Value: \(fields.fields["flavorRef"]!.serialized()). \(fields.fields["flavorRef"]!.serialized()) is not valid under any of the given schemas")
        }
        guard !flavorRef.isEmpty else { throw NimbusError.badRequest("Invalid input for field/attribute flavorRef. Value: . '' is too short") }
        var imageRef = try fields.string("imageRef", nullable: true) ?? ""
        if let mappings = try fields.array("block_device_mapping_v2") {
            imageRef = try Self.imageFromMappings(mappings, imageRef: imageRef)
        }
        if fields.has("block_device_mapping") {
            throw NimbusError.badRequest("Booting from a volume is not supported yet: there is no block storage service.")
        }
        guard !imageRef.isEmpty else { throw NimbusError.badRequest("Missing imageRef attribute") }
        let imageID = imageRef.split(separator: "/").last.map(String.init) ?? imageRef
        guard Identifier.looksLikeUUID(imageID) else { throw NimbusError.badRequest("Invalid imageRef provided.") }

        let minCount = try Self.count(fields, "min_count") ?? 1
        let maxCount = try Self.count(fields, "max_count") ?? minCount
        guard minCount <= maxCount else {
            throw NimbusError.badRequest("min_count must be <= max_count")
        }
        let metadata = try Self.metadata(fields.fields["metadata"], field: "metadata")
        var userData = try fields.string("user_data", nullable: true, maxLength: 65535)
        if let text = userData {
            guard Data(base64Encoded: text, options: .ignoreUnknownCharacters) != nil else {
                throw NimbusError.badRequest("Invalid input for field/attribute user_data. Value: \(text). '\(text)' is not a 'base64'")
            }
            if text.isEmpty { userData = nil }
        }
        let networks = try Self.networks(fields.fields["networks"], version: version, withNetworkService: ports != nil)
        var securityGroups: [String] = []
        for item in try fields.array("security_groups") ?? [] {
            guard let name = item["name"]?.stringValue, !name.isEmpty else {
                throw NimbusError.badRequest("Invalid input for field/attribute security_groups. Value: \(item.serialized()). 'name' is a required property")
            }
            if !securityGroups.contains(name) { securityGroups.append(name) }
        }
        if let ports, let projectID = caller.projectID {
            try await ports.validate(Self.requestedNICs(networks), securityGroups: securityGroups, project: projectID)
        }
        let tags = try fields.stringArray("tags") ?? []
        if version < 52 && !tags.isEmpty {
            throw NimbusError.badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('tags' was unexpected)")
        }
        guard tags.count <= 50 else { throw NimbusError.badRequest("Invalid input for field/attribute tags. Value: too many tags (at most 50).") }
        for tag in tags where tag.isEmpty || tag.count > 60 || tag.contains("/") || tag.contains(",") {
            throw NimbusError.badRequest("Invalid input for field/attribute tags. Value: \(tag). Tags must be 1-60 characters without '/' or ','.")
        }
        let description = try fields.string("description", nullable: true, maxLength: 255)
        let zoneText = try fields.string("availability_zone", nullable: true, minLength: 1, maxLength: 255)
        var zone = zoneText
        var requestedHost: String?
        if let text = zoneText, text.contains(":") {
            // "zone:host" pins a host, an admin privilege in Nova.
            guard caller.isAdmin else {
                throw NimbusError.forbidden("Policy doesn't allow os_compute_api:servers:create:forced_host to be performed.")
            }
            let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            zone = parts[0].isEmpty ? nil : parts[0]
            requestedHost = parts[1].isEmpty ? nil : parts[1]
        }
        if let host = try fields.string("host", minLength: 1, maxLength: 255) {
            guard version >= 74 else { throw NimbusError.badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('host' was unexpected)") }
            guard caller.isAdmin else { throw NimbusError.forbidden("Policy doesn't allow compute:servers:create:requested_destination to be performed.") }
            requestedHost = host
        }
        if let zone, zone != "nova" {
            let zones = try await availabilityZoneNames()
            guard zones.contains(zone) else { throw NimbusError.badRequest("The requested availability zone is not available") }
        }
        let adminPass = try fields.string("adminPass") ?? Self.password()
        let configDrive: Bool = switch fields.fields["config_drive"] {
        case .bool(let flag)?: flag
        case .string(let text)?: ["true", "1", "yes", "t", "y", "on"].contains(text.lowercased())
        default: false
        }
        if version >= 57 && fields.has("personality") {
            throw NimbusError.badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('personality' was unexpected)")
        }

        var hints = [String: JSONValue]()
        if let object = outer["os:scheduler_hints"] ?? outer["OS-SCH-HNT:scheduler_hints"] {
            guard let dictionary = object.objectValue else {
                throw NimbusError.badRequest("Invalid input for field/attribute os:scheduler_hints. Value: \(object.serialized()). \(object.serialized()) is not of type 'object'")
            }
            hints = dictionary
        }
        var group: String?
        if let value = hints["group"] {
            guard let id = value.stringValue ?? value.arrayValue?.first?.stringValue, Identifier.looksLikeUUID(id) else {
                throw NimbusError.badRequest("Invalid input for field/attribute group. Value: \(value.serialized()). \(value.serialized()) is not a 'uuid'")
            }
            group = id
        }

        // References to other resources, checked last: cheaper checks fail first.
        let flavor = try await bootFlavor(flavorRef, caller: caller)
        guard let image = try await images.image(imageID, caller: caller) else {
            throw NimbusError.badRequest("Image \(imageID) could not be found.")
        }
        guard image.status == "active" else { throw NimbusError.badRequest("Image \(imageID) is not active.") }
        if flavor.ram < image.minRAMMB { throw NimbusError.badRequest("Flavor's memory is too small for requested image.") }
        if flavor.disk > 0 {
            if flavor.disk < image.minDiskGB { throw NimbusError.badRequest("Flavor's disk is too small for requested image. Flavor disk is \(flavor.disk << 30) bytes, minimum required by image is \(image.minDiskGB << 30) bytes.") }
            if flavor.disk << 30 < image.sizeBytes { throw NimbusError.badRequest("Flavor's disk is too small for requested image. Flavor disk is \(flavor.disk << 30) bytes, image is \(image.sizeBytes) bytes.") }
        }
        var keyName: String?
        var keyData: String?
        if let name = try fields.string("key_name", nullable: true, minLength: 1, maxLength: 255) {
            let record = try await database.read { db in
                try await ComputeSchema.keypairs.list([.init("user_id", .equal, .string(caller.user.id)), .init("name", .equal, .string(name))], on: db).first
            }
            guard let record else { throw NimbusError.badRequest("Invalid key_name provided.") }
            keyName = name
            keyData = record.string("public_key")
        }
        if let group {
            let exists = try await database.read { try await ComputeSchema.serverGroups.fetch(group, on: $0) }
            guard let exists, exists.string("project_id") == caller.projectID || caller.isAdmin else {
                throw NimbusError.badRequest("Invalid input for field/attribute group. Value: \(group). Server group \(group) not found.")
            }
        }
        return BootRequest(
            name: name, flavor: flavor, imageRef: imageID, keyName: keyName, keyData: keyData, userData: userData,
            metadata: metadata, tags: tags, availabilityZone: zone, minCount: minCount, maxCount: maxCount, networks: networks,
            securityGroups: securityGroups, schedulerHints: hints, serverGroup: group, description: description,
            accessIPv4: try Self.accessIP(fields, version: 4) ?? "", accessIPv6: try Self.accessIP(fields, version: 6) ?? "",
            configDrive: configDrive, adminPass: adminPass,
            returnReservationID: (fields.fields["return_reservation_id"]?.boolValue ?? false)
                || fields.fields["return_reservation_id"]?.stringValue?.lowercased() == "true",
            requestedHost: requestedHost)
    }

    /// A server name as Nova's schema takes it: 1–255 characters, no leading or trailing spaces.
    static func displayName(_ fields: FieldReader, required: Bool) throws -> String? {
        guard let name = try fields.string("name", required: required, minLength: 1, maxLength: 255) else { return nil }
        guard name.trimmingCharacters(in: .whitespacesAndNewlines) == name, !name.isEmpty else {
            throw NimbusError.badRequest("Invalid input for field/attribute name. Value: \(name). '\(name)' does not match '^(?! )[a-zA-Z0-9. _-]+(?<! )$'")
        }
        return name
    }

    static func count(_ fields: FieldReader, _ key: String) throws -> Int? {
        guard let value = fields.fields[key] else { return nil }
        let number: Int64? = switch value {
        case .int(let n): n
        case .string(let text): Int64(text)
        default: nil
        }
        guard let number else {
            throw NimbusError.badRequest("Invalid input for field/attribute \(key). Value: \(value.serialized()). \(value.serialized()) is not valid under any of the given schemas")
        }
        guard number >= 1 else {
            throw NimbusError.badRequest("Invalid input for field/attribute \(key). Value: \(number). \(number) is less than the minimum of 1")
        }
        return Int(min(number, 10_000))
    }

    static func metadata(_ value: JSONValue?, field: String) throws -> [String: String] {
        guard let value else { return [:] }
        guard let object = value.objectValue else {
            throw NimbusError.badRequest("Invalid input for field/attribute \(field). Value: \(value.serialized()). \(value.serialized()) is not of type 'object'")
        }
        var out: [String: String] = [:]
        for (key, item) in object {
            guard !key.isEmpty, key.count <= 255 else {
                throw NimbusError.badRequest("Invalid input for field/attribute \(field). Value: \(key). metadata keys must be 1 to 255 characters")
            }
            guard let text = item.stringValue, text.count <= 255 else {
                throw NimbusError.badRequest("Invalid input for field/attribute \(key). Value: \(item.serialized()). \(item.serialized()) is not of type 'string' of at most 255 characters")
            }
            out[key] = text
        }
        return out
    }

    /// `networks`: "auto", "none" (required from 2.37) or a list of requested networks and ports,
    /// which the Network service checks (without one, a list cannot be honoured).
    static func networks(_ value: JSONValue?, version: Int, withNetworkService: Bool = false) throws -> JSONValue {
        guard let value else {
            if version >= 37 { throw NimbusError.badRequest("Invalid input for field/attribute server. Value: 'networks' is a required property") }
            return "auto"
        }
        if let text = value.stringValue {
            guard text == "auto" || text == "none" else {
                throw NimbusError.badRequest("Invalid input for field/attribute networks. Value: \(text). '\(text)' is not one of ['none', 'auto']")
            }
            return value
        }
        guard let items = value.arrayValue else {
            throw NimbusError.badRequest("Invalid input for field/attribute networks. Value: \(value.serialized()). \(value.serialized()) is not valid under any of the given schemas")
        }
        for item in items {
            let fields = try FieldReader(item, path: "networks")
            try fields.rejectUnknown(["uuid", "port", "fixed_ip", "tag"])
            let port = try fields.string("port", nullable: true)
            let network = try fields.string("uuid")
            if let port, !withNetworkService { throw NimbusError.badRequest("Port \(port) could not be found.") }
            if let network, port == nil {
                guard Identifier.looksLikeUUID(network) else {
                    throw NimbusError.badRequest("Bad networks format: network uuid is not in proper format (\(network))")
                }
                if !withNetworkService { throw NimbusError.badRequest("Network \(network) could not be found.") }
            }
            if port == nil && network == nil {
                throw NimbusError.badRequest("Bad networks format: network uuid or port id is required")
            }
        }
        return items.isEmpty ? "none" : value
    }

    /// The image a `block_device_mapping_v2` boots from. Only the image → local root disk that
    /// every client sends is supported; volumes need the block storage service.
    static func imageFromMappings(_ mappings: [JSONValue], imageRef: String) throws -> String {
        var image = imageRef
        for mapping in mappings {
            let fields = try FieldReader(mapping, path: "block_device_mapping_v2")
            let source = try fields.string("source_type") ?? ""
            let destination = try fields.string("destination_type") ?? "local"
            switch (source, destination) {
            case ("image", "local"):
                if let uuid = try fields.string("uuid") {
                    if image.isEmpty { image = uuid } else if try image != uuid && (fields.int("boot_index") ?? -1) == 0 {
                        throw NimbusError.badRequest("Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.")
                    }
                }
            case ("blank", "local"):
                continue
            default:
                throw NimbusError.badRequest("Block Device Mapping is Invalid: \(source) → \(destination) needs the block storage service, which is not available yet.")
            }
        }
        return image
    }

    static func password() -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<12).map { _ in alphabet.randomElement(using: &generator)! })
    }

    /// The flavor a boot request names, by id, visible to the caller. - Throws: 400 as Nova words it.
    func bootFlavor(_ reference: String, caller: AuthContext) async throws -> FlavorSnapshot {
        let id = reference.split(separator: "/").last.map(String.init) ?? reference
        do {
            let record = try await flavor(id, caller)
            if record["disabled"]?.boolValue == true { throw NimbusError.badRequest("Flavor \(id) could not be found.") }
            return FlavorSnapshot(record: record)
        } catch let error as NimbusError where error.kind == .notFound {
            throw NimbusError.badRequest("Flavor \(id) could not be found.")
        }
    }
}
