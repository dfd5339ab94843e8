import Gateway
import HTTPTypes
import Hummingbird
import NimbusCore

/// Placement's endpoint table, served under `/placement`.
///
/// Every route negotiates the microversion, echoes it back (with `Vary`), and is reserved to
/// admins and the `service` role, as Placement's default policy does. Handlers receive the
/// version and branch on it where the wire format changed.
public enum PlacementAPI {
    public static let prefix = "/placement"

    typealias Handler = @Sendable (Request, NimbusContext, Microversion) async throws -> Response

    /// Builds the table one route at a time, wrapping each handler in negotiation and policy.
    struct Table {
        var routes = ServiceRoutes(prefix: PlacementAPI.prefix, faultStyle: .placement)

        /// - Parameters:
        ///   - since: the first minor version that serves the route (404 before, as Placement answers).
        ///   - action: the policy name in 403 messages, e.g. `placement:resource_providers:list`.
        mutating func add(
            _ method: HTTPRequest.Method, _ path: String, since: Int = 0, _ action: String, _ handler: @escaping Handler
        ) {
            routes.add(method, path, action.isEmpty ? .open : .authenticated) { request, context in
                try await PlacementAPI.run(request, context, since: since, action: action, handler)
            }
        }
    }

    public static func routes(_ service: PlacementService) -> ServiceRoutes {
        var table = Table()
        table.add(.get, "/", "") { _, _, _ in
            .json(["versions": [[
                "id": "v1.0", "max_version": .string(Microversion.maximum.description),
                "min_version": .string(Microversion.minimum.description), "status": "CURRENT",
                "links": [["rel": "self", "href": ""]],
            ]]])
        }
        registerProviders(&table, service)
        registerInventories(&table, service)
        registerNames(&table, service)
        registerAssociations(&table, service)
        registerAllocations(&table, service)
        registerCandidates(&table, service)
        return table.routes
    }

    static let varyHeader = HTTPField.Name("Vary")!

    static func run(
        _ request: Request, _ context: NimbusContext, since: Int, action: String, _ handler: Handler
    ) async throws -> Response {
        let version: Microversion
        switch Microversion.negotiate(request.headers[.openStackAPIVersion]) {
        case .success(let negotiated): version = negotiated
        case .failure(.invalid(let message)): throw NimbusError.badRequest(message)
        case .failure(.unacceptable(let message)):
            // 406 is no NimbusError kind; Placement is the only service that answers it.
            let body = FaultStyle.placement.body(status: 406, kind: .badRequest, message: message, requestID: context.requestID)
            return .json(body, status: .notAcceptable)
        }
        let echoed = ["OpenStack-API-Version": "placement \(version)", "Vary": "openstack-api-version"]
        do {
            guard version >= since else { throw NimbusError.notFound("The resource could not be found.") }
            if !action.isEmpty {
                let caller = try context.caller()
                guard caller.isAdmin || caller.hasRole("service") else {
                    throw NimbusError.forbidden("Policy does not allow \(action) to be performed.")
                }
            }
            var response = try await handler(request, context, version)
            response.headers[.openStackAPIVersion] = echoed["OpenStack-API-Version"]
            response.headers[varyHeader] = echoed["Vary"]
            return response
        } catch var error as NimbusError {
            error.headers.merge(echoed) { current, _ in current }
            throw error
        }
    }

    /// `/placement/resource_providers/{uuid}` and friends, as Placement writes its links.
    static func providerPath(_ uuid: String, _ suffix: String = "") -> String {
        "\(prefix)/resource_providers/\(uuid)\(suffix)"
    }
}
