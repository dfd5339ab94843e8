/// A Placement microversion (`1.x`), negotiated per request from `OpenStack-API-Version`.
public struct Microversion: Comparable, Sendable, CustomStringConvertible {
    public let minor: Int

    public init(_ minor: Int) { self.minor = minor }

    public static let minimum = Microversion(0)
    /// 1.39: `required=in:A,B`. Everything up to it that Nimbus serves is described in `PlacementAPI`.
    public static let maximum = Microversion(39)

    public var description: String { "1.\(minor)" }

    public static func < (lhs: Microversion, rhs: Microversion) -> Bool { lhs.minor < rhs.minor }

    public static func >= (lhs: Microversion, rhs: Int) -> Bool { lhs.minor >= rhs }
    public static func < (lhs: Microversion, rhs: Int) -> Bool { lhs.minor < rhs }

    public enum Failure: Error, Equatable {
        /// Not `1.x` or `latest`: 400.
        case invalid(String)
        /// Well formed but not served: 406, as Placement answers.
        case unacceptable(String)
    }

    /// The version a request asks for: the `placement` entry of `OpenStack-API-Version`
    /// (`placement 1.20`, possibly among other services' entries), `latest`, or 1.0 when absent.
    public static func negotiate(_ header: String?) -> Result<Microversion, Failure> {
        guard let header else { return .success(.minimum) }
        for entry in header.split(separator: ",") {
            let parts = entry.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].lowercased() == "placement" else { continue }
            let text = String(parts[1])
            if text == "latest" { return .success(.maximum) }
            let numbers = text.split(separator: ".", omittingEmptySubsequences: false)
            guard numbers.count == 2, let major = Int(numbers[0]), let minor = Int(numbers[1]),
                  numbers.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else {
                return .failure(.invalid("invalid version string: \(text)"))
            }
            guard major == 1, minor <= maximum.minor else { return .failure(.unacceptable("Unacceptable version header: \(text)")) }
            return .success(Microversion(minor))
        }
        return .success(.minimum)
    }
}
