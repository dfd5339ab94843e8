@preconcurrency import AsyncKit
import Foundation
import Logging
import NIOCore
import NIOPosix
import NimbusCore
import PostgresKit
import SQLKit
import SQLiteKit

/// The SQL engines Nimbus runs on: SQLite embedded (single node), PostgreSQL (scale-out).
public enum DatabaseEngine: String, Sendable {
    case sqlite
    case postgres
}

/// One data layer over SQLite and PostgreSQL, so every service writes its SQL once (through SQLKit)
/// and gets transactions with the same semantics on both.
public final class Database: Sendable {
    public let engine: DatabaseEngine
    public let logger: Logger
    private let pool: Pool
    /// Serializes SQLite write transactions in-process (see `AsyncLock`); unused on PostgreSQL.
    private let writeLock = AsyncLock()
    /// PostgreSQL only: how to open the dedicated connections that `subscribe` listens on.
    let listenConfiguration: PostgresConnection.Configuration?
    /// Listening tasks, cancelled by `shutdown`.
    let subscriptions = Subscriptions()

    // The pool hops to its event loops internally; it predates Sendable annotations.
    private enum Pool: @unchecked Sendable {
        case sqlite(DirectSQLitePool)
        case postgres(EventLoopGroupConnectionPool<PostgresConnectionSource>)
    }

    /// Opens a database from a URL: `sqlite:///abs/path.db`, `sqlite:relative.db`, `sqlite::memory:`,
    /// or `postgres://user:password@host:port/dbname`.
    public static func open(url: String, logger: Logger, maxConnections: Int = 4) throws -> Database {
        let group = MultiThreadedEventLoopGroup.singleton
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            var configuration = try SQLPostgresConfiguration(url: url.replacingOccurrences(of: "postgresql://", with: "postgres://"))
            configuration.coreConfiguration.options.requireBackendKeyData = false
            let pool = EventLoopGroupConnectionPool(
                source: PostgresConnectionSource(sqlConfiguration: configuration),
                maxConnectionsPerEventLoop: maxConnections,
                logger: logger,
                on: group)
            return Database(engine: .postgres, pool: .postgres(pool), logger: logger, listenConfiguration: configuration.coreConfiguration)
        }
        guard url.hasPrefix("sqlite:") else {
            throw NimbusError.badRequest("Unsupported database URL '\(url)': use sqlite:PATH or postgres://...")
        }
        var path = String(url.dropFirst("sqlite:".count))
        if path.hasPrefix("//") { path.removeFirst(2) }
        // Requests hold a connection across awaits, so more are in use at once than there are
        // cores; a connection closed on return takes its prepared statements with it.
        let pool = try DirectSQLitePool(path: path, maxIdle: max(maxConnections, 1) * 8)
        return Database(engine: .sqlite, pool: .sqlite(pool), logger: logger, listenConfiguration: nil)
    }

    private init(engine: DatabaseEngine, pool: Pool, logger: Logger, listenConfiguration: PostgresConnection.Configuration?) {
        self.listenConfiguration = listenConfiguration
        self.engine = engine
        self.pool = pool
        self.logger = logger
    }

    /// Runs `body` on one pooled connection, outside any transaction. For reads only: every write
    /// goes through `transaction`, which is what orders writers on SQLite.
    @discardableResult
    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        switch pool {
        case .sqlite(let pool):
            return try await pool.withConnection { connection in
                try await body(DirectSQLiteSession(connection: connection, logger: logger))
            }
        case .postgres(let pool):
            let connection = try await pool.requestConnection(logger: logger).get()
            defer { pool.releaseConnection(connection, logger: logger) }
            return try await body(connection.sql())
        }
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    ///
    /// On SQLite the transaction takes the write lock up front (`BEGIN IMMEDIATE`), so two writers
    /// queue on the busy timeout instead of failing half-way with SQLITE_BUSY.
    @discardableResult
    public func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        guard engine == .sqlite else { return try await run(body) }
        await writeLock.lock()
        do {
            let result = try await run(body)
            await writeLock.unlock()
            return result
        } catch {
            await writeLock.unlock()
            throw error
        }
    }

    private func run<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await read { db in
            try await db.raw(SQLQueryString(engine == .sqlite ? "BEGIN IMMEDIATE" : "BEGIN")).run()
            do {
                let result = try await body(db)
                try await db.raw("COMMIT").run()
                return result
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    public func shutdown() async {
        subscriptions.cancelAll()
        switch pool {
        case .sqlite(let pool): pool.close()
        case .postgres(let pool): try? await pool.shutdownAsync()
        }
    }
}

extension Database {
    /// The URL with any password masked, for logs and banners.
    public static func redacted(_ url: String) -> String {
        guard let at = url.firstIndex(of: "@"), let scheme = url.range(of: "://"),
              let colon = url[scheme.upperBound..<at].firstIndex(of: ":") else { return url }
        return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
    }
}
