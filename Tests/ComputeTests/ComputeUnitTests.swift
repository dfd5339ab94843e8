import Testing

@testable import Agent
@testable import Compute
@testable import Hypervisor
import Foundation
import Logging

/// Compute's pure pieces: hostnames from display names, server status, microversion negotiation.
@Suite struct ComputeUnitTests {
    @Test(arguments: [
        ("web-1", "web-1"),
        ("My Server_01.example", "my-server-01-example"),
        ("  leading and trailing  ", "leading-and-trailing"),
        ("a -_. b", "a-b"),
        ("trailing-", "trailing"),
        ("ünïcode!", "ncode"),
        ("日本語", "server"),
        ("---", "server"),
        (String(repeating: "a", count: 70), String(repeating: "a", count: 63)),
        // Cut at 63 where a dash falls: a hostname must not end in one (RFC 1123).
        (String(repeating: "x", count: 62) + " tail", String(repeating: "x", count: 62)),
    ])
    func hostnameFromDisplayName(name: String, expected: String) {
        let hostname = ComputeService.hostname(from: name)
        #expect(hostname == expected)
        #expect(hostname.count <= 63)
        #expect(!hostname.hasPrefix("-") && !hostname.hasSuffix("-"))
    }

    @Test func serverStatusFollowsNova() {
        let cases: [(VMState, TaskState?, String)] = [
            (.building, nil, "BUILD"), (.building, .scheduling, "BUILD"), (.building, .spawning, "BUILD"),
            (.building, .deleting, "BUILD"),
            (.active, nil, "ACTIVE"), (.active, .rebooting, "REBOOT"), (.active, .rebootingHard, "HARD_REBOOT"),
            (.active, .rebuilding, "REBUILD"), (.active, .resizePrep, "RESIZE"), (.active, .poweringOff, "ACTIVE"),
            (.active, .deleting, "ACTIVE"),
            (.stopped, nil, "SHUTOFF"), (.stopped, .poweringOn, "SHUTOFF"), (.stopped, .resizePrep, "RESIZE"),
            (.stopped, .rebootingHard, "HARD_REBOOT"),
            (.paused, nil, "PAUSED"), (.paused, .unpausing, "PAUSED"),
            (.suspended, nil, "SUSPENDED"), (.suspended, .resuming, "SUSPENDED"),
            (.resized, nil, "VERIFY_RESIZE"), (.resized, .resizeReverting, "REVERT_RESIZE"),
            (.error, nil, "ERROR"), (.error, .rebuilding, "REBUILD"), (.error, .deleting, "ERROR"),
            (.deleted, nil, "DELETED"),
        ]
        for (vm, task, status) in cases {
            #expect(ServerStatus.of(vmState: vm, taskState: task) == status, "\(vm) / \(task?.rawValue ?? "none")")
        }
    }

    /// The minor version negotiated, or which failure.
    static func negotiated(_ openStack: String?, _ nova: String? = nil) -> String {
        switch ComputeVersion.negotiate(openStack: openStack, nova: nova) {
        case .success(let version): version.description
        case .failure(.invalid): "invalid"
        case .failure(.unsupported): "unsupported"
        }
    }

    @Test func microversionNegotiation() {
        #expect(ComputeVersion.maximum == 79)
        #expect(Self.negotiated(nil) == "2.1", "no header means the base version")
        #expect(Self.negotiated("compute 2.79") == "2.79")
        #expect(Self.negotiated("compute latest") == "2.79")
        #expect(Self.negotiated("compute LATEST") == "2.79")
        #expect(Self.negotiated("Compute 2.47") == "2.47")
        #expect(Self.negotiated("volume 3.5, compute 2.60") == "2.60")
        #expect(Self.negotiated("placement 1.10") == "2.1", "another service's version is not ours")
        #expect(Self.negotiated(nil, "2.10") == "2.10")
        #expect(Self.negotiated("compute 2.20", "2.10") == "2.20", "the OpenStack header wins")
        #expect(Self.negotiated("compute 2.80") == "unsupported")
        #expect(Self.negotiated("compute 2.200") == "unsupported")
        #expect(Self.negotiated("compute 2.0") == "unsupported")
        #expect(Self.negotiated("compute 3.0") == "unsupported")
        #expect(Self.negotiated("compute 2") == "invalid")
        #expect(Self.negotiated("compute 2.x") == "invalid")
        #expect(Self.negotiated("compute 2.1.1") == "invalid")
        #expect(Self.negotiated(nil, "garbage") == "invalid")
    }
}

@Suite struct AgentDeadlineTests {
    @Test func hungOperationFailsAtItsDeadline() async throws {
        let started = ContinuousClock.now
        await #expect(throws: HypervisorError.self) {
            try await ComputeAgent.withDeadline(.milliseconds(100), what: "spawn") {
                try? await Task.sleep(for: .seconds(30))
                return 1
            }
        }
        // Far below the 30 s sleep, with room for a test host whose two cores are busy.
        #expect(ContinuousClock.now - started < .seconds(20))
        let value = try await ComputeAgent.withDeadline(.seconds(5), what: "spawn") { 7 }
        #expect(value == 7)
    }
}

/// A running guest's console is capped in place: QEMU keeps appending to the same open file.
@Suite struct ConsoleCapTests {
    struct NoImages: ImageSource {
        func imageFile(_ id: String) async throws -> ImageFile { throw HypervisorError("no images here") }
    }

    @Test func capKeepsTheTailAndQEMUsAppendsLand() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("console-cap-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = QEMUDriver.Configuration(directory: directory)
        configuration.consoleLimit = 64 << 10
        let driver = QEMUDriver(configuration: configuration, images: NoImages(), logger: Logger(label: "test"))
        let uuid = UUID().uuidString.lowercased()
        let log = await driver.consoleLog(uuid)
        try FileManager.default.createDirectory(at: log.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Opened as QEMU's file chardev opens it with append=on.
        let writer = open(log.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        #expect(writer >= 0)
        defer { close(writer) }
        var written = ""
        for line in 0..<20000 { written += "line \(line)\n" }
        _ = written.withCString { write(writer, $0, strlen($0)) }
        let before = try Data(contentsOf: log).count
        #expect(before > 64 << 10)

        await driver.capConsole(uuid)
        let capped = try Data(contentsOf: log)
        #expect(capped.count <= 64 << 10)
        #expect(capped.count >= 32 << 10 - 4096)
        #expect(String(decoding: capped, as: UTF8.self).hasSuffix("line 19999\n"))
        #expect(!String(decoding: capped, as: UTF8.self).contains("line 0\n"))

        _ = "after the cap\n".withCString { write(writer, $0, strlen($0)) }
        let after = try Data(contentsOf: log)
        #expect(after.count == capped.count + 14)
        #expect(String(decoding: after, as: UTF8.self).hasSuffix("line 19999\nafter the cap\n"))

        // Under the limit nothing changes.
        await driver.capConsole(uuid)
        #expect(try Data(contentsOf: log) == after)
    }
}

/// `spec.json` is how a host finds its guests again after a restart.
@Suite struct GuestSpecFileTests {
    @Test func savedSpecComesBackWholeAndOlderSpecsHaveNoNICs() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("spec-file-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let driver = QEMUDriver(configuration: QEMUDriver.Configuration(directory: directory),
                                images: ConsoleCapTests.NoImages(), logger: Logger(label: "test"))
        let spec = GuestSpec(uuid: UUID().uuidString.lowercased(), name: "a", hostname: "a", vcpus: 2, memoryMB: 256, rootGB: 1,
                             ephemeralGB: 1, swapMB: 16, imageID: "image", userData: "#!/bin/sh", metadata: ["k": "v"],
                             publicKeys: ["key": "ssh-ed25519 AAAA"], extraSpecs: ["hw:cpu_policy": "shared"], projectID: "p",
                             availabilityZone: "az", launchIndex: 3, imageProperties: ["kernel_id": "k"],
                             nics: [GuestNIC(portID: "port", mac: "fa:16:3e:00:00:01", tap: "tap0", mtu: 1450, networkID: "net")])
        let folder = await driver.folder(spec.uuid)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try await driver.save(spec)
        #expect(try await driver.loadSpec(spec.uuid) == spec)

        // As a Nimbus from before networking wrote it.
        let file = await driver.specFile(spec.uuid)
        var fields = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
        fields["nics"] = nil
        try JSONSerialization.data(withJSONObject: fields).write(to: file)
        var withoutNICs = spec
        withoutNICs.nics = []
        #expect(try await driver.loadSpec(spec.uuid) == withoutNICs)
    }
}
