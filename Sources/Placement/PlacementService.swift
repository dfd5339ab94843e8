import Foundation
import Logging
import NimbusCore
import SQLKit
import Store

/// OpenStack Placement: resource providers, their inventories, traits and aggregates, the
/// allocations consumers hold against them, and where a new request would fit.
///
/// The HTTP API (`PlacementAPI`) and in-process callers (the scheduler) use the same methods.
/// Every write is one transaction that first locks the provider rows it changes, so a claim
/// checks capacity against usage no concurrent writer can change under it.
public final class PlacementService: Sendable {
    public let database: Database
    let logger: Logger
    /// Providers' state for candidates; every write below records what it touched so it stays exact.
    let cache = ProviderCache()

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Provider uuids are embedded in JSON and SQL lists unescaped, so only uuids get in.
    static func requireUUID(_ value: String, _ what: String) throws {
        guard Identifier.looksLikeUUID(value) else { throw NimbusError.badRequest("Invalid \(what): '\(value)' is not a 'uuid'") }
    }

    /// The provider, locked for the rest of the transaction. - Throws: 404 when absent.
    func lockedProvider(_ uuid: String, on db: any SQLDatabase) async throws -> ResourceProvider {
        guard let provider = try await PlacementStore.fetchProvider(uuid, forUpdate: true, on: db) else {
            throw NimbusError.providerNotFound(uuid)
        }
        return provider
    }

    /// Throws a generation conflict unless `expected` is nil (no check) or matches.
    func check(_ provider: ResourceProvider, generation expected: Int64?) throws {
        if let expected, expected != provider.generation { throw NimbusError.providerGenerationConflict() }
    }

    /// Runs `body` in a transaction, turning a unique violation (two writers inserting the same
    /// row at once, which row locks cannot prevent for rows that do not exist yet) into `conflict`.
    func write<T: Sendable>(
        conflict: @autoclosure @escaping @Sendable () -> NimbusError,
        _ body: @Sendable @escaping (any SQLDatabase) async throws -> T
    ) async throws -> T {
        do {
            return try await database.transaction(body)
        } catch where Database.isUniqueViolation(error) {
            throw conflict()
        }
    }

    // MARK: - Names

    public func resourceClassExists(_ name: String) async throws -> Bool {
        if StandardNames.resourceClassSet.contains(name) { return true }
        return try await database.read { try await PlacementStore.nameExists(name, in: "placement_resource_classes", on: $0) }
    }

    /// Names in `names` that are neither standard nor created, for "No such ..." messages.
    func unknown(_ names: Set<String>, standard: Set<String>, table: String, on db: any SQLDatabase) async throws -> [String] {
        let custom = names.subtracting(standard)
        guard !custom.isEmpty else { return [] }
        return custom.subtracting(try await PlacementStore.existing(custom, in: table, on: db)).sorted()
    }

    func requireResourceClasses(_ names: Set<String>, on db: any SQLDatabase, message: (String) -> String) async throws {
        if let missing = try await unknown(names, standard: StandardNames.resourceClassSet, table: "placement_resource_classes", on: db).first {
            throw NimbusError.badRequest(message(missing))
        }
    }

    func requireTraits(_ names: Set<String>, on db: any SQLDatabase) async throws {
        let missing = try await unknown(names, standard: StandardNames.traitSet, table: "placement_traits", on: db)
        if !missing.isEmpty { throw NimbusError.badRequest("No such trait(s): \(missing.joined(separator: ", "))") }
    }
}
