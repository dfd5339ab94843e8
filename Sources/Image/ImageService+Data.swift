import Foundation
import NIOCore
import NimbusCore
import SQLKit
import Store

extension ImageService {
    /// `PUT /v2/images/{id}/file`: `queued → saving → active`. The data streams to disk; the image
    /// becomes active only if it is whole, within quota and of the format it claims. On any
    /// failure it is `queued` again and no data is kept.
    public func upload<Chunks: AsyncSequence>(
        _ id: String, chunks: Chunks, declaredSize: Int64?, caller: AuthContext
    ) async throws -> Record where Chunks.Element == ByteBuffer {
        let image = try await ownedImage(id, caller, action: "upload data to")
        try Self.requireFormats(image)
        let limit = try await bytesLeft(owner: image.string("owner") ?? "")
        if let declaredSize, declaredSize > limit {
            throw NimbusError(.payloadTooLarge, "Image storage quota exceeded: \(declaredSize) bytes requested, \(limit) left for this project.")
        }
        _ = try await database.transaction { try await self.transition(id, from: ["queued"], to: "saving", on: $0) }
        do {
            let written = try await files.write(chunks, to: files.path(of: id), limit: limit)
            try Self.check(written, declaredSize: declaredSize, claimed: image.string("disk_format") ?? "raw")
            return try await database.transaction { db in
                try await self.transition(id, from: ["saving"], to: "active", extra: Self.dataColumns(written), on: db)
            }
        } catch {
            files.remove(id)
            _ = try? await database.transaction { try await self.transition(id, from: ["saving"], to: "queued", on: $0) }
            throw error
        }
    }

    /// Fills a queued image from a local file (a compute host's snapshot), as an upload would.
    public func upload(_ id: String, file: URL, caller: AuthContext) async throws -> Record {
        try await upload(id, chunks: FileChunks(path: file.path), declaredSize: nil, caller: caller)
    }

    /// `PUT /v2/images/{id}/stage`: data for a later `glance-direct` import; `queued → uploading`.
    public func stage<Chunks: AsyncSequence>(
        _ id: String, chunks: Chunks, declaredSize: Int64?, caller: AuthContext
    ) async throws where Chunks.Element == ByteBuffer {
        let image = try await ownedImage(id, caller, action: "stage data for")
        let limit = try await bytesLeft(owner: image.string("owner") ?? "")
        _ = try await database.transaction { try await self.transition(id, from: ["queued"], to: "uploading", on: $0) }
        do {
            let written = try await files.write(chunks, to: files.stagingPath(of: id), limit: limit)
            if let declaredSize, declaredSize != written.size {
                throw NimbusError.badRequest("Image data is \(written.size) bytes, but \(declaredSize) were declared: the upload was truncated.")
            }
        } catch {
            files.remove(id)
            _ = try? await database.transaction { try await self.transition(id, from: ["uploading"], to: "queued", on: $0) }
            throw error
        }
    }

    /// `POST /v2/images/{id}/import` with `glance-direct`: checks the staged data and activates it,
    /// recording the import as the image's task (Glance 2.12), whichever way it ends.
    public func importStaged(_ id: String, request: JSONValue, requestID: String, caller: AuthContext) async throws {
        let method = try FieldReader(request, path: "body").object("method", required: true)!
        let name = try method.string("name", required: true)!
        guard name == "glance-direct" else {
            throw NimbusError.badRequest("Import method \(name) is not supported; use glance-direct.")
        }
        let image = try await ownedImage(id, caller, action: "import")
        try Self.requireFormats(image)
        let now = Timestamp.seconds(Date())
        let taskID = Identifier.uuid()
        let task: Record = [
            "id": .string(taskID), "image_id": .string(id), "type": "api_image_import", "status": "processing",
            "owner": .string(image.string("owner") ?? ""), "user_id": .string(caller.user.id), "request_id": .string(requestID),
            "input": ["image_id": .string(id), "import_req": request, "backend": nil], "message": "",
            "created_at": .string(now), "updated_at": .string(now), "expires_at": nil,
        ]
        _ = try await database.transaction { db in
            let importing = try await self.transition(id, from: ["uploading"], to: "importing", on: db)
            try await ImageSchema.tasks.insert(task, on: db)
            return importing
        }
        do {
            let staged = files.stagingPath(of: id)
            let written = try await files.write(FileChunks(path: staged), to: files.path(of: id), limit: .max)
            unlink(staged)
            try Self.check(written, declaredSize: nil, claimed: image.string("disk_format") ?? "raw")
            _ = try await database.transaction { db in
                try await self.finish(task: taskID, status: "success", message: "", on: db)
                return try await self.transition(id, from: ["importing"], to: "active", extra: Self.dataColumns(written), on: db)
            }
        } catch {
            files.remove(id)
            _ = try? await database.transaction { db in
                try await self.finish(task: taskID, status: "failure", message: (error as? NimbusError)?.message ?? "\(error)", on: db)
                return try await self.transition(id, from: ["importing"], to: "queued", on: db)
            }
            throw error
        }
    }

    /// A finished task is kept for Glance's default 48 hours, as `expires_at` tells.
    private func finish(task id: String, status: String, message: String, on db: any SQLDatabase) async throws {
        let now = Date()
        _ = try await ImageSchema.tasks.update(id, [
            "status": .string(status), "message": .string(message), "updated_at": .string(Timestamp.seconds(now)),
            "expires_at": .string(Timestamp.seconds(now.addingTimeInterval(48 * 3600))),
        ], on: db)
    }

    /// `GET /v2/images/{id}/tasks`: the image's imports, oldest first.
    public func tasks(ofImage id: String, caller: AuthContext) async throws -> [Record] {
        _ = try await visibleImage(id, caller)
        return try await database.read { db in
            try await ImageSchema.tasks.list([.init("image_id", .equal, .string(id))], orderBy: "created_at", on: db)
        }
    }

    /// Where to read an image's data from, after checking the caller may.
    /// - Returns: nil when the image has no data yet (Glance answers 204).
    public func dataLocation(_ id: String, caller: AuthContext) async throws -> (path: String, image: Record)? {
        let image = try await visibleImage(id, caller)
        switch image.string("status") {
        case "active": return (files.path(of: id), image)
        case "deactivated" where caller.isAdmin: return (files.path(of: id), image)
        case "deactivated": throw NimbusError.forbidden("The requested image has been deactivated. Image data download is forbidden.")
        default: return nil
        }
    }

    /// Registers a local file as an active image (for `nimbus up`'s test guest), copying it into the store.
    public func register(
        name: String, file: URL, diskFormat: String, containerFormat: String, owner: String,
        visibility: String = "public", properties: [String: String] = [:]
    ) async throws -> Record {
        let existing = try await database.read { db in
            try await ImageSchema.images.list([.init("name", .equal, .string(name)), .init("owner", .equal, .string(owner))], on: db).first
        }
        if let existing, existing.string("status") == "active" { return existing }
        let id = existing?.string("id") ?? Identifier.uuid()
        let now = Timestamp.seconds(Date())
        let written = try await files.write(FileChunks(path: file.path), to: files.path(of: id), limit: .max)
        try Self.check(written, declaredSize: nil, claimed: diskFormat)
        var record: Record = [
            "id": .string(id), "name": .string(name), "status": "active", "visibility": .string(visibility), "protected": false,
            "os_hidden": false, "owner": .string(owner), "disk_format": .string(diskFormat), "container_format": .string(containerFormat),
            "min_disk": 0, "min_ram": 0, "tags": [], "properties": .object(properties.mapValues { .string($0) }),
            "created_at": .string(now), "updated_at": .string(now),
        ]
        record.merge(Self.dataColumns(written)) { _, new in new }
        let frozen = record
        try await database.transaction { db in
            if existing != nil { try await ImageSchema.images.delete(id: id, on: db) }
            try await ImageSchema.images.insert(frozen, on: db)
        }
        return record
    }

    // MARK: - Checks

    static func requireFormats(_ image: Record) throws {
        if image["disk_format"]?.isNull != false || image["container_format"]?.isNull != false {
            throw NimbusError.badRequest("Properties disk_format, container_format must be set prior to saving data.")
        }
    }

    /// The upload must be whole, and its content what the image claims and safe to boot.
    static func check(_ written: ImageFileStore.Written, declaredSize: Int64?, claimed: String) throws {
        if let declaredSize, declaredSize != written.size {
            throw NimbusError.badRequest("Image data is \(written.size) bytes, but \(declaredSize) were declared: the upload was truncated.")
        }
        if let reason = written.inspection.unsafeReason {
            throw NimbusError.badRequest("Image content is not safe to use: \(reason).")
        }
        if !DiskFormatInspector.matches(claimed: claimed, detected: written.inspection.format) {
            throw NimbusError.badRequest("Image content does not match disk_format: the data is \(written.inspection.format), not \(claimed).")
        }
    }

    static func dataColumns(_ written: ImageFileStore.Written) -> Record {
        [
            "size": .int(written.size), "virtual_size": written.inspection.virtualSize.map { .int($0) } ?? nil,
            "checksum": .string(written.md5), "os_hash_algo": "sha512", "os_hash_value": .string(written.sha512),
        ]
    }

    /// Bytes the owner may still store under the per-project quota.
    func bytesLeft(owner: String) async throws -> Int64 {
        let used = try await database.read { db in
            try await ImageSchema.images.list([.init("owner", .equal, .string(owner))], on: db).compactMap { $0["size"]?.intValue }.reduce(0, +)
        }
        return max(0, configuration.maxBytesPerProject - used)
    }
}
