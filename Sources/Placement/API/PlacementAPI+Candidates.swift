import Gateway
import HTTPTypes
import Hummingbird
import NimbusCore

/// `GET /allocation_candidates`, and the query filters it shares with `GET /resource_providers`.
extension PlacementAPI {
    static func registerCandidates(_ table: inout Table, _ service: PlacementService) {
        table.add(.get, "/allocation_candidates", since: 10, "placement:allocation_candidates:list") { request, _, version in
            let groupKeys = ["resources", "required", "member_of", "in_tree"]
            if let granular = request.queryNames.first(where: { name in groupKeys.contains { name.hasPrefix($0) && name != $0 } }) {
                // Granular groups combine several providers of one tree; Nimbus places single providers only.
                throw NimbusError.badRequest("Invalid query string parameters: granular request groups ('\(granular)') are not supported by this Placement.")
            }
            try rejectUnknown(request, Set(groupKeys + ["limit", "group_policy"]))
            guard let resources = request.query("resources") else {
                throw NimbusError.badRequest("Invalid query string parameters: 'resources' is a required property")
            }
            var filters = try filters(request, version, resources: try parseResources(resources))
            if let limit = request.query("limit") {
                guard let number = Int(limit), number >= 1, version >= 16 else {
                    throw NimbusError.badRequest("Invalid query string parameters: '\(limit)' does not match '^[1-9][0-9]*$'")
                }
                filters.limit = number
            }
            let candidates = try await service.allocationCandidates(filters)
            return CandidateWire.response(candidates, requested: filters.resources, version)
        }
    }

    /// `resources=VCPU:1,MEMORY_MB:512`.
    static func parseResources(_ text: String) throws -> [String: Int64] {
        let badlyFormed = NimbusError.badRequest(
            "Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: \(text).")
        var out: [String: Int64] = [:]
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else { throw badlyFormed }
            guard let amount = Int64(parts[1]), amount >= 1 else {
                throw NimbusError.badRequest("Requested resource \(parts[0]) expected positive integer amount. Got: \(parts[1]).")
            }
            guard out.updateValue(amount, forKey: String(parts[0])) == nil else {
                throw NimbusError.badRequest("Resource class \(parts[0]) duplicated in resources parameter.")
            }
        }
        return out
    }

    /// `required`, `member_of` and `in_tree`, with their microversion rules: forbidden traits
    /// (`!T`) from 1.22, repeated `member_of` from 1.24, `!in:` aggregates from 1.32, `in:` traits from 1.39.
    static func filters(_ request: Request, _ version: Microversion, resources: [String: Int64]) throws -> CandidateRequest {
        var filters = CandidateRequest(resources: resources)
        for value in request.queryAll("required") {
            if value.hasPrefix("in:") && version >= 39 {
                let names = Set(value.dropFirst(3).split(separator: ",").map(String.init))
                guard !names.isEmpty, !names.contains(where: { $0.hasPrefix("!") }) else { throw badRequired(value) }
                filters.anyOf.append(names)
                continue
            }
            let names = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard !names.contains(where: \.isEmpty) else { throw badRequired(value) }
            for name in names {
                if name.hasPrefix("!") && version >= 22 {
                    filters.forbidden.insert(String(name.dropFirst()))
                } else {
                    filters.required.insert(name)
                }
            }
        }
        if !filters.required.isDisjoint(with: filters.forbidden) {
            throw NimbusError.badRequest("Conflicting required and forbidden traits found in the following traits keys: \(filters.required.intersection(filters.forbidden).sorted().joined(separator: ", "))")
        }
        let memberOf = request.queryAll("member_of")
        if memberOf.count > 1 && version < 24 {
            throw NimbusError.badRequest("Multiple member_of parameters are not supported before microversion 1.24.")
        }
        for value in memberOf {
            let negated = value.hasPrefix("!") && version >= 32
            var text = negated ? Substring(value.dropFirst()) : Substring(value)
            if text.hasPrefix("in:") { text = text.dropFirst(3) }
            let uuids = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard !uuids.isEmpty, uuids.allSatisfy(Identifier.looksLikeUUID) else {
                throw NimbusError.badRequest("Invalid query string parameters: Expected 'member_of' parameter to contain valid UUID(s). Got: \(value)")
            }
            let set = Set(uuids.map(PlacementWire.normalizedUUID))
            if negated { filters.notMemberOf.formUnion(set) } else { filters.memberOf.append(set) }
        }
        if let tree = request.query("in_tree") {
            try PlacementWire.requireUUID(tree, field: "in_tree")
            filters.inTree = PlacementWire.normalizedUUID(tree)
        }
        return filters
    }

    static func badRequired(_ value: String) -> NimbusError {
        .badRequest("Invalid query string parameters: Expected 'required' parameter value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: \(value)")
    }
}
