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
        let properties = (record["properties"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
        return ImageFacts(
            id: id, name: record.string("name") ?? "", status: record.string("status") ?? "",
            minDiskGB: record["min_disk"]?.intValue ?? 0, minRAMMB: record["min_ram"]?.intValue ?? 0,
            sizeBytes: record["size"]?.intValue ?? 0, properties: properties)
    }
}

/// Image data for the local hosts' drivers, read straight from the Image service's store.
struct ImageStoreSource: ImageSource {
    let image: ImageService

    func imageFile(_ id: String) async throws -> ImageFile {
        let operator_ = AuthContext(
            user: .init(id: "nimbus-compute", name: "nimbus-compute"), userDomain: .init(id: "default", name: "Default"),
            scope: .system, roles: [.init(id: "admin", name: "admin")], methods: ["internal"], auditIDs: [],
            issuedAt: Date(), expiresAt: Date().addingTimeInterval(60), applicationCredentialID: nil, token: "")
        guard let (path, record) = try await image.dataLocation(id, caller: operator_) else {
            throw HypervisorError("Image \(id) has no data.")
        }
        return ImageFile(path: URL(fileURLWithPath: path), diskFormat: record.string("disk_format") ?? "raw",
                         checksum: record.string("checksum"))
    }
}
