import NimbusCore
import SQLKit
import Store


/// Every provider's state in memory, so candidates cost one small query instead of reading
/// a thousand providers per request.
///
/// Kept exact, not eventually consistent: each placement write appends the providers it touched
/// to `placement_changes` under an epoch that follows commit order (`PlacementStore.recordChange`).
/// Before answering, a reader asks for the changes after the epoch it holds and reloads just those
/// providers, so it never answers from state older than what the database had committed when the
/// request arrived; this holds across replicas on PostgreSQL too. A reader that fell behind the
/// log (or has nothing yet) reloads everything.
final class ProviderCache: Sendable {
    struct Contents: Sendable {
        var epoch: Int64
        /// Sorted by uuid, the order candidates are returned in.
        var providers: [ProviderState]
    }

    private let contents = Locked<Contents?>(nil)

    /// The providers as of now.
    func providers(on db: any SQLDatabase) async throws -> [ProviderState] {
        let held = contents.withLock { $0 }
        guard let held else { return try await reload(on: db) }
        let changes = try await PlacementStore.changes(after: held.epoch, on: db)
        guard let last = changes.last else { return held.providers }
        guard changes.first?.epoch == held.epoch + 1 else { return try await reload(on: db) }
        let changed = Set(changes.flatMap(\.providers))
        let fresh = try await PlacementStore.providerStates(changed, on: db)
        var providers = held.providers.filter { !changed.contains($0.snapshot.provider.uuid) }
        providers.append(contentsOf: fresh)
        providers.sort { $0.snapshot.provider.uuid < $1.snapshot.provider.uuid }
        install(Contents(epoch: last.epoch, providers: providers))
        return providers
    }

    private func reload(on db: any SQLDatabase) async throws -> [ProviderState] {
        // The epoch first: the state read after it is at least that new, and changes after it
        // are replayed next time (replaying a change already seen only reloads a provider again).
        let epoch = try await PlacementStore.epoch(on: db)
        let providers = try await PlacementStore.providerStates(on: db)
        install(Contents(epoch: epoch, providers: providers))
        return providers
    }

    /// Keeps the newer of two concurrent refreshes.
    private func install(_ new: Contents) {
        contents.withLock { current in
            if current == nil || current!.epoch <= new.epoch { current = new }
        }
    }
}
