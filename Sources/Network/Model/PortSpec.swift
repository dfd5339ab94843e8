import NimbusCore

/// Everything needed to create one port, whoever asks (the API, Compute, a router, a subnet's DHCP).
struct PortSpec: Sendable {
    enum FixedIP: Sendable, Equatable {
        /// Any free address of this subnet.
        case subnet(String)
        /// This address, on the given subnet or whichever subnet of the network contains it.
        case address(String, subnet: String?)
    }

    var id = Identifier.uuid()
    var project: String
    var networkID: String
    var name = ""
    var description = ""
    var mac: String?
    var deviceID = ""
    var deviceOwner = ""
    var hostID = ""
    var adminStateUp = true
    /// nil: the network's setting.
    var portSecurity: Bool?
    /// nil: the project's default group (when port security is on and the port is not the network's own).
    var securityGroups: [String]?
    var addressPairs: [JSONValue] = []
    /// nil: one address from the network's first IPv4 subnet and one from its first IPv6 subnet.
    var fixedIPs: [FixedIP]?
    var dnsName = ""
    var createdForInstance = false
    var tags: [String] = []

    init(project: String, networkID: String) {
        self.project = project
        self.networkID = networkID
    }

    /// Ports the network itself owns (DHCP, routers, floating IPs) get no security groups.
    var isNetworkOwned: Bool { deviceOwner.hasPrefix("network:") }
}
