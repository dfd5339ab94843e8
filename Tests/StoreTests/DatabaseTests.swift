import Foundation
import NimbusCore
import NimbusTesting
import SQLKit
import Store
import Testing

/// The data layer behaves the same on SQLite and PostgreSQL.
@Suite struct DatabaseTests {
    static let widgets = RecordTable("widgets", columns: [
        .init("id"), .init("name"), .init("enabled", .bool), .init("size", .int), .init("weight", .double),
        .init("tags", .json),
    ])
    static let schema = [
        Migration(id: "test-0001", sql: [
            "CREATE TABLE widgets (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, enabled BOOLEAN NOT NULL, size BIGINT, weight DOUBLE PRECISION, tags TEXT)",
        ]),
    ]

    static func widget(_ name: String, enabled: Bool = true, size: Int64 = 1) -> RecordTable.Record {
        ["id": .string(Identifier.hex()), "name": .string(name), "enabled": .bool(enabled), "size": .int(size),
         "weight": .double(1.5), "tags": ["a", "b"]]
    }

    @Test(arguments: TestDatabase.engines)
    func migrationsApplyOnceAndAreRecorded(engine: DatabaseEngine) async throws {
        try await TestDatabase.with(engine) { db async throws in
            let migrator = Migrator(database: db)
            #expect(try await migrator.migrate(Self.schema) == ["test-0001"])
            #expect(try await migrator.migrate(Self.schema) == [])
            #expect(try await migrator.appliedIDs() == ["test-0001"])
        }
    }

    @Test(arguments: TestDatabase.engines)
    func recordsRoundTripEveryColumnKind(engine: DatabaseEngine) async throws {
        try await TestDatabase.with(engine, migrations: Self.schema) { db async throws in
            let record = Self.widget("one", size: 42)
            try await db.read { try await Self.widgets.insert(record, on: $0) }
            let fetched = try await db.read { try await Self.widgets.fetch(record["id"]!.stringValue!, on: $0) }
            #expect(fetched == record)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func filtersMatchExactAndInexact(engine: DatabaseEngine) async throws {
        try await TestDatabase.with(engine, migrations: Self.schema) { db async throws in
            try await db.read { conn in
                for (name, enabled) in [("alpha", true), ("Alphabet", false), ("beta", true)] {
                    try await Self.widgets.insert(Self.widget(name, enabled: enabled), on: conn)
                }
            }
            let names = { (filters: [RecordTable.Filter]) in
                try await db.read { try await Self.widgets.list(filters, orderBy: "name", on: $0) }.compactMap { $0["name"]?.stringValue }
            }
            #expect(try await names([.init("enabled", .equal, true)]) == ["alpha", "beta"])
            #expect(try await names([.init("name", .istartswith, "alpha")]) == ["Alphabet", "alpha"])
            #expect(try await names([.init("name", .contains, "et")]) == ["Alphabet", "beta"])
            #expect(try await db.read { try await Self.widgets.count([.init("enabled", .equal, false)], on: $0) } == 1)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func transactionRollsBackOnError(engine: DatabaseEngine) async throws {
        struct Boom: Error {}
        try await TestDatabase.with(engine, migrations: Self.schema) { db async throws in
            await #expect(throws: Boom.self) {
                try await db.transaction { conn in
                    try await Self.widgets.insert(Self.widget("ghost"), on: conn)
                    throw Boom()
                }
            }
            #expect(try await db.read { try await Self.widgets.count(on: $0) } == 0)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func uniqueViolationIsRecognised(engine: DatabaseEngine) async throws {
        try await TestDatabase.with(engine, migrations: Self.schema) { db async throws in
            try await db.read { try await Self.widgets.insert(Self.widget("dup"), on: $0) }
            do {
                try await db.read { try await Self.widgets.insert(Self.widget("dup"), on: $0) }
                Issue.record("the second insert should have failed")
            } catch {
                #expect(Database.isUniqueViolation(error))
            }
        }
    }

    @Test(arguments: TestDatabase.engines)
    func concurrentWritersAllCommit(engine: DatabaseEngine) async throws {
        try await TestDatabase.with(engine, migrations: Self.schema) { db async throws in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        try await db.transaction { try await Self.widgets.insert(Self.widget("w\(index)"), on: $0) }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await db.read { try await Self.widgets.count(on: $0) } == 40)
        }
    }

    @Test(arguments: TestDatabase.engines)
    func updateAndDelete(engine: DatabaseEngine) async throws {
        try await TestDatabase.with(engine, migrations: Self.schema) { db async throws in
            let record = Self.widget("mutable")
            let id = record["id"]!.stringValue!
            try await db.read { conn in
                try await Self.widgets.insert(record, on: conn)
                #expect(try await Self.widgets.update(id, ["name": "renamed", "enabled": false], on: conn))
                #expect(try await Self.widgets.fetch(id, on: conn)?["name"] == "renamed")
                #expect(try await !Self.widgets.update("missing", ["name": "x"], on: conn))
                try await Self.widgets.delete(id: id, on: conn)
                #expect(try await Self.widgets.fetch(id, on: conn) == nil)
            }
        }
    }

    @Test func redactsPasswords() {
        #expect(Database.redacted("postgres://u:secret@h:5432/db") == "postgres://u:***@h:5432/db")
        #expect(Database.redacted("sqlite:/x.db") == "sqlite:/x.db")
    }
}
