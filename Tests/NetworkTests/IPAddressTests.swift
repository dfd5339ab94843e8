import NimbusNetwork
import Testing

/// Address arithmetic the IPAM and validation rest on.
@Suite struct IPAddressTests {
    @Test func parsesAndFormats() {
        #expect(IPAddress("10.0.0.5")?.description == "10.0.0.5")
        #expect(IPAddress("10.0.0.256") == nil)
        #expect(IPAddress("10.0.0") == nil)
        #expect(IPAddress("FD00:0:0:0:0:0:0:1")?.description == "fd00::1")
        #expect(IPAddress("2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress("1::2::3") == nil)
    }

    @Test func cidrsNormaliseAndOverlap() {
        #expect(CIDR("10.0.0.5/24")?.description == "10.0.0.0/24")
        #expect(CIDR("10.0.0.0/33") == nil)
        #expect(CIDR("10.0.0.0/24")?.last.description == "10.0.0.255")
        #expect(CIDR("fd00:1::/64")?.last.description == "fd00:1::ffff:ffff:ffff:ffff")
        #expect(CIDR("10.0.0.0/24")!.overlaps(CIDR("10.0.0.128/25")!))
        #expect(!CIDR("10.0.0.0/25")!.overlaps(CIDR("10.0.0.128/25")!))
        #expect(IPRange(start: IPAddress("10.0.0.2")!, end: IPAddress("10.0.0.254")!).count == 253)
        #expect(IPAddress("10.0.0.255")!.advanced(by: 1).description == "10.0.1.0")
    }
}
