/// A Debian package version (`[epoch:]upstream[-revision]`), ordered the way dpkg orders them.
///
/// Picking "the newest kernel" by string or by numeric fields goes wrong on exactly the versions
/// Debian ships: `6.12.117-1~deb12u1` (a tilde sorts before anything, even the end of the string)
/// against `6.1.192-2`. This is dpkg's `verrevcmp`, so apt and the builder agree on "newest".
struct DebianVersion: Comparable, Sendable, CustomStringConvertible {
    let epoch: Int
    let upstream: String
    let revision: String
    let description: String

    init(_ string: String) {
        description = string
        var rest = Substring(string)
        if let colon = rest.firstIndex(of: ":"), let value = Int(rest[..<colon]) {
            epoch = value
            rest = rest[rest.index(after: colon)...]
        } else {
            epoch = 0
        }
        if let dash = rest.lastIndex(of: "-") {
            upstream = String(rest[..<dash])
            revision = String(rest[rest.index(after: dash)...])
        } else {
            upstream = String(rest)
            revision = ""
        }
    }

    static func < (lhs: DebianVersion, rhs: DebianVersion) -> Bool { compare(lhs, rhs) < 0 }
    static func == (lhs: DebianVersion, rhs: DebianVersion) -> Bool { compare(lhs, rhs) == 0 }

    static func compare(_ lhs: DebianVersion, _ rhs: DebianVersion) -> Int {
        if lhs.epoch != rhs.epoch { return lhs.epoch < rhs.epoch ? -1 : 1 }
        let upstream = compareFragment(lhs.upstream, rhs.upstream)
        return upstream != 0 ? upstream : compareFragment(lhs.revision, rhs.revision)
    }

    /// dpkg's `verrevcmp`: alternate non-digit runs (compared by `order`) and digit runs (compared numerically).
    private static func compareFragment(_ lhs: String, _ rhs: String) -> Int {
        let a = Array(lhs.utf8), b = Array(rhs.utf8)
        var i = 0, j = 0
        func at(_ bytes: [UInt8], _ index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }
        while i < a.count || j < b.count {
            // Non-digit run.
            while (at(a, i).map { !isDigit($0) } ?? false) || (at(b, j).map { !isDigit($0) } ?? false) {
                let orderA = order(at(a, i)), orderB = order(at(b, j))
                if orderA != orderB { return orderA - orderB }
                if i < a.count { i += 1 }
                if j < b.count { j += 1 }
            }
            // Digit run: skip leading zeros, then the longer number wins, else the first differing digit.
            while at(a, i) == UInt8(ascii: "0") { i += 1 }
            while at(b, j) == UInt8(ascii: "0") { j += 1 }
            var firstDifference = 0
            while let x = at(a, i), let y = at(b, j), isDigit(x), isDigit(y) {
                if firstDifference == 0 { firstDifference = Int(x) - Int(y) }
                i += 1
                j += 1
            }
            if let x = at(a, i), isDigit(x) { return 1 }
            if let y = at(b, j), isDigit(y) { return -1 }
            if firstDifference != 0 { return firstDifference }
        }
        return 0
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// `~` sorts before everything (even the end of the string), letters before other symbols.
    private static func order(_ byte: UInt8?) -> Int {
        guard let byte else { return 0 }
        if isDigit(byte) { return 0 }
        if byte == UInt8(ascii: "~") { return -1 }
        let isLetter = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        return isLetter ? Int(byte) : Int(byte) + 256
    }
}
