/// What Identity implements so the gateway can resolve `X-Auth-Token` once per request.
public protocol TokenValidator: Sendable {
    /// - Throws: `NimbusError` `.unauthorized` for a token that is malformed, expired or revoked.
    func authenticate(token: String) async throws -> AuthContext
}
