import Foundation
import Logging

/// What a build produced, in the output directory.
public struct GuestImageArtifacts: Sendable {
    /// qcow2, 64 MiB virtual: MBR + ext4 + extlinux; boots on its own (`disk_format=qcow2`).
    public let disk: URL
    /// The kernel, for `-kernel` (an image with `kernel_id`).
    public let kernel: URL
    /// The initramfs (gzip'd cpio), for `-initrd` (an image with `ramdisk_id`).
    public let ramdisk: URL
    /// `-append` for a direct kernel boot; the disk's extlinux.conf uses the same line.
    public let kernelCommandLine: String
    /// `uname -r` of the guest kernel.
    public let kernelRelease: String

    /// The artifacts of an earlier build in `directory`, or nil if any file is missing: lets tests
    /// and tools use a prebuilt guest (no root needed) instead of building one.
    public static func existing(in directory: URL) -> GuestImageArtifacts? {
        let file = { (name: String) in directory.appendingPathComponent(name) }
        guard ["disk.qcow2", "vmlinuz", "initramfs.gz", "manifest.json"].allSatisfy({ FileManager.default.fileExists(atPath: file($0).path) }),
              let data = FileManager.default.contents(atPath: file("manifest.json").path),
              let manifest = try? JSONDecoder().decode([String: String].self, from: data),
              let commandLine = manifest["kernel_command_line"], let release = manifest["kernel_release"] else { return nil }
        return GuestImageArtifacts(
            disk: file("disk.qcow2"), kernel: file("vmlinuz"), ramdisk: file("initramfs.gz"),
            kernelCommandLine: commandLine, kernelRelease: release)
    }
}

/// Builds the tiny test guest from Debian packages only: a Debian cloud kernel (see `KernelChoice`)
/// and the host's busybox-static.
///
/// The guest boots under QEMU TCG in 3–5 s (1 vCPU); reads the config drive (label
/// `config-2`), sets its hostname, takes a DHCP lease on eth0, prints
/// `NIMBUS-GUEST hostname=… uuid=… ip=…` and `NIMBUS-USERDATA …` on the serial console, and
/// powers off on the ACPI power button. See `GuestFiles` for the guest side.
///
/// Builds are idempotent and atomic: everything is made in scratch directories and each artifact
/// is renamed into the output directory only once all of them exist, so a failed build leaves
/// the previous artifacts untouched. The work directory caches the .deb and the unpacked kernel;
/// one build at a time uses it, and the next build releases what a killed one left mounted.
public struct GuestImageBuilder: Sendable {
    /// `no_timer_check`: without it about 1 in 30 guests started together panics with "IO-APIC +
    /// timer doesn't work" (the TCG vCPU is starved while the kernel calibrates the timer).
    public static let kernelCommandLine = "console=ttyS0 no_timer_check"

    /// Modules the boot script loads every time: virtio PCI, disk, NIC and balloon; isofs for the config
    /// drive; button + evdev, without which acpid never sees the power button.
    static let bootModules = ["virtio_pci", "virtio_blk", "virtio_net", "virtio_balloon", "isofs", "button", "evdev"]
    /// Loaded only when the config drive is not a virtio disk: IDE (`-M pc`) or SATA (`-M q35`) cdrom.
    static let cdromModules = ["sr_mod", "ata_piix", "ahci"]
    static let optionalModules: Set<String> = ["ahci"]

    public let workDirectory: URL
    public let kernel: KernelChoice
    let logger: Logger

    /// - Parameters:
    ///   - workDirectory: holds the .deb cache (`debs/`), the unpacked kernels (`kernels/`, ~120 MB
    ///     per version) and per-build scratch directories; safe to delete between builds.
    ///   - kernel: which Debian cloud kernel; by default the release's default series.
    public init(workDirectory: URL, kernel: KernelChoice = .distributionDefault, logger: Logger = Logger(label: "nimbus.guest-image")) {
        self.workDirectory = workDirectory
        self.kernel = kernel
        self.logger = logger
    }

    /// Builds disk.qcow2, vmlinuz and initramfs.gz (and manifest.json) into `outputDirectory`.
    /// - Throws: `GuestImageError`; the output directory then holds whatever it held before.
    public func build(into outputDirectory: URL) async throws -> GuestImageArtifacts {
        guard geteuid() == 0 else { throw GuestImageError.notRoot }
        let started = ContinuousClock.now
        let output = outputDirectory.standardizedFileURL
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        removeAbandonedStaging(in: output)
        let work = try await WorkDirectory(workDirectory.standardizedFileURL, logger: logger)
        let scratch = try work.makeScratch()
        // Staging lives in the output directory so the final renames stay on one filesystem.
        let staging = output.appendingPathComponent(".staging-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        defer {
            // --one-file-system: should an unmount ever have failed, never delete through the mount.
            for directory in [scratch, staging] {
                do {
                    try Command("rm", ["-rf", "--one-file-system", directory.path]).runBlocking()
                } catch {
                    logger.warning("could not remove \(directory.path): \(error)")
                }
            }
            work.unlock()
        }

        let release = try await assemble(into: staging, scratch: scratch, work: work.url)
        // Each rename is atomic; all of them happen only after every artifact exists.
        let names = ["vmlinuz", "initramfs.gz", "disk.qcow2", "manifest.json"]
        for name in names {
            try renameReplacing(staging.appendingPathComponent(name), output.appendingPathComponent(name))
        }
        logger.info("guest image built in \(ContinuousClock.now - started): \(output.path)")
        return GuestImageArtifacts(
            disk: output.appendingPathComponent("disk.qcow2"),
            kernel: output.appendingPathComponent("vmlinuz"),
            ramdisk: output.appendingPathComponent("initramfs.gz"),
            kernelCommandLine: Self.kernelCommandLine, kernelRelease: release)
    }

    /// Writes the four artifacts into `staging`; returns the kernel release.
    private func assemble(into staging: URL, scratch: URL, work: URL) async throws -> String {
        var step = ContinuousClock.now
        let package = try await KernelPackage.select(kernel, logger: logger)
        logger.info("kernel: \(package.name) \(package.version) (chosen in \(ContinuousClock.now - step))")
        let deb = try await package.download(into: work.appendingPathComponent("debs"), logger: logger)
        step = ContinuousClock.now
        let unpacked = try await package.unpack(deb, cache: work.appendingPathComponent("kernels"))
        let bootModules = try await unpacked.loadOrder(for: Self.bootModules)
        let cdromModules = try await unpacked.loadOrder(for: Self.cdromModules, optional: Self.optionalModules, skipping: bootModules)
        logger.debug("kernel unpacked and modules resolved in \(ContinuousClock.now - step)")

        let vmlinuz = staging.appendingPathComponent("vmlinuz")
        let ramdisk = staging.appendingPathComponent("initramfs.gz")
        try FileManager.default.copyItem(at: unpacked.vmlinuz, to: vmlinuz)
        step = ContinuousClock.now
        let initramfs = Initramfs(bootModules: bootModules, cdromModules: cdromModules, logger: logger)
        try await initramfs.build(tree: scratch.appendingPathComponent("initramfs"), archive: ramdisk)
        logger.debug("initramfs built in \(ContinuousClock.now - step)")
        step = ContinuousClock.now
        let bootDisk = BootDisk(kernel: vmlinuz, initramfs: ramdisk, commandLine: Self.kernelCommandLine, logger: logger)
        try await bootDisk.build(scratch: scratch, into: staging.appendingPathComponent("disk.qcow2"))
        logger.debug("boot disk built in \(ContinuousClock.now - step)")
        try writeManifest(package: package, release: unpacked.release, to: staging.appendingPathComponent("manifest.json"))
        return unpacked.release
    }

    /// Staging directories of killed builds hold only files; an hour-old one is not a live build's.
    private func removeAbandonedStaging(in output: URL) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []
        for name in names where name.hasPrefix(".staging-") {
            let url = output.appendingPathComponent(name)
            let modified = (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate]) as? Date
            if let modified, modified < Date(timeIntervalSinceNow: -3600) {
                _ = try? Command("rm", ["-rf", "--one-file-system", url.path]).runBlocking()
            }
        }
    }

    /// Which kernel and command line the artifacts hold, for whoever registers them as images
    /// (e.g. `os_command_line`) without re-deriving it.
    private func writeManifest(package: KernelPackage, release: String, to url: URL) throws {
        let manifest: [String: String] = [
            "kernel_package": package.name,
            "kernel_version": package.version.description,
            "kernel_release": release,
            "kernel_command_line": Self.kernelCommandLine,
            "disk": "disk.qcow2", "kernel": "vmlinuz", "ramdisk": "initramfs.gz",
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: url)
    }
}
