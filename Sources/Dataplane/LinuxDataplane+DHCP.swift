import Foundation

/// DHCP per network: a namespace holding the DHCP port (and 169.254.169.254), dnsmasq with static
/// leases inside it, found again by its pid file, and the metadata listener.
extension LinuxDataplane {
    func dhcpDirectory(_ network: String) -> URL {
        stateDirectory.appendingPathComponent("dhcp").appendingPathComponent(network)
    }

    func convergeDHCP(_ wirings: [DHCPWiring], links observed: [String: Link]) async throws {
        let namespaces = namedNamespaces()
        var links = observed
        for dhcp in wirings {
            let namespace = DataplaneNames.dhcpNamespace(network: dhcp.networkID)
            let directory = dhcpDirectory(dhcp.networkID)
            let config = DnsmasqConfig(dhcp, directory: directory.path)
            let veth = DataplaneNames.dhcpVeth(network: dhcp.networkID)
            var running = Self.dnsmasqPID(directory: directory)
            if !namespaces.contains(namespace) {
                // The namespace was deleted under us: its processes and sockets keep the old one
                // alive, unreachable. Start over in the new namespace.
                listeners.removeValue(forKey: dhcp.networkID)?.stop()
                if let pid = running { await Self.terminate(pid) }
                running = nil
                // Its veth's inside end went with the old namespace; make a new pair.
                if links[veth] != nil { _ = try? await runner.ip(["link", "del", veth]) }
                links[veth] = nil
            }
            if appliedDHCP[dhcp.networkID] == dhcp, namespaces.contains(namespace), links[veth] != nil, running != nil,
               metadata == nil || listeners[dhcp.networkID] != nil {
                continue
            }
            try await ensureNamespace(namespace)
            try await plugVeth(veth, network: dhcp.networkID, mtu: dhcp.mtu, links: links, namespace: namespace,
                               inside: DnsmasqConfig.insideInterface, mac: dhcp.mac,
                               addresses: dhcp.addresses.map { "\($0.address)/\($0.prefixLength)" } + ["\(DnsmasqConfig.metadataAddress)/32"])
            try await runDnsmasq(config, namespace: namespace, directory: directory, running: running)
            if let metadata, listeners[dhcp.networkID] == nil {
                listeners[dhcp.networkID] = try MetadataListener(namespace: namespace, network: dhcp.networkID,
                                                                 address: DnsmasqConfig.metadataAddress, port: 80,
                                                                 handler: metadata, logger: logger)
            }
            appliedDHCP[dhcp.networkID] = dhcp
        }
        let desired = Set(wirings.map(\.networkID))
        for network in Set(appliedDHCP.keys).union(listeners.keys) where !desired.contains(network) {
            await stopDHCP(network: network)
        }
    }

    /// Starts dnsmasq, or SIGHUPs it when only the hosts changed (it rereads the hosts file),
    /// or restarts it when its command line changed.
    func runDnsmasq(_ config: DnsmasqConfig, namespace: String, directory: URL, running: Int32?) async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let hostsURL = directory.appendingPathComponent("hosts"), argsURL = directory.appendingPathComponent("arguments")
        let oldHosts = try? String(contentsOf: hostsURL, encoding: .utf8)
        let oldArguments = try? String(contentsOf: argsURL, encoding: .utf8)
        let arguments = config.arguments.joined(separator: "\n")
        if oldHosts != config.hostsFile { try config.hostsFile.write(to: hostsURL, atomically: true, encoding: .utf8) }
        if let running, oldArguments == arguments {
            if oldHosts != config.hostsFile { kill(running, SIGHUP) }
            return
        }
        if let running { await Self.terminate(running) }
        try await CommandRunner.run(["ip", "netns", "exec", namespace] + config.arguments)
        try arguments.write(to: argsURL, atomically: true, encoding: .utf8)
        logger.info("dnsmasq started", metadata: ["namespace": "\(namespace)"])
    }

    func stopDHCP(network: String) async {
        listeners.removeValue(forKey: network)?.stop()
        let directory = dhcpDirectory(network)
        if let pid = Self.dnsmasqPID(directory: directory) { await Self.terminate(pid) }
        try? FileManager.default.removeItem(at: directory)
        appliedDHCP.removeValue(forKey: network)
    }

    /// The pid in the pid file, if that process is alive and is a dnsmasq (pids get reused).
    static func dnsmasqPID(directory: URL) -> Int32? {
        guard let text = try? String(contentsOf: directory.appendingPathComponent("pid"), encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, kill(pid, 0) == 0,
              let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8), cmdline.contains("dnsmasq")
        else { return nil }
        return pid
    }

    /// SIGTERM, then SIGKILL if it lingers: a restarted dnsmasq must find the port free.
    static func terminate(_ pid: Int32) async {
        kill(pid, SIGTERM)
        for _ in 0..<50 where kill(pid, 0) == 0 { try? await Task.sleep(for: .milliseconds(10)) }
        if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
    }

    /// A veth from the network's bridge into `namespace`: the bridge side is made in the execution
    /// namespace (the "host") and only the peer moves into the named namespace. The inside end gets
    /// the port's MAC, the network MTU and exactly `addresses`.
    func plugVeth(_ veth: String, network: String, mtu: Int, links: [String: Link], namespace: String,
                  inside: String, mac: String, addresses: [String]) async throws {
        let bridge = DataplaneNames.bridge(network: network)
        if links[veth] == nil {
            try await runner.ip(["link", "add", veth, "mtu", "\(mtu)", "type", "veth", "peer", "name", inside, "netns", namespace])
        }
        if links[veth]?.master != bridge || links[veth]?.up != true || links[veth]?.mtu != mtu {
            try await runner.ip(["link", "set", veth, "mtu", "\(mtu)", "master", bridge, "up"])
        }
        let current = try Self.parseAddresses(try await CommandRunner.run(["ip", "-n", namespace, "-j", "addr", "show", "dev", inside]))
        let desired = Set(addresses)
        var batch = ["link set \(inside) address \(mac.lowercased()) mtu \(mtu) up"]
        // No duplicate address detection: the control plane's IPAM already guarantees uniqueness,
        // and a tentative IPv6 address cannot be bound (dnsmasq's DHCPv6) for a second or two.
        batch += desired.subtracting(current).sorted().map { "addr replace \($0) dev \(inside)" + ($0.contains(":") ? " nodad" : "") }
        batch += current.subtracting(desired).sorted().map { "addr del \($0) dev \(inside)" }
        try await CommandRunner.run(["ip", "-n", namespace, "-force", "-batch", "-"], input: batch.joined(separator: "\n") + "\n")
    }
}
