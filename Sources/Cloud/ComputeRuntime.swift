import Agent
import Compute
import Dataplane
import Foundation
import Hypervisor
import Logging
import NimbusNetwork
import ServiceLifecycle

/// Which hypervisor the in-process compute agents drive.
public enum DriverKind: String, Sendable, CaseIterable {
    case fake
    case qemu
}

/// The hosts `nimbus up` runs in its own process, and how their fake hypervisors behave.
public struct LocalHosts: Sendable {
    public var driver: DriverKind = .fake
    public var count = 1
    public var fake = FakeDriver.Configuration()
    /// Hosts whose builds always fail, to exercise rescheduling.
    public var failingHosts: Set<String> = []
    public var heartbeatInterval: Duration = .seconds(5)
    public var syncInterval: Duration = .seconds(10)
    /// QEMU: where guests' files live, the accelerator ("auto", "kvm", "tcg"), boots at once.
    public var qemuDirectory: URL?
    public var accelerator = "auto"
    public var maxConcurrentSpawns = 2
    public var shutdownTimeout: Duration = .seconds(15)
    /// The QEMU host's name (one real host per process).
    public var hostName = ProcessInfo.processInfo.hostName
    /// Whether the QEMU hosts wire their networks (bridges, taps, DHCP, routers, filters).
    public var dataplane = false
    /// Where the dataplane keeps its files (dnsmasq's, per network).
    public var networkDirectory: URL?
    /// The QEMU host's VXLAN underlay address.
    public var tunnelAddress: String?
    /// More QEMU hosts, each inside its own network namespace (one machine emulating several).
    public var namespaceHosts: [NamespaceHost] = []

    public struct NamespaceHost: Sendable {
        public var name: String
        public var namespace: String
        public var tunnelAddress: String

        public init(name: String, namespace: String, tunnelAddress: String) {
            self.name = name
            self.namespace = namespace
            self.tunnelAddress = tunnelAddress
        }
    }

    public init() {}

    public func name(_ index: Int) -> String { driver == .qemu ? hostName : "\(driver.rawValue)-\(index)" }
}

/// The compute control loops of one process: the scheduler, and the agents of local hosts.
/// Stops them on graceful shutdown.
struct ComputeRuntime: Service {
    let compute: ComputeService
    let network: NetworkService?
    let hosts: LocalHosts?
    let images: any ImageSource
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await runLoops() }
    }

    /// Runs until the task is cancelled.
    func runLoops() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await compute.runScheduler() }
            for agent in agents() {
                group.addTask { await agent.run() }
            }
            await group.waitForAll()
        }
    }

    /// One agent per local host: fake hosts, or the QEMU host and the hosts emulated in namespaces.
    func agents() -> [ComputeAgent] {
        guard let hosts else { return [] }
        if hosts.driver == .fake {
            return (0..<hosts.count).map { index in
                let name = hosts.name(index)
                var fake = hosts.fake
                if hosts.failingHosts.contains(name) { fake.failsBuilds = true }
                let settings = ComputeAgent.Configuration(host: name, heartbeatInterval: hosts.heartbeatInterval, syncInterval: hosts.syncInterval)
                return ComputeAgent(configuration: settings, driver: FakeDriver(configuration: fake), controlPlane: compute, logger: logger)
            }
        }
        let base = hosts.qemuDirectory ?? URL(fileURLWithPath: "/var/lib/nimbus/compute")
        let networkBase = hosts.networkDirectory ?? base.deletingLastPathComponent().appendingPathComponent("network")
        var qemuHosts: [(name: String, namespace: String?, tunnel: String?, directory: URL, networkDirectory: URL)] = [
            (hosts.hostName, nil, hosts.tunnelAddress, base, networkBase),
        ]
        for extra in hosts.namespaceHosts {
            qemuHosts.append((extra.name, extra.namespace, extra.tunnelAddress,
                              base.appendingPathComponent("hosts").appendingPathComponent(extra.name),
                              networkBase.appendingPathComponent("hosts").appendingPathComponent(extra.name)))
        }
        return qemuHosts.map { host in
            var settings = QEMUDriver.Configuration(directory: host.directory)
            settings.accelerator = hosts.accelerator
            settings.shutdownTimeout = hosts.shutdownTimeout
            settings.namespace = host.namespace
            let driver = QEMUDriver(configuration: settings, images: images, logger: logger)
            var agentSettings = ComputeAgent.Configuration(host: host.name, heartbeatInterval: hosts.heartbeatInterval, syncInterval: hosts.syncInterval)
            agentSettings.maxConcurrentSpawns = hosts.maxConcurrentSpawns
            var attachment: NetworkAttachment?
            var relay: MetadataRelay?
            if hosts.dataplane, let network {
                let metadata = MetadataRelay()
                relay = metadata
                let dataplane = LinuxDataplane(stateDirectory: host.networkDirectory, executionNamespace: host.namespace,
                                               tunnelAddress: host.tunnel, metadata: metadata.handler, logger: logger)
                // The QEMU host of this process is the network node (DHCP, routers, metadata).
                attachment = NetworkAttachment(control: network, dataplane: dataplane, tunnelAddress: host.tunnel,
                                               networkNode: host.namespace == nil)
            }
            let agent = ComputeAgent(configuration: agentSettings, driver: driver, controlPlane: compute, network: attachment, logger: logger)
            relay?.agent = agent
            return agent
        }
    }
}

/// Hands the dataplane's metadata requests to the agent, made after the dataplane that needs it.
final class MetadataRelay: @unchecked Sendable {
    private let lock = NSLock()
    private var target: ComputeAgent?

    var agent: ComputeAgent? {
        get { lock.withLock { target } }
        set { lock.withLock { target = newValue } }
    }

    var handler: MetadataHandler {
        { [self] network, source, path in
            guard let document = await self.agent?.metadata(network: network, source: source, path: path) else {
                return MetadataReply(status: 404, text: "Not Found")
            }
            return MetadataReply(status: 200, contentType: document.contentType, body: document.body)
        }
    }
}
