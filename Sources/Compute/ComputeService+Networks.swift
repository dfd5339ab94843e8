import Foundation
import Hypervisor
import NimbusCore
import SQLKit
import Store

/// One NIC the boot request asked for (`networks` in `POST /servers`).
public enum RequestedNIC: Sendable, Equatable {
    /// Nova's get-me-a-network: the project's network, else a shared one.
    case auto
    case network(String, fixedIP: String?)
    case port(String)
}

/// An instance's port as Compute caches it (Nova's network info cache): enough to render
/// `addresses` and to give the guest its NIC, without asking the Network service each time.
public struct InstanceNIC: Sendable, Equatable, Codable {
    public struct Address: Sendable, Equatable, Codable {
        public var address: String
        public var version: Int
        /// `fixed` or `floating`.
        public var type: String
        /// A fixed address's subnet (for `os-interface`'s `fixed_ips`).
        public var subnetID: String?

        public init(address: String, version: Int, type: String = "fixed", subnetID: String? = nil) {
            self.address = address
            self.version = version
            self.type = type
            self.subnetID = subnetID
        }
    }

    public var portID: String
    public var networkID: String
    public var networkName: String
    public var mac: String
    public var tap: String
    public var mtu: Int
    public var addresses: [Address]
    /// The port's status as the Network service last said (`ACTIVE` once wired, `DOWN`, `BUILD`).
    public var status: String?

    public init(portID: String, networkID: String, networkName: String, mac: String, tap: String, mtu: Int, addresses: [Address],
                status: String? = nil) {
        self.status = status
        self.portID = portID
        self.networkID = networkID
        self.networkName = networkName
        self.mac = mac
        self.tap = tap
        self.mtu = mtu
        self.addresses = addresses
    }

    public var guestNIC: GuestNIC { GuestNIC(portID: portID, mac: mac, tap: tap, mtu: mtu, networkID: networkID) }
}

/// The Network service as Compute calls it (Nova's Neutron client); in-process or over HTTP.
public protocol NetworkPorts: Sendable {
    /// Checks requested NICs before anything is written: networks exist and the project may use
    /// them, ports are free and the project's, `auto` finds a network.
    func validate(_ requests: [RequestedNIC], securityGroups: [String], project: String) async throws
    /// Creates (or takes) the instance's ports and binds them to `host`. Idempotent: a rebuild
    /// elsewhere after a failed build rebinds the ports it made before.
    func plug(instance: String, project: String, hostname: String, requests: [RequestedNIC], securityGroups: [String],
              host: String) async throws -> [InstanceNIC]
    /// Unbinds the instance's ports and deletes those made for it.
    func unplug(instance: String) async throws
    /// The instance's ports as they are now (after a floating IP moved, say).
    func nics(instance: String) async throws -> [InstanceNIC]
    /// Makes (or takes) one more port for the instance and binds it on `host`. - Returns: its id.
    func attach(instance: String, project: String, request: RequestedNIC, host: String) async throws -> String
    /// Takes a port off the instance: deleted if it was made for it, else unbound.
    func detach(instance: String, port: String) async throws
}

extension ComputeService {
    /// The NICs a stored `networks` value asks for.
    static func requestedNICs(_ networks: JSONValue) -> [RequestedNIC] {
        if networks.stringValue == "auto" { return [.auto] }
        guard let items = networks.arrayValue else { return [] }
        return items.compactMap { item in
            if let port = item["port"]?.stringValue { return .port(port) }
            if let network = item["uuid"]?.stringValue { return .network(network, fixedIP: item["fixed_ip"]?.stringValue) }
            return nil
        }
    }

    /// Makes (or takes) the instance's ports and binds them on `host`. - Returns: the NICs the
    /// caller caches on the instance.
    func plugPorts(_ instance: Instance, host: String) async throws -> [InstanceNIC] {
        guard let ports else { return [] }
        let requests = Self.requestedNICs(instance.requestedNetworks)
        guard !requests.isEmpty else { return [] }
        return try await ports.plug(instance: instance.id, project: instance.projectID, hostname: instance.hostname,
                                    requests: requests, securityGroups: instance.securityGroups, host: host)
    }

    /// Unbinds a deleted instance's ports. A failure is logged: the port stays, visibly bound to a
    /// gone device, for an operator, rather than failing a delete that has happened.
    func unplugPorts(_ id: String) async {
        guard let ports else { return }
        do { try await ports.unplug(instance: id) } catch {
            logger.error("unplugging the ports of deleted instance \(id) failed: \(error)")
        }
    }

    /// Re-reads an instance's ports into its cache (the Network service calls this when a port
    /// of the instance changes, as Neutron's `network-changed` event to Nova).
    public func refreshNetworkInfo(_ id: String) async throws {
        guard let ports else { return }
        let nics = try await ports.nics(instance: id)
        try await database.transaction { db in
            guard let record = try await ComputeSchema.instances.fetchForUpdate(id, on: db) else { return }
            var instance = Instance(record: record)
            guard !instance.deleted, instance.networkInfo != nics else { return }
            instance.networkInfo = nics
            try await self.save(instance, on: db)
        }
    }

    /// `addresses` of a server view: network name → its addresses, as Nova renders the cache.
    /// - Parameter extended: with `OS-EXT-IPS:type` and `OS-EXT-IPS-MAC:mac_addr`.
    static func addresses(_ nics: [InstanceNIC], extended: Bool = true) -> JSONValue {
        var out: [String: [JSONValue]] = [:]
        for nic in nics {
            // A port without addresses still names its network, as Nova lists it.
            out[nic.networkName, default: []] += nic.addresses.map { address in
                var entry: [String: JSONValue] = ["version": .int(Int64(address.version)), "addr": .string(address.address)]
                if extended {
                    entry["OS-EXT-IPS:type"] = .string(address.type)
                    entry["OS-EXT-IPS-MAC:mac_addr"] = .string(nic.mac)
                }
                return .object(entry)
            }
        }
        return .object(out.mapValues { .array($0) })
    }
}
