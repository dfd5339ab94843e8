import Foundation
import NimbusCore
import SQLKit

/// Placement's SQL, kept out of the service so that handlers and workflows read as steps.
///
/// Every function runs on the connection it is given: writers pass the transaction's connection,
/// so a lock taken by `lockProviders` holds until that transaction ends.
enum PlacementStore {
    static let providerColumns = "uuid, name, generation, parent_provider_uuid, root_provider_uuid"
    static let inventoryColumns = "resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio, used"

    /// ` FOR UPDATE` on PostgreSQL; SQLite has no row locks, and its write transaction already
    /// excludes every other writer.
    static func lockClause(_ db: any SQLDatabase) -> String {
        db.dialect.name == "sqlite" ? "" : " FOR UPDATE"
    }

    static func now() -> String { Timestamp.seconds(Date()) }

    // MARK: - Providers

    static func provider(_ row: any SQLRow) throws -> ResourceProvider {
        ResourceProvider(
            uuid: try row.decode(column: "uuid", as: String.self), name: try row.decode(column: "name", as: String.self),
            generation: Int64(try row.decode(column: "generation", as: Int.self)),
            parentProviderUUID: try row.decode(column: "parent_provider_uuid", as: String?.self),
            rootProviderUUID: try row.decode(column: "root_provider_uuid", as: String.self))
    }

    static func fetchProvider(_ uuid: String, forUpdate: Bool = false, on db: any SQLDatabase) async throws -> ResourceProvider? {
        let lock = forUpdate ? lockClause(db) : ""
        return try await db.raw("SELECT \(unsafeRaw: providerColumns) FROM placement_providers WHERE uuid = \(bind: uuid)\(unsafeRaw: lock)")
            .first().map(provider)
    }

    /// Locks the providers in uuid order (so that two writers never wait on each other in a cycle)
    /// and returns the ones that exist.
    static func lockProviders(_ uuids: Set<String>, on db: any SQLDatabase) async throws -> [String: ResourceProvider] {
        guard !uuids.isEmpty else { return [:] }
        let rows = try await db.raw("""
            SELECT \(unsafeRaw: providerColumns) FROM placement_providers WHERE uuid IN (\(binds: uuids.sorted()))
            ORDER BY uuid\(unsafeRaw: lockClause(db))
            """).all()
        return Dictionary(uniqueKeysWithValues: try rows.map(provider).map { ($0.uuid, $0) })
    }

    static func listProviders(name: String?, uuid: String?, on db: any SQLDatabase) async throws -> [ResourceProvider] {
        var query: SQLQueryString = "SELECT \(unsafeRaw: providerColumns) FROM placement_providers WHERE 1 = 1"
        if let name { query = query + " AND name = \(bind: name)" }
        if let uuid { query = query + " AND uuid = \(bind: uuid)" }
        return try await db.raw(query + " ORDER BY uuid").all().map(provider)
    }

    static func insertProvider(_ provider: ResourceProvider, on db: any SQLDatabase) async throws {
        let now = now()
        try await db.raw("""
            INSERT INTO placement_providers (uuid, name, generation, parent_provider_uuid, root_provider_uuid, created_at, updated_at)
            VALUES (\(bind: provider.uuid), \(bind: provider.name), \(bind: Int(provider.generation)),
                    \(bind: provider.parentProviderUUID), \(bind: provider.rootProviderUUID), \(bind: now), \(bind: now))
            """).run()
    }

    static func updateProvider(_ provider: ResourceProvider, on db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE placement_providers SET name = \(bind: provider.name), parent_provider_uuid = \(bind: provider.parentProviderUUID),
                root_provider_uuid = \(bind: provider.rootProviderUUID), updated_at = \(bind: now())
            WHERE uuid = \(bind: provider.uuid)
            """).run()
    }

    /// Moves every provider whose root is `from` to the root `to` (re-parenting a subtree).
    static func setRoot(of uuids: [String], to root: String, on db: any SQLDatabase) async throws {
        guard !uuids.isEmpty else { return }
        try await db.raw("UPDATE placement_providers SET root_provider_uuid = \(bind: root) WHERE uuid IN (\(binds: uuids))").run()
    }

    static func providers(inTree root: String, on db: any SQLDatabase) async throws -> [ResourceProvider] {
        try await db.raw("SELECT \(unsafeRaw: providerColumns) FROM placement_providers WHERE root_provider_uuid = \(bind: root)")
            .all().map(provider)
    }

    /// Adds one to each provider's generation. - Returns: the new generations.
    @discardableResult
    static func bumpGenerations(_ uuids: Set<String>, on db: any SQLDatabase) async throws -> [String: Int64] {
        guard !uuids.isEmpty else { return [:] }
        let list = uuids.sorted()
        try await db.raw("""
            UPDATE placement_providers SET generation = generation + 1, updated_at = \(bind: now()) WHERE uuid IN (\(binds: list))
            """).run()
        return try await generations(uuids, on: db)
    }

    static func generations(_ uuids: Set<String>, on db: any SQLDatabase) async throws -> [String: Int64] {
        guard !uuids.isEmpty else { return [:] }
        let rows = try await db.raw("SELECT uuid, generation FROM placement_providers WHERE uuid IN (\(binds: uuids.sorted()))").all()
        return Dictionary(uniqueKeysWithValues: try rows.map {
            (try $0.decode(column: "uuid", as: String.self), Int64(try $0.decode(column: "generation", as: Int.self)))
        })
    }

    static func deleteProvider(_ uuid: String, on db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM placement_providers WHERE uuid = \(bind: uuid)").run()
    }

    static func hasChildren(_ uuid: String, on db: any SQLDatabase) async throws -> Bool {
        try await db.raw("SELECT uuid FROM placement_providers WHERE parent_provider_uuid = \(bind: uuid) LIMIT 1").first() != nil
    }

    // MARK: - Inventories

    static func inventory(_ row: any SQLRow) throws -> (String, Inventory, Int64) {
        let inventory = Inventory(
            total: Int64(try row.decode(column: "total", as: Int.self)), reserved: Int64(try row.decode(column: "reserved", as: Int.self)),
            minUnit: Int64(try row.decode(column: "min_unit", as: Int.self)), maxUnit: Int64(try row.decode(column: "max_unit", as: Int.self)),
            stepSize: Int64(try row.decode(column: "step_size", as: Int.self)),
            allocationRatio: try row.decode(column: "allocation_ratio", as: Double.self))
        return (try row.decode(column: "resource_class", as: String.self), inventory, Int64(try row.decode(column: "used", as: Int.self)))
    }

    /// One provider's inventories with their usage.
    static func snapshot(of provider: ResourceProvider, on db: any SQLDatabase) async throws -> ProviderSnapshot {
        var snapshot = ProviderSnapshot(provider: provider)
        let rows = try await db.raw("""
            SELECT \(unsafeRaw: inventoryColumns) FROM placement_inventories WHERE provider_uuid = \(bind: provider.uuid)
            """).all()
        for row in rows {
            let (resourceClass, inventory, used) = try inventory(row)
            snapshot.inventories[resourceClass] = inventory
            snapshot.used[resourceClass] = used
        }
        return snapshot
    }

    /// Writes `target` over `current`: updates, inserts and deletes only the classes that changed,
    /// keeping each class's `used`.
    static func replaceInventories(
        of uuid: String, current: [String: Inventory], target: [String: Inventory], on db: any SQLDatabase
    ) async throws {
        let removed = Set(current.keys).subtracting(target.keys)
        if !removed.isEmpty {
            try await db.raw("""
                DELETE FROM placement_inventories WHERE provider_uuid = \(bind: uuid) AND resource_class IN (\(binds: removed.sorted()))
                """).run()
        }
        for (resourceClass, inventory) in target.sorted(by: { $0.key < $1.key }) where current[resourceClass] != inventory {
            if current[resourceClass] != nil {
                try await db.raw("""
                    UPDATE placement_inventories SET total = \(bind: Int(inventory.total)), reserved = \(bind: Int(inventory.reserved)),
                        min_unit = \(bind: Int(inventory.minUnit)), max_unit = \(bind: Int(inventory.maxUnit)),
                        step_size = \(bind: Int(inventory.stepSize)), allocation_ratio = \(bind: inventory.allocationRatio)
                    WHERE provider_uuid = \(bind: uuid) AND resource_class = \(bind: resourceClass)
                    """).run()
            } else {
                try await db.raw("""
                    INSERT INTO placement_inventories (provider_uuid, resource_class, total, reserved, min_unit, max_unit,
                        step_size, allocation_ratio, used)
                    VALUES (\(bind: uuid), \(bind: resourceClass), \(bind: Int(inventory.total)), \(bind: Int(inventory.reserved)),
                        \(bind: Int(inventory.minUnit)), \(bind: Int(inventory.maxUnit)), \(bind: Int(inventory.stepSize)),
                        \(bind: inventory.allocationRatio), 0)
                    """).run()
            }
        }
    }

    /// Adds `delta` to the usage kept beside one inventory.
    static func addUsage(_ delta: Int64, provider: String, resourceClass: String, on db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE placement_inventories SET used = used + \(bind: Int(delta))
            WHERE provider_uuid = \(bind: provider) AND resource_class = \(bind: resourceClass)
            """).run()
    }

    /// Rebuilds every inventory's `used` from the allocations themselves.
    static func recountUsage(on db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE placement_inventories SET used = COALESCE((SELECT SUM(a.used) FROM placement_allocations a
                WHERE a.provider_uuid = placement_inventories.provider_uuid
                  AND a.resource_class = placement_inventories.resource_class), 0)
            """).run()
    }
}
