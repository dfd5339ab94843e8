import Foundation
import HummingbirdBcrypt
import NimbusCore
import SQLKit
import Store

extension IdentityService {
    /// `POST /v3/auth/tokens`: checks the credentials, resolves the scope and its roles, and
    /// returns the new token's context (the token string is in `AuthContext.token`).
    public func issueToken(_ body: JSONValue) async throws -> AuthContext {
        let auth = try FieldReader(body: body, root: "auth")
        let identity = try auth.object("identity", required: true)!
        let methods = try identity.stringArray("methods", required: true)!
        guard let method = methods.first else {
            throw NimbusError.badRequest("Invalid input for field 'identity/methods': [] is too short")
        }
        var caller: Caller
        switch method {
        case "password": caller = try await passwordCaller(try identity.object("password", required: true)!)
        case "token": caller = try tokenCaller(try identity.object("token", required: true)!)
        case "application_credential":
            caller = try await applicationCredentialCaller(try identity.object("application_credential", required: true)!)
        default:
            throw NimbusError.unauthorized("Attempted to authenticate with an unsupported method.")
        }
        let user = try await enabledUser(caller.userID)
        let now = Date()
        var expires = now.addingTimeInterval(configuration.tokenLifetime)
        if let limit = caller.expiresAt { expires = min(expires, limit) }

        var scope = try await requestedScope(auth.fields["scope"], caller: &caller, user: user)
        var roles: [AuthContext.Reference] = []
        if scope != .unscoped {
            roles = try await effectiveRoles(userID: user.id, scope: scope)
            if let allowed = caller.applicationCredentialRoles {
                roles = roles.filter { allowed.contains($0.id) }
            }
            if roles.isEmpty {
                if caller.scopeWasDefaulted {
                    scope = .unscoped
                } else {
                    throw NimbusError.unauthorized()
                }
            }
        }
        var context = AuthContext(
            user: .init(id: user.id, name: user.name), userDomain: user.domain, scope: scope, roles: roles,
            methods: methods, auditIDs: [Self.auditID()] + caller.auditChain, issuedAt: now, expiresAt: expires,
            applicationCredentialID: caller.applicationCredentialID, token: "")
        context.token = try codec.encode(context)
        return context
    }

    /// Who the credentials identify, before scoping.
    struct Caller {
        var userID: String
        var expiresAt: Date?
        var auditChain: [String] = []
        var applicationCredentialID: String?
        var applicationCredentialRoles: Set<String>?
        var applicationCredentialProject: String?
        var previousScope: AuthContext.Scope?
        var scopeWasDefaulted = false
    }

    struct UserSummary {
        var id: String
        var name: String
        var domain: AuthContext.Reference
        var defaultProjectID: String?
    }

    private func passwordCaller(_ password: FieldReader) async throws -> Caller {
        let userFields = try password.object("user", required: true)!
        let secret = try userFields.string("password", required: true) ?? ""
        let record: RecordTable.Record?
        if let id = try userFields.string("id") {
            record = try await database.read { try await IdentityTables.users.fetch(id, on: $0) }
        } else {
            let name = try userFields.string("name", required: true)!
            let domain = try await resolveDomain(try userFields.object("domain", required: true)!)
            record = try await database.read { db in
                try await IdentityTables.users.list([.init("name", .equal, .string(name)),
                                                     .init("domain_id", .equal, .string(domain.id))], on: db).first
            }
        }
        guard let record, let id = record["id"]?.stringValue, let hash = record["password_hash"]?.stringValue else {
            throw NimbusError.unauthorized()
        }
        let matches = try await offload { Bcrypt.verify(secret, hash: hash) }
        guard matches else { throw NimbusError.unauthorized() }
        return Caller(userID: id)
    }

    private func tokenCaller(_ token: FieldReader) throws -> Caller {
        let id = try token.string("id", required: true)!
        guard let previous = validToken(id) else { throw NimbusError.unauthorized() }
        if previous.applicationCredentialID != nil {
            throw NimbusError.forbidden("Application credential tokens cannot be rescoped.")
        }
        return Caller(userID: previous.user.id, expiresAt: previous.expiresAt, auditChain: [previous.auditIDs.last ?? previous.auditIDs[0]],
                      previousScope: previous.scope)
    }

    /// A random audit id, 22 url-safe characters as Keystone makes them.
    static func auditID() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        return String(Data(bytes).base64URLEncoded().prefix(22))
    }

    func enabledUser(_ id: String) async throws -> UserSummary {
        let (user, domain) = try await database.read { db in
            let user = try await IdentityTables.users.fetch(id, on: db)
            let domain = try await user.flatMap { $0["domain_id"]?.stringValue }.asyncMap {
                try await IdentityTables.domains.fetch($0, on: db)
            } ?? nil
            return (user, domain)
        }
        guard let user, let domain, user["enabled"]?.boolValue == true, domain["enabled"]?.boolValue == true else {
            throw NimbusError.unauthorized()
        }
        return UserSummary(
            id: id, name: user["name"]?.stringValue ?? "",
            domain: .init(id: domain["id"]?.stringValue ?? "", name: domain["name"]?.stringValue ?? ""),
            defaultProjectID: user["default_project_id"]?.stringValue)
    }

    /// `{"id": ...}` or `{"name": ...}` naming a domain; unknown or disabled ones fail authentication.
    func resolveDomain(_ reference: FieldReader) async throws -> AuthContext.Reference {
        let record: RecordTable.Record?
        if let id = try reference.string("id") {
            record = try await database.read { try await IdentityTables.domains.fetch(id, on: $0) }
        } else if let name = try reference.string("name") {
            record = try await database.read { db in
                try await IdentityTables.domains.list([.init("name", .equal, .string(name))], on: db).first
            }
        } else {
            throw NimbusError.badRequest("Invalid input for field 'domain': either 'id' or 'name' is required")
        }
        guard let record, record["enabled"]?.boolValue == true else { throw NimbusError.unauthorized() }
        return .init(id: record["id"]?.stringValue ?? "", name: record["name"]?.stringValue ?? "")
    }
}
