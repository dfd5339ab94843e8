import NimbusCore
import SQLKit
import Store

extension PlacementService {
    /// A provider's inventories with its generation.
    public func inventories(of uuid: String) async throws -> (generation: Int64, inventories: [String: Inventory]) {
        let snapshot = try await snapshot(of: uuid)
        return (snapshot.provider.generation, snapshot.inventories)
    }

    /// A provider's usage of every class it has inventory of, with its generation.
    public func usages(of uuid: String) async throws -> (generation: Int64, usages: [String: Int64]) {
        let snapshot = try await snapshot(of: uuid)
        return (snapshot.provider.generation, snapshot.inventories.keys.reduce(into: [:]) { $0[$1] = snapshot.used[$1] ?? 0 })
    }

    public func snapshot(of uuid: String) async throws -> ProviderSnapshot {
        try await database.read { db in
            guard let provider = try await PlacementStore.fetchProvider(uuid, on: db) else { throw NimbusError.providerNotFound(uuid) }
            return try await PlacementStore.snapshot(of: provider, on: db)
        }
    }

    /// Changes a provider's inventories in one transaction and moves its generation.
    ///
    /// `change` maps the current inventories to the wanted ones, so single-class edits (POST, PUT
    /// and DELETE of one class) and whole replacements share the locking, the generation check and
    /// the in-use protection.
    /// - Parameter generation: the generation the caller read, or nil to skip the check.
    /// - Throws: 409 `placement.concurrent_update` on a generation mismatch, 409
    ///   `placement.inventory.inuse` when a class with allocations would go away or shrink below them.
    @discardableResult
    public func changeInventories(
        of uuid: String, generation: Int64?,
        _ change: @escaping @Sendable ([String: Inventory]) throws -> [String: Inventory]
    ) async throws -> (generation: Int64, inventories: [String: Inventory]) {
        try await database.transaction { db in
            var provider = try await self.lockedProvider(uuid, on: db)
            try self.check(provider, generation: generation)
            var result: [String: Inventory] = [:]
            _ = try await self.applyInventories(of: provider, on: db) { current in
                result = try change(current)
                return result
            }
            provider.generation = try await PlacementStore.bumpGenerations([uuid], on: db)[uuid] ?? provider.generation + 1
            try await PlacementStore.recordChange([uuid], on: db)
            return (provider.generation, result)
        }
    }

    /// Replaces the locked provider's inventories with `change(current)`, refusing to strand
    /// allocations. Does not move the generation. - Returns: whether anything changed.
    func applyInventories(
        of provider: ResourceProvider, on db: any SQLDatabase,
        _ change: ([String: Inventory]) throws -> [String: Inventory]
    ) async throws -> Bool {
        let snapshot = try await PlacementStore.snapshot(of: provider, on: db)
        let target = try change(snapshot.inventories)
        guard target != snapshot.inventories else { return false }
        try await requireResourceClasses(Set(target.keys), on: db) { name in
            "Unknown resource class in inventory for resource provider '\(provider.uuid)': \(name)."
        }
        for (resourceClass, used) in snapshot.used.sorted(by: { $0.key < $1.key }) where used > 0 {
            let inUse = "update conflict: Inventory for '\(resourceClass)' on resource provider '\(provider.uuid)' in use."
            guard let wanted = target[resourceClass] else {
                throw NimbusError(.conflict, inUse, code: PlacementCode.inventoryInUse)
            }
            // Placement only warns here; Nimbus refuses, so that usage can never exceed capacity.
            if wanted.capacity < used {
                throw NimbusError(.conflict, inUse + " Capacity \(wanted.capacity) would be below the \(used) allocated.",
                                  code: PlacementCode.inventoryInUse)
            }
        }
        try await PlacementStore.replaceInventories(of: provider.uuid, current: snapshot.inventories, target: target, on: db)
        return true
    }
}
