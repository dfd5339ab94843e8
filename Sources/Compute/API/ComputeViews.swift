import Crypto
import Foundation
import NimbusCore
import Store

/// How Compute's resources look on the wire, per microversion.
struct ComputeViews: Sendable {
    let publicURL: String
    let version: Int
    let isAdmin: Bool

    var base: String { publicURL + ComputeAPI.prefix }

    func links(_ collection: String, _ id: String) -> JSONValue {
        [["rel": "self", "href": .string("\(base)/v2.1/\(collection)/\(id)")],
         ["rel": "bookmark", "href": .string("\(base)/\(collection)/\(id)")]]
    }

    /// Nova's opaque host id: a hash of project and host, so users can tell co-location apart
    /// without learning host names.
    static func hostID(_ instance: Instance) -> String {
        guard let host = instance.host else { return "" }
        // 56 hex digits, as long as Nova's SHA-224; formatted by hand because String(format:) is slow here.
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(56)
        for byte in SHA256.hash(data: Data((instance.projectID + host).utf8)).prefix(28) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// Whether `text` is what `Timestamp.keystone` writes (`2026-11-27T10:00:00.123456Z`), the
    /// form Compute stores; then the API's forms are slices of it, with no parsing.
    static func isStoredForm(_ text: String) -> Bool {
        text.utf8.count == 27 && text.utf8.last == UInt8(ascii: "Z")
    }

    /// `2026-11-27T10:00:00Z`, as Nova shows `created` and `updated`.
    static func timestamp(_ text: String?) -> JSONValue {
        guard let text else { return .null }
        if isStoredForm(text) { return .string(String(text.prefix(19)) + "Z") }
        guard let date = Timestamp.parse(text) else { return .null }
        return .string(Timestamp.seconds(date))
    }

    /// `2026-11-27T10:00:00.123456`, as Nova shows `launched_at` and action times.
    static func launchTime(_ text: String?) -> JSONValue {
        guard let text else { return .null }
        if isStoredForm(text) { return .string(String(text.dropLast())) }
        guard let date = Timestamp.parse(text) else { return .null }
        return .string(Timestamp.keystone(date).replacingOccurrences(of: "Z", with: ""))
    }

    func summary(_ instance: Instance) -> JSONValue {
        ["id": .string(instance.id), "name": .string(instance.name), "links": links("servers", instance.id)]
    }

    /// - Parameters:
    ///   - hostStatus: the host's state for `host_status` (2.16), when known.
    ///   - extended: whether the view has the extensions' attributes (`OS-EXT-*`, `OS-SRV-USG:*`,
    ///     `key_name`, `security_groups`…). `PUT /servers/{id}` and `rebuild` leave them out
    ///     before 2.75, as Nova's responses do.
    func server(_ instance: Instance, hostStatus: String? = nil, groups: [String]? = nil, extended: Bool = true) -> JSONValue {
        var out = [String: JSONValue](minimumCapacity: 48)
        out.merge([
            "id": .string(instance.id), "name": .string(instance.name), "status": .string(instance.status),
            "tenant_id": .string(instance.projectID), "user_id": .string(instance.userID),
            "metadata": .object(instance.metadata.mapValues { .string($0) }), "hostId": .string(Self.hostID(instance)),
            "created": Self.timestamp(instance.createdAt), "updated": Self.timestamp(instance.updatedAt),
            "addresses": ComputeService.addresses(instance.networkInfo, extended: extended),
            "accessIPv4": .string(instance.accessIPv4), "accessIPv6": .string(instance.accessIPv6),
            "links": links("servers", instance.id), "OS-DCF:diskConfig": "MANUAL",
            "image": instance.imageRef.isEmpty ? "" : ["id": .string(instance.imageRef), "links": [["rel": "bookmark", "href": .string("\(base)/images/\(instance.imageRef)")]]],
        ] as [String: JSONValue]) { _, new in new }
        if extended {
            out.merge([
                "OS-EXT-AZ:availability_zone": .string(instance.availabilityZone ?? (instance.host == nil ? "" : "nova")),
                "config_drive": .string(instance.configDrive), "key_name": .optional(instance.keyName),
                "OS-SRV-USG:launched_at": Self.launchTime(instance.launchedAt),
                "OS-SRV-USG:terminated_at": Self.launchTime(instance.terminatedAt),
                "OS-EXT-STS:task_state": .optional(instance.taskState?.rawValue),
                "OS-EXT-STS:vm_state": .string(instance.vmState.rawValue),
                "OS-EXT-STS:power_state": .int(instance.powerState),
                "os-extended-volumes:volumes_attached": [],
            ] as [String: JSONValue]) { _, new in new }
        }
        if instance.vmState == .building || instance.vmState == .active { out["progress"] = 0 }
        if version >= 47 {
            var flavor: [String: JSONValue] = [
                "vcpus": .int(instance.flavor.vcpus), "ram": .int(instance.flavor.ram), "disk": .int(instance.flavor.disk),
                "ephemeral": .int(instance.flavor.ephemeral), "swap": .int(instance.flavor.swap),
                "original_name": .string(instance.flavor.name),
            ]
            flavor["extra_specs"] = .object(instance.flavor.extraSpecs.mapValues { .string($0) })
            out["flavor"] = .object(flavor)
        } else {
            out["flavor"] = ["id": .string(instance.flavor.id), "links": [["rel": "bookmark", "href": .string("\(base)/flavors/\(instance.flavor.id)")]]]
        }
        if isAdmin && extended {
            out["OS-EXT-SRV-ATTR:host"] = .optional(instance.host)
            out["OS-EXT-SRV-ATTR:hypervisor_hostname"] = .optional(instance.node)
            out["OS-EXT-SRV-ATTR:instance_name"] = .string("instance-" + instance.id.prefix(8))
            if version >= 3 {
                out["OS-EXT-SRV-ATTR:reservation_id"] = .string(instance.reservationID)
                out["OS-EXT-SRV-ATTR:launch_index"] = .int(instance.launchIndex)
                out["OS-EXT-SRV-ATTR:hostname"] = .string(instance.hostname)
                out["OS-EXT-SRV-ATTR:kernel_id"] = ""
                out["OS-EXT-SRV-ATTR:ramdisk_id"] = ""
                out["OS-EXT-SRV-ATTR:root_device_name"] = "/dev/vda"
                out["OS-EXT-SRV-ATTR:user_data"] = .optional(instance.userData)
            }
            if version >= 16 { out["host_status"] = .string(hostStatus ?? "") }
        }
        if extended && (instance.vmState != .building || instance.host != nil) {
            let groups = instance.securityGroups.isEmpty ? ["default"] : instance.securityGroups
            out["security_groups"] = .array(groups.map { ["name": .string($0)] })
        }
        if let fault = instance.fault, instance.vmState == .error || instance.vmState == .building {
            var shown = fault.objectValue ?? [:]
            if !isAdmin { shown["details"] = nil }
            out["fault"] = .object(shown)
        }
        if version >= 9 { out["locked"] = .bool(instance.locked) }
        if version >= 19 { out["description"] = .optional(instance.description) }
        if version >= 26 { out["tags"] = .array(instance.tags.map { .string($0) }) }
        if version >= 63 { out["trusted_image_certificates"] = .null }
        if version >= 73 { out["locked_reason"] = .optional(instance.lockedReason) }
        if version >= 71, let groups { out["server_groups"] = .array(groups.map { .string($0) }) }
        return .object(out)
    }

    func flavor(_ record: RecordTable.Record, detail: Bool) -> JSONValue {
        let id = record.string("id") ?? ""
        var out: [String: JSONValue] = ["id": .string(id), "name": record["name"] ?? "", "links": links("flavors", id)]
        if version >= 55 { out["description"] = record["description"] ?? .null }
        guard detail else { return .object(out) }
        out["ram"] = record["ram"] ?? 0
        out["disk"] = record["disk"] ?? 0
        out["vcpus"] = record["vcpus"] ?? 0
        out["OS-FLV-EXT-DATA:ephemeral"] = record["ephemeral"] ?? 0
        out["OS-FLV-DISABLED:disabled"] = record["disabled"] ?? false
        let swap = record["swap"]?.intValue ?? 0
        out["swap"] = version >= 75 ? .int(swap) : (swap == 0 ? "" : .int(swap))
        out["rxtx_factor"] = record["rxtx_factor"] ?? .double(1)
        out["os-flavor-access:is_public"] = record["is_public"] ?? true
        if version >= 61 { out["extra_specs"] = record["extra_specs"] ?? [:] }
        return .object(out)
    }

    func keypair(_ record: RecordTable.Record, detail: Bool, privateKey: String? = nil) -> JSONValue {
        var out: [String: JSONValue] = [
            "name": record["name"] ?? "", "public_key": record["public_key"] ?? "", "fingerprint": record["fingerprint"] ?? "",
        ]
        if version >= 2 { out["type"] = record["type"] ?? "ssh" }
        if detail {
            out["user_id"] = record["user_id"] ?? .null
            out["created_at"] = Self.launchTime(record.string("created_at"))
            out["deleted"] = false
            out["deleted_at"] = .null
            out["updated_at"] = .null
            out["id"] = .int(Int64(abs((record.string("id") ?? "").hashValue % 1_000_000)))
        }
        if let privateKey { out["private_key"] = .string(privateKey) }
        return .object(out)
    }

    func serverGroup(_ record: RecordTable.Record) -> JSONValue {
        var out: [String: JSONValue] = [
            "id": record["id"] ?? "", "name": record["name"] ?? "", "members": record["members"] ?? [],
        ]
        if version >= 64 {
            out["policy"] = record["policy"] ?? ""
            out["rules"] = record["rules"] ?? [:]
        } else {
            out["policies"] = [record["policy"] ?? ""]
            out["metadata"] = [:]
        }
        if version >= 13 {
            out["project_id"] = record["project_id"] ?? ""
            out["user_id"] = record["user_id"] ?? ""
        }
        return .object(out)
    }

    func action(_ record: RecordTable.Record, withEvents: Bool) -> JSONValue {
        var out: [String: JSONValue] = [
            "action": record["action"] ?? "", "instance_uuid": record["instance_id"] ?? "", "message": record["message"] ?? .null,
            "project_id": record["project_id"] ?? "", "request_id": record["request_id"] ?? "", "user_id": record["user_id"] ?? "",
            "start_time": Self.launchTime(record.string("start_time")),
        ]
        if version >= 58 { out["updated_at"] = Self.launchTime(record.string("updated_at")) }
        if withEvents {
            out["events"] = .array((record["events"]?.arrayValue ?? []).map { event in
                var item: [String: JSONValue] = [
                    "event": event["event"] ?? "", "start_time": Self.launchTime(event["start_time"]?.stringValue),
                    "finish_time": Self.launchTime(event["finish_time"]?.stringValue), "result": event["result"] ?? .null,
                ]
                if isAdmin { item["traceback"] = event["traceback"] ?? .null }
                if version >= 62 && isAdmin { item["host"] = event["host"] ?? .null }
                return .object(item)
            })
        }
        return .object(out)
    }

    func aggregate(_ record: RecordTable.Record) -> JSONValue {
        var out: [String: JSONValue] = [
            "id": record["number"] ?? 0, "name": record["name"] ?? "", "availability_zone": record["availability_zone"] ?? .null,
            "hosts": record["hosts"] ?? [], "metadata": record["metadata"] ?? [:],
            "created_at": Self.launchTime(record.string("created_at")), "updated_at": Self.launchTime(record.string("updated_at")),
            "deleted": false, "deleted_at": .null,
        ]
        if version >= 41 { out["uuid"] = record["id"] ?? "" }
        return .object(out)
    }
}
