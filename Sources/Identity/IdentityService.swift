import Foundation
import Logging
import NIOCore
import NIOPosix
import NimbusCore
import ServiceLifecycle
import Store


/// Settings of the Identity service.
public struct IdentityConfiguration: Sendable {
    /// Base URL clients reach the gateway at, e.g. `http://127.0.0.1:5000`; used in links and the catalog.
    public var publicURL: String
    public var keyDirectory: URL
    public var tokenLifetime: TimeInterval
    /// Keystone's default is 12; each step doubles the cost of a password check.
    public var bcryptCost: UInt8

    public init(publicURL: String, keyDirectory: URL, tokenLifetime: TimeInterval = 3600, bcryptCost: UInt8 = 12) {
        self.publicURL = publicURL
        self.keyDirectory = keyDirectory
        self.tokenLifetime = tokenLifetime
        self.bcryptCost = bcryptCost
    }
}

/// Keystone v3: users, projects, roles, tokens and the catalog.
///
/// It validates tokens for every other service (as the gateway's `TokenValidator`) without a
/// database read: tokens are self-contained and encrypted; revocations are kept in memory and
/// refreshed from the database by `run()`, so replicas see each other's revocations within a second.
public final class IdentityService: TokenValidator, Service, Sendable {
    public let database: Database
    public let configuration: IdentityConfiguration
    let codec: TokenCodec
    let revocations = RevocationList()
    let catalogCache = Locked<(built: Date, catalog: JSONValue)?>(nil)
    /// Decrypted tokens by their text. A token never changes, so its decoded form is cached; expiry
    /// and revocation are still checked on every use. Bounded: cleared when it fills up.
    let decodedTokens = Locked<[String: AuthContext]>([:])
    static let decodedTokensLimit = 10_000
    /// Serialized validation bodies by token: a token's document only changes with the catalog,
    /// and validation is the hottest call in a cloud (every service checks every caller's token).
    let validationBodies = Locked<[ValidationBodyKey: (catalogBuilt: Date?, body: ByteBuffer)]>([:])
    let logger: Logger
    /// bcrypt is deliberately slow; it gets its own threads so it never starves database I/O.
    let hashingPool: NIOThreadPool

    public init(database: Database, configuration: IdentityConfiguration, logger: Logger) throws {
        self.database = database
        self.configuration = configuration
        self.codec = TokenCodec(keys: try TokenKeyRepository(directory: configuration.keyDirectory).load())
        self.logger = logger
        self.hashingPool = NIOThreadPool(numberOfThreads: max(2, System.coreCount))
        hashingPool.start()
    }

    deinit {
        hashingPool.shutdownGracefully { _ in }
    }

    /// Base of Identity's own links, e.g. `http://127.0.0.1:5000/identity/v3`.
    var baseURL: String { configuration.publicURL + "/identity/v3" }

    // MARK: - TokenValidator

    public func authenticate(token: String) async throws -> AuthContext {
        guard let auth = validToken(token) else { throw NimbusError.unauthorized() }
        return auth
    }

    /// The token's context if it decrypts, has not expired and is not revoked.
    func validToken(_ token: String) -> AuthContext? {
        guard let auth = decode(token), auth.expiresAt > Date(), !revocations.isRevoked(auth) else { return nil }
        return auth
    }

    private func decode(_ token: String) -> AuthContext? {
        if let cached = decodedTokens.withLock({ $0[token] }) { return cached }
        guard let auth = codec.decode(token) else { return nil }
        decodedTokens.withLock { cache in
            if cache.count >= Self.decodedTokensLimit { cache.removeAll(keepingCapacity: true) }
            cache[token] = auth
        }
        return auth
    }

    /// The serialized validation document of a valid token, rendered once per catalog build.
    func validationBody(token: String, catalogBuilt: Date?, render: () -> JSONValue) -> ByteBuffer {
        let key = ValidationBodyKey(token: token, withCatalog: catalogBuilt != nil)
        if let cached = validationBodies.withLock({ $0[key] }), cached.catalogBuilt == catalogBuilt {
            return cached.body
        }
        let body = ByteBuffer(bytes: render().bytes())
        validationBodies.withLock { cache in
            if cache.count >= Self.decodedTokensLimit { cache.removeAll(keepingCapacity: true) }
            cache[key] = (catalogBuilt, body)
        }
        return body
    }

    // MARK: - Service

    /// Loads revocations, then keeps them fresh until shutdown.
    public func run() async throws {
        try await refreshRevocations()
        var ticks = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            ticks += 1
            do {
                try await refreshRevocations()
                if ticks % 600 == 0 { try await purgeRevocations() }
            } catch where !Task.isCancelled && !Task.isShuttingDownGracefully {
                logger.warning("revocation refresh failed: \(error)")
            } catch {
                break
            }
        }
    }

    /// Runs a blocking password hash or check off the async executor.
    func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        try await hashingPool.runIfActive(work)
    }
}

struct ValidationBodyKey: Hashable, Sendable {
    let token: String
    let withCatalog: Bool
}
