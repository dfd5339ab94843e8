import Compute
import Foundation
import Hypervisor
import Image
import NimbusCore

/// The Image service as Compute looks images up, in-process.
struct ImageCatalog: ImageLookup {
    let image: ImageService

    func image(_ id: String, caller: AuthContext) async throws -> ImageFacts? {
        let record: ImageService.Record
        do {
            record = try await image.visibleImage(id, caller)
        } catch let error as NimbusError where error.kind == .notFound {
            return nil
        }
        return Self.facts(record)
    }

    func images(limit: Int?, marker: String?, caller: AuthContext) async throws -> [ImageFacts] {
        var query: [String: [String]] = [:]
        if let limit { query["limit"] = [String(limit)] }
        if let marker { query["marker"] = [marker] }
        return try await image.list(query: query, caller: caller).images.map(Self.facts)
    }

    func deleteImage(_ id: String, caller: AuthContext) async throws {
        try await image.delete(id, caller: caller)
    }

    static func facts(_ record: ImageService.Record) -> ImageFacts {
        ImageFacts(
            id: record.string("id") ?? "", name: record.string("name") ?? "", status: record.string("status") ?? "",
            minDiskGB: record["min_disk"]?.intValue ?? 0, minRAMMB: record["min_ram"]?.intValue ?? 0,
            sizeBytes: record["size"]?.intValue ?? 0,
            properties: (record["properties"]?.objectValue ?? [:]).compactMapValues(\.stringValue),
            createdAt: record.string("created_at") ?? "", updatedAt: record.string("updated_at") ?? "")
    }
}

/// Image data for the local hosts' drivers, read straight from the Image service's store.
struct ImageStoreSource: ImageSource {
    let image: ImageService

    func imageFile(_ id: String) async throws -> ImageFile {
        guard let (path, record) = try await image.dataLocation(id, caller: ImageCatalog.operatorCaller) else {
            throw HypervisorError("Image \(id) has no data.")
        }
        return ImageFile(path: URL(fileURLWithPath: path), diskFormat: record.string("disk_format") ?? "raw",
                         checksum: record.string("checksum"))
    }
}

extension ImageCatalog {
    static let operatorCaller = AuthContext.internalCaller("nimbus-compute", scope: .system)

    func createSnapshotImage(name: String, diskFormat: String, properties: [String: String], minDiskGB: Int64,
                             minRAMMB: Int64, caller: AuthContext) async throws -> String {
        var body: [String: JSONValue] = [
            "name": .string(name), "disk_format": .string(diskFormat), "container_format": "bare", "visibility": "private",
            "min_disk": .int(minDiskGB), "min_ram": .int(minRAMMB),
        ]
        for (key, value) in properties where body[key] == nil { body[key] = .string(value) }
        let record = try await image.create(.object(body), caller: caller)
        return record.string("id") ?? ""
    }

    func uploadImage(_ id: String, file: URL, diskFormat: String) async throws {
        _ = try await image.upload(id, file: file, caller: Self.operatorCaller)
    }

    func discardImage(_ id: String) async {
        try? await image.delete(id, caller: Self.operatorCaller)
    }
}
