import Gateway
import Hummingbird
import NimbusCore

/// Routes beyond the CRUD collections: router interfaces, quotas, availability, extensions, agents.
extension NetworkAPI {
    static func registerExtras(_ service: NetworkService, base: String, into routes: inout ServiceRoutes) {
        routes.put("/v2.0/routers/{id}/add_router_interface") { request, context in
            try await run { .json(.object(try await service.addRouterInterface(context.path("id"), try await request.json(context: context), caller: try context.caller()))) }
        }
        routes.put("/v2.0/routers/{id}/remove_router_interface") { request, context in
            try await run { .json(.object(try await service.removeRouterInterface(context.path("id"), try await request.json(context: context), caller: try context.caller()))) }
        }
        routes.get("/v2.0/quotas") { _, context in
            try await run { .json(["quotas": .array(try await service.listQuotas(caller: try context.caller()).map { .object($0) })]) }
        }
        routes.get("/v2.0/quotas/{project}") { _, context in
            try await run { .json(["quota": .object(try await service.quota(project: context.path("project"), caller: try context.caller()))]) }
        }
        routes.put("/v2.0/quotas/{project}") { request, context in
            try await run {
                let body = try await request.json(context: context)
                return .json(["quota": .object(try await service.updateQuota(project: context.path("project"), body, caller: try context.caller()))])
            }
        }
        routes.delete("/v2.0/quotas/{project}") { _, context in
            try await run {
                try await service.deleteQuota(project: context.path("project"), caller: try context.caller())
                return .empty()
            }
        }
        routes.get("/v2.0/quotas/{project}/default") { _, context in
            try await run { .json(["quota": .object(try service.defaultQuota(project: context.path("project"), caller: try context.caller()))]) }
        }
        routes.get("/v2.0/quotas/{project}/details.json") { _, context in
            try await run { .json(["quota": .object(try await service.quotaDetails(project: context.path("project"), caller: try context.caller()))]) }
        }
        routes.get("/v2.0/network-ip-availabilities") { request, context in
            try await run {
                let query = try ListQuery(request)
                let views = try await service.ipAvailabilities(caller: try context.caller())
                return .json(query.apply(views, collection: "network_ip_availabilities", baseURL: base + "/network-ip-availabilities"))
            }
        }
        routes.get("/v2.0/network-ip-availabilities/{id}") { _, context in
            try await run {
                let id = context.path("id")
                guard let view = try await service.ipAvailabilities(caller: try context.caller()).first(where: { $0["network_id"]?.stringValue == id }) else {
                    throw NimbusError.neutron(.notFound, "NetworkNotFound", "Network \(id) could not be found.")
                }
                return .json(["network_ip_availability": .object(view)])
            }
        }
        routes.get("/v2.0/agents") { request, context in
            try await run {
                let query = try ListQuery(request)
                return .json(query.apply(try await service.agents(caller: try context.caller()), collection: "agents", baseURL: base + "/agents"))
            }
        }
        routes.get("/v2.0/extensions") { _, _ in
            .json(["extensions": .array(extensions.map(extensionView))])
        }
        routes.get("/v2.0/extensions/{alias}") { _, context in
            try await run {
                let alias = context.path("alias")
                guard let found = extensions.first(where: { $0.alias == alias }) else {
                    throw NimbusError.neutron(.notFound, "HTTPNotFound", "Extension with alias \(alias) does not exist")
                }
                return .json(["extension": extensionView(found)])
            }
        }
    }

    /// The extensions this API really implements, by Neutron's aliases.
    static let extensions: [(alias: String, name: String, description: String)] = [
        ("agent", "agent", "The agent management extension."),
        ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
        ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
        ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
        ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"),
        ("fields", "Fields", "Allows selecting the attributes returned with the fields query parameter"),
        ("network-ip-availability", "Network IP Availability", "Provides IP availability data for each network and subnet."),
        ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
        ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
        ("port-security", "Port Security", "Provides port security"),
        ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
        ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
        ("quotas", "Quota management support", "Expose functions for quotas management per project"),
        ("quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project"),
        ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."),
        ("security-group", "security-group", "The security groups extension."),
        ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
        ("subnet-external-network", "Subnet External Network", "Informs if the subnet is external or not"),
        ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
        ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."),
        ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."),
    ]

    static func extensionView(_ entry: (alias: String, name: String, description: String)) -> JSONValue {
        ["alias": .string(entry.alias), "name": .string(entry.name), "description": .string(entry.description),
         "updated": "2013-01-20T00:00:00-00:00", "links": []]
    }
}
