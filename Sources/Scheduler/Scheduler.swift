/// Capacity and consumption of one resource class on a host, as Placement reports them.
public struct ResourceAmount: Sendable, Equatable {
    /// What may be allocated: (total − reserved) × allocation ratio.
    public var capacity: Int64
    public var used: Int64
    public var free: Int64 { capacity - used }

    public init(capacity: Int64, used: Int64 = 0) {
        self.capacity = capacity
        self.used = used
    }
}

/// One (architecture, hypervisor type, VM mode) combination a host can run, in canonical
/// lowercase form (`x86_64`, `qemu`, `hvm`).
public struct SupportedInstance: Sendable, Equatable {
    public var architecture: String
    public var hypervisorType: String
    public var vmMode: String

    public init(architecture: String, hypervisorType: String, vmMode: String) {
        self.architecture = architecture
        self.hypervisorType = hypervisorType
        self.vmMode = vmMode
    }
}

/// A compute host as the scheduler sees it: its service state, free resources and the facts the
/// filters look at.
public struct HostCandidate: Sendable, Equatable {
    /// Compute host name, e.g. `fake-3`.
    public var host: String
    public var providerUUID: String
    /// The zone the host's aggregates put it in, already resolved by the caller.
    public var availabilityZone: String
    /// Heartbeat recent and not forced down.
    public var isUp: Bool
    /// Compute service not disabled.
    public var isEnabled: Bool
    /// Placement resource class (`VCPU`, `MEMORY_MB`, `DISK_GB`) → amounts.
    public var resources: [String: ResourceAmount]
    /// Metadata of every host aggregate the host belongs to.
    public var aggregateMetadata: [[String: String]]
    /// Empty means unknown, which only images without hardware properties accept.
    public var supportedInstances: [SupportedInstance]
    public var instanceCount: Int

    public init(host: String, providerUUID: String = "", availabilityZone: String = "nova",
                isUp: Bool = true, isEnabled: Bool = true, resources: [String: ResourceAmount] = [:],
                aggregateMetadata: [[String: String]] = [], supportedInstances: [SupportedInstance] = [],
                instanceCount: Int = 0) {
        self.host = host
        self.providerUUID = providerUUID
        self.availabilityZone = availabilityZone
        self.isUp = isUp
        self.isEnabled = isEnabled
        self.resources = resources
        self.aggregateMetadata = aggregateMetadata
        self.supportedInstances = supportedInstances
        self.instanceCount = instanceCount
    }
}

/// Server group policies, with the names the compute API uses.
public enum GroupPolicy: String, Sendable {
    case affinity
    case antiAffinity = "anti-affinity"
    case softAffinity = "soft-affinity"
    case softAntiAffinity = "soft-anti-affinity"
}

/// The server group the new server joins and where its other members already are.
public struct ServerGroupSpec: Sendable, Equatable {
    public var policy: GroupPolicy
    /// Host → how many of the group's other members run there.
    public var membersPerHost: [String: Int]
    /// The anti-affinity rule `max_server_per_host`; nil means 1.
    public var maxServerPerHost: Int?

    public init(policy: GroupPolicy, membersPerHost: [String: Int] = [:], maxServerPerHost: Int? = nil) {
        self.policy = policy
        self.membersPerHost = membersPerHost
        self.maxServerPerHost = maxServerPerHost
    }
}

/// What one server needs from a host.
public struct RequestSpec: Sendable, Equatable {
    public var projectID: String
    public var vcpus: Int64
    public var memoryMB: Int64
    public var diskGB: Int64
    /// Requested zone; nil accepts any.
    public var availabilityZone: String?
    /// `zone:host`, `zone:host:node`, `zone:` or `:host` (an admin forcing a host); a value
    /// without a colon is a host name. Nil accepts any host.
    public var requestedHost: String?
    /// Image properties such as `hw_architecture`, `img_hv_type`, `hw_vm_mode`.
    public var imageProperties: [String: String]
    public var serverGroup: ServerGroupSpec?
    /// Hosts where this build already failed, so a reschedule goes elsewhere.
    public var ignoreHosts: Set<String>

    public init(projectID: String, vcpus: Int64 = 0, memoryMB: Int64 = 0, diskGB: Int64 = 0,
                availabilityZone: String? = nil, requestedHost: String? = nil, imageProperties: [String: String] = [:],
                serverGroup: ServerGroupSpec? = nil, ignoreHosts: Set<String> = []) {
        self.projectID = projectID
        self.vcpus = vcpus
        self.memoryMB = memoryMB
        self.diskGB = diskGB
        self.availabilityZone = availabilityZone
        self.requestedHost = requestedHost
        self.imageProperties = imageProperties
        self.serverGroup = serverGroup
        self.ignoreHosts = ignoreHosts
    }
}

/// Weigher multipliers. As in Nova, a positive resource multiplier prefers the emptiest host
/// (spread) and a negative one the fullest (stack); zero turns a weigher off.
public struct SchedulerConfiguration: Sendable, Equatable {
    public var ramWeightMultiplier: Double
    public var cpuWeightMultiplier: Double
    public var diskWeightMultiplier: Double
    public var softAffinityWeightMultiplier: Double
    public var softAntiAffinityWeightMultiplier: Double

    public init(ramWeightMultiplier: Double = 1.0, cpuWeightMultiplier: Double = 1.0, diskWeightMultiplier: Double = 1.0,
                softAffinityWeightMultiplier: Double = 1.0, softAntiAffinityWeightMultiplier: Double = 1.0) {
        self.ramWeightMultiplier = ramWeightMultiplier
        self.cpuWeightMultiplier = cpuWeightMultiplier
        self.diskWeightMultiplier = diskWeightMultiplier
        self.softAffinityWeightMultiplier = softAffinityWeightMultiplier
        self.softAntiAffinityWeightMultiplier = softAntiAffinityWeightMultiplier
    }

    public static let spread = SchedulerConfiguration()
    public static let stack = SchedulerConfiguration(ramWeightMultiplier: -1.0, cpuWeightMultiplier: -1.0, diskWeightMultiplier: -1.0)
}

/// The filters `Scheduler.rank` applies, in the order it applies them. Raw values are Nova's
/// names, so operators reading a "No valid host" log recognise them.
public enum SchedulerFilter: String, Sendable, CaseIterable {
    case compute = "ComputeFilter"
    case ignoreHosts = "IgnoreHosts"
    case availabilityZone = "AvailabilityZoneFilter"
    case imageProperties = "ImagePropertiesFilter"
    case serverGroupAffinity = "ServerGroupAffinityFilter"
    case serverGroupAntiAffinity = "ServerGroupAntiAffinityFilter"
    case aggregateMultiTenancyIsolation = "AggregateMultiTenancyIsolation"
    /// Free VCPU/MEMORY_MB/DISK_GB cover the request. Placement checked this already; it runs
    /// last to catch usage that changed since the candidates were read.
    case resources = "ResourceFilter"
}

/// Where a server may go, best host first, and why the others may not.
public struct SchedulingDecision: Sendable {
    public var hosts: [HostCandidate]
    /// Total weight of each entry of `hosts`, same order.
    public var weights: [Double]
    /// How many hosts each filter removed, in the order the filters ran. Filters that removed
    /// none are left out; filters after the one that emptied the list never ran.
    public var rejectedBy: [(filter: String, count: Int)]

    public init(hosts: [HostCandidate], weights: [Double], rejectedBy: [(filter: String, count: Int)]) {
        self.hosts = hosts
        self.weights = weights
        self.rejectedBy = rejectedBy
    }

    public func rejectedCount(by filter: SchedulerFilter) -> Int {
        rejectedBy.first { $0.filter == filter.rawValue }?.count ?? 0
    }

    /// `ComputeFilter: 2, AvailabilityZoneFilter: 5`, for a "No valid host" message.
    public var rejectionSummary: String {
        rejectedBy.map { "\($0.filter): \($0.count)" }.joined(separator: ", ")
    }
}

/// Host filtering and weighing for one server, like nova-scheduler's filters and weighers.
/// Pure: the caller gathers host state (from Placement and the compute services) beforehand.
public enum Scheduler {
    /// The hosts that pass every filter, heaviest first; equal weights go by host name so the
    /// order never depends on input order.
    public static func rank(_ spec: RequestSpec, among hosts: [HostCandidate],
                            configuration: SchedulerConfiguration = .spread) -> SchedulingDecision {
        // A buffer lends the hosts to the filters; reading them from the array copied each host
        // (six reference counts) per filter, which cost more than the filtering itself.
        hosts.withUnsafeBufferPointer { rank(PreparedRequest(spec), among: $0, configuration: configuration) }
    }

    private static func rank(_ request: PreparedRequest, among hosts: UnsafeBufferPointer<HostCandidate>,
                             configuration: SchedulerConfiguration) -> SchedulingDecision {
        var survivors = Array(hosts.indices)
        var rejectedBy: [(filter: String, count: Int)] = []
        func record(_ filter: SchedulerFilter, before: Int) {
            if survivors.count < before { rejectedBy.append((filter.rawValue, before - survivors.count)) }
        }

        for filter in request.activeFilters {
            guard !survivors.isEmpty else { break }
            let before = survivors.count
            var kept = 0
            for index in survivors where request.passes(filter, hosts[index]) {
                survivors[kept] = index
                kept += 1
            }
            survivors.removeLast(before - kept)
            record(filter, before: before)
        }

        // The resource check reads each host's free amounts once, and the weighers reuse them.
        var free: [FreeResources] = []
        if !survivors.isEmpty {
            let before = survivors.count
            free.reserveCapacity(before)
            var kept = 0
            for index in survivors {
                let amounts = FreeResources(hosts[index].resources)
                guard amounts.covers(request) else { continue }
                survivors[kept] = index
                free.append(amounts)
                kept += 1
            }
            survivors.removeLast(before - kept)
            record(.resources, before: before)
        }

        let weights = Weighing.totals(free: free, hosts: hosts, survivors: survivors,
                                      group: request.group, configuration: configuration)
        var ranked = zip(weights, survivors).map { Ranked(weight: $0, index: $1) }
        ranked.sort { a, b in
            if a.weight != b.weight { return a.weight > b.weight }
            // Names decide ties; the provider only matters if one host were listed twice.
            if hosts[a.index].host != hosts[b.index].host { return hosts[a.index].host < hosts[b.index].host }
            return hosts[a.index].providerUUID < hosts[b.index].providerUUID
        }
        return SchedulingDecision(hosts: ranked.map { hosts[$0.index] }, weights: ranked.map(\.weight), rejectedBy: rejectedBy)
    }
}

/// A passing host's position in the input with its total weight, small enough to sort quickly.
private struct Ranked {
    var weight: Double
    var index: Int
}
