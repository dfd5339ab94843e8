import Foundation
import NimbusCore
import SQLKit
import Store

extension NetworkService {
    static let portFields: Set<String> = [
        "name", "description", "network_id", "mac_address", "admin_state_up", "device_id", "device_owner", "fixed_ips",
        "security_groups", "port_security_enabled", "allowed_address_pairs", "binding:host_id", "binding:vnic_type",
        "binding:profile", "project_id", "tenant_id", "tags", "dns_name", "extra_dhcp_opts",
    ]
    /// Owners whose ports only their service may delete (Neutron's `ServicePortInUse`).
    static let serviceOwners: Set<String> = ["network:router_interface", "network:router_gateway", "network:floatingip"]

    func visiblePort(_ id: String, _ caller: AuthContext?, on db: any SQLDatabase, forUpdate: Bool = false) async throws -> Record {
        let record = forUpdate ? try await NetworkSchema.ports.fetchForUpdate(id, on: db) : try await NetworkSchema.ports.fetch(id, on: db)
        guard let record, caller.map({ Self.owns(record, $0) }) ?? true else {
            throw NimbusError.neutron(.notFound, "PortNotFound", "Port \(id) could not be found.")
        }
        return record
    }

    /// Ports the caller may see, narrowed in SQL by the filters that are cheap there.
    public func listPorts(caller: AuthContext, filters: [String: [String]] = [:]) async throws -> [Record] {
        try await database.read { db in
            var query: [RecordTable.Filter] = []
            if !caller.isAdmin { query.append(.init("project_id", .equal, .optional(caller.projectID))) }
            for key in ["device_id", "network_id", "device_owner"] {
                if let values = filters[key], values.count == 1 { query.append(.init(key, .equal, .string(values[0]))) }
            }
            var ports = try await NetworkSchema.ports.list(query, on: db)
            let wanted = (filters["fixed_ips"] ?? []).compactMap(Self.fixedIPFilter)
            if !wanted.isEmpty {
                ports = ports.filter { port in
                    let held = port["fixed_ips"]?.fixedIPs ?? []
                    return wanted.allSatisfy { key, value in held.contains { (key == "subnet_id" ? $0.subnet : $0.address) == value } }
                }
            }
            return ports.map { Self.portView($0, caller: caller) }
        }
    }

    /// `fixed_ips=ip_address=10.0.0.3` or `fixed_ips=subnet_id=<id>`.
    static func fixedIPFilter(_ text: String) -> (String, String)? {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, ["ip_address", "subnet_id"].contains(parts[0]) else { return nil }
        return (parts[0], parts[1])
    }

    public func port(_ id: String, caller: AuthContext) async throws -> Record {
        try await database.read { Self.portView(try await self.visiblePort(id, caller, on: $0), caller: caller) }
    }

    public func createPort(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "create_port")
        let input = try FieldReader(body: body, root: "port")
        try Self.rejectUnknown(input, Self.portFields)
        var spec = PortSpec(project: try Self.owningProject(input, caller, "create_port"),
                            networkID: try input.string("network_id", required: true) ?? "")
        try Self.readPortAttributes(input, into: &spec, caller: caller)
        if let items = try input.array("fixed_ips") { spec.fixedIPs = try Self.fixedIPRequests(items) }
        let finished = spec
        return try await write { db in
            let network = try await self.visibleNetwork(finished.networkID, caller, on: db)
            if !Self.owns(network, caller) && network["shared"] != true { throw NimbusError.policy("create_port:network") }
            return Self.portView(try await self.insertPort(finished, network: network, on: db), caller: caller)
        }
    }

    static func readPortAttributes(_ input: FieldReader, into spec: inout PortSpec, caller: AuthContext) throws {
        spec.name = try input.string("name", maxLength: 255) ?? spec.name
        spec.description = try input.string("description", maxLength: 255) ?? spec.description
        spec.deviceID = try input.string("device_id", maxLength: 255) ?? spec.deviceID
        spec.deviceOwner = try input.string("device_owner", maxLength: 255) ?? spec.deviceOwner
        spec.adminStateUp = try input.bool("admin_state_up") ?? spec.adminStateUp
        spec.dnsName = try input.string("dns_name", maxLength: 255) ?? spec.dnsName
        spec.tags = try input.stringArray("tags") ?? spec.tags
        if input.has("mac_address") {
            let mac = try input.string("mac_address") ?? ""
            guard Self.validMAC(mac) else {
                throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for mac_address. Reason: '\(mac)' is not a valid MAC address.")
            }
            spec.mac = mac.lowercased()
        }
        if input.has("binding:host_id") {
            try requireAdmin(caller, "create_port:binding:host_id")
            spec.hostID = try input.string("binding:host_id") ?? ""
        }
        if let vnic = try input.string("binding:vnic_type"), vnic != "normal" {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest",
                                      "Invalid input for binding:vnic_type. Reason: '\(vnic)' is not in ['normal'].")
        }
        if input.has("port_security_enabled") { spec.portSecurity = try input.bool("port_security_enabled") }
        if input.has("security_groups") { spec.securityGroups = try input.stringArray("security_groups") ?? [] }
        if let pairs = try input.array("allowed_address_pairs") { spec.addressPairs = try Self.addressPairs(pairs) }
    }

    static func fixedIPRequests(_ items: [JSONValue]) throws -> [PortSpec.FixedIP] {
        try items.map { item in
            let subnet = item["subnet_id"]?.stringValue
            if let address = item["ip_address"]?.stringValue {
                guard IPAddress(address) != nil else {
                    throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for fixed_ips. Reason: '\(address)' is not a valid IP address.")
                }
                return .address(address, subnet: subnet)
            }
            guard let subnet else {
                throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for fixed_ips. Reason: \(item.serialized()) is not a valid fixed IP.")
            }
            return .subnet(subnet)
        }
    }

    static func addressPairs(_ items: [JSONValue]) throws -> [JSONValue] {
        try items.map { item in
            guard let ip = item["ip_address"]?.stringValue, IPAddress(ip) != nil || CIDR(ip) != nil else {
                throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for allowed_address_pairs. Reason: \(item.serialized()) has no valid ip_address.")
            }
            var pair: Record = ["ip_address": .string(ip)]
            if let mac = item["mac_address"]?.stringValue {
                guard validMAC(mac) else {
                    throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for allowed_address_pairs. Reason: '\(mac)' is not a valid MAC address.")
                }
                pair["mac_address"] = .string(mac.lowercased())
            }
            return .object(pair)
        }
    }

    static func validMAC(_ mac: String) -> Bool {
        let parts = mac.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }
            && mac.lowercased() != "00:00:00:00:00:00" && mac.lowercased() != "ff:ff:ff:ff:ff:ff"
    }

    /// Creates the port row with its addresses and group memberships, inside the caller's transaction.
    func insertPort(_ spec: PortSpec, network: Record, on db: any SQLDatabase) async throws -> Record {
        try await enforceQuota("port", project: spec.project, on: db)
        let portSecurity = spec.portSecurity ?? (network["port_security_enabled"]?.boolValue ?? true)
        let groups = try await securityGroupsFor(spec, portSecurity: portSecurity, on: db)
        if !portSecurity && !spec.addressPairs.isEmpty {
            throw NimbusError.neutron(.conflict, "AddressPairAndPortSecurityRequired",
                                      "Port Security must be enabled in order to have allowed address pairs on a port.")
        }
        let mac = try await macAddress(spec.mac, network: spec.networkID, on: db)
        let fixedIPs = try await allocateFixedIPs(spec.fixedIPs, port: spec.id, mac: mac, owner: spec.deviceOwner, networkID: spec.networkID, on: db)
        var record: Record = [
            "id": .string(spec.id), "project_id": .string(spec.project), "network_id": .string(spec.networkID),
            "name": .string(spec.name), "description": .string(spec.description), "mac_address": .string(mac),
            "admin_state_up": .bool(spec.adminStateUp), "status": "DOWN", "device_id": .string(spec.deviceID),
            "device_owner": .string(spec.deviceOwner), "host_id": .string(spec.hostID),
            "vif_type": .string(spec.hostID.isEmpty ? "unbound" : "tap"), "vnic_type": "normal",
            "port_security_enabled": .bool(portSecurity), "security_groups": .array(groups.map { .string($0) }),
            "allowed_address_pairs": .array(spec.addressPairs), "fixed_ips": fixedIPs, "dns_name": .string(spec.dnsName),
            "created_for_instance": .bool(spec.createdForInstance),
        ]
        Self.standardAttributes(&record, tags: spec.tags)
        try await NetworkSchema.ports.insert(record, on: db)
        try await setMemberships(port: spec.id, groups: groups, on: db)
        return record
    }

    /// Ports on a network with security off get no groups; asking for some then is an error.
    func securityGroupsFor(_ spec: PortSpec, portSecurity: Bool, on db: any SQLDatabase) async throws -> [String] {
        if !portSecurity {
            if let groups = spec.securityGroups, !groups.isEmpty {
                throw NimbusError.neutron(.badRequest, "PortSecurityAndIPRequiredForSecurityGroups",
                    "Port security must be enabled and port must have an IP address in order to use security groups.")
            }
            return []
        }
        if let groups = spec.securityGroups {
            for group in groups { _ = try await visibleSecurityGroup(group, project: spec.project, on: db) }
            return Array(Set(groups)).sorted()
        }
        if spec.isNetworkOwned { return [] }
        return [try await defaultSecurityGroup(project: spec.project, on: db)]
    }

    func setMemberships(port: String, groups: [String], on db: any SQLDatabase) async throws {
        try await db.delete(from: "net_port_security_groups").where("port_id", .equal, SQLBind(port)).run()
        for group in groups {
            try await db.insert(into: "net_port_security_groups").columns("port_id", "security_group_id")
                .values(SQLBind(port), SQLBind(group)).run()
        }
    }

    /// The given MAC if free on the network, else a new `fa:16:3e` one (the unique index settles races).
    func macAddress(_ given: String?, network: String, on db: any SQLDatabase) async throws -> String {
        if let given {
            let taken = try await NetworkSchema.ports.count([.init("network_id", .equal, .string(network)), .init("mac_address", .equal, .string(given))], on: db)
            if taken > 0 {
                throw NimbusError.neutron(.conflict, "MacAddressInUse",
                                          "Unable to complete operation for network \(network). The mac address \(given) is in use.")
            }
            return given
        }
        let bytes = (0..<3).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }
        return ([configuration.macPrefix] + bytes).joined(separator: ":")
    }

    /// Resolves and claims the requested addresses (or the defaults). - Returns: `fixed_ips` JSON.
    /// By default a port gets one IPv4 address, one address on every SLAAC/DHCPv6-stateless
    /// subnet and one DHCPv6-stateful (or unmanaged) IPv6 address, as Neutron gives.
    func allocateFixedIPs(_ requests: [PortSpec.FixedIP]?, port: String, mac: String, owner: String, networkID: String,
                          on db: any SQLDatabase) async throws -> JSONValue {
        let subnets = try await NetworkSchema.subnets.list([.init("network_id", .equal, .string(networkID))], orderBy: "created_at", on: db).map(SubnetLayout.init)
        var claimed: [JSONValue] = []
        guard let requests else {
            for subnet in subnets where subnet.isAutoAddressed {
                let address = try await allocate(subnet, port: port, mac: mac, on: db)
                claimed.append(["subnet_id": .string(subnet.id), "ip_address": .string(address.description)])
            }
            for version in [4, 6] {
                let candidates = subnets.filter { $0.cidr.version == version && !$0.isAutoAddressed }
                var lastError: (any Error)?
                for subnet in candidates {
                    do {
                        let address = try await allocate(subnet, port: port, mac: mac, on: db)
                        claimed.append(["subnet_id": .string(subnet.id), "ip_address": .string(address.description)])
                        lastError = nil
                        break
                    } catch let error as NimbusError where error.code == "IpAddressGenerationFailure" {
                        lastError = error
                    }
                }
                if let lastError { throw lastError }
            }
            return .array(claimed)
        }
        for request in requests {
            let subnet: SubnetLayout
            var address: IPAddress?
            switch request {
            case .subnet(let id):
                subnet = try Self.subnet(id, in: subnets, network: networkID)
            case .address(let text, let id):
                address = IPAddress(text)
                if let id {
                    subnet = try Self.subnet(id, in: subnets, network: networkID)
                } else if let match = subnets.first(where: { $0.accepts(address!) }) {
                    subnet = match
                } else {
                    throw NimbusError.neutron(.badRequest, "InvalidIpForNetwork",
                                              "IP address \(text) is not a valid IP for any of the subnets on the specified network.")
                }
            }
            // A router interface takes the subnet's gateway address; any other port on a SLAAC
            // subnet has the address its MAC gives it.
            if let address, subnet.isAutoAddressed, !owner.hasPrefix("network:router_interface") {
                throw NimbusError.neutron(.badRequest, "InvalidInput",
                                          "Invalid input for operation: IPv6 address \(address) can not be directly assigned to a port on subnet \(subnet.id) since the subnet is configured for automatic addresses.")
            }
            let got = try await allocate(subnet, port: port, mac: mac, address: address, on: db)
            claimed.append(["subnet_id": .string(subnet.id), "ip_address": .string(got.description)])
        }
        return .array(claimed)
    }

    static func subnet(_ id: String, in subnets: [SubnetLayout], network: String) throws -> SubnetLayout {
        guard let subnet = subnets.first(where: { $0.id == id }) else {
            throw NimbusError.invalidInput("Failed to create port on network \(network), because fixed_ips included invalid subnet \(id)")
        }
        return subnet
    }

    public func updatePort(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "update_port")
        let input = try FieldReader(body: body, root: "port")
        try Self.rejectUnknown(input, Self.portFields)
        for key in ["network_id", "project_id", "tenant_id"] where input.has(key) {
            throw NimbusError.invalidInput("Cannot update read-only attribute \(key)")
        }
        if input.has("mac_address") { try Self.requireAdmin(caller, "update_port:mac_address") }
        let requests = try input.array("fixed_ips").map(Self.fixedIPRequests)
        return try await write { db in
            let record = try await self.visiblePort(id, caller, on: db, forUpdate: true)
            var spec = Self.spec(of: record)
            spec.securityGroups = nil
            try Self.readPortAttributes(input, into: &spec, caller: caller)
            var changes: Record = [
                "name": .string(spec.name), "description": .string(spec.description), "device_id": .string(spec.deviceID),
                "device_owner": .string(spec.deviceOwner), "admin_state_up": .bool(spec.adminStateUp), "dns_name": .string(spec.dnsName),
                "host_id": .string(spec.hostID), "vif_type": .string(spec.hostID.isEmpty ? "unbound" : "tap"),
                "tags": .array(spec.tags.map { .string($0) }),
            ]
            if let mac = spec.mac, mac != record.string("mac_address") {
                changes["mac_address"] = .string(try await self.macAddress(mac, network: spec.networkID, on: db))
            }
            let security = spec.portSecurity ?? (record["port_security_enabled"]?.boolValue ?? true)
            var groups = record["security_groups"]?.strings ?? []
            if input.has("security_groups") || input.has("port_security_enabled") {
                if input.has("security_groups") {
                    groups = try await self.securityGroupsFor(spec, portSecurity: security, on: db)
                } else if !security && !groups.isEmpty {
                    throw NimbusError.neutron(.conflict, "PortSecurityPortHasSecurityGroup",
                        "Port has security group associated. Cannot disable port security or ip address until security group is removed")
                }
                changes["port_security_enabled"] = .bool(security)
                changes["security_groups"] = .array(groups.map { .string($0) })
                try await self.setMemberships(port: id, groups: groups, on: db)
            }
            if input.has("allowed_address_pairs") {
                if !security && !spec.addressPairs.isEmpty {
                    throw NimbusError.neutron(.conflict, "AddressPairAndPortSecurityRequired",
                                              "Port Security must be enabled in order to have allowed address pairs on a port.")
                }
                changes["allowed_address_pairs"] = .array(spec.addressPairs)
            }
            if let requests {
                changes["fixed_ips"] = try await self.reallocate(record, requests, on: db)
            }
            let revised = Self.revised(changes, from: record)
            try await NetworkSchema.ports.update(id, revised, on: db)
            return Self.portView(record.merging(revised) { _, new in new }, caller: caller)
        }
    }

    /// New `fixed_ips` for a port: addresses it keeps stay claimed, dropped ones return to the pool.
    func reallocate(_ record: Record, _ requests: [PortSpec.FixedIP], on db: any SQLDatabase) async throws -> JSONValue {
        let id = record.string("id") ?? ""
        let held = record["fixed_ips"]?.fixedIPs ?? []
        var kept: [JSONValue] = []
        var fresh: [PortSpec.FixedIP] = []
        for request in requests {
            if case .address(let text, let subnet) = request, let normal = IPAddress(text)?.description,
               let holding = held.first(where: { $0.address == normal && (subnet == nil || subnet == $0.subnet) }) {
                kept.append(["subnet_id": .string(holding.subnet), "ip_address": .string(holding.address)])
            } else {
                fresh.append(request)
            }
        }
        for entry in held where !kept.contains(where: { $0["ip_address"]?.stringValue == entry.address && $0["subnet_id"]?.stringValue == entry.subnet }) {
            try await db.delete(from: "net_ip_allocations").where("subnet_id", .equal, SQLBind(entry.subnet))
                .where("ip_address", .equal, SQLBind(entry.address)).run()
        }
        let added = fresh.isEmpty ? [] : (try await allocateFixedIPs(
            fresh, port: id, mac: record.string("mac_address") ?? "", owner: record.string("device_owner") ?? "",
            networkID: record.string("network_id") ?? "", on: db).arrayValue ?? [])
        return .array(kept + added)
    }

    public func deletePort(_ id: String, caller: AuthContext) async throws {
        try Self.requireWriter(caller, "delete_port")
        try await write { db in
            let record = try await self.visiblePort(id, caller, on: db, forUpdate: true)
            let owner = record.string("device_owner") ?? ""
            if Self.serviceOwners.contains(owner) {
                throw NimbusError.neutron(.conflict, "ServicePortInUse",
                    "Port \(id) cannot be deleted directly via the port API: has device owner \(owner).")
            }
            try await self.deletePortRow(record, on: db)
        }
    }

    /// Removes a port with its addresses and memberships; floating IPs on it are disassociated.
    func deletePortRow(_ record: Record, on db: any SQLDatabase) async throws {
        let id = record.string("id") ?? ""
        try await releaseAddresses(port: id, on: db)
        try await db.update("net_floatingips").set("port_id", to: SQLBind(String?.none)).set("fixed_ip_address", to: SQLBind(String?.none))
            .set("router_id", to: SQLBind(String?.none)).set("status", to: SQLBind("DOWN"))
            .where("port_id", .equal, SQLBind(id)).run()
        try await NetworkSchema.ports.delete(id: id, on: db)
    }

    static func spec(of record: Record) -> PortSpec {
        var spec = PortSpec(project: record.string("project_id") ?? "", networkID: record.string("network_id") ?? "")
        spec.id = record.string("id") ?? spec.id
        spec.name = record.string("name") ?? ""
        spec.description = record.string("description") ?? ""
        spec.deviceID = record.string("device_id") ?? ""
        spec.deviceOwner = record.string("device_owner") ?? ""
        spec.hostID = record.string("host_id") ?? ""
        spec.adminStateUp = record["admin_state_up"]?.boolValue ?? true
        spec.portSecurity = record["port_security_enabled"]?.boolValue
        spec.securityGroups = record["security_groups"]?.strings
        spec.addressPairs = record["allowed_address_pairs"]?.arrayValue ?? []
        spec.dnsName = record.string("dns_name") ?? ""
        spec.tags = record["tags"]?.strings ?? []
        return spec
    }

    /// The wire form; binding details other than the VNIC type are for admins only.
    static func portView(_ record: Record, caller: AuthContext?) -> Record {
        var view = record
        for key in ["host_id", "vif_type", "vnic_type", "created_for_instance"] { view[key] = nil }
        view["tenant_id"] = record["project_id"]
        view["binding:vnic_type"] = record["vnic_type"]
        view["extra_dhcp_opts"] = []
        if caller?.isAdmin ?? true {
            view["binding:host_id"] = record["host_id"]
            view["binding:vif_type"] = record["vif_type"]
            view["binding:vif_details"] = record.string("vif_type") == "tap" ? ["port_filter": true] : [:]
            view["binding:profile"] = [:]
        }
        return view
    }

    // MARK: - DHCP

    /// Gives the network's DHCP port an address on `subnet`, creating the port on first need.
    func ensureDHCPAddress(network: Record, subnet: SubnetLayout, on db: any SQLDatabase) async throws {
        let networkID = network.string("id") ?? ""
        let existing = try await NetworkSchema.ports.list([.init("network_id", .equal, .string(networkID)), .init("device_owner", .equal, "network:dhcp")], on: db).first
        if let existing {
            guard !(existing["fixed_ips"]?.fixedIPs ?? []).contains(where: { $0.subnet == subnet.id }) else { return }
            let address = try await allocate(subnet, port: existing.string("id") ?? "", mac: existing.string("mac_address") ?? "", on: db)
            let fixed = (existing["fixed_ips"]?.arrayValue ?? []) + [["subnet_id": .string(subnet.id), "ip_address": .string(address.description)]]
            try await NetworkSchema.ports.update(existing.string("id") ?? "", Self.revised(["fixed_ips": .array(fixed)], from: existing), on: db)
            return
        }
        var spec = PortSpec(project: network.string("project_id") ?? "", networkID: networkID)
        spec.deviceOwner = "network:dhcp"
        spec.deviceID = "dhcp" + Self.dhcpHostKey + "-" + networkID
        spec.fixedIPs = [.subnet(subnet.id)]
        _ = try await insertPortIgnoringQuota(spec, network: network, on: db)
    }

    /// Neutron derives the DHCP port's device id from the agent's host; one network node here.
    static let dhcpHostKey = "nimbus"

    /// Network-owned ports do not count against the owner's quota before the fact (Neutron creates
    /// them on the service's behalf): the check is skipped, though the port is still counted later.
    func insertPortIgnoringQuota(_ spec: PortSpec, network: Record, on db: any SQLDatabase) async throws -> Record {
        try await QuotaBypass.$active.withValue(true) { try await insertPort(spec, network: network, on: db) }
    }
}

/// Set while the service creates ports on its own behalf (DHCP, router and floating-IP ports).
enum QuotaBypass {
    @TaskLocal static var active = false
}
