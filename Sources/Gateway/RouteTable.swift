import HTTPTypes
import Hummingbird
import NimbusCore

public typealias RouteHandler = @Sendable (Request, NimbusContext) async throws -> Response

/// Whether a route needs a valid `X-Auth-Token` before its handler runs.
public enum RouteAccess: Sendable {
    /// Version discovery and token issue: no token needed.
    case open
    /// The gateway resolves the token and fills `NimbusContext.auth`, or answers 401.
    case authenticated
}

/// The endpoint table of one service: every route with its verb, access and handler, under the
/// service's prefix, with faults rendered in the service's style.
public struct ServiceRoutes: Sendable {
    public struct Route: Sendable {
        public let method: HTTPRequest.Method
        public let path: String
        public let access: RouteAccess
        public let handler: RouteHandler
    }

    /// e.g. `/identity`; routes' paths are relative to it.
    public let prefix: String
    public let faultStyle: FaultStyle
    /// Whether `/v2/images/` names nothing (Glance answers 404) instead of `/v2/images`, which
    /// is what the router alone would take it for. The service's root keeps its slash either way.
    public let trailingSlashNamesNothing: Bool
    public private(set) var routes: [Route] = []

    public init(prefix: String, faultStyle: FaultStyle, trailingSlashNamesNothing: Bool = false) {
        self.prefix = prefix
        self.faultStyle = faultStyle
        self.trailingSlashNamesNothing = trailingSlashNamesNothing
    }

    public mutating func add(
        _ method: HTTPRequest.Method, _ path: String, _ access: RouteAccess = .authenticated,
        _ handler: @escaping RouteHandler
    ) {
        routes.append(Route(method: method, path: path, access: access, handler: handler))
    }

    public mutating func get(_ path: String, _ access: RouteAccess = .authenticated, _ handler: @escaping RouteHandler) {
        add(.get, path, access, handler)
    }
    public mutating func post(_ path: String, _ access: RouteAccess = .authenticated, _ handler: @escaping RouteHandler) {
        add(.post, path, access, handler)
    }
    public mutating func put(_ path: String, _ access: RouteAccess = .authenticated, _ handler: @escaping RouteHandler) {
        add(.put, path, access, handler)
    }
    public mutating func patch(_ path: String, _ access: RouteAccess = .authenticated, _ handler: @escaping RouteHandler) {
        add(.patch, path, access, handler)
    }
    public mutating func delete(_ path: String, _ access: RouteAccess = .authenticated, _ handler: @escaping RouteHandler) {
        add(.delete, path, access, handler)
    }
    public mutating func head(_ path: String, _ access: RouteAccess = .authenticated, _ handler: @escaping RouteHandler) {
        add(.head, path, access, handler)
    }
}

extension Router where Context == NimbusContext {
    /// Registers a service's routes, adds HEAD for every GET that lacks one, and answers
    /// 405 for the other verbs on a known path (Hummingbird alone would answer 404).
    func register(_ service: ServiceRoutes, validator: any TokenValidator) {
        var methodsByPath: [String: [HTTPRequest.Method: ServiceRoutes.Route]] = [:]
        var pathOrder: [String] = []
        for route in service.routes {
            let full = service.prefix + (route.path == "/" ? "" : route.path)
            if methodsByPath[full] == nil { pathOrder.append(full) }
            methodsByPath[full, default: [:]][route.method] = route
        }
        for path in pathOrder {
            let slashNamesNothing = service.trailingSlashNamesNothing && path != service.prefix
            let refuseTrailingSlash: @Sendable (Request) throws -> Void = { request in
                if slashNamesNothing, request.uri.path.hasSuffix("/") {
                    throw NimbusError.notFound("The resource could not be found.")
                }
            }
            var routes = methodsByPath[path]!
            if routes[.head] == nil, let get = routes[.get] {
                routes[.head] = .init(method: .head, path: get.path, access: get.access) { request, context in
                    let response = try await get.handler(request, context)
                    var head = Response(status: response.status, headers: response.headers)
                    head.headers[.contentLength] = response.headers[.contentLength]
                    return head
                }
            }
            for (method, route) in routes {
                let access = route.access
                let handler = route.handler
                on(RouterPath(path), method: method) { request, context in
                    try refuseTrailingSlash(request)
                    var context = context
                    if access == .authenticated {
                        guard let token = request.headers[.authToken], !token.isEmpty else {
                            throw NimbusError.unauthorized()
                        }
                        context.auth = try await validator.authenticate(token: token)
                    }
                    return try await handler(request, context)
                }
            }
            let allowed = Set(routes.keys)
            for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] where !allowed.contains(method) {
                on(RouterPath(path), method: method) { request, _ -> Response in
                    try refuseTrailingSlash(request)
                    throw NimbusError(.methodNotAllowed, "The method \(method.rawValue) is not allowed for the requested URL.")
                }
            }
        }
    }
}

extension HTTPField.Name {
    public static let authToken = HTTPField.Name("X-Auth-Token")!
    public static let subjectToken = HTTPField.Name("X-Subject-Token")!
    public static let requestID = HTTPField.Name("x-openstack-request-id")!
    public static let openStackAPIVersion = HTTPField.Name("OpenStack-API-Version")!
}
