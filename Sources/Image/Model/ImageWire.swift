import NimbusCore
import Store

/// Glance's image document and the rules for its attributes.
enum ImageWire {
    static let diskFormats: Set<String> = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
    static let containerFormats: Set<String> = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
    /// The one store, as `/v2/info/stores` and images' `stores` name it.
    static let fileStoreID = "file"
    static let visibilities: Set<String> = ["public", "private", "shared", "community"]
    /// Attributes the server owns; writing them is a 403, as in Glance.
    static let readOnly: Set<String> = [
        "status", "checksum", "size", "virtual_size", "created_at", "updated_at", "self", "file", "schema",
        "locations", "direct_url", "os_hash_algo", "os_hash_value", "stores",
    ]
    /// Glance keeps properties named `os_glance…` for itself; a user setting one is a 403.
    static func isReserved(_ key: String) -> Bool { key.hasPrefix("os_glance") }
    /// Attributes stored in their own columns rather than as free-form properties.
    static let core: Set<String> = ["id", "name", "owner", "visibility", "protected", "os_hidden", "disk_format", "container_format", "min_disk", "min_ram", "tags"]

    static func render(_ image: RecordTable.Record) -> JSONValue {
        var out = image["properties"]?.objectValue ?? [:]
        let id = image.string("id") ?? ""
        for key in ["id", "name", "status", "visibility", "protected", "os_hidden", "owner", "disk_format", "container_format",
                    "min_disk", "min_ram", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "tags",
                    "created_at", "updated_at"] {
            out[key] = image[key] ?? nil
        }
        // Glance names the stores holding an image's data; this cloud has the one `/v2/info/stores` lists.
        if ["active", "deactivated"].contains(image.string("status")) { out["stores"] = .string(fileStoreID) }
        out["self"] = .string("/v2/images/\(id)")
        out["file"] = .string("/v2/images/\(id)/file")
        out["schema"] = "/v2/schemas/image"
        return .object(out)
    }

    static func renderTask(_ task: RecordTable.Record) -> JSONValue {
        var out = task
        out.merge(["result": .null, "deleted": false, "deleted_at": .null]) { _, shown in shown }
        return .object(out)
    }

    static func renderMember(_ member: RecordTable.Record) -> JSONValue {
        [
            "image_id": member["image_id"] ?? nil, "member_id": member["member_id"] ?? nil, "status": member["status"] ?? nil,
            "created_at": member["created_at"] ?? nil, "updated_at": member["updated_at"] ?? nil, "schema": "/v2/schemas/member",
        ]
    }

    /// Validates one core attribute's value. - Returns: the value to store.
    static func validate(_ key: String, _ value: JSONValue) throws(NimbusError) -> JSONValue {
        func invalid(_ detail: String) -> NimbusError { .badRequest("Invalid value for '\(key)': \(detail)") }
        switch key {
        case "name":
            guard value.isNull || (value.stringValue.map { $0.count <= 255 } ?? false) else { throw invalid("must be a string of at most 255 characters") }
        case "visibility":
            guard let text = value.stringValue, visibilities.contains(text) else { throw invalid("must be one of \(visibilities.sorted())") }
        case "protected", "os_hidden":
            guard value.boolValue != nil else { throw invalid("must be a boolean") }
        case "disk_format":
            guard value.isNull || (value.stringValue.map(diskFormats.contains) ?? false) else { throw invalid("must be one of \(diskFormats.sorted())") }
        case "container_format":
            guard value.isNull || (value.stringValue.map(containerFormats.contains) ?? false) else { throw invalid("must be one of \(containerFormats.sorted())") }
        case "min_disk", "min_ram":
            guard let number = value.intValue, number >= 0, number <= Int64(Int32.max) else { throw invalid("must be a non-negative integer") }
            return .int(number)
        case "tags":
            guard let tags = value.arrayValue, tags.allSatisfy({ ($0.stringValue?.count ?? 256) <= 255 }) else {
                throw invalid("must be a list of strings of at most 255 characters")
            }
            var unique: [JSONValue] = []
            for tag in tags where !unique.contains(tag) { unique.append(tag) }
            return .array(unique)
        case "owner":
            guard let text = value.stringValue, !text.isEmpty, text.count <= 255 else { throw invalid("must be a project id of at most 255 characters") }
        case "id":
            guard let text = value.stringValue, Identifier.looksLikeUUID(text) else { throw invalid("must be a UUID") }
            return .string(text.lowercased())
        default:
            // Free-form properties are strings in Glance's schema.
            guard value.stringValue != nil || value.isNull else { throw invalid("additional properties must be strings") }
            guard key.count <= 255, (value.stringValue?.count ?? 0) <= 65_535 else { throw invalid("too long") }
        }
        return value
    }
}
