import Foundation
import NimbusCore
import Placement
import SQLKit
import Store

extension ComputeService {
    // MARK: - Services

    public func services(caller: AuthContext, host: String?, binary: String?) async throws -> [Record] {
        try Self.requireAdmin(caller, "os_compute_api:os-services:list")
        try await heartbeatControlServices()
        var filters: [RecordTable.Filter] = []
        if let host { filters.append(.init("host", .equal, .string(host))) }
        if let binary { filters.append(.init("service_binary", .equal, .string(binary))) }
        let chosen = filters
        return try await database.read { try await ComputeSchema.services.list(chosen, orderBy: "created_at", on: $0) }
    }

    public func serviceView(_ service: Record, version: Int) -> JSONValue {
        var out: [String: JSONValue] = [
            "id": service["id"] ?? .null, "binary": service["service_binary"] ?? .null, "host": service["host"] ?? .null,
            "zone": service["zone"] ?? .null, "status": service["disabled"]?.boolValue == true ? "disabled" : "enabled",
            "state": isUp(service) ? "up" : "down", "updated_at": .string(Timestamp.keystone(Date(timeIntervalSince1970: Self.seconds(service["last_seen"])))),
            "disabled_reason": service["disabled_reason"] ?? .null,
        ]
        if version >= 11 { out["forced_down"] = .bool(service["forced_down"]?.boolValue == true) }
        return .object(out)
    }

    /// `PUT /os-services/{id}` (2.53): status, disabled_reason and forced_down.
    public func updateService(_ id: String, _ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireAdmin(caller, "os_compute_api:os-services:update")
        guard let fields = body.objectValue else { throw NimbusError.badRequest("Invalid input: the request body must be a JSON object.") }
        let reader = try FieldReader(body, path: "service")
        try reader.rejectUnknown(["status", "disabled_reason", "forced_down"])
        let status = try reader.string("status")
        if let status, status != "enabled" && status != "disabled" {
            throw NimbusError.badRequest("Invalid input for field/attribute status. Value: \(status). '\(status)' is not one of ['enabled', 'disabled']")
        }
        let reason = try reader.string("disabled_reason", minLength: 1, maxLength: 255)
        if reason != nil && status != "disabled" {
            throw NimbusError.badRequest("Specifying 'disabled_reason' with status other than 'disabled' is invalid.")
        }
        let forced = try reader.bool("forced_down")
        guard !fields.isEmpty else { throw NimbusError.badRequest("No updates were requested. Fields 'status' or 'forced_down' should be specified.") }
        let updated = try await database.transaction { db in
            guard var service = try await ComputeSchema.services.fetchForUpdate(id, on: db) else {
                throw NimbusError.notFound("Service \(id) could not be found.")
            }
            if let status {
                service["disabled"] = .bool(status == "disabled")
                service["disabled_reason"] = status == "disabled" ? .optional(reason) : .null
            }
            if let forced { service["forced_down"] = .bool(forced) }
            service["updated_at"] = .string(Self.now())
            try await ComputeSchema.services.update(id, service, on: db)
            return service
        }
        invalidateHostViews()
        return updated
    }

    /// The pre-2.53 form: `PUT /os-services/{disable|enable|force-down|disable-log-reason}` naming host and binary.
    public func updateService(action: String, _ body: JSONValue, caller: AuthContext) async throws -> JSONValue {
        try Self.requireAdmin(caller, "os_compute_api:os-services:update")
        let fields = try FieldReader(body, path: "service")
        let host = try fields.string("host", required: true)!
        let binary = try fields.string("binary", required: true)!
        guard let service = try await services(caller: caller, host: host, binary: binary).first, let id = service.string("id") else {
            throw NimbusError.notFound("Service \(binary) on host \(host) could not be found.")
        }
        var change: [String: JSONValue] = [:]
        switch action {
        case "enable": change["status"] = "enabled"
        case "disable": change["status"] = "disabled"
        case "disable-log-reason":
            change["status"] = "disabled"
            change["disabled_reason"] = .optional(try fields.string("disabled_reason"))
        case "force-down": change["forced_down"] = .bool(try fields.bool("forced_down") ?? true)
        default: throw NimbusError.notFound("Unknown action \(action)")
        }
        let updated = try await updateService(id, .object(change), caller: caller)
        var out: [String: JSONValue] = ["host": .string(host), "binary": .string(binary)]
        if change["status"] != nil { out["status"] = updated["disabled"]?.boolValue == true ? "disabled" : "enabled" }
        if let reason = updated.nonNull("disabled_reason") { out["disabled_reason"] = reason }
        if change["forced_down"] != nil { out["forced_down"] = updated["forced_down"] ?? false }
        return ["service": .object(out)]
    }

    public func deleteService(_ id: String, caller: AuthContext) async throws {
        try Self.requireAdmin(caller, "os_compute_api:os-services:delete")
        guard let service = try await database.read({ try await ComputeSchema.services.fetch(id, on: $0) }) else {
            throw NimbusError.notFound("Service \(id) could not be found.")
        }
        if let host = service.string("host"), service.string("service_binary") == "nova-compute" {
            let busy = try await database.read { db in
                try await ComputeSchema.instances.count([.init("host", .equal, .string(host)), .init("deleted", .equal, .bool(false))], on: db)
            }
            if busy > 0 { throw NimbusError.conflict("Unable to delete compute service that is hosting instances.") }
            if let node = service.string("node_uuid") { try? await placement.deleteProvider(node) }
        }
        try await database.transaction { try await ComputeSchema.services.delete(id: id, on: $0) }
        invalidateHostViews()
    }

    // MARK: - Availability zones

    func availabilityZoneNames() async throws -> Set<String> {
        Set(try await computeNodes().values.map(\.zone)).union(["nova"])
    }

    public func availabilityZones(detail: Bool, caller: AuthContext) async throws -> JSONValue {
        if detail { try Self.requireAdmin(caller, "os_compute_api:os-availability-zone:detail") }
        let services = try await database.read { try await ComputeSchema.services.list(on: $0) }
        var zones: [String: [Record]] = [:]
        for service in services {
            let zone = service.string("zone") ?? "nova"
            if !detail && zone == "internal" { continue }
            zones[zone, default: []].append(service)
        }
        if zones.isEmpty && !detail { zones["nova"] = [] }
        let info: [JSONValue] = zones.keys.sorted().map { zone in
            let members = zones[zone] ?? []
            let available = members.isEmpty || members.contains { isUp($0) && $0["disabled"]?.boolValue != true }
            var hosts: JSONValue = .null
            if detail {
                var byHost: [String: JSONValue] = [:]
                for service in members {
                    let host = service.string("host") ?? ""
                    var entries = byHost[host]?.objectValue ?? [:]
                    entries[service.string("service_binary") ?? ""] = [
                        "available": .bool(isUp(service)), "active": .bool(service["disabled"]?.boolValue != true),
                        "updated_at": .string(Timestamp.keystone(Date(timeIntervalSince1970: Self.seconds(service["last_seen"])))),
                    ]
                    byHost[host] = .object(entries)
                }
                hosts = .object(byHost)
            }
            return ["zoneName": .string(zone), "zoneState": ["available": .bool(available)], "hosts": hosts]
        }
        return ["availabilityZoneInfo": .array(info)]
    }

    // MARK: - Hypervisors

    public func hypervisors(caller: AuthContext, detail: Bool, version: Int, hostPattern: String? = nil) async throws -> [JSONValue] {
        try Self.requireAdmin(caller, "os_compute_api:os-hypervisors:list")
        let services = try await database.read { db in
            try await ComputeSchema.services.list([.init("service_binary", .equal, "nova-compute")], orderBy: "host", on: db)
        }
        var out: [JSONValue] = []
        for service in services where hostPattern == nil || (service.string("host") ?? "").contains(hostPattern!) {
            out.append(try await hypervisorView(service, detail: detail, version: version))
        }
        return out
    }

    public func hypervisor(_ id: String, caller: AuthContext, version: Int) async throws -> JSONValue {
        try Self.requireAdmin(caller, "os_compute_api:os-hypervisors:show")
        let services = try await database.read { db in
            try await ComputeSchema.services.list([.init("service_binary", .equal, "nova-compute")], on: db)
        }
        guard let service = services.first(where: { $0.string("node_uuid") == id || $0.string("host") == id }) else {
            throw NimbusError.notFound("Hypervisor \(id) could not be found.")
        }
        return try await hypervisorView(service, detail: true, version: version)
    }

    func hypervisorView(_ service: Record, detail: Bool, version: Int) async throws -> JSONValue {
        let host = service.string("host") ?? ""
        var out: [String: JSONValue] = [
            "id": version >= 53 ? (service["node_uuid"] ?? .null) : .int(Int64(abs(host.hashValue % 100_000))),
            "hypervisor_hostname": .string(host), "state": isUp(service) ? "up" : "down",
            "status": service["disabled"]?.boolValue == true ? "disabled" : "enabled",
        ]
        guard detail else { return .object(out) }
        let facts = service["facts"]?.objectValue ?? [:]
        var used: [String: Int64] = [:]
        if let node = service.string("node_uuid") { used = (try? await placement.usages(of: node))?.usages ?? [:] }
        let running = try await database.read { db in
            try await ComputeSchema.instances.count([.init("host", .equal, .string(host)), .init("deleted", .equal, .bool(false))], on: db)
        }
        let vcpus = facts["vcpus"]?.intValue ?? 0, memory = facts["memory_mb"]?.intValue ?? 0, disk = facts["local_gb"]?.intValue ?? 0
        out["hypervisor_type"] = facts["hypervisor_type"] ?? "QEMU"
        out["hypervisor_version"] = facts["hypervisor_version"] ?? 0
        out["host_ip"] = "127.0.0.1"
        out["service"] = ["host": .string(host), "id": service["id"] ?? .null, "disabled_reason": service["disabled_reason"] ?? .null]
        if version < 88 {
            out["vcpus"] = .int(vcpus)
            out["memory_mb"] = .int(memory)
            out["local_gb"] = .int(disk)
            out["vcpus_used"] = .int(used["VCPU"] ?? 0)
            out["memory_mb_used"] = .int(used["MEMORY_MB"] ?? 0)
            out["local_gb_used"] = .int(used["DISK_GB"] ?? 0)
            out["free_ram_mb"] = .int(memory - (used["MEMORY_MB"] ?? 0))
            out["free_disk_gb"] = .int(disk - (used["DISK_GB"] ?? 0))
            out["current_workload"] = 0
            out["running_vms"] = .int(Int64(running))
            out["disk_available_least"] = .int(disk - (used["DISK_GB"] ?? 0))
            // A JSON object from 2.28, a string holding one before.
            let cpuInfo = facts["cpu_info"]?.stringValue ?? "{}"
            out["cpu_info"] = version >= 28 ? ((try? JSONValue.parse(Array(cpuInfo.utf8))) ?? [:]) : .string(cpuInfo)
        } else {
            out["uptime"] = .null
        }
        // Nimbus extras an operator wants on `hypervisor show`: the accelerator QEMU uses.
        out["nimbus:accelerator"] = facts["accelerator"] ?? .null
        out["nimbus:ksm"] = facts["ksm"] ?? [:]
        return .object(out)
    }

    public func hypervisorStatistics(caller: AuthContext) async throws -> JSONValue {
        let all = try await hypervisors(caller: caller, detail: true, version: 87)
        var totals: [String: Int64] = [:]
        let keys = ["vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used", "free_ram_mb",
                    "free_disk_gb", "current_workload", "running_vms", "disk_available_least"]
        for hypervisor in all { for key in keys { totals[key, default: 0] += hypervisor[key]?.intValue ?? 0 } }
        var out: [String: JSONValue] = ["count": .int(Int64(all.count))]
        for key in keys { out[key] = .int(totals[key] ?? 0) }
        return ["hypervisor_statistics": .object(out)]
    }

    // MARK: - Usage

    /// `os-simple-tenant-usage`: hours each server existed within [start, end], by project.
    public func usage(projectID: String?, start: Date, end: Date, detailed: Bool, caller: AuthContext) async throws -> [JSONValue] {
        if projectID == nil || projectID != caller.projectID {
            try Self.requireAdmin(caller, "os_compute_api:os-simple-tenant-usage:list")
        }
        var filters: [RecordTable.Filter] = []
        if let projectID { filters.append(.init("project_id", .equal, .string(projectID))) }
        let chosen = filters
        let rows = try await database.read { try await ComputeSchema.instances.list(chosen, orderBy: "created_at", on: $0) }
        var byProject: [String: [Instance]] = [:]
        for instance in rows.map(Instance.init(record:)) { byProject[instance.projectID, default: []].append(instance) }
        let now = Date()
        var out: [JSONValue] = []
        for project in byProject.keys.sorted() {
            var totals = (hours: 0.0, vcpus: 0.0, memory: 0.0, disk: 0.0)
            var servers: [JSONValue] = []
            for instance in byProject[project] ?? [] {
                let began = Timestamp.parse(instance.launchedAt ?? instance.createdAt) ?? now
                let ended = instance.terminatedAt.flatMap(Timestamp.parse)
                let from = max(began, start), to = min(ended ?? now, end)
                guard to > from else { continue }
                let hours = to.timeIntervalSince(from) / 3600
                let disk = instance.flavor.disk + instance.flavor.ephemeral
                totals.hours += hours
                totals.vcpus += hours * Double(instance.flavor.vcpus)
                totals.memory += hours * Double(instance.flavor.ram)
                totals.disk += hours * Double(disk)
                if detailed {
                    servers.append([
                        "instance_id": .string(instance.id), "name": .string(instance.name), "hours": .double(hours),
                        "memory_mb": .int(instance.flavor.ram), "local_gb": .int(disk), "vcpus": .int(instance.flavor.vcpus),
                        "tenant_id": .string(project), "flavor": .string(instance.flavor.name),
                        "started_at": .string(Timestamp.keystone(began).replacingOccurrences(of: "Z", with: "")),
                        "ended_at": ended.map { .string(Timestamp.keystone($0).replacingOccurrences(of: "Z", with: "")) } ?? .null,
                        "state": .string(instance.deleted ? "terminated" : instance.vmState.rawValue),
                        "uptime": .int(Int64((ended ?? now).timeIntervalSince(began))),
                    ])
                }
            }
            var usage: [String: JSONValue] = [
                "tenant_id": .string(project), "total_hours": .double(totals.hours), "total_vcpus_usage": .double(totals.vcpus),
                "total_memory_mb_usage": .double(totals.memory), "total_local_gb_usage": .double(totals.disk),
                "start": .string(Timestamp.keystone(start).replacingOccurrences(of: "Z", with: "")),
                "stop": .string(Timestamp.keystone(end).replacingOccurrences(of: "Z", with: "")),
            ]
            if detailed { usage["server_usages"] = .array(servers) }
            out.append(.object(usage))
        }
        return out
    }
}

extension ComputeService {
    /// Each compute host's `host_status` (2.16): UP, DOWN or MAINTENANCE (disabled).
    func hostStates() async throws -> [String: String] {
        // Admins poll servers often; host state changes on a heartbeat scale, so a second-old view is enough.
        if let cached = hostStateCache.value(maxAge: 1) { return cached }
        let generation = hostStateCache.currentGeneration
        let rows = try await database.read { db in
            try await ComputeSchema.services.list([.init("service_binary", .equal, "nova-compute")], on: db)
        }
        var out: [String: String] = [:]
        for row in rows {
            guard let host = row.string("host") else { continue }
            out[host] = !isUp(row) ? "DOWN" : (row["disabled"]?.boolValue == true ? "MAINTENANCE" : "UP")
        }
        hostStateCache.store(out, loadedAt: generation)
        return out
    }
}

extension ComputeService {
    /// The host's uptime line as `uptime` prints it, which is what Nova's hypervisor uptime returns.
    static func hostUptime() -> String {
        let seconds = (try? String(contentsOfFile: "/proc/uptime", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) } ?? 0
        let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "0 0 0").split(separator: " ").prefix(3).joined(separator: ", ")
        let days = Int(seconds) / 86400, hours = Int(seconds) % 86400 / 3600, minutes = Int(seconds) % 3600 / 60
        let clock = Timestamp.seconds(Date()).dropFirst(11).prefix(8)
        let up = days > 0 ? "\(days) day\(days == 1 ? "" : "s"), \(hours):\(minutes < 10 ? "0" : "")\(minutes)" : "\(hours):\(minutes < 10 ? "0" : "")\(minutes)"
        return " \(clock) up \(up),  0 users,  load average: \(load)"
    }
}
