import NimbusCore
import SQLKit
import Store

/// One consumer's allocations to write: they replace whatever the consumer held.
public struct AllocationWrite: Sendable {
    /// How the consumer's generation is checked (microversion 1.28 made it mandatory on the wire).
    public enum GenerationCheck: Sendable, Equatable {
        /// No check (microversions before 1.28).
        case none
        /// The consumer must not exist yet (`consumer_generation: null`).
        case new
        /// The consumer must exist at this generation.
        case expect(Int64)

        /// `nil` means a new consumer, as on the wire.
        public init(_ generation: Int64?) { self = generation.map { .expect($0) } ?? .new }
    }

    public var consumer: String
    public var projectID: String
    public var userID: String
    /// Provider uuid → resource class → amount; empty removes the consumer's allocations.
    public var allocations: [String: [String: Int64]]
    public var generation: GenerationCheck
    public var consumerType: String?

    public init(consumer: String, projectID: String, userID: String, allocations: [String: [String: Int64]],
                generation: GenerationCheck, consumerType: String? = nil) {
        self.consumer = consumer
        self.projectID = projectID
        self.userID = userID
        self.allocations = allocations
        self.generation = generation
        self.consumerType = consumerType
    }
}

/// A project's usage of one consumer type (microversion 1.38 groups `/usages` by it).
public struct UsageGroup: Sendable, Equatable {
    public var consumerCount: Int
    public var resources: [String: Int64]
}

extension PlacementService {
    /// Claims `allocations` for `consumer` atomically: capacity is checked under the providers' row
    /// locks, and the consumer's previous allocations are replaced.
    /// - Parameter consumerGeneration: nil for a new consumer, else the generation last read.
    /// - Returns: the consumer's new generation.
    /// - Throws: 409 with code `placement.concurrent_update` when the consumer changed meanwhile
    ///   (re-read and retry), 409 without it when a provider lacks capacity (pick another).
    @discardableResult
    public func claim(
        consumer: String, project: String, user: String, allocations: [String: [String: Int64]],
        consumerGeneration: Int64?, consumerType: String? = nil
    ) async throws -> Int64 {
        let write = AllocationWrite(consumer: consumer, projectID: project, userID: user, allocations: allocations,
                                    generation: .init(consumerGeneration), consumerType: consumerType)
        return try await writeAllocations([write])[consumer] ?? 0
    }

    /// Removes every allocation of `consumer`. - Returns: whether it held any.
    @discardableResult
    public func releaseAllocations(consumer: String) async throws -> Bool {
        try await database.transaction { db in
            guard try await !PlacementStore.consumers([consumer], forUpdate: true, on: db).isEmpty else { return false }
            let held = try await PlacementStore.allocations(ofConsumers: [consumer], on: db)[consumer] ?? [:]
            _ = try await PlacementStore.lockProviders(Set(held.keys), on: db)
            try await Self.apply(delta: Self.delta(old: held, new: [:]), on: db)
            try await PlacementStore.deleteConsumers([consumer], on: db)
            try await PlacementStore.bumpGenerations(Set(held.keys), on: db)
            try await PlacementStore.recordChange(Set(held.keys), on: db)
            return !held.isEmpty
        }
    }

    public func allocations(consumer: String) async throws -> ConsumerAllocations? {
        try await database.read { db in
            guard let row = try await PlacementStore.consumers([consumer], forUpdate: false, on: db)[consumer] else { return nil }
            let held = try await PlacementStore.allocations(ofConsumers: [consumer], on: db)[consumer] ?? [:]
            return ConsumerAllocations(consumerUUID: consumer, projectID: row.projectID, userID: row.userID,
                                       generation: row.generation, consumerType: row.consumerType, allocations: held,
                                       providerGenerations: try await PlacementStore.generations(Set(held.keys), on: db))
        }
    }

    /// Consumer → resource class → amount on one provider, with the provider's generation.
    public func providerAllocations(_ uuid: String) async throws -> (generation: Int64, allocations: [String: [String: Int64]]) {
        try await database.read { db in
            guard let provider = try await PlacementStore.fetchProvider(uuid, on: db) else { throw NimbusError.providerNotFound(uuid) }
            return (provider.generation, try await PlacementStore.allocations(onProvider: uuid, on: db))
        }
    }

    /// A project's (or one user's) usage, by consumer type.
    public func usages(project: String, user: String? = nil) async throws -> [String: UsageGroup] {
        let (rows, counts) = try await database.read { try await PlacementStore.usages(project: project, user: user, on: $0) }
        var out: [String: UsageGroup] = counts.mapValues { UsageGroup(consumerCount: $0, resources: [:]) }
        for row in rows { out[row.consumerType, default: UsageGroup(consumerCount: 0, resources: [:])].resources[row.resourceClass] = row.used }
        return out
    }

    /// Writes several consumers' allocations in one transaction: all or none.
    ///
    /// Order of locks: consumers, then every provider involved (old and new), each in uuid order,
    /// so concurrent writers queue instead of deadlocking. Capacity is then checked against the
    /// usage read under those locks, as Placement does: `used - held by this consumer + asked <= capacity`.
    /// - Returns: each consumer's new generation (absent for consumers left without allocations).
    @discardableResult
    public func writeAllocations(_ writes: [AllocationWrite]) async throws -> [String: Int64] {
        try Self.validate(writes)
        let conflict = NimbusError(.conflict, "consumer generation conflict - expected null but got 1",
                                   code: PlacementCode.concurrentUpdate)
        return try await write(conflict: conflict) { db in
            let consumers = writes.map(\.consumer)
            let existing = try await PlacementStore.consumers(consumers, forUpdate: true, on: db)
            for write in writes { try Self.checkGeneration(write, existing[write.consumer]) }
            let held = try await PlacementStore.allocations(ofConsumers: consumers, on: db)
            let involved = Set(held.values.flatMap(\.keys)).union(writes.flatMap { $0.allocations.keys })
            let providers = try await PlacementStore.lockProviders(involved, on: db)
            if let missing = writes.flatMap({ $0.allocations.keys }).sorted().first(where: { providers[$0] == nil }) {
                throw NimbusError.badRequest("Allocation for resource provider '\(missing)' that does not exist.")
            }
            var delta: [String: [String: Int64]] = [:]
            for write in writes {
                for (provider, resources) in Self.delta(old: held[write.consumer] ?? [:], new: write.allocations) {
                    for (resourceClass, amount) in resources { delta[provider, default: [:]][resourceClass, default: 0] += amount }
                }
            }
            try await Self.checkCapacity(writes, delta: delta, providers: providers, on: db)
            try await Self.apply(delta: delta, on: db)
            var generations: [String: Int64] = [:]
            for write in writes {
                generations[write.consumer] = try await Self.store(write, existing: existing[write.consumer], on: db)
            }
            try await PlacementStore.bumpGenerations(involved, on: db)
            try await PlacementStore.recordChange(involved, on: db)
            return generations
        }
    }

    static func validate(_ writes: [AllocationWrite]) throws {
        var seen: Set<String> = []
        for write in writes {
            guard seen.insert(write.consumer).inserted else {
                throw NimbusError.badRequest("Consumer \(write.consumer) appears more than once.")
            }
            for (provider, resources) in write.allocations {
                if resources.isEmpty { throw NimbusError.badRequest("Allocation for resource provider '\(provider)' has no resources.") }
                for (resourceClass, amount) in resources where amount < 1 {
                    throw NimbusError.badRequest("Allocation of \(resourceClass) on resource provider '\(provider)' must be a positive integer, not \(amount).")
                }
            }
        }
    }

    /// Placement's wording: "expected <what the caller sent> but got <what is stored>".
    static func checkGeneration(_ write: AllocationWrite, _ row: PlacementStore.ConsumerRow?) throws {
        let mismatch: String? = switch (write.generation, row) {
        case (.none, _), (.new, nil): nil
        case (.new, let row?): "expected null but got \(row.generation)"
        case (.expect(let expected), nil): "expected \(expected) but got null"
        case (.expect(let expected), let row?): expected == row.generation ? nil : "expected \(expected) but got \(row.generation)"
        }
        if let mismatch {
            throw NimbusError(.conflict, "consumer generation conflict - \(mismatch)", code: PlacementCode.concurrentUpdate)
        }
    }

    /// `new - old` per provider and class, zeros dropped.
    static func delta(old: [String: [String: Int64]], new: [String: [String: Int64]]) -> [String: [String: Int64]] {
        var out = new
        for (provider, resources) in old {
            for (resourceClass, amount) in resources { out[provider, default: [:]][resourceClass, default: 0] -= amount }
        }
        return out.mapValues { $0.filter { $0.value != 0 } }.filter { !$0.value.isEmpty }
    }

    static func checkCapacity(
        _ writes: [AllocationWrite], delta: [String: [String: Int64]], providers: [String: ResourceProvider], on db: any SQLDatabase
    ) async throws {
        var snapshots: [String: ProviderSnapshot] = [:]
        for write in writes {
            for (provider, resources) in write.allocations.sorted(by: { $0.key < $1.key }) {
                if snapshots[provider] == nil { snapshots[provider] = try await PlacementStore.snapshot(of: providers[provider]!, on: db) }
                let snapshot = snapshots[provider]!
                for (resourceClass, amount) in resources.sorted(by: { $0.key < $1.key }) {
                    let subject = "'\(resourceClass)' on resource provider '\(provider)'"
                    guard let inventory = snapshot.inventories[resourceClass] else {
                        throw NimbusError.conflict("Unable to allocate inventory: Inventory for \(subject) invalid.")
                    }
                    guard inventory.allows(amount: amount) else {
                        throw NimbusError.conflict("Unable to allocate inventory: Unable to create allocation for \(subject). The requested amount would violate inventory constraints.")
                    }
                    let after = (snapshot.used[resourceClass] ?? 0) + (delta[provider]?[resourceClass] ?? 0)
                    guard after <= inventory.capacity else {
                        throw NimbusError.conflict("Unable to allocate inventory: Unable to create allocation for \(subject). The requested amount would exceed the capacity.")
                    }
                }
            }
        }
    }

    static func apply(delta: [String: [String: Int64]], on db: any SQLDatabase) async throws {
        for (provider, resources) in delta.sorted(by: { $0.key < $1.key }) {
            for (resourceClass, amount) in resources.sorted(by: { $0.key < $1.key }) {
                try await PlacementStore.addUsage(amount, provider: provider, resourceClass: resourceClass, on: db)
            }
        }
    }

    /// Replaces the consumer's rows; a consumer left without allocations is deleted, as Placement does.
    /// - Returns: the consumer's new generation, nil when deleted.
    static func store(_ write: AllocationWrite, existing: PlacementStore.ConsumerRow?, on db: any SQLDatabase) async throws -> Int64? {
        guard !write.allocations.isEmpty else {
            try await PlacementStore.deleteConsumers([write.consumer], on: db)
            return nil
        }
        var row = PlacementStore.ConsumerRow(uuid: write.consumer, projectID: write.projectID, userID: write.userID,
                                             generation: (existing?.generation ?? 0) + 1,
                                             consumerType: write.consumerType ?? existing?.consumerType ?? "unknown")
        if existing == nil {
            row.generation = 1
            try await PlacementStore.insertConsumer(row, on: db)
        } else {
            try await PlacementStore.deleteAllocations(consumer: write.consumer, on: db)
            try await PlacementStore.updateConsumer(row, on: db)
        }
        try await PlacementStore.insertAllocations(consumer: write.consumer, write.allocations, on: db)
        return row.generation
    }
}
