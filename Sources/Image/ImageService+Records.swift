import Foundation
import NimbusCore
import SQLKit
import Store

extension ImageService {
    /// `POST /v2/images`: a `queued` record owned by the caller's project.
    public func create(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        guard let fields = body.objectValue else { throw NimbusError.badRequest("The request body must be a JSON object.") }
        guard let project = caller.projectID else { throw NimbusError.forbidden("Images can only be created with a project-scoped token.") }
        var record: Record = [
            "id": .string(Identifier.uuid()), "name": nil, "status": "queued", "visibility": "shared", "protected": false,
            "os_hidden": false, "owner": .string(project), "disk_format": nil, "container_format": nil, "min_disk": 0, "min_ram": 0,
            "size": nil, "virtual_size": nil, "checksum": nil, "os_hash_algo": nil, "os_hash_value": nil, "tags": [],
        ]
        var properties: [String: JSONValue] = [:]
        for (key, value) in fields {
            if ImageWire.readOnly.contains(key) { throw NimbusError.forbidden("Attribute '\(key)' is read-only.") }
            if ImageWire.isReserved(key) { throw NimbusError.forbidden("Attribute '\(key)' is reserved.") }
            let valid = try ImageWire.validate(key, value)
            if ImageWire.core.contains(key) { record[key] = valid } else if !valid.isNull { properties[key] = valid }
        }
        // Only an admin creates images for another project (Glance's add_image rule).
        let owner = record.string("owner") ?? project
        guard owner == project || caller.isAdmin else {
            throw NimbusError.forbidden("You are not permitted to create images owned by '\(owner)'.")
        }
        if record.string("visibility") == "public" && !caller.isAdmin {
            throw NimbusError.forbidden("You are not authorized to complete publicize_image action.")
        }
        record["properties"] = .object(properties)
        let now = Timestamp.seconds(Date())
        record["created_at"] = .string(now)
        record["updated_at"] = .string(now)
        let limit = configuration.maxImagesPerProject
        let frozen = record
        do {
            try await database.transaction { db in
                let count = try await ImageSchema.images.count([.init("owner", .equal, .string(owner))], on: db)
                if count >= limit {
                    throw NimbusError(.payloadTooLarge, "Image count quota exceeded: project \(owner) may have at most \(limit) images.")
                }
                try await ImageSchema.images.insert(frozen, on: db)
            }
        } catch where Database.isUniqueViolation(error) {
            throw NimbusError.conflict("An image with identifier \(frozen.string("id") ?? "") already exists")
        }
        return record
    }

    /// Glance's list rules: own images, public ones, shared ones the caller accepted (or by
    /// `member_status`), community ones only when asked for; hidden ones only when asked for.
    public func list(query: [String: [String]], caller: AuthContext) async throws -> (images: [Record], next: String?) {
        func one(_ key: String) -> String? { query[key]?.last }
        let visibility = one("visibility")
        if let visibility, visibility != "all", !ImageWire.visibilities.contains(visibility) {
            throw NimbusError.badRequest("Invalid visibility value: \(visibility)")
        }
        let memberStatus = one("member_status") ?? "accepted"
        let limit = try one("limit").map { text throws(NimbusError) -> Int in
            guard let value = Int(text), value >= 0 else { throw .badRequest("limit param must be positive") }
            return min(value, 1000)
        } ?? 25
        let (rows, memberships) = try await database.read { db in
            let rows = try await ImageSchema.images.list(on: db)
            let memberships = try await caller.projectID.asyncMap { project in
                try await ImageSchema.members.list([.init("member_id", .equal, .string(project))], on: db)
            } ?? []
            return (rows, memberships)
        }
        let membership = Dictionary(memberships.map { ($0.string("image_id") ?? "", $0.string("status") ?? "") }, uniquingKeysWith: { a, _ in a })
        var images = rows.filter { image in
            let kind = image.string("visibility") ?? ""
            if let visibility, visibility != "all", kind != visibility { return false }
            let mine = image.string("owner") == caller.projectID
            switch kind {
            case "public": return true
            case "community": return visibility != nil || mine || caller.isAdmin
            case "shared":
                if query["member_status"] != nil && !mine { return membership[image.string("id") ?? ""] == memberStatus }
                return mine || caller.isAdmin || membership[image.string("id") ?? ""] == memberStatus
            default: return mine || caller.isAdmin
            }
        }
        images = try filter(images, query)
        images = try sort(images, query)
        if let marker = one("marker") {
            guard let index = images.firstIndex(where: { $0.string("id") == marker }) else {
                throw NimbusError.badRequest("Invalid marker. Image \(marker) could not be found.")
            }
            images = Array(images[(index + 1)...])
        }
        let page = Array(images.prefix(limit))
        var next: String?
        if images.count > limit, let last = page.last?.string("id") {
            var parameters = query.filter { $0.key != "marker" }.flatMap { key, values in values.map { "\(key)=\(Self.escape($0))" } }
            parameters.append("marker=\(last)")
            if query["limit"] == nil { parameters.append("limit=\(limit)") }
            next = "/v2/images?" + parameters.sorted().joined(separator: "&")
        }
        return (page, next)
    }

    private func filter(_ images: [Record], _ query: [String: [String]]) throws -> [Record] {
        let ignored: Set<String> = ["limit", "marker", "sort", "sort_key", "sort_dir", "visibility", "member_status"]
        var images = images
        if query["os_hidden"]?.last != "true" { images = images.filter { $0["os_hidden"] != true } }
        for (key, values) in query where !ignored.contains(key) && key != "os_hidden" {
            for value in values {
                switch key {
                case "tag": images = images.filter { $0["tags"]?.arrayValue?.contains(.string(value)) == true }
                case "size_min", "size_max":
                    guard let bound = Int64(value) else { throw NimbusError.badRequest("Invalid \(key) value: \(value)") }
                    images = images.filter { image in
                        guard let size = image["size"]?.intValue else { return false }
                        return key == "size_min" ? size >= bound : size <= bound
                    }
                case "id" where value.hasPrefix("in:"):
                    let ids = Set(value.dropFirst(3).split(separator: ",").map(String.init))
                    images = images.filter { ids.contains($0.string("id") ?? "") }
                case "protected":
                    images = images.filter { $0["protected"] == .bool(value == "true") }
                case _ where value.hasPrefix("in:"):
                    let options = Set(value.dropFirst(3).split(separator: ",").map(String.init))
                    images = images.filter { options.contains(Self.text($0, key) ?? "") }
                default:
                    images = images.filter { Self.text($0, key) == value }
                }
            }
        }
        return images
    }

    /// A core column or a free-form property, as text, for equality filters.
    static func text(_ image: Record, _ key: String) -> String? {
        if let value = image[key], !value.isNull { return value.stringValue ?? value.serialized() }
        return image["properties"]?[key]?.stringValue
    }

    private func sort(_ images: [Record], _ query: [String: [String]]) throws -> [Record] {
        var keys: [(String, Bool)] = []
        if let sort = query["sort"]?.last {
            for part in sort.split(separator: ",") {
                let pieces = part.split(separator: ":").map(String.init)
                keys.append((pieces[0], pieces.count < 2 || pieces[1] == "desc"))
            }
        } else {
            let sortKeys = query["sort_key"] ?? ["created_at"]
            let directions = query["sort_dir"] ?? []
            for (index, key) in sortKeys.enumerated() {
                let direction = index < directions.count ? directions[index] : (directions.last ?? "desc")
                guard direction == "asc" || direction == "desc" else { throw NimbusError.badRequest("Invalid sort direction: \(direction)") }
                keys.append((key, direction == "desc"))
            }
        }
        let sortable: Set<String> = ["name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at", "visibility", "min_disk", "min_ram", "owner"]
        for (key, _) in keys where !sortable.contains(key) { throw NimbusError.badRequest("Invalid sort key: \(key)") }
        keys.append(("id", true))
        return images.sorted { left, right in
            for (key, descending) in keys {
                let a = left[key] ?? nil, b = right[key] ?? nil
                if a == b { continue }
                let ascending: Bool
                switch (a, b) {
                case (.int(let x), .int(let y)): ascending = x < y
                case (.null, _): ascending = true
                case (_, .null): ascending = false
                default: ascending = (a.stringValue ?? "") < (b.stringValue ?? "")
                }
                return descending ? !ascending : ascending
            }
            return false
        }
    }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:,"))) ?? text
    }
}
