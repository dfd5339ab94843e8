import Foundation

/// dnsmasq's command line and hosts file for one network, as pure functions of its `DHCPWiring`,
/// so that "what changed" (hosts only → SIGHUP; anything else → restart) is a string comparison.
struct DnsmasqConfig: Equatable {
    var arguments: [String]
    var hostsFile: String

    /// Interface inside the DHCP namespace that holds the DHCP port's MAC and addresses.
    static let insideInterface = "ns-dhcp"
    static let metadataAddress = "169.254.169.254"

    init(_ dhcp: DHCPWiring, directory: String) {
        // dnsmasq reads an IPv6 address in a host line only in brackets.
        hostsFile = dhcp.hosts.map { host in
            "\(host.mac.lowercased()),\(host.address.contains(":") ? "[\(host.address)]" : host.address),\(host.hostname)"
        }.joined(separator: "\n") + "\n"
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
        args += Self.ipv6Arguments(dhcp.subnets)
        arguments = args
    }

    /// Router advertisements and DHCPv6 for the IPv6 subnets that ask for them. The subnet's prefix
    /// is advertised on-link: SLAAC (A flag) for `slaac`, plus DHCPv6 for options (O flag) for
    /// `dhcpv6-stateless`, or addresses from DHCPv6 static leases (M flag) for `dhcpv6-stateful`.
    /// Router lifetime 0: this namespace holds no gateway, so it must never become a default route.
    /// Neutron's IPv6 modes as dnsmasq `--dhcp-range` modes; they set the advertisement's A, O and
    /// M flags, and whether dnsmasq leases addresses.
    static let rangeModes = ["slaac": "ra-only", "dhcpv6-stateless": "ra-stateless", "dhcpv6-stateful": "static"]

    static func ipv6Arguments(_ subnets: [DHCPSubnet]) -> [String] {
        var args: [String] = []
        for (index, subnet) in subnets.enumerated() where subnet.version == 6 {
            guard let mode = subnet.ipv6Mode, let (prefix, length) = prefixAndLength(subnet.cidr) else { continue }
            guard let range = rangeModes[mode] else { continue }
            let tag = "subnet\(index)"
            args.append("--dhcp-range=set:\(tag),\(prefix),\(range),\(length)" + (range == "static" ? ",86400s" : ""))
            if !subnet.dnsServers.isEmpty, mode != "slaac" {
                args.append("--dhcp-option=tag:\(tag),option6:dns-server,\(subnet.dnsServers.map { "[\($0)]" }.joined(separator: ","))")
            }
        }
        guard !args.isEmpty else { return [] }
        return ["--enable-ra", "--ra-param=\(insideInterface),60,0"] + args
    }

    /// A router's advertisements on its internal legs, with itself as default router (lifetime
    /// 1800 s), as Neutron's radvd sends them: each SLAAC subnet's prefix to form addresses from
    /// (A flag), a DHCPv6-stateless one's with the O flag, a DHCPv6-stateful one's with the M flag
    /// and without A. This dnsmasq answers no DHCPv6 itself (it knows no hosts: `tag:!known`);
    /// the network's own dnsmasq does. nil when no leg needs advertising.
    init?(routerAdvertisementsFor router: RouterWiring, directory: String) {
        var args = ["dnsmasq", "--no-hosts", "--no-resolv", "--port=0", "--except-interface=lo", "--bind-interfaces",
                    "--pid-file=\(directory)/pid", "--dhcp-leasefile=\(directory)/leases", "--user=root", "--group=root", "--enable-ra",
                    "--dhcp-ignore=tag:!known"]
        var advertised = false
        for port in router.interfaces.sorted(by: { $0.portID < $1.portID }) {
            let name = RouterNAT.interface(port)
            let prefixes = port.addresses.filter { $0.version == 6 }.compactMap { address -> String? in
                guard let mode = address.ipv6Mode.flatMap({ Self.rangeModes[$0] }),
                      let (prefix, length) = Self.prefixAndLength(Self.networkOf(address)) else { return nil }
                return "--dhcp-range=\(prefix),\(mode),\(length)"
            }
            guard !prefixes.isEmpty else { continue }
            advertised = true
            args += ["--interface=\(name)", "--ra-param=\(name),30,1800"] + prefixes
        }
        guard advertised else { return nil }
        arguments = args
        hostsFile = "\n"
    }

    /// "fd00:1::1" with length 64 → "fd00:1::/64" (the host part cleared); "" if it is not IPv6.
    static func networkOf(_ address: FixedAddress) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard (0...128).contains(address.prefixLength), inet_pton(AF_INET6, address.address, &bytes) == 1 else { return "" }
        for index in 0..<16 {
            let kept = min(8, max(0, address.prefixLength - index * 8))
            bytes[index] &= kept == 8 ? 0xff : ~(UInt8(0xff) >> UInt8(kept))
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, bytes, &text, socklen_t(text.count)) != nil else { return "" }
        return String(cString: text) + "/\(address.prefixLength)"
    }

    /// "fd00:1::/64" → ("fd00:1::", 64); nil for anything but an IPv6 CIDR.
    static func prefixAndLength(_ cidr: String) -> (String, Int)? {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, parts[0].contains(":"), let length = Int(parts[1]), (0...128).contains(length),
              parts[0].allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return nil }
        return (String(parts[0]), length)
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
