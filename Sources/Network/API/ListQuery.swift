import Gateway
import Hummingbird
import NimbusCore

/// Neutron's generic list behaviour over rendered views: filters on any top-level attribute
/// (repeated keys mean OR), `fields`, `sort_key`/`sort_dir`, and `limit`/`marker`/`page_reverse`
/// with `<collection>_links`.
struct ListQuery: Sendable {
    static let reserved: Set<String> = ["fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"]

    var filters: [String: [String]] = [:]
    var fields: [String] = []
    var sorts: [(key: String, ascending: Bool)] = []
    var limit: Int?
    var marker: String?
    var pageReverse = false

    init(_ request: Request) throws {
        for (name, value) in request.queryPairs where !Self.reserved.contains(name) {
            filters[name, default: []].append(value)
        }
        fields = request.queryAll("fields").flatMap { $0.split(separator: ",").map(String.init) }
        let keys = request.queryAll("sort_key")
        let directions = request.queryAll("sort_dir")
        guard directions.count <= keys.count else {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "The number of sort_keys and sort_dirs must be same")
        }
        for (index, key) in keys.enumerated() {
            let direction = index < directions.count ? directions[index] : "asc"
            guard direction == "asc" || direction == "desc" else {
                throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Sort direction '\(direction)' is not supported")
            }
            sorts.append((key, direction == "asc"))
        }
        if let text = request.query("limit") {
            guard let value = Int(text), value >= 0 else {
                throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for limit. Reason: '\(text)' is not an integer.")
            }
            limit = value == 0 ? nil : value
        }
        marker = request.query("marker")
        pageReverse = ["true", "True", "1"].contains(request.query("page_reverse") ?? "")
    }

    /// Neutron's filter validation: a filter on anything but an attribute of the resource is a 400
    /// ("[name] is invalid attribute for filtering"), and nothing is listed.
    func validateFilters(allowed: Set<String>) throws {
        for key in filters.keys.sorted() where !allowed.contains(key) && !Self.alwaysFilterable.contains(key) {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "[\(key)] is invalid attribute for filtering")
        }
    }

    /// Filters every collection takes besides its attributes (`changed_since`: standard-attr-timestamp).
    static let alwaysFilterable: Set<String> = ["tenant_id", "project_id", "changed_since"]

    /// Whether a view matches every filter; attributes the view lacks are ignored (except `fixed_ips`,
    /// which port listing filters itself).
    func matches(_ view: [String: JSONValue]) -> Bool {
        for (key, wanted) in filters where key != "fixed_ips" {
            let attribute = key == "tenant_id" ? "project_id" : key
            guard let value = view[attribute] else { continue }
            if !wanted.contains(where: { Self.equal(value, $0) }) { return false }
        }
        return true
    }

    static func equal(_ value: JSONValue, _ text: String) -> Bool {
        switch value {
        case .string(let string): return string == text
        case .bool(let flag): return text.lowercased() == (flag ? "true" : "false")
        case .int(let number): return String(number) == text
        case .null: return text.isEmpty || text == "None"
        case .array(let items): return items.contains { equal($0, text) }
        default: return value.serialized() == text
        }
    }

    /// Filters, sorts, pages and projects `views`. - Returns: the items and the links.
    func apply(_ views: [[String: JSONValue]], collection: String, baseURL: String) -> JSONValue {
        var items = views.filter(matches)
        let keys = sorts.isEmpty ? [(key: "id", ascending: true)] : sorts
        items.sort { a, b in
            for sort in keys {
                let left = Self.sortable(a[sort.key])
                let right = Self.sortable(b[sort.key])
                if left != right { return sort.ascending ? left < right : left > right }
            }
            return (a["id"]?.stringValue ?? "") < (b["id"]?.stringValue ?? "")
        }
        var links: [JSONValue] = []
        if let limit {
            var start = 0
            var end = items.count
            if let marker, let position = items.firstIndex(where: { $0["id"]?.stringValue == marker }) {
                if pageReverse { end = position; start = max(0, position - limit) } else { start = position + 1; end = min(items.count, start + limit) }
            } else if pageReverse {
                start = max(0, items.count - limit)
            } else {
                end = min(items.count, limit)
            }
            let page = Array(items[start..<end])
            if end < items.count || (pageReverse && marker != nil), let last = page.last?["id"]?.stringValue {
                links.append(["rel": "next", "href": .string(link(baseURL, marker: last, reverse: false))])
            }
            if (marker != nil && !pageReverse) || (pageReverse && start > 0), let first = page.first?["id"]?.stringValue {
                links.append(["rel": "previous", "href": .string(link(baseURL, marker: first, reverse: true))])
            }
            items = page
        }
        let projected: [JSONValue] = items.map { item in
            guard !fields.isEmpty else { return .object(item) }
            return .object(item.filter { fields.contains($0.key) })
        }
        var body: [String: JSONValue] = [collection: .array(projected)]
        if !links.isEmpty { body[collection + "_links"] = .array(links) }
        return .object(body)
    }

    func link(_ base: String, marker: String, reverse: Bool) -> String {
        var parts = ["limit=\(limit ?? 0)", "marker=\(marker)"]
        for sort in sorts { parts.append("sort_key=\(sort.key)&sort_dir=\(sort.ascending ? "asc" : "desc")") }
        if reverse { parts.append("page_reverse=True") }
        return base + "?" + parts.joined(separator: "&")
    }

    static func sortable(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        switch value {
        case .string(let text): return text
        case .int(let number): return String(format: "%020lld", number + (1 << 62))
        case .bool(let flag): return flag ? "1" : "0"
        default: return value.serialized()
        }
    }

    /// A single resource with only the `fields` asked for.
    func project(_ view: [String: JSONValue]) -> JSONValue {
        fields.isEmpty ? .object(view) : .object(view.filter { fields.contains($0.key) })
    }
}
