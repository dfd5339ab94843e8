import Foundation
import NimbusCore
import SQLKit

/// A table whose rows travel as JSON objects: one definition drives insert, fetch, list with
/// OpenStack-style filters, update and delete, so services do not hand-write the same CRUD SQL
/// for every resource.
public struct RecordTable: Sendable {
    public enum ColumnKind: Sendable {
        case string
        case bool
        case int
        case double
        /// A JSON document stored as text (lists, maps, extra attributes).
        case json
    }

    public struct Column: Sendable {
        public let name: String
        public let kind: ColumnKind
        public init(_ name: String, _ kind: ColumnKind = .string) {
            self.name = name
            self.kind = kind
        }
    }

    public let name: String
    public let columns: [Column]
    public let primaryKey: String
    private let kinds: [String: ColumnKind]
    private let quotedName: QuotedIdentifier
    private let quotedColumns: [QuotedIdentifier]
    private let quotedByName: [String: QuotedIdentifier]

    public init(_ name: String, primaryKey: String = "id", columns: [Column]) {
        self.name = name
        self.columns = columns
        self.primaryKey = primaryKey
        self.kinds = Dictionary(uniqueKeysWithValues: columns.map { ($0.name, $0.kind) })
        self.quotedName = QuotedIdentifier(name)
        self.quotedColumns = columns.map { QuotedIdentifier($0.name) }
        self.quotedByName = Dictionary(uniqueKeysWithValues: columns.map { ($0.name, QuotedIdentifier($0.name)) })
    }

    /// A column of this table, quoted once ahead of time.
    private func quoted(_ column: String) -> QuotedIdentifier { quotedByName[column] ?? QuotedIdentifier(column) }

    public typealias Record = [String: JSONValue]

    /// A filter on one column; `op` is Keystone's inexact-filter suffix when present.
    public struct Filter: Sendable {
        public enum Operation: String, Sendable {
            case equal, notEqual, greaterThan, lessThan, contains, icontains, startswith, istartswith, endswith, iendswith
        }
        public let column: String
        public let operation: Operation
        public let value: JSONValue
        public init(_ column: String, _ operation: Operation = .equal, _ value: JSONValue) {
            self.column = column
            self.operation = operation
            self.value = value
        }
    }

    // MARK: - Statements

    public func insert(_ record: Record, on db: any SQLDatabase) async throws {
        let names = columns.map(\.name).filter { record[$0] != nil }
        try await db.insert(into: quotedName)
            .columns(names.map(quoted))
            .values(names.map { bind(record[$0]!, kind: kinds[$0]!) })
            .run()
    }

    public func fetch(_ id: String, on db: any SQLDatabase) async throws -> Record? {
        try await db.select().columns(quotedColumns).from(quotedName)
            .where(quoted(primaryKey), .equal, SQLBind(id))
            .first()
            .map(decode)
    }

    /// Reads a row and locks it until the transaction ends (`FOR UPDATE` on PostgreSQL; on SQLite
    /// the transaction already holds the write lock), for compare-and-set state changes.
    public func fetchForUpdate(_ id: String, on db: any SQLDatabase) async throws -> Record? {
        try await db.select().columns(quotedColumns).from(quotedName)
            .where(quoted(primaryKey), .equal, SQLBind(id))
            .for(.update)
            .first()
            .map(decode)
    }

    public func list(
        _ filters: [Filter] = [], orderBy: String? = nil, descending: Bool = false, limit: Int? = nil,
        on db: any SQLDatabase
    ) async throws -> [Record] {
        let query = db.select().columns(quotedColumns).from(quotedName)
        apply(filters, to: query)
        query.orderBy(quoted(orderBy ?? primaryKey), descending ? SQLDirection.descending : SQLDirection.ascending)
        if let limit { query.limit(limit) }
        return try await query.all().map(decode)
    }

    public func count(_ filters: [Filter] = [], on db: any SQLDatabase) async throws -> Int {
        let query = db.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from(quotedName)
        apply(filters, to: query)
        return try await query.first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// Updates the given columns of one row. - Returns: whether a row matched.
    @discardableResult
    public func update(_ id: String, _ changes: Record, on db: any SQLDatabase) async throws -> Bool {
        let known = changes.filter { kinds[$0.key] != nil && $0.key != primaryKey }
        guard !known.isEmpty else { return try await fetch(id, on: db) != nil }
        let query = db.update(quotedName)
        for (column, value) in known {
            query.set(quoted(column), to: bind(value, kind: kinds[column]!))
        }
        query.where(quoted(primaryKey), .equal, SQLBind(id))
        try await query.run()
        return try await fetch(id, on: db) != nil
    }

    public func delete(_ filters: [Filter], on db: any SQLDatabase) async throws {
        let query = db.delete(from: quotedName)
        for filter in filters {
            let operation: SQLBinaryOperator = switch filter.operation {
            case .greaterThan: .greaterThan
            case .lessThan: .lessThan
            case .notEqual: .notEqual
            default: .equal
            }
            query.where(quoted(filter.column), operation, bind(filter.value, kind: kinds[filter.column] ?? .string))
        }
        try await query.run()
    }

    public func delete(id: String, on db: any SQLDatabase) async throws {
        try await delete([Filter(primaryKey, .equal, .string(id))], on: db)
    }

    // MARK: - Mapping

    private func apply(_ filters: [Filter], to query: SQLSelectBuilder) {
        for filter in filters {
            let column = quoted(filter.column)
            let kind = kinds[filter.column] ?? .string
            if filter.value.isNull {
                query.where(column, .is, SQLLiteral.null)
                continue
            }
            let text = filter.value.stringValue ?? filter.value.serialized()
            switch filter.operation {
            case .equal: query.where(column, .equal, bind(filter.value, kind: kind))
            case .greaterThan: query.where(column, .greaterThan, bind(filter.value, kind: kind))
            case .lessThan: query.where(column, .lessThan, bind(filter.value, kind: kind))
            // SQL's `<>` is never true for NULL, so this also keeps only rows where the column is set.
            case .notEqual: query.where(column, .notEqual, bind(filter.value, kind: kind))
            case .contains: query.where(column, .like, SQLBind("%" + text + "%"))
            case .startswith: query.where(column, .like, SQLBind(text + "%"))
            case .endswith: query.where(column, .like, SQLBind("%" + text))
            case .icontains: query.where(SQLFunction("LOWER", args: column), .like, SQLBind("%" + text.lowercased() + "%"))
            case .istartswith: query.where(SQLFunction("LOWER", args: column), .like, SQLBind(text.lowercased() + "%"))
            case .iendswith: query.where(SQLFunction("LOWER", args: column), .like, SQLBind("%" + text.lowercased()))
            }
        }
    }

    private func bind(_ value: JSONValue, kind: ColumnKind) -> SQLBind {
        switch (kind, value) {
        // PostgreSQL types its parameters: a null must carry the column's type, not text's.
        case (.int, .null): return SQLBind(Int?.none)
        case (.double, .null): return SQLBind(Double?.none)
        case (.bool, .null): return SQLBind(Bool?.none)
        case (_, .null): return SQLBind(String?.none)
        case (.json, _): return SQLBind(value.serialized())
        case (.bool, .bool(let flag)): return SQLBind(flag)
        case (.int, _): return SQLBind(value.intValue.map { Int($0) })
        case (.double, .double(let number)): return SQLBind(number)
        case (.double, .int(let number)): return SQLBind(Double(number))
        case (_, .string(let text)): return SQLBind(text)
        default: return SQLBind(value.serialized())
        }
    }

    /// A row selected with this table's columns (for queries `list` cannot express, e.g. `IN`).
    public func decodeRow(_ row: any SQLRow) throws -> Record { try decode(row) }

    private func decode(_ row: any SQLRow) throws -> Record {
        if let direct = row as? DirectSQLiteRow, let record = decodePositionally(direct) { return record }
        var record = Record(minimumCapacity: columns.count)
        for column in columns {
            if try row.decodeNil(column: column.name) {
                record[column.name] = .null
                continue
            }
            switch column.kind {
            case .string: record[column.name] = .string(try row.decode(column: column.name, as: String.self))
            case .bool: record[column.name] = .bool(try row.decode(column: column.name, as: Bool.self))
            case .int: record[column.name] = .int(Int64(try row.decode(column: column.name, as: Int.self)))
            case .double: record[column.name] = .double(try row.decode(column: column.name, as: Double.self))
            case .json:
                let text = try row.decode(column: column.name, as: String.self)
                record[column.name] = (try? JSONValue.parse(Array(text.utf8))) ?? .null
            }
        }
        return record
    }
}

extension RecordTable {
    /// Reads a SQLite row by position when it holds exactly this table's columns in order, which
    /// saves two name lookups per column on every row of a large list.
    private func decodePositionally(_ row: DirectSQLiteRow) -> Record? {
        let names = row.columns.names
        guard names.count == columns.count else { return nil }
        for (name, column) in zip(names, columns) where name != column.name { return nil }
        var record = Record(minimumCapacity: columns.count)
        for (column, value) in zip(columns, row.values) {
            let decoded: JSONValue? = switch (column.kind, value) {
            case (_, .null): .null
            case (.string, .text(let text)): .string(text)
            case (.bool, .integer(let number)): .bool(number != 0)
            case (.int, .integer(let number)): .int(Int64(number))
            case (.double, .float(let number)): .double(number)
            case (.double, .integer(let number)): .double(Double(number))
            case (.json, .text(let text)): (try? JSONValue.parse(Array(text.utf8))) ?? .null
            // Anything stored with another type than declared goes through the generic path.
            default: nil
            }
            guard let decoded else { return nil }
            record[column.name] = decoded
        }
        return record
    }
}

extension RecordTable.Record {
    /// A column's text, or nil when it is missing, null or not a string.
    public func string(_ key: String) -> String? { self[key]?.stringValue }

    /// The value unless it is missing or JSON null.
    public func nonNull(_ key: String) -> JSONValue? {
        guard let value = self[key], !value.isNull else { return nil }
        return value
    }
}

/// An identifier quoted once, when it is defined, rather than on every statement: SQLKit's
/// `SQLIdentifier` escapes its quote character each time it is written, and that generic string
/// search was an eighth of the control plane's CPU under load. SQLite and PostgreSQL both quote
/// identifiers with double quotes.
public struct QuotedIdentifier: SQLExpression {
    public let quoted: String

    public init(_ name: String) {
        quoted = "\"" + (name.contains("\"") ? name.replacingOccurrences(of: "\"", with: "\"\"") : name) + "\""
    }

    public func serialize(to serializer: inout SQLSerializer) {
        serializer.write(quoted)
    }
}
