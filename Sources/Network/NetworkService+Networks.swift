import NimbusCore
import SQLKit
import Store

extension NetworkService {
    static let networkFields: Set<String> = [
        "name", "description", "admin_state_up", "shared", "router:external", "mtu", "port_security_enabled",
        "provider:network_type", "provider:physical_network", "provider:segmentation_id", "project_id", "tenant_id",
        "availability_zone_hints", "tags", "dns_domain", "is_default",
    ]

    /// A network the caller may see (own, shared or external). - Throws: 404 `NetworkNotFound`.
    func visibleNetwork(_ id: String, _ caller: AuthContext?, on db: any SQLDatabase) async throws -> Record {
        guard let record = try await NetworkSchema.networks.fetch(id, on: db), caller.map({ Self.networkVisible(record, $0) }) ?? true else {
            throw NimbusError.neutron(.notFound, "NetworkNotFound", "Network \(id) could not be found.")
        }
        return record
    }

    static func networkVisible(_ record: Record, _ caller: AuthContext) -> Bool {
        owns(record, caller) || record["shared"] == true || record["router_external"] == true
    }

    /// A network the caller may change. - Throws: 404 when invisible, 403 when only visible.
    func ownedNetwork(_ id: String, _ caller: AuthContext, _ action: String, on db: any SQLDatabase) async throws -> Record {
        let record = try await visibleNetwork(id, caller, on: db)
        guard Self.owns(record, caller) else { throw NimbusError.policy(action) }
        return record
    }

    public func listNetworks(caller: AuthContext) async throws -> [Record] {
        try await database.read { db in
            let networks = try await NetworkSchema.networks.list(on: db).filter { Self.networkVisible($0, caller) }
            let subnets = try await self.subnetIDsByNetwork(on: db)
            return networks.map { Self.networkView($0, subnets: subnets[$0.string("id") ?? ""] ?? [], caller: caller) }
        }
    }

    public func network(_ id: String, caller: AuthContext) async throws -> Record {
        try await database.read { db in
            let record = try await self.visibleNetwork(id, caller, on: db)
            return Self.networkView(record, subnets: try await self.subnetIDsByNetwork(id, on: db)[id] ?? [], caller: caller)
        }
    }

    func subnetIDsByNetwork(_ network: String? = nil, on db: any SQLDatabase) async throws -> [String: [String]] {
        let query = db.select().columns("id", "network_id").from("net_subnets")
        if let network { query.where("network_id", .equal, SQLBind(network)) }
        var byNetwork: [String: [String]] = [:]
        for row in try await query.orderBy("created_at").orderBy("id").all() {
            byNetwork[try row.decode(column: "network_id", as: String.self), default: []].append(try row.decode(column: "id", as: String.self))
        }
        return byNetwork
    }

    public func createNetwork(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "create_network")
        let input = try FieldReader(body: body, root: "network")
        try Self.rejectUnknown(input, Self.networkFields)
        let project = try Self.owningProject(input, caller, "create_network")
        let shared = try input.bool("shared") ?? false
        let external = try input.bool("router:external") ?? false
        if shared { try Self.requireAdmin(caller, "create_network:shared") }
        if external { try Self.requireAdmin(caller, "create_network:router:external") }
        let given = try Self.segment(input, caller)
        var record: Record = [
            "id": .string(Identifier.uuid()), "project_id": .string(project), "name": .string(try input.string("name", maxLength: 255) ?? ""),
            "description": .string(try input.string("description", maxLength: 255) ?? ""),
            "admin_state_up": .bool(try input.bool("admin_state_up") ?? true), "shared": .bool(shared),
            "router_external": .bool(external), "port_security_enabled": .bool(try input.bool("port_security_enabled") ?? true),
            "status": "ACTIVE",
        ]
        let maximum: Int64 = given.type == "vxlan" ? 1450 : 1500
        let mtu = try input.int("mtu", minimum: 68) ?? maximum
        if mtu > maximum { throw NimbusError.invalidInput("Requested MTU is too big, maximum is \(maximum)") }
        record["mtu"] = .int(mtu)
        Self.standardAttributes(&record, tags: try input.stringArray("tags") ?? [])
        let range = configuration.vniRange
        let row0 = record
        return try await write { db in
            var segment = given
            try await self.enforceQuota("network", project: project, on: db)
            if segment.type == "vxlan" && segment.id == nil { segment.id = try await Self.nextVNI(range, on: db) }
            var row = row0
            row["network_type"] = .string(segment.type)
            row["physical_network"] = .optional(segment.physical)
            row["segmentation_id"] = segment.id.map { .int(Int64($0)) } ?? .null
            try await NetworkSchema.networks.insert(row, on: db)
            return Self.networkView(row, subnets: [], caller: caller)
        }
    }

    /// The provider attributes: admins may set them; everyone else gets a VXLAN tenant network.
    static func segment(_ input: FieldReader, _ caller: AuthContext) throws -> (type: String, physical: String?, id: Int?) {
        let keys = ["provider:network_type", "provider:physical_network", "provider:segmentation_id"]
        guard keys.contains(where: input.has) else { return ("vxlan", nil, nil) }
        try requireAdmin(caller, "create_network:provider:network_type")
        let type = try input.string("provider:network_type") ?? "vxlan"
        let physical = try input.string("provider:physical_network", nullable: true)
        let id = try input.int("provider:segmentation_id").map(Int.init)
        switch type {
        case "flat":
            guard let physical, !physical.isEmpty else { throw NimbusError.invalidInput("physical_network required for flat provider network") }
            if id != nil { throw NimbusError.invalidInput("segmentation_id specified for flat provider network") }
            return ("flat", physical, nil)
        case "vxlan":
            if physical != nil { throw NimbusError.invalidInput("provider:physical_network specified for vxlan network") }
            if let id, !(1...16_777_215).contains(id) { throw NimbusError.invalidInput("segmentation_id out of range (1 through 16777215)") }
            return ("vxlan", nil, id)
        default:
            throw NimbusError.invalidInput("network_type value '\(type)' not supported")
        }
    }

    /// The next free VNI above those in use; the unique constraint settles races (and `write` retries).
    static func nextVNI(_ range: ClosedRange<Int>, on db: any SQLDatabase) async throws -> Int {
        let row = try await db.select().column(SQLFunction("MAX", args: SQLIdentifier("segmentation_id")), as: "top")
            .from("net_networks").where("network_type", .equal, SQLBind("vxlan")).first()
        let top = try row?.decodeNil(column: "top") == false ? try row!.decode(column: "top", as: Int.self) : range.lowerBound - 1
        if top < range.upperBound { return max(top + 1, range.lowerBound) }
        let used = Set(try await db.select().column("segmentation_id").from("net_networks")
            .where("network_type", .equal, SQLBind("vxlan")).all().map { try $0.decode(column: "segmentation_id", as: Int.self) })
        guard let free = range.first(where: { !used.contains($0) }) else {
            throw NimbusError.neutron(.serviceUnavailableLike, "NoNetworkAvailable", "Unable to create the network. No tenant network is available for allocation.")
        }
        return free
    }

    public func updateNetwork(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "update_network")
        let input = try FieldReader(body: body, root: "network")
        try Self.rejectUnknown(input, Self.networkFields)
        for key in ["provider:network_type", "provider:physical_network", "provider:segmentation_id", "project_id", "tenant_id"] where input.has(key) {
            throw NimbusError.invalidInput("Cannot update read-only attribute \(key)")
        }
        if input.has("shared") { try Self.requireAdmin(caller, "update_network:shared") }
        if input.has("router:external") { try Self.requireAdmin(caller, "update_network:router:external") }
        var changes: Record = [:]
        if let name = try input.string("name", maxLength: 255) { changes["name"] = .string(name) }
        if let text = try input.string("description", maxLength: 255) { changes["description"] = .string(text) }
        if let flag = try input.bool("admin_state_up") { changes["admin_state_up"] = .bool(flag) }
        if let flag = try input.bool("shared") { changes["shared"] = .bool(flag) }
        if let flag = try input.bool("router:external") { changes["router_external"] = .bool(flag) }
        if let flag = try input.bool("port_security_enabled") { changes["port_security_enabled"] = .bool(flag) }
        if let tags = try input.stringArray("tags") { changes["tags"] = .array(tags.map { .string($0) }) }
        let mtu = try input.int("mtu", minimum: 68)
        let fixed = changes
        return try await write { db in
            let record = try await self.ownedNetwork(id, caller, "update_network", on: db)
            var changes = fixed
            if let mtu {
                let maximum: Int64 = record.string("network_type") == "vxlan" ? 1450 : 1500
                if mtu > maximum { throw NimbusError.invalidInput("Requested MTU is too big, maximum is \(maximum)") }
                changes["mtu"] = .int(mtu)
            }
            let revised = Self.revised(changes, from: record)
            try await NetworkSchema.networks.update(id, revised, on: db)
            let updated = record.merging(revised) { _, new in new }
            return Self.networkView(updated, subnets: try await self.subnetIDsByNetwork(id, on: db)[id] ?? [], caller: caller)
        }
    }

    /// Deletes a network with its subnets and DHCP port. - Throws: 409 `NetworkInUse` while any
    /// other port (a VM's, a router's, a floating IP's) is on it.
    public func deleteNetwork(_ id: String, caller: AuthContext) async throws {
        try Self.requireWriter(caller, "delete_network")
        try await write { db in
            _ = try await self.ownedNetwork(id, caller, "delete_network", on: db)
            let ports = try await NetworkSchema.ports.list([.init("network_id", .equal, .string(id))], on: db)
            if ports.contains(where: { $0.string("device_owner") != "network:dhcp" }) {
                throw NimbusError.neutron(.conflict, "NetworkInUse",
                    "Unable to complete operation on network \(id). There are one or more ports still in use on the network.")
            }
            for port in ports { try await NetworkSchema.ports.delete(id: port.string("id") ?? "", on: db) }
            let subnets = try await NetworkSchema.subnets.list([.init("network_id", .equal, .string(id))], on: db)
            for subnet in subnets {
                let subnetID = subnet.string("id") ?? ""
                try await db.delete(from: "net_ip_allocations").where("subnet_id", .equal, SQLBind(subnetID)).run()
                try await NetworkSchema.subnets.delete(id: subnetID, on: db)
                self.cursors.forget(subnetID)
            }
            try await NetworkSchema.networks.delete(id: id, on: db)
        }
    }

    /// The wire form; provider attributes only for admins, as Neutron's policy shows them.
    static func networkView(_ record: Record, subnets: [String], caller: AuthContext?) -> Record {
        var view = record
        for key in ["router_external", "network_type", "physical_network", "segmentation_id"] { view[key] = nil }
        view["tenant_id"] = record["project_id"]
        view["router:external"] = record["router_external"]
        view["subnets"] = .array(subnets.map { .string($0) })
        view["availability_zones"] = []
        view["availability_zone_hints"] = []
        view["ipv4_address_scope"] = .null
        view["ipv6_address_scope"] = .null
        view["l2_adjacency"] = true
        view["is_default"] = false
        if caller?.isAdmin ?? true {
            view["provider:network_type"] = record["network_type"]
            view["provider:physical_network"] = record["physical_network"]
            view["provider:segmentation_id"] = record["segmentation_id"]
        }
        return view
    }

    /// Neutron refuses attributes it does not know: "Unrecognized attribute(s) 'x'".
    static func rejectUnknown(_ input: FieldReader, _ allowed: Set<String>) throws {
        let unknown = input.fields.keys.filter { !allowed.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest",
                                      "Unrecognized attribute(s) '\(unknown.joined(separator: ", "))'")
        }
    }
}

extension NimbusError.Kind {
    /// Neutron answers 503 when no segment is left.
    static var serviceUnavailableLike: NimbusError.Kind { .unavailable }
}
