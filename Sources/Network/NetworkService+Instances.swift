import Dataplane
import NimbusCore
import SQLKit
import Store

/// One network attachment Compute asks for when it builds a server.
public enum PortRequest: Sendable, Equatable {
    /// Nova's get-me-a-network: the project's own network, else a shared one.
    case auto
    case network(String, fixedIP: String?)
    /// A port the user created beforehand; it must be unbound and in the project.
    case port(String)
}

/// One address of a server, as Nova's `addresses` lists it.
public struct InstanceAddress: Sendable, Equatable {
    public var networkName: String
    public var address: String
    public var version: Int
    public var mac: String
    /// `fixed` or `floating` (`OS-EXT-IPS:type`).
    public var type: String
    public var portID: String
    /// The fixed address's subnet (nil for a floating address).
    public var subnetID: String? = nil
}

/// What Compute calls, in-process, around a server's life: ports made (or adopted) for it,
/// bound to its host, and released when it goes.
extension NetworkService {
    static let computeOwner = "compute:nova"

    /// Creates (or adopts) the server's ports in one transaction: all or none.
    /// - Returns: the ports, in request order.
    public func allocateInstancePorts(project: String, instance: String, requests: [PortRequest], securityGroups: [String] = []) async throws -> [Record] {
        try await write { db in
            var ports: [Record] = []
            for request in requests {
                switch request {
                case .port(let id):
                    ports.append(try await self.adoptPort(id, project: project, instance: instance, on: db))
                case .auto:
                    let network = try await self.automaticNetwork(project: project, on: db)
                    ports.append(try await self.instancePort(network: network, fixedIP: nil, project: project, instance: instance,
                                                             securityGroups: securityGroups, on: db))
                case .network(let id, let fixedIP):
                    guard let network = try await self.usableNetwork(id, project: project, on: db) else {
                        throw NimbusError.neutron(.notFound, "NetworkNotFound", "Network \(id) could not be found.")
                    }
                    ports.append(try await self.instancePort(network: network, fixedIP: fixedIP, project: project, instance: instance,
                                                             securityGroups: securityGroups, on: db))
                }
            }
            return ports.map { Self.portView($0, caller: nil) }
        }
    }

    func instancePort(network: Record, fixedIP: String?, project: String, instance: String, securityGroups: [String] = [],
                      on db: any SQLDatabase) async throws -> Record {
        var spec = PortSpec(project: project, networkID: network.string("id") ?? "")
        if !securityGroups.isEmpty { spec.securityGroups = securityGroups }
        spec.deviceID = instance
        spec.deviceOwner = Self.computeOwner
        spec.createdForInstance = true
        if let fixedIP {
            guard IPAddress(fixedIP) != nil else { throw NimbusError.badRequest("Invalid fixed IP address (\(fixedIP))") }
            spec.fixedIPs = [.address(fixedIP, subnet: nil)]
        }
        return try await insertPort(spec, network: network, on: db)
    }

    func adoptPort(_ id: String, project: String, instance: String, on db: any SQLDatabase) async throws -> Record {
        guard let port = try await NetworkSchema.ports.fetchForUpdate(id, on: db), port.string("project_id") == project else {
            throw NimbusError.notFound("Port \(id) could not be found.")
        }
        guard (port.string("device_id") ?? "").isEmpty || port.string("device_id") == instance else {
            throw NimbusError.conflict("Port \(id) is still in use.")
        }
        let changes: Record = ["device_id": .string(instance), "device_owner": .string(Self.computeOwner), "created_for_instance": false]
        let revised = Self.revised(changes, from: port)
        try await NetworkSchema.ports.update(id, revised, on: db)
        return port.merging(revised) { _, new in new }
    }

    /// The project's own non-external network, else a shared one, as Nova's auto allocation.
    func automaticNetwork(project: String, on db: any SQLDatabase) async throws -> Record {
        let networks = try await NetworkSchema.networks.list(orderBy: "created_at", on: db)
        if let own = networks.first(where: { $0.string("project_id") == project && $0["router_external"] != true }) { return own }
        if let shared = networks.first(where: { $0["shared"] == true && $0["router_external"] != true }) { return shared }
        throw NimbusError.badRequest("Unable to automatically allocate a network for project \(project)")
    }

    /// Binds the server's ports to `host`; the host's agent then wires them.
    public func bindInstancePorts(instance: String, host: String) async throws {
        try await write { db in
            try await db.update("net_ports").set("host_id", to: SQLBind(host)).set("vif_type", to: SQLBind("tap"))
                .set("updated_at", to: SQLBind(Self.now()))
                .where("device_id", .equal, SQLBind(instance)).where("device_owner", .like, SQLBind("compute:%")).run()
        }
    }

    /// Deletes the ports made for the server and unbinds the ones the user brought.
    public func releaseInstancePorts(instance: String) async throws {
        try await write { db in
            let ports = try await NetworkSchema.ports.list([.init("device_id", .equal, .string(instance))], on: db)
                .filter { ($0.string("device_owner") ?? "").hasPrefix("compute:") }
            for port in ports { try await self.release(port, on: db) }
        }
    }

    /// One more port for a running server (Nova's interface attach): made on a network or
    /// adopted, then bound to the server's host. - Returns: the port's id.
    public func attachInstancePort(project: String, instance: String, request: PortRequest, host: String) async throws -> String {
        let port = try await write { db -> Record in
            switch request {
            case .port(let id):
                return try await self.adoptPort(id, project: project, instance: instance, on: db)
            case .auto:
                let network = try await self.automaticNetwork(project: project, on: db)
                return try await self.instancePort(network: network, fixedIP: nil, project: project, instance: instance, on: db)
            case .network(let id, let fixedIP):
                guard let network = try await self.usableNetwork(id, project: project, on: db) else {
                    throw NimbusError.notFound("Network \(id) could not be found.")
                }
                return try await self.instancePort(network: network, fixedIP: fixedIP, project: project, instance: instance, on: db)
            }
        }
        try await bindInstancePorts(instance: instance, host: host)
        return port.string("id") ?? ""
    }

    /// Takes one port off a server (Nova's interface detach): deleted if it was made for the
    /// server, else unbound and left to its owner.
    public func detachInstancePort(instance: String, port id: String) async throws {
        try await write { db in
            guard let port = try await NetworkSchema.ports.fetchForUpdate(id, on: db), port.string("device_id") == instance else { return }
            try await self.release(port, on: db)
        }
    }

    private func release(_ port: Record, on db: any SQLDatabase) async throws {
        if port["created_for_instance"] == true {
            try await deletePortRow(port, on: db)
        } else {
            let changes: Record = ["device_id": "", "device_owner": "", "host_id": "", "vif_type": "unbound", "status": "DOWN"]
            try await NetworkSchema.ports.update(port.string("id") ?? "", Self.revised(changes, from: port), on: db)
        }
    }

    /// Addresses per server, fixed and floating, for Nova's `addresses`.
    public func instanceAddresses(_ instances: [String]) async throws -> [String: [InstanceAddress]] {
        guard !instances.isEmpty else { return [:] }
        return try await database.read { db in
            let ports = try await db.select().columns(NetworkSchema.ports.columns.map { SQLIdentifier($0.name) }).from("net_ports")
                .where("device_id", .in, SQLBind.group(instances)).all()
                .map { try NetworkSchema.ports.decodeRow($0) }
            var names: [String: String] = [:]
            var floating: [String: [Record]] = [:]
            if !ports.isEmpty {
                let networkIDs = Array(Set(ports.compactMap { $0.string("network_id") }))
                for row in try await db.select().columns("id", "name").from("net_networks").where("id", .in, SQLBind.group(networkIDs)).all() {
                    names[try row.decode(column: "id", as: String.self)] = try row.decode(column: "name", as: String.self)
                }
                let portIDs = ports.compactMap { $0.string("id") }
                let fips = try await db.select().columns(NetworkSchema.floatingIPs.columns.map { SQLIdentifier($0.name) }).from("net_floatingips")
                    .where("port_id", .in, SQLBind.group(portIDs)).all().map { try NetworkSchema.floatingIPs.decodeRow($0) }
                floating = Dictionary(grouping: fips) { $0.string("port_id") ?? "" }
            }
            var out: [String: [InstanceAddress]] = [:]
            for port in ports.sorted(by: { ($0.string("created_at") ?? "", $0.string("id") ?? "") < ($1.string("created_at") ?? "", $1.string("id") ?? "") }) {
                let instance = port.string("device_id") ?? ""
                let name = names[port.string("network_id") ?? ""] ?? ""
                let mac = port.string("mac_address") ?? ""
                let id = port.string("id") ?? ""
                for entry in port["fixed_ips"]?.fixedIPs ?? [] {
                    let version = IPAddress(entry.address)?.version ?? 4
                    out[instance, default: []].append(InstanceAddress(networkName: name, address: entry.address, version: version, mac: mac, type: "fixed",
                                                                      portID: id, subnetID: entry.subnet))
                    for fip in floating[id] ?? [] where fip.string("fixed_ip_address") == entry.address {
                        out[instance, default: []].append(InstanceAddress(networkName: name, address: fip.string("floating_ip_address") ?? "",
                                                                          version: 4, mac: mac, type: "floating", portID: id))
                    }
                }
            }
            return out
        }
    }

    /// The server's ports as its host's agent wires them (tap from `DataplaneNames.tap(port:)`).
    public func instancePorts(_ instance: String) async throws -> [PortWiring] {
        try await database.read { db in
            let world = try await self.loadWorld(on: db)
            return world.ports.filter { $0.string("device_id") == instance && ($0.string("device_owner") ?? "").hasPrefix("compute:") }
                .map { Self.portWiring($0, world: world) }
        }
    }
}

/// A server's port with what Compute caches of it: its network's name and MTU, and its addresses.
public struct InstancePortInfo: Sendable, Equatable {
    public var portID: String
    public var networkID: String
    public var networkName: String
    public var mtu: Int
    public var mac: String
    public var addresses: [InstanceAddress]
    public var status: String
}

extension NetworkService {
    /// Checks what a boot request asks for before Compute writes anything: the networks are the
    /// project's or shared, ports are the project's and free, `auto` finds a network, and the
    /// security groups (names or ids) are the project's. Nothing is created.
    public func validateInstanceRequests(_ requests: [PortRequest], securityGroups: [String], project: String) async throws {
        try await database.read { db in
            for request in requests {
                switch request {
                case .auto:
                    _ = try await self.automaticNetwork(project: project, on: db)
                case .network(let id, let fixedIP):
                    // Nova answers a boot request naming an unusable network with 400.
                    guard try await self.usableNetwork(id, project: project, on: db) != nil else {
                        throw NimbusError.badRequest("Network \(id) could not be found.")
                    }
                    if let fixedIP, IPAddress(fixedIP) == nil { throw NimbusError.badRequest("Invalid fixed IP address (\(fixedIP))") }
                case .port(let id):
                    guard let port = try await NetworkSchema.ports.fetch(id, on: db), port.string("project_id") == project else {
                        throw NimbusError.badRequest("Port \(id) could not be found.")
                    }
                    guard (port.string("device_id") ?? "").isEmpty else { throw NimbusError.conflict("Port \(id) is still in use.") }
                }
            }
            for group in securityGroups where group != "default" {
                _ = try await self.securityGroupID(group, project: project, on: db)
            }
        }
    }

    /// A network a server of `project` may attach to: the project's own, or a shared one.
    func usableNetwork(_ id: String, project: String, on db: any SQLDatabase) async throws -> Record? {
        guard let network = try await NetworkSchema.networks.fetch(id, on: db),
              network.string("project_id") == project || network["shared"] == true else { return nil }
        return network
    }

    /// A security group of the project by id or, as Nova passes them, by name.
    func securityGroupID(_ nameOrID: String, project: String, on db: any SQLDatabase) async throws -> String {
        if nameOrID == "default" { return try await defaultSecurityGroup(project: project, on: db) }
        if let group = try await NetworkSchema.securityGroups.fetch(nameOrID, on: db), group.string("project_id") == project { return nameOrID }
        let named = try await NetworkSchema.securityGroups.list([.init("project_id", .equal, .string(project)), .init("name", .equal, .string(nameOrID))], on: db)
        guard named.count == 1, let id = named[0].string("id") else {
            if named.count > 1 { throw NimbusError.conflict("Multiple security_group matches found for name '\(nameOrID)', use an ID to be more specific.") }
            throw NimbusError.badRequest("Security group \(nameOrID) not found.")
        }
        return id
    }

    /// The server's ports (ports made for it earlier are reused: a build retried on another host
    /// keeps its addresses), made when it has none yet.
    public func ensureInstancePorts(project: String, instance: String, requests: [PortRequest], securityGroups: [String]) async throws {
        let existing = try await database.read { db in
            try await NetworkSchema.ports.list([.init("device_id", .equal, .string(instance))], on: db)
        }
        guard existing.isEmpty else { return }
        var groupIDs: [String] = []
        if !securityGroups.isEmpty {
            groupIDs = try await write { db in
                var ids: [String] = []
                for group in securityGroups { ids.append(try await self.securityGroupID(group, project: project, on: db)) }
                return ids
            }
        }
        _ = try await allocateInstancePorts(project: project, instance: instance, requests: requests, securityGroups: groupIDs)
    }

    /// The server's ports with their networks' names and MTUs and their addresses (fixed and floating).
    public func instancePortInfo(_ instance: String) async throws -> [InstancePortInfo] {
        let addresses = try await instanceAddresses([instance])[instance] ?? []
        return try await database.read { db in
            let ports = try await NetworkSchema.ports.list([.init("device_id", .equal, .string(instance))], on: db)
                .filter { ($0.string("device_owner") ?? "").hasPrefix("compute:") }
                .sorted { ($0.string("created_at") ?? "", $0.string("id") ?? "") < ($1.string("created_at") ?? "", $1.string("id") ?? "") }
            var networks: [String: Record] = [:]
            for id in Set(ports.compactMap { $0.string("network_id") }) {
                networks[id] = try await NetworkSchema.networks.fetch(id, on: db)
            }
            var out: [InstancePortInfo] = []
            for port in ports {
                let id = port.string("id") ?? ""
                let network = networks[port.string("network_id") ?? ""]
                out.append(InstancePortInfo(portID: id, networkID: port.string("network_id") ?? "", networkName: network?.string("name") ?? "",
                                            mtu: Int(network?["mtu"]?.intValue ?? 1500), mac: port.string("mac_address") ?? "",
                                            addresses: addresses.filter { $0.portID == id }, status: port.string("status") ?? "DOWN"))
            }
            return out
        }
    }
}
