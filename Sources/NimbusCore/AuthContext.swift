import Foundation

/// Who is calling and in what scope: resolved once per request from `X-Auth-Token`
/// and handed to every service, which never parses tokens itself.
public struct AuthContext: Sendable {
    public struct Reference: Sendable, Equatable {
        public var id: String
        public var name: String
        public init(id: String, name: String) {
            self.id = id
            self.name = name
        }
    }

    public enum Scope: Sendable, Equatable {
        case unscoped
        case project(Reference, domain: Reference)
        case domain(Reference)
        case system
    }

    public var user: Reference
    public var userDomain: Reference
    public var scope: Scope
    public var roles: [Reference]
    public var methods: [String]
    public var auditIDs: [String]
    public var issuedAt: Date
    public var expiresAt: Date
    public var applicationCredentialID: String?
    /// The raw token, for services that forward it.
    public var token: String

    public init(
        user: Reference, userDomain: Reference, scope: Scope, roles: [Reference], methods: [String],
        auditIDs: [String], issuedAt: Date, expiresAt: Date, applicationCredentialID: String?, token: String
    ) {
        self.user = user
        self.userDomain = userDomain
        self.scope = scope
        self.roles = roles
        self.methods = methods
        self.auditIDs = auditIDs
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.applicationCredentialID = applicationCredentialID
        self.token = token
    }

    public func hasRole(_ name: String) -> Bool { roles.contains { $0.name == name } }

    /// Keystone's default roles imply each other: admin ⊇ member ⊇ reader.
    public var isAdmin: Bool { hasRole("admin") }
    public var isMember: Bool { isAdmin || hasRole("member") }
    public var isReader: Bool { isMember || hasRole("reader") }

    public var projectID: String? {
        if case .project(let project, _) = scope { return project.id }
        return nil
    }

    public var domainID: String? {
        if case .domain(let domain) = scope { return domain.id }
        return nil
    }

    public var isSystemScoped: Bool { scope == .system }

    /// Nimbus acting on its own behalf (seeding, scheduling, snapshots), never from a token:
    /// `user` names the part of Nimbus that acts, in the default domain, with `role`.
    public static func internalCaller(_ user: String, scope: Scope, role: String = "admin") -> AuthContext {
        AuthContext(user: Reference(id: user, name: user), userDomain: defaultDomain, scope: scope,
                    roles: [Reference(id: role, name: role)], methods: ["internal"], auditIDs: [],
                    issuedAt: Date(), expiresAt: .distantFuture, applicationCredentialID: nil, token: "")
    }

    /// A project in the default domain, named by its id, as internal callers scope to it.
    public static func defaultDomainProject(_ id: String) -> Scope {
        .project(Reference(id: id, name: id), domain: defaultDomain)
    }

    /// Keystone's `default` domain, where Nimbus's own callers live.
    private static let defaultDomain = Reference(id: "default", name: "Default")
}
