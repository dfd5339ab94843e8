/// Reads and validates the fields of one JSON object from a request body.
///
/// Every check happens before anything is written, and failures name the field as
/// OpenStack's schema errors do ("Invalid input for field 'name': ...").
public struct FieldReader: Sendable {
    public let fields: [String: JSONValue]
    /// Prefix for field names in messages, e.g. "project".
    public let path: String

    public init(_ value: JSONValue?, path: String) throws(NimbusError) {
        guard let value else { throw .badRequest("Invalid input for field '\(path)': '\(path)' is a required property") }
        guard let fields = value.objectValue else {
            throw .badRequest("Invalid input for field '\(path)': \(value.serialized()) is not of type 'object'")
        }
        self.fields = fields
        self.path = path
    }

    /// Reads `{ "<root>": {...} }` from a whole body.
    public init(body: JSONValue, root: String) throws(NimbusError) {
        guard let outer = body.objectValue else {
            throw .badRequest("Invalid input: the request body must be a JSON object.")
        }
        try self.init(outer[root], path: root)
    }

    public func has(_ key: String) -> Bool { fields[key] != nil }

    private func invalid(_ key: String, _ detail: String) -> NimbusError {
        .badRequest("Invalid input for field '\(key)': \(detail)")
    }

    public func string(
        _ key: String, required: Bool = false, nullable: Bool = false, minLength: Int = 0, maxLength: Int? = nil
    ) throws(NimbusError) -> String? {
        guard let value = fields[key] else {
            if required { throw invalid(key, "'\(key)' is a required property") }
            return nil
        }
        if value.isNull {
            if nullable && !required { return nil }
            throw invalid(key, "None is not of type 'string'")
        }
        guard let text = value.stringValue else { throw invalid(key, "\(value.serialized()) is not of type 'string'") }
        if text.count < minLength {
            throw invalid(key, minLength == 1 ? "'\(text)' should be non-empty" : "'\(text)' is too short")
        }
        if let maxLength, text.count > maxLength { throw invalid(key, "'\(text)' is too long") }
        return text
    }

    public func bool(_ key: String) throws(NimbusError) -> Bool? {
        guard let value = fields[key] else { return nil }
        guard let flag = value.boolValue else { throw invalid(key, "\(value.serialized()) is not of type 'boolean'") }
        return flag
    }

    public func int(_ key: String, minimum: Int64? = nil, maximum: Int64? = nil) throws(NimbusError) -> Int64? {
        guard let value = fields[key] else { return nil }
        guard let number = value.intValue else { throw invalid(key, "\(value.serialized()) is not of type 'integer'") }
        if let minimum, number < minimum { throw invalid(key, "\(number) is less than the minimum of \(minimum)") }
        if let maximum, number > maximum { throw invalid(key, "\(number) is greater than the maximum of \(maximum)") }
        return number
    }

    public func object(_ key: String, required: Bool = false) throws(NimbusError) -> FieldReader? {
        guard let value = fields[key] else {
            if required { throw invalid(key, "'\(key)' is a required property") }
            return nil
        }
        return try FieldReader(value, path: key)
    }

    public func array(_ key: String, required: Bool = false) throws(NimbusError) -> [JSONValue]? {
        guard let value = fields[key] else {
            if required { throw invalid(key, "'\(key)' is a required property") }
            return nil
        }
        guard let items = value.arrayValue else { throw invalid(key, "\(value.serialized()) is not of type 'array'") }
        return items
    }

    public func stringArray(_ key: String, required: Bool = false) throws(NimbusError) -> [String]? {
        guard let items = try array(key, required: required) else { return nil }
        return try items.map { (item) throws(NimbusError) -> String in
            guard let text = item.stringValue else { throw invalid(key, "\(item.serialized()) is not of type 'string'") }
            return text
        }
    }

    /// Rejects fields outside `allowed`, as schemas with `additionalProperties: false` do.
    public func rejectUnknown(_ allowed: Set<String>) throws(NimbusError) {
        if let extra = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw .badRequest(
                "Invalid input for field '\(path)': Additional properties are not allowed ('\(extra)' was unexpected)")
        }
    }

    /// Fields outside `known`, kept as Keystone keeps unknown attributes in `extra`.
    public func extras(excluding known: Set<String>) -> [String: JSONValue] {
        fields.filter { !known.contains($0.key) }
    }
}
