import Foundation
import HummingbirdBcrypt
import NimbusCore
import SQLKit
import Store

extension IdentityService {
    /// Authenticates `{"id", "secret"}` or `{"name", "user": {...}, "secret"}`; the token it yields is
    /// scoped to the credential's project with at most the credential's roles.
    func applicationCredentialCaller(_ fields: FieldReader) async throws -> Caller {
        let secret = try fields.string("secret", required: true)!
        let record: RecordTable.Record?
        if let id = try fields.string("id") {
            record = try await database.read { try await IdentityTables.applicationCredentials.fetch(id, on: $0) }
        } else {
            let name = try fields.string("name", required: true)!
            let user = try fields.object("user", required: true)!
            var userID = try user.string("id")
            if userID == nil {
                let userName = try user.string("name", required: true)!
                let domain = try await resolveDomain(try user.object("domain", required: true)!)
                userID = try await database.read { db in
                    try await IdentityTables.users.list([.init("name", .equal, .string(userName)),
                                                         .init("domain_id", .equal, .string(domain.id))], on: db).first
                }?["id"]?.stringValue
            }
            guard let userID else { throw NimbusError.unauthorized() }
            record = try await database.read { db in
                try await IdentityTables.applicationCredentials.list([.init("name", .equal, .string(name)),
                                                                      .init("user_id", .equal, .string(userID))], on: db).first
            }
        }
        guard let record, let hash = record["secret_hash"]?.stringValue else { throw NimbusError.unauthorized() }
        let expiresAt = record["expires_at"]?.stringValue.flatMap(Timestamp.parse)
        if let expiresAt, expiresAt <= Date() { throw NimbusError.unauthorized() }
        guard try await offload({ Bcrypt.verify(secret, hash: hash) }) else { throw NimbusError.unauthorized() }
        let roleIDs = (record["roles"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
        return Caller(
            userID: record["user_id"]?.stringValue ?? "", expiresAt: expiresAt,
            applicationCredentialID: record["id"]?.stringValue, applicationCredentialRoles: Set(roleIDs),
            applicationCredentialProject: record["project_id"]?.stringValue)
    }

    /// Creates a credential for the caller's current project. - Returns: the record and its secret,
    /// which is shown this once and stored only as a bcrypt hash.
    func createApplicationCredential(
        userID: String, caller: AuthContext, fields: FieldReader
    ) async throws -> (record: RecordTable.Record, secret: String) {
        guard let projectID = caller.projectID else {
            throw NimbusError.forbidden("Application credentials can only be created with a project-scoped token.")
        }
        if let credential = caller.applicationCredentialID {
            let unrestricted = try await database.read {
                try await IdentityTables.applicationCredentials.fetch(credential, on: $0)?["unrestricted"]?.boolValue
            }
            if unrestricted != true {
                throw NimbusError.forbidden("Using method 'application_credential' is not allowed for managing additional application credentials.")
            }
        }
        try fields.rejectUnknown(["name", "description", "secret", "expires_at", "roles", "unrestricted", "access_rules"])
        let name = try fields.string("name", required: true, minLength: 1, maxLength: 255)!
        let description = try fields.string("description", nullable: true, maxLength: 255)
        var secret = try fields.string("secret", nullable: true) ?? ""
        if secret.isEmpty { secret = Self.randomSecret() }
        var expiresAt: String?
        if let text = try fields.string("expires_at", nullable: true) {
            guard let date = Timestamp.parse(text) else {
                throw NimbusError.badRequest("Invalid input for field 'expires_at': '\(text)' is not a 'date-time'")
            }
            expiresAt = Timestamp.keystone(date)
        }
        var roles = caller.roles
        // An empty list means "the roles of this token", as in Keystone (the CLI always sends one).
        if let requested = try fields.array("roles"), !requested.isEmpty {
            roles = try requested.map { (item) throws -> AuthContext.Reference in
                let reference = try FieldReader(item, path: "roles")
                let id = try reference.string("id")
                let name = try reference.string("name")
                guard let match = caller.roles.first(where: { $0.id == id || $0.name == name }) else {
                    throw NimbusError.forbidden("The application credential requests roles the user does not have on the project.")
                }
                return match
            }
        }
        let cost = configuration.bcryptCost
        let plain = secret
        let hash = try await offload { Bcrypt.hash(plain, cost: cost) }
        let record: RecordTable.Record = [
            "id": .string(Identifier.hex()), "name": .string(name), "user_id": .string(userID),
            "project_id": .string(projectID), "secret_hash": .string(hash), "description": .optional(description),
            "expires_at": .optional(expiresAt), "unrestricted": .bool(try fields.bool("unrestricted") ?? false),
            "roles": .array(roles.map { ["id": .string($0.id), "name": .string($0.name)] }),
            "created_at": .string(Timestamp.seconds(Date())),
        ]
        do {
            try await database.transaction { try await IdentityTables.applicationCredentials.insert(record, on: $0) }
        } catch where Database.isUniqueViolation(error) {
            throw NimbusError.conflict("Conflict occurred attempting to store application_credential - Duplicate entry.")
        }
        return (record, secret)
    }

    static func randomSecret() -> String {
        var bytes = [UInt8](repeating: 0, count: 48)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        return Data(bytes).base64URLEncoded()
    }
}
