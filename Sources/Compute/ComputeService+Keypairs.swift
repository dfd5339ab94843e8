import Foundation
import NimbusCore
import SQLKit
import Store

extension ComputeService {
    /// Imports a public key (or, for `x509`, a certificate) for the calling user (or, for admins,
    /// another user), or generates an Ed25519 pair (an RSA-keyed certificate) when none is given
    /// (microversions before 2.92) and returns the private half once.
    public func createKeypair(_ body: JSONValue, caller: AuthContext, version: Int) async throws -> (record: Record, privateKey: String?) {
        let fields = try FieldReader(body: body, root: "keypair")
        var allowed: Set<String> = ["name", "public_key"]
        if version >= 2 { allowed.insert("type") }
        if version >= 10 { allowed.insert("user_id") }
        try fields.rejectUnknown(allowed)
        let name = try fields.string("name", required: true, minLength: 1, maxLength: 255)!
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || "-_ .@".contains($0) }), name.trimmingCharacters(in: .whitespaces) == name else {
            throw NimbusError.badRequest("Invalid input for field/attribute name. Value: \(name). '\(name)' does not match '^(?! )[a-zA-Z0-9. _@-]+(?<! )$'")
        }
        let type = try fields.string("type") ?? "ssh"
        guard ["ssh", "x509"].contains(type) else {
            throw NimbusError.badRequest("Invalid input for field/attribute type. Value: \(type). '\(type)' is not one of ['ssh', 'x509']")
        }
        let userID = try fields.string("user_id") ?? caller.user.id
        if userID != caller.user.id && !caller.isAdmin {
            throw NimbusError.forbidden("Policy doesn't allow os_compute_api:os-keypairs:create to be performed.")
        }
        var privateKey: String?
        let publicKey: String, fingerprint: String
        let given = try fields.string("public_key", maxLength: 16_384)
        if given == nil, version >= 92 {
            throw NimbusError.badRequest("Invalid input for field/attribute keypair. Value: 'public_key' is a required property")
        }
        switch (type, given) {
        case ("x509", let text?):
            do { (publicKey, fingerprint) = try X509Keypair.parse(text) } catch X509Keypair.Failure.invalid(let reason) {
                throw NimbusError.badRequest("Keypair data is invalid: failed to generate fingerprint (\(reason))")
            }
        case ("x509", nil):
            let made = try X509Keypair.generate(commonName: "\(caller.projectID ?? "")-\(userID)-\(Timestamp.seconds(Date()))")
            (publicKey, fingerprint, privateKey) = (made.certificate, made.fingerprint, made.privateKey)
        case (_, let text?):
            let key: SSHPublicKey
            do { key = try SSHPublicKey.parse(text) } catch SSHKeyError.invalid(let reason) {
                throw NimbusError.badRequest("Keypair data is invalid: failed to generate fingerprint (\(reason))")
            }
            (publicKey, fingerprint) = (key.openSSH, key.fingerprint)
        case (_, nil):
            let pair = SSHKeyGenerator.ed25519(comment: "Generated-by-Nimbus")
            let key = try SSHPublicKey.parse(pair.publicKey)
            (publicKey, fingerprint, privateKey) = (key.openSSH, key.fingerprint, pair.privateKey)
        }
        let record: Record = [
            "id": .string(Identifier.uuid()), "name": .string(name), "user_id": .string(userID), "type": .string(type),
            "public_key": .string(publicKey), "fingerprint": .string(fingerprint),
            "created_at": .string(Timestamp.keystone(Date())),
        ]
        do {
            try await database.transaction { db in
                let limit = try await self.quotaLimits(caller.projectID ?? "", on: db)["key_pairs"] ?? -1
                if limit >= 0 {
                    let used = try await ComputeSchema.keypairs.count([.init("user_id", .equal, .string(userID))], on: db)
                    if used >= limit { throw NimbusError(.overQuota, "Quota exceeded, too many key pairs.") }
                }
                try await ComputeSchema.keypairs.insert(record, on: db)
            }
        } catch where Database.isUniqueViolation(error) {
            throw NimbusError.conflict("Key pair '\(name)' already exists.")
        }
        return (record, privateKey)
    }

    public func keypairs(userID: String?, caller: AuthContext) async throws -> [Record] {
        let user = userID ?? caller.user.id
        if user != caller.user.id && !caller.isAdmin {
            throw NimbusError.forbidden("Policy doesn't allow os_compute_api:os-keypairs:index to be performed.")
        }
        return try await database.read { try await ComputeSchema.keypairs.list([.init("user_id", .equal, .string(user))], orderBy: "name", on: $0) }
    }

    public func keypair(_ name: String, userID: String?, caller: AuthContext) async throws -> Record {
        let user = userID ?? caller.user.id
        if user != caller.user.id && !caller.isAdmin {
            throw NimbusError.forbidden("Policy doesn't allow os_compute_api:os-keypairs:index to be performed.")
        }
        let found = try await database.read { db in
            try await ComputeSchema.keypairs.list([.init("user_id", .equal, .string(user)), .init("name", .equal, .string(name))], on: db).first
        }
        guard let record = found else {
            throw NimbusError.notFound("Keypair \(name) not found for user \(user)")
        }
        return record
    }

    public func deleteKeypair(_ name: String, userID: String?, caller: AuthContext) async throws {
        let record = try await keypair(name, userID: userID, caller: caller)
        try await database.transaction { try await ComputeSchema.keypairs.delete(id: record.string("id") ?? "", on: $0) }
    }
}
