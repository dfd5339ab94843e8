/// A resource provider: a compute node, a shared storage pool, a NIC — anything with inventory.
///
/// `generation` changes whenever the provider's inventory, traits, aggregates or allocations
/// change, so a writer that read it can detect that someone else wrote in between.
public struct ResourceProvider: Sendable, Equatable {
    public var uuid: String
    public var name: String
    public var generation: Int64
    public var parentProviderUUID: String?
    /// The top of the provider's tree; itself for a provider without parent.
    public var rootProviderUUID: String

    public init(uuid: String, name: String, generation: Int64, parentProviderUUID: String?, rootProviderUUID: String) {
        self.uuid = uuid
        self.name = name
        self.generation = generation
        self.parentProviderUUID = parentProviderUUID
        self.rootProviderUUID = rootProviderUUID
    }
}

/// One provider with its inventories and their current usage, as read in one go for candidates.
public struct ProviderSnapshot: Sendable {
    public var provider: ResourceProvider
    public var inventories: [String: Inventory]
    /// Allocated amounts by resource class (missing means 0).
    public var used: [String: Int64]

    public init(provider: ResourceProvider, inventories: [String: Inventory] = [:], used: [String: Int64] = [:]) {
        self.provider = provider
        self.inventories = inventories
        self.used = used
    }

    /// Capacity and usage of every class the provider has inventory of.
    public var usages: [String: ResourceUsage] {
        inventories.reduce(into: [:]) { out, entry in
            out[entry.key] = ResourceUsage(capacity: entry.value.capacity, used: used[entry.key] ?? 0)
        }
    }
}

/// Everything candidate selection needs about one provider, held in memory by `ProviderCache`.
///
/// `resources` is computed once when the provider is loaded, so that answering a request copies
/// references instead of rebuilding a dictionary per candidate.
public struct ProviderState: Sendable {
    public var snapshot: ProviderSnapshot
    /// Sorted.
    public var traits: [String]
    public var aggregates: [String]
    public let resources: [String: ResourceUsage]

    public init(snapshot: ProviderSnapshot, traits: [String] = [], aggregates: [String] = []) {
        self.snapshot = snapshot
        self.traits = traits
        self.aggregates = aggregates
        self.resources = snapshot.usages
    }
}

/// A consumer's allocations: amounts by resource class, by provider.
public struct ConsumerAllocations: Sendable, Equatable {
    public var consumerUUID: String
    public var projectID: String
    public var userID: String
    public var generation: Int64
    public var consumerType: String
    /// Provider uuid → resource class → amount.
    public var allocations: [String: [String: Int64]]
    /// The current generation of each provider in `allocations`.
    public var providerGenerations: [String: Int64]

    public init(consumerUUID: String, projectID: String, userID: String, generation: Int64, consumerType: String,
                allocations: [String: [String: Int64]], providerGenerations: [String: Int64] = [:]) {
        self.consumerUUID = consumerUUID
        self.projectID = projectID
        self.userID = userID
        self.generation = generation
        self.consumerType = consumerType
        self.allocations = allocations
        self.providerGenerations = providerGenerations
    }
}
