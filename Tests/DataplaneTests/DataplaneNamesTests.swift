import Testing
@testable import Dataplane

@Test func namesFitInterfaceNameLimit() {
    let id = "5f3c2a9e-1b7d-4c8e-9f0a-123456789abc"
    for name in [DataplaneNames.bridge(network: id), DataplaneNames.tap(port: id), DataplaneNames.vxlan(network: id),
                 DataplaneNames.dhcpVeth(network: id), DataplaneNames.routerVeth(port: id)] {
        #expect(name.count == 15)
    }
    #expect(DataplaneNames.tap(port: id) == "ntp-5f3c2a9e1b7")
}
