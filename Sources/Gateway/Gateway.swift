import Hummingbird
import Logging
import NimbusCore

/// The one HTTP listener: every service's routes under its prefix, a root document listing
/// them, and the shared request-id, fault and token handling.
public struct Gateway: Sendable {
    public let services: [ServiceRoutes]
    public let validator: any TokenValidator

    public init(services: [ServiceRoutes], validator: any TokenValidator) {
        self.services = services
        self.validator = validator
    }

    public func router() -> Router<NimbusContext> {
        let router = Router(context: NimbusContext.self)
        router.add(middleware: GatewayMiddleware(services: services))
        for service in services {
            router.register(service, validator: validator)
        }
        let prefixes = services.map(\.prefix)
        router.get("/") { _, _ in
            Response.json(["services": .array(prefixes.map { .string($0) })])
        }
        return router
    }
}
