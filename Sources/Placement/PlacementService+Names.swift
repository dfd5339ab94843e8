import NimbusCore
import SQLKit
import Store

/// Resource classes and traits: the standard ones, and custom ones (`CUSTOM_*`) users create.
extension PlacementService {
    static let classTable = "placement_resource_classes"
    static let traitTable = "placement_traits"

    public func resourceClasses() async throws -> [String] {
        StandardNames.resourceClasses + (try await database.read { try await PlacementStore.customNames(Self.classTable, on: $0) })
    }

    static func requireCustomClass(_ name: String) throws {
        guard StandardNames.isValidCustom(name) else {
            throw NimbusError.badRequest("Invalid resource class name '\(name)': custom resource classes must start with 'CUSTOM_' and use only A-Z, 0-9 and _.")
        }
    }

    /// Creates a custom class. - Throws: 409 when it exists.
    public func createResourceClass(_ name: String) async throws {
        try Self.requireCustomClass(name)
        let conflict = NimbusError.conflict("Conflicting resource class already exists: \(name)")
        try await write(conflict: conflict) { db in
            if try await PlacementStore.nameExists(name, in: Self.classTable, on: db) { throw conflict }
            try await PlacementStore.insertName(name, in: Self.classTable, on: db)
        }
    }

    /// Creates a custom class unless it exists. - Returns: whether it was created.
    @discardableResult
    public func ensureResourceClass(_ name: String) async throws -> Bool {
        if StandardNames.resourceClassSet.contains(name) {
            throw NimbusError.badRequest("Cannot update standard resource class \(name)")
        }
        try Self.requireCustomClass(name)
        return try await ensureName(name, table: Self.classTable)
    }

    /// Inserts a name unless present; a concurrent insert of the same name counts as present.
    private func ensureName(_ name: String, table: String) async throws -> Bool {
        do {
            return try await database.transaction { db in
                if try await PlacementStore.nameExists(name, in: table, on: db) { return false }
                try await PlacementStore.insertName(name, in: table, on: db)
                return true
            }
        } catch where Database.isUniqueViolation(error) {
            return false
        }
    }

    public func deleteResourceClass(_ name: String) async throws {
        if StandardNames.resourceClassSet.contains(name) {
            throw NimbusError.badRequest("Cannot delete standard resource class \(name): Cannot delete standard resource class.")
        }
        try await database.transaction { db in
            guard try await PlacementStore.nameExists(name, in: Self.classTable, on: db) else {
                throw NimbusError.notFound("No such resource class \(name).")
            }
            if try await PlacementStore.resourceClassInUse(name, on: db) {
                throw NimbusError.conflict("Unable to delete resource class \(name). Class is in use in inventory.")
            }
            try await PlacementStore.deleteName(name, in: Self.classTable, on: db)
        }
    }

    // MARK: - Traits

    /// Trait names, optionally only those with a prefix or in a set, or only those attached to
    /// (`associated: true`) or absent from (`false`) every provider.
    public func traits(prefix: String? = nil, names: Set<String>? = nil, associated: Bool? = nil) async throws -> [String] {
        let (custom, attached) = try await database.read { db in
            (try await PlacementStore.customNames(Self.traitTable, on: db),
             associated == nil ? [] : try await PlacementStore.associatedTraits(on: db))
        }
        return (StandardNames.traits + custom).filter { name in
            (prefix.map { name.hasPrefix($0) } ?? true) && (names.map { $0.contains(name) } ?? true)
                && (associated.map { attached.contains(name) == $0 } ?? true)
        }.sorted()
    }

    public func traitExists(_ name: String) async throws -> Bool {
        if StandardNames.traitSet.contains(name) { return true }
        return try await database.read { try await PlacementStore.nameExists(name, in: Self.traitTable, on: $0) }
    }

    /// Creates a custom trait unless it exists. - Returns: whether it was created.
    @discardableResult
    public func ensureTrait(_ name: String) async throws -> Bool {
        if StandardNames.traitSet.contains(name) { return false }
        guard StandardNames.isValidCustom(name) else {
            throw NimbusError.badRequest(
                "The trait is invalid. A valid trait must be no longer than 255 characters, start with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" and \"_\"")
        }
        return try await ensureName(name, table: Self.traitTable)
    }

    public func deleteTrait(_ name: String) async throws {
        if StandardNames.traitSet.contains(name) { throw NimbusError.badRequest("Cannot delete standard trait \(name).") }
        try await database.transaction { db in
            guard try await PlacementStore.nameExists(name, in: Self.traitTable, on: db) else {
                throw NimbusError.notFound("No such trait(s): \(name).")
            }
            if try await PlacementStore.traitInUse(name, on: db) {
                throw NimbusError.conflict("The trait \(name) is in use by a resource provider.")
            }
            try await PlacementStore.deleteName(name, in: Self.traitTable, on: db)
        }
    }

    // MARK: - Provider traits and aggregates

    public func providerTraits(_ uuid: String) async throws -> (generation: Int64, traits: [String]) {
        let (generation, values) = try await linked(.traits, of: uuid)
        return (generation, values)
    }

    public func providerAggregates(_ uuid: String) async throws -> (generation: Int64, aggregates: [String]) {
        let (generation, values) = try await linked(.aggregates, of: uuid)
        return (generation, values)
    }

    private func linked(_ link: PlacementStore.Link, of uuid: String) async throws -> (generation: Int64, values: [String]) {
        try await database.read { db in
            guard let provider = try await PlacementStore.fetchProvider(uuid, on: db) else { throw NimbusError.providerNotFound(uuid) }
            return (provider.generation, try await PlacementStore.linked(link, of: uuid, on: db))
        }
    }

    /// Replaces a provider's traits. - Throws: 400 for unknown traits, 409 on a generation mismatch.
    @discardableResult
    public func setProviderTraits(_ uuid: String, _ traits: Set<String>, generation: Int64?) async throws -> Int64 {
        try await setLinked(.traits, of: uuid, to: traits, generation: generation)
    }

    /// Replaces a provider's aggregates (uuids). - Throws: 409 on a generation mismatch.
    @discardableResult
    public func setProviderAggregates(_ uuid: String, _ aggregates: Set<String>, generation: Int64?) async throws -> Int64 {
        for aggregate in aggregates { try Self.requireUUID(aggregate, "aggregate") }
        return try await setLinked(.aggregates, of: uuid, to: aggregates, generation: generation)
    }

    private func setLinked(_ link: PlacementStore.Link, of uuid: String, to values: Set<String>, generation: Int64?) async throws -> Int64 {
        try await database.transaction { db in
            let provider = try await self.lockedProvider(uuid, on: db)
            try self.check(provider, generation: generation)
            if link == .traits { try await self.requireTraits(values, on: db) }
            try await PlacementStore.setLinked(link, of: uuid, to: values, on: db)
            let generation = try await PlacementStore.bumpGenerations([uuid], on: db)[uuid] ?? provider.generation + 1
            try await PlacementStore.recordChange([uuid], on: db)
            return generation
        }
    }
}
