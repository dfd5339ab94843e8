import Foundation
import Logging

/// A 64 MiB disk, MBR with one bootable ext4 partition holding extlinux, the kernel and the
/// initramfs, delivered as qcow2: what an OpenStack image with disk_format qcow2 gives the hypervisor.
///
/// extlinux because it boots from ext4 with a one-line serial setup; it only installs into a
/// mounted filesystem, hence the loop device, which is why the build needs root.
struct BootDisk {
    static let size = 64 << 20
    /// The partition starts at sector 2048 (1 MiB), as fdisk aligns it.
    static let partitionOffset = 1 << 20
    static let mbrCandidates = ["/usr/lib/syslinux/mbr/mbr.bin", "/usr/lib/SYSLINUX/mbr.bin", "/usr/share/syslinux/mbr.bin"]

    let kernel: URL
    let initramfs: URL
    let commandLine: String
    let logger: Logger

    /// Builds the raw disk in `scratch` and converts it to `qcow2`.
    func build(scratch: URL, into qcow2: URL) async throws {
        let raw = scratch.appendingPathComponent("disk.raw")
        try partition(raw, scratch: scratch)
        try await populate(raw, scratch: scratch)
        try await Command("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw.path, qcow2.path]).run()
    }

    /// A sparse file with one bootable Linux partition, and syslinux's MBR boot code, which
    /// chain-loads the active partition's boot sector (installed there by extlinux).
    private func partition(_ raw: URL, scratch: URL) throws {
        guard FileManager.default.createFile(atPath: raw.path, contents: nil) else {
            throw GuestImageError.unexpected("cannot create \(raw.path)")
        }
        let handle = try FileHandle(forWritingTo: raw)
        defer { try? handle.close() }
        try handle.truncate(atOffset: UInt64(Self.size))

        let script = scratch.appendingPathComponent("partitions.sfdisk")
        let sector = Self.partitionOffset / 512
        try Data("label: dos\nstart=\(sector), type=83, bootable\n".utf8).write(to: script)
        try Command("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", raw.path], input: script).runBlocking()

        guard let mbr = Self.mbrCandidates.lazy.compactMap({ FileManager.default.contents(atPath: $0) }).first else {
            throw GuestImageError.toolMissing(tool: "mbr.bin", package: "syslinux-common")
        }
        // Only the 440 bytes of boot code: the partition table sfdisk wrote follows them.
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: mbr.prefix(440))
    }

    /// mkfs, mount, copy the boot files, install extlinux; every acquired resource is released
    /// before returning, on success and on failure.
    private func populate(_ raw: URL, scratch: URL) async throws {
        let cleanup = CleanupStack(logger: logger)
        defer { cleanup.unwind() }

        // A loop device over the partition only (offset + size limit), so there is no partition
        // scan and no udev to wait for.
        let loop = try await Command("losetup", [
            "--find", "--show",
            "--offset", String(Self.partitionOffset),
            "--sizelimit", String(Self.size - Self.partitionOffset),
            raw.path,
        ]).run().trimmingCharacters(in: .whitespacesAndNewlines)
        guard loop.hasPrefix("/dev/loop") else { throw GuestImageError.unexpected("losetup printed \(loop)") }
        cleanup.push("losetup -d \(loop)") { try Command("losetup", ["--detach", loop]).runBlocking() }

        // extlinux cannot read 64-bit ext4 or metadata checksums.
        try await Command("mkfs.ext4", ["-q", "-F", "-L", "nimbus-boot", "-O", "^64bit,^metadata_csum", loop]).run()

        let mountPoint = scratch.appendingPathComponent("mnt")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        try await Command("mount", [loop, mountPoint.path]).run()
        cleanup.push("umount \(mountPoint.path)") { try Self.unmount(mountPoint) }

        let boot = mountPoint.appendingPathComponent("boot")
        let extlinux = boot.appendingPathComponent("extlinux")
        try FileManager.default.createDirectory(at: extlinux, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: kernel, to: boot.appendingPathComponent("vmlinuz"))
        try FileManager.default.copyItem(at: initramfs, to: boot.appendingPathComponent("initramfs.gz"))
        try Data(extlinuxConfiguration.utf8).write(to: extlinux.appendingPathComponent("extlinux.conf"))
        try await Command("extlinux", ["--install", extlinux.path]).run()

        // Unmount and detach now, and fail if that fails: qemu-img must read a settled file.
        try cleanup.unwindOrThrow()
    }

    /// Serial console for the boot loader too, and no prompt or timeout: boot time matters more
    /// than a menu nobody sees.
    var extlinuxConfiguration: String {
        """
        SERIAL 0 115200
        DEFAULT nimbus
        PROMPT 0
        LABEL nimbus
          LINUX /boot/vmlinuz
          INITRD /boot/initramfs.gz
          APPEND \(commandLine)

        """
    }

    /// umount, retried briefly because a just-closed file can keep the filesystem busy for a
    /// moment; a lazy unmount as the last resort still frees the loop device once idle.
    static func unmount(_ mountPoint: URL) throws {
        for _ in 0..<5 {
            if (try? Command("umount", [mountPoint.path]).runBlocking()) != nil { return }
            usleep(200_000)
        }
        try Command("umount", ["--lazy", mountPoint.path]).runBlocking()
    }
}
