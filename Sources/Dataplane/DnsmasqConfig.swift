/// dnsmasq's command line and hosts file for one network, as pure functions of its `DHCPWiring`,
/// so that "what changed" (hosts only → SIGHUP; anything else → restart) is a string comparison.
struct DnsmasqConfig: Equatable {
    var arguments: [String]
    var hostsFile: String

    /// Interface inside the DHCP namespace that holds the DHCP port's MAC and addresses.
    static let insideInterface = "ns-dhcp"
    static let metadataAddress = "169.254.169.254"

    init(_ dhcp: DHCPWiring, directory: String) {
        hostsFile = dhcp.hosts.map { "\($0.mac.lowercased()),\($0.address),\($0.hostname)" }.joined(separator: "\n") + "\n"
        var args = ["dnsmasq", "--no-hosts", "--no-resolv", "--strict-order", "--except-interface=lo",
                    "--interface=\(Self.insideInterface)", "--bind-interfaces", "--port=0",
                    "--pid-file=\(directory)/pid", "--dhcp-leasefile=\(directory)/leases",
                    "--dhcp-hostsfile=\(directory)/hosts", "--dhcp-authoritative", "--user=root", "--group=root"]
        let ownV4 = dhcp.addresses.first { $0.version == 4 }?.address
        for (index, subnet) in dhcp.subnets.enumerated() where subnet.version == 4 {
            guard let (network, mask) = Self.networkAndMask(subnet.cidr) else { continue }
            let tag = "subnet\(index)"
            args.append("--dhcp-range=set:\(tag),\(network),static,\(mask),86400s")
            args.append("--dhcp-option-force=tag:\(tag),option:mtu,\(dhcp.mtu)")
            if !subnet.dnsServers.isEmpty {
                args.append("--dhcp-option=tag:\(tag),option:dns-server,\(subnet.dnsServers.joined(separator: ","))")
            }
            // An empty router option stops dnsmasq from offering itself as the gateway.
            args.append("--dhcp-option=tag:\(tag),option:router" + (subnet.gateway.map { ",\($0)" } ?? ""))
            // Clients that honour option 121 ignore option 3, so the default route goes here too.
            var routes: [String] = []
            if let ownV4 { routes += ["\(Self.metadataAddress)/32", ownV4] }
            for route in subnet.hostRoutes where !route.destination.contains(":") { routes += [route.destination, route.nexthop] }
            if let gateway = subnet.gateway { routes += ["0.0.0.0/0", gateway] }
            if !routes.isEmpty {
                args.append("--dhcp-option-force=tag:\(tag),option:classless-static-route,\(routes.joined(separator: ","))")
            }
        }
        arguments = args
    }

    /// "10.0.0.0/24" → ("10.0.0.0", "255.255.255.0").
    static func networkAndMask(_ cidr: String) -> (String, String)? {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let length = Int(parts[1]), (0...32).contains(length) else { return nil }
        let octets = parts[0].split(separator: ".").compactMap { UInt32($0) }
        guard octets.count == 4, octets.allSatisfy({ $0 < 256 }) else { return nil }
        let address = octets.reduce(0) { $0 << 8 | $1 }
        let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << (32 - UInt32(length))
        func dotted(_ value: UInt32) -> String { (0..<4).map { String(value >> (24 - 8 * $0) & 0xff) }.joined(separator: ".") }
        return (dotted(address & mask), dotted(mask))
    }
}
