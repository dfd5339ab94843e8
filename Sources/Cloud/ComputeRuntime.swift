import Agent
import Compute
import Foundation
import Hypervisor
import Logging
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
                if let hosts {
                    for index in 0..<(hosts.driver == .qemu ? 1 : hosts.count) {
                        let name = hosts.name(index)
                        let driver: any HypervisorDriver
                        switch hosts.driver {
                        case .fake:
                            var fake = hosts.fake
                            if hosts.failingHosts.contains(name) { fake.failsBuilds = true }
                            driver = FakeDriver(configuration: fake)
                        case .qemu:
                            var settings = QEMUDriver.Configuration(directory: hosts.qemuDirectory ?? URL(fileURLWithPath: "/var/lib/nimbus/compute"))
                            settings.accelerator = hosts.accelerator
                            settings.shutdownTimeout = hosts.shutdownTimeout
                            driver = QEMUDriver(configuration: settings, images: images, logger: logger)
                        }
                        var agentSettings = ComputeAgent.Configuration(
                            host: name, heartbeatInterval: hosts.heartbeatInterval, syncInterval: hosts.syncInterval)
                        if hosts.driver == .qemu { agentSettings.maxConcurrentSpawns = hosts.maxConcurrentSpawns }
                        let agent = ComputeAgent(configuration: agentSettings, driver: driver, controlPlane: compute, logger: logger)
                        group.addTask { await agent.run() }
                    }
                }
                await group.waitForAll()
            }
    }
}
