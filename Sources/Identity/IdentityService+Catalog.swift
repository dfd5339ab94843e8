import Foundation
import NimbusCore
import Store

extension IdentityService {
    /// The service catalog as tokens carry it. Cached for a second: it is read on every token
    /// issue and validation, and changes rarely.
    func catalog() async throws -> JSONValue {
        try await stampedCatalog().catalog
    }

    /// The catalog with the time it was built, which tells its users whether what they rendered
    /// from it is still current.
    func stampedCatalog() async throws -> (built: Date, catalog: JSONValue) {
        if let cached = catalogCache.withLock({ $0 }), Date().timeIntervalSince(cached.built) < 1 {
            return cached
        }
        let (services, endpoints) = try await database.read { db in
            (try await IdentityTables.services.list(on: db), try await IdentityTables.endpoints.list(on: db))
        }
        var entries: [JSONValue] = []
        for service in services where service["enabled"]?.boolValue == true {
            let id = service["id"]?.stringValue
            let mine = endpoints.filter { $0["service_id"]?.stringValue == id && $0["enabled"]?.boolValue == true }
            entries.append([
                "id": service["id"] ?? .null, "type": service["type"] ?? .null, "name": service["name"] ?? "",
                "endpoints": .array(mine.map { endpoint in
                    [
                        "id": endpoint["id"] ?? .null, "interface": endpoint["interface"] ?? .null,
                        "region_id": endpoint["region_id"] ?? .null, "region": endpoint["region_id"] ?? .null,
                        "url": endpoint["url"] ?? .null,
                    ]
                }),
            ])
        }
        let stamped = (built: Date(), catalog: JSONValue.array(entries))
        catalogCache.withLock { $0 = stamped }
        return stamped
    }

    func invalidateCatalog() {
        catalogCache.withLock { $0 = nil }
    }
}
