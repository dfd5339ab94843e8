import Dataplane
import Foundation
import NimbusCore
import SQLKit
import Store

/// What agents see: their host's desired network state, derived from the records on each ask.
extension NetworkService: NetworkControlPlane {
    public func registerNetworkHost(host: String, tunnelAddress: String?, networkNode: Bool) async throws {
        let now = Self.now()
        try await write { db in
            if try await NetworkSchema.hosts.fetch(host, on: db) != nil {
                try await NetworkSchema.hosts.update(host, ["tunnel_address": .optional(tunnelAddress), "network_node": .bool(networkNode),
                                                           "updated_at": .string(now)], on: db)
            } else {
                try await NetworkSchema.hosts.insert(["host": .string(host), "tunnel_address": .optional(tunnelAddress),
                                                      "network_node": .bool(networkNode), "created_at": .string(now),
                                                      "updated_at": .string(now)], on: db)
            }
        }
    }

    public func hostNetworkState(host: String, after generation: Int64?, wait: Duration) async throws -> HostNetworkState {
        if let generation, generation >= signal.current { await signal.wait(after: generation, timeout: wait) }
        let current = signal.current
        let world = try await worlds.world(at: current) { try await self.database.read { try await self.loadWorld(on: $0) } }
        return Self.state(host: host, generation: current, world: world)
    }

    public func portsWired(host: String, ports: [String]) async throws {
        guard !ports.isEmpty else { return }
        try await write { db in
            try await db.update("net_ports").set("status", to: SQLBind("ACTIVE"))
                .where("id", .in, SQLBind.group(ports)).where("status", .notEqual, SQLBind("ACTIVE")).run()
        }
    }

    public func instance(network: String, address: String) async throws -> String? {
        try await database.read { db in
            guard let row = try await db.select().column("port_id").from("net_ip_allocations")
                .where("network_id", .equal, SQLBind(network)).where("ip_address", .equal, SQLBind(address)).first() else { return nil }
            let port = try await NetworkSchema.ports.fetch(try row.decode(column: "port_id", as: String.self), on: db)
            guard let device = port?.string("device_id"), !device.isEmpty else { return nil }
            return device
        }
    }

    /// Everything the state is derived from, read once.
    struct World: Sendable {
        var networks: [String: Record] = [:]
        var subnets: [String: Record] = [:]
        var ports: [Record] = []
        var hosts: [Record] = []
        var rules: [String: [Record]] = [:]
        var members: [String: [String]] = [:]
        var routers: [Record] = []
        var floatingIPs: [Record] = []
    }

    func loadWorld(on db: any SQLDatabase) async throws -> World {
        var world = World()
        for network in try await NetworkSchema.networks.list(on: db) { world.networks[network.string("id") ?? ""] = network }
        for subnet in try await NetworkSchema.subnets.list(on: db) { world.subnets[subnet.string("id") ?? ""] = subnet }
        world.ports = try await NetworkSchema.ports.list(on: db)
        world.hosts = try await NetworkSchema.hosts.list(on: db)
        world.rules = Dictionary(grouping: try await NetworkSchema.rules.list(on: db)) { $0.string("security_group_id") ?? "" }
        for row in try await db.select().columns("port_id", "security_group_id").from("net_port_security_groups").all() {
            world.members[try row.decode(column: "security_group_id", as: String.self), default: []]
                .append(try row.decode(column: "port_id", as: String.self))
        }
        world.routers = try await NetworkSchema.routers.list(on: db)
        world.floatingIPs = try await NetworkSchema.floatingIPs.list(on: db)
        return world
    }

    /// The pure derivation: which networks and ports the host carries, and for the network node
    /// the DHCP servers and routers too.
    static func state(host: String, generation: Int64, world: World) -> HostNetworkState {
        let isNetworkNode = world.hosts.first { $0.string("host") == host }?["network_node"] == true
        let computePorts = world.ports.filter { ($0.string("device_owner") ?? "").hasPrefix("compute:") && !($0.string("host_id") ?? "").isEmpty }
        let servicePorts = world.ports.filter { ["network:dhcp", "network:router_interface", "network:router_gateway"].contains($0.string("device_owner") ?? "") }
        let serviceNetworks = Set(servicePorts.compactMap { $0.string("network_id") })
        /// Which hosts carry each network: those with bound VM ports, and the network node for service networks.
        var carriers: [String: Set<String>] = [:]
        for port in computePorts { carriers[port.string("network_id") ?? "", default: []].insert(port.string("host_id") ?? "") }
        let nodes = world.hosts.filter { $0["network_node"] == true }.compactMap { $0.string("host") }
        for network in serviceNetworks { carriers[network, default: []].formUnion(nodes) }
        var carried = Set(carriers.filter { $0.value.contains(host) }.keys)
        if isNetworkNode {
            carried.formUnion(world.networks.values.filter { $0["router_external"] == true }.compactMap { $0.string("id") })
        }
        let tunnels = Dictionary(world.hosts.compactMap { h in h.string("tunnel_address").map { (h.string("host") ?? "", $0) } }) { a, _ in a }
        let networks: [NetworkWiring] = carried.sorted().compactMap { id in
            guard let network = world.networks[id] else { return nil }
            let type = network.string("network_type") ?? "vxlan"
            let peers = type == "vxlan" ? (carriers[id] ?? []).subtracting([host]).compactMap { tunnels[$0] }.sorted() : []
            var addresses: [String] = []
            if isNetworkNode && network["router_external"] == true {
                addresses = world.subnets.values.filter { $0.string("network_id") == id }.compactMap { subnet in
                    guard let gateway = subnet.string("gateway_ip"), let cidr = CIDR(subnet.string("cidr") ?? "") else { return nil }
                    return "\(gateway)/\(cidr.prefix)"
                }.sorted()
            }
            return NetworkWiring(id: id, networkType: type, segmentationID: network["segmentation_id"]?.intValue.map(Int.init),
                                 mtu: Int(network["mtu"]?.intValue ?? 1500), peers: peers, hostAddresses: addresses)
        }
        let ports = computePorts.filter { $0.string("host_id") == host }.map { portWiring($0, world: world) }
        guard isNetworkNode else { return HostNetworkState(generation: generation, networks: networks, ports: ports) }
        return HostNetworkState(generation: generation, networks: networks, ports: ports,
                                dhcp: dhcpWirings(world), routers: routerWirings(world))
    }

    static func addresses(_ port: Record, world: World) -> [FixedAddress] {
        (port["fixed_ips"]?.fixedIPs ?? []).compactMap { entry in
            guard let subnet = world.subnets[entry.subnet], let cidr = CIDR(subnet.string("cidr") ?? "") else { return nil }
            return FixedAddress(address: entry.address, prefixLength: cidr.prefix, subnetID: entry.subnet, version: cidr.version,
                                ipv6Mode: SubnetLayout.ipv6Mode(subnet))
        }
    }

    static func portWiring(_ port: Record, world: World) -> PortWiring {
        let security = port["port_security_enabled"] != false
        var ingress: [FilterRule] = []
        var egress: [FilterRule] = []
        if security {
            for group in port["security_groups"]?.strings ?? [] {
                for rule in world.rules[group] ?? [] {
                    guard let filter = filterRule(rule, world: world) else { continue }
                    if rule.string("direction") == "ingress" { ingress.append(filter) } else { egress.append(filter) }
                }
            }
        }
        let mac = port.string("mac_address") ?? ""
        let pairs = (port["allowed_address_pairs"]?.arrayValue ?? []).compactMap { pair in
            pair["ip_address"]?.stringValue.map { AddressPair(ipAddress: $0, mac: pair["mac_address"]?.stringValue ?? mac) }
        }
        return PortWiring(id: port.string("id") ?? "", networkID: port.string("network_id") ?? "", mac: mac,
                          fixedIPs: addresses(port, world: world), deviceID: port.string("device_id") ?? "", portSecurity: security,
                          allowedAddressPairs: pairs, ingress: ingress, egress: egress)
    }

    /// A rule with its remote resolved: a remote group becomes its member ports' addresses of the
    /// rule's ethertype (nil when the rule cannot match anything is still an empty list, not "any").
    static func filterRule(_ rule: Record, world: World) -> FilterRule? {
        let ethertype = rule.string("ethertype") ?? "IPv4"
        var remotes: [String]?
        if let prefix = rule.string("remote_ip_prefix") {
            remotes = [prefix]
        } else if let group = rule.string("remote_group_id") {
            let members = Set(world.members[group] ?? [])
            let version = ethertype == "IPv4" ? 4 : 6
            remotes = world.ports.filter { members.contains($0.string("id") ?? "") }
                .flatMap { $0["fixed_ips"]?.fixedIPs.map(\.address) ?? [] }
                .compactMap(IPAddress.init).filter { $0.version == version }
                .map { "\($0)/\(version == 4 ? 32 : 128)" }.sorted()
        }
        return FilterRule(ethertype: ethertype, ipProtocol: rule.string("protocol"),
                          portMin: rule["port_range_min"]?.intValue.map(Int.init), portMax: rule["port_range_max"]?.intValue.map(Int.init),
                          remoteCIDRs: remotes)
    }

    static func dhcpWirings(_ world: World) -> [DHCPWiring] {
        world.ports.filter { $0.string("device_owner") == "network:dhcp" }.compactMap { port in
            let networkID = port.string("network_id") ?? ""
            guard let network = world.networks[networkID] else { return nil }
            let subnets = world.subnets.values.filter { $0.string("network_id") == networkID && $0["enable_dhcp"] == true }
                .sorted { ($0.string("id") ?? "") < ($1.string("id") ?? "") }
                .map { subnet in
                    DHCPSubnet(id: subnet.string("id") ?? "", cidr: subnet.string("cidr") ?? "", version: Int(subnet["ip_version"]?.intValue ?? 4),
                               gateway: subnet.string("gateway_ip"), dnsServers: subnet["dns_nameservers"]?.strings ?? [],
                               hostRoutes: (subnet["host_routes"]?.arrayValue ?? []).compactMap { route in
                                   guard let destination = route["destination"]?.stringValue, let hop = route["nexthop"]?.stringValue else { return nil }
                                   return HostRoute(destination: destination, nexthop: hop)
                               }, ipv6Mode: SubnetLayout.ipv6Mode(subnet))
                }
            let served = Set(subnets.map(\.id))
            let hosts = world.ports.filter { $0.string("network_id") == networkID && ($0.string("device_owner") ?? "").hasPrefix("compute:") }
                .flatMap { vm in
                    (vm["fixed_ips"]?.fixedIPs ?? []).filter { served.contains($0.subnet) }.map { entry in
                        let name = vm.string("dns_name").flatMap { $0.isEmpty ? nil : $0 }
                            ?? "host-" + entry.address.replacingOccurrences(of: ".", with: "-").replacingOccurrences(of: ":", with: "-")
                        return DHCPHost(mac: vm.string("mac_address") ?? "", address: entry.address, hostname: name)
                    }
                }.sorted { $0.address < $1.address }
            return DHCPWiring(networkID: networkID, portID: port.string("id") ?? "", mac: port.string("mac_address") ?? "",
                              addresses: addresses(port, world: world), mtu: Int(network["mtu"]?.intValue ?? 1500), subnets: subnets, hosts: hosts)
        }.sorted { $0.networkID < $1.networkID }
    }

    static func routerWirings(_ world: World) -> [RouterWiring] {
        world.routers.map { router in
            let id = router.string("id") ?? ""
            var gateway: RouterGateway?
            if let portID = router.string("gw_port_id"), let port = world.ports.first(where: { $0.string("id") == portID }) {
                let addresses = addresses(port, world: world)
                let nextHop = addresses.lazy.compactMap { world.subnets[$0.subnetID]?.string("gateway_ip") }.first
                gateway = RouterGateway(portID: portID, networkID: port.string("network_id") ?? "", mac: port.string("mac_address") ?? "",
                                        addresses: addresses, nextHop: nextHop, snat: router["enable_snat"] != false)
            }
            let interfaces = world.ports.filter { $0.string("device_id") == id && $0.string("device_owner") == "network:router_interface" }
                .map { RouterInterface(portID: $0.string("id") ?? "", networkID: $0.string("network_id") ?? "", mac: $0.string("mac_address") ?? "",
                                       addresses: addresses($0, world: world)) }
                .sorted { $0.portID < $1.portID }
            let floating = world.floatingIPs.filter { $0.string("router_id") == id && $0.string("fixed_ip_address") != nil }
                .map { FloatingIPWiring(id: $0.string("id") ?? "", floatingAddress: $0.string("floating_ip_address") ?? "",
                                        fixedAddress: $0.string("fixed_ip_address") ?? "") }
                .sorted { $0.id < $1.id }
            return RouterWiring(id: id, gateway: gateway, interfaces: interfaces, floatingIPs: floating)
        }.sorted { $0.id < $1.id }
    }

    /// Registered hosts as Neutron agents (`GET /v2.0/agents`).
    public func agents(caller: AuthContext) async throws -> [Record] {
        try Self.requireAdmin(caller, "get_agent")
        return try await database.read { db in
            try await NetworkSchema.hosts.list(on: db).flatMap { host -> [Record] in
                let name = host.string("host") ?? ""
                var kinds = [("Linux bridge agent", "neutron-linuxbridge-agent", "N/A")]
                if host["network_node"] == true {
                    kinds += [("DHCP agent", "neutron-dhcp-agent", "dhcp_agent"), ("L3 agent", "neutron-l3-agent", "l3_agent")]
                }
                return kinds.map { kind in
                    ["id": .string(Self.agentID(name, kind.1)), "agent_type": .string(kind.0), "binary": .string(kind.1), "host": .string(name),
                     "topic": .string(kind.2), "alive": true, "admin_state_up": true, "availability_zone": kind.2 == "N/A" ? .null : "nova",
                     "created_at": host["created_at"] ?? .null, "started_at": host["created_at"] ?? .null,
                     "heartbeat_timestamp": host["updated_at"] ?? .null, "configurations": ["tunneling_ip": host["tunnel_address"] ?? .null],
                     "description": .null, "resources_synced": .null]
                }
            }
        }
    }

    /// A stable id per (host, binary), so listings agree across calls.
    static func agentID(_ host: String, _ binary: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (host + "/" + binary).utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let hex = String(format: "%016llx", hash)
        return "\(hex.prefix(8))-\(hex.dropFirst(8).prefix(4))-4\(hex.dropFirst(13).prefix(3))-8\(hex.prefix(3))-\(hex.suffix(12))"
    }
}
