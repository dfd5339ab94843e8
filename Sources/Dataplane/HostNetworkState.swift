/// What one host's network dataplane must look like, as the Network service derives it from its
/// records (networks, ports bound to the host, security groups, routers, floating IPs). The agent
/// converges the host to it; every name on the host derives from the ids here (`DataplaneNames`).
///
/// A compute host gets the networks of its ports and those ports; the network node (the host
/// that runs DHCP and routers, as Neutron's network node) also gets `dhcp` and `routers`.
public struct HostNetworkState: Sendable, Equatable, Codable {
    /// Changes whenever anything in the state may have changed; a long poll waits for a newer one.
    public var generation: Int64
    public var networks: [NetworkWiring]
    public var ports: [PortWiring]
    public var dhcp: [DHCPWiring]
    public var routers: [RouterWiring]

    public init(generation: Int64, networks: [NetworkWiring] = [], ports: [PortWiring] = [], dhcp: [DHCPWiring] = [],
                routers: [RouterWiring] = []) {
        self.generation = generation
        self.networks = networks
        self.ports = ports
        self.dhcp = dhcp
        self.routers = routers
    }
}

/// One L2 segment on the host: a Linux bridge, plus a VXLAN device when other hosts share it.
public struct NetworkWiring: Sendable, Equatable, Codable {
    public var id: String
    /// `vxlan` or `flat` (a flat network is local to the host; the external network is one).
    public var networkType: String
    /// The VXLAN network identifier (`provider:segmentation_id`); nil for flat.
    public var segmentationID: Int?
    public var mtu: Int
    /// Tunnel (underlay) addresses of the other hosts that carry this network.
    public var peers: [String]
    /// Addresses the host itself holds on the bridge, in CIDR form (the `public` network's
    /// gateway on the network node: the host is the outside world, as DevStack's br-ex).
    public var hostAddresses: [String]

    public init(id: String, networkType: String, segmentationID: Int?, mtu: Int, peers: [String] = [], hostAddresses: [String] = []) {
        self.id = id
        self.networkType = networkType
        self.segmentationID = segmentationID
        self.mtu = mtu
        self.peers = peers
        self.hostAddresses = hostAddresses
    }
}

public struct FixedAddress: Sendable, Equatable, Codable {
    public var address: String
    public var prefixLength: Int
    public var subnetID: String
    /// 4 or 6.
    public var version: Int
    /// The subnet's IPv6 mode (address mode, else RA mode), as in `DHCPSubnet`.
    public var ipv6Mode: String?

    public init(address: String, prefixLength: Int, subnetID: String, version: Int, ipv6Mode: String? = nil) {
        self.ipv6Mode = ipv6Mode
        self.address = address
        self.prefixLength = prefixLength
        self.subnetID = subnetID
        self.version = version
    }
}

/// A VM's port on this host: a tap on the network's bridge, and its security-group filter.
public struct PortWiring: Sendable, Equatable, Codable {
    public var id: String
    public var networkID: String
    public var mac: String
    public var fixedIPs: [FixedAddress]
    /// The instance the port belongs to.
    public var deviceID: String
    /// Off: no filter and no anti-spoofing at all (Neutron's `port_security_enabled=false`).
    public var portSecurity: Bool
    /// Extra (ip or CIDR, mac) pairs the port may send from.
    public var allowedAddressPairs: [AddressPair]
    /// Traffic allowed to reach the VM; everything else inbound is dropped (replies to the VM's own
    /// connections pass: the filter is stateful).
    public var ingress: [FilterRule]
    /// Traffic the VM may send (after anti-spoofing).
    public var egress: [FilterRule]

    public init(id: String, networkID: String, mac: String, fixedIPs: [FixedAddress], deviceID: String, portSecurity: Bool = true,
                allowedAddressPairs: [AddressPair] = [], ingress: [FilterRule] = [], egress: [FilterRule] = []) {
        self.id = id
        self.networkID = networkID
        self.mac = mac
        self.fixedIPs = fixedIPs
        self.deviceID = deviceID
        self.portSecurity = portSecurity
        self.allowedAddressPairs = allowedAddressPairs
        self.ingress = ingress
        self.egress = egress
    }
}

public struct AddressPair: Sendable, Equatable, Codable {
    public var ipAddress: String
    public var mac: String

    public init(ipAddress: String, mac: String) {
        self.ipAddress = ipAddress
        self.mac = mac
    }
}

/// One security-group rule resolved for the dataplane: remote groups are already expanded to
/// their members' addresses.
public struct FilterRule: Sendable, Equatable, Codable {
    /// `IPv4` or `IPv6`.
    public var ethertype: String
    /// `tcp`, `udp`, `icmp`, `icmpv6`, or an IP protocol number as text; nil for any.
    public var ipProtocol: String?
    /// For tcp/udp: the port range; for icmp: min is the type and max the code (either may be nil).
    public var portMin: Int?
    public var portMax: Int?
    /// Remote peers in CIDR form; nil for any address.
    public var remoteCIDRs: [String]?

    public init(ethertype: String, ipProtocol: String? = nil, portMin: Int? = nil, portMax: Int? = nil, remoteCIDRs: [String]? = nil) {
        self.ethertype = ethertype
        self.ipProtocol = ipProtocol
        self.portMin = portMin
        self.portMax = portMax
        self.remoteCIDRs = remoteCIDRs
    }
}

/// DHCP (and the metadata service) for one network, in its own namespace on the network node.
public struct DHCPWiring: Sendable, Equatable, Codable {
    public var networkID: String
    /// The network's DHCP port (`device_owner=network:dhcp`): dnsmasq's address on the network.
    public var portID: String
    public var mac: String
    public var addresses: [FixedAddress]
    public var mtu: Int
    public var subnets: [DHCPSubnet]
    public var hosts: [DHCPHost]

    public init(networkID: String, portID: String, mac: String, addresses: [FixedAddress], mtu: Int, subnets: [DHCPSubnet], hosts: [DHCPHost]) {
        self.networkID = networkID
        self.portID = portID
        self.mac = mac
        self.addresses = addresses
        self.mtu = mtu
        self.subnets = subnets
        self.hosts = hosts
    }
}

public struct DHCPSubnet: Sendable, Equatable, Codable {
    public var id: String
    public var cidr: String
    public var version: Int
    public var gateway: String?
    public var dnsServers: [String]
    /// (destination CIDR, next hop) pairs pushed as classless static routes.
    public var hostRoutes: [HostRoute]
    /// IPv6 only: `slaac`, `dhcpv6-stateful` or `dhcpv6-stateless` (the address mode, else the RA
    /// mode); nil leaves the subnet to a router outside Nimbus, as Neutron does.
    public var ipv6Mode: String?

    public init(id: String, cidr: String, version: Int, gateway: String?, dnsServers: [String] = [], hostRoutes: [HostRoute] = [],
                ipv6Mode: String? = nil) {
        self.ipv6Mode = ipv6Mode
        self.id = id
        self.cidr = cidr
        self.version = version
        self.gateway = gateway
        self.dnsServers = dnsServers
        self.hostRoutes = hostRoutes
    }
}

public struct HostRoute: Sendable, Equatable, Codable {
    public var destination: String
    public var nexthop: String

    public init(destination: String, nexthop: String) {
        self.destination = destination
        self.nexthop = nexthop
    }
}

/// One static lease: Neutron's dnsmasq hosts line `MAC,IP,NAME`.
public struct DHCPHost: Sendable, Equatable, Codable {
    public var mac: String
    public var address: String
    public var hostname: String

    public init(mac: String, address: String, hostname: String) {
        self.mac = mac
        self.address = address
        self.hostname = hostname
    }
}

/// A router, in its own namespace on the network node: an interface per attached subnet,
/// a gateway on the external network, SNAT for the rest and DNAT for floating IPs.
public struct RouterWiring: Sendable, Equatable, Codable {
    public var id: String
    public var gateway: RouterGateway?
    public var interfaces: [RouterInterface]
    public var floatingIPs: [FloatingIPWiring]

    public init(id: String, gateway: RouterGateway?, interfaces: [RouterInterface], floatingIPs: [FloatingIPWiring] = []) {
        self.id = id
        self.gateway = gateway
        self.interfaces = interfaces
        self.floatingIPs = floatingIPs
    }
}

public struct RouterGateway: Sendable, Equatable, Codable {
    public var portID: String
    public var networkID: String
    public var mac: String
    public var addresses: [FixedAddress]
    /// The external subnet's gateway: the router's default route.
    public var nextHop: String?
    public var snat: Bool

    public init(portID: String, networkID: String, mac: String, addresses: [FixedAddress], nextHop: String?, snat: Bool = true) {
        self.portID = portID
        self.networkID = networkID
        self.mac = mac
        self.addresses = addresses
        self.nextHop = nextHop
        self.snat = snat
    }
}

public struct RouterInterface: Sendable, Equatable, Codable {
    public var portID: String
    public var networkID: String
    public var mac: String
    public var addresses: [FixedAddress]

    public init(portID: String, networkID: String, mac: String, addresses: [FixedAddress]) {
        self.portID = portID
        self.networkID = networkID
        self.mac = mac
        self.addresses = addresses
    }
}

public struct FloatingIPWiring: Sendable, Equatable, Codable {
    public var id: String
    public var floatingAddress: String
    public var fixedAddress: String

    public init(id: String, floatingAddress: String, fixedAddress: String) {
        self.id = id
        self.floatingAddress = floatingAddress
        self.fixedAddress = fixedAddress
    }
}

/// The Network service as a host's agent sees it (in-process: `NetworkService`; split: the
/// internal API). Agents never touch the database.
public protocol NetworkControlPlane: Sendable {
    /// Records the host's L2 agent: its VXLAN underlay address and whether it is the network node.
    func registerNetworkHost(host: String, tunnelAddress: String?, networkNode: Bool) async throws
    /// The host's desired network state; waits up to `wait` for one newer than `after`.
    func hostNetworkState(host: String, after generation: Int64?, wait: Duration) async throws -> HostNetworkState
    /// The host wired these ports (they become ACTIVE).
    func portsWired(host: String, ports: [String]) async throws
    /// The instance (port `device_id`) behind `address` on `network`, for the metadata service.
    func instance(network: String, address: String) async throws -> String?
}
