import Foundation
import NimbusCore
import Store

/// The flavor as an instance keeps it: a copy taken at boot (or resize), so later flavor edits or
/// deletes never change a running server, as Nova stores `instance.flavor`.
public struct FlavorSnapshot: Sendable, Equatable {
    public var id: String
    public var name: String
    public var vcpus: Int64
    public var ram: Int64
    public var disk: Int64
    public var ephemeral: Int64
    public var swap: Int64
    public var extraSpecs: [String: String]

    init(record: RecordTable.Record) {
        id = record.string("id") ?? ""
        name = record.string("name") ?? ""
        vcpus = record["vcpus"]?.intValue ?? 0
        ram = record["ram"]?.intValue ?? 0
        disk = record["disk"]?.intValue ?? 0
        ephemeral = record["ephemeral"]?.intValue ?? 0
        swap = record["swap"]?.intValue ?? 0
        extraSpecs = (record["extra_specs"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
    }

    init?(json: JSONValue?) {
        guard let object = json?.objectValue else { return nil }
        self.init(record: object)
    }

    var json: JSONValue {
        ["id": .string(id), "name": .string(name), "vcpus": .int(vcpus), "ram": .int(ram), "disk": .int(disk),
         "ephemeral": .int(ephemeral), "swap": .int(swap), "extra_specs": .object(extraSpecs.mapValues { .string($0) })]
    }

    /// What the instance takes from its host's resource provider.
    var resources: [String: Int64] {
        var out: [String: Int64] = ["VCPU": vcpus, "MEMORY_MB": ram]
        let diskGB = disk + ephemeral + (swap + 1023) / 1024
        if diskGB > 0 { out["DISK_GB"] = diskGB }
        return out
    }
}

/// One server: what the user asked for (desired state) and what was last observed.
public struct Instance: Sendable {
    public var id: String
    public var name: String
    public var projectID: String
    public var userID: String
    public var hostname: String
    public var flavor: FlavorSnapshot
    /// The flavor before a resize, kept until it is confirmed or reverted.
    public var oldFlavor: FlavorSnapshot?
    public var imageRef: String
    public var keyName: String?
    public var keyData: String?
    public var userData: String?
    public var metadata: [String: String]
    public var tags: [String]
    public var availabilityZone: String?
    public var vmState: VMState
    public var taskState: TaskState?
    public var powerState: Int64
    public var host: String?
    public var node: String?
    public var launchedAt: String?
    public var terminatedAt: String?
    public var createdAt: String
    public var updatedAt: String
    public var deleted: Bool
    public var fault: JSONValue?
    public var locked: Bool
    public var lockedBy: String?
    public var lockedReason: String?
    public var description: String?
    public var configDrive: String
    public var reservationID: String
    public var launchIndex: Int64
    public var attempts: Int64
    public var failedHosts: [String]
    public var requestedNetworks: JSONValue
    public var schedulerHints: [String: JSONValue]
    public var serverGroup: String?
    public var accessIPv4: String
    public var accessIPv6: String
    /// The request that created the server, for its instance action.
    public var requestID: String
    /// The image a snapshot in flight fills.
    public var pendingImage: String?
    /// The instance's ports, as last read from the Network service.
    public var networkInfo: [InstanceNIC]
    /// Security groups asked for at boot (names or ids), for the ports made for the instance.
    public var securityGroups: [String]

    init(record r: RecordTable.Record) {
        id = r.string("id") ?? ""
        name = r.string("name") ?? ""
        projectID = r.string("project_id") ?? ""
        userID = r.string("user_id") ?? ""
        hostname = r.string("hostname") ?? ""
        flavor = FlavorSnapshot(json: r["flavor"]) ?? FlavorSnapshot(record: [:])
        oldFlavor = FlavorSnapshot(json: r["old_flavor"])
        imageRef = r.string("image_ref") ?? ""
        keyName = r.string("key_name")
        keyData = r.string("key_data")
        userData = r.string("user_data")
        metadata = (r["metadata"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
        tags = (r["tags"]?.arrayValue ?? []).compactMap(\.stringValue)
        availabilityZone = r.string("availability_zone")
        vmState = VMState(rawValue: r.string("vm_state") ?? "") ?? .error
        taskState = r.string("task_state").flatMap(TaskState.init(rawValue:))
        powerState = r["power_state"]?.intValue ?? 0
        host = r.string("host")
        node = r.string("node")
        launchedAt = r.string("launched_at")
        terminatedAt = r.string("terminated_at")
        createdAt = r.string("created_at") ?? ""
        updatedAt = r.string("updated_at") ?? ""
        deleted = r["deleted"]?.boolValue ?? false
        fault = r.nonNull("fault")
        locked = r["locked"]?.boolValue ?? false
        lockedBy = r.string("locked_by")
        lockedReason = r.string("locked_reason")
        description = r.string("description")
        configDrive = r.string("config_drive") ?? ""
        reservationID = r.string("reservation_id") ?? ""
        launchIndex = r["launch_index"]?.intValue ?? 0
        attempts = r["attempts"]?.intValue ?? 0
        failedHosts = (r["failed_hosts"]?.arrayValue ?? []).compactMap(\.stringValue)
        requestedNetworks = r["requested_networks"] ?? .null
        schedulerHints = r["scheduler_hints"]?.objectValue ?? [:]
        serverGroup = r.string("server_group")
        accessIPv4 = r.string("access_ipv4") ?? ""
        accessIPv6 = r.string("access_ipv6") ?? ""
        requestID = r.string("request_id") ?? ""
        pendingImage = r.string("pending_image")
        securityGroups = (r["security_groups"]?.arrayValue ?? []).compactMap(\.stringValue)
        networkInfo = (r["network_info"]?.serialized()).flatMap { try? JSONDecoder().decode([InstanceNIC].self, from: Data($0.utf8)) } ?? []
    }

    var record: RecordTable.Record {
        [
            "id": .string(id), "name": .string(name), "project_id": .string(projectID), "user_id": .string(userID),
            "hostname": .string(hostname), "flavor": flavor.json, "old_flavor": oldFlavor?.json ?? .null,
            "image_ref": .string(imageRef), "key_name": .optional(keyName), "key_data": .optional(keyData),
            "user_data": .optional(userData), "metadata": .object(metadata.mapValues { .string($0) }),
            "tags": .array(tags.map { .string($0) }), "availability_zone": .optional(availabilityZone),
            "vm_state": .string(vmState.rawValue), "task_state": .optional(taskState?.rawValue),
            "power_state": .int(powerState), "host": .optional(host), "node": .optional(node),
            "launched_at": .optional(launchedAt), "terminated_at": .optional(terminatedAt),
            "created_at": .string(createdAt), "updated_at": .string(updatedAt), "deleted": .bool(deleted),
            "fault": fault ?? .null, "locked": .bool(locked), "locked_by": .optional(lockedBy),
            "locked_reason": .optional(lockedReason), "description": .optional(description),
            "config_drive": .string(configDrive), "reservation_id": .string(reservationID),
            "launch_index": .int(launchIndex), "attempts": .int(attempts),
            "failed_hosts": .array(failedHosts.map { .string($0) }), "requested_networks": requestedNetworks,
            "scheduler_hints": .object(schedulerHints), "server_group": .optional(serverGroup),
            "access_ipv4": .string(accessIPv4), "access_ipv6": .string(accessIPv6), "request_id": .string(requestID),
            // Copies of the flavor's numbers, so quota usage is one SQL sum.
            "vcpus": .int(flavor.vcpus), "memory_mb": .int(flavor.ram), "pending_image": .optional(pendingImage),
            "security_groups": .array(securityGroups.map { .string($0) }),
            "network_info": networkInfo.isEmpty ? .array([]) : ((try? JSONValue.parse(JSONEncoder().encode(networkInfo))) ?? .array([])),
        ]
    }

    /// The API `status`.
    public var status: String { ServerStatus.of(vmState: vmState, taskState: taskState) }
}
