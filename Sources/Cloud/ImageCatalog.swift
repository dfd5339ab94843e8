import Compute
import Foundation
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
