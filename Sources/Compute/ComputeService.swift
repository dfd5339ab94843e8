import Agent
import Foundation
import Logging
import NimbusCore
import Placement
import SQLKit
import Scheduler
import Store

/// An image as Compute needs to know it to boot from it.
public struct ImageFacts: Sendable {
    public var id: String
    public var name: String
    public var status: String
    public var minDiskGB: Int64
    public var minRAMMB: Int64
    public var sizeBytes: Int64
    public var properties: [String: String]
    /// Glance's timestamps (`2026-01-02T03:04:05Z`), which Nova's image API shows.
    public var createdAt: String
    public var updatedAt: String

    public init(id: String, name: String, status: String, minDiskGB: Int64, minRAMMB: Int64, sizeBytes: Int64,
                properties: [String: String], createdAt: String = "", updatedAt: String = "") {
        self.id = id
        self.name = name
        self.status = status
        self.minDiskGB = minDiskGB
        self.minRAMMB = minRAMMB
        self.sizeBytes = sizeBytes
        self.properties = properties
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// The Image service as Compute calls it (in-process, or over HTTP when split).
public protocol ImageLookup: Sendable {
    /// The image if `caller` may see it, else nil.
    func image(_ id: String, caller: AuthContext) async throws -> ImageFacts?
    /// A new queued image owned by the caller's project, for a snapshot. - Returns: its id.
    func createSnapshotImage(name: String, diskFormat: String, properties: [String: String], minDiskGB: Int64,
                             minRAMMB: Int64, caller: AuthContext) async throws -> String
    /// Fills a queued image from a local file.
    func uploadImage(_ id: String, file: URL, diskFormat: String) async throws
    /// Removes an image whose snapshot failed.
    func discardImage(_ id: String) async
    /// The images `caller` may see, a page as Glance's `limit` and `marker` cut it (Nova's image API before 2.36).
    func images(limit: Int?, marker: String?, caller: AuthContext) async throws -> [ImageFacts]
    /// Deletes an image as `caller`, under the Image service's rules.
    func deleteImage(_ id: String, caller: AuthContext) async throws
}

public struct ComputeConfiguration: Sendable {
    /// What clients reach, for `links`.
    public var publicURL: String
    /// Builds of one instance before it goes to ERROR (Nova's `max_attempts`).
    public var maxAttempts = 3
    /// A service that has not reported for this long is `down` (Nova's `service_down_time`).
    public var serviceDownTime: TimeInterval = 60
    public var scheduler = SchedulerConfiguration.spread
    /// Overcommit hosts report to Placement, as Nova's initial ratios: CPU 4.0, RAM 1.0, disk 1.0.
    public var allocationRatios: [String: Double] = ["VCPU": 4.0, "MEMORY_MB": 1.0, "DISK_GB": 1.0]
    /// Quotas of projects that have no limit of their own, as Nova's defaults.
    public var defaultQuotas: [String: Int64] = ComputeConfiguration.novaDefaultQuotas
    /// The control plane's host name, shown for nova-scheduler and nova-conductor.
    public var controlHost: String

    public static let novaDefaultQuotas: [String: Int64] = [
        "instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100, "server_groups": 10,
        "server_group_members": 10, "metadata_items": 128, "injected_files": 5,
        "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255,
    ]

    public init(publicURL: String, controlHost: String = ProcessInfo.processInfo.hostName) {
        self.publicURL = publicURL
        self.controlHost = controlHost
    }
}

/// Nova: servers and everything around them. The API writes intent (instance rows whose
/// `task_state` is the pending work); the scheduler loop in this service places new instances
/// through Placement; agents converge their hosts and report back through `AgentControlPlane`.
public final class ComputeService: Sendable {
    public typealias Record = RecordTable.Record

    public let database: Database
    public let placement: PlacementService
    let images: any ImageLookup
    /// The Network service; nil in a cloud without one (servers then get no NICs).
    let ports: (any NetworkPorts)?
    public let configuration: ComputeConfiguration
    let logger: Logger
    /// Wakes the scheduler when an instance needs placing.
    let schedulerWake = WakeSignal()
    /// Per host: wakes its agent's long poll when it has work.
    let hostWakes = WakeSignals()
    /// Tells this replica's own announcements from the others' (see `wakeHost`).
    let replicaID = Identifier.uuid()
    static let hostAnnouncements = "nimbus_compute_hosts"
    /// In-process links to agents, for requests outside the work queue (console output).
    let links = AgentLinks()
    let hostStateCache = RecentValue<[String: String]>()
    /// Servers' detail views as bytes, keyed by everything they depend on (`updated_at` moves on
    /// every change), so listing many servers renders only what changed.
    let renderedServers = RenderedViews()
    /// Compute nodes as the scheduler sees them; up/down moves on a heartbeat scale, so a view a
    /// second old is enough. Changes made here (registration, disabling) clear it at once.
    let nodeCache = RecentValue<[String: ComputeNode]>()

    public init(database: Database, placement: PlacementService, images: any ImageLookup, ports: (any NetworkPorts)? = nil,
                configuration: ComputeConfiguration, logger: Logger) {
        self.ports = ports
        self.database = database
        self.placement = placement
        self.images = images
        self.configuration = configuration
        self.logger = logger
        database.subscribe(Self.hostAnnouncements) { [hostWakes, replicaID] payload in
            // After a lost connection every agent polling here may have missed its wake.
            guard let payload else { return hostWakes.notifyAll() }
            let parts = payload.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0] != replicaID { hostWakes.signal(String(parts[1])).notify() }
        }
    }

    /// Tells the other replicas, in the caller's transaction, to wake `host`'s agent, which may
    /// long-poll any of them. PostgreSQL delivers the notification at commit, so no agent wakes
    /// to the state before it; on SQLite there is only this replica.
    func announceWake(_ host: String, on db: any SQLDatabase) async throws {
        try await database.announce(Self.hostAnnouncements, payload: "\(replicaID) \(host)", on: db)
    }

    /// Wakes `host`'s agent if it long-polls this replica; call after the commit that gave it work
    /// (and announced it with `announceWake`).
    func wakeHost(_ host: String) {
        hostWakes.signal(host).notify()
    }

    static func now() -> String { Timestamp.keystone(Date()) }

    /// An instance the caller may see. - Throws: 404 as Nova words it, for absent, deleted and
    /// other projects' servers alike.
    func instance(_ id: String, _ caller: AuthContext, on db: any SQLDatabase, forUpdate: Bool = false) async throws -> Instance {
        let record = forUpdate ? try await ComputeSchema.instances.fetchForUpdate(id, on: db) : try await ComputeSchema.instances.fetch(id, on: db)
        guard let record else { throw NimbusError.notFound("Instance \(id) could not be found.") }
        let instance = Instance(record: record)
        guard !instance.deleted, caller.isAdmin || instance.projectID == caller.projectID else {
            throw NimbusError.notFound("Instance \(id) could not be found.")
        }
        return instance
    }

    public func instance(_ id: String, caller: AuthContext) async throws -> Instance {
        try await database.read { try await self.instance(id, caller, on: $0) }
    }

    func save(_ instance: Instance, on db: any SQLDatabase) async throws {
        var instance = instance
        instance.updatedAt = Self.now()
        try await ComputeSchema.instances.update(instance.id, instance.record, on: db)
    }
}

/// A wake-up for one waiting loop: `notify` releases current waiters, or the next one if none waits.
final class WakeSignal: Sendable {
    /// Whether a `notify` came with no one waiting.
    private let room = WaitingRoom(false)

    func notify() { room.wakeAll { pending, anyoneWaiting in pending = !anyoneWaiting } }

    /// Returns at the next `notify` (or at once if one came since the last wait), after `timeout`,
    /// or when the caller is cancelled.
    func wait(timeout: Duration) async {
        await room.wait(timeout: timeout) { pending in
            defer { pending = false }
            return pending
        }
    }
}

/// One `WakeSignal` per key (host), made on first use.
final class WakeSignals: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var signals: [String: WakeSignal] = [:]

    func notifyAll() {
        lock.lock()
        let all = Array(signals.values)
        lock.unlock()
        for signal in all { signal.notify() }
    }

    func signal(_ key: String) -> WakeSignal {
        lock.lock()
        defer { lock.unlock() }
        if let signal = signals[key] { return signal }
        let signal = WakeSignal()
        signals[key] = signal
        return signal
    }
}

final class AgentLinks: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var links: [String: any AgentLink] = [:]

    func set(_ host: String, _ link: any AgentLink) {
        lock.lock()
        links[host] = link
        lock.unlock()
    }

    func link(_ host: String) -> (any AgentLink)? {
        lock.lock()
        defer { lock.unlock() }
        return links[host]
    }
}

/// A value kept for a short while, to spare repeated reads of slowly changing state.
///
/// `clear` bumps a generation; a value loaded before a `clear` is not stored, so a reader that
/// raced a change can never put the old state back for the next second.
final class RecentValue<Value: Sendable>: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var stored: (value: Value, at: Date)?
    nonisolated(unsafe) private var generation = 0

    /// Take before loading; pass to `store`.
    var currentGeneration: Int {
        lock.lock()
        defer { lock.unlock() }
        return generation
    }

    func value(maxAge: TimeInterval) -> Value? {
        lock.lock()
        defer { lock.unlock() }
        guard let stored, Date().timeIntervalSince(stored.at) < maxAge else { return nil }
        return stored.value
    }

    func store(_ value: Value, loadedAt loaded: Int) {
        lock.lock()
        if loaded == generation { stored = (value, Date()) }
        lock.unlock()
    }

    func clear() {
        lock.lock()
        stored = nil
        generation += 1
        lock.unlock()
    }
}

/// Serialized views by key; forgets everything when it grows past `limit` (keys of changed
/// servers are never asked for again, so they must not pile up).
final class RenderedViews: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var views: [String: [UInt8]] = [:]
    let limit = 20_000

    func view(_ key: String, render: () -> [UInt8]) -> [UInt8] {
        lock.lock()
        if let cached = views[key] {
            lock.unlock()
            return cached
        }
        lock.unlock()
        let rendered = render()
        lock.lock()
        if views.count >= limit { views.removeAll(keepingCapacity: true) }
        views[key] = rendered
        lock.unlock()
        return rendered
    }
}
