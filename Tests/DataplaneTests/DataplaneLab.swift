import Foundation
import Logging
@testable import Dataplane

/// Real kernel objects for a test: emulated hosts and VMs as namespaces carrying a test-unique
/// tag, all removed by `close()` (with everything the dataplanes made).
final class DataplaneLab: @unchecked Sendable {
    let tag = String(UUID().uuidString.lowercased().prefix(6))
    private(set) var namespaces: [String] = []
    private(set) var dataplanes: [LinuxDataplane] = []
    let scratch: URL

    static var available: Bool {
        getuid() == 0 && ["/usr/sbin/dnsmasq", "/usr/sbin/nft", "/usr/bin/busybox"].allSatisfy { FileManager.default.fileExists(atPath: $0) }
    }

    init() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dp-lab-\(tag)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    /// A unique id in UUID form (names in the dataplane derive from ids).
    func id() -> String { UUID().uuidString.lowercased() }

    @discardableResult
    func sh(_ arguments: String...) async throws -> String { try await CommandRunner.run(arguments) }

    /// Succeeds or not, for pings that are expected to fail.
    func succeeds(_ arguments: String...) async -> Bool { (try? await CommandRunner.run(arguments)) != nil }

    func namespace(_ role: String) async throws -> String {
        let name = "\(role)-\(tag)-\(namespaces.count)"
        try await sh("ip", "netns", "add", name)
        namespaces.append(name)
        try await sh("ip", "-n", name, "link", "set", "lo", "up")
        return name
    }

    /// A dataplane whose "host" is a fresh namespace.
    func host(tunnelAddress: String? = nil, metadata: MetadataHandler? = nil) async throws -> (LinuxDataplane, String) {
        let namespace = try await namespace("nh")
        let dataplane = LinuxDataplane(stateDirectory: scratch.appendingPathComponent(namespace), executionNamespace: namespace,
                                       tunnelAddress: tunnelAddress, metadata: metadata, logger: Logger(label: "dp-\(namespace)"))
        dataplanes.append(dataplane)
        return (dataplane, namespace)
    }

    /// A "VM": a namespace whose eth0 is a veth whose host end carries the port's tap name.
    func vm(_ port: PortWiring, on host: String, address: String? = nil, gateway: String? = nil) async throws -> String {
        let namespace = try await namespace("vm")
        try await sh("ip", "-n", host, "link", "add", DataplaneNames.tap(port: port.id), "type", "veth", "peer", "name", "eth0", "netns", namespace)
        try await sh("ip", "-n", namespace, "link", "set", "eth0", "address", port.mac, "up")
        if let address { try await sh("ip", "-n", namespace, "addr", "add", address, "dev", "eth0") }
        if let gateway { try await sh("ip", "-n", namespace, "route", "add", "default", "via", gateway) }
        return namespace
    }

    func ping(from namespace: String, _ address: String) async -> Bool {
        // Three echoes, a second apart: the first may go while ARP resolves (two hops through a
        // router on a loaded machine); busybox ping succeeds when any reply comes back.
        await succeeds("timeout", "6", "ip", "netns", "exec", namespace, "busybox", "ping", "-c3", "-W1", address)
    }

    /// Everything with a Nimbus name or our tag that is still on the machine.
    func leftovers(in hosts: [String]) async throws -> [String] {
        var found: [String] = []
        let netns = try await sh("ip", "netns", "list")
        found += netns.split(whereSeparator: \.isNewline).map(String.init)
            .filter { line in dataplaneIDs.contains { line.contains($0) } }
        for host in hosts {
            let links = try await sh("ip", "-n", host, "-o", "link")
            found += links.split(whereSeparator: \.isNewline).map(String.init)
                .filter { line in DataplaneNames.interfacePrefixes.contains { line.contains(": \($0)") } }
            let tables = try await sh("ip", "netns", "exec", host, "nft", "list", "tables")
            found += tables.split(whereSeparator: \.isNewline).map(String.init).filter { $0.contains("nimbus") }
        }
        let pids = (try? await sh("pgrep", "-f", "dp-lab-\(tag)")) ?? ""
        found += pids.split(whereSeparator: \.isNewline).map { "process \($0)" }
        return found
    }

    /// Ids given to networks/routers in this test (their namespaces are global).
    var dataplaneIDs: [String] = []

    func close() async {
        for dataplane in dataplanes { await dataplane.teardownAll() }
        for namespace in namespaces.reversed() { _ = try? await sh("ip", "netns", "del", namespace) }
        try? FileManager.default.removeItem(at: scratch)
    }
}

/// Runs `body` with a fresh lab and always removes it, whether the body passed, failed or threw.
func withLab(_ body: (DataplaneLab) async throws -> Void) async throws {
    let lab = try DataplaneLab()
    do { try await body(lab) } catch {
        await lab.close()
        throw error
    }
    await lab.close()
}

extension PortWiring {
    static func vm(_ id: String, network: String, mac: String, address: String, prefix: Int = 24,
                   ingress: [FilterRule] = [FilterRule(ethertype: "IPv4", ipProtocol: "icmp")]) -> PortWiring {
        PortWiring(id: id, networkID: network, mac: mac, fixedIPs: [FixedAddress(address: address, prefixLength: prefix, subnetID: "s", version: 4)],
                   deviceID: "vm-" + id, ingress: ingress, egress: [FilterRule(ethertype: "IPv4"), FilterRule(ethertype: "IPv6")])
    }
}

func elapsedMilliseconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let duration = ContinuousClock.now - start
    return Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}
