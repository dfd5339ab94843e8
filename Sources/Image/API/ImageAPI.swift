import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import NIOCore
import NimbusCore

/// Glance v2's endpoint table, served under `/image`.
public enum ImageAPI {
    public static let prefix = "/image"

    public static func routes(_ service: ImageService, publicURL: String) -> ServiceRoutes {
        var routes = ServiceRoutes(prefix: prefix, faultStyle: .glance, trailingSlashNamesNothing: true)
        let versions: JSONValue = ["versions": .array(["2.16", "2.15", "2.9", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0"].enumerated().map { index, version in
            ["id": .string("v\(version)"), "status": index == 0 ? "CURRENT" : "SUPPORTED",
             "links": [["rel": "self", "href": .string("\(publicURL)\(prefix)/v2/")]]]
        })]
        routes.get("/", .open) { _, _ in .json(versions, status: .multipleChoices) }
        routes.get("/versions", .open) { _, _ in .json(versions) }
        routes.post("/v2/images") { request, context in
            let image = try await service.create(try await request.json(context: context), caller: try context.caller())
            // openstacksdk only stages and imports when this header names the method.
            return .json(ImageWire.render(image), status: .created, headers: [
                .location: "\(publicURL)\(prefix)/v2/images/\(image.string("id") ?? "")",
                HTTPField.Name("OpenStack-image-import-methods")!: "glance-direct",
            ])
        }
        routes.get("/v2/images") { request, context in
            var query: [String: [String]] = [:]
            for name in request.queryNames { query[name] = request.queryAll(name) }
            let (images, next) = try await service.list(query: query, caller: try context.caller())
            var body: [String: JSONValue] = ["images": .array(images.map(ImageWire.render)), "first": "/v2/images", "schema": "/v2/schemas/images"]
            if let next { body["next"] = .string(next) }
            return .json(.object(body))
        }
        routes.get("/v2/images/{id}") { _, context in
            .json(ImageWire.render(try await service.visibleImage(context.path("id"), try context.caller())))
        }
        routes.patch("/v2/images/{id}") { request, context in
            let type = request.headers[.contentType] ?? ""
            guard let dialect = ImagePatchDialect(mediaType: type) else {
                throw NimbusError(.unsupportedMediaType, "Content type \(type.isEmpty ? "(none)" : type) is not supported; use application/openstack-images-v2.1-json-patch.")
            }
            let image = try await service.update(context.path("id"), patch: try await request.json(context: context),
                                                 dialect: dialect, caller: try context.caller())
            return .json(ImageWire.render(image))
        }
        routes.delete("/v2/images/{id}") { _, context in
            try await service.delete(context.path("id"), caller: try context.caller())
            return .empty()
        }
        routes.put("/v2/images/{id}/tags/{tag}") { _, context in
            try await service.setTag(context.path("id"), tag: context.path("tag"), present: true, caller: try context.caller())
            return .empty()
        }
        routes.delete("/v2/images/{id}/tags/{tag}") { _, context in
            try await service.setTag(context.path("id"), tag: context.path("tag"), present: false, caller: try context.caller())
            return .empty()
        }
        for (action, active) in [("deactivate", false), ("reactivate", true)] {
            routes.post("/v2/images/{id}/actions/\(action)") { _, context in
                try await service.setActive(context.path("id"), active: active, caller: try context.caller())
                return .empty()
            }
        }
        registerData(&routes, service)
        registerMembers(&routes, service)
        registerSchemas(&routes)
        return routes
    }

    static func declaredSize(_ request: Request) -> Int64? {
        if let header = HTTPField.Name("X-OpenStack-Image-Size").flatMap({ request.headers[$0] }), let size = Int64(header) { return size }
        return request.headers[.contentLength].flatMap { Int64($0) }
    }

    static func registerData(_ routes: inout ServiceRoutes, _ service: ImageService) {
        routes.put("/v2/images/{id}/file") { request, context in
            _ = try await service.upload(context.path("id"), chunks: request.body, declaredSize: declaredSize(request), caller: try context.caller())
            return .empty()
        }
        routes.put("/v2/images/{id}/stage") { request, context in
            try await service.stage(context.path("id"), chunks: request.body, declaredSize: declaredSize(request), caller: try context.caller())
            return .empty()
        }
        routes.post("/v2/images/{id}/import") { request, context in
            try await service.importStaged(context.path("id"), request: try await request.json(context: context),
                                           requestID: context.requestID, caller: try context.caller())
            return .empty(.accepted)
        }
        routes.get("/v2/images/{id}/tasks") { _, context in
            .json(["tasks": .array(try await service.tasks(ofImage: context.path("id"), caller: try context.caller()).map(ImageWire.renderTask))])
        }
        routes.get("/v2/images/{id}/file") { request, context in
            try await download(request, context, service)
        }
        routes.get("/v2/info/import", .open) { _, _ in
            .json(["import-methods": ["description": "Import methods available.", "type": "array", "value": ["glance-direct"]]])
        }
        routes.get("/v2/info/stores") { _, _ in
            .json(["stores": [["id": .string(ImageWire.fileStoreID), "description": "Local file store", "default": true]]])
        }
    }

    /// Streams the data, whole or a `Range` of it, with `Content-MD5` set to the image checksum.
    static func download(_ request: Request, _ context: NimbusContext, _ service: ImageService) async throws -> Response {
        guard let (path, image) = try await service.dataLocation(context.path("id"), caller: try context.caller()) else {
            return .empty()
        }
        let size = Int(image["size"]?.intValue ?? 0)
        var headers: HTTPFields = [.contentType: "application/octet-stream"]
        if let checksum = image.string("checksum") { headers[HTTPField.Name("Content-MD5")!] = checksum }
        guard let rangeHeader = request.headers[.range] else {
            headers[.contentLength] = String(size)
            return Response(status: .ok, headers: headers,
                            body: ResponseBody(asyncSequence: FileChunks(path: path, blockSize: downloadChunk)))
        }
        guard let range = parseRange(rangeHeader, size: size) else {
            headers[.contentRange] = "bytes */\(size)"
            throw NimbusError(.rangeNotSatisfiable, "Requested range \(rangeHeader) is not satisfiable for \(size) bytes.")
        }
        headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
        headers[.contentLength] = String(range.count)
        let bytes = Int64(range.lowerBound)...Int64(range.upperBound)
        return Response(status: .partialContent, headers: headers,
                        body: ResponseBody(asyncSequence: FileChunks(path: path, range: bytes, blockSize: downloadChunk)))
    }

    /// Direct reads of a cold 1 GiB image sent 776–949 MiB/s in 256 KiB blocks, 1,161–1,300 in
    /// 512 KiB and 1,206–1,247 in 1 MiB; but each block queued on a slow connection stays in the
    /// server's heap until glibc reuses it, and 1 MiB blocks grew the RSS by 22 MiB against 14.
    static let downloadChunk = 512 << 10

    /// `bytes=a-b`, `bytes=a-` or `bytes=-n`, clamped to the data; nil when it selects nothing.
    static func parseRange(_ header: String, size: Int) -> ClosedRange<Int>? {
        guard header.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = header.dropFirst("bytes=".count)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let start = spec[..<dash], end = spec[spec.index(after: dash)...]
        if start.isEmpty {
            guard let suffix = Int(end), suffix > 0 else { return nil }
            return max(0, size - suffix)...(size - 1)
        }
        guard let first = Int(start), first < size else { return nil }
        let last = end.isEmpty ? size - 1 : min(Int(end) ?? -1, size - 1)
        return last >= first ? first...last : nil
    }

    static func registerMembers(_ routes: inout ServiceRoutes, _ service: ImageService) {
        routes.post("/v2/images/{id}/members") { request, context in
            let member = try await service.addMember(context.path("id"), body: try await request.json(context: context), caller: try context.caller())
            return .json(ImageWire.renderMember(member))
        }
        routes.get("/v2/images/{id}/members") { _, context in
            let members = try await service.members(context.path("id"), caller: try context.caller())
            return .json(["members": .array(members.map(ImageWire.renderMember)), "schema": "/v2/schemas/members"])
        }
        routes.get("/v2/images/{id}/members/{member}") { _, context in
            .json(ImageWire.renderMember(try await service.member(context.path("id"), member: context.path("member"), caller: try context.caller())))
        }
        routes.put("/v2/images/{id}/members/{member}") { request, context in
            let member = try await service.setMemberStatus(context.path("id"), member: context.path("member"),
                                                           body: try await request.json(context: context), caller: try context.caller())
            return .json(ImageWire.renderMember(member))
        }
        routes.delete("/v2/images/{id}/members/{member}") { _, context in
            try await service.removeMember(context.path("id"), member: context.path("member"), caller: try context.caller())
            return .empty()
        }
    }
}
