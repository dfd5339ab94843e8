import Agent
import Compute
import Foundation
import Hypervisor
import Logging
import ServiceLifecycle

/// Which hypervisor the in-process compute agents drive.
public enum DriverKind: String, Sendable, CaseIterable {
    case fake
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

    public init() {}

    public func name(_ index: Int) -> String { "\(driver.rawValue)-\(index)" }
}

/// The compute control loops of one process: the scheduler, and the agents of local hosts.
/// Stops them on graceful shutdown.
struct ComputeRuntime: Service {
    let compute: ComputeService
    let hosts: LocalHosts?
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await runLoops() }
    }

    /// Runs until the task is cancelled.
    func runLoops() async {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await compute.runScheduler() }
                if let hosts {
                    for index in 0..<hosts.count {
                        let name = hosts.name(index)
                        var fake = hosts.fake
                        if hosts.failingHosts.contains(name) { fake.failsBuilds = true }
                        let agent = ComputeAgent(
                            configuration: .init(host: name, heartbeatInterval: hosts.heartbeatInterval, syncInterval: hosts.syncInterval),
                            driver: FakeDriver(configuration: fake), controlPlane: compute, logger: logger)
                        group.addTask { await agent.run() }
                    }
                }
                await group.waitForAll()
            }
    }
}
