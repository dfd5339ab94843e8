import Foundation
import NimbusCore
import SQLKit
import Store

extension IdentityService {
    /// Records a revocation in the database (inside the caller's transaction when given) and in
    /// this replica's memory at once.
    func revoke(_ event: RevocationEvent, on db: (any SQLDatabase)? = nil) async throws {
        let record: RecordTable.Record = [
            "user_id": .optional(event.userID), "project_id": .optional(event.projectID),
            "domain_id": .optional(event.domainID), "audit_id": .optional(event.auditID),
            "issued_before": .double(event.issuedBefore), "revoked_at": .double(Date().timeIntervalSince1970),
        ]
        if let db {
            try await IdentityTables.revocations.insert(record, on: db)
        } else {
            try await database.transaction { try await IdentityTables.revocations.insert(record, on: $0) }
        }
        revocations.add([event])
    }

    /// Revokes every token of a user issued until now.
    func revokeUser(_ userID: String, project: String? = nil, on db: (any SQLDatabase)? = nil) async throws {
        try await revoke(RevocationEvent(userID: userID, projectID: project, issuedBefore: Date().timeIntervalSince1970), on: db)
    }

    /// Reads revocation rows written since the last read (by this or another replica).
    func refreshRevocations() async throws {
        let since = revocations.lastSequence
        let cutoff = Date().timeIntervalSince1970 - configuration.tokenLifetime - 60
        let rows = try await database.read { db in
            try await IdentityTables.revocations.list(
                [.init("seq", .greaterThan, .int(since)), .init("issued_before", .greaterThan, .double(cutoff))],
                orderBy: "seq", on: db)
        }
        let events = rows.map { row in
            RevocationEvent(
                userID: row["user_id"]?.stringValue, projectID: row["project_id"]?.stringValue,
                domainID: row["domain_id"]?.stringValue, auditID: row["audit_id"]?.stringValue,
                issuedBefore: row["issued_before"].flatMap(Self.number) ?? 0)
        }
        revocations.add(events, upTo: rows.compactMap { $0["seq"]?.intValue }.max())
        revocations.purge(before: cutoff)
    }

    /// Deletes revocation rows no live token can match any more.
    func purgeRevocations() async throws {
        let cutoff = Date().timeIntervalSince1970 - configuration.tokenLifetime - 60
        try await database.transaction { db in
            try await IdentityTables.revocations.delete([.init("issued_before", .lessThan, .double(cutoff))], on: db)
        }
    }

    static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .double(let number): number
        case .int(let number): Double(number)
        default: nil
        }
    }
}
