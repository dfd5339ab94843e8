import Foundation
import NimbusCore

/// Nova's image API: a read-and-delete view of the Image service's images, in Nova's shape.
/// Microversion 2.36 removed it (404), as Nova did; clients use the Image API directly since.
extension ComputeAPI {
    static let lastImageProxyVersion = 35

    static func registerImages(_ table: inout Table, _ service: ComputeService) {
        for detail in [false, true] {
            table.add(.get, detail ? "/images/detail" : "/images") { request, _, call in
                try requireImageProxy(call)
                let images = try await service.images.images(limit: try limit(request), marker: query(request, "marker"), caller: call.caller)
                return .json(["images": .array(images.map { detail ? call.views.image($0) : call.views.imageSummary($0) })])
            }
        }
        table.add(.get, "/images/{id}") { _, context, call in
            try requireImageProxy(call)
            return .json(["image": call.views.image(try await proxiedImage(context.path("id"), service, call))])
        }
        table.add(.delete, "/images/{id}") { _, context, call in
            try requireImageProxy(call)
            let id = try await proxiedImage(context.path("id"), service, call).id
            try await service.images.deleteImage(id, caller: call.caller)
            return .empty()
        }
    }

    static func requireImageProxy(_ call: Call) throws {
        guard call.version <= lastImageProxyVersion else { throw NimbusError.notFound("The resource could not be found.") }
    }

    static func proxiedImage(_ id: String, _ service: ComputeService, _ call: Call) async throws -> ImageFacts {
        guard let image = try await service.images.image(id, caller: call.caller) else {
            throw NimbusError.notFound("Image not found.")
        }
        return image
    }
}

extension ComputeViews {
    func imageLinks(_ id: String) -> JSONValue {
        var out = links("images", id).arrayValue ?? []
        out.append(["rel": "alternate", "type": "application/vnd.openstack.image", "href": .string("\(publicURL)/image/v2/images/\(id)")])
        return .array(out)
    }

    func imageSummary(_ image: ImageFacts) -> JSONValue {
        ["id": .string(image.id), "name": .string(image.name), "links": imageLinks(image.id)]
    }

    /// Nova's image document: Glance's status folded into Nova's (`queued`/`saving` are SAVING).
    func image(_ image: ImageFacts) -> JSONValue {
        let (status, progress): (String, Int64) = switch image.status {
        case "active": ("ACTIVE", 100)
        case "queued": ("SAVING", 25)
        case "saving", "uploading", "importing": ("SAVING", 50)
        case "deleted", "pending_delete": ("DELETED", 0)
        case "killed": ("ERROR", 0)
        default: ("UNKNOWN", 0)
        }
        var out: [String: JSONValue] = [
            "id": .string(image.id), "name": .string(image.name), "status": .string(status), "progress": .int(progress),
            "minRam": .int(image.minRAMMB), "minDisk": .int(image.minDiskGB),
            "metadata": .object(image.properties.mapValues { .string($0) }),
            "created": .string(image.createdAt), "updated": .string(image.updatedAt),
            "OS-EXT-IMG-SIZE:size": image.status == "active" ? .int(image.sizeBytes) : .null,
            "links": imageLinks(image.id),
        ]
        // A snapshot names its server.
        if let server = image.properties["instance_uuid"] { out["server"] = ["id": .string(server), "links": links("servers", server)] }
        return .object(out)
    }
}
