import Agent
import Foundation
import Hypervisor
import NimbusCore
import Placement
import SQLKit
import Scheduler
import Store

/// A compute host as the scheduler sees it: its service row and resource provider.
struct ComputeNode: Sendable {
    var host: String
    var uuid: String
    var zone: String
    var aggregateMetadata: [[String: String]]
    var isUp: Bool
    var isEnabled: Bool
    var supportedInstances: [SupportedInstance]
}

extension ComputeService: AgentControlPlane {
    public func register(host: String, zone: String, facts: HostFacts, link: any AgentLink) async throws {
        let now = Self.now()
        let factsJSON: JSONValue = [
            "vcpus": .int(Int64(facts.vcpus)), "memory_mb": .int(Int64(facts.memoryMB)), "local_gb": .int(Int64(facts.diskGB)),
            "hypervisor_type": .string(facts.hypervisorType), "hypervisor_version": .int(Int64(facts.hypervisorVersion)),
            "accelerator": .string(facts.accelerator), "cpu_info": .string(facts.cpuInfo),
            "ksm": .object(facts.ksm.mapValues { .int(Int64($0)) }),
        ]
        // The provider first, then the service row that points at it: a host is schedulable (and
        // `nimbus up` ready) only once both exist.
        let existing = try await database.read { db in
            try await ComputeSchema.services.list(
                [.init("host", .equal, .string(host)), .init("service_binary", .equal, "nova-compute")], on: db).first
        }
        let node = existing?.string("node_uuid") ?? Identifier.uuid()
        let inventories: [String: Inventory] = [
            "VCPU": Inventory(total: Int64(facts.vcpus), maxUnit: Int64(facts.vcpus), allocationRatio: configuration.allocationRatios["VCPU"] ?? 4.0),
            "MEMORY_MB": Inventory(total: Int64(facts.memoryMB), maxUnit: Int64(facts.memoryMB), allocationRatio: configuration.allocationRatios["MEMORY_MB"] ?? 1.0),
            "DISK_GB": Inventory(total: Int64(facts.diskGB), maxUnit: Int64(facts.diskGB), allocationRatio: configuration.allocationRatios["DISK_GB"] ?? 1.0),
        ]
        try await placement.ensureProvider(uuid: node, name: host, inventories: inventories, traits: ["COMPUTE_NODE"])
        try await database.transaction { db in
            let current = try await ComputeSchema.services.list(
                [.init("host", .equal, .string(host)), .init("service_binary", .equal, "nova-compute")], on: db).first
            if let id = current?.string("id") {
                try await ComputeSchema.services.update(id, [
                    "zone": .string(zone), "last_seen": .double(Date().timeIntervalSince1970), "updated_at": .string(now),
                    "node_uuid": .string(node), "facts": factsJSON,
                ], on: db)
            } else {
                try await ComputeSchema.services.insert([
                    "id": .string(Identifier.uuid()), "host": .string(host), "service_binary": "nova-compute", "zone": .string(zone),
                    "disabled": false, "disabled_reason": nil, "forced_down": false, "last_seen": .double(Date().timeIntervalSince1970),
                    "created_at": .string(now), "updated_at": .string(now), "node_uuid": .string(node), "facts": factsJSON,
                ], on: db)
            }
        }
        links.set(host, link)
        invalidateHostViews()
        logger.info("compute host \(host) registered (\(facts.vcpus) vCPU, \(facts.memoryMB) MB, \(facts.diskGB) GB, \(facts.accelerator))")
    }

    public func heartbeat(host: String) async throws {
        try await database.transaction { db in
            try await db.update("compute_services").set("last_seen", to: SQLBind(Date().timeIntervalSince1970))
                .where("host", .equal, SQLBind(host)).where("service_binary", .equal, SQLBind("nova-compute")).run()
        }
    }

    /// Keeps the control plane's own services (scheduler, conductor) listed and up.
    func heartbeatControlServices() async throws {
        let now = Self.now()
        let host = configuration.controlHost
        try await database.transaction { db in
            for binary in ["nova-scheduler", "nova-conductor"] {
                let existing = try await ComputeSchema.services.list(
                    [.init("host", .equal, .string(host)), .init("service_binary", .equal, .string(binary))], on: db).first
                if let id = existing?.string("id") {
                    try await ComputeSchema.services.update(id, ["last_seen": .double(Date().timeIntervalSince1970)], on: db)
                } else {
                    try await ComputeSchema.services.insert([
                        "id": .string(Identifier.uuid()), "host": .string(host), "service_binary": .string(binary), "zone": "internal",
                        "disabled": false, "disabled_reason": nil, "forced_down": false, "last_seen": .double(Date().timeIntervalSince1970),
                        "created_at": .string(now), "updated_at": .string(now), "node_uuid": nil, "facts": [:],
                    ], on: db)
                }
            }
        }
    }

    public func work(host: String, wait: Duration) async throws -> [Assignment] {
        let first = try await assignments(host)
        if !first.isEmpty { return first }
        await hostWakes.signal(host).wait(timeout: wait)
        return try await assignments(host)
    }

    func assignments(_ host: String) async throws -> [Assignment] {
        let rows = try await database.read { db in
            try await ComputeSchema.instances.list(
                [.init("host", .equal, .string(host)), .init("task_state", .notEqual, .string(TaskState.scheduling.rawValue)),
                 .init("deleted", .equal, .bool(false))], on: db)
        }
        var assignments: [Assignment] = []
        var properties: [String: [String: String]] = [:]
        for instance in rows.map(Instance.init(record:)) {
            guard let task = instance.taskState, let agentTask = Self.agentTask(task) else { continue }
            var spec = Self.guestSpec(instance)
            if agentTask == .spawn || agentTask == .rebuild {
                // Drivers boot kernel/ramdisk images from these (kernel_id, ramdisk_id); a burst
                // usually boots one image, so it is looked up once per round.
                if properties[instance.imageRef] == nil {
                    properties[instance.imageRef] = try await imageProperties(instance.imageRef, project: instance.projectID)
                }
                spec.imageProperties = properties[instance.imageRef] ?? [:]
            }
            assignments.append(Assignment(task: agentTask, taskState: task.rawValue, spec: spec, snapshotImage: instance.pendingImage))
        }
        return assignments
    }

    func imageProperties(_ id: String, project: String) async throws -> [String: String] {
        (try await images.image(id, caller: Self.systemCaller(project: project)))?.properties ?? [:]
    }

    static func agentTask(_ task: TaskState) -> AgentTask? {
        switch task {
        case .scheduling: nil
        case .spawning: .spawn
        case .deleting: .destroy
        case .poweringOff: .powerOff
        case .poweringOn: .powerOn
        case .rebooting: .rebootSoft
        case .rebootingHard: .rebootHard
        case .pausing: .pause
        case .unpausing: .unpause
        case .suspending: .suspend
        case .resuming: .resume
        case .rebuilding: .rebuild
        case .resizePrep: .resize
        case .resizeReverting: .revertResize
        case .imageSnapshot: .snapshot
        }
    }

    static func guestSpec(_ instance: Instance) -> GuestSpec {
        var keys: [String: String] = [:]
        if let name = instance.keyName, let data = instance.keyData { keys[name] = data }
        return GuestSpec(
            uuid: instance.id, name: instance.name, hostname: instance.hostname, vcpus: Int(instance.flavor.vcpus),
            memoryMB: Int(instance.flavor.ram), rootGB: Int(instance.flavor.disk), ephemeralGB: Int(instance.flavor.ephemeral),
            swapMB: Int(instance.flavor.swap), imageID: instance.imageRef, userData: instance.userData, metadata: instance.metadata,
            publicKeys: keys, extraSpecs: instance.flavor.extraSpecs, projectID: instance.projectID,
            availabilityZone: instance.availabilityZone ?? "nova", launchIndex: Int(instance.launchIndex),
            nics: instance.networkInfo.map(\.guestNIC))
    }

    public func report(host: String, instance: String, taskState: String, outcome: TaskOutcome) async throws {
        try await applyReport(host: host, instance: instance, taskState: taskState, outcome: outcome)
    }

    /// Finishes the task an agent reports on, unless the instance has moved on to another task
    /// since (the report is then stale and ignored). A failed build is rescheduled elsewhere
    /// until `maxAttempts`; a failed delete completes anyway (the guest, if it still runs, is an
    /// orphan the host's next sync stops).
    func applyReport(host: String, instance id: String, taskState: String, outcome: TaskOutcome) async throws {
        enum After { case nothing, release, releaseDeleted, reschedule, wakeHost, discardImage(String) }
        let started = Self.now()
        let after = try await database.transaction { db -> After in
            guard let record = try await ComputeSchema.instances.fetchForUpdate(id, on: db) else { return .nothing }
            var instance = Instance(record: record)
            guard !instance.deleted, instance.host == host, let task = instance.taskState, task.rawValue == taskState else { return .nothing }
            let event = Self.eventName(task)
            switch outcome {
            case .done(let power):
                instance.powerState = Int64(power.rawValue)
                instance.taskState = nil
                instance.fault = nil
                switch task {
                case .spawning:
                    instance.vmState = .active
                    instance.launchedAt = Self.now()
                case .deleting:
                    try await self.recordEvent(instance: id, requestID: instance.requestID, event: event, host: host, started: started, on: db)
                    try await self.markDeleted(&instance, on: db)
                    return .releaseDeleted
                case .poweringOff: instance.vmState = .stopped
                case .poweringOn, .rebooting, .rebootingHard, .unpausing, .resuming, .rebuilding: instance.vmState = .active
                case .pausing: instance.vmState = .paused
                case .suspending: instance.vmState = .suspended
                case .resizePrep: instance.vmState = .resized
                case .resizeReverting:
                    instance.vmState = power == .shutdown ? .stopped : .active
                    instance.oldFlavor = nil
                case .imageSnapshot:
                    instance.pendingImage = nil
                case .scheduling: break
                }
                try await self.save(instance, on: db)
                try await self.recordEvent(instance: id, requestID: instance.requestID, event: event, host: host, started: started, on: db)
                return .nothing
            case .failed(let message):
                try await self.recordEvent(instance: id, requestID: instance.requestID, event: event, host: host, started: started,
                                           failure: message, on: db)
                switch task {
                case .spawning:
                    instance.failedHosts.append(host)
                    if instance.attempts < Int64(self.configuration.maxAttempts) {
                        // Kept so that, should no host be left, the final fault names the real cause.
                        instance.fault = ["code": 500, "created": .string(Timestamp.seconds(Date())),
                                          "message": .string("Build failed on \(host): \(message)"), "details": .string(message)]
                        instance.host = nil
                        instance.node = nil
                        instance.taskState = .scheduling
                        try await self.save(instance, on: db)
                        return .reschedule
                    }
                    instance.vmState = .error
                    instance.taskState = nil
                    instance.fault = [
                        "code": 500, "created": .string(Timestamp.seconds(Date())),
                        "message": .string("Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance \(id). Last failure on \(host): \(message)"),
                        "details": .string(message),
                    ]
                    try await self.save(instance, on: db)
                    return .release
                case .deleting:
                    try await self.markDeleted(&instance, on: db)
                    return .releaseDeleted
                case .imageSnapshot:
                    let image = instance.pendingImage
                    instance.taskState = nil
                    instance.pendingImage = nil
                    try await self.save(instance, on: db)
                    return image.map { .discardImage($0) } ?? .nothing
                default:
                    // The operation did not happen; the instance stays as it was, with the error in its action.
                    instance.taskState = nil
                    if task == .resizePrep, let old = instance.oldFlavor {
                        instance.flavor = old
                        instance.oldFlavor = nil
                        try await self.save(instance, on: db)
                        return .wakeHost
                    }
                    try await self.save(instance, on: db)
                    return .nothing
                }
            }
        }
        switch after {
        case .nothing: break
        case .discardImage(let image): await images.discardImage(image)
        case .release: try await placement.releaseAllocations(consumer: id)
        case .releaseDeleted:
            try await placement.releaseAllocations(consumer: id)
            await unplugPorts(id)
        case .reschedule:
            try await placement.releaseAllocations(consumer: id)
            schedulerWake.notify()
        case .wakeHost:
            // The old flavor's resources are claimed back for a resize that failed.
            if let current = try? await database.read({ try await ComputeSchema.instances.fetch(id, on: $0) }).map(Instance.init(record:)) {
                try? await claimOnHost(current, flavor: current.flavor, host: host)
            }
        }
    }

    static func eventName(_ task: TaskState) -> String {
        switch task {
        case .spawning: "compute__do_build_and_run_instance"
        case .deleting: "compute_terminate_instance"
        case .poweringOff: "compute_stop_instance"
        case .poweringOn: "compute_start_instance"
        case .rebooting, .rebootingHard: "compute_reboot_instance"
        case .pausing: "compute_pause_instance"
        case .unpausing: "compute_unpause_instance"
        case .suspending: "compute_suspend_instance"
        case .resuming: "compute_resume_instance"
        case .rebuilding: "compute_rebuild_instance"
        case .resizePrep: "compute_resize_instance"
        case .resizeReverting: "compute_revert_resize"
        case .imageSnapshot: "compute_snapshot_instance"
        case .scheduling: "conductor_schedule_and_build_instances"
        }
    }

    public func uploadSnapshot(host: String, instance id: String, image: String, file: URL, diskFormat: String) async throws {
        let instance = try await database.read { try await ComputeSchema.instances.fetch(id, on: $0) }.map(Instance.init(record:))
        guard let instance, instance.host == host, instance.pendingImage == image, instance.taskState == .imageSnapshot else {
            throw NimbusError.conflict("Instance \(id) is not taking a snapshot into image \(image) on \(host).")
        }
        try await images.uploadImage(image, file: file, diskFormat: diskFormat)
    }

    public func instances(host: String) async throws -> [String: InstanceBaseline] {
        let rows = try await database.read { db in
            try await ComputeSchema.instances.list([.init("host", .equal, .string(host)), .init("deleted", .equal, .bool(false))], on: db)
        }
        var out: [String: InstanceBaseline] = [:]
        for instance in rows.map(Instance.init(record:)) {
            let atRest = instance.taskState == nil && instance.vmState != .building && instance.vmState != .error
            out[instance.id] = InstanceBaseline(updatedAt: instance.updatedAt, atRest: atRest,
                                                power: GuestPower(rawValue: Int(instance.powerState)) ?? .noState)
        }
        return out
    }

    public func observe(host: String, _ observations: [PowerObservation]) async throws {
        try await database.transaction { db in
            for observation in observations {
                guard let row = try await ComputeSchema.instances.fetchForUpdate(observation.instance, on: db) else { continue }
                var instance = Instance(record: row)
                guard instance.host == host, !instance.deleted, instance.taskState == nil,
                      instance.updatedAt == observation.baselineUpdatedAt else { continue }
                let observed = Int64(observation.power.rawValue)
                instance.powerState = observed
                // A guest that stopped by itself (or vanished) is SHUTOFF, as Nova's power sync decides.
                if instance.vmState == .active && (observation.power == .shutdown || observation.power == .noState) {
                    instance.vmState = .stopped
                    self.logger.warning("instance \(instance.id) on \(host) stopped outside Nimbus's control")
                }
                try await self.save(instance, on: db)
            }
        }
    }

    public func orphans(host: String, among guests: Set<String>) async throws -> Set<String> {
        try await database.read { db in
            var orphans = Set<String>()
            for uuid in guests {
                let row = try await ComputeSchema.instances.fetch(uuid, on: db)
                let instance = row.map(Instance.init(record:))
                if instance == nil || instance?.deleted == true || instance?.host != host { orphans.insert(uuid) }
            }
            return orphans
        }
    }

    // MARK: - Hosts

    func computeNodes() async throws -> [String: ComputeNode] {
        if let cached = nodeCache.value(maxAge: 1) { return cached }
        let generation = nodeCache.currentGeneration
        let nodes = try await loadComputeNodes()
        nodeCache.store(nodes, loadedAt: generation)
        return nodes
    }

    /// Waits (up to `timeout`) until these hosts have registered: `nimbus up` says it is ready
    /// only once it can place a server. - Returns: whether they all did.
    public func waitForHosts(_ names: Set<String>, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let nodes = try? await loadComputeNodes(), names.isSubset(of: Set(nodes.values.filter(\.isUp).map(\.host))) {
                return true
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    func invalidateHostViews() {
        nodeCache.clear()
        hostStateCache.clear()
    }

    func loadComputeNodes() async throws -> [String: ComputeNode] {
        let rows = try await database.read { db in
            try await ComputeSchema.services.list([.init("service_binary", .equal, "nova-compute")], on: db)
        }
        let now = Date().timeIntervalSince1970
        let aggregates = try await aggregatesByHost()
        var out: [String: ComputeNode] = [:]
        for row in rows {
            guard let uuid = row.string("node_uuid"), let host = row.string("host") else { continue }
            let metadata = aggregates[host] ?? []
            // An aggregate's zone becomes its hosts' zone, as in Nova.
            let zone = metadata.compactMap { $0["availability_zone"] }.first ?? row.string("zone") ?? "nova"
            out[uuid] = ComputeNode(
                host: host, uuid: uuid, zone: zone, aggregateMetadata: metadata, isUp: isUp(row, now: now),
                isEnabled: row["disabled"]?.boolValue != true,
                supportedInstances: [SupportedInstance(architecture: "x86_64", hypervisorType: row["facts"]?["hypervisor_type"]?.stringValue ?? "qemu", vmMode: "hvm")])
        }
        return out
    }

    func isUp(_ service: Record, now: Double = Date().timeIntervalSince1970) -> Bool {
        service["forced_down"]?.boolValue != true
            && now - Self.seconds(service["last_seen"]) < configuration.serviceDownTime
    }

    static func seconds(_ value: JSONValue?) -> Double {
        switch value {
        case .double(let number)?: number
        case .int(let number)?: Double(number)
        default: 0
        }
    }

    func upComputeHosts() async throws -> Set<String> {
        Set(try await computeNodes().values.filter(\.isUp).map(\.host))
    }

    func computeNode(_ host: String) async throws -> String? {
        try await computeNodes().values.first { $0.host == host }?.uuid
    }
}
