import Foundation
import NimbusCore
import SQLKit
import Store

/// Filters of `GET /resource_providers`: exact name or uuid, plus the same resource, trait,
/// aggregate and tree filters as candidates use.
public struct ProviderQuery: Sendable {
    public var name: String?
    public var uuid: String?
    public var filters: CandidateRequest

    public init(name: String? = nil, uuid: String? = nil, filters: CandidateRequest = CandidateRequest(resources: [:])) {
        self.name = name
        self.uuid = uuid
        self.filters = filters
    }
}

extension PlacementService {
    /// Creates a provider; a parent puts it in the parent's tree.
    /// - Throws: 409 `placement.duplicate_name` when the name or uuid is taken, 400 for a missing parent.
    public func createProvider(uuid: String? = nil, name: String, parent: String? = nil) async throws -> ResourceProvider {
        let uuid = uuid ?? Identifier.uuid()
        try Self.requireUUID(uuid, "resource provider uuid")
        return try await write(conflict: Self.duplicate("name: \(name)")) { db in
            if try await PlacementStore.fetchProvider(uuid, on: db) != nil { throw Self.duplicate("uuid: \(uuid)") }
            if try await !PlacementStore.listProviders(name: name, uuid: nil, on: db).isEmpty { throw Self.duplicate("name: \(name)") }
            var root = uuid
            if let parent {
                guard let parentProvider = try await PlacementStore.fetchProvider(parent, forUpdate: true, on: db) else {
                    throw NimbusError.badRequest("parent provider UUID does not exist.")
                }
                root = parentProvider.rootProviderUUID
            }
            let provider = ResourceProvider(uuid: uuid, name: name, generation: 0, parentProviderUUID: parent, rootProviderUUID: root)
            try await PlacementStore.insertProvider(provider, on: db)
            try await PlacementStore.recordChange([uuid], on: db)
            return provider
        }
    }

    static func duplicate(_ what: String) -> NimbusError {
        NimbusError(.conflict, "Conflicting resource provider \(what) already exists.", code: PlacementCode.duplicateName)
    }

    public func provider(_ uuid: String) async throws -> ResourceProvider {
        guard let provider = try await database.read({ try await PlacementStore.fetchProvider(uuid, on: $0) }) else {
            throw NimbusError.providerNotFound(uuid)
        }
        return provider
    }

    public func providers(_ query: ProviderQuery = ProviderQuery()) async throws -> [ResourceProvider] {
        let filters = query.filters
        let plain = filters.resources.isEmpty && !filters.filtersTraits && !filters.filtersAggregates && filters.inTree == nil
        if plain {
            return try await database.read { try await PlacementStore.listProviders(name: query.name, uuid: query.uuid, on: $0) }
        }
        return try await candidates(filters).map(\.provider)
            .filter { (query.name == nil || $0.name == query.name) && (query.uuid == nil || $0.uuid == query.uuid) }
    }

    /// Renames a provider and, when `parent` is given, moves it (and its subtree) under another
    /// provider or (`.some(nil)`) to the top.
    /// - Parameter allowReparent: whether an existing parent may change (microversion 1.37).
    public func updateProvider(_ uuid: String, name: String, parent: String?? = nil, allowReparent: Bool = true) async throws -> ResourceProvider {
        try await write(conflict: Self.duplicate("name: \(name)")) { db in
            var provider = try await self.lockedProvider(uuid, on: db)
            if provider.name != name, try await !PlacementStore.listProviders(name: name, uuid: nil, on: db).isEmpty {
                throw Self.duplicate("name: \(name)")
            }
            provider.name = name
            var subtree: [String] = []
            if let parent, parent != provider.parentProviderUUID {
                if provider.parentProviderUUID != nil && !allowReparent {
                    throw NimbusError.badRequest("Unable to save resource provider \(uuid): Object action update failed because: re-parenting a provider is not currently allowed.")
                }
                subtree = try await Self.descendants(of: provider, on: db)
                var root = uuid
                if let parent {
                    guard let parentProvider = try await PlacementStore.fetchProvider(parent, forUpdate: true, on: db) else {
                        throw NimbusError.badRequest("parent provider UUID does not exist.")
                    }
                    if parent == uuid || subtree.contains(parent) {
                        throw NimbusError.badRequest("creating loop in the provider tree is not allowed.")
                    }
                    root = parentProvider.rootProviderUUID
                }
                provider.parentProviderUUID = parent
                provider.rootProviderUUID = root
            }
            try await PlacementStore.updateProvider(provider, on: db)
            try await PlacementStore.setRoot(of: subtree, to: provider.rootProviderUUID, on: db)
            try await PlacementStore.recordChange(Set(subtree + [uuid]), on: db)
            return provider
        }
    }

    /// Every provider below `provider` in its tree.
    static func descendants(of provider: ResourceProvider, on db: any SQLDatabase) async throws -> [String] {
        let tree = try await PlacementStore.providers(inTree: provider.rootProviderUUID, on: db)
        var children: [String: [String]] = [:]
        for member in tree { if let parent = member.parentProviderUUID { children[parent, default: []].append(member.uuid) } }
        var out: [String] = []
        var queue = children[provider.uuid] ?? []
        while let next = queue.popLast() {
            out.append(next)
            queue += children[next] ?? []
        }
        return out
    }

    /// Deletes a provider with its inventories, traits and aggregates.
    /// - Throws: 409 while it has allocations or child providers.
    public func deleteProvider(_ uuid: String) async throws {
        try await database.transaction { db in
            _ = try await self.lockedProvider(uuid, on: db)
            if try await PlacementStore.hasAllocations(provider: uuid, on: db) {
                throw NimbusError(.conflict, "Unable to delete resource provider \(uuid): Resource provider has allocations.",
                                  code: PlacementCode.providerInUse)
            }
            if try await PlacementStore.hasChildren(uuid, on: db) {
                throw NimbusError(.conflict, "Unable to delete parent resource provider \(uuid): It has child resource providers.",
                                  code: PlacementCode.cannotDeleteParent)
            }
            try await PlacementStore.deleteProvider(uuid, on: db)
            try await PlacementStore.recordChange([uuid], on: db)
        }
    }

    /// Makes a provider exist with this name, exactly these inventories and (at least) these traits,
    /// in one transaction: what a compute agent reports at start and on every resync.
    ///
    /// Custom traits are created as needed. The generation only moves when something changed, so a
    /// resync that finds nothing new does not disturb concurrent claims.
    /// - Throws: 409 `placement.inventory.inuse` when an inventory would drop below its allocations.
    @discardableResult
    public func ensureProvider(
        uuid: String, name: String, inventories: [String: Inventory], traits: Set<String> = []
    ) async throws -> ResourceProvider {
        try Self.requireUUID(uuid, "resource provider uuid")
        for (resourceClass, inventory) in inventories {
            if let problem = inventory.problem(resourceClass: resourceClass, provider: uuid) { throw NimbusError.badRequest(problem) }
        }
        let unknownStandard = traits.filter { !$0.hasPrefix("CUSTOM_") && !StandardNames.traitSet.contains($0) }
        if let bad = unknownStandard.sorted().first { throw NimbusError.badRequest("No such trait(s): \(bad)") }
        return try await write(conflict: Self.duplicate("name: \(name)")) { db in
            var provider: ResourceProvider
            var changed = false
            if let existing = try await PlacementStore.fetchProvider(uuid, forUpdate: true, on: db) {
                provider = existing
                if provider.name != name {
                    provider.name = name
                    try await PlacementStore.updateProvider(provider, on: db)
                    changed = true
                }
            } else {
                provider = ResourceProvider(uuid: uuid, name: name, generation: 0, parentProviderUUID: nil, rootProviderUUID: uuid)
                try await PlacementStore.insertProvider(provider, on: db)
                changed = true
            }
            let changedInventory = try await self.applyInventories(of: provider, on: db) { _ in inventories }
            let current = Set(try await PlacementStore.linked(.traits, of: uuid, on: db))
            let changedTraits = !traits.isSubset(of: current)
            if changedTraits {
                let custom = traits.subtracting(StandardNames.traitSet)
                let known = try await PlacementStore.existing(custom, in: "placement_traits", on: db)
                for trait in custom.subtracting(known).sorted() {
                    try await PlacementStore.insertName(trait, in: "placement_traits", on: db)
                }
                try await PlacementStore.setLinked(.traits, of: uuid, to: current.union(traits), on: db)
            }
            if changedInventory || changedTraits {
                provider.generation = try await PlacementStore.bumpGenerations([uuid], on: db)[uuid] ?? provider.generation + 1
            }
            if changed || changedInventory || changedTraits { try await PlacementStore.recordChange([uuid], on: db) }
            return provider
        }
    }
}
