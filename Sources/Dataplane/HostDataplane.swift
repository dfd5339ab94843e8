/// What the agent needs from a host's network dataplane. `LinuxDataplane` is the real one;
/// `InMemoryDataplane` keeps the last state, for agent tests on machines without root.
public protocol HostDataplane: Sendable {
    /// Converges the host to `state`; returns the ids of ports whose tap is wired.
    func converge(_ state: HostNetworkState) async throws -> [String]
    /// Removes everything the dataplane made on this host.
    func teardownAll() async
}

extension LinuxDataplane: HostDataplane {}

/// Records what it was asked to converge; a port counts as wired when its network is present.
public actor InMemoryDataplane: HostDataplane {
    public private(set) var state = HostNetworkState(generation: 0)
    public private(set) var converges = 0

    public init() {}

    public func converge(_ state: HostNetworkState) async throws -> [String] {
        self.state = state
        converges += 1
        let networks = Set(state.networks.map(\.id))
        return state.ports.filter { networks.contains($0.networkID) }.map(\.id)
    }

    public func teardownAll() async {
        state = HostNetworkState(generation: state.generation)
    }
}
