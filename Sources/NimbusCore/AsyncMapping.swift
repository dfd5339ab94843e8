/// `map`s that may await, for optional lookups and per-row fetches in repositories.
extension Optional {
    public func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        switch self {
        case .some(let value): try await transform(value)
        case .none: nil
        }
    }
}

extension Array {
    public func asyncCompactMap<T>(_ transform: (Element) async throws -> T?) async rethrows -> [T] {
        var out: [T] = []
        for element in self {
            if let value = try await transform(element) { out.append(value) }
        }
        return out
    }
}
