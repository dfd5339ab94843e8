import Foundation

/// Ids as OpenStack clients expect them.
public enum Identifier {
    /// Keystone-style id: a UUID4 as 32 lowercase hex digits.
    public static func hex() -> String {
        var id = UUID().uuidString.lowercased()
        id.removeAll { $0 == "-" }
        return id
    }

    /// Nova/Neutron/Glance-style id: a dashed lowercase UUID4.
    public static func uuid() -> String { UUID().uuidString.lowercased() }

    /// True for either form: 32 hex digits, or a dashed UUID.
    public static func looksLikeUUID(_ value: String) -> Bool {
        let hex = value.replacingOccurrences(of: "-", with: "")
        return hex.count == 32 && hex.allSatisfy(\.isHexDigit) && (value.count == 32 || UUID(uuidString: value) != nil)
    }
}
