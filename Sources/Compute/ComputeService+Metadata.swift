import Agent
import Foundation
import Hypervisor
import NimbusCore

/// The metadata service (Nova's metadata API): what a guest reads from
/// http://169.254.169.254 — the OpenStack layout (as on the config drive) and the EC2 one.
/// The host's dataplane finds which instance asks (by its port's address) and passes it here.
extension ComputeService {
    static let openStackVersions = ["2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30", "2016-10-06",
                                    "2017-02-22", "2018-08-27", "latest"]
    static let ec2Versions = ["1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
                              "2008-09-01", "2009-04-04", "latest"]

    public func metadata(instance id: String, path: String) async throws -> MetadataDocument? {
        guard let record = try await database.read({ try await ComputeSchema.instances.fetch(id, on: $0) }) else { return nil }
        let instance = Instance(record: record)
        guard !instance.deleted else { return nil }
        let spec = Self.guestSpec(instance)
        let parts = path.split(separator: "/").map(String.init)
        func text(_ lines: [String]) -> MetadataDocument { MetadataDocument(contentType: "text/plain", body: Array(lines.joined(separator: "\n").utf8)) }
        func json(_ object: [String: Any]) throws -> MetadataDocument {
            MetadataDocument(contentType: "application/json", body: Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])))
        }
        let userData = spec.userData.flatMap { Data(base64Encoded: $0, options: .ignoreUnknownCharacters) }
        guard let first = parts.first else { return text(Self.ec2Versions + ["openstack"]) }
        if first == "openstack" {
            guard parts.count > 1 else { return text(Self.openStackVersions) }
            guard Self.openStackVersions.contains(parts[1]) else { return nil }
            guard parts.count > 2 else {
                return text(["meta_data.json", "network_data.json", "vendor_data.json", "vendor_data2.json"] + (userData == nil ? [] : ["user_data"]))
            }
            switch parts[2] {
            case "meta_data.json": return try json(ConfigDrive.metadata(spec))
            case "network_data.json": return try json(ConfigDrive.networkData(spec))
            case "vendor_data.json", "vendor_data2.json": return try json([:])
            case "user_data": return userData.map { MetadataDocument(contentType: "text/plain", body: Array($0)) }
            default: return nil
            }
        }
        guard Self.ec2Versions.contains(first) else { return nil }
        guard parts.count > 1 else { return text(["meta-data/"] + (userData == nil ? [] : ["user-data"])) }
        if parts[1] == "user-data" { return userData.map { MetadataDocument(contentType: "text/plain", body: Array($0)) } }
        guard parts[1] == "meta-data" else { return nil }
        let fixed = instance.networkInfo.flatMap(\.addresses).first { $0.type == "fixed" && $0.version == 4 }?.address ?? ""
        let floating = instance.networkInfo.flatMap(\.addresses).first { $0.type == "floating" }?.address ?? ""
        let ec2ID = "i-" + String(instance.id.filter { $0 != "-" }.prefix(8))
        let values: [String: String] = [
            "ami-id": "ami-" + String(instance.imageRef.filter { $0 != "-" }.prefix(8)), "ami-launch-index": "\(instance.launchIndex)",
            "hostname": instance.hostname, "local-hostname": instance.hostname, "public-hostname": instance.hostname,
            "instance-id": ec2ID, "instance-type": instance.flavor.name, "local-ipv4": fixed, "public-ipv4": floating,
            "reservation-id": instance.reservationID, "security-groups": "default",
        ]
        guard parts.count > 2 else { return text(values.keys.sorted() + ["placement/"] + (spec.publicKeys.isEmpty ? [] : ["public-keys/"])) }
        switch parts[2] {
        case "placement":
            if parts.count > 3 { return parts[3] == "availability-zone" ? text([spec.availabilityZone]) : nil }
            return text(["availability-zone"])
        case "public-keys":
            let keys = spec.publicKeys.sorted { $0.key < $1.key }
            if parts.count == 3 { return text(keys.enumerated().map { "\($0.offset)=\($0.element.key)" }) }
            guard let index = Int(parts[3]), keys.indices.contains(index) else { return nil }
            return parts.count > 4 ? (parts[4] == "openssh-key" ? text([keys[index].value]) : nil) : text(["openssh-key"])
        default:
            return parts.count == 3 ? values[parts[2]].map { text([$0]) } : nil
        }
    }
}
