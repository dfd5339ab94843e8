import Dataplane
import Foundation
import Hypervisor

/// The network half of a host's agent (Neutron's L2, DHCP, L3 and metadata agents in one):
/// the Network service it registers with, and the dataplane it drives.
public struct NetworkAttachment: Sendable {
    public var control: any NetworkControlPlane
    public var dataplane: any HostDataplane
    /// The host's VXLAN underlay address, when other hosts share its networks.
    public var tunnelAddress: String?
    /// Runs DHCP, routers and the metadata service for every network.
    public var networkNode: Bool
    /// A full converge at least this often, repairing whatever drifted without a change above.
    public var resyncInterval: Duration = .seconds(30)

    public init(control: any NetworkControlPlane, dataplane: any HostDataplane, tunnelAddress: String?, networkNode: Bool) {
        self.control = control
        self.dataplane = dataplane
        self.tunnelAddress = tunnelAddress
        self.networkNode = networkNode
    }
}

extension ComputeAgent {
    /// Registers the host's network agent (retried until it works), then converges the host on
    /// every new desired state, long-polled from the Network service.
    func networkLoop(_ network: NetworkAttachment) async {
        while !Task.isCancelled {
            do {
                try await network.control.registerNetworkHost(host: configuration.host, tunnelAddress: network.tunnelAddress,
                                                              networkNode: network.networkNode)
                break
            } catch {
                logger.warning("network registration failed, retrying: \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
        }
        var lastFull = ContinuousClock.now
        while !Task.isCancelled {
            do {
                let known = ContinuousClock.now - lastFull > network.resyncInterval ? nil : convergedGeneration
                if known == nil { lastFull = .now }
                let state = try await network.control.hostNetworkState(host: configuration.host, after: known, wait: .seconds(10))
                if state.generation != convergedGeneration || known == nil {
                    try await converge(state, with: network)
                }
            } catch {
                logger.warning("network converge failed: \(error)")
                convergedGeneration = nil
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Converges to `state` and tells the Network service which ports are now wired.
    func converge(_ state: HostNetworkState, with network: NetworkAttachment) async throws {
        // The work loop (before a spawn) and the network loop both converge; a state read before
        // the other's newer one must not be applied after it (generations only grow).
        if let converged = convergedGeneration, state.generation < converged { return }
        let started = ContinuousClock.now
        let wired = Set(try await network.dataplane.converge(state))
        // One line per applied state: what a host's network looks like over time, for operators.
        logger.info("network converged", metadata: [
            "generation": "\(state.generation)", "networks": "\(state.networks.count)", "ports": "\(state.ports.count)",
            "dhcp": "\(state.dhcp.count)", "routers": "\(state.routers.count)", "took": "\(ContinuousClock.now - started)",
        ])
        convergedGeneration = state.generation
        let fresh = wired.subtracting(reportedWired)
        if !fresh.isEmpty { try await network.control.portsWired(host: configuration.host, ports: fresh.sorted()) }
        reportedWired = wired
    }

    /// Before a guest starts: its taps exist, on the right bridges, with their filters. The state
    /// is read afresh, as the ports were bound just before the work was handed out.
    func wireNICs(of spec: GuestSpec) async throws {
        guard let network, !spec.nics.isEmpty else { return }
        let state = try await network.control.hostNetworkState(host: configuration.host, after: nil, wait: .zero)
        try await converge(state, with: network)
        let missing = spec.nics.map(\.portID).filter { !reportedWired.contains($0) }
        guard missing.isEmpty else {
            throw HypervisorError("Port(s) \(missing.joined(separator: ", ")) could not be wired on host \(configuration.host).")
        }
    }

    /// The metadata service for a guest: the dataplane saw a request from `source` on `network`.
    public func metadata(network: String, source: String, path: String) async -> MetadataDocument? {
        guard let attachment = self.network else { return nil }
        do {
            guard let instance = try await attachment.control.instance(network: network, address: source) else { return nil }
            return try await controlPlane.metadata(instance: instance, path: path)
        } catch {
            logger.warning("metadata for \(source) on \(network) failed: \(error)")
            return nil
        }
    }
}
