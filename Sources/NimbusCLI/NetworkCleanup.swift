import ArgumentParser
import Dataplane
import Foundation

/// `nimbus network-cleanup`: removes every bridge, tap, VXLAN device, DHCP and router namespace,
/// dnsmasq and nftables table the dataplane of a state dir made, as `neutron-netns-cleanup` and
/// `neutron-linuxbridge-cleanup` do. The cloud must be stopped; guests lose their network.
struct NetworkCleanup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network-cleanup", abstract: "Remove everything the network dataplane of a state dir made on this host.")

    @Option(help: "The state dir `nimbus up` ran with.")
    var stateDir = ".nimbus"

    @Option(help: "Also clean a host emulated in a namespace, as NAME=NAMESPACE (repeatable; see `nimbus up --extra-host`).")
    var extraHost: [String] = []

    func run() async throws {
        let logger = makeLogger(.warning)
        let network = URL(fileURLWithPath: stateDir).standardizedFileURL.appendingPathComponent("network")
        for spec in extraHost {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--extra-host wants NAME=NAMESPACE, got \(spec)") }
            let namespace = parts[1].split(separator: ",").first.map(String.init) ?? parts[1]
            await LinuxDataplane(stateDirectory: network.appendingPathComponent("hosts").appendingPathComponent(parts[0]),
                                 executionNamespace: namespace, logger: logger).teardownAll()
        }
        await LinuxDataplane(stateDirectory: network, logger: logger).teardownAll()
    }
}
