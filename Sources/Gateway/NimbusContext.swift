import Hummingbird
import Logging
import NimbusCore

/// Per-request context: the request id, and the caller once the token is resolved.
public struct NimbusContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID: String = ""
    /// Set by the gateway on routes that require a token; services read it through `caller()`.
    public var auth: AuthContext?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    /// JSON bodies are small; image uploads stream and do not go through this limit.
    public var maxUploadSize: Int { 1 << 20 }

    /// The authenticated caller. Routes declared `.public` have none.
    public func caller() throws(NimbusError) -> AuthContext {
        guard let auth else { throw NimbusError.unauthorized() }
        return auth
    }
}

