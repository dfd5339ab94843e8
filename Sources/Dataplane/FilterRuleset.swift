/// Renders the security-group filter of a host's ports as one nftables transaction.
///
/// Why two tables: this kernel has no `nf_conntrack_bridge` (`ct` in a `bridge` table fails with
/// "Protocol error"), but it has br_netfilter, which passes bridged IPv4/IPv6 through the `inet`
/// hooks where conntrack works. The `inet` hooks only see the bridge as in/out device, so:
/// - `bridge nimbus` (stateless, sees the real ports): anti-spoofing on frames *from* each tap in
///   prerouting (before conntrack ever sees them), and in forward it stamps the skb mark with the
///   index of the tap the frame is about to leave by (each flooded copy gets its own mark);
/// - `inet nimbus` (stateful): established/related pass; a frame from a port (known by its source
///   MAC, which anti-spoofing has vouched for) runs that port's egress chain; a frame whose mark
///   names a port runs that port's ingress chain; both end in drop.
/// Each network's flows get their own conntrack zone, keyed by bridge.
/// The whole thing is replaced atomically: add+delete+recreate in one `nft -f -` transaction.
enum FilterRuleset {
    static let markBase: UInt32 = 0x4e42_0000

    static func render(ports: [PortWiring]) -> String {
        let secured = ports.filter(\.portSecurity).sorted { $0.id < $1.id }
        // No port to filter: no table at all (a host with no VMs carries no rules of ours).
        guard !secured.isEmpty else { return removal }
        var lines = ["table bridge nimbus", "delete table bridge nimbus", "table inet nimbus", "delete table inet nimbus"]
        lines += bridgeTable(secured)
        lines += inetTable(secured)
        return lines.joined(separator: "\n") + "\n"
    }

    /// Deletes both tables (teardown); `add` first so the delete never fails on a missing table.
    static let removal = "table bridge nimbus\ndelete table bridge nimbus\ntable inet nimbus\ndelete table inet nimbus\n"

    static func mark(index: Int) -> String { "0x" + String(markBase + UInt32(index + 1), radix: 16) }

    // MARK: bridge table

    private static func bridgeTable(_ ports: [PortWiring]) -> [String] {
        var lines = ["table bridge nimbus {"]
        lines += ["  chain prerouting {", "    type filter hook prerouting priority -200; policy accept;"]
        if !ports.isEmpty {
            let map = ports.map { "\"\(DataplaneNames.tap(port: $0.id))\" : jump from-\(DataplaneNames.short($0.id))" }
            lines.append("    iifname vmap { \(map.joined(separator: ", ")) }")
        }
        lines += ["  }", "  chain forward {", "    type filter hook forward priority -200; policy accept;"]
        if !ports.isEmpty {
            let map = ports.enumerated().map { "\"\(DataplaneNames.tap(port: $1.id))\" : \(mark(index: $0))" }
            lines.append("    meta mark set oifname map { \(map.joined(separator: ", ")) }")
        }
        lines.append("  }")
        for port in ports { lines += antiSpoofChain(port) }
        lines.append("}")
        return lines
    }

    /// Frames from a VM must carry its MAC with one of its addresses, or an allowed pair's MAC
    /// with that pair's address (checked as pairs: a pair's address is not allowed from the port's
    /// own MAC unless the pair says so). DHCP discovery from 0.0.0.0, IPv6 link-local and DAD from
    /// :: are the exceptions. A VM may not act as a DHCP server or IPv6 router.
    private static func antiSpoofChain(_ port: PortWiring) -> [String] {
        let own = port.mac.lowercased()
        let allowed = port.fixedIPs.map { (mac: own, address: $0.address) }
            + port.allowedAddressPairs.map { (mac: $0.mac.lowercased(), address: $0.ipAddress) }
        let safe = allowed.filter { isSafe($0.mac) && isSafe($0.address) }
        let macs = unique([own] + port.allowedAddressPairs.map { $0.mac.lowercased() }).filter(isSafe)
        let v4 = unique(safe.filter { !$0.address.contains(":") }.map { "\($0.mac) . \($0.address)" })
        let v6 = unique(safe.filter { $0.address.contains(":") }.map { "\($0.mac) . \($0.address)" })
        var lines = ["  chain from-\(DataplaneNames.short(port.id)) {"]
        lines.append("    ether saddr != \(set(macs)) drop")
        lines.append("    ether type arp arp saddr ether != \(set(macs)) drop")
        lines.append("    ether type arp arp saddr ip 0.0.0.0 accept")
        lines.append(v4.isEmpty ? "    ether type arp drop" : "    ether type arp arp saddr ether . arp saddr ip != \(set(v4)) drop")
        lines.append("    ether type ip udp sport 67 drop")
        lines.append("    ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept")
        lines.append(v4.isEmpty ? "    ether type ip drop" : "    ether type ip ether saddr . ip saddr != \(set(v4)) drop")
        lines.append("    ether type ip6 icmpv6 type nd-router-advert drop")
        lines.append("    ether type ip6 udp sport 547 drop")
        lines.append("    ether type ip6 ip6 saddr { ::, fe80::/10 } accept")
        lines.append(v6.isEmpty ? "    ether type ip6 drop" : "    ether type ip6 ether saddr . ip6 saddr != \(set(v6)) drop")
        lines.append("  }")
        return lines
    }

    // MARK: inet table

    private static func inetTable(_ ports: [PortWiring]) -> [String] {
        var lines = ["table inet nimbus {"]
        // One conntrack zone per network (the bridge is the in-device here), as Neutron does:
        // tenants may reuse addresses, and a shared zone would let one tenant's flow pass as
        // "established" for another's. Must run before conntrack (priority raw).
        let bridges = Set(ports.map { DataplaneNames.bridge(network: $0.networkID) }).sorted()
        lines += ["  chain prerouting {", "    type filter hook prerouting priority raw; policy accept;"]
        if !bridges.isEmpty {
            let map = bridges.enumerated().map { "\"\($1)\" : \($0 + 1)" }
            lines.append("    ct zone set iifname map { \(map.joined(separator: ", ")) }")
        }
        lines += ["  }", "  chain forward {", "    type filter hook forward priority 0; policy accept;"]
        lines.append("    ct state established,related accept")
        // A MAC shared by several ports (an allowed pair) is keyed to the first: vmap keys are unique.
        var seen = Set<String>()
        var egress: [String] = []
        for port in ports {
            for mac in ([port.mac] + port.allowedAddressPairs.map(\.mac)).map({ $0.lowercased() }) where isSafe(mac) && seen.insert(mac).inserted {
                egress.append("\(mac) : jump egress-\(DataplaneNames.short(port.id))")
            }
        }
        if !egress.isEmpty { lines.append("    ether saddr vmap { \(egress.joined(separator: ", ")) }") }
        if !ports.isEmpty {
            let map = ports.enumerated().map { "\(mark(index: $0)) : jump ingress-\(DataplaneNames.short($1.id))" }
            lines.append("    meta mark vmap { \(map.joined(separator: ", ")) }")
        }
        lines.append("  }")
        for port in ports {
            let short = DataplaneNames.short(port.id)
            lines += ["  chain egress-\(short) {", "    ct state invalid drop", "    udp sport 68 udp dport 67 return",
                      "    icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } return"]
            lines += port.egress.compactMap { match($0, remote: "daddr") }.map { "    \($0) return" }
            lines += ["    drop", "  }"]
            lines += ["  chain ingress-\(short) {", "    ct state invalid drop", "    udp sport 67 udp dport 68 accept",
                      "    udp sport 547 udp dport 546 accept",
                      "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, mld-listener-query } accept"]
            lines += port.ingress.compactMap { match($0, remote: "saddr") }.map { "    \($0) accept" }
            lines += ["    drop", "  }"]
        }
        lines.append("}")
        return lines
    }

    /// The match part of one rule; nil when the rule holds something unsafe to render (it is then
    /// left out, which denies what it would have allowed).
    static func match(_ rule: FilterRule, remote direction: String) -> String? {
        let v6 = rule.ethertype.lowercased() == "ipv6"
        var parts = [v6 ? "meta nfproto ipv6" : "meta nfproto ipv4"]
        if let cidrs = rule.remoteCIDRs {
            guard !cidrs.isEmpty, cidrs.allSatisfy(isSafe) else { return nil }
            parts.append("\(v6 ? "ip6" : "ip") \(direction) \(set(cidrs))")
        }
        guard let proto = rule.ipProtocol?.lowercased() else { return parts.joined(separator: " ") }
        switch proto {
        case "tcp", "6", "udp", "17":
            let name = (proto == "tcp" || proto == "6") ? "tcp" : "udp"
            parts.append("meta l4proto \(name)")
            if let low = rule.portMin ?? rule.portMax {
                let high = rule.portMax ?? low
                parts.append(low == high ? "\(name) dport \(low)" : "\(name) dport \(low)-\(high)")
            }
        case "icmp", "1", "icmpv6", "58", "ipv6-icmp":
            let name = v6 ? "icmpv6" : "icmp"
            parts.append("meta l4proto \(v6 ? "ipv6-icmp" : "icmp")")
            if let type = rule.portMin { parts.append("\(name) type \(type)") }
            if let code = rule.portMax, rule.portMin != nil { parts.append("\(name) code \(code)") }
        default:
            guard let number = Int(proto), (0...255).contains(number) else { return nil }
            parts.append("meta l4proto \(number)")
        }
        return parts.joined(separator: " ")
    }

    private static func set(_ items: [String]) -> String { "{ " + items.joined(separator: ", ") + " }" }

    private static func unique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0).inserted }
    }

    /// Addresses, CIDRs and MACs only: nothing that could change the meaning of the ruleset.
    static func isSafe(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isHexDigit || $0 == "." || $0 == ":" || $0 == "/" }
    }
}
