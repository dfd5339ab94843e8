import Compute
import Dataplane
import NimbusNetwork

/// Compute's view of the Network service, in-process (Nova's Neutron client).
struct NetworkServicePorts: NetworkPorts {
    let network: NetworkService

    static func requests(_ nics: [RequestedNIC]) -> [PortRequest] {
        nics.map { nic in
            switch nic {
            case .auto: .auto
            case .network(let id, let fixedIP): .network(id, fixedIP: fixedIP)
            case .port(let id): .port(id)
            }
        }
    }

    func validate(_ requests: [RequestedNIC], securityGroups: [String], project: String) async throws {
        try await network.validateInstanceRequests(Self.requests(requests), securityGroups: securityGroups, project: project)
    }

    func plug(instance: String, project: String, hostname: String, requests: [RequestedNIC], securityGroups: [String],
              host: String) async throws -> [InstanceNIC] {
        try await network.ensureInstancePorts(project: project, instance: instance, requests: Self.requests(requests), securityGroups: securityGroups)
        try await network.bindInstancePorts(instance: instance, host: host)
        return try await nics(instance: instance)
    }

    func unplug(instance: String) async throws {
        try await network.releaseInstancePorts(instance: instance)
    }

    func nics(instance: String) async throws -> [InstanceNIC] {
        try await network.instancePortInfo(instance).map { port in
            InstanceNIC(portID: port.portID, networkID: port.networkID, networkName: port.networkName, mac: port.mac,
                        tap: DataplaneNames.tap(port: port.portID), mtu: port.mtu,
                        addresses: port.addresses.map { .init(address: $0.address, version: $0.version, type: $0.type, subnetID: $0.subnetID) },
                        status: port.status)
        }
    }

    func attach(instance: String, project: String, request: RequestedNIC, host: String) async throws -> String {
        try await network.attachInstancePort(project: project, instance: instance, request: Self.requests([request])[0], host: host)
    }

    func detach(instance: String, port: String) async throws {
        try await network.detachInstancePort(instance: instance, port: port)
    }
}
