import Dataplane
import Foundation
import Logging
import NimbusCore
import SQLKit
import Store

public struct NetworkConfiguration: Sendable {
    /// VXLAN network identifiers handed to tenant networks (Neutron's `vni_ranges`).
    public var vniRange: ClosedRange<Int> = 1...16_777_215
    /// Quotas of projects without limits of their own (Neutron's defaults; -1 is unlimited).
    public var defaultQuotas: [String: Int64] = NetworkConfiguration.neutronDefaultQuotas
    /// Base of the MACs generated for ports (Neutron's `base_mac`).
    public var macPrefix = "fa:16:3e"

    public static let neutronDefaultQuotas: [String: Int64] = [
        "network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
        "security_group": 10, "security_group_rule": 100, "rbac_policy": 10, "subnetpool": -1,
    ]

    public init() {}
}

/// Neutron: networks, subnets, ports and their addresses, security groups, routers and floating
/// IPs. The HTTP API (`NetworkAPI`), Compute (through an adapter) and hosts' agents (through
/// `NetworkControlPlane`) all call these methods; nothing here knows about HTTP.
///
/// Every write is one transaction, after which `signal` moves on so that agents waiting for their
/// host's state wake and re-read it. On PostgreSQL the write is also announced to the other
/// control-plane replicas, whose signals move when they hear it.
public final class NetworkService: Sendable {
    public typealias Record = RecordTable.Record

    public let database: Database
    public let configuration: NetworkConfiguration
    let logger: Logger
    /// The dataplane generation and the agents waiting for it to move.
    let signal = GenerationSignal()
    /// The records agents' states derive from, as read at the latest generation asked for.
    let worlds = WorldCache()
    /// Where each subnet's next free-address search starts; a guess only (the table decides).
    let cursors = AllocationCursors()
    /// Told when a server's addresses change outside Compute (a floating IP moved), as Neutron
    /// tells Nova with a `network-changed` event.
    let instanceWatch = InstanceWatch()

    /// Tells this replica's own announcements from the others'.
    let replicaID = Identifier.uuid()
    static let announcements = "nimbus_network"

    public init(database: Database, configuration: NetworkConfiguration = .init(), logger: Logger) {
        self.database = database
        self.configuration = configuration
        self.logger = logger
        database.subscribe(Self.announcements) { [signal, replicaID] from in
            if from != replicaID { signal.bump() }
        }
    }

    static func now() -> String { Timestamp.seconds(Date()) }

    /// Runs one write transaction and then wakes the agents. Generated values that collide
    /// (a MAC, a VNI) surface as unique violations: the whole transaction runs again with new ones.
    @discardableResult
    func write<T: Sendable>(_ body: @Sendable @escaping (any SQLDatabase) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                let result = try await database.transaction { [database, replicaID] db in
                    let result = try await body(db)
                    try await database.announce(Self.announcements, payload: replicaID, on: db)
                    return result
                }
                signal.bump()
                return result
            } catch where Database.isUniqueViolation(error) && attempt < 4 {
                attempt += 1
            }
        }
    }

    /// A new row's standard attributes (`standard-attr-*` extensions).
    static func standardAttributes(_ record: inout Record, tags: [String] = []) {
        let now = now()
        record["created_at"] = .string(now)
        record["updated_at"] = .string(now)
        record["revision_number"] = 0
        record["tags"] = .array(tags.map { .string($0) })
    }

    /// Bumps `updated_at` and `revision_number` along with `changes`.
    static func revised(_ changes: Record, from record: Record) -> Record {
        var changes = changes
        changes["updated_at"] = .string(now())
        changes["revision_number"] = .int((record["revision_number"]?.intValue ?? 0) + 1)
        return changes
    }

    // MARK: - Policy

    /// Members write, readers only read, as Neutron's default (secure RBAC) policies.
    static func requireWriter(_ caller: AuthContext, _ action: String) throws {
        guard caller.isMember else { throw NimbusError.policy(action) }
    }

    static func requireAdmin(_ caller: AuthContext, _ action: String) throws {
        guard caller.isAdmin else { throw NimbusError.policy(action) }
    }

    /// The project a new resource belongs to: the caller's, or (admins only) the one named.
    static func owningProject(_ body: FieldReader, _ caller: AuthContext, _ action: String) throws -> String {
        let named = try body.string("project_id") ?? body.string("tenant_id")
        if let project = body.fields["project_id"]?.stringValue, let tenant = body.fields["tenant_id"]?.stringValue, project != tenant {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "'project_id' and 'tenant_id' do not match")
        }
        if let named, named != caller.projectID {
            guard caller.isAdmin else { throw NimbusError.policy(action) }
            return named
        }
        guard let own = caller.projectID ?? named else {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "A project-scoped token or 'project_id' is required.")
        }
        return own
    }

    static func owns(_ record: Record, _ caller: AuthContext) -> Bool {
        caller.isAdmin || (caller.projectID != nil && record.string("project_id") == caller.projectID)
    }
}

extension NimbusError {
    /// An error whose Neutron fault `type` is `code` (e.g. `NetworkNotFound`).
    static func neutron(_ kind: Kind, _ code: String, _ message: String) -> NimbusError {
        NimbusError(kind, message, code: code)
    }

    static func policy(_ action: String) -> NimbusError {
        .neutron(.forbidden, "PolicyNotAuthorized", "(rule:\(action)) is disallowed by policy")
    }

    static func invalidInput(_ message: String) -> NimbusError {
        .neutron(.badRequest, "InvalidInput", "Invalid input for operation: \(message)")
    }
}

/// A counter that moves on every dataplane-affecting write, and the agents waiting for it to.
///
/// It starts from the clock so that a restarted control plane never answers with a generation an
/// agent already saw (which would make it wait out a change it has not got).
final class GenerationSignal: Sendable {
    private let room = WaitingRoom(Int64(Date().timeIntervalSince1970 * 1000))

    var current: Int64 { room.state }

    func bump() { room.wakeAll { generation, _ in generation += 1 } }

    /// Returns once the generation is past `seen`, after `timeout`, or when the caller is cancelled.
    func wait(after seen: Int64, timeout: Duration) async {
        await room.wait(timeout: timeout) { $0 > seen }
    }
}

/// Per subnet, the pool offset to try next, so that consecutive allocations do not all probe
/// the same taken addresses first.
final class AllocationCursors: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var next: [String: UInt64] = [:]

    /// Hands out consecutive offsets, so concurrent allocators start from different addresses.
    func take(_ subnet: String) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        let offset = next[subnet, default: 0]
        next[subnet] = offset &+ 1
        return offset
    }

    func forget(_ subnet: String) {
        lock.lock()
        next[subnet] = nil
        lock.unlock()
    }
}

/// One listener for "this server's ports changed" (Compute refreshing its address cache).
final class InstanceWatch: @unchecked Sendable {
    private let lock = NSLock()
    private var handler: (@Sendable (String) async -> Void)?

    func set(_ handler: @escaping @Sendable (String) async -> Void) { lock.withLock { self.handler = handler } }
    func notify(_ instance: String) async { await lock.withLock { handler }?(instance) }
}

extension NetworkService {
    /// Calls `handler` with a server's id whenever its addresses change here (floating IPs).
    public func onInstanceNetworkChange(_ handler: @escaping @Sendable (String) async -> Void) { instanceWatch.set(handler) }

    /// Tells the listener about the servers behind `ports` (those a compute device owns).
    func notifyInstances(ofPorts ports: [String?]) async {
        for id in Set(ports.compactMap { $0 }) where !id.isEmpty {
            guard let port = try? await database.read({ try await NetworkSchema.ports.fetch(id, on: $0) }),
                  (port.string("device_owner") ?? "").hasPrefix("compute:"), let instance = port.string("device_id"), !instance.isEmpty else { continue }
            await instanceWatch.notify(instance)
        }
    }
}

/// One read of the records per dataplane generation: every agent woken by a change asks at once,
/// and all of them derive their host's state from the same read instead of each reading every
/// table. A read that fails is forgotten, so the next ask tries again.
final class WorldCache: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var latest: (generation: Int64, read: Task<NetworkService.World, any Error>)?

    func world(at generation: Int64, read: @escaping @Sendable () async throws -> NetworkService.World) async throws -> NetworkService.World {
        let task = lock.withLock { () -> Task<NetworkService.World, any Error> in
            if let latest, latest.generation == generation { return latest.read }
            let task = Task { try await read() }
            latest = (generation, task)
            return task
        }
        do {
            return try await task.value
        } catch {
            lock.withLock { if latest?.generation == generation { latest = nil } }
            throw error
        }
    }
}
