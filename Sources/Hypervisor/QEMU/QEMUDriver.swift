import Crypto
import Foundation
import Logging
import NimbusCore
#if canImport(Glibc)
import Glibc
#endif

/// Where a driver gets image data: a local file it may read (the Image service's store, or a
/// download), with the format and md5 the Image service recorded.
public struct ImageFile: Sendable {
    public var path: URL
    public var diskFormat: String
    public var checksum: String?
    /// A download made for the driver alone: it may move the file instead of copying it.
    public var disposable: Bool

    public init(path: URL, diskFormat: String, checksum: String?, disposable: Bool = false) {
        self.disposable = disposable
        self.path = path
        self.diskFormat = diskFormat
        self.checksum = checksum
    }
}

public protocol ImageSource: Sendable {
    func imageFile(_ id: String) async throws -> ImageFile
}

/// Real virtual machines: QEMU started directly (no libvirt), one daemonized process per guest,
/// controlled over QMP. Everything about a guest lives in `instances/<uuid>/` (disk overlay,
/// config drive, console log, QMP socket, pid file, the spec it was started with), so a
/// restarted agent finds its guests again from the disk alone, and QEMU outlives the agent.
public actor QEMUDriver: HypervisorDriver {
    public struct Configuration: Sendable {
        /// Holds `instances/` and `_base/` (one cached base per image).
        public var directory: URL
        /// "kvm", "tcg", or "auto" (KVM when a probe shows it works, as nested KVM often does not).
        public var accelerator = "auto"
        /// How long a guest gets to power off on ACPI before it is stopped hard.
        public var shutdownTimeout: Duration = .seconds(15)
        /// Console log kept per guest; older output is cut when it grows past this.
        public var consoleLimit = 1 << 20
        public var vcpus = ProcessInfo.processInfo.activeProcessorCount
        public var memoryMB = Int(ProcessInfo.processInfo.physicalMemory >> 20)
        public var diskGB = 100
        /// A network namespace the guests run in (their taps live there): a host emulated inside
        /// one machine, as the multi-host tests do.
        public var namespace: String?

        public init(directory: URL) { self.directory = directory }
    }

    public let configuration: Configuration
    let images: any ImageSource
    let logger: Logger
    private var accelerator: String?
    /// QEMU processes started here and not yet reaped (a restarted agent adopts QEMUs it did not start).
    private var launched: Set<pid_t> = []

    public init(configuration: Configuration, images: any ImageSource, logger: Logger) {
        self.configuration = configuration
        self.images = images
        self.logger = logger
    }

    var instancesDirectory: URL { configuration.directory.appendingPathComponent("instances") }
    var baseDirectory: URL { configuration.directory.appendingPathComponent("_base") }

    func folder(_ uuid: String) -> URL { instancesDirectory.appendingPathComponent(uuid) }
    func pidFile(_ uuid: String) -> URL { folder(uuid).appendingPathComponent("qemu.pid") }
    func qmpSocket(_ uuid: String) -> URL { folder(uuid).appendingPathComponent("qmp.sock") }
    func consoleLog(_ uuid: String) -> URL { folder(uuid).appendingPathComponent("console.log") }
    func specFile(_ uuid: String) -> URL { folder(uuid).appendingPathComponent("spec.json") }
    func stateFile(_ uuid: String) -> URL { folder(uuid).appendingPathComponent("suspended.state") }

    /// The host as it is: CPUs, memory, the free space of the guests' filesystem, KSM's counters.
    public func hostFacts() async throws -> HostFacts {
        try FileManager.default.createDirectory(at: configuration.directory, withIntermediateDirectories: true)
        var disk = configuration.diskGB
        var stats = statvfs()
        if statvfs(configuration.directory.path, &stats) == 0 {
            disk = Int((UInt64(stats.f_blocks) * UInt64(stats.f_frsize)) >> 30)
        }
        var facts = HostFacts(vcpus: configuration.vcpus, memoryMB: configuration.memoryMB, diskGB: disk,
                              hypervisorType: "QEMU", hypervisorVersion: 7002000, accelerator: try await chosenAccelerator(),
                              cpuInfo: #"{"arch": "x86_64", "model": "qemu64", "vendor": "QEMU"}"#)
        facts.ksm = Self.ksmCounters()
        return facts
    }

    /// `/sys/kernel/mm/ksm/*`: whether same-page merging runs and how much it shares.
    static func ksmCounters() -> [String: Int] {
        var out: [String: Int] = [:]
        for name in ["run", "pages_shared", "pages_sharing", "pages_unshared", "full_scans"] {
            if let text = try? String(contentsOfFile: "/sys/kernel/mm/ksm/\(name)", encoding: .utf8),
               let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) { out[name] = value }
        }
        return out
    }

    // MARK: - Accelerator

    func chosenAccelerator() async throws -> String {
        if let accelerator { return accelerator }
        var choice = configuration.accelerator
        if choice == "auto" { choice = await Self.kvmWorks() ? "kvm" : "tcg" }
        accelerator = choice
        logger.notice("QEMU accelerator: \(choice)")
        return choice
    }

    /// Runs a throwaway KVM guest for a moment: where nested KVM is broken, QEMU stops it with a
    /// "KVM internal error" as soon as the firmware runs.
    static func kvmWorks() async -> Bool {
        guard access("/dev/kvm", R_OK | W_OK) == 0, let qemu = try? HostProcess.locate("qemu-system-x86_64") else { return false }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-kvm-probe-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let log = scratch.appendingPathComponent("stderr")
        // The same CPU model guests get: nested KVM often fails exactly there ("failed to set MSR").
        guard let pid = try? HostCommand.start(
            [qemu, "-accel", "kvm", "-cpu", "host", "-M", "q35", "-m", "64", "-nodefaults", "-display", "none", "-no-reboot"],
            log: log.path) else { return false }
        // Broken nested KVM fails at once (CPU setup); a guest still running after a moment is fine.
        try? await Task.sleep(for: .milliseconds(500))
        let running = HostCommand.exitStatus(of: pid) == nil
        if running {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        let output = String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self)
        return running && !output.contains("KVM internal error") && !output.contains("failed to initialize")
    }

    // MARK: - What runs here

    public func guests() async throws -> [String: GuestPower] {
        // QEMUs this driver started are its children until they exit: reap the ones that did.
        for pid in launched { _ = reapLaunched(pid) }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: instancesDirectory.path)) ?? []
        var out: [String: GuestPower] = [:]
        for uuid in names where FileManager.default.fileExists(atPath: specFile(uuid).path) {
            let power = await power(uuid)
            out[uuid] = power
            // The agent takes this inventory every few seconds: the moment to cap a running
            // guest's console, which QEMU appends to for as long as it runs.
            if power != .shutdown { capConsole(uuid) }
        }
        return out
    }

    /// Whether a QEMU this driver started has exited (and is reaped now).
    func reapLaunched(_ pid: pid_t) -> Bool {
        // Only this driver's children: waitpid on a re-adopted QEMU would say "no such child".
        guard launched.contains(pid), HostCommand.exitStatus(of: pid) != nil else { return false }
        launched.remove(pid)
        return true
    }

    /// The running QEMU of a guest, if any: the pid file's process, checked to be QEMU for this
    /// uuid (a stale pid file may name a recycled pid).
    func runningPID(_ uuid: String) -> pid_t? {
        guard let text = try? String(contentsOf: pidFile(uuid), encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, kill(pid, 0) == 0,
              let commandLine = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")),
              String(decoding: commandLine, as: UTF8.self).contains(uuid) else { return nil }
        // A zombie (exited, not yet reaped) is not running.
        if let status = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let state = status.split(separator: ")").last?.split(separator: " ").first, state == "Z" { return nil }
        return pid
    }

    func power(_ uuid: String) async -> GuestPower {
        guard runningPID(uuid) != nil else {
            return FileManager.default.fileExists(atPath: stateFile(uuid).path) ? .suspended : .shutdown
        }
        guard let status = try? await QMP.execute(qmpSocket(uuid), "query-status") else { return .running }
        switch status["status"] as? String {
        case "paused", "suspended", "prelaunch", "inmigrate", "postmigrate", "finish-migrate": return .paused
        case "shutdown", "guest-panicked", "internal-error", "io-error": return .crashed
        default: return .running
        }
    }

    // MARK: - Lifecycle

    public func spawn(_ spec: GuestSpec) async throws {
        if FileManager.default.fileExists(atPath: specFile(spec.uuid).path) {
            // Spawned before (an agent restart replays its work): just make sure it runs.
            if runningPID(spec.uuid) == nil { try await launch(spec) }
            return
        }
        let directory = folder(spec.uuid)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do {
            try await prepareDisks(spec)
            try save(spec)
            try await launch(spec)
        } catch {
            // Nothing of a failed build stays behind.
            if let pid = runningPID(spec.uuid) { await terminate(pid) }
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    func prepareDisks(_ spec: GuestSpec) async throws {
        let directory = folder(spec.uuid)
        let base = try await baseImage(spec.imageID)
        var arguments = ["create", "-q", "-f", "qcow2", "-b", base.path.path, "-F", base.format, directory.appendingPathComponent("disk.qcow2").path]
        let wanted = Int64(spec.rootGB) << 30
        if wanted > base.virtualSize { arguments.append(String(wanted)) }
        try await HostProcess("qemu-img", arguments).run()
        if spec.ephemeralGB > 0 {
            try await HostProcess("qemu-img", ["create", "-q", "-f", "qcow2", directory.appendingPathComponent("ephemeral.qcow2").path, "\(spec.ephemeralGB)G"]).run()
        }
        if spec.swapMB > 0 {
            try await HostProcess("qemu-img", ["create", "-q", "-f", "qcow2", directory.appendingPathComponent("swap.qcow2").path, "\(spec.swapMB)M"]).run()
        }
        try await ConfigDrive.build(spec, in: directory, iso: directory.appendingPathComponent("config.iso"))
        for (property, name) in [("kernel_id", "kernel"), ("ramdisk_id", "ramdisk")] {
            guard let id = spec.imageProperties[property], !id.isEmpty else { continue }
            let file = try await baseImage(id)
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
            try FileManager.default.linkItem(at: file.path, to: directory.appendingPathComponent(name))
        }
    }

    struct BaseImage {
        var path: URL
        var format: String
        var virtualSize: Int64
    }

    /// One verified local copy per image id, shared by every guest booted from it.
    func baseImage(_ id: String) async throws -> BaseImage {
        try FileManager.default.createDirectory(at: baseDirectory, withIntermediateDirectories: true)
        let cached = baseDirectory.appendingPathComponent(id)
        let formatFile = baseDirectory.appendingPathComponent(id + ".format")
        if !FileManager.default.fileExists(atPath: cached.path) {
            let image = try await images.imageFile(id)
            let partial = baseDirectory.appendingPathComponent(id + ".part-\(UUID().uuidString.prefix(8))")
            defer { try? FileManager.default.removeItem(at: partial) }
            do {
                if image.disposable {
                    try FileManager.default.moveItem(at: image.path, to: partial)
                } else {
                    try FileManager.default.copyItem(at: image.path, to: partial)
                }
            } catch {
                throw HypervisorError("Cannot read image \(id) from the image store (\(image.path.path)): it is missing or unreadable.")
            }
            if let checksum = image.checksum, !checksum.isEmpty {
                let actual = try Self.md5(of: partial)
                guard actual == checksum else { throw HypervisorError("Image \(id) is corrupt: md5 \(actual), expected \(checksum).") }
            }
            // Kernels, ramdisks and AMI roots are raw bytes to QEMU.
            let format = image.diskFormat == "qcow2" ? "qcow2" : (["raw", "ami", "aki", "ari", "iso"].contains(image.diskFormat) ? "raw" : image.diskFormat)
            if format != "qcow2" && format != "raw" {
                let converted = baseDirectory.appendingPathComponent(id + ".conv-\(UUID().uuidString.prefix(8))")
                try await HostProcess("qemu-img", ["convert", "-q", "-f", format, "-O", "qcow2", partial.path, converted.path]).run()
                try FileManager.default.moveItem(at: converted, to: partial)
                try Data("qcow2".utf8).write(to: formatFile)
            } else {
                try Data(format.utf8).write(to: formatFile)
            }
            // rename(2), not moveItem: two spawns of one image may fetch it at once, and the
            // second must replace the first's (identical, verified) copy rather than fail.
            guard rename(partial.path, cached.path) == 0 else {
                throw HypervisorError("Cannot place image \(id) in the base cache: \(String(cString: strerror(errno)))")
            }
        }
        let format = (try? String(contentsOf: formatFile, encoding: .utf8)) ?? "raw"
        let info = try await HostProcess("qemu-img", ["info", "--output=json", "-f", format, cached.path]).run()
        let size = ((try? JSONSerialization.jsonObject(with: Data(info.utf8))) as? [String: Any])?["virtual-size"] as? Int64 ?? 0
        return BaseImage(path: cached, format: format, virtualSize: size)
    }

    static func md5(of file: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        var hasher = Insecure.MD5()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0xf)]])
        }.joined()
    }

    /// PCIe root ports a guest gets for NICs, used or not (the most NICs one can hot-plug to).
    static let nicSlots = 6
    static func netdevID(_ port: String) -> String { "net-\(port)" }
    static func nicID(_ port: String) -> String { "nic-\(port)" }

    public func attachInterface(_ uuid: String, nic: GuestNIC) async throws {
        var spec = try loadSpec(uuid)
        if runningPID(uuid) != nil {
            let slots = max(Self.nicSlots, spec.nics.count)
            try await QMP.withSession(qmpSocket(uuid)) { qmp in
                guard !Self.peripherals(qmp).contains(Self.nicID(nic.portID)) else { return }
                do {
                    try qmp.execute("netdev_add", arguments: ["type": "tap", "id": Self.netdevID(nic.portID), "ifname": nic.tap,
                                                              "script": "no", "downscript": "no"])
                } catch let error as HypervisorError where error.message.contains("Duplicate") {}
                // The first empty root port takes it. A PCIe link has one device, at address 0:
                // naming it makes an occupied port refuse (QEMU would otherwise put the NIC at
                // another address on that bus, where the guest never looks).
                var refusal: (any Error)?
                for slot in 0..<slots {
                    var arguments: [String: Any] = ["driver": "virtio-net-pci", "id": Self.nicID(nic.portID),
                                                    "netdev": Self.netdevID(nic.portID), "mac": nic.mac, "bus": "nicslot\(slot)", "addr": "0"]
                    if let mtu = nic.mtu { arguments["host_mtu"] = mtu }
                    do {
                        try qmp.execute("device_add", arguments: arguments)
                        return
                    } catch {
                        refusal = error
                    }
                }
                _ = try? qmp.execute("netdev_del", arguments: ["id": Self.netdevID(nic.portID)])
                throw HypervisorError("No free slot for another NIC on instance \(uuid): \(refusal.map { "\($0)" } ?? "none left")")
            }
        }
        // A later start (or reboot) boots with it.
        if !spec.nics.contains(where: { $0.portID == nic.portID }) {
            spec.nics.append(nic)
            try save(spec)
        }
    }

    public func detachInterface(_ uuid: String, portID: String) async throws {
        var spec = try loadSpec(uuid)
        if runningPID(uuid) != nil {
            let device = Self.nicID(portID)
            try await QMP.withSession(qmpSocket(uuid), timeout: 2) { qmp in
                if Self.peripherals(qmp).contains(device) {
                    try qmp.execute("device_del", arguments: ["id": device])
                    // The guest must let the device go (ACPI or PCIe hot-plug); QEMU says so
                    // with DEVICE_DELETED. Between events, look whether it is gone already.
                    let deadline = Date().addingTimeInterval(30)
                    var gone = false
                    while !gone {
                        guard Date() < deadline else {
                            throw HypervisorError("The guest of instance \(uuid) did not release NIC \(portID) within 30 s.")
                        }
                        if let event = try? qmp.readMessage() {
                            gone = event["event"] as? String == "DEVICE_DELETED" && (event["data"] as? [String: Any])?["device"] as? String == device
                        } else {
                            gone = !Self.peripherals(qmp).contains(device)
                        }
                    }
                }
                _ = try? qmp.execute("netdev_del", arguments: ["id": Self.netdevID(portID)])
            }
        }
        if spec.nics.contains(where: { $0.portID == portID }) {
            spec.nics.removeAll { $0.portID == portID }
            try save(spec)
        }
    }

    /// Ids of the devices the guest has that were given one (`-device ...,id=`).
    static func peripherals(_ qmp: QMPSession) -> Set<String> {
        let listed = (try? qmp.execute("qom-list", arguments: ["path": "/machine/peripheral"])) as? [[String: Any]] ?? []
        return Set(listed.compactMap { $0["name"] as? String })
    }

    func save(_ spec: GuestSpec) throws {
        try JSONEncoder().encode(spec).write(to: specFile(spec.uuid))
    }

    func loadSpec(_ uuid: String) throws -> GuestSpec {
        guard let data = try? Data(contentsOf: specFile(uuid)) else { throw HypervisorError("Instance \(uuid) could not be found on this host.") }
        return try JSONDecoder().decode(GuestSpec.self, from: data)
    }

    /// QEMU's command line for a guest. Only ids and numbers reach it, never names or metadata;
    /// paths are escaped for QEMU's option parser (a comma is written twice).
    func arguments(_ spec: GuestSpec, accelerator: String, incoming: URL? = nil) -> [String] {
        let directory = folder(spec.uuid)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path.replacingOccurrences(of: ",", with: ",,") }
        let sockets = Int(spec.extraSpecs["hw:cpu_sockets"] ?? "") ?? 0
        let cores = Int(spec.extraSpecs["hw:cpu_cores"] ?? "") ?? 0
        let threads = Int(spec.extraSpecs["hw:cpu_threads"] ?? "") ?? 0
        var smp = "\(max(1, spec.vcpus))"
        if sockets > 0 || cores > 0 || threads > 0 {
            let s = max(1, sockets), c = max(1, cores), t = max(1, threads)
            if s * c * t == spec.vcpus { smp += ",sockets=\(s),cores=\(c),threads=\(t)" }
        }
        var args = [
            "-name", "instance-\(spec.uuid),debug-threads=on", "-uuid", spec.uuid,
            "-accel", accelerator, "-M", "q35", "-m", "\(max(16, spec.memoryMB))", "-smp", smp,
            "-nodefaults", "-no-user-config", "-display", "none",
            "-pidfile", pidFile(spec.uuid).path,
            "-chardev", "file,id=console,path=\(path("console.log")),append=on", "-serial", "chardev:console",
            "-qmp", "unix:\(path("qmp.sock")),server=on,wait=off",
            "-drive", "file=\(path("disk.qcow2")),if=none,id=root,format=qcow2,discard=unmap",
            "-device", "virtio-blk-pci,drive=root,bootindex=0",
            "-drive", "file=\(path("config.iso")),if=none,id=config,format=raw,readonly=on",
            "-device", "virtio-blk-pci,drive=config",
            "-device", "virtio-balloon-pci",
            "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
        ]
        // Taps exist already (the dataplane made them, on the network's bridge); QEMU only opens
        // them. Each NIC sits in a PCIe root port of its own, as do the empty ports left for
        // hot-plugged ones: a q35 root bus cannot hot-plug or unplug.
        for slot in 0..<max(Self.nicSlots, spec.nics.count) {
            args += ["-device", "pcie-root-port,id=nicslot\(slot),chassis=\(slot + 1)"]
        }
        for (slot, nic) in spec.nics.enumerated() {
            args += ["-netdev", "tap,id=\(Self.netdevID(nic.portID)),ifname=\(nic.tap),script=no,downscript=no",
                     "-device", "virtio-net-pci,netdev=\(Self.netdevID(nic.portID)),id=\(Self.nicID(nic.portID)),bus=nicslot\(slot),mac=\(nic.mac)"
                        + (nic.mtu.map { ",host_mtu=\($0)" } ?? "")]
        }
        if accelerator == "kvm" { args += ["-cpu", "host"] }
        for name in ["ephemeral.qcow2", "swap.qcow2"] where FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) {
            let id = String(name.prefix { $0 != "." })
            args += ["-drive", "file=\(path(name)),if=none,id=\(id),format=qcow2", "-device", "virtio-blk-pci,drive=\(id)"]
        }
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("kernel").path) {
            args += ["-kernel", directory.appendingPathComponent("kernel").path, "-append", "console=ttyS0 no_timer_check root=/dev/vda"]
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("ramdisk").path) {
                args += ["-initrd", directory.appendingPathComponent("ramdisk").path]
            }
        }
        if let incoming { args += ["-incoming", "exec:cat \(incoming.path)"] }
        return args
    }

    /// Starts QEMU and returns once it answers on QMP. QEMU is not daemonized, so a start-up
    /// failure is its exit with a message; it runs in a session of its own, outlives the agent
    /// (re-parented), and is found again through its pid file.
    func launch(_ spec: GuestSpec, incoming: URL? = nil) async throws {
        capConsole(spec.uuid)
        try? FileManager.default.removeItem(at: qmpSocket(spec.uuid))
        try? FileManager.default.removeItem(at: pidFile(spec.uuid))
        let accelerator = try await chosenAccelerator()
        let log = folder(spec.uuid).appendingPathComponent("qemu.log")
        try? FileManager.default.removeItem(at: log)
        let qemu = try HostProcess.locate("qemu-system-x86_64")
        var command = [qemu] + arguments(spec, accelerator: accelerator, incoming: incoming)
        // `ip netns exec` execs QEMU in place: the pid stays QEMU's.
        if let namespace = configuration.namespace { command = [try HostProcess.locate("ip"), "netns", "exec", namespace] + command }
        let pid = try HostCommand.start(command, log: log.path, environment: ["LC_ALL": "C"])
        launched.insert(pid)
        // Start-up errors (bad arguments, no memory) end the process with QEMU's message.
        for _ in 0..<600 {
            if reapLaunched(pid) {
                let message = String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                throw HypervisorError("QEMU failed to start instance \(spec.uuid): \(message)")
            }
            if runningPID(spec.uuid) != nil, (try? await QMP.execute(qmpSocket(spec.uuid), "query-status")) != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        throw HypervisorError("QEMU did not answer on QMP within 30 s for instance \(spec.uuid).")
    }

    /// Drops the oldest part of a guest's console log in place once it passes the limit, before a
    /// start and while QEMU runs. QEMU holds the file open for appending, so the file must stay
    /// the same inode: the head
    /// is cut with FALLOC_FL_COLLAPSE_RANGE (atomic against QEMU's appends; whole blocks only),
    /// or, where the file system cannot, the tail is copied to the front and the file shortened.
    func capConsole(_ uuid: String) {
        let path = consoleLog(uuid).path
        var info = stat()
        guard stat(path, &info) == 0, Int(info.st_size) > configuration.consoleLimit else { return }
        let descriptor = open(path, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        let blockSize = 4096
        let drop = (Int(info.st_size) - configuration.consoleLimit / 2) / blockSize * blockSize
        if drop > 0, let fallocate = GlibcExtras.fallocate,
           fallocate(descriptor, GlibcExtras.fallocateCollapseRange, 0, off_t(drop)) == 0 { return }
        let keep = configuration.consoleLimit / 2
        var tail = [UInt8](repeating: 0, count: keep)
        let read = pread(descriptor, &tail, keep, off_t(Int(info.st_size) - keep))
        guard read > 0, ftruncate(descriptor, 0) == 0 else { return }
        _ = pwrite(descriptor, tail, read, 0)
    }

    func terminate(_ pid: pid_t) async {
        kill(pid, SIGTERM)
        for _ in 0..<50 {
            if gone(pid) { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
        kill(pid, SIGKILL)
        for _ in 0..<50 where !gone(pid) { try? await Task.sleep(for: .milliseconds(100)) }
    }

    /// A QEMU started here stays a zombie, which signal 0 still reaches, until it is reaped.
    func gone(_ pid: pid_t) -> Bool {
        reapLaunched(pid) || kill(pid, 0) != 0
    }

    public func destroy(_ uuid: String) async throws {
        if let pid = runningPID(uuid) { await terminate(pid) }
        try? FileManager.default.removeItem(at: folder(uuid))
    }

    /// ACPI power button, then a hard stop if the guest has not gone within the timeout.
    public func powerOff(_ uuid: String) async throws {
        try await powerOff(uuid, timeout: configuration.shutdownTimeout)
    }

    func powerOff(_ uuid: String, timeout: Duration) async throws {
        guard let pid = runningPID(uuid) else { return }
        if timeout > .zero {
            _ = try? await QMP.execute(qmpSocket(uuid), "system_powerdown")
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline, runningPID(uuid) != nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        if runningPID(uuid) != nil { await terminate(pid) }
    }

    public func powerOn(_ uuid: String) async throws {
        guard runningPID(uuid) == nil else { return }
        try await launch(try loadSpec(uuid))
    }

    public func reboot(_ uuid: String, hard: Bool) async throws {
        let spec = try loadSpec(uuid)
        if hard, runningPID(uuid) != nil {
            try await QMP.execute(qmpSocket(uuid), "system_reset")
            _ = try? await QMP.execute(qmpSocket(uuid), "cont")
            return
        }
        try await powerOff(uuid, timeout: hard ? .zero : configuration.shutdownTimeout)
        try await launch(spec)
    }

    public func pause(_ uuid: String) async throws {
        try await QMP.execute(qmpSocket(uuid), "stop")
    }

    public func unpause(_ uuid: String) async throws {
        try await QMP.execute(qmpSocket(uuid), "cont")
    }

    /// Saves the guest's whole state to a file (a migration to `exec:cat`) and stops QEMU.
    public func suspend(_ uuid: String) async throws {
        guard runningPID(uuid) != nil else { return }
        let state = stateFile(uuid)
        try await QMP.execute(qmpSocket(uuid), "stop")
        try await QMP.execute(qmpSocket(uuid), "migrate", arguments: ["uri": "exec:cat > \(state.path)"])
        for _ in 0..<600 {
            let status = try await QMP.execute(qmpSocket(uuid), "query-migrate")
            if status["status"] as? String == "completed" { break }
            if status["status"] as? String == "failed" { throw HypervisorError("Saving the state of \(uuid) failed.") }
            try await Task.sleep(for: .milliseconds(100))
        }
        if let pid = runningPID(uuid) { await terminate(pid) }
    }

    public func resume(_ uuid: String) async throws {
        let state = stateFile(uuid)
        guard FileManager.default.fileExists(atPath: state.path) else { return try await powerOn(uuid) }
        try await launch(try loadSpec(uuid), incoming: state)
        for _ in 0..<600 {
            let status = try await QMP.execute(qmpSocket(uuid), "query-status")
            if status["status"] as? String != "inmigrate" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await QMP.execute(qmpSocket(uuid), "cont")
        try? FileManager.default.removeItem(at: state)
    }

    /// New memory, CPUs and a bigger disk: a restart with the new spec (the disk only grows).
    public func resize(_ spec: GuestSpec) async throws {
        let wasRunning = runningPID(spec.uuid) != nil
        try await powerOff(spec.uuid, timeout: configuration.shutdownTimeout)
        let disk = folder(spec.uuid).appendingPathComponent("disk.qcow2")
        let info = try await HostProcess("qemu-img", ["info", "--output=json", "-U", disk.path]).run()
        let current = ((try? JSONSerialization.jsonObject(with: Data(info.utf8))) as? [String: Any])?["virtual-size"] as? Int64 ?? 0
        if Int64(spec.rootGB) << 30 > current {
            try await HostProcess("qemu-img", ["resize", "-q", disk.path, String(Int64(spec.rootGB) << 30)]).run()
        }
        try save(spec)
        if wasRunning { try await launch(spec) }
    }

    public func rebuild(_ spec: GuestSpec) async throws {
        if let pid = runningPID(spec.uuid) { await terminate(pid) }
        let directory = folder(spec.uuid)
        for name in ["disk.qcow2", "config.iso", "kernel", "ramdisk"] { try? FileManager.default.removeItem(at: directory.appendingPathComponent(name)) }
        try await prepareDisks(spec)
        try save(spec)
        try await launch(spec)
    }

    /// Flattens the guest's disk chain into one standalone qcow2. A running guest is paused for
    /// the copy, so the image is crash-consistent (as Nova's live snapshots are).
    public func snapshot(_ uuid: String, to file: URL) async throws -> String {
        let disk = folder(uuid).appendingPathComponent("disk.qcow2")
        guard FileManager.default.fileExists(atPath: disk.path) else { throw HypervisorError("Instance \(uuid) could not be found on this host.") }
        var running = false
        if runningPID(uuid) != nil { running = await power(uuid) == .running }
        if running { try await QMP.execute(qmpSocket(uuid), "stop") }
        do {
            try await HostProcess("qemu-img", ["convert", "-U", "-q", "-O", "qcow2", disk.path, file.path]).run()
        } catch {
            if running { _ = try? await QMP.execute(qmpSocket(uuid), "cont") }
            throw error
        }
        if running { try await QMP.execute(qmpSocket(uuid), "cont") }
        return "qcow2"
    }

    public func consoleOutput(_ uuid: String, lines: Int?) async throws -> String {
        guard FileManager.default.fileExists(atPath: folder(uuid).path) else { throw HypervisorError("Instance \(uuid) could not be found on this host.") }
        let text = String(decoding: (try? Data(contentsOf: consoleLog(uuid))) ?? Data(), as: UTF8.self)
        guard let lines else { return text }
        // The serial line discipline ends lines with "\r\n", one Character in Swift.
        let all = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        let complete = text.hasSuffix("\n") ? all.dropLast() : all[...]
        return complete.suffix(lines).map { $0 + "\n" }.joined()
    }
}
