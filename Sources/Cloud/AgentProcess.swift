import Agent
import Dataplane
import Foundation
import Gateway
import Hummingbird
import Hypervisor
import Logging
import NimbusCore
import ServiceLifecycle

/// `nimbus agent`: one compute host in a process of its own (nova-compute with Neutron's agents),
/// talking to the control plane over its internal API and answering the control plane's direct
/// calls (console output, interface hot-plug) on a listener of its own.
public struct AgentProcess: Sendable {
    public struct Configuration: Sendable {
        public var controlPlane: String
        public var key: String
        public var host: String
        public var zone = "nova"
        public var driver: DriverKind = .qemu
        public var fake = FakeDriver.Configuration()
        /// Guests' files, the image cache and the dataplane's files.
        public var stateDirectory: URL
        public var accelerator = "auto"
        public var maxConcurrentSpawns = 2
        public var shutdownTimeout: Duration = .seconds(15)
        public var heartbeatInterval: Duration = .seconds(5)
        /// The link listener, and the URL the control plane uses to reach it.
        public var listenHost = "127.0.0.1"
        public var listenPort = 5010
        public var advertisedURL: String?
        /// Wire this host's networks (bridges, taps, filters, VXLAN); DHCP and routers stay on
        /// the network node (the `nimbus up` host).
        public var dataplane = false
        public var tunnelAddress: String?

        public init(controlPlane: String, key: String, host: String, stateDirectory: URL) {
            self.controlPlane = controlPlane
            self.key = key
            self.host = host
            self.stateDirectory = stateDirectory
        }
    }

    let configuration: Configuration
    let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs until SIGINT/SIGTERM.
    public func run(onReady: @escaping @Sendable () async -> Void = {}) async throws {
        let settings = configuration
        let linkURL = settings.advertisedURL ?? "http://\(settings.listenHost):\(settings.listenPort)"
        let remote = RemoteControlPlane(controlPlane: settings.controlPlane, key: settings.key, linkURL: linkURL,
                                        imageDirectory: settings.stateDirectory.appendingPathComponent("image-downloads"))
        let driver: any HypervisorDriver
        switch settings.driver {
        case .fake:
            driver = FakeDriver(configuration: settings.fake)
        case .qemu:
            var qemu = QEMUDriver.Configuration(directory: settings.stateDirectory.appendingPathComponent("compute"))
            qemu.accelerator = settings.accelerator
            qemu.shutdownTimeout = settings.shutdownTimeout
            driver = QEMUDriver(configuration: qemu, images: remote, logger: logger)
        }
        var attachment: NetworkAttachment?
        if settings.dataplane {
            // Not the network node: no DHCP namespaces here, so no metadata listener either.
            let dataplane = LinuxDataplane(stateDirectory: settings.stateDirectory.appendingPathComponent("network"),
                                           tunnelAddress: settings.tunnelAddress, logger: logger)
            attachment = NetworkAttachment(control: remote, dataplane: dataplane, tunnelAddress: settings.tunnelAddress, networkNode: false)
        }
        var agentSettings = ComputeAgent.Configuration(host: settings.host, zone: settings.zone, heartbeatInterval: settings.heartbeatInterval)
        agentSettings.maxConcurrentSpawns = settings.maxConcurrentSpawns
        let agent = ComputeAgent(configuration: agentSettings, driver: driver, controlPlane: remote, network: attachment, logger: logger)

        let app = Application(
            router: Self.linkRouter(agent, key: settings.key),
            configuration: .init(address: .hostname(settings.listenHost, port: settings.listenPort), serverName: "nimbus-agent"),
            services: [AgentService(agent: agent)],
            onServerRunning: { _ in await onReady() },
            logger: logger)
        try await app.runService()
    }

    /// The calls the control plane makes to this host directly.
    static func linkRouter(_ agent: ComputeAgent, key: String) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        @Sendable func authorized(_ request: Request) throws {
            guard let presented = request.headers[AgentAPI.keyHeader], AgentAPI.constantTimeEqual(presented, key) else {
                throw HTTPError(.unauthorized)
            }
        }
        router.post("/console") { request, _ -> Response in
            try authorized(request)
            let query = try await Self.body(ConsoleQuery.self, request)
            let reply = ConsoleReply(output: try await agent.consoleOutput(query.uuid, lines: query.lines))
            return .jsonBytes(Array(try JSONEncoder().encode(reply)))
        }
        router.post("/interfaces/attach") { request, _ -> Response in
            try authorized(request)
            let attach = try await Self.body(AttachRequest.self, request)
            return try await Self.hostFailure { try await agent.attachInterface(attach.spec, nic: attach.nic) }
        }
        router.post("/interfaces/detach") { request, _ -> Response in
            try authorized(request)
            let detach = try await Self.body(DetachRequest.self, request)
            return try await Self.hostFailure { try await agent.detachInterface(detach.uuid, portID: detach.portID) }
        }
        return router
    }
}

extension AgentProcess {
    /// 204 once `operation` is done; its failure as a 500 with the host's message.
    static func hostFailure(_ operation: () async throws -> Void) async throws -> Response {
        do {
            try await operation()
        } catch {
            throw HTTPError(.internalServerError, message: "\(error)")
        }
        return .empty()
    }

    static func body<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        var request = request
        return try JSONDecoder().decode(T.self, from: Data(try await request.collectBody(upTo: 16 << 20).readableBytesView))
    }
}

/// The agent's loops, stopped on graceful shutdown.
struct AgentService: Service {
    let agent: ComputeAgent

    func run() async throws {
        await cancelWhenGracefulShutdown { await agent.run() }
    }
}
