/// Every device and namespace the dataplane creates is named from an id, so that all of it can
/// be found (and what no longer belongs removed) after a crash. Linux interface names hold at most
/// 15 characters: a 4-character kind prefix plus the id's first 11 hex digits.
public enum DataplaneNames {
    static func short(_ id: String) -> String {
        String(id.lowercased().filter { $0 != "-" }.prefix(11))
    }

    /// The Linux bridge of a network.
    public static func bridge(network: String) -> String { "nbr-" + short(network) }
    /// The VXLAN device of a network, a port of its bridge.
    public static func vxlan(network: String) -> String { "nvx-" + short(network) }
    /// The tap of a VM's port (QEMU opens it; the agent creates it and puts it on the bridge).
    public static func tap(port: String) -> String { "ntp-" + short(port) }
    /// DHCP namespace of a network, and the bridge side of the veth into it.
    public static func dhcpNamespace(network: String) -> String { "nimbus-dhcp-" + network }
    public static func dhcpVeth(network: String) -> String { "ndh-" + short(network) }
    /// Router namespace, and the bridge side of the veth of each router port (interface or gateway).
    public static func routerNamespace(router: String) -> String { "nimbus-router-" + router }
    public static func routerVeth(port: String) -> String { "nrp-" + short(port) }

    /// Prefixes of everything above, for finding leftovers.
    public static let interfacePrefixes = ["nbr-", "nvx-", "ntp-", "ndh-", "nrp-"]
    public static let namespacePrefixes = ["nimbus-dhcp-", "nimbus-router-"]
}
