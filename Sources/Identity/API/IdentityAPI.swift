import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import NimbusCore
import Store

/// Keystone v3's endpoint table, served under `/identity`.
public enum IdentityAPI {
    public static let prefix = "/identity"

    public static func routes(_ service: IdentityService) -> ServiceRoutes {
        var routes = ServiceRoutes(prefix: prefix, faultStyle: .keystone)
        routes.get("/", .open) { _, _ in
            .json(["versions": ["values": [versionDocument(service)]]], status: .multipleChoices)
        }
        routes.get("/v3", .open) { _, _ in .json(["version": versionDocument(service)]) }
        registerTokens(&routes, service)
        for resource in [IdentityResources.domains, IdentityResources.projects, IdentityResources.users,
                         IdentityResources.groups, IdentityResources.roles,
                         CatalogResources.regions, CatalogResources.services, CatalogResources.endpoints] {
            resource.register(into: &routes, service: service)
        }
        registerAssignments(&routes, service)
        registerUserRoutes(&routes, service)
        registerApplicationCredentials(&routes, service)
        return routes
    }

    static func versionDocument(_ service: IdentityService) -> JSONValue {
        [
            "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [["rel": "self", "href": .string(service.baseURL + "/")]],
            "media-types": [["base": "application/json", "type": "application/vnd.openstack.identity-v3+json"]],
        ]
    }

    // MARK: - Tokens

    static func registerTokens(_ routes: inout ServiceRoutes, _ service: IdentityService) {
        routes.post("/v3/auth/tokens", .open) { request, context in
            let auth = try await service.issueToken(try await request.json(context: context))
            // Not a `? :` with `nil`: that reads as JSONValue's null, and an unscoped token would
            // carry `"catalog": null` where Keystone leaves the key out.
            var catalog: JSONValue?
            if request.uri.queryParameters["nocatalog"] == nil && auth.scope != .unscoped {
                catalog = try await service.catalog()
            }
            return .json(tokenBody(auth, catalog: catalog), status: .created, headers: [.subjectToken: auth.token])
        }
        routes.get("/v3/auth/tokens") { request, context in
            let subject = try subjectToken(request, context, service, action: "validate_token")
            let catalog = request.uri.queryParameters["nocatalog"] == nil && subject.scope != .unscoped
                ? try await service.stampedCatalog() : nil
            let body = service.validationBody(token: subject.token, catalogBuilt: catalog?.built) {
                tokenBody(subject, catalog: catalog?.catalog)
            }
            return .jsonBuffer(body, headers: [.subjectToken: subject.token])
        }
        routes.head("/v3/auth/tokens") { request, context in
            _ = try subjectToken(request, context, service, action: "check_token")
            return .empty(.ok)
        }
        routes.delete("/v3/auth/tokens") { request, context in
            let subject = try subjectToken(request, context, service, action: "revoke_token")
            try await service.revoke(RevocationEvent(auditID: subject.auditIDs[0], issuedBefore: subject.issuedAt.timeIntervalSince1970))
            return .empty()
        }
        routes.get("/v3/auth/catalog") { _, context in
            let caller = try context.caller()
            guard caller.scope != .unscoped else {
                throw NimbusError.forbidden("The service catalog is only available to scoped tokens.")
            }
            return .json(["catalog": try await service.catalog(), "links": ["self": .string(service.baseURL + "/auth/catalog")]])
        }
        routes.get("/v3/auth/projects") { _, context in
            let caller = try context.caller()
            return .json(["projects": .array(try await service.projectsOf(userID: caller.user.id)),
                          "links": ["self": .string(service.baseURL + "/auth/projects"), "previous": nil, "next": nil]])
        }
        routes.get("/v3/auth/domains") { _, context in
            let caller = try context.caller()
            return .json(["domains": .array(try await service.domainsOf(userID: caller.user.id)),
                          "links": ["self": .string(service.baseURL + "/auth/domains"), "previous": nil, "next": nil]])
        }
        routes.get("/v3/auth/system") { _, context in
            let caller = try context.caller()
            let roles = try await service.effectiveRoles(userID: caller.user.id, scope: .system)
            return .json(["system": roles.isEmpty ? [] : [["all": true]],
                          "links": ["self": .string(service.baseURL + "/auth/system")]])
        }
    }

    /// The token named by `X-Subject-Token`, which the caller may inspect if it is their own,
    /// or they are an admin, a system reader or a service.
    static func subjectToken(_ request: Request, _ context: NimbusContext, _ service: IdentityService, action: String) throws -> AuthContext {
        let caller = try context.caller()
        guard let token = request.headers[.subjectToken], !token.isEmpty else {
            throw NimbusError.badRequest("The X-Subject-Token header is required.")
        }
        guard let subject = service.validToken(token) else {
            throw NimbusError.notFound("Could not find token: \(token).")
        }
        let allowed = IdentityPolicy.canReadAll(caller) || caller.hasRole("service") || caller.user.id == subject.user.id
        try IdentityPolicy.enforce(allowed, action)
        return subject
    }

    /// The token document Keystone returns on issue and validation.
    static func tokenBody(_ auth: AuthContext, catalog: JSONValue?) -> JSONValue {
        var token: [String: JSONValue] = [
            "methods": .array(auth.methods.map { .string($0) }),
            "user": [
                "id": .string(auth.user.id), "name": .string(auth.user.name), "password_expires_at": nil,
                "domain": ["id": .string(auth.userDomain.id), "name": .string(auth.userDomain.name)],
            ],
            "audit_ids": .array(auth.auditIDs.map { .string($0) }),
            "expires_at": .string(Timestamp.keystone(auth.expiresAt)),
            "issued_at": .string(Timestamp.keystone(auth.issuedAt)),
        ]
        switch auth.scope {
        case .unscoped: break
        case .system: token["system"] = ["all": true]
        case .domain(let domain): token["domain"] = ["id": .string(domain.id), "name": .string(domain.name)]
        case .project(let project, let domain):
            token["project"] = ["id": .string(project.id), "name": .string(project.name),
                                "domain": ["id": .string(domain.id), "name": .string(domain.name)]]
            token["is_domain"] = false
        }
        if auth.scope != .unscoped {
            token["roles"] = .array(auth.roles.map { ["id": .string($0.id), "name": .string($0.name)] })
        }
        if let catalog { token["catalog"] = catalog }
        if let credential = auth.applicationCredentialID {
            token["application_credential"] = ["id": .string(credential), "restricted": true]
        }
        return ["token": .object(token)]
    }
}
