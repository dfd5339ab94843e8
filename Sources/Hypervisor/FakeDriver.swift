import Foundation

/// A hypervisor that keeps guests in memory: for scale tests of the control plane and for
/// exercising failures (latency, random or certain build failures) that real hosts rarely show
/// on demand. Never the only proof that a feature works; the QEMU driver is.
public actor FakeDriver: HypervisorDriver {
    public struct Configuration: Sendable {
        public var vcpus = 16
        public var memoryMB = 32768
        public var diskGB = 400
        /// Added to every operation.
        public var latency: Duration = .zero
        /// Probability that a spawn fails.
        public var failureRate = 0.0
        /// Every spawn fails (a broken host).
        public var failsBuilds = false

        public init(vcpus: Int = 16, memoryMB: Int = 32768, diskGB: Int = 400, latency: Duration = .zero,
                    failureRate: Double = 0, failsBuilds: Bool = false) {
            self.vcpus = vcpus
            self.memoryMB = memoryMB
            self.diskGB = diskGB
            self.latency = latency
            self.failureRate = failureRate
            self.failsBuilds = failsBuilds
        }
    }

    private struct Guest {
        var spec: GuestSpec
        var power: GuestPower
        var console: [String]
    }

    public let configuration: Configuration
    private var guestsByID: [String: Guest] = [:]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public func hostFacts() async throws -> HostFacts {
        HostFacts(vcpus: configuration.vcpus, memoryMB: configuration.memoryMB, diskGB: configuration.diskGB,
                  hypervisorType: "fake", accelerator: "fake")
    }

    public func guests() async throws -> [String: GuestPower] { guestsByID.mapValues(\.power) }

    private func delay() async throws {
        if configuration.latency > .zero { try await Task.sleep(for: configuration.latency) }
    }

    private func guest(_ uuid: String) throws -> Guest {
        guard let guest = guestsByID[uuid] else { throw HypervisorError("Instance \(uuid) could not be found on this host.") }
        return guest
    }

    private func set(_ uuid: String, _ power: GuestPower, log line: String) throws {
        var guest = try guest(uuid)
        guest.power = power
        guest.console.append(line)
        guestsByID[uuid] = guest
    }

    public func spawn(_ spec: GuestSpec) async throws {
        try await delay()
        if guestsByID[spec.uuid] != nil { return }
        if configuration.failsBuilds || (configuration.failureRate > 0 && Double.random(in: 0..<1) < configuration.failureRate) {
            throw HypervisorError("Build of instance \(spec.uuid) failed on a fake host (injected failure).")
        }
        let marker = "NIMBUS-GUEST hostname=\(spec.hostname) uuid=\(spec.uuid) ip="
        var console = ["fake guest \(spec.name) booting with \(spec.vcpus) vCPU, \(spec.memoryMB) MB", marker]
        if let first = spec.userData.flatMap({ Data(base64Encoded: $0) }).flatMap({ String(data: $0, encoding: .utf8) })?
            .split(separator: "\n").first {
            console.append("NIMBUS-USERDATA \(first)")
        }
        guestsByID[spec.uuid] = Guest(spec: spec, power: .running, console: console)
    }

    public func destroy(_ uuid: String) async throws {
        try await delay()
        guestsByID[uuid] = nil
    }

    public func powerOff(_ uuid: String) async throws {
        try await delay()
        try set(uuid, .shutdown, log: "reboot: Power down")
    }

    public func powerOn(_ uuid: String) async throws {
        try await delay()
        try set(uuid, .running, log: "fake guest powered on")
    }

    public func reboot(_ uuid: String, hard: Bool) async throws {
        try await delay()
        try set(uuid, .running, log: hard ? "fake guest reset" : "reboot: Restarting system")
    }

    public func pause(_ uuid: String) async throws {
        try await delay()
        try set(uuid, .paused, log: "fake guest paused")
    }

    public func unpause(_ uuid: String) async throws {
        try await delay()
        try set(uuid, .running, log: "fake guest unpaused")
    }

    public func suspend(_ uuid: String) async throws {
        try await delay()
        try set(uuid, .suspended, log: "fake guest suspended")
    }

    public func resume(_ uuid: String) async throws {
        try await delay()
        try set(uuid, .running, log: "fake guest resumed")
    }

    public func resize(_ spec: GuestSpec) async throws {
        try await delay()
        var guest = try guest(spec.uuid)
        guest.spec = spec
        guest.console.append("fake guest resized to \(spec.vcpus) vCPU, \(spec.memoryMB) MB, \(spec.rootGB) GB")
        guestsByID[spec.uuid] = guest
    }

    public func rebuild(_ spec: GuestSpec) async throws {
        try await delay()
        var guest = try guest(spec.uuid)
        guest.spec = spec
        guest.power = .running
        guest.console.append("fake guest rebuilt from image \(spec.imageID)")
        guestsByID[spec.uuid] = guest
    }

    /// A small raw disk standing for the guest's (the fake has no real disk).
    public func snapshot(_ uuid: String, to file: URL) async throws -> String {
        try await delay()
        _ = try guest(uuid)
        try Data(count: 1 << 20).write(to: file)
        return "raw"
    }

    public func consoleOutput(_ uuid: String, lines: Int?) async throws -> String {
        let console = try guest(uuid).console
        let shown = lines.map { Array(console.suffix(max(0, $0))) } ?? console
        return shown.map { $0 + "\n" }.joined()
    }

    public func attachInterface(_ uuid: String, nic: GuestNIC) async throws {
        try await delay()
        var guest = try guest(uuid)
        if !guest.spec.nics.contains(where: { $0.portID == nic.portID }) { guest.spec.nics.append(nic) }
        guest.console.append("fake guest \(guest.spec.name): NIC \(nic.mac) plugged")
        guestsByID[uuid] = guest
    }

    public func detachInterface(_ uuid: String, portID: String) async throws {
        try await delay()
        var guest = try guest(uuid)
        guest.spec.nics.removeAll { $0.portID == portID }
        guestsByID[uuid] = guest
    }
}
