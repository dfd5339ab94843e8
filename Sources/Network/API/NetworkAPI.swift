import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import NimbusCore

/// Neutron's endpoint table, under `/network` (clients append `/v2.0/...`).
public enum NetworkAPI {
    public static let prefix = "/network"

    typealias Record = [String: JSONValue]

    /// One CRUD collection: how to list, show, create, update and delete it.
    struct Collection {
        let singular: String
        let plural: String
        let path: String
        let list: @Sendable (NetworkService, AuthContext, Request) async throws -> [Record]
        let show: @Sendable (NetworkService, String, AuthContext) async throws -> Record
        let create: @Sendable (NetworkService, JSONValue, AuthContext) async throws -> Record
        let update: @Sendable (NetworkService, String, JSONValue, AuthContext) async throws -> Record
        let delete: @Sendable (NetworkService, String, AuthContext) async throws -> Void
    }

    static let collections: [Collection] = [
        Collection(singular: "network", plural: "networks", path: "networks", list: { s, c, _ in try await s.listNetworks(caller: c) },
                   show: { try await $0.network($1, caller: $2) }, create: { try await $0.createNetwork($1, caller: $2) },
                   update: { try await $0.updateNetwork($1, $2, caller: $3) }, delete: { try await $0.deleteNetwork($1, caller: $2) }),
        Collection(singular: "subnet", plural: "subnets", path: "subnets", list: { s, c, _ in try await s.listSubnets(caller: c) },
                   show: { try await $0.subnet($1, caller: $2) }, create: { try await $0.createSubnet($1, caller: $2) },
                   update: { try await $0.updateSubnet($1, $2, caller: $3) }, delete: { try await $0.deleteSubnet($1, caller: $2) }),
        Collection(singular: "port", plural: "ports", path: "ports",
                   list: { s, c, r in
                       var filters: [String: [String]] = [:]
                       for (name, value) in r.queryPairs { filters[name, default: []].append(value) }
                       return try await s.listPorts(caller: c, filters: filters)
                   },
                   show: { try await $0.port($1, caller: $2) }, create: { try await $0.createPort($1, caller: $2) },
                   update: { try await $0.updatePort($1, $2, caller: $3) }, delete: { try await $0.deletePort($1, caller: $2) }),
        Collection(singular: "security_group", plural: "security_groups", path: "security-groups",
                   list: { s, c, _ in try await s.listSecurityGroups(caller: c) },
                   show: { try await $0.securityGroup($1, caller: $2) }, create: { try await $0.createSecurityGroup($1, caller: $2) },
                   update: { try await $0.updateSecurityGroup($1, $2, caller: $3) }, delete: { try await $0.deleteSecurityGroup($1, caller: $2) }),
        Collection(singular: "security_group_rule", plural: "security_group_rules", path: "security-group-rules",
                   list: { s, c, _ in try await s.listSecurityGroupRules(caller: c) },
                   show: { try await $0.securityGroupRule($1, caller: $2) }, create: { try await $0.createSecurityGroupRule($1, caller: $2) },
                   update: { _, _, _, _ in throw NimbusError(.methodNotAllowed, "The method PUT is not allowed for the requested URL.") },
                   delete: { try await $0.deleteSecurityGroupRule($1, caller: $2) }),
        Collection(singular: "router", plural: "routers", path: "routers", list: { s, c, _ in try await s.listRouters(caller: c) },
                   show: { try await $0.router($1, caller: $2) }, create: { try await $0.createRouter($1, caller: $2) },
                   update: { try await $0.updateRouter($1, $2, caller: $3) }, delete: { try await $0.deleteRouter($1, caller: $2) }),
        Collection(singular: "floatingip", plural: "floatingips", path: "floatingips", list: { s, c, _ in try await s.listFloatingIPs(caller: c) },
                   show: { try await $0.floatingIP($1, caller: $2) }, create: { try await $0.createFloatingIP($1, caller: $2) },
                   update: { try await $0.updateFloatingIP($1, $2, caller: $3) }, delete: { try await $0.deleteFloatingIP($1, caller: $2) }),
    ]

    /// The attributes each collection can be filtered on: those of its views (Neutron validates
    /// filters against the resource's attributes and answers 400 for any other).
    static let filterable: [String: Set<String>] = [
        "networks": [
            "admin_state_up", "availability_zone_hints", "availability_zones", "created_at", "description", "id",
            "ipv4_address_scope", "ipv6_address_scope", "is_default", "l2_adjacency", "mtu", "name",
            "port_security_enabled", "project_id", "provider:network_type", "provider:physical_network",
            "provider:segmentation_id", "revision_number", "router:external", "shared", "status", "subnets", "tags",
            "tenant_id", "updated_at"
        ],
        "subnets": [
            "allocation_pools", "cidr", "created_at", "description", "dns_nameservers", "dns_publish_fixed_ip",
            "enable_dhcp", "gateway_ip", "host_routes", "id", "ip_version", "ipv6_address_mode", "ipv6_ra_mode", "name",
            "network_id", "project_id", "revision_number", "router:external", "segment_id", "service_types", "subnetpool_id",
            "tags", "tenant_id", "updated_at"
        ],
        "ports": [
            "admin_state_up", "allowed_address_pairs", "binding:host_id", "binding:profile", "binding:vif_details",
            "binding:vif_type", "binding:vnic_type", "created_at", "description", "device_id", "device_owner",
            "dns_name", "extra_dhcp_opts", "fixed_ips", "id", "mac_address", "name", "network_id",
            "port_security_enabled", "project_id", "revision_number", "security_groups", "status", "tags", "tenant_id",
            "updated_at"
        ],
        "security-groups": [
            "created_at", "description", "id", "name", "project_id", "revision_number", "security_group_rules",
            "shared", "stateful", "tags", "tenant_id", "updated_at"
        ],
        "security-group-rules": [
            "created_at", "description", "direction", "ethertype", "id", "normalized_cidr", "port_range_max",
            "port_range_min", "project_id", "protocol", "remote_address_group_id", "remote_group_id",
            "remote_ip_prefix", "revision_number", "security_group_id", "tenant_id", "updated_at"
        ],
        "routers": [
            "admin_state_up", "availability_zone_hints", "availability_zones", "created_at", "description",
            "distributed", "external_gateway_info", "flavor_id", "ha", "id", "name", "project_id", "revision_number",
            "routes", "status", "tags", "tenant_id", "updated_at"
        ],
        "floatingips": [
            "created_at", "description", "fixed_ip_address", "floating_ip_address", "floating_network_id", "id",
            "port_forwardings", "port_id", "project_id", "qos_policy_id", "revision_number", "router_id", "status",
            "tags", "tenant_id", "updated_at"
        ],
    ]

    public static func routes(_ service: NetworkService, publicURL: String) -> ServiceRoutes {
        var routes = ServiceRoutes(prefix: prefix, faultStyle: .neutron)
        let base = publicURL + prefix + "/v2.0"
        routes.get("/", .open) { _, _ in
            .json(["versions": [["id": "v2.0", "status": "CURRENT", "links": [["href": .string(base + "/"), "rel": "self"]]]]])
        }
        let resources: JSONValue = .array(collections.map { collection in
            ["name": .string(collection.singular), "collection": .string(collection.plural),
             "links": [["href": .string(base + "/" + collection.path), "rel": "self"]]]
        })
        // Hummingbird matches `/v2.0/` here too.
        routes.get("/v2.0", .open) { _, _ in .json(["resources": resources]) }
        for collection in collections { register(collection, service, base: base, into: &routes) }
        registerExtras(service, base: base, into: &routes)
        return routes
    }

    static func register(_ collection: Collection, _ service: NetworkService, base: String, into routes: inout ServiceRoutes) {
        let path = "/v2.0/" + collection.path
        routes.get(path) { request, context in
            try await run {
                let query = try ListQuery(request)
                try query.validateFilters(allowed: filterable[collection.path] ?? [])
                let views = try await collection.list(service, try context.caller(), request)
                return .json(query.apply(views, collection: collection.plural, baseURL: base + "/" + collection.path))
            }
        }
        routes.post(path) { request, context in
            try await run {
                let body = try await request.json(context: context)
                let caller = try context.caller()
                // Bulk create: `{"networks": [...]}`, all in order (not atomically across items).
                if let items = body[collection.plural]?.arrayValue {
                    var created: [JSONValue] = []
                    for item in items { created.append(.object(try await collection.create(service, [collection.singular: item], caller))) }
                    return .json([collection.plural: .array(created)], status: .created)
                }
                return .json([collection.singular: .object(try await collection.create(service, body, caller))], status: .created)
            }
        }
        routes.get(path + "/{id}") { request, context in
            try await run {
                let query = try ListQuery(request)
                let view = try await collection.show(service, context.path("id"), try context.caller())
                return .json([collection.singular: query.project(view)])
            }
        }
        routes.put(path + "/{id}") { request, context in
            try await run {
                let body = try await request.json(context: context)
                return .json([collection.singular: .object(try await collection.update(service, context.path("id"), body, try context.caller()))])
            }
        }
        routes.delete(path + "/{id}") { _, context in
            try await run {
                try await collection.delete(service, context.path("id"), try context.caller())
                return .empty()
            }
        }
    }

    /// Gives every bad-request error Neutron's fault type when the service set none, so clients
    /// that switch on `type` see `HTTPBadRequest` as they would from Neutron.
    static func run(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch var error as NimbusError where error.code == nil {
            switch error.kind {
            case .badRequest: error.code = "HTTPBadRequest"
            case .forbidden: error.code = "PolicyNotAuthorized"
            default: break
            }
            throw error
        }
    }
}
