import Testing
@testable import Dataplane

@Suite struct RenderingTests {
    let port = PortWiring(id: "5f3c2a9e-1b7d-4c8e-9f0a-123456789abc", networkID: "n", mac: "FA:16:3E:00:00:01",
                          fixedIPs: [FixedAddress(address: "10.0.0.5", prefixLength: 24, subnetID: "s", version: 4)], deviceID: "d",
                          allowedAddressPairs: [AddressPair(ipAddress: "10.0.0.100/32", mac: "fa:16:3e:00:00:02")],
                          ingress: [FilterRule(ethertype: "IPv4", ipProtocol: "tcp", portMin: 22, portMax: 22, remoteCIDRs: ["0.0.0.0/0"])],
                          egress: [FilterRule(ethertype: "IPv4")])

    @Test func filterHasAntiSpoofingMarksAndStatefulChains() {
        let text = FilterRuleset.render(ports: [port])
        #expect(text.hasPrefix("table bridge nimbus\ndelete table bridge nimbus\n"))
        #expect(text.contains("\"ntp-5f3c2a9e1b7\" : jump from-5f3c2a9e1b7"))
        #expect(text.contains("ether saddr != { fa:16:3e:00:00:01, fa:16:3e:00:00:02 } drop"))
        // Pairs: the allowed pair's address only from the pair's MAC.
        #expect(text.contains("ether type ip ether saddr . ip saddr != { fa:16:3e:00:00:01 . 10.0.0.5, fa:16:3e:00:00:02 . 10.0.0.100/32 } drop"))
        #expect(text.contains("arp saddr ether . arp saddr ip != { fa:16:3e:00:00:01 . 10.0.0.5, fa:16:3e:00:00:02 . 10.0.0.100/32 } drop"))
        #expect(text.contains("meta mark set oifname map { \"ntp-5f3c2a9e1b7\" : 0x4e420001 }"))
        #expect(text.contains("ct state established,related accept"))
        #expect(text.contains("ct zone set iifname map { \"nbr-n\" : 1 }"))
        #expect(text.contains("meta nfproto ipv4 ip saddr { 0.0.0.0/0 } meta l4proto tcp tcp dport 22 accept"))
        #expect(text.contains("    meta nfproto ipv4 return"))
    }

    @Test func portWithoutSecurityIsNotFiltered() {
        var open = port
        open.portSecurity = false
        #expect(!FilterRuleset.render(ports: [open]).contains("ntp-"))
    }

    @Test func unsafeRuleIsLeftOut() {
        #expect(FilterRuleset.match(FilterRule(ethertype: "IPv4", remoteCIDRs: ["1.2.3.4; flush ruleset"]), remote: "saddr") == nil)
        #expect(FilterRuleset.match(FilterRule(ethertype: "IPv6", ipProtocol: "icmp", portMin: 128), remote: "saddr")
                == "meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type 128")
        #expect(FilterRuleset.match(FilterRule(ethertype: "IPv4", ipProtocol: "udp", portMin: 1000, portMax: 2000), remote: "daddr")
                == "meta nfproto ipv4 meta l4proto udp udp dport 1000-2000")
    }

    @Test func dnsmasqOptions() {
        let dhcp = DHCPWiring(networkID: "n", portID: "p", mac: "fa:16:3e:00:00:02",
                              addresses: [FixedAddress(address: "10.0.0.2", prefixLength: 24, subnetID: "s", version: 4)], mtu: 1450,
                              subnets: [DHCPSubnet(id: "s", cidr: "10.0.0.7/24", version: 4, gateway: nil,
                                                   hostRoutes: [HostRoute(destination: "192.168.0.0/16", nexthop: "10.0.0.9")])],
                              hosts: [DHCPHost(mac: "FA:16:3E:00:00:05", address: "10.0.0.5", hostname: "vm")])
        let config = DnsmasqConfig(dhcp, directory: "/d")
        #expect(config.hostsFile == "fa:16:3e:00:00:05,10.0.0.5,vm\n")
        #expect(config.arguments.contains("--dhcp-range=set:subnet0,10.0.0.0,static,255.255.255.0,86400s"))
        #expect(config.arguments.contains("--dhcp-option=tag:subnet0,option:router"))
        #expect(config.arguments.contains("--dhcp-option-force=tag:subnet0,option:mtu,1450"))
        #expect(config.arguments.contains(
            "--dhcp-option-force=tag:subnet0,option:classless-static-route,169.254.169.254/32,10.0.0.2,192.168.0.0/16,10.0.0.9"))
    }

    @Test func dnsmasqAdvertisesIPv6PrefixesByMode() {
        let dhcp = DHCPWiring(networkID: "n", portID: "p", mac: "fa:16:3e:00:00:02", addresses: [], mtu: 1450,
                              subnets: [DHCPSubnet(id: "a", cidr: "10.0.0.0/24", version: 4, gateway: "10.0.0.1"),
                                        DHCPSubnet(id: "b", cidr: "fd00:1::/64", version: 6, gateway: "fd00:1::1", ipv6Mode: "slaac"),
                                        DHCPSubnet(id: "c", cidr: "fd00:2::/64", version: 6, gateway: nil, dnsServers: ["fd00:2::53"],
                                                   ipv6Mode: "dhcpv6-stateful"),
                                        DHCPSubnet(id: "d", cidr: "fd00:3::/64", version: 6, gateway: nil)],
                              hosts: [DHCPHost(mac: "FA:16:3E:00:00:05", address: "fd00:2::5", hostname: "vm")])
        let config = DnsmasqConfig(dhcp, directory: "/d")
        #expect(config.hostsFile == "fa:16:3e:00:00:05,[fd00:2::5],vm\n")
        #expect(config.arguments.contains("--enable-ra"))
        #expect(config.arguments.contains("--ra-param=ns-dhcp,60,0"))
        #expect(config.arguments.contains("--dhcp-range=set:subnet1,fd00:1::,ra-only,64"))
        #expect(config.arguments.contains("--dhcp-range=set:subnet2,fd00:2::,static,64,86400s"))
        #expect(config.arguments.contains("--dhcp-option=tag:subnet2,option6:dns-server,[fd00:2::53]"))
        // A subnet without a mode is left to a router outside.
        #expect(!config.arguments.contains { $0.contains("fd00:3::") })
        let v4Only = DnsmasqConfig(DHCPWiring(networkID: "n", portID: "p", mac: "m", addresses: [], mtu: 1500,
                                              subnets: [DHCPSubnet(id: "a", cidr: "10.0.0.0/24", version: 4, gateway: nil)], hosts: []),
                                   directory: "/d")
        #expect(!v4Only.arguments.contains("--enable-ra"))
    }

    @Test func routerAdvertisesItsSLAACLegs() {
        func leg(_ port: String, _ addresses: [FixedAddress]) -> RouterInterface {
            RouterInterface(portID: port, networkID: "n", mac: "m", addresses: addresses)
        }
        let router = RouterWiring(id: "r", gateway: nil, interfaces: [
            leg("a", [FixedAddress(address: "10.0.0.1", prefixLength: 24, subnetID: "s4", version: 4),
                      FixedAddress(address: "fd00:1:0:0:8000::1", prefixLength: 49, subnetID: "s6", version: 6, ipv6Mode: "slaac")]),
            leg("b", [FixedAddress(address: "fd00:2::1", prefixLength: 64, subnetID: "t6", version: 6, ipv6Mode: "dhcpv6-stateful")]),
        ])
        let config = DnsmasqConfig(routerAdvertisementsFor: router, directory: "/r")
        #expect(config?.arguments.contains("--interface=qr-a") == true)
        #expect(config?.arguments.contains("--ra-param=qr-a,30,1800") == true)
        #expect(config?.arguments.contains("--dhcp-range=fd00:1::,ra-only,49") == true, "\(config?.arguments ?? [])")
        #expect(config?.arguments.contains("--dhcp-range=fd00:2::,static,64") == true, "the M flag, no A")
        #expect(config?.arguments.contains("--dhcp-ignore=tag:!known") == true, "the router answers no DHCPv6")
        let v4Only = RouterWiring(id: "r", gateway: nil, interfaces: [leg("a", [FixedAddress(address: "10.0.0.1", prefixLength: 24, subnetID: "s", version: 4)])])
        #expect(DnsmasqConfig(routerAdvertisementsFor: v4Only, directory: "/r") == nil)
    }

    @Test func routerNATPutsFloatingIPsBeforeDefaultSNAT() {
        let router = RouterWiring(id: "r", gateway: RouterGateway(portID: "gw", networkID: "e", mac: "m",
                                                                   addresses: [FixedAddress(address: "172.24.4.10", prefixLength: 24, subnetID: "s", version: 4)],
                                                                   nextHop: "172.24.4.1"),
                                  interfaces: [], floatingIPs: [FloatingIPWiring(id: "f", floatingAddress: "172.24.4.20", fixedAddress: "10.0.0.5")])
        let text = RouterNAT.render(router)
        #expect(text.contains("ip daddr 172.24.4.20 dnat to 10.0.0.5"))
        let fip = text.range(of: "ip saddr 10.0.0.5 snat to 172.24.4.20")!, snat = text.range(of: "snat to 172.24.4.10")!
        #expect(fip.lowerBound < snat.lowerBound)
    }

    @Test func httpRequestLine() {
        #expect(HTTPRequestLine(Array("GET /latest/meta-data HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) == HTTPRequestLine(method: "GET", path: "/latest/meta-data"))
        #expect(HTTPRequestLine(Array("garbage\r\n\r\n".utf8)) == nil)
    }
}

@Test func inMemoryDataplaneWiresPortsOfPresentNetworks() async throws {
    let dataplane = InMemoryDataplane()
    let state = HostNetworkState(generation: 1, networks: [NetworkWiring(id: "n", networkType: "flat", segmentationID: nil, mtu: 1500)],
                                 ports: [PortWiring(id: "p", networkID: "n", mac: "m", fixedIPs: [], deviceID: "d"),
                                         PortWiring(id: "q", networkID: "other", mac: "m", fixedIPs: [], deviceID: "d")])
    #expect(try await dataplane.converge(state) == ["p"])
    await dataplane.teardownAll()
    #expect(await dataplane.state.ports.isEmpty)
}
