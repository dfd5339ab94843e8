import Foundation
import Hypervisor

/// What an agent must do to one guest; the control plane derives it from the instance's task.
public enum AgentTask: String, Sendable, Codable {
    case spawn, destroy, powerOff, powerOn, rebootSoft, rebootHard, pause, unpause, suspend, resume, resize, revertResize, rebuild
    /// Copy the root disk into the image `Assignment.snapshotImage`.
    case snapshot
}

/// One unit of work for a host: converge guest `spec.uuid` by doing `task`.
public struct Assignment: Sendable, Equatable, Codable {
    public var task: AgentTask
    /// The instance's task_state when this was handed out; the report carries it back so that a
    /// result for a task since superseded (say, a spawn finished after delete was asked) is ignored.
    public var taskState: String
    public var spec: GuestSpec
    /// For `.snapshot`: the image to fill.
    public var snapshotImage: String?

    public init(task: AgentTask, taskState: String, spec: GuestSpec, snapshotImage: String? = nil) {
        self.task = task
        self.taskState = taskState
        self.spec = spec
        self.snapshotImage = snapshotImage
    }
}

public enum TaskOutcome: Sendable, Equatable, Codable {
    /// Done; the guest's power afterwards (`noState` when it no longer exists).
    case done(GuestPower)
    case failed(String)
}

/// The control plane as an agent sees it. In one process it is the Compute service itself;
/// split, it is the internal API over HTTP with a per-host credential. Agents never touch the
/// database.
public protocol AgentControlPlane: Sendable {
    /// Registers (or re-registers) the host's compute service and resource provider.
    func register(host: String, zone: String, facts: HostFacts, link: any AgentLink) async throws
    func heartbeat(host: String) async throws
    /// Pending work for the host; waits up to `wait` for some to appear (long poll).
    func work(host: String, wait: Duration) async throws -> [Assignment]
    func report(host: String, instance: String, taskState: String, outcome: TaskOutcome) async throws
    /// Fills a snapshot image from a file the host wrote (in-process: read directly; split: streamed).
    func uploadSnapshot(host: String, instance: String, image: String, file: URL, diskFormat: String) async throws
    /// Every live instance on the host, for the periodic power sync.
    func instances(host: String) async throws -> [String: InstanceBaseline]
    /// Records power the host observed for instances at rest; each applies only if the instance
    /// has not changed since its baseline was read (so a sync never overwrites newer work).
    func observe(host: String, _ observations: [PowerObservation]) async throws
    /// Which of `guests` belong to no live instance of this host now (the agent stops them).
    func orphans(host: String, among guests: Set<String>) async throws -> Set<String>
    /// What the metadata service answers `instance` for `path` (nil: 404).
    func metadata(instance: String, path: String) async throws -> MetadataDocument?
}

/// One answer of the metadata service.
public struct MetadataDocument: Sendable, Equatable, Codable {
    public var contentType: String
    public var body: [UInt8]

    public init(contentType: String, body: [UInt8]) {
        self.contentType = contentType
        self.body = body
    }
}

/// What the control plane may ask a host directly, outside the work queue.
public protocol AgentLink: Sendable {
    func consoleOutput(_ uuid: String, lines: Int?) async throws -> String
    /// Wires `nic` (one of `spec.nics`) on the host and plugs it into the guest if it runs; a
    /// stopped guest gets it at its next start from `spec`.
    func attachInterface(_ spec: GuestSpec, nic: GuestNIC) async throws
    /// Unplugs a port's NIC from the guest if it runs.
    func detachInterface(_ uuid: String, portID: String) async throws
}

/// An instance as the control plane last recorded it, for comparing with what the host sees.
public struct InstanceBaseline: Sendable, Equatable, Codable {
    /// The instance's `updated_at`, the version an observation is checked against.
    public var updatedAt: String
    /// No task in flight: the recorded power should match the guest.
    public var atRest: Bool
    public var power: GuestPower

    public init(updatedAt: String, atRest: Bool, power: GuestPower) {
        self.updatedAt = updatedAt
        self.atRest = atRest
        self.power = power
    }
}

public struct PowerObservation: Sendable, Equatable, Codable {
    public var instance: String
    public var baselineUpdatedAt: String
    public var power: GuestPower

    public init(instance: String, baselineUpdatedAt: String, power: GuestPower) {
        self.instance = instance
        self.baselineUpdatedAt = baselineUpdatedAt
        self.power = power
    }
}
