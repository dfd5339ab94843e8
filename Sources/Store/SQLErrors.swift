import PostgresKit

extension Database {
    /// True when `error` is a unique-constraint violation, which services turn into 409 Conflict.
    public static func isUniqueViolation(_ error: any Error) -> Bool {
        if let sqlite = error as? SQLiteFailure {
            return sqlite.code == SQLiteFailure.constraintUnique || sqlite.code == SQLiteFailure.constraintPrimaryKey
                || (sqlite.primaryCode == SQLiteFailure.constraint && sqlite.message.contains("UNIQUE"))
        }
        if let postgres = error as? PSQLError {
            return postgres.serverInfo?[.sqlState] == "23505"
        }
        return false
    }

    /// True for a foreign-key violation (a referenced row is missing or still referenced).
    public static func isForeignKeyViolation(_ error: any Error) -> Bool {
        if let sqlite = error as? SQLiteFailure {
            return sqlite.code == SQLiteFailure.constraintForeignKey
                || (sqlite.primaryCode == SQLiteFailure.constraint && sqlite.message.contains("FOREIGN KEY"))
        }
        if let postgres = error as? PSQLError {
            return postgres.serverInfo?[.sqlState] == "23503"
        }
        return false
    }
}
