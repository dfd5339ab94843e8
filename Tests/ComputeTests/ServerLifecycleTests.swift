import Foundation
import NimbusCore
import NimbusTesting
import Testing

/// Servers booted, operated and deleted through the API, with the scheduler and a fake host's
/// agent running in-process.
@Suite struct ServerLifecycleTests {
    @Test func bootGoesActiveAndDeleteReleasesEverything() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let id = try await f.bootID("web-1")
            let server = try await f.waitForStatus(id, "ACTIVE")
            #expect(server["OS-EXT-STS:vm_state"] == "active")
            #expect(server["OS-EXT-STS:power_state"] == 1)
            #expect(server["OS-EXT-SRV-ATTR:host"] == nil, "host names are for admins only")
            #expect(server["OS-SRV-USG:launched_at"]?.stringValue != nil)
            #expect(server["flavor"]?["original_name"] == "m1.nano")

            let asAdmin = try await f.server(id, token: f.admin)
            #expect(asAdmin?["OS-EXT-SRV-ATTR:host"] == "fake-0")
            #expect(asAdmin?["OS-EXT-SRV-ATTR:hostname"] == "web-1")
            #expect(asAdmin?["host_status"] == "UP")

            let held = try await f.allocations(id)
            #expect(held?.count == 1)
            #expect(held?.values.first == ["VCPU": 1, "MEMORY_MB": 128, "DISK_GB": 1])

            let actions = try await f.get("/servers/\(id)/os-instance-actions").body?["instanceActions"]?.arrayValue ?? []
            #expect(actions.compactMap { $0["action"]?.stringValue } == ["create"])
            let events = try await f.events(id, action: "create")
            let build = events.first { $0["event"] == "compute__do_build_and_run_instance" }
            #expect(build?["result"] == "Success")
            #expect(build?["host"] == "fake-0")
            #expect(events.contains { $0["event"] == "conductor_schedule_and_build_instances" && $0["result"] == "Success" })

            let deleted = try await f.delete("/servers/\(id)")
            #expect(deleted.status == 204)
            try await f.waitUntil("server \(id) is gone") { try await f.get("/servers/\(id)").status == 404 }
            let gone = try await f.get("/servers/\(id)")
            #expect(gone.body?["itemNotFound"]?["message"] == .string("Instance \(id) could not be found."))
            try await f.waitForNoAllocations(id)
            #expect(try await f.serverCount() == 0)
        }
    }

    @Test func deleteDuringBuildAlwaysCompletes() async throws {
        // A slow hypervisor, so the delete lands while the agent is still spawning.
        try await TestCloud.with(configure: { $0.localHosts?.fake.latency = .milliseconds(400) }) { session in
            let f = try await ComputeFixture.make(session)
            let spawning = try await f.bootID("mid-build")
            try await f.waitUntil("mid-build is spawning on its host") {
                try await f.server(spawning, token: f.admin)?["OS-EXT-STS:task_state"] == "spawning"
            }
            // And one deleted straight away, in whatever state the scheduler has it.
            let immediate = try await f.bootID("at-once")
            #expect(try await f.delete("/servers/\(immediate)").status == 204)
            #expect(try await f.delete("/servers/\(spawning)").status == 204)
            for id in [spawning, immediate] {
                try await f.waitUntil("\(id) deleted") { try await f.get("/servers/\(id)").status == 404 }
                try await f.waitForNoAllocations(id)
            }
            // The spawn that finished after the delete must not bring the server back.
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await f.get("/servers/\(spawning)").status == 404)
            #expect(try await f.serverCount() == 0)
            let usage = try await session.cloud.placement.allocations(consumer: spawning)
            #expect(usage == nil)
        }
    }

    @Test func powerActionsAndWrongState() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let id = try await f.bootID("ops")
            try await f.waitForStatus(id, "ACTIVE")

            let wrong = try await f.action(id, ["unpause": nil])
            #expect(wrong.status == 409)
            #expect(wrong.body?["conflictingRequest"]?["message"] == .string("Cannot 'unpause' instance \(id) while it is in vm_state active"))

            // Each action, the status it settles in and the power the fake hypervisor reports then.
            let steps: [(JSONValue, String, Int64)] = [
                (["os-stop": nil], "SHUTOFF", 4), (["os-start": nil], "ACTIVE", 1),
                (["pause": nil], "PAUSED", 3), (["unpause": nil], "ACTIVE", 1),
                (["suspend": nil], "SUSPENDED", 7), (["resume": nil], "ACTIVE", 1),
                (["reboot": ["type": "SOFT"]], "ACTIVE", 1), (["reboot": ["type": "HARD"]], "ACTIVE", 1),
            ]
            for (body, status, power) in steps {
                let reply = try await f.action(id, body)
                #expect(reply.status == 202, "\(body.serialized()): \(reply.text)")
                let server = try await f.waitForStatus(id, status)
                #expect(server["OS-EXT-STS:power_state"] == .int(power), "\(body.serialized())")
            }
            let started = try await f.action(id, ["os-start": nil])
            #expect(started.status == 409, "starting an active server is a wrong state")

            let names = try await f.get("/servers/\(id)/os-instance-actions").body?["instanceActions"]?.arrayValue?
                .compactMap { $0["action"]?.stringValue } ?? []
            for name in ["create", "stop", "start", "pause", "unpause", "suspend", "resume", "reboot"] {
                #expect(names.contains(name), "instance action \(name) recorded")
            }
            // The refused unpause and start above left no action behind.
            #expect(names.filter { $0 == "unpause" }.count == 1)
            #expect(names.filter { $0 == "start" }.count == 1)
        }
    }

    @Test func resizeRevertAndConfirm() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let id = try await f.bootID("grow")
            try await f.waitForStatus(id, "ACTIVE")

            #expect(try await f.action(id, ["resize": ["flavorRef": "42"]]).status == 400, "resizing to the same flavor")
            #expect(try await f.action(id, ["resize": ["flavorRef": "84"]]).status == 202)
            var server = try await f.waitForStatus(id, "VERIFY_RESIZE")
            #expect(server["flavor"]?["original_name"] == "m1.micro")
            #expect(try await f.allocations(id)?.values.first?["MEMORY_MB"] == 192)

            #expect(try await f.action(id, ["revertResize": nil]).status == 202)
            server = try await f.waitForStatus(id, "ACTIVE")
            #expect(server["flavor"]?["original_name"] == "m1.nano")
            #expect(server["flavor"]?["ram"] == 128)
            #expect(try await f.allocations(id)?.values.first?["MEMORY_MB"] == 128)

            #expect(try await f.action(id, ["resize": ["flavorRef": "84"]]).status == 202)
            try await f.waitForStatus(id, "VERIFY_RESIZE")
            #expect(try await f.action(id, ["confirmResize": nil]).status == 204)
            server = try await f.waitForStatus(id, "ACTIVE")
            #expect(server["flavor"]?["original_name"] == "m1.micro")
            #expect(try await f.allocations(id)?.values.first?["MEMORY_MB"] == 192)
            #expect(try await f.action(id, ["revertResize": nil]).status == 409, "nothing left to revert")
        }
    }

    @Test func lockedServerRefusesItsOwnerButNotAnAdmin() async throws {
        try await TestCloud.with { session in
            let f = try await ComputeFixture.make(session)
            let id = try await f.bootID("locked")
            try await f.waitForStatus(id, "ACTIVE")
            #expect(try await f.action(id, ["lock": ["locked_reason": "maintenance"]]).status == 202)
            let server = try await f.server(id)
            #expect(server?["locked"] == true)
            #expect(server?["locked_reason"] == "maintenance")

            let refused = try await f.delete("/servers/\(id)")
            #expect(refused.status == 409)
            #expect(refused.body?["conflictingRequest"]?["message"] == .string("Instance \(id) is locked"))
            #expect(try await f.action(id, ["os-stop": nil]).status == 409)
            #expect(try await f.server(id)?["status"] == "ACTIVE", "a refused delete leaves the server as it was")

            #expect(try await f.delete("/servers/\(id)", token: f.admin).status == 204, "admins override locks")
            try await f.waitUntil("locked server deleted by admin") { try await f.get("/servers/\(id)").status == 404 }
            try await f.waitForNoAllocations(id)
        }
    }
}
