import Foundation
import NimbusCore
import SQLKit
import Store

extension NetworkService {
    static let subnetFields: Set<String> = [
        "name", "description", "network_id", "ip_version", "cidr", "gateway_ip", "allocation_pools", "dns_nameservers",
        "host_routes", "enable_dhcp", "ipv6_ra_mode", "ipv6_address_mode", "project_id", "tenant_id", "tags",
        "service_types", "subnetpool_id", "prefixlen", "segment_id", "dns_publish_fixed_ip", "use_default_subnetpool",
    ]

    func visibleSubnet(_ id: String, _ caller: AuthContext?, on db: any SQLDatabase) async throws -> Record {
        let missing = NimbusError.neutron(.notFound, "SubnetNotFound", "Subnet \(id) could not be found.")
        guard let record = try await NetworkSchema.subnets.fetch(id, on: db) else { throw missing }
        if let caller, !Self.owns(record, caller) {
            guard let network = try await NetworkSchema.networks.fetch(record.string("network_id") ?? "", on: db),
                  Self.networkVisible(network, caller) else { throw missing }
        }
        return record
    }

    public func listSubnets(caller: AuthContext) async throws -> [Record] {
        try await database.read { db in
            let networks = try await NetworkSchema.networks.list(on: db)
            let visible = Set(networks.filter { Self.networkVisible($0, caller) }.compactMap { $0.string("id") })
            let external = Set(networks.filter { $0["router_external"] == true }.compactMap { $0.string("id") })
            return try await NetworkSchema.subnets.list(on: db)
                .filter { Self.owns($0, caller) || visible.contains($0.string("network_id") ?? "") }
                .map { Self.subnetView($0, external: external.contains($0.string("network_id") ?? "")) }
        }
    }

    public func subnet(_ id: String, caller: AuthContext) async throws -> Record {
        try await database.read { db in
            let record = try await self.visibleSubnet(id, caller, on: db)
            let network = try await NetworkSchema.networks.fetch(record.string("network_id") ?? "", on: db)
            return Self.subnetView(record, external: network?["router_external"] == true)
        }
    }

    public func createSubnet(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "create_subnet")
        let input = try FieldReader(body: body, root: "subnet")
        try Self.rejectUnknown(input, Self.subnetFields)
        let networkID = try input.string("network_id", required: true) ?? ""
        let version = try input.int("ip_version")
        guard let version, version == 4 || version == 6 else {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest",
                                      "Invalid input for ip_version. Reason: \(input.fields["ip_version"]?.serialized() ?? "None") is not in [4, 6].")
        }
        guard let text = try input.string("cidr") else {
            throw NimbusError.neutron(.badRequest, "BadRequest", "Bad subnets request: a cidr must be specified in the absence of a subnet pool.")
        }
        guard let cidr = CIDR(text.trimmingCharacters(in: .whitespaces)), text.contains("/") else {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for cidr. Reason: '\(text)' is not a valid IP subnet.")
        }
        guard cidr.version == Int(version) else {
            throw NimbusError.invalidInput("Cidr \(text) does not match ip_version \(version)")
        }
        var addressing = try Self.addressing(input, cidr: cidr, current: nil)
        let project = try Self.owningProject(input, caller, "create_subnet")
        var record: Record = [
            "id": .string(Identifier.uuid()), "project_id": .string(project), "network_id": .string(networkID),
            "name": .string(try input.string("name", maxLength: 255) ?? ""), "description": .string(try input.string("description", maxLength: 255) ?? ""),
            "ip_version": .int(version), "cidr": .string(cidr.description),
            "enable_dhcp": .bool(try input.bool("enable_dhcp") ?? true),
            "ipv6_ra_mode": .optional(try Self.ipv6Mode(input, "ipv6_ra_mode")),
            "ipv6_address_mode": .optional(try Self.ipv6Mode(input, "ipv6_address_mode")),
        ]
        try Self.checkIPv6Modes(record, cidr: cidr)
        Self.standardAttributes(&record, tags: try input.stringArray("tags") ?? [])
        if addressing["allocation_pools"] == nil {
            let gateway = addressing["gateway_ip"]?.stringValue.flatMap(IPAddress.init)
            addressing["allocation_pools"] = Self.poolsJSON(SubnetLayout.defaultPools(cidr, gateway: gateway))
        }
        record.merge(addressing) { _, new in new }
        let row = record
        return try await write { db in
            let network = try await self.ownedNetwork(networkID, caller, "create_subnet", on: db)
            try await self.enforceQuota("subnet", project: project, on: db)
            for other in try await NetworkSchema.subnets.list([.init("network_id", .equal, .string(networkID))], on: db) {
                if let existing = CIDR(other.string("cidr") ?? ""), existing.overlaps(cidr) {
                    throw NimbusError.invalidInput(
                        "Requested subnet with cidr: \(cidr) for network: \(networkID) overlaps with another subnet")
                }
            }
            try await NetworkSchema.subnets.insert(row, on: db)
            let layout = SubnetLayout(row)
            if row["enable_dhcp"] == true { try await self.ensureDHCPAddress(network: network, subnet: layout, on: db) }
            if layout.isAutoAddressed { try await self.addSLAACAddresses(layout, on: db) }
            return Self.subnetView(row, external: network["router_external"] == true)
        }
    }

    /// A new SLAAC or DHCPv6-stateless subnet addresses the network's existing ports too (their
    /// guests form the address as soon as the prefix is advertised), router legs excepted: a
    /// router joins a subnet explicitly, with its gateway address. Neutron does the same.
    func addSLAACAddresses(_ subnet: SubnetLayout, on db: any SQLDatabase) async throws {
        let ports = try await NetworkSchema.ports.list([.init("network_id", .equal, .string(subnet.networkID))], on: db)
        for port in ports where !(port.string("device_owner") ?? "").hasPrefix("network:router") {
            let fixed = port["fixed_ips"]?.arrayValue ?? []
            guard !(port["fixed_ips"]?.fixedIPs ?? []).contains(where: { $0.subnet == subnet.id }) else { continue }
            let address = try await allocate(subnet, port: port.string("id") ?? "", mac: port.string("mac_address") ?? "", on: db)
            let added = fixed + [["subnet_id": .string(subnet.id), "ip_address": .string(address.description)]]
            try await NetworkSchema.ports.update(port.string("id") ?? "", Self.revised(["fixed_ips": .array(added)], from: port), on: db)
        }
    }

    public func updateSubnet(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "update_subnet")
        let input = try FieldReader(body: body, root: "subnet")
        try Self.rejectUnknown(input, Self.subnetFields)
        for key in ["network_id", "ip_version", "cidr", "project_id", "tenant_id", "ipv6_ra_mode", "ipv6_address_mode"] where input.has(key) {
            throw NimbusError.invalidInput("Cannot update read-only attribute \(key)")
        }
        var changes: Record = [:]
        if let name = try input.string("name", maxLength: 255) { changes["name"] = .string(name) }
        if let text = try input.string("description", maxLength: 255) { changes["description"] = .string(text) }
        if let flag = try input.bool("enable_dhcp") { changes["enable_dhcp"] = .bool(flag) }
        let fixed = changes
        return try await write { db in
            let record = try await self.visibleSubnet(id, caller, on: db)
            let network = try await self.ownedNetwork(record.string("network_id") ?? "", caller, "update_subnet", on: db)
            var changes = fixed
            let cidr = CIDR(record.string("cidr") ?? "")!
            changes.merge(try Self.addressing(input, cidr: cidr, current: record)) { _, new in new }
            let revised = Self.revised(changes, from: record)
            try await NetworkSchema.subnets.update(id, revised, on: db)
            let updated = record.merging(revised) { _, new in new }
            if updated["enable_dhcp"] == true && record["enable_dhcp"] != true {
                try await self.ensureDHCPAddress(network: network, subnet: SubnetLayout(updated), on: db)
            }
            return Self.subnetView(updated, external: network["router_external"] == true)
        }
    }

    /// Deletes a subnet; the DHCP port's address on it goes too. - Throws: 409 `SubnetInUse`
    /// while any other port holds an address from it.
    public func deleteSubnet(_ id: String, caller: AuthContext) async throws {
        try Self.requireWriter(caller, "delete_subnet")
        try await write { db in
            let record = try await self.visibleSubnet(id, caller, on: db)
            _ = try await self.ownedNetwork(record.string("network_id") ?? "", caller, "delete_subnet", on: db)
            let holders = Set(try await db.select().column("port_id").from("net_ip_allocations")
                .where("subnet_id", .equal, SQLBind(id)).all().map { try $0.decode(column: "port_id", as: String.self) })
            var dhcpPorts: [Record] = []
            for holder in holders {
                guard let port = try await NetworkSchema.ports.fetch(holder, on: db) else { continue }
                guard port.string("device_owner") == "network:dhcp" else {
                    throw NimbusError.neutron(.conflict, "SubnetInUse",
                        "Unable to complete operation on subnet \(id): One or more ports have an IP allocation from this subnet.")
                }
                dhcpPorts.append(port)
            }
            for port in dhcpPorts { try await self.dropFixedIPs(of: port, onSubnet: id, on: db) }
            try await db.delete(from: "net_ip_allocations").where("subnet_id", .equal, SQLBind(id)).run()
            try await NetworkSchema.subnets.delete(id: id, on: db)
            self.cursors.forget(id)
        }
    }

    /// Removes a network-owned port's addresses on one subnet; the port goes when none is left.
    func dropFixedIPs(of port: Record, onSubnet subnet: String, on db: any SQLDatabase) async throws {
        let portID = port.string("id") ?? ""
        let kept = (port["fixed_ips"]?.arrayValue ?? []).filter { $0["subnet_id"]?.stringValue != subnet }
        try await releaseAddresses(port: portID, subnet: subnet, on: db)
        if kept.isEmpty {
            try await deletePortRow(port, on: db)
        } else {
            try await NetworkSchema.ports.update(portID, Self.revised(["fixed_ips": .array(kept)], from: port), on: db)
        }
    }

    // MARK: - Addressing attributes

    /// Validates gateway, pools, DNS servers and host routes together, against `cidr` and (on
    /// update) the current values. - Returns: only the columns to write.
    static func addressing(_ input: FieldReader, cidr: CIDR, current: Record?) throws -> Record {
        var out: Record = [:]
        let layout = SubnetLayout(["cidr": .string(cidr.description)])
        var gateway: IPAddress? = current?.string("gateway_ip").flatMap(IPAddress.init)
        if let value = input.fields["gateway_ip"] {
            if value.isNull {
                gateway = nil
            } else {
                guard let text = value.stringValue, let address = IPAddress(text) else {
                    throw NimbusError.neutron(.badRequest, "HTTPBadRequest",
                                              "Invalid input for gateway_ip. Reason: '\(value.stringValue ?? value.serialized())' is not a valid IP address.")
                }
                guard layout.accepts(address) || (cidr.version == 6 && cidr.contains(address)) else {
                    throw NimbusError.invalidInput("Gateway is not valid on subnet")
                }
                gateway = address
            }
            out["gateway_ip"] = .optional(gateway?.description)
        } else if current == nil {
            gateway = cidr.prefix < cidr.network.bits ? cidr.first.advanced(by: 1) : nil
            out["gateway_ip"] = .optional(gateway?.description)
        }
        var pools: [IPRange]
        if let items = try input.array("allocation_pools") {
            pools = try items.map { item in
                guard let start = item["start"]?.stringValue.flatMap(IPAddress.init), let end = item["end"]?.stringValue.flatMap(IPAddress.init),
                      start.version == cidr.version, end.version == cidr.version, start <= end else {
                    throw NimbusError.neutron(.badRequest, "InvalidAllocationPool", "The allocation pool \(Self.poolText(item)) is not valid.")
                }
                let range = IPRange(start: start, end: end)
                guard layout.accepts(start), layout.accepts(end) else {
                    throw NimbusError.neutron(.badRequest, "OutOfBoundsAllocationPool",
                                              "The allocation pool \(start)-\(end) spans beyond the subnet cidr \(cidr).")
                }
                return range
            }
            for (index, pool) in pools.enumerated() {
                for other in pools[(index + 1)...] where pool.overlaps(other) {
                    throw NimbusError.neutron(.badRequest, "OverlappingAllocationPools",
                        "Found overlapping allocation pools: \(pool.start)-\(pool.end) and \(other.start)-\(other.end) for subnet \(cidr).")
                }
            }
            out["allocation_pools"] = poolsJSON(pools)
        } else {
            pools = current.map { SubnetLayout($0).pools } ?? []
        }
        if let gateway, let pool = pools.first(where: { $0.contains(gateway) }) {
            throw NimbusError.neutron(.badRequest, "GatewayConflictWithAllocationPools",
                                      "Gateway ip \(gateway) conflicts with allocation pool \(pool.start)-\(pool.end)")
        }
        if let servers = try input.stringArray("dns_nameservers") {
            for server in servers where IPAddress(server) == nil {
                throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for dns_nameservers. Reason: '\(server)' is not a valid nameserver.")
            }
            if Set(servers).count != servers.count {
                throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for dns_nameservers. Reason: Duplicate nameserver.")
            }
            out["dns_nameservers"] = .array(servers.map { .string($0) })
        } else if current == nil {
            out["dns_nameservers"] = []
        }
        if let routes = try input.array("host_routes") {
            out["host_routes"] = .array(try routes.map { route in
                guard let destination = route["destination"]?.stringValue.flatMap(CIDR.init), let hop = route["nexthop"]?.stringValue.flatMap(IPAddress.init) else {
                    throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for host_routes. Reason: \(route.serialized()) is not a valid host route.")
                }
                return ["destination": .string(destination.description), "nexthop": .string(hop.description)]
            })
        } else if current == nil {
            out["host_routes"] = []
        }
        return out
    }

    static func ipv6Mode(_ input: FieldReader, _ key: String) throws -> String? {
        guard let mode = try input.string(key, nullable: true) else { return nil }
        guard ["slaac", "dhcpv6-stateful", "dhcpv6-stateless"].contains(mode) else {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest",
                                      "Invalid input for \(key). Reason: '\(mode)' is not in ['dhcpv6-stateful', 'dhcpv6-stateless', 'slaac', None].")
        }
        return mode
    }

    /// Neutron's rules for the two IPv6 modes (`_validate_ipv6_attributes`).
    static func checkIPv6Modes(_ record: Record, cidr: CIDR) throws {
        let ra = record.string("ipv6_ra_mode"), address = record.string("ipv6_address_mode")
        guard ra != nil || address != nil else { return }
        if cidr.version == 4 {
            throw NimbusError.invalidInput("\(ra != nil ? "ipv6_ra_mode" : "ipv6_address_mode") is not valid when ip_version is 4")
        }
        if record["enable_dhcp"]?.boolValue == false {
            throw NimbusError.invalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False")
        }
        if let ra, let address, ra != address {
            throw NimbusError.invalidInput("ipv6_ra_mode set to '\(ra)' with ipv6_address_mode set to '\(address)' is not valid. If both attributes are set, they must be the same value")
        }
        if SubnetLayout.autoAddressModes.contains(address ?? ra ?? ""), cidr.prefix != 64 {
            throw NimbusError.invalidInput("Invalid CIDR \(cidr) for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64")
        }
    }

    static func poolsJSON(_ pools: [IPRange]) -> JSONValue {
        .array(pools.map { ["start": .string($0.start.description), "end": .string($0.end.description)] })
    }

    static func poolText(_ item: JSONValue) -> String {
        "\(item["start"]?.stringValue ?? "None")-\(item["end"]?.stringValue ?? "None")"
    }

    /// - Parameter external: whether the subnet's network is external (`router:external`, which
    ///   the `subnet-external-network` extension shows on subnets).
    static func subnetView(_ record: Record, external: Bool) -> Record {
        var view = record
        view["router:external"] = .bool(external)
        view["tenant_id"] = record["project_id"]
        view["subnetpool_id"] = .null
        view["service_types"] = []
        view["segment_id"] = .null
        view["dns_publish_fixed_ip"] = false
        return view
    }
}
