import CSQLiteTuning
import Foundation
import NimbusCore
import Logging
import NIOCore
import NIOPosix
import SQLKit
import SQLiteKit

import VaporCSQLite

/// An SQLite failure with its extended result code (e.g. 2067 for a UNIQUE violation).
public struct SQLiteFailure: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String

    public var primaryCode: Int32 { code & 0xff }
    public var description: String { "SQLite error \(code): \(message)" }

    static let constraint: Int32 = 19
    static let constraintUnique: Int32 = 2067
    static let constraintPrimaryKey: Int32 = 1555
    static let constraintForeignKey: Int32 = 787
}

/// One libsqlite3 connection whose statements run on the calling thread, with its prepared
/// statements cached by SQL text.
///
/// SQLiteNIO runs every statement on its thread pool and hands each row back through the event
/// loop, so a statement costs several thread switches and a 1,000-row read as many event-loop
/// tasks. A statement of Nimbus's (an indexed lookup, or a list of a few thousand rows) takes
/// micro- to milliseconds, so running it where the caller already is costs less than any hop.
/// Writers are queued asynchronously by `Database` before they get here, and WAL readers never
/// wait, so nothing blocks a thread for long.
final class DirectSQLiteConnection: @unchecked Sendable {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    private static let statementCacheLimit = 256
    private static let initialized: Void = { _ = sqlite_nio_sqlite3_initialize() }()

    init(path: String) throws {
        _ = Self.initialized
        let flags = SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI | SQLITE_OPEN_EXRESCODE
        let status = sqlite_nio_sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK else {
            let message = handle.flatMap { sqlite_nio_sqlite3_errmsg($0) }.map { String(cString: $0) } ?? "cannot open"
            sqlite_nio_sqlite3_close(handle)
            throw SQLiteFailure(code: status, message: "\(message) (\(path))")
        }
        // Without the planner's stability guarantee SQLite plans some statements around the
        // values bound to them (small integers, LIKE patterns) and prepares them again whenever
        // those change: under load, 7 % of the control plane's CPU went to re-preparing.
        _ = nimbus_sqlite_enable_qpsg(UnsafeMutableRawPointer(handle))
        for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=10000", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL"] {
            try execute(pragma, binds: []) { _ in }
        }
    }

    deinit {
        for statement in statements.values { sqlite_nio_sqlite3_finalize(statement) }
        sqlite_nio_sqlite3_close_v2(handle)
    }

    /// True while a transaction is open (one that failed to end must not go back to the pool).
    var inTransaction: Bool { sqlite_nio_sqlite3_get_autocommit(handle) == 0 }

    private var lastError: SQLiteFailure {
        SQLiteFailure(code: sqlite_nio_sqlite3_extended_errcode(handle),
                      message: sqlite_nio_sqlite3_errmsg(handle).map { String(cString: $0) } ?? "unknown error")
    }

    /// Runs one statement, calling `onRow` for each result row.
    func execute(_ sql: String, binds: [SQLiteData], onRow: (DirectSQLiteRow) throws -> Void) throws {
        let statement = try prepared(sql)
        defer {
            sqlite_nio_sqlite3_reset(statement)
            sqlite_nio_sqlite3_clear_bindings(statement)
        }
        try bind(binds, to: statement)
        var columns: DirectSQLiteRow.Columns?
        while true {
            let status = sqlite_nio_sqlite3_step(statement)
            if status == SQLITE_DONE { return }
            guard status == SQLITE_ROW else { throw lastError }
            let names = columns ?? Self.columns(of: statement)
            columns = names
            var values: [SQLiteData] = []
            values.reserveCapacity(names.names.count)
            for index in 0..<Int32(names.names.count) {
                values.append(Self.value(of: statement, at: index))
            }
            try onRow(DirectSQLiteRow(columns: names, values: values))
        }
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        let status = sqlite_nio_sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else { throw lastError }
        if statements.count >= Self.statementCacheLimit {
            for old in statements.values { sqlite_nio_sqlite3_finalize(old) }
            statements.removeAll(keepingCapacity: true)
        }
        statements[sql] = statement
        return statement
    }

    private func bind(_ binds: [SQLiteData], to statement: OpaquePointer) throws {
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (offset, value) in binds.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32 = switch value {
            case .integer(let number): sqlite_nio_sqlite3_bind_int64(statement, index, Int64(number))
            case .float(let number): sqlite_nio_sqlite3_bind_double(statement, index, number)
            case .text(let text): sqlite_nio_sqlite3_bind_text64(statement, index, text, UInt64(text.utf8.count), transient, UInt8(SQLITE_UTF8))
            case .blob(let buffer):
                buffer.withUnsafeReadableBytes {
                    sqlite_nio_sqlite3_bind_blob64(statement, index, $0.baseAddress, UInt64($0.count), transient)
                }
            case .null: sqlite_nio_sqlite3_bind_null(statement, index)
            }
            guard status == SQLITE_OK else { throw lastError }
        }
    }

    private static func columns(of statement: OpaquePointer) -> DirectSQLiteRow.Columns {
        let count = sqlite_nio_sqlite3_column_count(statement)
        return DirectSQLiteRow.Columns(names: (0..<count).map { index in
            sqlite_nio_sqlite3_column_name(statement, index).map { String(cString: $0) } ?? ""
        })
    }

    private static func value(of statement: OpaquePointer, at index: Int32) -> SQLiteData {
        switch sqlite_nio_sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER:
            return .integer(Int(sqlite_nio_sqlite3_column_int64(statement, index)))
        case SQLITE_FLOAT:
            return .float(sqlite_nio_sqlite3_column_double(statement, index))
        case SQLITE_TEXT:
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, index))
            guard let bytes = sqlite_nio_sqlite3_column_text(statement, index) else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, index))
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            if let bytes = sqlite_nio_sqlite3_column_blob(statement, index) {
                buffer.writeBytes(UnsafeRawBufferPointer(start: bytes, count: count))
            }
            return .blob(buffer)
        default:
            return .null
        }
    }
}

/// A result row of `DirectSQLiteConnection`, read through SQLKit's `SQLRow`.
struct DirectSQLiteRow: SQLRow {
    /// Column names of one statement's result, shared by all its rows.
    final class Columns: Sendable {
        let names: [String]
        let offsets: [String: Int]
        init(names: [String]) {
            self.names = names
            self.offsets = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    let columns: Columns
    let values: [SQLiteData]

    var allColumns: [String] { columns.names }

    func contains(column: String) -> Bool { columns.offsets[column] != nil }

    func decodeNil(column: String) throws -> Bool {
        guard let offset = columns.offsets[column] else { return true }
        return values[offset] == .null
    }

    func decode<D: Decodable>(column: String, as type: D.Type) throws -> D {
        guard let offset = columns.offsets[column] else {
            throw DecodingError.valueNotFound(D.self, .init(codingPath: [], debugDescription: "No column '\(column)'"))
        }
        let value = values[offset]
        // The common cases without the generic decoder's dynamic casts.
        switch value {
        case .text(let text) where D.self == String.self: return text as! D
        case .integer(let number) where D.self == Int.self: return number as! D
        case .integer(let number) where D.self == Int64.self: return Int64(number) as! D
        case .integer(let number) where D.self == Bool.self: return (number != 0) as! D
        case .float(let number) where D.self == Double.self: return number as! D
        default: return try SQLiteDataDecoder().decode(D.self, from: value)
        }
    }
}

/// A `DirectSQLiteConnection` as SQLKit's `SQLDatabase`, for the duration of one `Database` call.
struct DirectSQLiteSession: SQLDatabase {
    let connection: DirectSQLiteConnection
    let logger: Logger
    var eventLoop: any EventLoop { MultiThreadedEventLoopGroup.singleton.any() }
    var dialect: any SQLDialect { SQLiteDialect() }
    var queryLogLevel: Logger.Level? { .trace }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) -> EventLoopFuture<Void> {
        do {
            try run(query, onRow)
            return eventLoop.makeSucceededVoidFuture()
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) async throws {
        try run(query, onRow)
    }

    private func run(_ query: any SQLExpression, _ onRow: (any SQLRow) -> ()) throws {
        let (sql, binds) = serialize(query)
        logger.trace("Executing query", metadata: ["sql": .string(sql)])
        try connection.execute(sql, binds: try binds.map(Self.encode)) { onRow($0) }
    }

    private static let encoder = SQLiteDataEncoder()

    private static func encode(_ value: any Encodable & Sendable) throws -> SQLiteData {
        switch value {
        case let text as String: .text(text)
        case let number as Int: .integer(number)
        case let number as Int64: .integer(Int(number))
        case let flag as Bool: .integer(flag ? 1 : 0)
        case let number as Double: .float(number)
        default: try encoder.encode(value)
        }
    }
}

/// Idle `DirectSQLiteConnection`s for one database file, opened on demand.
final class DirectSQLitePool: Sendable {
    private let path: String
    private let idle = Locked<[DirectSQLiteConnection]>([])
    private let maxIdle: Int
    /// Keeps a shared in-memory database alive between uses.
    private let keeper: DirectSQLiteConnection?

    init(path: String, maxIdle: Int) throws {
        if path == ":memory:" {
            // Every connection must see the same in-memory database.
            self.path = "file:nimbus-\(UUID().uuidString)?mode=memory&cache=shared"
            self.keeper = try DirectSQLiteConnection(path: self.path)
        } else {
            self.path = path
            self.keeper = nil
        }
        self.maxIdle = maxIdle
    }

    func withConnection<T>(_ body: (DirectSQLiteConnection) async throws -> T) async throws -> T {
        let connection = try idle.withLock { $0.popLast() } ?? DirectSQLiteConnection(path: path)
        defer {
            if !connection.inTransaction { idle.withLock { if $0.count < maxIdle { $0.append(connection) } } }
        }
        return try await body(connection)
    }

    func close() {
        idle.withLock { $0.removeAll() }
    }
}
