import NimbusCore
import Store

/// One attribute of a resource as it appears on the wire, with the validation Keystone's JSON
/// schema applies to it.
struct WireField: Sendable {
    enum Kind: Sendable {
        case string(minLength: Int, maxLength: Int?)
        case nullableString(maxLength: Int?)
        case bool
        case stringList
    }

    enum OnCreate: Sendable {
        case required
        case optional(default: JSONValue)
    }

    let name: String
    let kind: Kind
    let onCreate: OnCreate
    let updatable: Bool

    static func name(maxLength: Int) -> WireField {
        .init(name: "name", kind: .string(minLength: 1, maxLength: maxLength), onCreate: .required, updatable: true)
    }
    static let description = WireField(name: "description", kind: .nullableString(maxLength: nil), onCreate: .optional(default: ""), updatable: true)
    static let enabled = WireField(name: "enabled", kind: .bool, onCreate: .optional(default: true), updatable: true)
    static let tags = WireField(name: "tags", kind: .stringList, onCreate: .optional(default: []), updatable: true)

    /// The validated value, or nil when absent.
    func read(from fields: FieldReader) throws(NimbusError) -> JSONValue? {
        guard fields.has(name) else { return nil }
        switch kind {
        case .string(let minLength, let maxLength):
            return .string(try fields.string(name, minLength: minLength, maxLength: maxLength)!)
        case .nullableString(let maxLength):
            return .optional(try fields.string(name, nullable: true, maxLength: maxLength))
        case .bool:
            return .bool(try fields.bool(name)!)
        case .stringList:
            let items = try fields.stringArray(name)!
            if let long = items.first(where: { $0.count > 255 || $0.contains("/") || $0.contains(",") }) {
                throw .badRequest("Invalid input for field '\(name)': '\(long)' is not a valid tag")
            }
            return .array(items.map { .string($0) })
        }
    }
}
