import NimbusCore

/// A compute microversion (`2.x`), negotiated per request from `OpenStack-API-Version: compute 2.x`
/// or the older `X-OpenStack-Nova-API-Version: 2.x`.
public struct ComputeVersion: Sendable {
    public let minor: Int

    public static let minimum = 1
    /// The highest microversion whose behaviour Nimbus implements. 2.79 covers what the
    /// `openstack` CLI and SDK use for servers; later ones change responses not yet matched.
    public static let maximum = 79

    public var description: String { "2.\(minor)" }

    public enum Failure: Error {
        case invalid(String)
        case unsupported(String)
    }

    public static func negotiate(openStack: String?, nova: String?) -> Result<ComputeVersion, Failure> {
        var requested: String?
        if let header = openStack {
            for entry in header.split(separator: ",") {
                let parts = entry.split(separator: " ", omittingEmptySubsequences: true)
                if parts.count == 2, parts[0].lowercased() == "compute" { requested = String(parts[1]) }
            }
        }
        if requested == nil, let nova { requested = nova.trimmingCharacters(in: .whitespaces) }
        guard let text = requested else { return .success(ComputeVersion(minor: minimum)) }
        if text.lowercased() == "latest" { return .success(ComputeVersion(minor: maximum)) }
        let numbers = text.split(separator: ".", omittingEmptySubsequences: false)
        guard numbers.count == 2, let major = Int(numbers[0]), let minor = Int(numbers[1]) else {
            return .failure(.invalid("Invalid API version request. Version string '\(text)' is not in the form 2.x"))
        }
        guard major == 2, minor >= minimum, minor <= maximum else {
            return .failure(.unsupported("Version \(text) is not supported by the API. Minimum is 2.\(minimum) and maximum is 2.\(maximum)."))
        }
        return .success(ComputeVersion(minor: minor))
    }
}
