import Foundation

/// Routers: a namespace per router with a `qr-` leg on each attached network, a `qg-` leg on the
/// external one, forwarding on, a default route via the external gateway, NAT (`RouterNAT`), and
/// router advertisements on legs with IPv6 subnets in a mode (a dnsmasq inside; IPv6 is routed, not NATed).
extension LinuxDataplane {
    func routerDirectory(_ router: String) -> URL {
        stateDirectory.appendingPathComponent("router").appendingPathComponent(router)
    }

    func convergeRouters(_ routers: [RouterWiring], links: [String: Link]) async throws {
        let namespaces = namedNamespaces()
        for router in routers {
            let namespace = DataplaneNames.routerNamespace(router: router.id)
            var legs = router.interfaces.map { ($0.portID, $0.networkID, RouterNAT.interface($0), $0.mac, $0.addresses.map(Self.cidr)) }
            if let gateway = router.gateway {
                let floating = router.floatingIPs.map { "\($0.floatingAddress)/32" }
                legs.append((gateway.portID, gateway.networkID, RouterNAT.gatewayInterface(gateway), gateway.mac,
                             gateway.addresses.map(Self.cidr) + floating))
            }
            let allPlugged = legs.allSatisfy { links[DataplaneNames.routerVeth(port: $0.0)] != nil }
            let directory = routerDirectory(router.id)
            let advertisements = DnsmasqConfig(routerAdvertisementsFor: router, directory: directory.path)
            let advertiser = Self.dnsmasqPID(directory: directory)
            if appliedRouters[router.id] == router, namespaces.contains(namespace), allPlugged,
               advertisements == nil || advertiser != nil { continue }

            try await ensureNamespace(namespace)
            try await CommandRunner.run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w",
                                         "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
            // Legs of interfaces no longer attached: deleting the inside end removes the pair.
            let inside = try Self.parseLinks(try await CommandRunner.run(["ip", "-n", namespace, "-j", "link", "show"]))
            let wanted = Set(legs.map(\.2))
            for name in inside.keys where (name.hasPrefix("qr-") || name.hasPrefix("qg-")) && !wanted.contains(name) {
                try await CommandRunner.run(["ip", "-n", namespace, "link", "del", name])
            }
            for (port, network, name, mac, addresses) in legs {
                try await plugVeth(DataplaneNames.routerVeth(port: port), network: network,
                                   mtu: appliedNetworks[network]?.mtu ?? 1500, links: links, namespace: namespace,
                                   inside: name, mac: mac, addresses: addresses)
            }
            if let nextHop = router.gateway?.nextHop {
                try await CommandRunner.run(["ip", "-n", namespace, "route", "replace", "default", "via", nextHop])
            } else {
                _ = try? await CommandRunner.run(["ip", "-n", namespace, "route", "del", "default"])
            }
            try await CommandRunner.run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input: RouterNAT.render(router))
            if let advertisements {
                try await runDnsmasq(advertisements, namespace: namespace, directory: directory, running: advertiser)
            } else {
                if let advertiser { await Self.terminate(advertiser) }
                try? FileManager.default.removeItem(at: directory)
            }
            appliedRouters[router.id] = router
        }
    }

    static func cidr(_ address: FixedAddress) -> String { "\(address.address)/\(address.prefixLength)" }
}
