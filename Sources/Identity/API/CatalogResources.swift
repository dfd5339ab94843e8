import Foundation
import NimbusCore
import Store

/// Regions, services and endpoints: the catalog's resources.
enum CatalogResources {
    static let regions = ResourceAPI(
        singular: "region", plural: "regions", table: IdentityTables.regions,
        fields: [
            .description,
            .init(name: "parent_region_id", kind: .nullableString(maxLength: 255), onCreate: .optional(default: .null), updatable: true),
        ],
        filters: ["parent_region_id": "parent_region_id"],
        clientChosenID: true,
        canRead: { auth, _ in auth.isReader || IdentityPolicy.canReadAll(auth) },
        beforeCreate: { hook, record in try await checkParent(record, hook: hook) },
        beforeUpdate: { hook, record in try await checkParent(record, hook: hook) },
        beforeDelete: { hook, record in
            let id = record["id"] ?? nil
            if try await IdentityTables.regions.count([.init("parent_region_id", .equal, id)], on: hook.db) > 0 {
                throw NimbusError.forbidden("Unable to delete region \(record.string("id") ?? "") because it or its child regions have associated endpoints.")
            }
            if try await IdentityTables.endpoints.count([.init("region_id", .equal, id)], on: hook.db) > 0 {
                throw NimbusError.forbidden("Unable to delete region \(record.string("id") ?? "") because it or its child regions have associated endpoints.")
            }
        },
        render: { record, link in
            record.rendered([
                "id": record["id"] ?? nil, "description": record["description"] ?? "",
                "parent_region_id": record["parent_region_id"] ?? nil,
            ], link: link)
        })

    private static func checkParent(_ record: RecordTable.Record, hook: ResourceAPI.HookContext) async throws {
        guard let parent = record.string("parent_region_id") else { return }
        if parent == record.string("id") ?? hook.existing?.string("id") {
            throw NimbusError.badRequest("A region cannot be its own parent.")
        }
        guard try await IdentityTables.regions.fetch(parent, on: hook.db) != nil else {
            throw NimbusError.notFound("Could not find region: \(parent).")
        }
    }

    static let services = ResourceAPI(
        singular: "service", plural: "services", table: IdentityTables.services,
        fields: [
            .init(name: "type", kind: .string(minLength: 1, maxLength: 255), onCreate: .required, updatable: true),
            .init(name: "name", kind: .string(minLength: 0, maxLength: 255), onCreate: .optional(default: ""), updatable: true),
            .description, .enabled,
        ],
        filters: ["type": "type", "name": "name"],
        afterWrite: { hook, _ in hook.service.invalidateCatalog() },
        beforeDelete: { hook, _ in hook.service.invalidateCatalog() },
        render: { record, link in
            record.rendered([
                "id": record["id"] ?? nil, "type": record["type"] ?? nil, "name": record["name"] ?? "",
                "description": record["description"] ?? "", "enabled": record["enabled"] ?? true,
            ], link: link)
        })

    static let endpoints = ResourceAPI(
        singular: "endpoint", plural: "endpoints", table: IdentityTables.endpoints,
        fields: [
            .init(name: "service_id", kind: .string(minLength: 1, maxLength: 64), onCreate: .required, updatable: true),
            .init(name: "interface", kind: .string(minLength: 1, maxLength: 8), onCreate: .required, updatable: true),
            .init(name: "url", kind: .string(minLength: 1, maxLength: 1024), onCreate: .required, updatable: true),
            .init(name: "region_id", kind: .nullableString(maxLength: 255), onCreate: .optional(default: .null), updatable: true),
            .enabled,
        ],
        consumed: ["region"],
        filters: ["service_id": "service_id", "interface": "interface", "region_id": "region_id"],
        beforeCreate: { hook, record in try await checkEndpoint(&record, hook: hook) },
        beforeUpdate: { hook, record in try await checkEndpoint(&record, hook: hook) },
        afterWrite: { hook, _ in hook.service.invalidateCatalog() },
        beforeDelete: { hook, _ in hook.service.invalidateCatalog() },
        render: { record, link in
            record.rendered([
                "id": record["id"] ?? nil, "service_id": record["service_id"] ?? nil, "interface": record["interface"] ?? nil,
                "url": record["url"] ?? nil, "region_id": record["region_id"] ?? nil, "region": record["region_id"] ?? nil,
                "enabled": record["enabled"] ?? true,
            ], link: link)
        })

    private static func checkEndpoint(_ record: inout RecordTable.Record, hook: ResourceAPI.HookContext) async throws {
        if let interface = record.string("interface"), !["public", "internal", "admin"].contains(interface) {
            throw NimbusError.badRequest("Invalid input for field 'interface': '\(interface)' does not match '^(admin|internal|public)$'")
        }
        if record["region_id"] == nil || record["region_id"]?.isNull == true, let legacy = try hook.fields?.string("region", nullable: true) {
            record["region_id"] = .string(legacy)
        }
        if let service = record.string("service_id"), try await IdentityTables.services.fetch(service, on: hook.db) == nil {
            throw NimbusError.badRequest("Could not find service: \(service).")
        }
        if let region = record.string("region_id"), try await IdentityTables.regions.fetch(region, on: hook.db) == nil {
            throw NimbusError.badRequest("Could not find region: \(region).")
        }
    }
}
