import Foundation
import NimbusCore
import SQLKit
import Store

/// Nova's `os-interface`: NICs added to and removed from a server that exists, hot-plugged
/// into its guest when it runs. Like Nova's, these are synchronous calls to the host, not
/// tasks: the answer comes once the guest has the NIC (or has let it go).
extension ComputeService {
    static let interfaceStates: Set<VMState> = [.active, .paused, .stopped]

    /// The server's NICs, fresh from the Network service.
    public func interfaces(_ id: String, caller: AuthContext) async throws -> [InstanceNIC] {
        let instance = try await instance(id, caller: caller)
        guard let ports else { return instance.networkInfo }
        return try await ports.nics(instance: instance.id)
    }

    /// `POST /servers/{id}/os-interface`: a port made on `net_id` (with an optional fixed IP),
    /// or the given `port_id`, bound to the server's host and plugged into its guest.
    public func attachInterface(_ id: String, _ body: JSONValue, caller: AuthContext, requestID: String, version: Int) async throws -> InstanceNIC {
        guard caller.isMember else { throw NimbusError.forbidden("Policy doesn't allow os_compute_api:os-attach-interfaces:create to be performed.") }
        let request = try Self.interfaceRequest(body, version: version)
        guard let ports else { throw NimbusError.badRequest("No network service is configured.") }
        let instance = try await instance(id, caller: caller)
        try requireUnlocked(instance, caller, action: "attach_interface")
        guard Self.interfaceStates.contains(instance.vmState), instance.taskState == nil,
              let host = instance.host, let link = links.link(host) else {
            throw Self.wrongState("attach_interface", instance)
        }
        let portID = try await ports.attach(instance: instance.id, project: instance.projectID, request: request, host: host)
        do {
            let nics = try await ports.nics(instance: instance.id)
            guard let nic = nics.first(where: { $0.portID == portID }) else {
                throw NimbusError.internal("Port \(portID) is not bound to instance \(instance.id).")
            }
            let updated = try await recordInterfaces(instance.id, nics, action: "attach_interface", caller: caller, requestID: requestID)
            try await link.attachInterface(Self.guestSpec(updated), nic: nic.guestNIC)
            return nic
        } catch {
            // Nothing half-done stays: the port goes (or is released) and the cache follows.
            try? await ports.detach(instance: instance.id, port: portID)
            try? await refreshNetworkInfo(instance.id)
            if let error = error as? NimbusError { throw error }
            throw NimbusError.internal("Failed to attach network adapter device to \(instance.id): \(error)")
        }
    }

    /// `DELETE /servers/{id}/os-interface/{port}`: unplugged from the guest, then the port is
    /// deleted if it was made for the server, else unbound.
    public func detachInterface(_ id: String, port: String, caller: AuthContext, requestID: String) async throws {
        guard caller.isMember else { throw NimbusError.forbidden("Policy doesn't allow os_compute_api:os-attach-interfaces:delete to be performed.") }
        guard let ports else { throw NimbusError.notFound("Port \(port) is not attached") }
        let instance = try await instance(id, caller: caller)
        try requireUnlocked(instance, caller, action: "detach_interface")
        guard Self.interfaceStates.contains(instance.vmState), instance.taskState == nil, let host = instance.host else {
            throw Self.wrongState("detach_interface", instance)
        }
        guard try await ports.nics(instance: instance.id).contains(where: { $0.portID == port }) else {
            throw NimbusError.notFound("Port \(port) is not attached")
        }
        if let link = links.link(host) {
            do {
                try await link.detachInterface(instance.id, portID: port)
            } catch {
                throw NimbusError.internal("Failed to detach network adapter device from \(instance.id): \(error)")
            }
        }
        try await ports.detach(instance: instance.id, port: port)
        let nics = try await ports.nics(instance: instance.id)
        _ = try await recordInterfaces(instance.id, nics, action: "detach_interface", caller: caller, requestID: requestID)
    }

    /// Caches the server's NICs and records the action. - Returns: the instance as saved.
    private func recordInterfaces(_ id: String, _ nics: [InstanceNIC], action: String, caller: AuthContext, requestID: String) async throws -> Instance {
        try await database.transaction { db in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            try await self.recordAction(action, instance: instance, caller: caller, requestID: requestID, on: db)
            instance.networkInfo = nics
            try await self.save(instance, on: db)
            return instance
        }
    }

    /// The attach body, checked as Nova's schema does.
    static func interfaceRequest(_ body: JSONValue, version: Int) throws -> RequestedNIC {
        let fields = try FieldReader(body: body, root: "interfaceAttachment")
        var allowed: Set<String> = ["net_id", "port_id", "fixed_ips"]
        if version >= 49 { allowed.insert("tag") }
        try fields.rejectUnknown(allowed)
        let network = try fields.string("net_id")
        let port = try fields.string("port_id")
        for (name, value) in [("net_id", network), ("port_id", port)] {
            if let value, !Identifier.looksLikeUUID(value) {
                throw NimbusError.badRequest("Invalid input for field/attribute \(name). Value: \(value). '\(value)' is not a 'uuid'")
            }
        }
        var fixedIP: String?
        if let entries = body["interfaceAttachment"]?["fixed_ips"] {
            guard let list = entries.arrayValue, list.count <= 1 else {
                throw NimbusError.badRequest("Invalid input for field/attribute fixed_ips. Value: \(entries.serialized()). At most one fixed IP may be given")
            }
            if let entry = list.first {
                // The address itself is the Network service's to judge (subnet, pool, taken).
                guard let address = entry["ip_address"]?.stringValue, !address.isEmpty else {
                    throw NimbusError.badRequest("Invalid input for field/attribute ip_address. Value: \(entry.serialized()).")
                }
                fixedIP = address
            }
        }
        switch (network, port) {
        case (.some, .some): throw NimbusError.badRequest("Must not input both network_id and port_id")
        case (nil, .some(let port)): return .port(port)
        case (.some(let network), nil): return .network(network, fixedIP: fixedIP)
        case (nil, nil):
            if fixedIP != nil { throw NimbusError.badRequest("Must input network_id when request IP address") }
            return .auto
        }
    }
}
