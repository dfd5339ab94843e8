import NimbusCore
import SQLKit
import Store

extension PlacementService {
    /// Where `request` fits now: every provider that can take all of it by itself.
    ///
    /// Selection runs in memory over `ProviderCache`, which costs one small query when nothing
    /// changed and a reload of just the changed providers otherwise, however many there are.
    /// Candidates are a hint: `claim` re-checks capacity under the providers' locks.
    /// - Throws: 400 for an empty request or an unknown resource class or trait.
    public func allocationCandidates(_ request: CandidateRequest) async throws -> [Candidate] {
        guard !request.resources.isEmpty else {
            throw NimbusError.badRequest("Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024.")
        }
        return try await candidates(request)
    }

    func candidates(_ request: CandidateRequest) async throws -> [Candidate] {
        try await database.read { db in
            try await self.requireResourceClasses(Set(request.resources.keys), on: db) { name in
                "Invalid resource class in resources parameter: No such resource class \(name)."
            }
            try await self.requireTraits(request.required.union(request.forbidden).union(request.anyOf.flatMap { $0 }), on: db)
            var request = request
            if let tree = request.inTree {
                guard let provider = try await PlacementStore.fetchProvider(tree, on: db) else { return [] }
                request.inTree = provider.rootProviderUUID
            }
            return CandidateSelection.select(request, from: try await self.cache.providers(on: db))
        }
    }
}
