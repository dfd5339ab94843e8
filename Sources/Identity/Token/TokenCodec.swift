import Foundation
import NimbusCore

/// Turns an `AuthContext` into a token and back.
///
/// The token carries the caller's identity, scope and roles as they were at issue time, so that
/// validating it needs no database read; anything that would change what it grants (role removal,
/// user or project disable, password change) writes a revocation event that validation checks.
public struct TokenCodec: Sendable {
    public let keys: TokenKeys

    public init(keys: TokenKeys) { self.keys = keys }

    private struct Payload: Codable {
        var u: [String]          // user id, name
        var ud: [String]         // user domain id, name
        var s: String            // scope kind: "", "p", "d", "s"
        var sp: [String]?        // project id, name, domain id, domain name | domain id, name
        var r: [[String]]        // roles [id, name]
        var m: [String]          // auth methods
        var a: [String]          // audit ids
        var i: Double            // issued at (epoch seconds)
        var e: Double            // expires at
        var c: String?           // application credential id
    }

    public func encode(_ auth: AuthContext) throws -> String {
        var payload = Payload(
            u: [auth.user.id, auth.user.name], ud: [auth.userDomain.id, auth.userDomain.name], s: "", sp: nil,
            r: auth.roles.map { [$0.id, $0.name] }, m: auth.methods, a: auth.auditIDs,
            i: auth.issuedAt.timeIntervalSince1970, e: auth.expiresAt.timeIntervalSince1970,
            c: auth.applicationCredentialID)
        switch auth.scope {
        case .unscoped: break
        case .system: payload.s = "s"
        case .domain(let domain):
            payload.s = "d"
            payload.sp = [domain.id, domain.name]
        case .project(let project, let domain):
            payload.s = "p"
            payload.sp = [project.id, project.name, domain.id, domain.name]
        }
        return try keys.seal(JSONEncoder().encode(payload))
    }

    /// - Returns: the context, or nil when the token was not sealed by our keys or is malformed.
    ///   Expiry and revocation are the caller's checks.
    public func decode(_ token: String) -> AuthContext? {
        guard let plaintext = keys.open(token),
              let payload = try? JSONDecoder().decode(Payload.self, from: plaintext),
              payload.u.count == 2, payload.ud.count == 2
        else { return nil }
        let scope: AuthContext.Scope
        switch (payload.s, payload.sp) {
        case ("", _): scope = .unscoped
        case ("s", _): scope = .system
        case ("d", let parts?) where parts.count == 2: scope = .domain(.init(id: parts[0], name: parts[1]))
        case ("p", let parts?) where parts.count == 4:
            scope = .project(.init(id: parts[0], name: parts[1]), domain: .init(id: parts[2], name: parts[3]))
        default: return nil
        }
        return AuthContext(
            user: .init(id: payload.u[0], name: payload.u[1]),
            userDomain: .init(id: payload.ud[0], name: payload.ud[1]),
            scope: scope,
            roles: payload.r.compactMap { $0.count == 2 ? .init(id: $0[0], name: $0[1]) : nil },
            methods: payload.m, auditIDs: payload.a,
            issuedAt: Date(timeIntervalSince1970: payload.i), expiresAt: Date(timeIntervalSince1970: payload.e),
            applicationCredentialID: payload.c, token: token)
    }
}
