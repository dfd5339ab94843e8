import Foundation
import NimbusCore
@testable import NimbusNetwork
import NimbusTesting
import Testing

/// The Neutron API through HTTP: resources, Neutron's refusals, and that refusals write nothing.
@Suite struct NetworkAPITests {
    @Test func seededLayoutAndDiscovery() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let versions = try await session.request(.get, "/network/")
            #expect(versions.body?["versions"]?.arrayValue?.first?["id"] == "v2.0")
            let resources = try await session.request(.get, "/network/v2.0/")
            #expect(resources.body?["resources"]?.arrayValue?.contains { $0["collection"] == "networks" } == true)
            let names = try await f.get("/networks").body?["networks"]?.arrayValue?.compactMap { $0["name"]?.stringValue }.sorted()
            #expect(names == ["private", "public", "shared"])
            let routers = try await f.get("/routers").body?["routers"]?.arrayValue ?? []
            #expect(routers.count == 1)
            #expect(routers.first?["external_gateway_info"]?["external_fixed_ips"]?.arrayValue?.count == 1)
            let privateID = try await f.get("/networks?name=private", token: f.admin).body?["networks"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            let dhcp = try await f.get("/ports?device_owner=network:dhcp&network_id=\(privateID)", token: f.admin).body?["ports"]?.arrayValue ?? []
            #expect(dhcp.count == 1)
            #expect(dhcp.first?["fixed_ips"]?.arrayValue?.first?["ip_address"] == "10.0.0.2")
            let provider = try await f.get("/networks?name=public", token: f.admin).body?["networks"]?.arrayValue?.first
            #expect(provider?["provider:network_type"] == "flat")
            #expect(try await f.get("/networks?name=public").body?["networks"]?.arrayValue?.first?["provider:network_type"] == nil)
            #expect(try await f.get("/extensions/router").status == 200)
            #expect(try await f.get("/extensions/dvr").status == 404)
        }
    }

    @Test func subnetValidation() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let (network, _) = try await f.networkWithSubnet("n1", cidr: "192.168.10.0/24")
            func subnet(_ extra: [String: JSONValue]) async throws -> TestReply {
                var body: [String: JSONValue] = ["network_id": .string(network), "ip_version": 4]
                body.merge(extra) { _, new in new }
                return try await f.post("/subnets", ["subnet": .object(body)])
            }
            #expect(NetworkFixture.fault(try await subnet(["cidr": "192.168.10.128/25"])) == "400 InvalidInput")
            #expect(NetworkFixture.fault(try await subnet(["cidr": "192.168.300.0/24"])) == "400 HTTPBadRequest")
            #expect(NetworkFixture.fault(try await subnet(["cidr": "192.168.20.0/24", "gateway_ip": "192.168.20.10",
                                                            "allocation_pools": [["start": "192.168.20.2", "end": "192.168.20.50"]]]))
                    == "400 GatewayConflictWithAllocationPools")
            #expect(NetworkFixture.fault(try await subnet(["cidr": "192.168.20.0/24", "colour": "blue"])) == "400 HTTPBadRequest")
            // Host bits are cleared; the default pool skips network, gateway and broadcast.
            let normal = try await subnet(["cidr": "192.168.30.7/24", "enable_dhcp": false])
            #expect(normal.status == 201)
            #expect(normal.body?["subnet"]?["cidr"] == "192.168.30.0/24")
            #expect(normal.body?["subnet"]?["gateway_ip"] == "192.168.30.1")
            #expect(normal.body?["subnet"]?["allocation_pools"] == [["start": "192.168.30.2", "end": "192.168.30.254"]])
            let v6 = try await f.post("/subnets", ["subnet": ["network_id": .string(network), "ip_version": 6, "cidr": "fd00:1::/64"]])
            #expect(v6.status == 201)
            #expect(v6.body?["subnet"]?["gateway_ip"] == "fd00:1::1")
            // Nothing half-applied: the refused subnets do not exist.
            #expect(try await f.get("/subnets?network_id=\(network)").body?["subnets"]?.arrayValue?.count == 3)
        }
    }

    @Test func slaacSubnetsAddressPortsByTheirMAC() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let (network, _) = try await f.networkWithSubnet("n6", cidr: "192.168.60.0/24")
            let earlier = try await f.post("/ports", ["port": ["network_id": .string(network), "mac_address": "fa:16:3e:00:00:0e"]])
            let earlierID = earlier.body?["port"]?["id"]?.stringValue ?? ""
            func subnet(_ cidr: String, _ extra: [String: JSONValue]) async throws -> TestReply {
                var body: [String: JSONValue] = ["network_id": .string(network), "ip_version": 6, "cidr": .string(cidr)]
                body.merge(extra) { _, new in new }
                return try await f.post("/subnets", ["subnet": .object(body)])
            }
            // Neutron's rules for the modes: /64 for EUI-64, equal modes, IPv6 only, DHCP on.
            #expect(NetworkFixture.fault(try await subnet("fd00:6:1::/80", ["ipv6_address_mode": "slaac"])) == "400 InvalidInput")
            #expect(NetworkFixture.fault(try await subnet("fd00:6:1::/64", ["ipv6_address_mode": "slaac", "ipv6_ra_mode": "dhcpv6-stateful"]))
                    == "400 InvalidInput")
            #expect(NetworkFixture.fault(try await subnet("fd00:6:1::/64", ["ipv6_address_mode": "slaac", "enable_dhcp": false]))
                    == "400 InvalidInput")
            #expect(NetworkFixture.fault(try await f.post("/subnets", ["subnet": ["network_id": .string(network), "ip_version": 4,
                                                                                    "cidr": "192.168.61.0/24", "ipv6_ra_mode": "slaac"]]))
                    == "400 InvalidInput")
            let v6 = try await subnet("fd00:6:1::/64", ["ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"])
            #expect(v6.status == 201)
            let v6ID = v6.body?["subnet"]?["id"]?.stringValue ?? ""
            // A port made before the subnet gets its SLAAC address too.
            let updated = try await f.get("/ports/\(earlierID)").body?["port"]?["fixed_ips"]?.arrayValue?.compactMap { $0["ip_address"]?.stringValue }
            #expect(updated?.contains("fd00:6:1:0:f816:3eff:fe00:e") == true, "\(updated ?? [])")
            // A port gets its IPv4 address and the address SLAAC forms from its MAC.
            let port = try await f.post("/ports", ["port": ["network_id": .string(network), "mac_address": "fa:16:3e:12:34:56"]])
            #expect(port.status == 201)
            let addresses = port.body?["port"]?["fixed_ips"]?.arrayValue?.compactMap { $0["ip_address"]?.stringValue } ?? []
            #expect(addresses.contains("fd00:6:1:0:f816:3eff:fe12:3456"), "\(addresses)")
            #expect(addresses.contains { $0.hasPrefix("192.168.60.") }, "\(addresses)")
            // Nobody picks an address on such a subnet.
            let chosen = try await f.post("/ports", ["port": ["network_id": .string(network),
                                                               "fixed_ips": [["subnet_id": .string(v6ID), "ip_address": "fd00:6:1::99"]]]])
            #expect(NetworkFixture.fault(chosen) == "400 InvalidInput")
            let bySubnet = try await f.post("/ports", ["port": ["network_id": .string(network), "mac_address": "fa:16:3e:00:00:01",
                                                                 "fixed_ips": [["subnet_id": .string(v6ID)]]]])
            #expect(bySubnet.body?["port"]?["fixed_ips"]?.arrayValue?.first?["ip_address"] == "fd00:6:1:0:f816:3eff:fe00:1")
        }
    }

    /// The filter allow-lists are written out (an empty list has no view to read them from); they
    /// must name exactly the attributes the views render, so a filter on any shown attribute works.
    @Test func filterableAttributesAreWhatTheViewsRender() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let (network, subnet) = try await f.networkWithSubnet("shown", cidr: "192.168.70.0/24", token: f.admin)
            _ = subnet
            _ = try await f.create("ports", "port", ["network_id": .string(network)], token: f.admin)
            let publicID = try await f.get("/networks?name=public", token: f.admin).body?["networks"]?.arrayValue?.first?["id"]?.stringValue ?? ""
            _ = try await f.create("floatingips", "floatingip", ["floating_network_id": .string(publicID)], token: f.admin)
            let collections = ["networks", "subnets", "ports", "security-groups", "security-group-rules", "routers", "floatingips"]
            for collection in collections {
                let key = collection.replacingOccurrences(of: "-", with: "_")
                let listed = try await f.get("/\(collection)", token: f.admin).body?[key]?.arrayValue ?? []
                #expect(!listed.isEmpty, "\(collection)")
                let rendered = Set(listed.flatMap { $0.objectValue?.keys.map { $0 } ?? [] })
                let allowed = NetworkAPI.filterable[collection] ?? []
                #expect(rendered.subtracting(allowed).isEmpty, "\(collection) renders unfilterable \(rendered.subtracting(allowed).sorted())")
                #expect(allowed.subtracting(rendered).isEmpty, "\(collection) filters on unrendered \(allowed.subtracting(rendered).sorted())")
            }
        }
    }

    @Test func portAddressesAndConflicts() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let (network, subnet) = try await f.networkWithSubnet("n2", cidr: "192.168.40.0/24")
            let first = try await f.post("/ports", ["port": ["network_id": .string(network), "fixed_ips": [["ip_address": "192.168.40.20"]]]])
            #expect(first.status == 201)
            let port = first.body?["port"]
            #expect(port?["mac_address"]?.stringValue?.hasPrefix("fa:16:3e:") == true)
            #expect(port?["status"] == "DOWN")
            #expect(port?["security_groups"]?.arrayValue?.count == 1)
            let taken = try await f.post("/ports", ["port": ["network_id": .string(network), "fixed_ips": [["ip_address": "192.168.40.20"]]]])
            #expect(NetworkFixture.fault(taken) == "409 IpAddressAlreadyAllocated")
            let outside = try await f.post("/ports", ["port": ["network_id": .string(network),
                                                                "fixed_ips": [["subnet_id": .string(subnet), "ip_address": "10.9.9.9"]]]])
            #expect(NetworkFixture.fault(outside) == "400 InvalidIpForSubnet")
            let noSecurity = try await f.post("/ports", ["port": ["network_id": .string(network), "port_security_enabled": false,
                                                                   "security_groups": [.string(port?["security_groups"]?.arrayValue?.first?.stringValue ?? "")]]])
            #expect(NetworkFixture.fault(noSecurity) == "400 PortSecurityAndIPRequiredForSecurityGroups")
            let found = try await f.get("/ports?fixed_ips=ip_address%3D192.168.40.20").body?["ports"]?.arrayValue ?? []
            #expect(found.count == 1)
            // Only the first port and the DHCP port exist after the refusals.
            #expect(try await f.get("/ports?network_id=\(network)", token: f.admin).body?["ports"]?.arrayValue?.count == 2)
            #expect(NetworkFixture.fault(try await f.delete("/networks/\(network)")) == "409 NetworkInUse")
            #expect(NetworkFixture.fault(try await f.delete("/subnets/\(subnet)")) == "409 SubnetInUse")
            #expect(try await f.delete("/ports/\(port?["id"]?.stringValue ?? "")").status == 204)
            // The address is free again.
            #expect(try await f.post("/ports", ["port": ["network_id": .string(network), "fixed_ips": [["ip_address": "192.168.40.20"]]]]).status == 201)
        }
    }

    @Test func projectsAreIsolated() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let other = try await session.newProjectUser("other")
            let (network, _) = try await f.networkWithSubnet("mine", cidr: "192.168.50.0/24")
            let reply = try await f.get("/networks/\(network)", token: other.token)
            #expect(reply.status == 404)
            #expect(reply.body?["NeutronError"]?["message"] == .string("Network \(network) could not be found."))
            #expect(NetworkFixture.fault(try await f.delete("/networks/\(network)", token: other.token)) == "404 NetworkNotFound")
            #expect(try await f.get("/networks/private", token: f.demo).status == 404)
            let reader = try await session.newProjectUser("reader", role: "reader")
            #expect(try await f.post("/networks", ["network": ["name": "x"]], token: reader.token).status == 403)
            // Everyone sees the external network, nobody but its owner changes it.
            let visible = try await f.get("/networks?router:external=true", token: other.token).body?["networks"]?.arrayValue ?? []
            #expect(visible.count == 1)
            let publicID = visible.first?["id"]?.stringValue ?? ""
            #expect(try await f.put("/networks/\(publicID)", ["network": ["name": "mine-now"]], token: other.token).status == 403)
        }
    }

    @Test func securityGroupRules() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let groups = try await f.get("/security-groups").body?["security_groups"]?.arrayValue ?? []
            #expect(groups.count == 1)
            let group = groups.first
            #expect(group?["name"] == "default")
            let rules = group?["security_group_rules"]?.arrayValue ?? []
            #expect(rules.count == 4)
            #expect(rules.filter { $0["direction"] == "ingress" }.allSatisfy { $0["remote_group_id"] == group?["id"] })
            let id = group?["id"] ?? .null
            func rule(_ extra: [String: JSONValue]) async throws -> TestReply {
                var body: [String: JSONValue] = ["security_group_id": id, "direction": "ingress"]
                body.merge(extra) { _, new in new }
                return try await f.post("/security-group-rules", ["security_group_rule": .object(body)])
            }
            #expect(NetworkFixture.fault(try await rule(["protocol": "tcpx"])) == "400 SecurityGroupRuleInvalidProtocol")
            #expect(NetworkFixture.fault(try await rule(["protocol": "tcp", "port_range_min": 90, "port_range_max": 80])) == "400 SecurityGroupInvalidPortRange")
            #expect(NetworkFixture.fault(try await rule(["protocol": "tcp", "port_range_min": 1, "port_range_max": 70000])) == "400 SecurityGroupInvalidPortValue")
            #expect(NetworkFixture.fault(try await rule(["protocol": "icmp", "port_range_min": 8, "port_range_max": 256])) == "400 SecurityGroupInvalidIcmpValue")
            #expect(NetworkFixture.fault(try await rule(["remote_ip_prefix": "0.0.0.0/0", "remote_group_id": id])) == "400 SecurityGroupRemoteGroupAndRemoteIpPrefix")
            #expect(try await rule(["protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"]).status == 201)
            #expect(NetworkFixture.fault(try await rule(["protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"]))
                    == "409 SecurityGroupRuleExists")
            #expect(NetworkFixture.fault(try await f.delete("/security-groups/\(id.stringValue ?? "")")) == "409 SecurityGroupCannotRemoveDefault")
        }
    }

    @Test func quotasRefuseCreates() async throws {
        try await TestCloud.with { session in
            let f = try await NetworkFixture.make(session)
            let project = try await session.cloud.identity.projectID(named: "demo") ?? ""
            let set = try await f.put("/quotas/\(project)", ["quota": ["network": 2]], token: f.admin)
            #expect(set.body?["quota"]?["network"] == 2)
            #expect(try await f.post("/networks", ["network": ["name": "q1"]]).status == 201)
            #expect(NetworkFixture.fault(try await f.post("/networks", ["network": ["name": "q2"]])) == "409 OverQuota")
            #expect(try await f.get("/quotas/\(project)/details.json").body?["quota"]?["network"]?["used"] == 2)
        }
    }
}
