/// One resource class's inventory on a provider, as Placement defines it.
///
/// Pure value type: the capacity math and the per-allocation constraints live here so that the
/// HTTP path, the in-process scheduler path and the tests all share one definition.
public struct Inventory: Sendable, Equatable {
    public var total: Int64
    public var reserved: Int64
    public var minUnit: Int64
    public var maxUnit: Int64
    public var stepSize: Int64
    public var allocationRatio: Double

    /// Placement's defaults: nothing reserved, any amount from 1 up to the largest 32-bit integer, ratio 1.0.
    public static let maxUnitDefault: Int64 = 2_147_483_647

    public init(total: Int64, reserved: Int64 = 0, minUnit: Int64 = 1, maxUnit: Int64 = Inventory.maxUnitDefault,
                stepSize: Int64 = 1, allocationRatio: Double = 1.0) {
        self.total = total
        self.reserved = reserved
        self.minUnit = minUnit
        self.maxUnit = maxUnit
        self.stepSize = stepSize
        self.allocationRatio = allocationRatio
    }

    /// What may be allocated in all: `(total - reserved) * allocation_ratio`, truncated as Placement's
    /// `int()` does, so 0.5 of a VCPU never counts.
    public var capacity: Int64 {
        let usable = Double(total - reserved) * allocationRatio
        guard usable > 0 else { return 0 }
        return usable >= Double(Int64.max) ? Int64.max : Int64(usable)
    }

    /// Whether one allocation of `amount` respects min_unit, max_unit and step_size.
    public func allows(amount: Int64) -> Bool {
        amount >= minUnit && amount <= maxUnit && stepSize > 0 && amount % stepSize == 0
    }

    /// Whether `amount` more fits next to `used` already allocated.
    public func fits(_ amount: Int64, used: Int64) -> Bool {
        let (sum, overflow) = used.addingReportingOverflow(amount)
        return !overflow && sum <= capacity
    }
}

/// Capacity and current usage of one class on one provider, for weighing candidates.
public struct ResourceUsage: Sendable, Equatable {
    public let capacity: Int64
    public let used: Int64

    public init(capacity: Int64, used: Int64) {
        self.capacity = capacity
        self.used = used
    }

    /// What is left to allocate.
    public var free: Int64 { capacity - used }
}

extension Inventory {
    /// Why this inventory cannot be stored, in Placement's words, or nil when it can.
    /// - Parameter reservedMayEqualTotal: microversion 1.26 allows `reserved == total` (all held back).
    public func problem(resourceClass: String, provider: String, reservedMayEqualTotal: Bool = true) -> String? {
        let prefix = "Unable to update inventory for resource provider \(provider): Invalid inventory for '\(resourceClass)' on resource provider '\(provider)'."
        if total < 1 || reserved < 0 || minUnit < 1 || maxUnit < 1 || stepSize < 1 || !(allocationRatio > 0) {
            return prefix + " Total, min_unit, max_unit, step_size and allocation_ratio must be positive, reserved not negative."
        }
        if reserved > total || (!reservedMayEqualTotal && reserved == total) {
            return prefix + " The reserved value is greater than\(reservedMayEqualTotal ? "" : " or equal to") total."
        }
        if minUnit > maxUnit { return prefix + " The min_unit value is greater than max_unit." }
        return nil
    }
}
