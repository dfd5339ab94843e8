import Foundation
import NimbusCore
import SQLKit
import Store

/// The two JSON-patch forms Glance accepts, told apart by the request's media type.
public enum ImagePatchDialect: Sendable {
    /// `application/openstack-images-v2.1-json-patch` (RFC 6902): `{"op": "replace", "path": "/name", "value": …}`.
    case rfc6902
    /// `application/openstack-images-v2.0-json-patch` (draft 10): `{"replace": "/name", "value": …}`.
    case draft10

    public init?(mediaType: String) {
        if mediaType.hasPrefix("application/openstack-images-v2.1-json-patch") {
            self = .rfc6902
        } else if mediaType.hasPrefix("application/openstack-images-v2.0-json-patch") {
            self = .draft10
        } else {
            return nil
        }
    }

    static let operations = ["add", "replace", "remove"]

    /// The operation's verb and JSON pointer.
    func operation(_ fields: FieldReader) throws -> (op: String, path: String) {
        switch self {
        case .rfc6902:
            let op = try fields.string("op", required: true)!
            guard Self.operations.contains(op) else {
                throw NimbusError.badRequest("Unable to find '\(op)' in JSON Schema change: only add, replace and remove are supported")
            }
            return (op, try fields.string("path", required: true)!)
        case .draft10:
            let named = Self.operations.filter { fields.fields[$0] != nil }
            guard named.count == 1, let op = named.first else {
                throw NimbusError.badRequest("Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".")
            }
            return (op, try fields.string(op, required: true)!)
        }
    }
}

extension ImageService {
    /// `PATCH` with a JSON patch (`add`, `replace`, `remove`) on core attributes, tags and properties.
    public func update(_ id: String, patch: JSONValue, dialect: ImagePatchDialect = .rfc6902, caller: AuthContext) async throws -> Record {
        guard let operations = patch.arrayValue else {
            throw NimbusError.badRequest("The request body must be a JSON-patch list of operations.")
        }
        _ = try await ownedImage(id, caller, action: "modify")
        return try await database.transaction { db in
            guard var image = try await ImageSchema.images.fetchForUpdate(id, on: db) else {
                throw NimbusError.notFound("No image found with ID \(id)")
            }
            var properties = image["properties"]?.objectValue ?? [:]
            for operation in operations {
                let fields = try FieldReader(operation, path: "patch")
                let (op, path) = try dialect.operation(fields)
                guard path.hasPrefix("/"), path.count > 1 else { throw NimbusError.badRequest("Invalid JSON pointer for this resource: '\(path)'") }
                let key = String(path.dropFirst()).replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                if ImageWire.readOnly.contains(key) { throw NimbusError.forbidden("Attribute '\(key)' is read-only.") }
                if ImageWire.isReserved(key) { throw NimbusError.forbidden("Attribute '\(key)' is reserved.") }
                if key == "id" { throw NimbusError.forbidden("Attribute 'id' is read-only.") }
                if ["disk_format", "container_format"].contains(key), image.string("status") != "queued" {
                    throw NimbusError.forbidden("Attribute \(key) can be only replaced for a queued image.")
                }
                if op == "remove" {
                    if ImageWire.core.contains(key) {
                        guard key == "tags" else { throw NimbusError.forbidden("Attribute '\(key)' cannot be removed.") }
                        image["tags"] = []
                    } else {
                        guard properties.removeValue(forKey: key) != nil else {
                            throw NimbusError.conflict("Property \(key) does not exist.")
                        }
                    }
                    continue
                }
                guard let value = fields.fields["value"] else { throw NimbusError.badRequest("Operation '\(op)' requires a 'value'.") }
                let valid = try ImageWire.validate(key, value)
                if key == "owner", valid != image["owner"], !caller.isAdmin {
                    throw NimbusError.forbidden("You are not permitted to change the owner of an image.")
                }
                if key == "visibility", valid == "public", !caller.isAdmin {
                    throw NimbusError.forbidden("You are not authorized to complete publicize_image action.")
                }
                if ImageWire.core.contains(key) {
                    image[key] = valid
                } else {
                    if op == "replace", properties[key] == nil { throw NimbusError.conflict("Property \(key) does not exist.") }
                    properties[key] = valid
                }
            }
            image["properties"] = .object(properties)
            image["updated_at"] = .string(Timestamp.seconds(Date()))
            var changes = image
            for key in ImageWire.readOnly { changes.removeValue(forKey: key) }
            changes["updated_at"] = image["updated_at"]
            try await ImageSchema.images.update(id, changes, on: db)
            return try await ImageSchema.images.fetch(id, on: db) ?? image
        }
    }

    public func delete(_ id: String, caller: AuthContext) async throws {
        let image = try await ownedImage(id, caller, action: "delete")
        if image["protected"] == true { throw NimbusError.forbidden("Image \(id) is protected and cannot be deleted.") }
        try await database.transaction { db in
            try await ImageSchema.images.delete(id: id, on: db)
        }
        files.remove(id)
    }

    public func setTag(_ id: String, tag: String, present: Bool, caller: AuthContext) async throws {
        guard tag.count <= 255 else { throw NimbusError.badRequest("Tag is too long: at most 255 characters.") }
        _ = try await ownedImage(id, caller, action: "modify")
        try await database.transaction { db in
            guard let image = try await ImageSchema.images.fetchForUpdate(id, on: db) else { throw NimbusError.notFound("No image found with ID \(id)") }
            var tags = image["tags"]?.arrayValue ?? []
            if present {
                if !tags.contains(.string(tag)) { tags.append(.string(tag)) }
            } else {
                guard tags.contains(.string(tag)) else { throw NimbusError.notFound("Tag \(tag) not found") }
                tags.removeAll { $0 == .string(tag) }
            }
            try await ImageSchema.images.update(id, ["tags": .array(tags), "updated_at": .string(Timestamp.seconds(Date()))], on: db)
        }
    }

    /// The owner's members and admins hide an image's data from other non-admins, and give it back.
    public func setActive(_ id: String, active: Bool, caller: AuthContext) async throws {
        guard isOwner(try await visibleImage(id, caller), caller) else { throw NimbusError.forbidden("You are not authorized to complete \(active ? "reactivate" : "deactivate") action.") }
        try await database.transaction { db in
            guard let image = try await ImageSchema.images.fetchForUpdate(id, on: db) else { throw NimbusError.notFound("No image found with ID \(id)") }
            let status = image.string("status") ?? ""
            if status == (active ? "active" : "deactivated") { return }
            _ = try await self.transition(id, from: [active ? "deactivated" : "active"], to: active ? "active" : "deactivated", on: db)
        }
    }
}
