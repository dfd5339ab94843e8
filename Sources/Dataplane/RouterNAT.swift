/// The NAT of one router namespace as one nftables transaction (replaces the table atomically).
///
/// Floating IPs: DNAT floating→fixed on the way in; SNAT fixed→floating on the way out, placed
/// before the router-wide SNAT so a VM with a floating IP is always seen as that address; and
/// inside traffic to a floating IP is masqueraded to the router (hairpin).
enum RouterNAT {
    static func gatewayInterface(_ gateway: RouterGateway) -> String { "qg-" + DataplaneNames.short(gateway.portID) }
    static func interface(_ port: RouterInterface) -> String { "qr-" + DataplaneNames.short(port.portID) }

    static func render(_ router: RouterWiring) -> String {
        var lines = ["table ip nimbus", "delete table ip nimbus", "table ip nimbus {"]
        let floating = router.floatingIPs.filter { FilterRuleset.isSafe($0.floatingAddress) && FilterRuleset.isSafe($0.fixedAddress) }
        lines += ["  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;"]
        lines += floating.map { "    ip daddr \($0.floatingAddress) dnat to \($0.fixedAddress)" }
        lines += ["  }", "  chain output {", "    type nat hook output priority -100; policy accept;"]
        lines += floating.map { "    ip daddr \($0.floatingAddress) dnat to \($0.fixedAddress)" }
        lines += ["  }", "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;"]
        if let gateway = router.gateway {
            let qg = gatewayInterface(gateway)
            lines += floating.map { "    oifname \"\(qg)\" ip saddr \($0.fixedAddress) snat to \($0.floatingAddress)" }
            // Hairpin: a VM that reaches a floating IP from inside is DNATed to a neighbour that
            // would answer it directly, past the reverse translation. Seen as coming from the
            // router, the answer returns through it (Neutron SNATs this traffic as well).
            lines.append("    iifname != \"\(qg)\" oifname != \"\(qg)\" ct status dnat masquerade")
            if gateway.snat, let address = gateway.addresses.first(where: { $0.version == 4 })?.address, FilterRuleset.isSafe(address) {
                lines.append("    oifname \"\(qg)\" snat to \(address)")
            }
        }
        lines += ["  }", "}"]
        return lines.joined(separator: "\n") + "\n"
    }
}
