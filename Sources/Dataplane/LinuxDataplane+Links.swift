import Foundation

/// Bridges, VXLAN devices and taps: planned against the observed links, applied in one `ip -batch`.
extension LinuxDataplane {
    func convergeLinks(_ state: HostNetworkState, links: [String: Link]) async throws {
        let networks = Dictionary(state.networks.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var desired = Set<String>()
        var batch: [String] = []
        var changedNetworks: [NetworkWiring] = []

        for network in networks.values {
            let bridge = DataplaneNames.bridge(network: network.id)
            desired.insert(bridge)
            if let link = links[bridge] {
                if link.mtu != network.mtu || !link.up { batch.append("link set \(bridge) mtu \(network.mtu) up") }
            } else {
                batch.append("link add \(bridge) mtu \(network.mtu) type bridge")
                batch.append("link set \(bridge) up")
            }
            let previous = appliedNetworks[network.id]
            let fresh = links[bridge] == nil || previous != network
            if fresh { changedNetworks.append(network) }
            if let vni = network.segmentationID, let tunnelAddress, !network.peers.isEmpty {
                let vxlan = DataplaneNames.vxlan(network: network.id)
                desired.insert(vxlan)
                let recreate = links[vxlan] != nil && previous != nil && previous?.segmentationID != network.segmentationID
                if recreate { batch.append("link del \(vxlan)") }
                if links[vxlan] == nil || recreate {
                    // No `remote`: several peers get head-end replication from all-zero fdb entries.
                    batch.append("link add \(vxlan) mtu \(network.mtu) type vxlan id \(vni) local \(tunnelAddress) dstport 4789")
                    batch.append("link set \(vxlan) master \(bridge) up")
                } else if let link = links[vxlan], link.master != bridge || !link.up || link.mtu != network.mtu {
                    batch.append("link set \(vxlan) mtu \(network.mtu) master \(bridge) up")
                }
            }
        }

        for port in state.ports {
            guard let network = networks[port.networkID] else { continue }
            let tap = DataplaneNames.tap(port: port.id), bridge = DataplaneNames.bridge(network: network.id)
            desired.insert(tap)
            if let link = links[tap] {
                // Whatever already holds the name (a tap QEMU opened, a test's veth) is used as is.
                if link.master != bridge || !link.up || link.mtu != network.mtu {
                    batch.append("link set \(tap) mtu \(network.mtu) master \(bridge) up")
                }
            } else {
                batch.append("tuntap add dev \(tap) mode tap")
                batch.append("link set \(tap) mtu \(network.mtu) master \(bridge) up")
            }
        }

        // DHCP and router veths are desired while their wiring is; their owners manage them.
        desired.formUnion(state.dhcp.map { DataplaneNames.dhcpVeth(network: $0.networkID) })
        for router in state.routers {
            desired.formUnion(router.interfaces.map { DataplaneNames.routerVeth(port: $0.portID) })
            if let gateway = router.gateway { desired.insert(DataplaneNames.routerVeth(port: gateway.portID)) }
        }
        let stale = links.keys.filter { name in
            DataplaneNames.interfacePrefixes.contains { name.hasPrefix($0) } && !desired.contains(name)
        }
        try await runner.ipBatch(stale.sorted().map { "link del \($0)" } + batch)

        for network in changedNetworks {
            try await convergeBridgeAddresses(network)
            try await convergeFloodList(network)
            appliedNetworks[network.id] = network
        }
        appliedNetworks = appliedNetworks.filter { networks[$0.key] != nil }
    }

    /// The host's own addresses on the bridge (e.g. the external network's gateway).
    private func convergeBridgeAddresses(_ network: NetworkWiring) async throws {
        let bridge = DataplaneNames.bridge(network: network.id)
        let current = try Self.parseAddresses(try await runner.ip(["-j", "addr", "show", "dev", bridge]))
        let desired = Set(network.hostAddresses)
        var batch = desired.subtracting(current).sorted().map { "addr replace \($0) dev \(bridge)" }
        batch += current.subtracting(desired).sorted().map { "addr del \($0) dev \(bridge)" }
        try await runner.ipBatch(batch)
    }

    /// Global-scope addresses in CIDR form from `ip -j addr show`.
    static func parseAddresses(_ json: String) throws -> Set<String> {
        guard let array = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else { return [] }
        var result = Set<String>()
        for item in array {
            for info in item["addr_info"] as? [[String: Any]] ?? [] where (info["scope"] as? String) == "global" {
                if let local = info["local"] as? String, let length = info["prefixlen"] as? Int { result.insert("\(local)/\(length)") }
            }
        }
        return result
    }

    /// One all-zero fdb entry per peer: broadcast and unknown unicast go to every peer, and the
    /// device learns where each remote MAC lives from what it receives.
    private func convergeFloodList(_ network: NetworkWiring) async throws {
        guard network.segmentationID != nil, tunnelAddress != nil, !network.peers.isEmpty else { return }
        let vxlan = DataplaneNames.vxlan(network: network.id)
        let shown = try await runner.host(["bridge", "fdb", "show", "dev", vxlan])
        var current = Set<String>()
        for line in shown.split(whereSeparator: \.isNewline) where line.hasPrefix("00:00:00:00:00:00 dst ") {
            current.insert(String(line.split(separator: " ")[2]))
        }
        let desired = Set(network.peers)
        for peer in desired.subtracting(current).sorted() {
            try await runner.host(["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", vxlan, "dst", peer])
        }
        for peer in current.subtracting(desired).sorted() {
            try await runner.host(["bridge", "fdb", "del", "00:00:00:00:00:00", "dev", vxlan, "dst", peer])
        }
    }
}
