import Foundation
import Logging

/// Converges one host's Linux networking (bridges, taps, VXLAN, nftables, DHCP namespaces with
/// dnsmasq and metadata, router namespaces with NAT) to a `HostNetworkState`.
///
/// Observed state comes from the kernel (`ip -j link`, `/var/run/netns`, pid files), so a
/// restarted agent finds and adopts or removes what an earlier run made. What was last applied
/// per network/DHCP/router is cached so that the common case (one new port) runs only the
/// commands it needs: one `ip -j link`, one `ip -batch`, and one `nft -f` if the filter changed.
public actor LinuxDataplane {
    let stateDirectory: URL
    let executionNamespace: String?
    let tunnelAddress: String?
    let metadata: MetadataHandler?
    let logger: Logger
    let runner: CommandRunner

    var hostPrepared = false
    var appliedNetworks: [String: NetworkWiring] = [:]
    var appliedRuleset: String?
    var appliedDHCP: [String: DHCPWiring] = [:]
    var appliedRouters: [String: RouterWiring] = [:]
    var listeners: [String: MetadataListener] = [:]
    /// The last queued converge/teardown: actor methods interleave at every `await`, and two
    /// converges interleaving would each act on a stale observation.
    var tail: Task<Void, Never>?

    /// - Parameters:
    ///   - executionNamespace: run every host-level command inside this namespace (an emulated
    ///     host); DHCP and router namespaces stay global, and their veths are made here and moved.
    ///   - tunnelAddress: this host's VXLAN underlay address; without it no VXLAN is made.
    ///   - metadata: answers 169.254.169.254 requests from the DHCP namespaces.
    public init(stateDirectory: URL, executionNamespace: String? = nil, tunnelAddress: String? = nil,
                metadata: MetadataHandler? = nil, logger: Logger) {
        self.stateDirectory = stateDirectory
        self.executionNamespace = executionNamespace
        self.tunnelAddress = tunnelAddress
        self.metadata = metadata
        self.logger = logger
        self.runner = CommandRunner(executionNamespace: executionNamespace)
    }

    /// Makes the host match `state`: creates what is missing, fixes what differs and removes what
    /// is not desired. Idempotent. Keeps going past a failing part and throws the first failure
    /// at the end, so one broken router doesn't keep every port unwired.
    /// - Returns: ids of the ports wired: instances' taps on their bridges and up, and the ports of
    ///   the DHCP servers and routers that converged.
    public func converge(_ state: HostNetworkState) async throws -> [String] {
        try await serialized { try await $0.convergeNow(state) }
    }

    /// Runs `body` after everything queued before it has finished.
    func serialized<T: Sendable>(_ body: @escaping @Sendable (isolated LinuxDataplane) async throws -> T) async throws -> T {
        let previous = tail
        let task = Task { () async throws -> T in
            await previous?.value
            return try await body(self)
        }
        tail = Task { _ = try? await task.value }
        return try await task.value
    }

    private func convergeNow(_ state: HostNetworkState) async throws -> [String] {
        var failures: [any Error] = []
        try await prepareHost()
        var links = try await observeLinks()
        let networks = Set(state.networks.map(\.id))
        var wired: [String]
        do {
            try await convergeLinks(state, links: links)
            // The batch succeeded, so every port of a present network is on its bridge and up;
            // no second `ip link` listing (it is a third of the new-port fast path).
            wired = state.ports.filter { networks.contains($0.networkID) }.map(\.id)
        } catch {
            failures.append(failed("links", error))
            links = try await observeLinks()
            wired = state.ports.filter { port in
                guard let link = links[DataplaneNames.tap(port: port.id)] else { return false }
                return link.master == DataplaneNames.bridge(network: port.networkID) && link.up
            }.map(\.id)
        }
        do { try await applyFilter(state.ports) } catch { failures.append(failed("filter", error)) }
        // The DHCP servers' and routers' own ports are wired when their part converged, as
        // Neutron's agents report theirs ACTIVE once plugged.
        do {
            try await convergeDHCP(state.dhcp, links: links)
            wired += state.dhcp.map(\.portID)
        } catch { failures.append(failed("dhcp", error)) }
        do {
            try await convergeRouters(state.routers, links: links)
            wired += state.routers.flatMap { router in router.interfaces.map(\.portID) + (router.gateway.map { [$0.portID] } ?? []) }
        } catch { failures.append(failed("routers", error)) }
        do { try await removeUndesiredNamespaces(state) } catch { failures.append(failed("namespaces", error)) }
        if let first = failures.first { throw first }
        return wired
    }

    private func failed(_ what: String, _ error: any Error) -> any Error {
        logger.error("dataplane \(what) failed", metadata: ["error": "\(error)"])
        return error
    }

    /// br_netfilter must hand bridged IP to the `inet` table (see `FilterRuleset`); the switch is
    /// per network namespace.
    func prepareHost() async throws {
        guard !hostPrepared else { return }
        try FileManager.default.createDirectory(at: stateDirectory.appendingPathComponent("netns"), withIntermediateDirectories: true)
        try await runner.host(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1"])
        hostPrepared = true
    }

    func applyFilter(_ ports: [PortWiring]) async throws {
        let ruleset = FilterRuleset.render(ports: ports)
        guard ruleset != appliedRuleset else { return }
        try await runner.host(["nft", "-f", "-"], input: ruleset)
        appliedRuleset = ruleset
    }

    // MARK: observation

    struct Link: Sendable {
        var name: String
        var master: String?
        var up: Bool
        var mtu: Int
        var kind: String?
    }

    func observeLinks() async throws -> [String: Link] {
        try Self.parseLinks(try await runner.ip(["-j", "-d", "link", "show"]))
    }

    static func parseLinks(_ json: String) throws -> [String: Link] {
        guard let array = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else { return [:] }
        var links: [String: Link] = [:]
        for item in array {
            guard let name = item["ifname"] as? String else { continue }
            let flags = item["flags"] as? [String] ?? []
            let kind = (item["linkinfo"] as? [String: Any])?["info_kind"] as? String
            links[name] = Link(name: name, master: item["master"] as? String, up: flags.contains("UP"),
                               mtu: item["mtu"] as? Int ?? 0, kind: kind)
        }
        return links
    }

    /// Named namespaces are global (`/var/run/netns`).
    func namedNamespaces() -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns")) ?? [])
    }

    /// Namespaces this dataplane may remove. With an execution namespace several emulated hosts
    /// share the global namespace list, so only those recorded under our state directory count;
    /// on a real host everything with our prefixes is ours (found again after a crash).
    func ownedNamespaces() -> Set<String> {
        // Named namespaces are global: only those this state directory recorded are ours (another
        // cloud, or another emulated host, on the same machine has its own).
        let prefixed = namedNamespaces().filter { name in DataplaneNames.namespacePrefixes.contains { name.hasPrefix($0) } }
        let recorded = Set((try? FileManager.default.contentsOfDirectory(atPath: stateDirectory.appendingPathComponent("netns").path)) ?? [])
        return prefixed.intersection(recorded)
    }

    /// Creates a named namespace (recorded first, so a crash in between still finds it) with lo up.
    func ensureNamespace(_ name: String) async throws {
        let record = stateDirectory.appendingPathComponent("netns").appendingPathComponent(name)
        _ = FileManager.default.createFile(atPath: record.path, contents: nil)
        guard !namedNamespaces().contains(name) else { return }
        try await CommandRunner.run(["ip", "netns", "add", name])
        try await CommandRunner.run(["ip", "-n", name, "link", "set", "lo", "up"])
        // No duplicate address detection on the legs that will move in: IPAM already keeps
        // addresses unique, and a tentative link-local address delays the first router advertisement.
        try await CommandRunner.run(["ip", "netns", "exec", name, "sysctl", "-q", "-w",
                                     "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"])
    }

    func deleteNamespace(_ name: String) async {
        // Anything still running inside (dnsmasq adopted from an old run) would keep it alive.
        if let pids = try? await CommandRunner.run(["ip", "netns", "pids", name]) {
            for pid in pids.split(whereSeparator: \.isNewline).compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
        }
        do { try await CommandRunner.run(["ip", "netns", "del", name]) } catch {
            logger.warning("cannot delete namespace", metadata: ["namespace": "\(name)", "error": "\(error)"])
        }
        try? FileManager.default.removeItem(at: stateDirectory.appendingPathComponent("netns").appendingPathComponent(name))
    }

    func removeUndesiredNamespaces(_ state: HostNetworkState) async throws {
        let desired = Set(state.dhcp.map { DataplaneNames.dhcpNamespace(network: $0.networkID) }
                          + state.routers.map { DataplaneNames.routerNamespace(router: $0.id) })
        for name in ownedNamespaces().subtracting(desired) {
            if name.hasPrefix("nimbus-dhcp-") {
                await stopDHCP(network: String(name.dropFirst("nimbus-dhcp-".count)))
            }
            // Deleting the namespace kills what runs inside, a router's advertiser included.
            await deleteNamespace(name)
            if name.hasPrefix("nimbus-router-") {
                try? FileManager.default.removeItem(at: routerDirectory(String(name.dropFirst("nimbus-router-".count))))
            }
        }
        appliedRouters = appliedRouters.filter { desired.contains(DataplaneNames.routerNamespace(router: $0.key)) }
    }
}
