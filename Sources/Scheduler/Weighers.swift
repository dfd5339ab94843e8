/// The weighers, each contributing `multiplier × normalised value` per host as in Nova:
/// RAMWeigher, CPUWeigher, DiskWeigher, ServerGroupSoftAffinityWeigher and
/// ServerGroupSoftAntiAffinityWeigher.
enum Weighing {
    /// Total weight of each survivor, in `survivors` order; `free` is aligned with `survivors`.
    static func totals(free: [FreeResources], hosts: UnsafeBufferPointer<HostCandidate>, survivors: [Int],
                       group: ServerGroupSpec?, configuration: SchedulerConfiguration) -> [Double] {
        var totals = [Double](repeating: 0, count: survivors.count)
        guard survivors.count > 1 else { return totals }
        // One buffer shared by every weigher keeps the loop free of allocations.
        var raw = [Double](repeating: 0, count: survivors.count)

        func weigh(_ multiplier: Double, _ value: (Int) -> Double) {
            // A non-finite multiplier would make the weights unordered and the sort meaningless.
            guard multiplier != 0, multiplier.isFinite else { return }
            var lowest = Double.infinity, highest = -Double.infinity
            for position in raw.indices {
                let weight = value(position)
                raw[position] = weight
                lowest = min(lowest, weight)
                highest = max(highest, weight)
            }
            // Nova scores all hosts 0 when they are equal, so such a weigher cannot tip the order.
            guard highest > lowest else { return }
            let range = highest - lowest
            for position in raw.indices { totals[position] += (raw[position] - lowest) / range * multiplier }
        }

        // A host that does not report a class counts as having none of it free.
        weigh(configuration.ramWeightMultiplier) { Double(free[$0].memoryMB ?? 0) }
        weigh(configuration.cpuWeightMultiplier) { Double(free[$0].vcpus ?? 0) }
        weigh(configuration.diskWeightMultiplier) { Double(free[$0].diskGB ?? 0) }
        if let group, !group.membersPerHost.isEmpty {
            switch group.policy {
            case .softAffinity:
                weigh(configuration.softAffinityWeightMultiplier) { Double(group.membersPerHost[hosts[survivors[$0]].host] ?? 0) }
            case .softAntiAffinity:
                weigh(configuration.softAntiAffinityWeightMultiplier) { -Double(group.membersPerHost[hosts[survivors[$0]].host] ?? 0) }
            case .affinity, .antiAffinity:
                break
            }
        }
        return totals
    }
}
