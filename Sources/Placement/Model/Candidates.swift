/// What a caller wants from `allocationCandidates`: amounts per resource class, and where they may go.
///
/// Only the unnumbered request group is supported: every candidate is one provider that holds all
/// requested resources by itself (single-provider trees). Nested or sharing providers are not
/// combined into one candidate, which is all a compute node without NUMA/PCI inventories needs.
public struct CandidateRequest: Sendable, Equatable {
    public var resources: [String: Int64]
    /// Traits every candidate must have.
    public var required: Set<String>
    /// Traits no candidate may have (`required=!TRAIT`).
    public var forbidden: Set<String>
    /// Each set needs one of its traits on the candidate (`required=in:A,B`, microversion 1.39).
    public var anyOf: [Set<String>]
    /// Each set needs the candidate to be in one of its aggregates; every set must match
    /// (repeated `member_of=in:a,b`).
    public var memberOf: [Set<String>]
    /// Aggregates no candidate may be in (`member_of=!in:a,b`).
    public var notMemberOf: Set<String>
    /// Only providers in the tree of this provider.
    public var inTree: String?
    /// At most this many candidates, in provider order.
    public var limit: Int?

    public init(resources: [String: Int64], required: Set<String> = [], forbidden: Set<String> = [],
                anyOf: [Set<String>] = [], memberOf: [Set<String>] = [], notMemberOf: Set<String> = [],
                inTree: String? = nil, limit: Int? = nil) {
        self.resources = resources
        self.required = required
        self.forbidden = forbidden
        self.anyOf = anyOf
        self.memberOf = memberOf
        self.notMemberOf = notMemberOf
        self.inTree = inTree
        self.limit = limit
    }

    /// Whether any trait filter is present, so that traits need loading to filter.
    var filtersTraits: Bool { !required.isEmpty || !forbidden.isEmpty || !anyOf.isEmpty }
    var filtersAggregates: Bool { !memberOf.isEmpty || !notMemberOf.isEmpty }
}

/// One place the request fits: a provider, what to claim there, and its state for weighing.
public struct Candidate: Sendable, Equatable {
    public let provider: ResourceProvider
    /// Resource class → amount, ready to pass to `claim`.
    public let allocation: [String: Int64]
    /// Capacity and usage of every class the provider has, not only the requested ones.
    public let resources: [String: ResourceUsage]
    public let traits: [String]

    public init(provider: ResourceProvider, allocation: [String: Int64], resources: [String: ResourceUsage], traits: [String]) {
        self.provider = provider
        self.allocation = allocation
        self.resources = resources
        self.traits = traits
    }
}

/// The pure half of candidate selection: given providers' state, which ones fit.
public enum CandidateSelection {
    /// Whether `snapshot` can take every requested amount now.
    public static func fits(_ resources: [String: Int64], in snapshot: ProviderSnapshot) -> Bool {
        for (resourceClass, amount) in resources {
            guard let inventory = snapshot.inventories[resourceClass], inventory.allows(amount: amount),
                  inventory.fits(amount, used: snapshot.used[resourceClass] ?? 0) else { return false }
        }
        return true
    }

    /// Whether a provider with `traits` and `aggregates` passes the request's trait and aggregate
    /// filters. Both lists are short, so scanning them beats hashing them into sets.
    static func matches(_ request: CandidateRequest, traits: [String], aggregates: [String]) -> Bool {
        guard request.required.allSatisfy(traits.contains), !request.forbidden.contains(where: traits.contains),
              request.anyOf.allSatisfy({ $0.contains(where: traits.contains) }) else { return false }
        return request.memberOf.allSatisfy { $0.contains(where: aggregates.contains) }
            && !request.notMemberOf.contains(where: aggregates.contains)
    }

    /// The candidates, in the order of `providers`, at most `request.limit` of them.
    public static func select(_ request: CandidateRequest, from providers: [ProviderState]) -> [Candidate] {
        var out: [Candidate] = []
        let limit = request.limit ?? Int.max
        let treeRoot = request.inTree.map { tree in
            providers.first { $0.snapshot.provider.uuid == tree }?.snapshot.provider.rootProviderUUID ?? tree
        }
        let filtersTraits = request.filtersTraits, filtersAggregates = request.filtersAggregates
        for state in providers where out.count < limit {
            let provider = state.snapshot.provider
            if let treeRoot, provider.rootProviderUUID != treeRoot { continue }
            guard fits(request.resources, in: state.snapshot) else { continue }
            if filtersTraits || filtersAggregates, !matches(request, traits: state.traits, aggregates: state.aggregates) { continue }
            out.append(Candidate(provider: provider, allocation: request.resources, resources: state.resources, traits: state.traits))
        }
        return out
    }
}
