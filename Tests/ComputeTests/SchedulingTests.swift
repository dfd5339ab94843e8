import Foundation
import NimbusCore
import NimbusTesting
import Testing

/// Where servers land when hosts fail, fill up, go down, or a group forbids them.
@Suite struct SchedulingTests {
    @Test func failedBuildIsRescheduledToAnotherHost() async throws {
        try await TestCloud.with(configure: {
            $0.localHosts?.count = 2
            $0.localHosts?.failingHosts = ["fake-0"]
        }) { session in
            let f = try await ComputeFixture.make(session)
            let id = try await f.bootID("retry")
            let server = try await f.waitForStatus(id, "ACTIVE")
            #expect(server["fault"] == nil)
            #expect(try await f.host(of: id) == "fake-1")

            // Equal hosts are tried by name, so fake-0 came first and failed.
            let builds = try await f.events(id, action: "create").filter { $0["event"] == "compute__do_build_and_run_instance" }
            #expect(builds.compactMap { $0["result"]?.stringValue } == ["Error", "Success"])
            #expect(builds.first?["host"] == "fake-0")
            #expect(builds.first?["traceback"]?.stringValue?.contains("injected failure") == true)
            #expect(builds.last?["host"] == "fake-1")

            let held = try await f.allocations(id)
            #expect(held?.count == 1, "only the host it runs on holds resources")
            // At 2.53+ a hypervisor's id is its resource provider's uuid.
            let providers = try await f.get("/os-hypervisors", token: f.admin).body?["hypervisors"]?.arrayValue ?? []
            #expect(providers.first { $0["hypervisor_hostname"] == "fake-1" }?["id"]?.stringValue == held?.keys.first)
        }
    }

    @Test func buildFailingEverywhereEndsInErrorAfterMaxAttempts() async throws {
        try await TestCloud.with(configure: {
            $0.localHosts?.count = 3
            $0.localHosts?.failingHosts = ["fake-0", "fake-1", "fake-2"]
            $0.maxBuildAttempts = 2
        }) { session in
            let f = try await ComputeFixture.make(session)
            let id = try await f.bootID("doomed")
            let server = try await f.waitForStatus(id, "ERROR")
            #expect(server["fault"]?["code"] == 500)
            let message = server["fault"]?["message"]?.stringValue ?? ""
            #expect(message.hasPrefix(
                "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance \(id). Last failure on fake-"))
            #expect(message.contains("injected failure"), "the fault names the cause")
            #expect(server["fault"]?["details"] == nil, "details are for admins")
            #expect(try await f.server(id, token: f.admin)?["fault"]?["details"]?.stringValue?.isEmpty == false)
            try await f.waitForNoAllocations(id)

            // Two attempts on two hosts, then no third although a third host was left.
            let builds = try await f.events(id, action: "create").filter { $0["event"] == "compute__do_build_and_run_instance" }
            #expect(builds.compactMap { $0["result"]?.stringValue } == ["Error", "Error"])
            #expect(Set(builds.compactMap { $0["host"]?.stringValue }) == ["fake-0", "fake-1"])

            // An ERROR server still deletes, and counts no more.
            #expect(try await f.delete("/servers/\(id)").status == 204)
            try await f.waitUntil("failed server deleted") { try await f.get("/servers/\(id)").status == 404 }
        }
    }

    @Test func antiAffinityGroupSpreadsThenRefuses() async throws {
        try await TestCloud.with(configure: { $0.localHosts?.count = 2 }) { session in
            let f = try await ComputeFixture.make(session)
            let created = try await f.post("/os-server-groups", json: ["server_group": ["name": "apart", "policy": "anti-affinity"]])
            #expect(created.status == 200, "\(created.text)")
            let group = try #require(created.body?["server_group"]?["id"]?.stringValue)
            let hints: JSONValue = ["group": .string(group)]

            let first = try await f.bootID("apart-1", hints: hints)
            let second = try await f.bootID("apart-2", hints: hints)
            let one = try await f.waitForStatus(first, "ACTIVE")
            let two = try await f.waitForStatus(second, "ACTIVE")
            #expect(one["hostId"] != two["hostId"])
            let hosts = [try await f.host(of: first), try await f.host(of: second)]
            #expect(Set(hosts.compactMap { $0 }) == ["fake-0", "fake-1"])

            let third = try await f.bootID("apart-3", hints: hints)
            let refused = try await f.waitForStatus(third, "ERROR")
            #expect(refused["fault"]?["message"]?.stringValue?.hasPrefix("No valid host was found") == true,
                    "\(refused["fault"]?.serialized() ?? "no fault")")
            #expect(try await f.allocations(third) == nil)
            #expect(try await f.host(of: third) == nil)

            let members = try await f.get("/os-server-groups/\(group)").body?["server_group"]?["members"]?.arrayValue ?? []
            #expect(Set(members.compactMap(\.stringValue)) == [first, second, third])
        }
    }

    @Test func downHostDeletesLocallyAndIsAvoided() async throws {
        try await TestCloud.with(configure: {
            $0.localHosts?.count = 2
            $0.serviceDownTime = 2
            // Heartbeats well inside the down time, so only the forced host is ever down.
            $0.localHosts?.heartbeatInterval = .milliseconds(200)
        }) { session in
            let f = try await ComputeFixture.make(session)
            let victim = try await f.bootID("on-doomed-host")
            try await f.waitForStatus(victim, "ACTIVE")
            let downHost = try #require(try await f.host(of: victim))
            let otherHost = downHost == "fake-0" ? "fake-1" : "fake-0"

            let services = try await f.get("/os-services?binary=nova-compute", token: f.admin).body?["services"]?.arrayValue ?? []
            let serviceID = try #require(services.first { $0["host"] == .string(downHost) }?["id"]?.stringValue)
            #expect(try await f.put("/os-services/\(serviceID)", token: f.admin, json: ["forced_down": true], version: "2.52").status == 404,
                    "forcing down by id needs 2.53")
            let forced = try await f.put("/os-services/\(serviceID)", token: f.admin, json: ["forced_down": true])
            #expect(forced.status == 200, "\(forced.text)")
            #expect(forced.body?["service"]?["forced_down"] == true)
            #expect(forced.body?["service"]?["state"] == "down")
            #expect(try await f.server(victim, token: f.admin)?["host_status"] == "DOWN")

            // Past the down time the healthy host is still up: its heartbeats count.
            try await Task.sleep(for: .milliseconds(2500))
            let states = try await f.get("/os-services?binary=nova-compute", token: f.admin).body?["services"]?.arrayValue ?? []
            #expect(states.first { $0["host"] == .string(otherHost) }?["state"] == "up")
            #expect(states.first { $0["host"] == .string(downHost) }?["state"] == "down")

            // Nobody will answer on the down host: the delete completes before the reply.
            #expect(try await f.delete("/servers/\(victim)").status == 204)
            #expect(try await f.get("/servers/\(victim)").status == 404)
            #expect(try await f.allocations(victim) == nil)

            let fresh = [try await f.bootID("avoid-1"), try await f.bootID("avoid-2")]
            for id in fresh {
                try await f.waitForStatus(id, "ACTIVE")
                #expect(try await f.host(of: id) == otherHost)
            }
        }
    }
}
