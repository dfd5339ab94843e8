/// The one error type services throw; Gateway alone turns it into an OpenStack fault body.
///
/// Few kinds with good messages, rather than an exception class per case.
public struct NimbusError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case badRequest
        case unauthorized
        case forbidden
        case notFound
        case methodNotAllowed
        case conflict
        case payloadTooLarge
        case unsupportedMediaType
        case rangeNotSatisfiable
        case overQuota
        case unavailable
        case notImplemented
        case `internal`
    }

    public var kind: Kind
    public var message: String
    /// Extra response headers some faults carry (e.g. `WWW-Authenticate` on 401).
    public var headers: [String: String]
    /// A machine-readable error code for styles that carry one (Placement's `placement.concurrent_update`),
    /// so callers can tell retryable conflicts from others without parsing messages.
    public var code: String?

    public init(_ kind: Kind, _ message: String, headers: [String: String] = [:], code: String? = nil) {
        self.kind = kind
        self.message = message
        self.headers = headers
        self.code = code
    }

    public var description: String { "\(kind): \(message)" }

    public static func badRequest(_ message: String) -> NimbusError { .init(.badRequest, message) }
    public static func unauthorized(_ message: String = "The request you have made requires authentication.") -> NimbusError {
        .init(.unauthorized, message)
    }
    public static func forbidden(_ message: String) -> NimbusError { .init(.forbidden, message) }
    public static func notFound(_ message: String) -> NimbusError { .init(.notFound, message) }
    public static func conflict(_ message: String) -> NimbusError { .init(.conflict, message) }
    public static func `internal`(_ message: String) -> NimbusError { .init(.internal, message) }
}
