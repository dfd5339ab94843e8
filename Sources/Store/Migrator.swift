import Foundation
import NimbusCore
import SQLKit

/// One numbered schema change. Ids sort in the order they must run (e.g. `identity-0001`).
public struct Migration: Sendable {
    public let id: String
    /// Statements for the given engine; most are the same on both.
    public let statements: @Sendable (DatabaseEngine) -> [String]

    public init(id: String, statements: @escaping @Sendable (DatabaseEngine) -> [String]) {
        self.id = id
        self.statements = statements
    }

    public init(id: String, sql: [String]) {
        self.init(id: id) { _ in sql }
    }
}

/// Applies migrations not yet recorded, each in its own transaction, so a crash mid-way
/// leaves the schema at a known version and the next start resumes.
public struct Migrator: Sendable {
    public let database: Database

    public init(database: Database) { self.database = database }

    @discardableResult
    public func migrate(_ migrations: [Migration]) async throws -> [String] {
        try await database.transaction { db in
            try await db.raw("CREATE TABLE IF NOT EXISTS nimbus_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)").run()
        }
        var applied: [String] = []
        for migration in migrations {
            let engine = database.engine
            let ran = try await database.transaction { db -> Bool in
                if engine == .postgres {
                    // Replicas starting together must not apply the same migration twice.
                    try await db.raw("SELECT pg_advisory_xact_lock(4242)").run()
                }
                let existing = try await db.select().column("id").from("nimbus_migrations")
                    .where("id", .equal, migration.id).first()
                if existing != nil { return false }
                for statement in migration.statements(engine) {
                    try await db.raw(SQLQueryString(statement)).run()
                }
                try await db.insert(into: "nimbus_migrations")
                    .columns("id", "applied_at")
                    .values(SQLBind(migration.id), SQLBind(Timestamp.seconds(Date())))
                    .run()
                return true
            }
            if ran { applied.append(migration.id) }
        }
        return applied
    }

    /// Runs a one-time data step (seeding) unless `id` is recorded, then records it. A crash
    /// between the two runs `body` again on the next start, so it must be idempotent; once
    /// recorded it never runs again, so what an operator deletes afterwards stays deleted.
    public func runOnce(_ id: String, _ body: () async throws -> Void) async throws {
        let recorded = try await database.read { db in
            try await db.select().column("id").from("nimbus_migrations").where("id", .equal, id).first()
        }
        guard recorded == nil else { return }
        try await body()
        try await database.transaction { db in
            try await db.raw("""
                INSERT INTO nimbus_migrations (id, applied_at) VALUES (\(bind: id), \(bind: Timestamp.seconds(Date()))) ON CONFLICT DO NOTHING
                """).run()
        }
    }

    public func appliedIDs() async throws -> [String] {
        try await database.read { db in
            try await db.select().column("id").from("nimbus_migrations").orderBy("id").all()
                .map { try $0.decode(column: "id", as: String.self) }
        }
    }
}
