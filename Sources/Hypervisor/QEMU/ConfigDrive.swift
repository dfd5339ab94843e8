import Foundation

/// The OpenStack config drive (`config-2`, ISO 9660 with Rock Ridge and Joliet) in the layout
/// cloud-init reads: openstack/latest/{meta_data.json, user_data, network_data.json, vendor_data.json}.
public enum ConfigDrive {
    /// `meta_data.json`, also what the metadata service answers.
    public static func metadata(_ spec: GuestSpec) -> [String: Any] {
        [
            "uuid": spec.uuid, "name": spec.name, "hostname": spec.hostname, "launch_index": spec.launchIndex,
            "availability_zone": spec.availabilityZone, "project_id": spec.projectID, "meta": spec.metadata,
            "public_keys": spec.publicKeys,
            "keys": spec.publicKeys.map { ["name": $0.key, "type": "ssh", "data": $0.value] },
            "files": [] as [Any], "devices": [] as [Any],
        ]
    }

    /// `network_data.json`: one link per NIC, configured by DHCP (the addresses are the ports').
    public static func networkData(_ spec: GuestSpec) -> [String: Any] {
        let links: [[String: Any]] = spec.nics.map { nic in
            var link: [String: Any] = ["id": nic.tap, "type": "tap", "ethernet_mac_address": nic.mac, "vif_id": nic.portID]
            if let mtu = nic.mtu { link["mtu"] = mtu }
            return link
        }
        let networks: [[String: Any]] = spec.nics.enumerated().map { index, nic in
            ["id": "network\(index)", "type": "ipv4_dhcp", "link": nic.tap, "network_id": nic.networkID ?? ""]
        }
        return ["links": links, "networks": networks, "services": [] as [Any]]
    }

    /// Writes the tree under `directory/config-drive` and packs it into `iso`.
    static func build(_ spec: GuestSpec, in directory: URL, iso: URL) async throws {
        let root = directory.appendingPathComponent("config-drive")
        try? FileManager.default.removeItem(at: root)
        for version in ["latest", "2018-08-27"] {
            let folder = root.appendingPathComponent("openstack/\(version)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            // Unsorted: JSONSerialization sorts keys by locale, which loads ICU's collation
            // data into the agent (about 1 MiB of its RSS) and no reader needs an order.
            try JSONSerialization.data(withJSONObject: metadata(spec))
                .write(to: folder.appendingPathComponent("meta_data.json"))
            try JSONSerialization.data(withJSONObject: networkData(spec))
                .write(to: folder.appendingPathComponent("network_data.json"))
            try Data("{}".utf8).write(to: folder.appendingPathComponent("vendor_data.json"))
            try Data("{}".utf8).write(to: folder.appendingPathComponent("vendor_data2.json"))
            if let encoded = spec.userData, let data = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters) {
                try data.write(to: folder.appendingPathComponent("user_data"))
            }
        }
        try await HostProcess("genisoimage", [
            "-o", iso.path, "-ldots", "-allow-lowercase", "-allow-multidot", "-l", "-quiet", "-J", "-r", "-V", "config-2", root.path,
        ]).run()
        try? FileManager.default.removeItem(at: root)
    }
}
