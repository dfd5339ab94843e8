import Foundation
import Logging
import NimbusCore
import SQLKit
import Store

/// Settings of the Image service.
public struct ImageConfiguration: Sendable {
    public var dataDirectory: URL
    /// Per-project limits (Glance's `image_count_total` and `image_size_total`).
    public var maxImagesPerProject: Int
    public var maxBytesPerProject: Int64

    public init(dataDirectory: URL, maxImagesPerProject: Int = 100, maxBytesPerProject: Int64 = 100 << 30) {
        self.dataDirectory = dataDirectory
        self.maxImagesPerProject = maxImagesPerProject
        self.maxBytesPerProject = maxBytesPerProject
    }
}

/// Glance v2: image records, their data, sharing and format checks.
public final class ImageService: Sendable {
    public let database: Database
    public let configuration: ImageConfiguration
    public let files: ImageFileStore
    let logger: Logger

    public typealias Record = RecordTable.Record

    public init(database: Database, configuration: ImageConfiguration, logger: Logger) throws {
        self.database = database
        self.configuration = configuration
        self.files = try ImageFileStore(root: configuration.dataDirectory)
        self.logger = logger
    }

    /// After a crash: uploads that were in flight go back to `queued` (their temp data is gone),
    /// imports whose staged data is still there go back to `uploading`.
    public func recover() async throws {
        files.sweepTemporaryFiles()
        try await database.transaction { db in
            for image in try await ImageSchema.images.list([.init("status", .equal, "saving")], on: db) {
                try await ImageSchema.images.update(image.string("id") ?? "", ["status": "queued"], on: db)
            }
            for image in try await ImageSchema.images.list([.init("status", .equal, "importing")], on: db) {
                let id = image.string("id") ?? ""
                let staged = FileManager.default.fileExists(atPath: self.files.stagingPath(of: id))
                try await ImageSchema.images.update(id, ["status": staged ? "uploading" : "queued"], on: db)
            }
        }
    }

    // MARK: - Visibility

    /// Whether the caller may see the image at all (else it answers 404, as Glance does).
    func canSee(_ image: Record, _ caller: AuthContext, membership: String?) -> Bool {
        if caller.isAdmin { return true }
        switch image.string("visibility") {
        case "public", "community": return true
        case "shared": return image.string("owner") == caller.projectID || membership != nil
        default: return image.string("owner") == caller.projectID
        }
    }

    /// Whether the caller acts for the image's owner: an admin, or a member (not only a reader) of
    /// the owning project, as Glance's modify, upload, delete and deactivate rules say.
    func isOwner(_ image: Record, _ caller: AuthContext) -> Bool {
        caller.isAdmin || (caller.isMember && image.string("owner") == caller.projectID)
    }

    /// The image if the caller can see it. - Throws: 404 otherwise.
    public func visibleImage(_ id: String, _ caller: AuthContext) async throws -> Record {
        let (image, membership) = try await database.read { db in
            let image = try await ImageSchema.images.fetch(id, on: db)
            let member = try await caller.projectID.asyncMap { project in
                try await ImageSchema.members.list([.init("image_id", .equal, .string(id)), .init("member_id", .equal, .string(project))], on: db).first
            } ?? nil
            return (image, member?.string("status"))
        }
        guard let image, canSee(image, caller, membership: membership) else {
            throw NimbusError.notFound("No image found with ID \(id)")
        }
        return image
    }

    /// The image if the caller owns it (or is admin): 404 when invisible, 403 when only visible.
    func ownedImage(_ id: String, _ caller: AuthContext, action: String) async throws -> Record {
        let image = try await visibleImage(id, caller)
        guard isOwner(image, caller) else { throw NimbusError.forbidden("You are not permitted to \(action) this image.") }
        return image
    }

    /// Changes status from one of `from` to `to` atomically. - Throws: 409 when it is not in `from`.
    func transition(_ id: String, from: Set<String>, to: String, extra: Record = [:], on db: any SQLDatabase) async throws -> Record {
        guard let image = try await ImageSchema.images.fetchForUpdate(id, on: db) else {
            throw NimbusError.notFound("No image found with ID \(id)")
        }
        let status = image.string("status") ?? ""
        guard from.contains(status) else {
            throw NimbusError.conflict("Image status transition from \(status) to \(to) is not allowed")
        }
        var changes = extra
        changes["status"] = .string(to)
        changes["updated_at"] = .string(Timestamp.seconds(Date()))
        try await ImageSchema.images.update(id, changes, on: db)
        return try await ImageSchema.images.fetch(id, on: db) ?? image
    }
}

