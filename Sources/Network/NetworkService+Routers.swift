import NimbusCore
import SQLKit
import Store

extension NetworkService {
    static let routerFields: Set<String> = [
        "name", "description", "admin_state_up", "external_gateway_info", "project_id", "tenant_id", "tags",
        "availability_zone_hints", "distributed", "ha", "flavor_id", "routes",
    ]

    func visibleRouter(_ id: String, _ caller: AuthContext, on db: any SQLDatabase) async throws -> Record {
        guard let record = try await NetworkSchema.routers.fetch(id, on: db), Self.owns(record, caller) else {
            throw NimbusError.neutron(.notFound, "RouterNotFound", "Router \(id) could not be found")
        }
        return record
    }

    public func listRouters(caller: AuthContext) async throws -> [Record] {
        try await database.read { db in
            let filter: [RecordTable.Filter] = caller.isAdmin ? [] : [.init("project_id", .equal, .optional(caller.projectID))]
            var views: [Record] = []
            for router in try await NetworkSchema.routers.list(filter, on: db) { views.append(try await self.routerView(router, caller: caller, on: db)) }
            return views
        }
    }

    public func router(_ id: String, caller: AuthContext) async throws -> Record {
        try await database.read { db in try await self.routerView(try await self.visibleRouter(id, caller, on: db), caller: caller, on: db) }
    }

    public func createRouter(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "create_router")
        let input = try FieldReader(body: body, root: "router")
        try Self.rejectUnknown(input, Self.routerFields)
        let project = try Self.owningProject(input, caller, "create_router")
        var router: Record = [
            "id": .string(Identifier.uuid()), "project_id": .string(project), "name": .string(try input.string("name", maxLength: 255) ?? ""),
            "description": .string(try input.string("description", maxLength: 255) ?? ""),
            "admin_state_up": .bool(try input.bool("admin_state_up") ?? true), "status": "ACTIVE", "enable_snat": true,
        ]
        Self.standardAttributes(&router, tags: try input.stringArray("tags") ?? [])
        // `{}` is no gateway, as on update (tempest creates routers so).
        let gateway = try input.object("external_gateway_info").flatMap { $0.fields.isEmpty ? nil : $0 }
        let row = router
        return try await write { db in
            try await self.enforceQuota("router", project: project, on: db)
            try await NetworkSchema.routers.insert(row, on: db)
            var stored = row
            if let gateway { stored = try await self.setGateway(stored, gateway, caller: caller, on: db) }
            return try await self.routerView(stored, caller: caller, on: db)
        }
    }

    public func updateRouter(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "update_router")
        let input = try FieldReader(body: body, root: "router")
        try Self.rejectUnknown(input, Self.routerFields.subtracting(["project_id", "tenant_id"]))
        var changes: Record = [:]
        if let name = try input.string("name", maxLength: 255) { changes["name"] = .string(name) }
        if let text = try input.string("description", maxLength: 255) { changes["description"] = .string(text) }
        if let flag = try input.bool("admin_state_up") { changes["admin_state_up"] = .bool(flag) }
        let gatewayValue = input.fields["external_gateway_info"]
        let fixed = changes
        return try await write { db in
            var router = try await self.visibleRouter(id, caller, on: db)
            if let gatewayValue {
                if gatewayValue.isNull || gatewayValue == [:] {
                    router = try await self.clearGateway(router, on: db)
                } else {
                    router = try await self.setGateway(router, try FieldReader(gatewayValue, path: "external_gateway_info"), caller: caller, on: db)
                }
            }
            let revised = Self.revised(fixed, from: router)
            try await NetworkSchema.routers.update(id, revised, on: db)
            return try await self.routerView(router.merging(revised) { _, new in new }, caller: caller, on: db)
        }
    }

    public func deleteRouter(_ id: String, caller: AuthContext) async throws {
        try Self.requireWriter(caller, "delete_router")
        try await write { db in
            let router = try await self.visibleRouter(id, caller, on: db)
            if try await !self.interfacePorts(id, on: db).isEmpty {
                throw NimbusError.neutron(.conflict, "RouterInUse", "Router \(id) still has ports")
            }
            _ = try await self.clearGateway(router, on: db)
            try await NetworkSchema.routers.delete(id: id, on: db)
        }
    }

    func interfacePorts(_ router: String, on db: any SQLDatabase) async throws -> [Record] {
        try await NetworkSchema.ports.list([.init("device_id", .equal, .string(router)), .init("device_owner", .equal, "network:router_interface")], on: db)
    }

    /// Plugs the router into an external network (replacing any previous gateway).
    func setGateway(_ router: Record, _ info: FieldReader, caller: AuthContext, on db: any SQLDatabase) async throws -> Record {
        let networkID = try info.string("network_id", required: true) ?? ""
        let network = try await visibleNetwork(networkID, caller, on: db)
        guard network["router_external"] == true else {
            throw NimbusError.neutron(.badRequest, "BadRequest", "Bad router request: Network \(networkID) is not a valid external network.")
        }
        let snat = try info.bool("enable_snat") ?? true
        var router = router
        if router.string("gw_network_id") == networkID, try info.array("external_fixed_ips") == nil, router.string("gw_port_id") != nil {
            router["enable_snat"] = .bool(snat)
            try await NetworkSchema.routers.update(router.string("id") ?? "", ["enable_snat": .bool(snat)], on: db)
            return router
        }
        router = try await clearGateway(router, on: db)
        var spec = PortSpec(project: "", networkID: networkID)
        spec.deviceOwner = "network:router_gateway"
        spec.deviceID = router.string("id") ?? ""
        spec.portSecurity = false
        if let items = try info.array("external_fixed_ips") { spec.fixedIPs = try Self.fixedIPRequests(items) }
        let port = try await insertPortIgnoringQuota(spec, network: network, on: db)
        let changes: Record = ["gw_network_id": .string(networkID), "gw_port_id": port["id"]!, "enable_snat": .bool(snat)]
        try await NetworkSchema.routers.update(router.string("id") ?? "", changes, on: db)
        return router.merging(changes) { _, new in new }
    }

    func clearGateway(_ router: Record, on db: any SQLDatabase) async throws -> Record {
        guard let portID = router.string("gw_port_id") else { return router }
        let id = router.string("id") ?? ""
        if try await NetworkSchema.floatingIPs.count([.init("router_id", .equal, .string(id))], on: db) > 0 {
            throw NimbusError.neutron(.conflict, "RouterExternalGatewayInUseByFloatingIp",
                "Gateway cannot be updated for router \(id), since a gateway to external network \(router.string("gw_network_id") ?? "") is required by one or more floating IPs.")
        }
        if let port = try await NetworkSchema.ports.fetch(portID, on: db) { try await deletePortRow(port, on: db) }
        let changes: Record = ["gw_network_id": .null, "gw_port_id": .null]
        try await NetworkSchema.routers.update(id, changes, on: db)
        return router.merging(changes) { _, new in new }
    }

    // MARK: - Interfaces

    public func addRouterInterface(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "add_router_interface")
        let input = try FieldReader(body, path: "body")
        let subnetID = try input.string("subnet_id")
        let portID = try input.string("port_id")
        if subnetID != nil && portID != nil {
            throw NimbusError.neutron(.badRequest, "BadRequest", "Bad router request: Cannot specify both subnet-id and port-id.")
        }
        guard subnetID != nil || portID != nil else {
            throw NimbusError.neutron(.badRequest, "BadRequest", "Bad router request: Either subnet_id or port_id must be specified.")
        }
        return try await write { db in
            let router = try await self.visibleRouter(id, caller, on: db)
            let existing = try await self.interfacePorts(id, on: db)
            let attachedSubnets = existing.flatMap { $0["fixed_ips"]?.fixedIPs.map(\.subnet) ?? [] }
            var port: Record
            if let subnetID {
                let subnet = try await self.visibleSubnet(subnetID, caller, on: db)
                guard let gateway = subnet.string("gateway_ip") else {
                    throw NimbusError.neutron(.badRequest, "BadRequest", "Bad router request: Subnet for router interface must have a gateway IP.")
                }
                try await self.checkInterfaceSubnet(router: id, subnet, attached: attachedSubnets, on: db)
                let network = try await self.visibleNetwork(subnet.string("network_id") ?? "", caller, on: db)
                var spec = PortSpec(project: router.string("project_id") ?? "", networkID: subnet.string("network_id") ?? "")
                spec.deviceOwner = "network:router_interface"
                spec.deviceID = id
                spec.portSecurity = false
                spec.fixedIPs = [.address(gateway, subnet: subnetID)]
                port = try await self.insertPortIgnoringQuota(spec, network: network, on: db)
            } else {
                port = try await self.visiblePort(portID!, caller, on: db, forUpdate: true)
                if !(port.string("device_id") ?? "").isEmpty {
                    throw NimbusError.neutron(.conflict, "PortInUse",
                        "Unable to complete operation on port \(portID!) for network \(port.string("network_id") ?? ""). Port already has an attached device \(port.string("device_id") ?? "").")
                }
                let fixed = port["fixed_ips"]?.fixedIPs ?? []
                guard !fixed.isEmpty else {
                    throw NimbusError.neutron(.badRequest, "BadRequest", "Bad router request: Router port must have at least one fixed IP.")
                }
                for entry in fixed {
                    try await self.checkInterfaceSubnet(router: id, try await self.visibleSubnet(entry.subnet, nil, on: db), attached: attachedSubnets, on: db)
                }
                let changes: Record = ["device_id": .string(id), "device_owner": "network:router_interface",
                                       "security_groups": [], "port_security_enabled": false]
                try await NetworkSchema.ports.update(portID!, Self.revised(changes, from: port), on: db)
                try await self.setMemberships(port: portID!, groups: [], on: db)
                port.merge(changes) { _, new in new }
            }
            return Self.interfaceInfo(router, port)
        }
    }

    func checkInterfaceSubnet(router: String, _ subnet: Record, attached: [String], on db: any SQLDatabase) async throws {
        let id = subnet.string("id") ?? ""
        if attached.contains(id) {
            throw NimbusError.neutron(.badRequest, "BadRequest", "Bad router request: Router already has a port on subnet \(id).")
        }
        guard let cidr = CIDR(subnet.string("cidr") ?? "") else { return }
        for other in attached {
            guard let record = try await NetworkSchema.subnets.fetch(other, on: db), let otherCIDR = CIDR(record.string("cidr") ?? "") else { continue }
            if otherCIDR.overlaps(cidr) {
                throw NimbusError.neutron(.badRequest, "BadRequest",
                    "Bad router request: Cidr \(cidr) of subnet \(id) overlaps with cidr \(otherCIDR) of subnet \(other).")
            }
        }
    }

    public func removeRouterInterface(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "remove_router_interface")
        let input = try FieldReader(body, path: "body")
        let subnetID = try input.string("subnet_id")
        let portID = try input.string("port_id")
        guard subnetID != nil || portID != nil else {
            throw NimbusError.neutron(.badRequest, "BadRequest", "Bad router request: Either subnet_id or port_id must be specified.")
        }
        return try await write { db in
            let router = try await self.visibleRouter(id, caller, on: db)
            let interfaces = try await self.interfacePorts(id, on: db)
            let port: Record
            if let portID {
                guard let found = interfaces.first(where: { $0.string("id") == portID }) else {
                    throw NimbusError.neutron(.notFound, "RouterInterfaceNotFound", "Router \(id) does not have an interface with id \(portID)")
                }
                port = found
            } else {
                guard let found = interfaces.first(where: { ($0["fixed_ips"]?.fixedIPs ?? []).contains { $0.subnet == subnetID } }) else {
                    throw NimbusError.neutron(.notFound, "RouterInterfaceNotFoundForSubnet", "Router \(id) has no interface on subnet \(subnetID!)")
                }
                port = found
            }
            let subnets = Set((port["fixed_ips"]?.fixedIPs ?? []).map(\.subnet))
            let fips = try await NetworkSchema.floatingIPs.list([.init("router_id", .equal, .string(id))], on: db)
            for fip in fips {
                if let inner = fip.string("port_id"), let internalPort = try await NetworkSchema.ports.fetch(inner, on: db),
                   (internalPort["fixed_ips"]?.fixedIPs ?? []).contains(where: { subnets.contains($0.subnet) }) {
                    throw NimbusError.neutron(.conflict, "RouterInterfaceInUseByFloatingIP",
                        "Router interface for subnet \(subnets.sorted().first ?? "") on router \(id) cannot be deleted, as it is required by one or more floating IPs.")
                }
            }
            try await self.deletePortRow(port, on: db)
            return Self.interfaceInfo(router, port)
        }
    }

    /// The body Neutron answers interface changes with.
    static func interfaceInfo(_ router: Record, _ port: Record) -> Record {
        let subnets = (port["fixed_ips"]?.fixedIPs ?? []).map(\.subnet)
        return [
            "id": router["id"] ?? .null, "tenant_id": router["project_id"] ?? .null, "project_id": router["project_id"] ?? .null,
            "port_id": port["id"] ?? .null, "network_id": port["network_id"] ?? .null,
            "subnet_id": .optional(subnets.first), "subnet_ids": .array(subnets.map { .string($0) }),
        ]
    }

    func routerView(_ record: Record, caller: AuthContext?, on db: any SQLDatabase) async throws -> Record {
        var view = record
        for key in ["gw_network_id", "gw_port_id", "enable_snat"] { view[key] = nil }
        view["tenant_id"] = record["project_id"]
        view["routes"] = []
        view["availability_zones"] = []
        view["availability_zone_hints"] = []
        view["flavor_id"] = .null
        if caller?.isAdmin ?? true {
            view["distributed"] = false
            view["ha"] = false
        }
        if let network = record.string("gw_network_id") {
            var port: Record?
            if let portID = record.string("gw_port_id") { port = try await NetworkSchema.ports.fetch(portID, on: db) }
            let fixed = (port?["fixed_ips"]?.arrayValue ?? [])
            view["external_gateway_info"] = ["network_id": .string(network), "enable_snat": record["enable_snat"] ?? true,
                                             "external_fixed_ips": .array(fixed)]
        } else {
            view["external_gateway_info"] = .null
        }
        return view
    }
}
