import Foundation
import NimbusCore
import SQLKit
import Store

/// `GET /servers` filters, as the API read them.
public struct ServerQuery: Sendable {
    public var allTenants = false
    public var projectID: String?
    public var userID: String?
    public var name: String?
    public var status: String?
    public var host: String?
    public var changesSince: String?
    public var changesBefore: String?
    public var image: String?
    public var flavor: String?
    public var reservationID: String?
    public var keyName: String?
    public var locked: Bool?
    public var availabilityZone: String?
    public var tags: [String] = []
    public var tagsAny: [String] = []
    public var notTags: [String] = []
    public var notTagsAny: [String] = []
    public var deleted = false
    public var limit: Int?
    public var marker: String?
    public var sortKeys: [String] = []
    public var sortDirs: [String] = []
    public init() {}
}

extension ComputeService {
    /// Servers the caller may see that match `query`, sorted and paged.
    /// - Returns: the page and whether more follow (for `servers_links`).
    public func servers(_ query: ServerQuery, caller: AuthContext) async throws -> (servers: [Instance], more: Bool) {
        var filters: [RecordTable.Filter] = []
        if caller.isAdmin && query.allTenants {
            if let project = query.projectID { filters.append(.init("project_id", .equal, .string(project))) }
        } else {
            filters.append(.init("project_id", .equal, .string(caller.projectID ?? "")))
        }
        // Deleted servers show only to admins who ask, or in changes-since, as Nova does.
        let includeDeleted = (query.deleted && caller.isAdmin) || query.changesSince != nil
        if !includeDeleted { filters.append(.init("deleted", .equal, .bool(false))) }
        if caller.isAdmin, let host = query.host { filters.append(.init("host", .equal, .string(host))) }
        if caller.isAdmin, let user = query.userID { filters.append(.init("user_id", .equal, .string(user))) }
        if let since = query.changesSince {
            guard let date = Timestamp.parse(since) else { throw NimbusError.badRequest("Invalid input for query parameters changes-since. Value: \(since). '\(since)' is not a 'date-time'") }
            filters.append(.init("updated_at", .greaterThan, .string(Timestamp.keystone(date.addingTimeInterval(-0.000001)))))
        }
        if let before = query.changesBefore {
            guard let date = Timestamp.parse(before) else { throw NimbusError.badRequest("Invalid input for query parameters changes-before. Value: \(before). '\(before)' is not a 'date-time'") }
            filters.append(.init("updated_at", .lessThan, .string(Timestamp.keystone(date.addingTimeInterval(0.000001)))))
        }
        if let image = query.image { filters.append(.init("image_ref", .equal, .string(image.split(separator: "/").last.map(String.init) ?? image))) }
        if let reservation = query.reservationID { filters.append(.init("reservation_id", .equal, .string(reservation))) }
        if let key = query.keyName { filters.append(.init("key_name", .equal, .string(key))) }
        if let zone = query.availabilityZone { filters.append(.init("availability_zone", .equal, .string(zone))) }
        if let locked = query.locked { filters.append(.init("locked", .equal, .bool(locked))) }
        let chosen = filters
        let rows = try await database.read { try await ComputeSchema.instances.list(chosen, on: $0) }
        var instances = rows.map(Instance.init(record:))
        if let name = query.name {
            let pattern: NSRegularExpression
            do { pattern = try NSRegularExpression(pattern: name) } catch {
                throw NimbusError.badRequest("Invalid input for query parameters name. Value: \(name). not a valid regular expression")
            }
            instances = instances.filter { pattern.firstMatch(in: $0.name, range: NSRange($0.name.startIndex..., in: $0.name)) != nil }
        }
        if let status = query.status?.uppercased() {
            instances = instances.filter { $0.status == status }
        }
        if let flavor = query.flavor { instances = instances.filter { $0.flavor.id == flavor } }
        if !query.tags.isEmpty { instances = instances.filter { Set($0.tags).isSuperset(of: query.tags) } }
        if !query.tagsAny.isEmpty { instances = instances.filter { !Set($0.tags).isDisjoint(with: query.tagsAny) } }
        if !query.notTags.isEmpty { instances = instances.filter { !Set($0.tags).isSuperset(of: query.notTags) } }
        if !query.notTagsAny.isEmpty { instances = instances.filter { Set($0.tags).isDisjoint(with: query.notTagsAny) } }
        instances = Self.sorted(instances, keys: query.sortKeys, dirs: query.sortDirs)
        if let marker = query.marker {
            guard let index = instances.firstIndex(where: { $0.id == marker }) else {
                throw NimbusError.badRequest("marker [\(marker)] not found")
            }
            instances.removeFirst(index + 1)
        }
        if let limit = query.limit, instances.count > limit {
            return (Array(instances.prefix(limit)), true)
        }
        return (instances, false)
    }

    static let sortableKeys: Set<String> = [
        "created_at", "updated_at", "display_name", "name", "uuid", "id", "vm_state", "task_state", "power_state",
        "launched_at", "terminated_at", "host", "node", "availability_zone", "key_name", "image_ref", "project_id", "user_id",
    ]

    /// Nova sorts by `created_at desc, id desc` unless told otherwise. Keys are computed once per
    /// instance and indices sorted, rather than comparing (and moving) whole instances.
    static func sorted(_ instances: [Instance], keys: [String], dirs: [String]) -> [Instance] {
        let keys = keys.isEmpty ? ["created_at"] : keys
        let plan: [(String, Bool)] = keys.enumerated().map { index, key in
            let dir = index < dirs.count ? dirs[index] : (dirs.last ?? "desc")
            return (key, dir.lowercased() != "asc")
        } + [("id", true)]
        let values = instances.map { instance in plan.map { sortValue(instance, $0.0) } }
        let order = instances.indices.sorted { a, b in
            for (position, (_, descending)) in plan.enumerated() {
                let left = values[a][position], right = values[b][position]
                if left == right { continue }
                return descending ? left > right : left < right
            }
            return false
        }
        return order.map { instances[$0] }
    }

    static func sortValue(_ instance: Instance, _ key: String) -> String {
        switch key {
        case "created_at": instance.createdAt
        case "updated_at": instance.updatedAt
        case "display_name", "name": instance.name
        case "uuid", "id": instance.id
        case "vm_state": instance.vmState.rawValue
        case "task_state": instance.taskState?.rawValue ?? ""
        case "power_state": String(instance.powerState)
        case "launched_at": instance.launchedAt ?? ""
        case "terminated_at": instance.terminatedAt ?? ""
        case "host": instance.host ?? ""
        case "node": instance.node ?? ""
        case "availability_zone": instance.availabilityZone ?? ""
        case "key_name": instance.keyName ?? ""
        case "image_ref": instance.imageRef
        case "project_id": instance.projectID
        case "user_id": instance.userID
        default: instance.createdAt
        }
    }

    /// `accessIPv4`/`accessIPv6` of a create, update or rebuild body: checked, and kept in the
    /// canonical text Nova stores (`0:0:0:0:0:babe:220.12.22.2` is `::babe:dc0c:1602`).
    /// - Returns: nil when the body does not name it; "" for null.
    static func accessIP(_ fields: FieldReader, version: Int) throws -> String? {
        let key = version == 4 ? "accessIPv4" : "accessIPv6"
        guard fields.has(key) else { return nil }
        guard let text = try fields.string(key, nullable: true) else { return "" }
        let family = version == 4 ? AF_INET : AF_INET6
        var bytes = [UInt8](repeating: 0, count: 16)
        var canonical = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_pton(family, text, &bytes) == 1, inet_ntop(family, bytes, &canonical, socklen_t(canonical.count)) != nil else {
            throw NimbusError.badRequest("Invalid input for field/attribute \(key). Value: \(text). '\(text)' is not a 'ipv\(version)'")
        }
        return String(decoding: canonical.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `PUT /servers/{id}`: name, description, accessIPv4/6.
    public func updateServer(_ id: String, _ body: JSONValue, caller: AuthContext, version: Int) async throws -> Instance {
        let fields = try FieldReader(body: body, root: "server")
        var allowed: Set<String> = ["name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"]
        if version >= 19 { allowed.insert("description") }
        if version >= 90 { allowed.insert("hostname") }
        try fields.rejectUnknown(allowed)
        let name = try Self.displayName(fields, required: false)
        let description = fields.has("description") ? try fields.string("description", nullable: true, maxLength: 255) : nil
        let (accessIPv4, accessIPv6) = (try Self.accessIP(fields, version: 4), try Self.accessIP(fields, version: 6))
        return try await database.transaction { db in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            try self.requireUnlocked(instance, caller, action: "update")
            if let name { instance.name = name }
            if fields.has("description") { instance.description = description }
            if let accessIPv4 { instance.accessIPv4 = accessIPv4 }
            if let accessIPv6 { instance.accessIPv6 = accessIPv6 }
            try await self.save(instance, on: db)
            return instance
        }
    }

    func requireUnlocked(_ instance: Instance, _ caller: AuthContext, action: String) throws {
        if instance.locked && !caller.isAdmin {
            throw NimbusError.conflict("Instance \(instance.id) is locked")
        }
    }

    /// Deletes a server. Its host's agent destroys the guest; when there is no host, or the host
    /// is down, the delete completes here at once ("local delete", as Nova does), so deletion never
    /// waits on a host that may never come back.
    public func deleteServer(_ id: String, caller: AuthContext, requestID: String, force: Bool = false) async throws {
        guard caller.isMember else { throw NimbusError.forbidden("Policy doesn't allow os_compute_api:servers:delete to be performed.") }
        let upHosts = try await upComputeHosts()
        let (host, local) = try await database.transaction { db -> (String?, Bool) in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            try self.requireUnlocked(instance, caller, action: "delete")
            if instance.taskState == .deleting && !force { return (nil, false) }
            try await self.recordAction(force ? "forceDelete" : "delete", instance: instance, caller: caller, requestID: requestID, on: db)
            instance.requestID = requestID
            if let host = instance.host, upHosts.contains(host) {
                instance.taskState = .deleting
                try await self.save(instance, on: db)
                try await self.announceWake(host, on: db)
                return (host, false)
            }
            try await self.markDeleted(&instance, on: db)
            return (nil, true)
        }
        if local {
            try await placement.releaseAllocations(consumer: id)
            await unplugPorts(id)
        }
        if let host { wakeHost(host) }
    }

    /// Marks an instance deleted, in the caller's transaction; its allocations are released by the caller after commit.
    func markDeleted(_ instance: inout Instance, on db: any SQLDatabase) async throws {
        instance.deleted = true
        instance.vmState = .deleted
        instance.taskState = nil
        instance.powerState = 0
        instance.terminatedAt = Self.now()
        try await save(instance, on: db)
        if let group = instance.serverGroup { try await removeGroupMember(group, instance.id, on: db) }
    }

    // MARK: - Metadata and tags

    public func setMetadata(_ id: String, _ items: [String: String], replace: Bool, caller: AuthContext) async throws -> [String: String] {
        try await database.transaction { db in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            try self.requireUnlocked(instance, caller, action: "update_metadata")
            let merged = replace ? items : instance.metadata.merging(items) { _, new in new }
            let limit = try await self.quotaLimits(instance.projectID, on: db)["metadata_items"] ?? -1
            if limit >= 0 && merged.count > limit { throw NimbusError(.overQuota, "Quota exceeded for metadata_items: Requested \(merged.count), but already used 0 of \(limit) metadata_items") }
            instance.metadata = merged
            try await self.save(instance, on: db)
            return merged
        }
    }

    public func deleteMetadata(_ id: String, key: String, caller: AuthContext) async throws {
        try await database.transaction { db in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            try self.requireUnlocked(instance, caller, action: "delete_metadata")
            guard instance.metadata.removeValue(forKey: key) != nil else { throw NimbusError.notFound("Metadata item was not found") }
            try await self.save(instance, on: db)
        }
    }

    public func setTags(_ id: String, _ tags: [String], caller: AuthContext) async throws -> [String] {
        for tag in tags where tag.isEmpty || tag.count > 60 || tag.contains("/") || tag.contains(",") {
            throw NimbusError.badRequest("Invalid input for field/attribute tags. Value: \(tag). Tags must be 1-60 characters without '/' or ','.")
        }
        guard tags.count <= 50 else { throw NimbusError.badRequest("The number of tags exceeded the per-server limit 50") }
        return try await database.transaction { db in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            var unique: [String] = []
            for tag in tags where !unique.contains(tag) { unique.append(tag) }
            instance.tags = unique
            try await self.save(instance, on: db)
            return unique
        }
    }

    public func addTag(_ id: String, _ tag: String, caller: AuthContext) async throws -> Bool {
        let current = try await instance(id, caller: caller).tags
        if current.contains(tag) { return false }
        _ = try await setTags(id, current + [tag], caller: caller)
        return true
    }

    public func removeTag(_ id: String, _ tag: String, caller: AuthContext) async throws {
        let current = try await instance(id, caller: caller).tags
        guard current.contains(tag) else { throw NimbusError.notFound("Tag \(tag) could not be found.") }
        _ = try await setTags(id, current.filter { $0 != tag }, caller: caller)
    }
}
