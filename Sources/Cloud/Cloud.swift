import Compute
import Foundation
import Gateway
import Hypervisor
import Hummingbird
import Identity
import Image
import Logging
import NIOCore
import NimbusCore
import NimbusNetwork
import Placement
import ServiceLifecycle
import Store

/// Settings shared by `nimbus up` and `nimbus serve`.
public struct CloudConfiguration: Sendable {
    public var databaseURL: String
    public var host: String
    public var port: Int
    /// What clients reach; defaults to `http://HOST:PORT`.
    public var publicURL: String
    public var keyDirectory: URL
    public var bcryptCost: UInt8
    public var tokenLifetime: TimeInterval
    /// Where image data lives (a shared filesystem when several replicas serve images).
    public var imageDirectory: URL
    public var imageQuotaCount: Int = 100
    public var imageQuotaBytes: Int64 = 100 << 30
    /// Compute hosts this process runs itself (`nimbus up`); nil for a control plane only.
    public var localHosts: LocalHosts? = LocalHosts()
    public var maxBuildAttempts = 3
    public var serviceDownTime: TimeInterval = 60
    /// Per-project defaults overriding Nova's (e.g. `instances`).
    public var defaultQuotas: [String: Int64] = [:]
    /// Pack servers onto the fewest hosts instead of spreading them.
    public var stackScheduling = false
    public var cpuAllocationRatio = 4.0
    public var ramAllocationRatio = 1.0
    public var network = NetworkConfiguration()
    /// DevStack's `public`/`private` networks and `router1`, made at bootstrap; nil for none.
    public var networkSeed: NetworkSeed? = NetworkSeed()
    /// The key `nimbus agent` processes present on the internal API; nil: no remote agents.
    public var agentKey: String?

    public init(databaseURL: String, host: String, port: Int, publicURL: String? = nil, keyDirectory: URL,
                imageDirectory: URL, bcryptCost: UInt8 = 12, tokenLifetime: TimeInterval = 3600) {
        self.imageDirectory = imageDirectory
        self.databaseURL = databaseURL
        self.host = host
        self.port = port
        self.publicURL = publicURL ?? "http://\(host):\(port)"
        self.keyDirectory = keyDirectory
        self.bcryptCost = bcryptCost
        self.tokenLifetime = tokenLifetime
    }
}

/// Every service of the control plane, assembled over one database, behind one gateway.
/// `main` and the tests build it the same way.
public final class Cloud: Sendable {
    public let configuration: CloudConfiguration
    public let database: Database
    public let identity: IdentityService
    public let image: ImageService
    public let placement: PlacementService
    public let compute: ComputeService
    public let network: NetworkService
    public let logger: Logger

    /// Services the catalog lists; grows as services are implemented.
    public static let catalog: [CatalogEntry] = [
        CatalogEntry(type: "identity", name: "keystone", path: IdentityAPI.prefix),
        CatalogEntry(type: "image", name: "glance", path: ImageAPI.prefix),
        CatalogEntry(type: "placement", name: "placement", path: PlacementAPI.prefix),
        CatalogEntry(type: "compute", name: "nova", path: ComputeAPI.prefix + "/v2.1"),
        CatalogEntry(type: "network", name: "neutron", path: NetworkAPI.prefix),
    ]

    public static func migrations() -> [Migration] { IdentitySchema.migrations + ImageSchema.migrations + PlacementSchema.migrations + ComputeSchema.migrations
        + NetworkSchema.migrations }

    /// Opens the database and applies pending migrations.
    public init(configuration: CloudConfiguration, logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        let database = try Database.open(url: configuration.databaseURL, logger: logger)
        self.database = database
        do {
            try await Migrator(database: database).migrate(Self.migrations())
            identity = try IdentityService(
                database: database,
                configuration: IdentityConfiguration(
                    publicURL: configuration.publicURL, keyDirectory: configuration.keyDirectory,
                    tokenLifetime: configuration.tokenLifetime, bcryptCost: configuration.bcryptCost),
                logger: logger)
            image = try ImageService(
                database: database,
                configuration: ImageConfiguration(
                    dataDirectory: configuration.imageDirectory, maxImagesPerProject: configuration.imageQuotaCount,
                    maxBytesPerProject: configuration.imageQuotaBytes),
                logger: logger)
            try await image.recover()
            placement = PlacementService(database: database, logger: logger)
            var computeConfiguration = ComputeConfiguration(publicURL: configuration.publicURL)
            computeConfiguration.maxAttempts = configuration.maxBuildAttempts
            computeConfiguration.serviceDownTime = configuration.serviceDownTime
            computeConfiguration.defaultQuotas.merge(configuration.defaultQuotas) { _, new in new }
            if configuration.stackScheduling { computeConfiguration.scheduler = .stack }
            computeConfiguration.allocationRatios["VCPU"] = configuration.cpuAllocationRatio
            computeConfiguration.allocationRatios["MEMORY_MB"] = configuration.ramAllocationRatio
            let network = NetworkService(database: database, configuration: configuration.network, logger: logger)
            self.network = network
            compute = ComputeService(database: database, placement: placement, images: ImageCatalog(image: image),
                                     ports: NetworkServicePorts(network: network), configuration: computeConfiguration, logger: logger)
            network.onInstanceNetworkChange { [compute, logger] instance in
                do { try await compute.refreshNetworkInfo(instance) } catch {
                    logger.warning("refreshing the addresses of \(instance) failed: \(error)")
                }
            }
        } catch {
            // The pool must be shut down before it is released, even when start-up fails.
            await database.shutdown()
            throw error
        }
    }

    public func bootstrap(passwords: [String: String] = [:]) async throws -> IdentityService.BootstrapResult {
        let result = try await identity.bootstrap(catalog: Self.catalog, passwords: passwords)
        try await compute.seedFlavors()
        if let seed = configuration.networkSeed, let admin = try await identity.projectID(named: "admin"),
           let demo = try await identity.projectID(named: "demo") {
            try await network.seedDefaults(adminProject: admin, demoProject: demo, configuration: seed)
        }
        return result
    }

    public var gateway: Gateway {
        var services = [IdentityAPI.routes(identity), ImageAPI.routes(image, publicURL: configuration.publicURL),
                        PlacementAPI.routes(placement), ComputeAPI.routes(compute, publicURL: configuration.publicURL),
                        NetworkAPI.routes(network, publicURL: configuration.publicURL)]
        if let key = configuration.agentKey {
            services.append(AgentAPI.routes(compute: compute, network: network, images: ImageStoreSource(image: image), key: key))
        }
        return Gateway(services: services, validator: identity)
    }

    public func router() -> Router<NimbusContext> { gateway.router() }

    /// Serves until SIGINT/SIGTERM, then drains requests and stops background services.
    public func run(onReady: @escaping @Sendable () async -> Void = {}) async throws {
        let app = Application(
            router: router(),
            server: .http1(additionalChannelHandlers: [ExpectContinueHandler(), LargeReadsHandler()]),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "nimbus"),
            services: [identity, ComputeRuntime(compute: compute, network: network, hosts: configuration.localHosts, images: ImageStoreSource(image: image), logger: logger)],
            onServerRunning: { [compute, configuration] _ in
                // Ready means a server can be placed: wait (briefly) for the local hosts to register.
                if let hosts = configuration.localHosts {
                    let names = Set((0..<(hosts.driver == .qemu ? 1 : hosts.count)).map(hosts.name) + hosts.namespaceHosts.map(\.name))
                    _ = await compute.waitForHosts(names, timeout: .seconds(30))
                }
                await onReady()
            },
            logger: logger)
        do {
            try await app.runService()
        } catch {
            await database.shutdown()
            throw error
        }
        await database.shutdown()
    }

    /// The scheduler and local hosts' agents, without the HTTP listener (for in-process tests);
    /// returns when the calling task is cancelled.
    public func runCompute() async {
        await ComputeRuntime(compute: compute, network: network, hosts: configuration.localHosts, images: ImageStoreSource(image: image), logger: logger).runLoops()
    }

    public func shutdown() async {
        await database.shutdown()
    }
}
