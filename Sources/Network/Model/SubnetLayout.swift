import NimbusCore
import Store

/// A subnet's addressing, parsed once from its row: what IPAM and validation work with.
struct SubnetLayout: Sendable {
    let id: String
    let networkID: String
    let cidr: CIDR
    let gateway: IPAddress?
    let pools: [IPRange]
    let enableDHCP: Bool
    /// `ipv6_address_mode`, else `ipv6_ra_mode` (Neutron's `is_auto_address_subnet` reads both):
    /// slaac and dhcpv6-stateless subnets address ports by EUI-64.
    let addressMode: String?

    init(_ record: RecordTable.Record) {
        id = record.string("id") ?? ""
        networkID = record.string("network_id") ?? ""
        cidr = CIDR(record.string("cidr") ?? "") ?? CIDR(network: IPAddress(version: 4, low: 0), prefix: 32)
        gateway = record.string("gateway_ip").flatMap(IPAddress.init)
        pools = (record["allocation_pools"]?.arrayValue ?? []).compactMap { pool in
            guard let start = pool["start"]?.stringValue.flatMap(IPAddress.init),
                  let end = pool["end"]?.stringValue.flatMap(IPAddress.init) else { return nil }
            return IPRange(start: start, end: end)
        }
        enableDHCP = record["enable_dhcp"]?.boolValue ?? false
        addressMode = Self.ipv6Mode(record)
    }

    /// A subnet row's IPv6 mode: `ipv6_address_mode`, else `ipv6_ra_mode`.
    static func ipv6Mode(_ record: RecordTable.Record) -> String? {
        record.string("ipv6_address_mode") ?? record.string("ipv6_ra_mode")
    }

    /// Ports get the address SLAAC gives them (prefix + EUI-64 of the MAC), as Neutron assigns it.
    var isAutoAddressed: Bool { cidr.version == 6 && Self.autoAddressModes.contains(addressMode ?? "") }
    static let autoAddressModes: Set<String> = ["slaac", "dhcpv6-stateless"]

    /// The SLAAC address of `mac` on this /64: the MAC with the universal/local bit flipped and
    /// ff:fe in the middle (RFC 4291 appendix A), as the guest's kernel forms it.
    func slaacAddress(mac: String) -> IPAddress? {
        let bytes = mac.split(separator: ":").compactMap { UInt8($0, radix: 16) }
        guard cidr.version == 6, bytes.count == 6 else { return nil }
        let interface = [bytes[0] ^ 0x02, bytes[1], bytes[2], 0xff, 0xfe, bytes[3], bytes[4], bytes[5]]
        return IPAddress(version: 6, high: cidr.first.high, low: interface.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    /// Whether a port may hold `address`: inside the CIDR, and for IPv4 neither the network
    /// nor the broadcast address (Neutron refuses both).
    func accepts(_ address: IPAddress) -> Bool {
        guard cidr.contains(address) else { return false }
        if cidr.version == 4 && cidr.prefix < 31 { return address != cidr.first && address != cidr.last }
        return true
    }

    var poolSize: UInt64 { pools.reduce(0) { $0.addingReportingOverflow($1.count).overflow ? .max : $0 + $1.count } }

    /// The address at `offset` when the pools are laid end to end (wrapping).
    func poolAddress(at offset: UInt64) -> IPAddress? {
        let total = poolSize
        guard total > 0 else { return nil }
        var rest = offset % total
        for pool in pools {
            if rest < pool.count { return pool.start.advanced(by: rest) }
            rest -= pool.count
        }
        return nil
    }

    /// Neutron's default pools: the whole CIDR minus the gateway, and for IPv4 minus the network
    /// and broadcast addresses; the gateway splits the range in two when it sits inside.
    static func defaultPools(_ cidr: CIDR, gateway: IPAddress?) -> [IPRange] {
        var first = cidr.first
        var last = cidr.last
        if cidr.version == 4 && cidr.prefix < 31 {
            first = first.advanced(by: 1)
            last = last.predecessor()
        } else if cidr.version == 6 {
            // The subnet-router anycast address (the network address) is never handed out.
            first = first.advanced(by: 1)
        }
        guard first <= last else { return [] }
        guard let gateway, gateway >= first, gateway <= last else { return [IPRange(start: first, end: last)] }
        var pools: [IPRange] = []
        if gateway > first { pools.append(IPRange(start: first, end: gateway.predecessor())) }
        if gateway < last { pools.append(IPRange(start: gateway.advanced(by: 1), end: last)) }
        return pools
    }
}

extension JSONValue {
    /// `fixed_ips` entries of a port row, as (subnet, address) pairs.
    var fixedIPs: [(subnet: String, address: String)] {
        (arrayValue ?? []).compactMap { entry in
            guard let subnet = entry["subnet_id"]?.stringValue, let address = entry["ip_address"]?.stringValue else { return nil }
            return (subnet, address)
        }
    }

    var strings: [String] { (arrayValue ?? []).compactMap(\.stringValue) }
}
