import Foundation
import Logging
import NimbusCore
import SQLKit
import Store

/// Throwaway databases for tests: a temp SQLite file, and — when `NIMBUS_TEST_POSTGRES_URL` names a
/// server (`make test` starts one) — a fresh PostgreSQL database per test.
public enum TestDatabase {
    public static let postgresURL = ProcessInfo.processInfo.environment["NIMBUS_TEST_POSTGRES_URL"]

    /// The engines to run engine-parametrized tests on. In CI a missing PostgreSQL is an error,
    /// not a silent skip.
    public static var engines: [DatabaseEngine] {
        if postgresURL != nil { return [.sqlite, .postgres] }
        if ProcessInfo.processInfo.environment["CI"] != nil {
            fatalError("CI is set but NIMBUS_TEST_POSTGRES_URL is not: the PostgreSQL tests would not run")
        }
        return [.sqlite]
    }

    /// The engine for tests that do not ask for one: SQLite, unless `NIMBUS_TEST_ENGINE=postgres`
    /// runs the whole suite on PostgreSQL.
    public static var defaultEngine: DatabaseEngine {
        ProcessInfo.processInfo.environment["NIMBUS_TEST_ENGINE"].flatMap(DatabaseEngine.init(rawValue:)) ?? .sqlite
    }

    /// A URL for a new, empty database on `engine`.
    public static func url(_ engine: DatabaseEngine) async throws -> String {
        let name = "nimbus_t_" + Identifier.hex().prefix(12)
        switch engine {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            return "sqlite:" + directory.appendingPathComponent("test.db").path
        case .postgres:
            guard let base = postgresURL, let slash = base.lastIndex(of: "/") else {
                throw NimbusError.internal("NIMBUS_TEST_POSTGRES_URL is not set")
            }
            let admin = try Database.open(url: base, logger: Logger(label: "test"), maxConnections: 1)
            do {
                try await admin.read { try await $0.raw(SQLQueryString("CREATE DATABASE \(name)")).run() }
            } catch {
                await admin.shutdown()
                throw error
            }
            await admin.shutdown()
            return String(base[...slash]) + name
        }
    }

    /// Deletes a SQLite test database's directory and any other scratch directories.
    public static func remove(_ url: String, _ others: URL...) {
        if url.hasPrefix("sqlite:") {
            try? FileManager.default.removeItem(at: URL(fileURLWithPath: String(url.dropFirst("sqlite:".count))).deletingLastPathComponent())
        }
        for other in others { try? FileManager.default.removeItem(at: other) }
    }

    /// Opens a fresh database, runs `body`, and shuts the pool down whatever happens.
    public static func with<T>(
        _ engine: DatabaseEngine, migrations: [Migration] = [], _ body: (Database) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let location = try await url(engine)
        let database = try Database.open(url: location, logger: logger)
        do {
            try await Migrator(database: database).migrate(migrations)
            let result = try await body(database)
            await database.shutdown()
            remove(location)
            return result
        } catch {
            await database.shutdown()
            remove(location)
            throw error
        }
    }
}
