import Foundation
import Hypervisor
import Logging

/// nova-compute for one host: registers the host, heartbeats, takes the host's work from the
/// control plane, converges guests through its driver and reports what it observed.
///
/// Each operation is idempotent on the driver side, so after a crash of either side the same
/// assignment is simply done again. Operations on one guest never overlap; spawns across guests
/// run at most `maxConcurrentSpawns` at once so a burst of boots cannot starve guests already
/// booting (QEMU under TCG costs seconds of CPU per boot).
public actor ComputeAgent: AgentLink {
    public struct Configuration: Sendable {
        public var host: String
        public var zone = "nova"
        public var heartbeatInterval: Duration = .seconds(5)
        public var syncInterval: Duration = .seconds(10)
        public var maxConcurrentSpawns = 4
        /// An operation still running after this fails (and a build is rescheduled).
        public var operationTimeout: Duration = .seconds(300)

        public init(host: String, zone: String = "nova", heartbeatInterval: Duration = .seconds(5),
                    syncInterval: Duration = .seconds(10), maxConcurrentSpawns: Int = 4) {
            self.host = host
            self.zone = zone
            self.heartbeatInterval = heartbeatInterval
            self.syncInterval = syncInterval
            self.maxConcurrentSpawns = maxConcurrentSpawns
        }
    }

    public nonisolated let configuration: Configuration
    let driver: any HypervisorDriver
    let controlPlane: any AgentControlPlane
    let network: NetworkAttachment?
    let logger: Logger
    /// The network state last converged to, and the ports it wired (already reported).
    var convergedGeneration: Int64?
    var reportedWired: Set<String> = []
    private var inFlight: Set<String> = []
    private var runningSpawns = 0
    private var wakeAfterSlot: [CheckedContinuation<Void, Never>] = []

    public init(configuration: Configuration, driver: any HypervisorDriver, controlPlane: any AgentControlPlane,
                network: NetworkAttachment? = nil, logger: Logger) {
        self.network = network
        self.configuration = configuration
        self.driver = driver
        self.controlPlane = controlPlane
        var logger = logger
        logger[metadataKey: "host"] = .string(configuration.host)
        self.logger = logger
    }

    public nonisolated func consoleOutput(_ uuid: String, lines: Int?) async throws -> String {
        try await driver.consoleOutput(uuid, lines: lines)
    }

    public func attachInterface(_ spec: GuestSpec, nic: GuestNIC) async throws {
        try await exclusively(spec.uuid) {
            try await self.wireNICs(of: spec)
            // A stopped guest only records it (the driver boots it with it next time).
            if try await self.driver.guests()[spec.uuid] != nil {
                try await self.driver.attachInterface(spec.uuid, nic: nic)
            }
        }
    }

    public func detachInterface(_ uuid: String, portID: String) async throws {
        try await exclusively(uuid) {
            if try await self.driver.guests()[uuid] != nil {
                try await self.driver.detachInterface(uuid, portID: portID)
            }
        }
    }

    /// Runs `body` as the guest's only operation, refusing while another is under way.
    private func exclusively(_ uuid: String, _ body: @Sendable () async throws -> Void) async throws {
        guard !inFlight.contains(uuid) else { throw HypervisorError("Another operation on instance \(uuid) is in progress.") }
        inFlight.insert(uuid)
        defer { inFlight.remove(uuid) }
        try await body()
    }

    /// Runs until cancelled: registration (retried until it works), then heartbeats, periodic
    /// syncs and the work loop side by side.
    public func run() async {
        while !Task.isCancelled {
            do {
                try await controlPlane.register(host: configuration.host, zone: configuration.zone,
                                                facts: try await driver.hostFacts(), link: self)
                break
            } catch {
                logger.warning("registration failed, retrying: \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.heartbeatLoop() }
            group.addTask { await self.syncLoop() }
            group.addTask { await self.workLoop() }
            if let network = self.network { group.addTask { await self.networkLoop(network) } }
            await group.waitForAll()
        }
    }

    private func heartbeatLoop() async {
        while !Task.isCancelled {
            do { try await controlPlane.heartbeat(host: configuration.host) } catch { logger.warning("heartbeat failed: \(error)") }
            try? await Task.sleep(for: configuration.heartbeatInterval)
        }
    }

    private func syncLoop() async {
        while !Task.isCancelled {
            await syncOnce()
            try? await Task.sleep(for: configuration.syncInterval)
        }
    }

    /// Reports guests whose power differs from what the control plane recorded, and stops guests
    /// no instance here owns. The baseline is read before the driver is asked, so a guest that
    /// changes in between is compared against an instance that changed too, and skipped.
    public func syncOnce() async {
        do {
            let baseline = try await controlPlane.instances(host: configuration.host)
            let guests = try await driver.guests()
            var observations: [PowerObservation] = []
            for (uuid, recorded) in baseline where recorded.atRest && !inFlight.contains(uuid) {
                let power = guests[uuid] ?? .noState
                if power != recorded.power {
                    observations.append(PowerObservation(instance: uuid, baselineUpdatedAt: recorded.updatedAt, power: power))
                }
            }
            if !observations.isEmpty { try await controlPlane.observe(host: configuration.host, observations) }
            let unknown = Set(guests.keys).subtracting(baseline.keys).subtracting(inFlight)
            if !unknown.isEmpty {
                for uuid in try await controlPlane.orphans(host: configuration.host, among: unknown) where !inFlight.contains(uuid) {
                    logger.warning("stopping guest \(uuid): no instance on this host owns it")
                    try? await driver.destroy(uuid)
                }
            }
        } catch {
            logger.warning("sync failed: \(error)")
        }
    }

    private func workLoop() async {
        await withTaskGroup(of: Void.self) { group in
            while !Task.isCancelled {
                let work: [Assignment]
                do {
                    work = try await controlPlane.work(host: configuration.host, wait: .seconds(1))
                } catch {
                    logger.warning("fetching work failed: \(error)")
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                var started = false
                for assignment in work where !inFlight.contains(assignment.spec.uuid) {
                    inFlight.insert(assignment.spec.uuid)
                    started = true
                    group.addTask { await self.perform(assignment) }
                }
                // Everything offered is already under way: wait for one to finish rather than spin.
                if !started && !work.isEmpty { _ = await group.next() }
            }
            group.cancelAll()
        }
    }

    private func perform(_ assignment: Assignment) async {
        let uuid = assignment.spec.uuid
        let isSpawn = assignment.task == .spawn || assignment.task == .rebuild
        if isSpawn { await acquireSpawnSlot() }
        let outcome: TaskOutcome
        do {
            outcome = .done(try await Self.withDeadline(configuration.operationTimeout, what: assignment.task.rawValue) {
                try await self.execute(assignment)
            })
        } catch {
            logger.warning("\(assignment.task.rawValue) of \(uuid) failed: \(error)")
            outcome = .failed(String(describing: error))
        }
        if isSpawn { releaseSpawnSlot() }
        for attempt in 0..<5 {
            do {
                try await controlPlane.report(host: configuration.host, instance: uuid, taskState: assignment.taskState, outcome: outcome)
                break
            } catch {
                // The next work fetch hands the task out again anyway; retrying only saves that round.
                logger.warning("report for \(uuid) failed (attempt \(attempt + 1)): \(error)")
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        inFlight.remove(uuid)
    }

    private func execute(_ assignment: Assignment) async throws -> GuestPower {
        let spec = assignment.spec
        let present = try await driver.guests()[spec.uuid]
        switch assignment.task {
        case .spawn, .rebuild, .powerOn, .rebootHard, .resume, .resize, .revertResize:
            // Taps may be gone (a host reboot) or new (a spawn): QEMU cannot start without them.
            try await wireNICs(of: spec)
        default: break
        }
        switch assignment.task {
        case .spawn:
            if present == nil { try await driver.spawn(spec) }
        case .destroy:
            if present != nil { try await driver.destroy(spec.uuid) }
            return .noState
        case .powerOff:
            if present != .shutdown { try await driver.powerOff(spec.uuid) }
        case .powerOn:
            if present != .running { try await driver.powerOn(spec.uuid) }
        case .rebootSoft, .rebootHard:
            try await driver.reboot(spec.uuid, hard: assignment.task == .rebootHard)
        case .pause:
            if present != .paused { try await driver.pause(spec.uuid) }
        case .unpause:
            if present == .paused { try await driver.unpause(spec.uuid) }
        case .suspend:
            if present != .suspended { try await driver.suspend(spec.uuid) }
        case .resume:
            if present == .suspended { try await driver.resume(spec.uuid) }
        case .resize, .revertResize:
            try await driver.resize(spec)
        case .rebuild:
            if present == nil { try await driver.spawn(spec) } else { try await driver.rebuild(spec) }
        case .snapshot:
            guard let image = assignment.snapshotImage else { throw HypervisorError("No image to snapshot into.") }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-snapshot-\(image)")
            defer { try? FileManager.default.removeItem(at: file) }
            let format = try await driver.snapshot(spec.uuid, to: file)
            try await controlPlane.uploadSnapshot(host: configuration.host, instance: spec.uuid, image: image, file: file, diskFormat: format)
        }
        return try await driver.guests()[spec.uuid] ?? .noState
    }

    private func acquireSpawnSlot() async {
        while runningSpawns >= configuration.maxConcurrentSpawns {
            await withCheckedContinuation { wakeAfterSlot.append($0) }
        }
        runningSpawns += 1
    }

    private func releaseSpawnSlot() {
        runningSpawns -= 1
        if !wakeAfterSlot.isEmpty { wakeAfterSlot.removeFirst().resume() }
    }

    /// Runs `body`, or fails once `limit` passes. A hung driver call is abandoned (a task group
    /// would wait for it), so the instance gets a failure instead of waiting forever.
    static func withDeadline<T: Sendable>(
        _ limit: Duration, what: String, _ body: @Sendable @escaping () async throws -> T
    ) async throws -> T {
        let resumed = ResumeOnce()
        return try await withCheckedThrowingContinuation { continuation in
            let work = Task {
                do {
                    let value = try await body()
                    if resumed.claim() { continuation.resume(returning: value) }
                } catch {
                    if resumed.claim() { continuation.resume(throwing: error) }
                }
            }
            Task {
                try? await Task.sleep(for: limit)
                if resumed.claim() {
                    work.cancel()
                    continuation.resume(throwing: HypervisorError("\(what) did not finish within \(limit)."))
                }
            }
        }
    }
}

/// True for the first caller only: one continuation, two racers.
final class ResumeOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false

    func claim() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if done { return false }
        done = true
        return true
    }
}
