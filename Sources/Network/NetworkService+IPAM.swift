import NimbusCore
import SQLKit
import Store

/// IP address management. The allocation table's primary key is the guard; the cursor only
/// spreads concurrent allocators over different candidates so that they rarely collide.
extension NetworkService {
    /// How many cursor candidates to try before reading the subnet's whole allocation list.
    static let cursorProbes = 8

    /// Claims an address of `subnet` for `port`: the one asked for, or a free one from the pools.
    /// - Throws: 409 `IpAddressAlreadyAllocated` for a taken address, 400 `InvalidIpForSubnet` for one
    ///   outside the subnet, 409 `IpAddressGenerationFailure` when the pools are exhausted.
    /// On a SLAAC or DHCPv6-stateless subnet a port without an explicit address gets the one its
    /// MAC forms there.
    func allocate(_ subnet: SubnetLayout, port: String, mac: String, address explicit: IPAddress? = nil,
                  on db: any SQLDatabase) async throws -> IPAddress {
        let address = explicit ?? (subnet.isAutoAddressed ? subnet.slaacAddress(mac: mac) : nil)
        if let address {
            guard subnet.accepts(address) else {
                throw NimbusError.neutron(.badRequest, "InvalidIpForSubnet", "IP address \(address) is not a valid IP for the specified subnet.")
            }
            guard try await claim(subnet, address, port: port, on: db) else {
                throw NimbusError.neutron(.conflict, "IpAddressAlreadyAllocated", "IP address \(address) already allocated in subnet \(subnet.id)")
            }
            return address
        }
        let size = subnet.poolSize
        if size > 0 {
            for _ in 0..<min(Self.cursorProbes, Int(min(size, 1 << 20))) {
                let offset = cursors.take(subnet.id)
                if let candidate = subnet.poolAddress(at: offset), try await claim(subnet, candidate, port: port, on: db) {
                    return candidate
                }
            }
            // Crowded: read what is taken and walk the pools once (twice if a racer took our pick).
            for _ in 0..<2 {
                let taken = try await allocatedAddresses(subnet.id, on: db)
                guard let free = firstFree(subnet, excluding: taken) else { break }
                if try await claim(subnet, free, port: port, on: db) { return free }
            }
        }
        throw NimbusError.neutron(.conflict, "IpAddressGenerationFailure", "No more IP addresses available on network \(subnet.networkID).")
    }

    /// One insert that either claims the address or, when another port holds it, does nothing.
    /// ON CONFLICT DO NOTHING keeps a PostgreSQL transaction usable after a collision.
    func claim(_ subnet: SubnetLayout, _ address: IPAddress, port: String, on db: any SQLDatabase) async throws -> Bool {
        let rows = try await db.raw("""
            INSERT INTO net_ip_allocations (subnet_id, ip_address, port_id, network_id)
            VALUES (\(bind: subnet.id), \(bind: address.description), \(bind: port), \(bind: subnet.networkID))
            ON CONFLICT DO NOTHING RETURNING ip_address
            """).all()
        return !rows.isEmpty
    }

    func allocatedAddresses(_ subnet: String, on db: any SQLDatabase) async throws -> Set<String> {
        Set(try await db.select().column("ip_address").from("net_ip_allocations")
            .where("subnet_id", .equal, SQLBind(subnet)).all().map { try $0.decode(column: "ip_address", as: String.self) })
    }

    /// The first pool address not in `taken`, scanning at most a million candidates (IPv6 pools
    /// are effectively endless; the cursor finds room there long before).
    func firstFree(_ subnet: SubnetLayout, excluding taken: Set<String>) -> IPAddress? {
        var scanned = 0
        for pool in subnet.pools {
            var address = pool.start
            while address <= pool.end && scanned < 1 << 20 {
                if !taken.contains(address.description) { return address }
                address = address.advanced(by: 1)
                scanned += 1
            }
        }
        return nil
    }

    func releaseAddresses(port: String, subnet: String? = nil, on db: any SQLDatabase) async throws {
        let query = db.delete(from: "net_ip_allocations").where("port_id", .equal, SQLBind(port))
        if let subnet { query.where("subnet_id", .equal, SQLBind(subnet)) }
        try await query.run()
    }

    // MARK: - Availability

    /// `network-ip-availabilities`: per network and subnet, how many addresses exist and are used.
    public func ipAvailabilities(caller: AuthContext) async throws -> [Record] {
        try Self.requireAdmin(caller, "get_network_ip_availability")
        return try await database.read { db in
            let networks = try await NetworkSchema.networks.list(on: db)
            let subnets = try await NetworkSchema.subnets.list(on: db)
            var used: [String: Int64] = [:]
            for row in try await db.select().column("subnet_id").column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n")
                .from("net_ip_allocations").groupBy("subnet_id").all() {
                used[try row.decode(column: "subnet_id", as: String.self)] = Int64(try row.decode(column: "n", as: Int.self))
            }
            return networks.map { network in
                let id = network.string("id") ?? ""
                let own = subnets.filter { $0.string("network_id") == id }
                let entries: [JSONValue] = own.map { subnet in
                    let layout = SubnetLayout(subnet)
                    return [
                        "subnet_id": subnet["id"] ?? .null, "subnet_name": subnet["name"] ?? "", "cidr": subnet["cidr"] ?? .null,
                        "ip_version": subnet["ip_version"] ?? 4, "used_ips": .int(used[layout.id] ?? 0),
                        "total_ips": .int(Int64(clamping: layout.poolSize)),
                    ]
                }
                return [
                    "network_id": .string(id), "network_name": network["name"] ?? "", "project_id": network["project_id"] ?? .null,
                    "tenant_id": network["project_id"] ?? .null, "subnet_ip_availability": .array(entries),
                    "used_ips": .int(entries.reduce(0) { $0 + ($1["used_ips"]?.intValue ?? 0) }),
                    "total_ips": .int(entries.reduce(0) { $0 &+ ($1["total_ips"]?.intValue ?? 0) }),
                ]
            }
        }
    }
}
