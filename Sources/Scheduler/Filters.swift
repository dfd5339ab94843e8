/// A request with everything the filters need parsed once, so the per-host checks only compare.
struct PreparedRequest {
    let projectID: String
    let vcpus: Int64
    let memoryMB: Int64
    let diskGB: Int64
    let ignoreHosts: Set<String>
    /// Every zone named by the request; a host must be in all of them, so two different ones
    /// leave no host.
    let zones: [String]
    let pinnedHost: String?
    let image: ImageRequirements
    let group: ServerGroupSpec?
    let maxServersPerHost: Int
    /// Filters with nothing to check for this request are left out, which also keeps them out
    /// of `rejectedBy`.
    let activeFilters: [SchedulerFilter]

    init(_ spec: RequestSpec) {
        projectID = spec.projectID
        vcpus = spec.vcpus
        memoryMB = spec.memoryMB
        diskGB = spec.diskGB
        ignoreHosts = spec.ignoreHosts
        var zones = spec.availabilityZone.map { [$0] } ?? []
        var pinnedHost: String?
        if let requested = spec.requestedHost {
            let target = RequestedHost(requested)
            if let zone = target.zone { zones.append(zone) }
            pinnedHost = target.host
        }
        self.zones = zones
        self.pinnedHost = pinnedHost
        let image = ImageRequirements(spec.imageProperties)
        self.image = image
        group = spec.serverGroup
        // The compute API refuses a max_server_per_host below 1, so such a value can only be a
        // caller's slip; the default is the safer reading.
        maxServersPerHost = max(1, spec.serverGroup?.maxServerPerHost ?? 1)

        let placed = spec.serverGroup?.membersPerHost.values.contains { $0 > 0 } ?? false
        activeFilters = SchedulerFilter.allCases.filter { filter in
            switch filter {
            case .compute, .aggregateMultiTenancyIsolation: true
            case .ignoreHosts: !spec.ignoreHosts.isEmpty
            case .availabilityZone: !zones.isEmpty || pinnedHost != nil
            case .imageProperties: !image.isEmpty
            case .serverGroupAffinity: spec.serverGroup?.policy == .affinity && placed
            case .serverGroupAntiAffinity: spec.serverGroup?.policy == .antiAffinity && placed
            // Needs the free amounts the weighers reuse, so `rank` runs it itself.
            case .resources: false
            }
        }
    }

    func passes(_ filter: SchedulerFilter, _ host: HostCandidate) -> Bool {
        switch filter {
        case .compute:
            host.isUp && host.isEnabled
        case .ignoreHosts:
            !ignoreHosts.contains(host.host)
        case .availabilityZone:
            zones.allSatisfy { $0 == host.availabilityZone } && (pinnedHost.map { $0 == host.host } ?? true)
        case .imageProperties:
            host.supportedInstances.contains(where: image.accepts)
        case .serverGroupAffinity:
            (group?.membersPerHost[host.host] ?? 0) > 0
        case .serverGroupAntiAffinity:
            (group?.membersPerHost[host.host] ?? 0) < maxServersPerHost
        case .aggregateMultiTenancyIsolation:
            TenantIsolation.admits(projectID, host.aggregateMetadata)
        case .resources:
            FreeResources(host.resources).covers(self)
        }
    }
}

/// `zone:host[:node]` split into its parts; empty parts mean "any".
struct RequestedHost: Equatable {
    var zone: String?
    var host: String?

    init(_ value: String) {
        guard let colon = value.firstIndex(of: ":") else {
            host = value.isEmpty ? nil : value
            return
        }
        let zonePart = value[..<colon]
        var hostPart = value[value.index(after: colon)...]
        // Each host runs one node, so naming the node adds nothing.
        if let nodeColon = hostPart.firstIndex(of: ":") { hostPart = hostPart[..<nodeColon] }
        zone = zonePart.isEmpty ? nil : String(zonePart)
        host = hostPart.isEmpty ? nil : String(hostPart)
    }
}

/// The hardware an image asks for, canonicalised the way Nova does, so `x64`, `HV` or `KVM`
/// in an image still match what hosts report.
struct ImageRequirements {
    var architecture: String?
    var hypervisorType: String?
    var vmMode: String?

    var isEmpty: Bool { architecture == nil && hypervisorType == nil && vmMode == nil }

    init(_ properties: [String: String]) {
        // The unprefixed names are what older images carry.
        func value(_ key: String, legacy: String) -> String? {
            let raw = properties[key] ?? properties[legacy]
            guard let raw, !raw.isEmpty else { return nil }
            return raw.lowercased()
        }
        architecture = value("hw_architecture", legacy: "architecture").map { arch in
            switch arch {
            case "amd64", "x64": "x86_64"
            case "i386", "i486", "i586", "x86": "i686"
            case "arm64": "aarch64"
            default: arch
            }
        }
        hypervisorType = value("img_hv_type", legacy: "hypervisor_type").map { $0 == "xapi" ? "xen" : $0 }
        vmMode = value("hw_vm_mode", legacy: "vm_mode").map { mode in
            switch mode {
            case "hv", "baremetal": "hvm"
            case "pv": "xen"
            default: mode
            }
        }
    }

    func accepts(_ supported: SupportedInstance) -> Bool {
        if let architecture, architecture != supported.architecture { return false }
        if let vmMode, vmMode != supported.vmMode { return false }
        guard let hypervisorType, hypervisorType != supported.hypervisorType else { return true }
        // KVM is QEMU with hardware acceleration: either kind of image runs on either.
        return Self.isQEMUFamily(hypervisorType) && Self.isQEMUFamily(supported.hypervisorType)
    }

    private static func isQEMUFamily(_ hypervisorType: String) -> Bool {
        hypervisorType == "qemu" || hypervisorType == "kvm"
    }
}

/// AggregateMultiTenancyIsolation: an aggregate with `filter_tenant_id*` keys keeps its hosts
/// for the listed projects.
enum TenantIsolation {
    static let keyPrefix = "filter_tenant_id"

    static func admits(_ projectID: String, _ aggregates: [[String: String]]) -> Bool {
        var restricted = false
        for metadata in aggregates {
            for (key, value) in metadata where key.hasPrefix(keyPrefix) {
                if list(value, contains: projectID) { return true }
                restricted = true
            }
        }
        return !restricted
    }

    /// Whether the comma-separated `list` holds `item`, ignoring spaces around entries. Walks
    /// the string in place since this runs per host and aggregate.
    static func list(_ list: String, contains item: String) -> Bool {
        var rest = list[...]
        while true {
            let end = rest.firstIndex(of: ",") ?? rest.endIndex
            if trimmed(rest[..<end]) == item { return true }
            guard end < rest.endIndex else { return false }
            rest = rest[rest.index(after: end)...]
        }
    }

    private static func trimmed(_ entry: Substring) -> Substring {
        let start = entry.drop { $0.isWhitespace }
        guard let last = start.lastIndex(where: { !$0.isWhitespace }) else { return start[start.endIndex...] }
        return start[...last]
    }
}

/// Free amounts of the classes the scheduler checks; nil when the host does not report the class.
struct FreeResources {
    var vcpus: Int64?
    var memoryMB: Int64?
    var diskGB: Int64?

    /// One pass over the host's few classes beats hashing each name into the dictionary.
    init(_ resources: [String: ResourceAmount]) {
        for (resourceClass, amount) in resources {
            switch resourceClass {
            case "VCPU": vcpus = amount.free
            case "MEMORY_MB": memoryMB = amount.free
            case "DISK_GB": diskGB = amount.free
            default: break
            }
        }
    }

    func covers(_ request: PreparedRequest) -> Bool {
        Self.fits(request.vcpus, in: vcpus) && Self.fits(request.memoryMB, in: memoryMB) && Self.fits(request.diskGB, in: diskGB)
    }

    private static func fits(_ wanted: Int64, in free: Int64?) -> Bool {
        guard let free, wanted > 0 else { return true }
        return free >= wanted
    }
}
