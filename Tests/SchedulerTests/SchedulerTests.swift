import Foundation
import Scheduler
import Testing

/// Filters, weighers and ordering of `Scheduler.rank`, all on hand-built hosts.
@Suite struct SchedulerTests {
    static let qemu = SupportedInstance(architecture: "x86_64", hypervisorType: "qemu", vmMode: "hvm")

    /// A healthy host with the given free amounts (nothing used, so capacity is what is free).
    static func host(_ name: String, vcpus: Int64 = 8, memoryMB: Int64 = 8192, diskGB: Int64 = 100,
                     zone: String = "nova", isUp: Bool = true, isEnabled: Bool = true,
                     aggregates: [[String: String]] = [], supported: [SupportedInstance] = [qemu]) -> HostCandidate {
        HostCandidate(host: name, providerUUID: "uuid-\(name)", availabilityZone: zone, isUp: isUp, isEnabled: isEnabled,
                      resources: ["VCPU": .init(capacity: vcpus), "MEMORY_MB": .init(capacity: memoryMB), "DISK_GB": .init(capacity: diskGB)],
                      aggregateMetadata: aggregates, supportedInstances: supported)
    }

    static func spec(vcpus: Int64 = 1, memoryMB: Int64 = 512, diskGB: Int64 = 1, zone: String? = nil, requestedHost: String? = nil,
                     image: [String: String] = [:], group: ServerGroupSpec? = nil, ignore: Set<String> = [],
                     project: String = "p1") -> RequestSpec {
        RequestSpec(projectID: project, vcpus: vcpus, memoryMB: memoryMB, diskGB: diskGB, availabilityZone: zone,
                    requestedHost: requestedHost, imageProperties: image, serverGroup: group, ignoreHosts: ignore)
    }

    /// Names of the passing hosts, best first.
    static func names(_ spec: RequestSpec, _ hosts: [HostCandidate], _ configuration: SchedulerConfiguration = .spread) -> [String] {
        Scheduler.rank(spec, among: hosts, configuration: configuration).hosts.map(\.host)
    }

    /// Three identical hosts, so only the filter under test (and then names) decides.
    static let trio = ["a", "b", "c"].map { host($0) }

    static func close(_ lhs: [Double], _ rhs: [Double]) -> Bool {
        lhs.count == rhs.count && zip(lhs, rhs).allSatisfy { abs($0 - $1) < 1e-9 }
    }

    @Test func computeFilterDropsDownAndDisabledHosts() {
        let hosts = [Self.host("up"), Self.host("down", isUp: false), Self.host("disabled", isEnabled: false)]
        let decision = Scheduler.rank(Self.spec(), among: hosts)
        #expect(decision.hosts.map(\.host) == ["up"])
        #expect(decision.rejectedCount(by: .compute) == 2)
    }

    @Test func ignoreHostsSkipsWhereTheBuildFailed() {
        let decision = Scheduler.rank(Self.spec(ignore: ["b", "elsewhere"]), among: Self.trio)
        #expect(decision.hosts.map(\.host) == ["a", "c"])
        #expect(decision.rejectedBy.map(\.filter) == ["IgnoreHosts"])
    }

    @Test func availabilityZoneAndRequestedHost() {
        let hosts = [Self.host("a", zone: "az1"), Self.host("b", zone: "az1"), Self.host("c", zone: "az2")]
        #expect(Self.names(Self.spec(), hosts) == ["a", "b", "c"])
        #expect(Self.names(Self.spec(zone: "az1"), hosts) == ["a", "b"])
        #expect(Self.names(Self.spec(zone: "nowhere"), hosts) == [])
        #expect(Self.names(Self.spec(requestedHost: "az1:b"), hosts) == ["b"])
        #expect(Self.names(Self.spec(requestedHost: "az1:b:b-node"), hosts) == ["b"])
        #expect(Self.names(Self.spec(requestedHost: "az2:"), hosts) == ["c"])
        #expect(Self.names(Self.spec(requestedHost: ":a"), hosts) == ["a"])
        #expect(Self.names(Self.spec(requestedHost: "c"), hosts) == ["c"])
        // The host must be in the zone it was asked for, and in both zones when two are named.
        #expect(Self.names(Self.spec(requestedHost: "az2:a"), hosts) == [])
        #expect(Self.names(Self.spec(zone: "az1", requestedHost: "az2:"), hosts) == [])
        #expect(Self.names(Self.spec(zone: "az1", requestedHost: "az1:a"), hosts) == ["a"])
        #expect(Scheduler.rank(Self.spec(zone: "az1"), among: hosts).rejectedCount(by: .availabilityZone) == 1)
    }

    @Test func imagePropertiesMatchSupportedInstances() {
        let arm = SupportedInstance(architecture: "aarch64", hypervisorType: "kvm", vmMode: "hvm")
        let xen = SupportedInstance(architecture: "x86_64", hypervisorType: "xen", vmMode: "xen")
        let hosts = [Self.host("x86"), Self.host("arm", supported: [arm]), Self.host("both", supported: [arm, xen]),
                     Self.host("unknown", supported: [])]
        // No hardware properties: every host, even one that reports nothing.
        #expect(Self.names(Self.spec(image: ["os_distro": "cirros"]), hosts) == ["arm", "both", "unknown", "x86"])
        #expect(Self.names(Self.spec(image: ["hw_architecture": "x86_64"]), hosts) == ["both", "x86"])
        #expect(Self.names(Self.spec(image: ["hw_architecture": "AMD64"]), hosts) == ["both", "x86"])
        #expect(Self.names(Self.spec(image: ["architecture": "arm64"]), hosts) == ["arm", "both"])
        #expect(Self.names(Self.spec(image: ["hw_vm_mode": "pv"]), hosts) == ["both"])
        #expect(Self.names(Self.spec(image: ["hw_vm_mode": "HV", "hw_architecture": "x86_64"]), hosts) == ["x86"])
        // One supported instance must match all properties together, not each on its own.
        #expect(Self.names(Self.spec(image: ["hw_architecture": "aarch64", "img_hv_type": "xen"]), hosts) == [])
        // QEMU and KVM run each other's images.
        #expect(Self.names(Self.spec(image: ["img_hv_type": "kvm"]), hosts) == ["arm", "both", "x86"])
        #expect(Self.names(Self.spec(image: ["img_hv_type": "qemu", "hw_architecture": "aarch64"]), hosts) == ["arm", "both"])
        #expect(Self.names(Self.spec(image: ["img_hv_type": "xapi"]), hosts) == ["both"])
        #expect(Scheduler.rank(Self.spec(image: ["hw_architecture": "x86_64"]), among: hosts).rejectedCount(by: .imageProperties) == 2)
    }

    @Test func affinityKeepsTheGroupTogether() {
        let first = ServerGroupSpec(policy: .affinity, membersPerHost: ["b": 0])
        #expect(Self.names(Self.spec(group: first), Self.trio) == ["a", "b", "c"])
        let placed = ServerGroupSpec(policy: .affinity, membersPerHost: ["b": 2])
        let decision = Scheduler.rank(Self.spec(group: placed), among: Self.trio)
        #expect(decision.hosts.map(\.host) == ["b"])
        #expect(decision.rejectedCount(by: .serverGroupAffinity) == 2)
        // The members' only host being down leaves nowhere to go.
        let hosts = [Self.host("a"), Self.host("b", isUp: false)]
        #expect(Self.names(Self.spec(group: placed), hosts) == [])
    }

    @Test func antiAffinityHonoursMaxServerPerHost() {
        let group = ServerGroupSpec(policy: .antiAffinity, membersPerHost: ["a": 1, "b": 2])
        let decision = Scheduler.rank(Self.spec(group: group), among: Self.trio)
        #expect(decision.hosts.map(\.host) == ["c"])
        #expect(decision.rejectedCount(by: .serverGroupAntiAffinity) == 2)
        var relaxed = group
        relaxed.maxServerPerHost = 2
        #expect(Self.names(Self.spec(group: relaxed), Self.trio) == ["a", "c"])
        relaxed.maxServerPerHost = 0
        #expect(Self.names(Self.spec(group: relaxed), Self.trio) == ["c"])
        // Soft policies never filter.
        #expect(Self.names(Self.spec(group: .init(policy: .softAntiAffinity, membersPerHost: ["a": 5])), Self.trio).count == 3)
    }

    @Test func aggregateMultiTenancyIsolation() {
        let hosts = [
            Self.host("open", aggregates: [["availability_zone": "nova"]]),
            Self.host("p1-only", aggregates: [["filter_tenant_id": "p1"]]),
            Self.host("listed", aggregates: [["filter_tenant_id": "p0, p1 ,p3"]]),
            Self.host("second-key", aggregates: [["other": "x"], ["filter_tenant_id": "p9", "filter_tenant_id2": "p1"]]),
            Self.host("p2-only", aggregates: [["filter_tenant_id": "p2"], ["ssd": "true"]]),
            Self.host("prefix", aggregates: [["filter_tenant_id": "p10,p1x"]]),
        ]
        #expect(Self.names(Self.spec(project: "p1"), hosts) == ["listed", "open", "p1-only", "second-key"])
        #expect(Self.names(Self.spec(project: "p2"), hosts) == ["open", "p2-only"])
        #expect(Self.names(Self.spec(project: "p10"), hosts) == ["open", "prefix"])
        #expect(Scheduler.rank(Self.spec(project: "p7"), among: hosts).rejectedCount(by: .aggregateMultiTenancyIsolation) == 5)
    }

    @Test func resourceFilterCatchesStaleCandidates() {
        var busy = Self.host("busy")
        busy.resources["MEMORY_MB"] = .init(capacity: 8192, used: 8000)
        var bare = Self.host("bare")
        bare.resources = ["VCPU": .init(capacity: 4)]  // classes it does not report are not checked
        let hosts = [Self.host("fine"), busy, bare, Self.host("small-disk", diskGB: 5), Self.host("one-cpu", vcpus: 1)]
        let decision = Scheduler.rank(Self.spec(vcpus: 2, memoryMB: 1024, diskGB: 10), among: hosts)
        #expect(Set(decision.hosts.map(\.host)) == ["fine", "bare"])
        #expect(decision.rejectedBy.map(\.filter) == ["ResourceFilter"])
        #expect(decision.rejectedCount(by: .resources) == 3)
    }

    @Test func weighersNormaliseAcrossPassingHosts() {
        let only = { (ram: Double, cpu: Double, disk: Double) in
            SchedulerConfiguration(ramWeightMultiplier: ram, cpuWeightMultiplier: cpu, diskWeightMultiplier: disk)
        }
        let hosts = [Self.host("low", vcpus: 16, memoryMB: 1000, diskGB: 10), Self.host("mid", vcpus: 2, memoryMB: 2000, diskGB: 10),
                     Self.host("high", vcpus: 4, memoryMB: 3000, diskGB: 40)]
        let ram = Scheduler.rank(Self.spec(), among: hosts, configuration: only(1, 0, 0))
        #expect(ram.hosts.map(\.host) == ["high", "mid", "low"])
        #expect(Self.close(ram.weights, [1, 0.5, 0]))
        let cpu = Scheduler.rank(Self.spec(), among: hosts, configuration: only(0, 2, 0))
        #expect(cpu.hosts.map(\.host) == ["low", "high", "mid"])
        #expect(Self.close(cpu.weights, [2, 2.0 / 7, 0]))
        let disk = Scheduler.rank(Self.spec(), among: hosts, configuration: only(0, 0, 1))
        #expect(disk.hosts.map(\.host) == ["high", "low", "mid"])
        #expect(Self.close(disk.weights, [1, 0, 0]))
        // Summed: high 1 + 2/14 + 1, low 0 + 1 + 0, mid 0.5 + 0 + 0.
        let all = Scheduler.rank(Self.spec(), among: hosts)
        #expect(all.hosts.map(\.host) == ["high", "low", "mid"])
        #expect(Self.close(all.weights, [2 + 1.0 / 7, 1, 0.5]))
        // Weights are relative to the hosts that passed, not to every host given.
        let filtered = Scheduler.rank(Self.spec(ignore: ["high"]), among: hosts, configuration: only(1, 0, 0))
        #expect(Self.close(filtered.weights, [1, 0]))
    }

    @Test func spreadPrefersEmptyHostsAndStackFullOnes() {
        var used = Self.host("used")
        used.resources = ["VCPU": .init(capacity: 32, used: 30), "MEMORY_MB": .init(capacity: 65536, used: 60000),
                          "DISK_GB": .init(capacity: 1000, used: 900)]
        let hosts = [Self.host("empty", vcpus: 32, memoryMB: 65536, diskGB: 1000), used, Self.host("half", vcpus: 16, memoryMB: 32768, diskGB: 500)]
        #expect(Self.names(Self.spec(), hosts, .spread) == ["empty", "half", "used"])
        #expect(Self.names(Self.spec(), hosts, .stack) == ["used", "half", "empty"])
        #expect(SchedulerConfiguration.stack.ramWeightMultiplier < 0 && SchedulerConfiguration.spread.ramWeightMultiplier > 0)
    }

    @Test func softAffinityWeighers() {
        let hosts = ["a", "b", "c", "d"].map { Self.host($0) }
        let members = ["b": 1, "c": 3]
        let soft = Scheduler.rank(Self.spec(group: .init(policy: .softAffinity, membersPerHost: members)), among: hosts)
        #expect(soft.hosts.map(\.host) == ["c", "b", "a", "d"])
        #expect(Self.close(soft.weights, [1, 1.0 / 3, 0, 0]))
        let anti = Scheduler.rank(Self.spec(group: .init(policy: .softAntiAffinity, membersPerHost: members)), among: hosts)
        #expect(anti.hosts.map(\.host) == ["a", "d", "b", "c"])
        #expect(Self.close(anti.weights, [1, 1, 2.0 / 3, 0]))
        // Group weight can outweigh resource weight when the operator says so.
        let roomy = hosts.map { $0.host == "a" ? Self.host("a", vcpus: 64, memoryMB: 65536, diskGB: 1000) : $0 }
        let spec = Self.spec(group: .init(policy: .softAffinity, membersPerHost: members))
        #expect(Self.names(spec, roomy).first == "a")
        #expect(Self.names(spec, roomy, .init(softAffinityWeightMultiplier: 10)).first == "c")
        #expect(Self.names(spec, roomy, .init(softAffinityWeightMultiplier: 0)).first == "a")
    }

    @Test func equalWeightsGoByHostNameWhateverTheInputOrder() {
        let hosts = ["fake-3", "fake-10", "fake-1", "fake-2"].map { Self.host($0) }
        let expected = ["fake-1", "fake-10", "fake-2", "fake-3"]
        #expect(Self.names(Self.spec(), hosts) == expected)
        #expect(Self.names(Self.spec(), hosts.reversed()) == expected)
        #expect(Scheduler.rank(Self.spec(), among: hosts).weights == [0, 0, 0, 0])
        // Equal weights among a heavier host still sort by name behind it.
        let withBig = hosts + [Self.host("z-big", memoryMB: 16384)]
        #expect(Self.names(Self.spec(), withBig) == ["z-big"] + expected)
    }

    @Test func noValidHostExplainsWhichFiltersRemovedWhat() {
        let hosts = [Self.host("down", isUp: false), Self.host("other-zone", zone: "az2"), Self.host("a"),
                     Self.host("b", memoryMB: 256)]
        let decision = Scheduler.rank(Self.spec(memoryMB: 1024, zone: "nova", ignore: ["a"]), among: hosts)
        #expect(decision.hosts.isEmpty && decision.weights.isEmpty)
        #expect(decision.rejectedBy.map(\.filter) == ["ComputeFilter", "IgnoreHosts", "AvailabilityZoneFilter", "ResourceFilter"])
        #expect(decision.rejectedBy.map(\.count) == [1, 1, 1, 1])
        #expect(decision.rejectionSummary == "ComputeFilter: 1, IgnoreHosts: 1, AvailabilityZoneFilter: 1, ResourceFilter: 1")
        // Once a filter empties the list the later ones have nothing left to reject.
        let early = Scheduler.rank(Self.spec(zone: "elsewhere", image: ["hw_architecture": "s390x"]), among: Self.trio)
        #expect(early.rejectedBy.map(\.filter) == ["AvailabilityZoneFilter"])
        #expect(early.rejectedCount(by: .imageProperties) == 0)
        #expect(Scheduler.rank(Self.spec(), among: []).hosts.isEmpty)
        #expect(Scheduler.rank(Self.spec(), among: []).rejectedBy.isEmpty)
    }

    /// 1,000 hosts of mixed state: the answer is complete and ordered, and the timing is printed
    /// for BENCHMARKS.md rather than asserted, so a loaded machine cannot fail the test.
    @Test func thousandHosts() {
        let hosts = (0..<1000).map { index in
            var host = Self.host("fake-\(index)", vcpus: 64, memoryMB: 262_144, diskGB: 2000, zone: index % 10 == 0 ? "az2" : "nova",
                                 isUp: index % 50 != 7,
                                 aggregates: index % 100 == 1 ? [["filter_tenant_id": "other"]] : [["availability_zone": "nova"]])
            host.resources["MEMORY_MB"]?.used = Int64(index % 17) * 8192
            host.resources["VCPU"]?.used = Int64(index % 13) * 4
            host.instanceCount = index % 17
            return host
        }
        let spec = Self.spec(vcpus: 2, memoryMB: 4096, diskGB: 20, zone: "nova",
                             group: .init(policy: .softAntiAffinity, membersPerHost: ["fake-3": 1]))
        let decision = Scheduler.rank(spec, among: hosts)
        #expect(decision.rejectedCount(by: .compute) == 20)
        #expect(decision.rejectedCount(by: .availabilityZone) == 100)
        #expect(decision.rejectedCount(by: .aggregateMultiTenancyIsolation) == 10)
        #expect(decision.hosts.count == 870)
        let ranked = zip(decision.weights, decision.hosts.map(\.host))
        #expect(zip(ranked, ranked.dropFirst()).allSatisfy { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) })
        // Emptiest hosts (index a multiple of 17 and 13) lead, by name among equals.
        #expect(decision.hosts.first?.host == "fake-221")
        #expect(Self.names(spec, hosts.reversed()) == decision.hosts.map(\.host))

        let clock = ContinuousClock()
        for _ in 0..<5 { _ = Scheduler.rank(spec, among: hosts) }
        var samples = (0..<50).map { _ in clock.measure { _ = Scheduler.rank(spec, among: hosts) } }
        samples.sort()
        print("Scheduler.rank over 1,000 hosts: p50 \(samples[25]), max \(samples[49])")
    }
}
