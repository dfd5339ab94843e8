import Foundation
import NimbusCore
import Placement
import SQLKit
import Scheduler
import Store

extension ComputeService {
    /// Places instances waiting in `scheduling` until cancelled: woken by new requests and
    /// reschedules, and once a second regardless, which also catches work another replica wrote.
    /// Every tenth round it also sweeps instances whose host went down (see `sweepDownHosts`).
    public func runScheduler() async {
        var round = 0
        while !Task.isCancelled {
            var placed = 0
            do {
                placed = try await scheduleBatch()
                if round % 10 == 0 {
                    try await heartbeatControlServices()
                    try await sweepDownHosts()
                }
            } catch {
                logger.warning("scheduler round failed: \(error)")
            }
            round += 1
            if placed == 0 { await schedulerWake.wait(timeout: .seconds(1)) }
        }
    }

    /// Schedules up to 100 waiting instances, oldest first. - Returns: how many it handled.
    func scheduleBatch() async throws -> Int {
        let waiting = try await database.read { db in
            try await ComputeSchema.instances.list(
                [.init("task_state", .equal, .string(TaskState.scheduling.rawValue)), .init("deleted", .equal, .bool(false))],
                orderBy: "created_at", limit: 100, on: db)
        }.map(Instance.init(record:))
        guard !waiting.isEmpty else { return 0 }
        let nodes = try await computeNodes()
        // Image properties feed the ImagePropertiesFilter; a burst usually boots few images.
        var properties: [String: [String: String]] = [:]
        for imageID in Set(waiting.map(\.imageRef)) {
            let owner = waiting.first { $0.imageRef == imageID }?.projectID ?? ""
            properties[imageID] = (try? await images.image(imageID, caller: Self.systemCaller(project: owner)))??.properties ?? [:]
        }
        for instance in waiting {
            do {
                try await schedule(instance, nodes: nodes, imageProperties: properties[instance.imageRef] ?? [:])
            } catch {
                logger.error("scheduling \(instance.id) failed: \(error)")
            }
        }
        return waiting.count
    }

    /// Chooses a host for one instance and claims its resources there, or puts it in ERROR with
    /// "No valid host was found" when none fits.
    /// The hosts a new instance would go to, best first, without claiming anything: the
    /// scheduler's decision alone (Placement candidates, filters, weighers), for benchmarks and
    /// what-if questions.
    public func rankHosts(vcpus: Int64, ramMB: Int64, diskGB: Int64, projectID: String) async throws -> [String] {
        var instance = Instance(record: [:])
        instance.projectID = projectID
        instance.flavor = FlavorSnapshot(record: ["vcpus": .int(vcpus), "ram": .int(ramMB), "disk": .int(diskGB)])
        return try await decide(instance, nodes: try await computeNodes(), imageProperties: [:]).decision.hosts.map(\.host)
    }

    func decide(_ instance: Instance, nodes: [String: ComputeNode], imageProperties: [String: String]) async throws
        -> (decision: SchedulingDecision, candidates: Int) {
        let candidates = try await placement.allocationCandidates(CandidateRequest(resources: instance.flavor.resources))
        var hosts: [HostCandidate] = []
        hosts.reserveCapacity(candidates.count)
        for candidate in candidates {
            guard let node = nodes[candidate.provider.uuid] else { continue }
            hosts.append(HostCandidate(
                host: node.host, providerUUID: node.uuid, availabilityZone: node.zone, isUp: node.isUp, isEnabled: node.isEnabled,
                resources: candidate.resources.mapValues { ResourceAmount(capacity: $0.capacity, used: $0.used) },
                aggregateMetadata: node.aggregateMetadata, supportedInstances: node.supportedInstances, instanceCount: 0))
        }
        var spec = RequestSpec(
            projectID: instance.projectID, vcpus: instance.flavor.vcpus, memoryMB: instance.flavor.ram, diskGB: instance.flavor.disk,
            availabilityZone: instance.availabilityZone, requestedHost: instance.schedulerHints["nimbus:requested_host"]?.stringValue,
            imageProperties: imageProperties, serverGroup: nil, ignoreHosts: Set(instance.failedHosts))
        if let group = instance.serverGroup { spec.serverGroup = try await groupSpec(group, excluding: instance.id) }
        return (Scheduler.rank(spec, among: hosts, configuration: configuration.scheduler), hosts.count)
    }

    func schedule(_ instance: Instance, nodes: [String: ComputeNode], imageProperties: [String: String]) async throws {
        let started = Self.now()
        let (decision, candidateCount) = try await decide(instance, nodes: nodes, imageProperties: imageProperties)
        for host in decision.hosts {
            do {
                try await placement.claim(consumer: instance.id, project: instance.projectID, user: instance.userID,
                                          allocations: [host.providerUUID: instance.flavor.resources], consumerGeneration: nil)
            } catch let error as NimbusError where error.kind == .conflict {
                if error.isPlacementConcurrentUpdate {
                    // Allocations left by an earlier attempt that crashed before recording its host: drop and retry.
                    try await placement.releaseAllocations(consumer: instance.id)
                }
                continue
            }
            // Ports are bound once the host is certain (Nova binds them on the chosen host too); a
            // port that cannot be had fails the build here, as Nova's network allocation does.
            let nics: [InstanceNIC]
            do {
                nics = try await plugPorts(instance, host: host.host)
            } catch {
                let reason = (error as? NimbusError)?.message ?? "\(error)"
                try await fail(instance.id, message: "Build of instance \(instance.id) aborted: Failed to allocate the network(s), not rescheduling.",
                               details: reason, started: started, event: "conductor_schedule_and_build_instances")
                return
            }
            let bound = try await database.transaction { db -> Bool in
                guard let record = try await ComputeSchema.instances.fetchForUpdate(instance.id, on: db) else { return false }
                var current = Instance(record: record)
                guard current.taskState == .scheduling, !current.deleted else { return false }
                current.host = host.host
                current.node = host.host
                current.taskState = .spawning
                current.attempts += 1
                current.networkInfo = nics
                try await self.save(current, on: db)
                try await self.recordEvent(instance: current.id, requestID: current.requestID, event: "conductor_schedule_and_build_instances",
                                           host: host.host, started: started, on: db)
                try await self.announceWake(host.host, on: db)
                return true
            }
            if bound {
                wakeHost(host.host)
            } else {
                try await placement.releaseAllocations(consumer: instance.id)
            }
            return
        }
        let reasons = decision.rejectionSummary
        logger.info("no valid host for \(instance.id) among \(candidateCount) candidates: \(reasons)")
        // After failed builds, the last failure is the cause worth showing, not the empty host list.
        let previous = instance.fault?["message"]?.stringValue
        let message = previous.map { "No valid host was found. Exhausted all hosts available for retrying build failures. Last failure: \($0)" }
            ?? "No valid host was found. "
        try await fail(instance.id, message: message, details: reasons, started: started,
                       event: "conductor_schedule_and_build_instances")
    }

    /// Puts an instance in ERROR with a fault, as a build that cannot go on.
    func fail(_ id: String, message: String, details: String, started: String, event: String, host: String? = nil) async throws {
        try await database.transaction { db in
            guard let record = try await ComputeSchema.instances.fetchForUpdate(id, on: db) else { return }
            var instance = Instance(record: record)
            guard !instance.deleted else { return }
            instance.vmState = .error
            instance.taskState = nil
            instance.host = host
            instance.node = host
            instance.fault = ["code": 500, "message": .string(message), "details": .string(details), "created": .string(Timestamp.seconds(Date()))]
            try await self.save(instance, on: db)
            try await self.recordEvent(instance: id, requestID: instance.requestID, event: event, host: host, started: started,
                                       failure: message + details, on: db)
        }
        try await placement.releaseAllocations(consumer: id)
    }

    /// The policy and current placement of a server group's other members.
    func groupSpec(_ group: String, excluding id: String) async throws -> ServerGroupSpec? {
        try await database.read { db in
            guard let record = try await ComputeSchema.serverGroups.fetch(group, on: db),
                  let policy = GroupPolicy(rawValue: record.string("policy") ?? "") else { return nil }
            let members = (record["members"]?.arrayValue ?? []).compactMap(\.stringValue).filter { $0 != id }
            var perHost: [String: Int] = [:]
            for member in members {
                guard let row = try await ComputeSchema.instances.fetch(member, on: db) else { continue }
                let instance = Instance(record: row)
                if !instance.deleted, let host = instance.host { perHost[host, default: 0] += 1 }
            }
            let maxPerHost = record["rules"]?["max_server_per_host"]?.intValue.map { Int($0) }
            return ServerGroupSpec(policy: policy, membersPerHost: perHost, maxServerPerHost: maxPerHost)
        }
    }

    static func systemCaller(project: String) -> AuthContext {
        .internalCaller("nimbus-compute", scope: AuthContext.defaultDomainProject(project))
    }

    /// Instances stuck on a host that went down: a build there is rescheduled, a delete completes
    /// locally. Nothing waits forever on a host that may never return.
    func sweepDownHosts() async throws {
        let nodes = try await computeNodes()
        let down = Set(nodes.values.filter { !$0.isUp }.map(\.host))
        guard !down.isEmpty else { return }
        let stuck = try await database.read { db in
            try await ComputeSchema.instances.list([.init("deleted", .equal, .bool(false))], on: db)
        }.map(Instance.init(record:)).filter { instance in
            guard let host = instance.host, down.contains(host) else { return false }
            return instance.taskState == .deleting || instance.taskState == .spawning
        }
        for instance in stuck {
            let task = instance.taskState == .deleting ? "deleting" : "spawning"
            try await applyReport(host: instance.host ?? "", instance: instance.id, taskState: task,
                                  outcome: .failed("Compute host \(instance.host ?? "") is down."))
        }
    }
}
