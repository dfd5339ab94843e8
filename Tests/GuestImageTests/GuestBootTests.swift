import Foundation
import Testing
@testable import GuestImage

#if canImport(Glibc)
import Glibc
#endif

/// Boots the real guest under QEMU TCG, both as the qcow2 disk and as kernel + ramdisk, and checks
/// what the cloud relies on: config drive → hostname, uuid and user data on the console, a DHCP
/// lease, and power-off on the ACPI button.
///
/// Builds the guest once per test process (needs root), or reuses `NIMBUS_GUEST_DIR` when it
/// holds the artifacts (then root is not needed).
@Suite(.serialized, .enabled(if: GuestFixture.canRun, "needs qemu-system-x86_64, qemu-img, genisoimage, and root or NIMBUS_GUEST_DIR"))
struct GuestBootTests {
    @Test func qcow2DiskBootsReadsConfigDriveAndPowersOff() async throws {
        let artifacts = try await GuestFixture.artifacts.value
        let vm = try GuestVM()
        defer { vm.stop() }
        let uuid = UUID().uuidString.lowercased()
        // Decoys first: nested members named like the ones the guest reads must not win.
        let metadata = #"{"keys": [{"name": "decoy-key", "type": "ssh"}], "meta": {"hostname": "decoy"}, "uuid": "\#(uuid)", "name": "Disk Test", "hostname": "nimbus-disk-test"}"#
        let token = "#cloud-config disk-\(UUID().uuidString)"
        let configDrive = try await vm.makeConfigDrive(metadata: metadata, userData: token + "\nruncmd: []\n")
        let overlay = vm.directory.appendingPathComponent("root.qcow2")
        try await Command("qemu-img", ["create", "-q", "-f", "qcow2", "-b", artifacts.disk.path, "-F", "qcow2", overlay.path]).run()

        try vm.start([
            "-drive", "file=\(overlay.path),if=virtio,format=qcow2",
            "-drive", "file=\(configDrive.path),if=virtio,format=raw,readonly=on",
        ])
        let boot = try await vm.waitForMarker(timeout: .seconds(60))
        #expect(boot.hostname == "nimbus-disk-test")
        #expect(boot.uuid == uuid)
        #expect(boot.ip != "none")
        #expect(boot.userData == token)
        print("qcow2 boot: marker after \(boot.elapsed), ip \(boot.ip)")

        let poweroff = try await vm.powerDown(timeout: .seconds(30))
        #expect(vm.exitStatus == 0)
        print("qcow2 boot: QEMU exited \(poweroff) after system_powerdown")
    }

    @Test func kernelAndRamdiskBootWithCdromConfigDrive() async throws {
        let artifacts = try await GuestFixture.artifacts.value
        let vm = try GuestVM()
        defer { vm.stop() }
        let uuid = UUID().uuidString.lowercased()
        // No `hostname`: the guest falls back to `name`, made into a valid hostname.
        let metadata = #"{"uuid": "\#(uuid)", "name": "Kernel Boot_Test"}"#
        let token = "kernel-\(UUID().uuidString)"
        let configDrive = try await vm.makeConfigDrive(metadata: metadata, userData: token)

        // The config drive as an IDE cdrom (Nova's default), which makes the guest load its ATA drivers.
        try vm.start([
            "-kernel", artifacts.kernel.path, "-initrd", artifacts.ramdisk.path,
            "-append", artifacts.kernelCommandLine,
            "-drive", "file=\(configDrive.path),media=cdrom,if=ide,readonly=on",
        ])
        let boot = try await vm.waitForMarker(timeout: .seconds(60))
        #expect(boot.hostname == "kernel-boot-test")
        #expect(boot.uuid == uuid)
        #expect(boot.ip != "none")
        #expect(boot.userData == token)
        print("kernel+initrd boot: marker after \(boot.elapsed), ip \(boot.ip)")

        let poweroff = try await vm.powerDown(timeout: .seconds(30))
        #expect(vm.exitStatus == 0)
        print("kernel+initrd boot: QEMU exited \(poweroff) after system_powerdown")
    }
}

@Suite struct DebianPackageParsingTests {
    @Test func versionsSortLikeDpkg() {
        let ordered = ["6.1.176-1", "6.1.192-2", "6.12.117-1~deb12u1", "6.12.117-1", "1:0.1"]
        for (lower, higher) in zip(ordered, ordered.dropFirst()) {
            #expect(DebianVersion(lower) < DebianVersion(higher), "\(lower) < \(higher)")
        }
        #expect(DebianVersion("1.0~rc1") < DebianVersion("1.0"))
        #expect(DebianVersion("1.0") == DebianVersion("1.00"))
        #expect(DebianVersion("1.0a") > DebianVersion("1.0"))
        #expect(DebianVersion("1.0+b1") > DebianVersion("1.0a"))
    }

    @Test func aptCacheStanzasGiveNameAndVersion() {
        let stanzas = """
        Package: linux-image-6.1.0-56-cloud-amd64-unsigned
        Source: linux
        Version: 6.1.192-2
        Description: Linux 6.1 for x86-64 cloud
         Version: not a field

        Package: linux-image-6.12.117+deb12-cloud-amd64-unsigned
        Version: 6.12.117-1~deb12u1

        """
        let packages = KernelPackage.parse(stanzas: stanzas)
        #expect(packages.map(\.name) == ["linux-image-6.1.0-56-cloud-amd64-unsigned", "linux-image-6.12.117+deb12-cloud-amd64-unsigned"])
        #expect(packages.map(\.release) == ["6.1.0-56-cloud-amd64", "6.12.117+deb12-cloud-amd64"])
        #expect(packages.max(by: { $0.version < $1.version })?.release == "6.12.117+deb12-cloud-amd64")
    }
}

/// The guest artifacts for this test process: `NIMBUS_GUEST_DIR` if it holds them, else built
/// once (into NIMBUS_GUEST_DIR, or a fixed temp directory so reruns replace rather than pile up).
enum GuestFixture {
    static let reuseDirectory = ProcessInfo.processInfo.environment["NIMBUS_GUEST_DIR"].map { URL(fileURLWithPath: $0) }

    /// In CI (`make test` installs the tools) the boot tests always run: a missing tool is a failure there, not a skip.
    static var canRun: Bool {
        if ProcessInfo.processInfo.environment["CI"] != nil { return true }
        let tools = ["qemu-system-x86_64", "qemu-img", "genisoimage"].allSatisfy { (try? Command.locate($0)) != nil }
        return tools && (geteuid() == 0 || reuseDirectory.flatMap(GuestImageArtifacts.existing(in:)) != nil)
    }

    static let artifacts = Task<GuestImageArtifacts, any Error> {
        if let found = reuseDirectory.flatMap(GuestImageArtifacts.existing(in:)) { return found }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-guest-test")
        let output = reuseDirectory ?? base.appendingPathComponent("out")
        let started = ContinuousClock.now
        let built = try await GuestImageBuilder(workDirectory: base.appendingPathComponent("cache")).build(into: output)
        print("guest image built in \(ContinuousClock.now - started) (\(built.kernelRelease))")
        return built
    }
}

/// One QEMU process under test: TCG (nested KVM hangs on our hosts), 256 MiB, a user-mode NIC
/// (QEMU's internal slirp DHCP hands out 10.0.2.15; no host network involved), the serial
/// console in a file and QMP on a unix socket, all in a private directory.
final class GuestVM {
    struct Boot {
        let hostname: String
        let uuid: String
        let ip: String
        let userData: String
        let elapsed: Duration
    }

    let directory: URL
    private let process = Process()
    private var started = ContinuousClock.now
    var serialLog: URL { directory.appendingPathComponent("serial.log") }
    var qmpSocket: URL { directory.appendingPathComponent("qmp.sock") }
    var qemuLog: URL { directory.appendingPathComponent("qemu.log") }

    init() throws {
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("nimbus-boot-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// An OpenStack config drive: ISO 9660 + Joliet + Rock Ridge labelled `config-2` (genisoimage
    /// arguments from FACTS.md; its ISO-9660 conformance warning is harmless).
    func makeConfigDrive(metadata: String, userData: String) async throws -> URL {
        let root = directory.appendingPathComponent("config-drive")
        let latest = root.appendingPathComponent("openstack/latest")
        try FileManager.default.createDirectory(at: latest, withIntermediateDirectories: true)
        try Data(metadata.utf8).write(to: latest.appendingPathComponent("meta_data.json"))
        try Data(userData.utf8).write(to: latest.appendingPathComponent("user_data"))
        let iso = directory.appendingPathComponent("config.iso")
        try await Command("genisoimage", [
            "-o", iso.path, "-ldots", "-allow-lowercase", "-allow-multidot", "-l", "-quiet", "-J", "-r", "-V", "config-2", root.path,
        ]).run()
        return iso
    }

    func start(_ arguments: [String]) throws {
        process.executableURL = try Command.locate("qemu-system-x86_64")
        process.arguments = [
            "-accel", "tcg", "-m", "256", "-smp", "1", "-nodefaults", "-display", "none", "-no-reboot",
            "-serial", "file:\(serialLog.path)",
            "-qmp", "unix:\(qmpSocket.path),server=on,wait=off",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
        ] + arguments
        _ = FileManager.default.createFile(atPath: qemuLog.path, contents: nil)
        let log = try FileHandle(forWritingTo: qemuLog)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        started = .now
        try process.run()
    }

    /// Polls the serial log until the marker line and the user data line after it are complete.
    func waitForMarker(timeout: Duration) async throws -> Boot {
        let deadline = started + timeout
        while ContinuousClock.now < deadline {
            if let boot = Self.parse(console(), elapsed: .now - started) { return boot }
            guard process.isRunning else { throw failure("QEMU exited before the marker line") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw failure("no NIMBUS-GUEST marker within \(timeout)")
    }

    static func parse(_ console: String, elapsed: Duration) -> Boot? {
        // The serial line discipline ends lines with "\r\n", a single Character in Swift.
        let lines = console.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        // Both lines must be terminated (a line follows them), not still being written.
        guard let index = lines.firstIndex(where: { $0.hasPrefix("NIMBUS-GUEST ") }), index + 2 < lines.count,
              lines[index + 1].hasPrefix("NIMBUS-USERDATA ") else { return nil }
        var fields: [String: String] = [:]
        for word in lines[index].split(separator: " ").dropFirst() {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let hostname = fields["hostname"], let uuid = fields["uuid"], let ip = fields["ip"] else { return nil }
        let userData = String(lines[index + 1].dropFirst("NIMBUS-USERDATA ".count))
        return Boot(hostname: hostname, uuid: uuid, ip: ip, userData: userData, elapsed: elapsed)
    }

    /// ACPI power button through QMP; returns how long QEMU took to exit.
    func powerDown(timeout: Duration) async throws -> Duration {
        let qmp = try QMPConnection(path: qmpSocket.path)
        defer { qmp.close() }
        _ = try qmp.readMessage()  // greeting
        _ = try qmp.execute("qmp_capabilities")
        let sent = ContinuousClock.now
        _ = try qmp.execute("system_powerdown")
        while process.isRunning, ContinuousClock.now < sent + timeout {
            try await Task.sleep(for: .milliseconds(50))
        }
        guard !process.isRunning else { throw failure("QEMU still running \(timeout) after system_powerdown") }
        return .now - sent
    }

    var exitStatus: Int32? {
        process.isRunning || process.terminationReason != .exit ? nil : process.terminationStatus
    }

    /// Kills QEMU if it still runs and removes the directory; safe to call more than once.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    private func console() -> String {
        String(decoding: FileManager.default.contents(atPath: serialLog.path) ?? Data(), as: UTF8.self)
    }

    private func failure(_ message: String) -> some Error {
        let tail = console().split(whereSeparator: \.isNewline).suffix(25).joined(separator: "\n")
        let qemu = String(decoding: FileManager.default.contents(atPath: qemuLog.path) ?? Data(), as: UTF8.self)
        return GuestVMError(description: "\(message)\n--- serial (tail) ---\n\(tail)\n--- qemu ---\n\(qemu)")
    }
}

struct GuestVMError: Error, CustomStringConvertible {
    let description: String
}

/// The least QMP needed here: one JSON message per line over a unix socket, replies matched by
/// skipping the asynchronous events that may arrive first (POWERDOWN comes before the reply).
struct QMPConnection {
    private let descriptor: Int32

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw GuestVMError(description: "socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)  // a silent QEMU fails the test instead of hanging it
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8CString)
        guard bytes.count <= MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(descriptor)
            throw GuestVMError(description: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in bytes.withUnsafeBytes { raw.copyMemory(from: $0) } }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            throw GuestVMError(description: "connect \(path): \(reason)")
        }
    }

    func execute(_ command: String) throws -> String {
        let line = Array(#"{"execute": "\#(command)"}"#.utf8) + [0x0A]
        guard line.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == line.count else {
            throw GuestVMError(description: "QMP write failed: \(String(cString: strerror(errno)))")
        }
        while true {
            let message = try readMessage()
            if message.contains("\"return\"") { return message }
            if message.contains("\"error\"") { throw GuestVMError(description: "QMP \(command): \(message)") }
        }
    }

    func readMessage() throws -> String {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            guard read(descriptor, &byte, 1) == 1 else { throw GuestVMError(description: "QMP connection closed or timed out") }
            if byte == 0x0A { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
    }

    func close() {
        Glibc.close(descriptor)
    }
}
