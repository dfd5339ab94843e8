import NimbusCore
import SQLKit

/// Custom resource classes and traits, and the traits and aggregates attached to providers.
extension PlacementStore {
    // MARK: - Names

    static func customNames(_ table: String, on db: any SQLDatabase) async throws -> [String] {
        try await db.raw("SELECT name FROM \(ident: table) ORDER BY name").all()
            .map { try $0.decode(column: "name", as: String.self) }
    }

    static func nameExists(_ name: String, in table: String, on db: any SQLDatabase) async throws -> Bool {
        try await db.raw("SELECT name FROM \(ident: table) WHERE name = \(bind: name)").first() != nil
    }

    /// The names among `names` that exist in `table`.
    static func existing(_ names: Set<String>, in table: String, on db: any SQLDatabase) async throws -> Set<String> {
        guard !names.isEmpty else { return [] }
        return Set(try await db.raw("SELECT name FROM \(ident: table) WHERE name IN (\(binds: names.sorted()))").all()
            .map { try $0.decode(column: "name", as: String.self) })
    }

    static func insertName(_ name: String, in table: String, on db: any SQLDatabase) async throws {
        try await db.raw("INSERT INTO \(ident: table) (name, created_at) VALUES (\(bind: name), \(bind: now()))").run()
    }

    static func deleteName(_ name: String, in table: String, on db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM \(ident: table) WHERE name = \(bind: name)").run()
    }

    static func resourceClassInUse(_ name: String, on db: any SQLDatabase) async throws -> Bool {
        try await db.raw("SELECT provider_uuid FROM placement_inventories WHERE resource_class = \(bind: name) LIMIT 1").first() != nil
    }

    static func traitInUse(_ name: String, on db: any SQLDatabase) async throws -> Bool {
        try await db.raw("SELECT provider_uuid FROM placement_provider_traits WHERE trait = \(bind: name) LIMIT 1").first() != nil
    }

    /// Traits attached to at least one provider.
    static func associatedTraits(on db: any SQLDatabase) async throws -> Set<String> {
        Set(try await db.raw("SELECT DISTINCT trait FROM placement_provider_traits").all()
            .map { try $0.decode(column: "trait", as: String.self) })
    }

    // MARK: - Provider traits and aggregates

    /// The two link tables share a shape: (provider_uuid, value).
    enum Link: String {
        case traits = "placement_provider_traits"
        case aggregates = "placement_provider_aggregates"
        var column: String { self == .traits ? "trait" : "aggregate_uuid" }
    }

    static func linked(_ link: Link, of uuid: String, on db: any SQLDatabase) async throws -> [String] {
        try await db.raw("""
            SELECT \(ident: link.column) AS value FROM \(ident: link.rawValue) WHERE provider_uuid = \(bind: uuid) ORDER BY 1
            """).all().map { try $0.decode(column: "value", as: String.self) }
    }

    static func setLinked(_ link: Link, of uuid: String, to values: Set<String>, on db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM \(ident: link.rawValue) WHERE provider_uuid = \(bind: uuid)").run()
        guard !values.isEmpty else { return }
        let insert = db.insert(into: link.rawValue).columns("provider_uuid", link.column)
        for value in values.sorted() { insert.values(SQLBind(uuid), SQLBind(value)) }
        try await insert.run()
    }
}
