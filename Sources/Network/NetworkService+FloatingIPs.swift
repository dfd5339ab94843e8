import NimbusCore
import SQLKit
import Store

extension NetworkService {
    static let floatingIPFields: Set<String> = [
        "floating_network_id", "floating_ip_address", "subnet_id", "port_id", "fixed_ip_address", "description",
        "project_id", "tenant_id", "tags", "dns_name", "dns_domain", "qos_policy_id",
    ]

    func visibleFloatingIP(_ id: String, _ caller: AuthContext, on db: any SQLDatabase) async throws -> Record {
        guard let record = try await NetworkSchema.floatingIPs.fetch(id, on: db), Self.owns(record, caller) else {
            throw NimbusError.neutron(.notFound, "FloatingIPNotFound", "Floating IP \(id) could not be found")
        }
        return record
    }

    public func listFloatingIPs(caller: AuthContext) async throws -> [Record] {
        try await database.read { db in
            let filter: [RecordTable.Filter] = caller.isAdmin ? [] : [.init("project_id", .equal, .optional(caller.projectID))]
            return try await NetworkSchema.floatingIPs.list(filter, on: db).map(Self.floatingIPView)
        }
    }

    public func floatingIP(_ id: String, caller: AuthContext) async throws -> Record {
        try await database.read { Self.floatingIPView(try await self.visibleFloatingIP(id, caller, on: $0)) }
    }

    public func createFloatingIP(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "create_floatingip")
        let input = try FieldReader(body: body, root: "floatingip")
        try Self.rejectUnknown(input, Self.floatingIPFields)
        let project = try Self.owningProject(input, caller, "create_floatingip")
        let networkID = try input.string("floating_network_id", required: true) ?? ""
        let address = try input.string("floating_ip_address")
        if address != nil { try Self.requireAdmin(caller, "create_floatingip:floating_ip_address") }
        let subnetID = try input.string("subnet_id")
        let portID = try input.string("port_id", nullable: true)
        let fixedAddress = try input.string("fixed_ip_address", nullable: true)
        let id = Identifier.uuid()
        var fip: Record = ["id": .string(id), "project_id": .string(project), "floating_network_id": .string(networkID),
                           "description": .string(try input.string("description", maxLength: 255) ?? ""), "status": "DOWN"]
        Self.standardAttributes(&fip, tags: try input.stringArray("tags") ?? [])
        let row = fip
        let view = try await write { db in
            let network = try await self.visibleNetwork(networkID, caller, on: db)
            guard network["router_external"] == true else {
                throw NimbusError.neutron(.badRequest, "BadRequest", "Bad floatingip request: Network \(networkID) is not a valid external network.")
            }
            try await self.enforceQuota("floatingip", project: project, on: db)
            var spec = PortSpec(project: "", networkID: networkID)
            spec.deviceOwner = "network:floatingip"
            spec.deviceID = id
            spec.portSecurity = false
            if let address { spec.fixedIPs = [.address(address, subnet: subnetID)] } else if let subnetID { spec.fixedIPs = [.subnet(subnetID)] }
            let port = try await self.insertPortIgnoringQuota(spec, network: network, on: db)
            var row = row
            row["floating_port_id"] = port["id"]
            row["floating_ip_address"] = .optional(port["fixed_ips"]?.fixedIPs.first?.address)
            if let portID { row.merge(try await self.association(row, portID: portID, fixedAddress: fixedAddress, caller: caller, on: db)) { _, new in new } }
            try await NetworkSchema.floatingIPs.insert(row, on: db)
            return Self.floatingIPView(row)
        }
        await notifyInstances(ofPorts: [portID])
        return view
    }

    public func updateFloatingIP(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "update_floatingip")
        let input = try FieldReader(body: body, root: "floatingip")
        try Self.rejectUnknown(input, ["port_id", "fixed_ip_address", "description", "tags"])
        let portValue = input.fields["port_id"]
        let portID = try input.string("port_id", nullable: true)
        let fixedAddress = try input.string("fixed_ip_address", nullable: true)
        let description = try input.string("description", maxLength: 255)
        let (view, before) = try await write { db in
            let fip = try await self.visibleFloatingIP(id, caller, on: db)
            var changes: Record = [:]
            if let description { changes["description"] = .string(description) }
            if portValue != nil {
                if let portID {
                    changes.merge(try await self.association(fip, portID: portID, fixedAddress: fixedAddress, caller: caller, on: db)) { _, new in new }
                } else {
                    changes.merge(["port_id": .null, "fixed_ip_address": .null, "router_id": .null, "status": "DOWN"]) { _, new in new }
                }
            }
            let revised = Self.revised(changes, from: fip)
            try await NetworkSchema.floatingIPs.update(id, revised, on: db)
            return (Self.floatingIPView(fip.merging(revised) { _, new in new }), fip.string("port_id"))
        }
        await notifyInstances(ofPorts: [before, portID])
        return view
    }

    public func deleteFloatingIP(_ id: String, caller: AuthContext) async throws {
        try Self.requireWriter(caller, "delete_floatingip")
        let before = try await write { db in
            let fip = try await self.visibleFloatingIP(id, caller, on: db)
            if let port = try await NetworkSchema.ports.fetch(fip.string("floating_port_id") ?? "", on: db) {
                try await self.deletePortRow(port, on: db)
            }
            try await NetworkSchema.floatingIPs.delete(id: id, on: db)
            return fip.string("port_id")
        }
        await notifyInstances(ofPorts: [before])
    }

    /// The columns associating `fip` with a port's fixed address, through the router that joins
    /// that address's subnet to the floating network.
    func association(_ fip: Record, portID: String, fixedAddress: String?, caller: AuthContext, on db: any SQLDatabase) async throws -> Record {
        let port = try await visiblePort(portID, caller, on: db)
        let v4 = (port["fixed_ips"]?.fixedIPs ?? []).filter { IPAddress($0.address)?.version == 4 }
        let chosen: (subnet: String, address: String)
        if let fixedAddress {
            guard let match = v4.first(where: { $0.address == fixedAddress }) else {
                throw NimbusError.neutron(.badRequest, "BadRequest", "Bad floatingip request: Port \(portID) does not have fixed ip \(fixedAddress).")
            }
            chosen = match
        } else {
            guard let first = v4.first else {
                throw NimbusError.neutron(.badRequest, "BadRequest", "Bad floatingip request: Port \(portID) does not have any IPv4 address.")
            }
            chosen = first
        }
        let external = fip.string("floating_network_id") ?? ""
        let others = try await NetworkSchema.floatingIPs.list([.init("port_id", .equal, .string(portID)),
                                                               .init("fixed_ip_address", .equal, .string(chosen.address))], on: db)
        if let other = others.first(where: { $0.string("id") != fip.string("id") }) {
            throw NimbusError.neutron(.conflict, "FloatingIPPortAlreadyAssociated",
                "Cannot associate floating IP \(fip.string("floating_ip_address") ?? "") (\(fip.string("id") ?? "")) with port \(portID) using fixed IP \(chosen.address), as that fixed IP already has a floating IP on external network \(other.string("floating_network_id") ?? external).")
        }
        guard let router = try await routerJoining(subnet: chosen.subnet, external: external, on: db) else {
            throw NimbusError.neutron(.notFound, "ExternalGatewayForFloatingIPNotFound",
                "External network \(external) is not reachable from subnet \(chosen.subnet).  Therefore, cannot associate Port \(portID) with a Floating IP.")
        }
        return ["port_id": .string(portID), "fixed_ip_address": .string(chosen.address), "router_id": .string(router), "status": "ACTIVE"]
    }

    /// A router with a gateway on `external` and an interface on `subnet`.
    func routerJoining(subnet: String, external: String, on db: any SQLDatabase) async throws -> String? {
        for router in try await NetworkSchema.routers.list([.init("gw_network_id", .equal, .string(external))], on: db) {
            let id = router.string("id") ?? ""
            if try await interfacePorts(id, on: db).contains(where: { ($0["fixed_ips"]?.fixedIPs ?? []).contains { $0.subnet == subnet } }) {
                return id
            }
        }
        return nil
    }

    static func floatingIPView(_ record: Record) -> Record {
        var view = record
        view["floating_port_id"] = nil
        view["tenant_id"] = record["project_id"]
        view["port_forwardings"] = []
        view["qos_policy_id"] = .null
        return view
    }
}
