/// An IPv4 or IPv6 address as a 128-bit number in two halves, so that pools, ranges and CIDRs
/// are plain arithmetic. (Two `UInt64`s rather than `UInt128`: values of the latter captured
/// across an `await` crashed the Swift 6.3 async runtime on Linux.)
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// 4 or 6.
    public let version: Int
    public let high: UInt64
    public let low: UInt64

    public init(version: Int, high: UInt64 = 0, low: UInt64) {
        self.version = version
        self.high = high
        self.low = low
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (`::` allowed, no zone, no embedded IPv4).
    public init?(_ text: String) {
        if text.contains(":") {
            guard let groups = Self.parse6(text) else { return nil }
            let high = groups[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
            let low = groups[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
            self.init(version: 6, high: high, low: low)
        } else {
            guard let value = Self.parse4(text) else { return nil }
            self.init(version: 4, low: value)
        }
    }

    public var bits: Int { version == 4 ? 32 : 128 }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.version, lhs.high, lhs.low) < (rhs.version, rhs.high, rhs.low)
    }

    /// The address `offset` further on (wrapping at the top of the space).
    public func advanced(by offset: UInt64) -> IPAddress {
        let (sum, carry) = low.addingReportingOverflow(offset)
        return IPAddress(version: version, high: carry ? high &+ 1 : high, low: version == 4 ? sum & 0xffff_ffff : sum)
    }

    public func predecessor() -> IPAddress {
        let (difference, borrow) = low.subtractingReportingOverflow(1)
        return IPAddress(version: version, high: borrow ? high &- 1 : high, low: difference)
    }

    /// How many addresses from `self` to `other` (inclusive of neither end), saturating at `UInt64.max`.
    public func distance(to other: IPAddress) -> UInt64 {
        guard other > self else { return 0 }
        if other.high == high { return other.low - low }
        if other.high - high > 1 { return .max }
        let (difference, _) = other.low.subtractingReportingOverflow(low)
        return other.low >= low ? .max : difference
    }

    public var description: String { version == 4 ? format4() : format6() }

    private static func parse4(_ text: String) -> UInt64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt64 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt64(byte)
        }
        return value
    }

    private static func parse6(_ text: String) -> [UInt16]? {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), let number = UInt16(group, radix: 16) else { return nil }
                out.append(number)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        return all.count == 8 ? all : nil
    }

    private func format4() -> String {
        (0..<4).map { String(UInt8(truncatingIfNeeded: low >> UInt64(24 - $0 * 8))) }.joined(separator: ".")
    }

    /// RFC 5952: lowercase, no leading zeros, the longest run (two or more) of zero groups as `::`.
    private func format6() -> String {
        let groups = (0..<8).map { index -> UInt16 in
            let half = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: half >> UInt64(48 - (index % 4) * 16))
        }
        var best = (start: -1, length: 0)
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else { index += 1; continue }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > best.length { best = (index, end - index) }
            index = end
        }
        let hex = groups.map { String($0, radix: 16) }
        guard best.length >= 2 else { return hex.joined(separator: ":") }
        return hex[..<best.start].joined(separator: ":") + "::" + hex[(best.start + best.length)...].joined(separator: ":")
    }
}

/// A network prefix: its first address and its length.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    public let prefix: Int

    /// Parses `address/prefix`; host bits are cleared (`10.0.0.5/24` is `10.0.0.0/24`), as
    /// Neutron's IPAM stores the network of the given CIDR.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])),
              parts[1].allSatisfy(\.isASCII), let prefix = Int(parts[1]), (0...address.bits).contains(prefix) else { return nil }
        self.init(network: address, prefix: prefix)
    }

    public init(network address: IPAddress, prefix: Int) {
        self.prefix = prefix
        let (high, low) = Self.hostMask(prefix, address.version)
        self.network = IPAddress(version: address.version, high: address.high & ~high, low: address.low & ~low)
    }

    /// The host bits of the prefix, as (high, low) halves.
    static func hostMask(_ prefix: Int, _ version: Int) -> (UInt64, UInt64) {
        let hostBits = (version == 4 ? 32 : 128) - prefix
        func ones(_ count: Int) -> UInt64 { count <= 0 ? 0 : count >= 64 ? .max : (UInt64(1) << UInt64(count)) - 1 }
        return (ones(hostBits - 64), ones(hostBits))
    }

    public var version: Int { network.version }
    /// The number of addresses, saturating at `UInt64.max` for prefixes shorter than /64.
    public var size: UInt64 {
        let hostBits = network.bits - prefix
        return hostBits >= 64 ? .max : UInt64(1) << UInt64(hostBits)
    }
    public var first: IPAddress { network }
    public var last: IPAddress {
        let (high, low) = Self.hostMask(prefix, version)
        return IPAddress(version: version, high: network.high | high, low: network.low | low)
    }

    public func contains(_ address: IPAddress) -> Bool {
        address.version == version && address >= first && address <= last
    }

    public func overlaps(_ other: CIDR) -> Bool {
        other.version == version && other.first <= last && first <= other.last
    }

    public var description: String { "\(network)/\(prefix)" }
}

/// An inclusive range of addresses, as Neutron's `allocation_pools` entries.
public struct IPRange: Hashable, Sendable {
    public let start: IPAddress
    public let end: IPAddress

    public init(start: IPAddress, end: IPAddress) {
        self.start = start
        self.end = end
    }

    /// Addresses in the range, saturating at `UInt64.max`.
    public var count: UInt64 { let gap = start.distance(to: end); return gap == .max ? .max : gap + 1 }
    public func contains(_ address: IPAddress) -> Bool { address.version == start.version && address >= start && address <= end }
    public func overlaps(_ other: IPRange) -> Bool { other.start <= end && start <= other.end }
}
