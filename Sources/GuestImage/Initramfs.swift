import Foundation
import Logging

/// The guest's whole userland as a gzip'd newc cpio archive: static busybox, the files in
/// `GuestFiles` and the kernel modules, unpacked by the kernel into its rootfs.
///
/// The guest never mounts a root filesystem: it runs from this archive whether it boots from the
/// qcow2 (extlinux loads kernel + archive) or with `-kernel/-initrd`, so both boot paths behave alike.
struct Initramfs {
    /// The host's busybox from busybox-static; it must be static, the guest has no libc.
    var busybox = URL(fileURLWithPath: "/bin/busybox")
    /// Loaded by the boot script every time, in this order.
    let bootModules: [URL]
    /// Loaded only if no virtio disk has the config drive label (IDE/SATA cdrom).
    let cdromModules: [URL]
    let logger: Logger

    /// Lays out the tree in `tree` (which must not exist) and writes the archive to `archive`.
    func build(tree: URL, archive: URL) async throws {
        try requireStatic(busybox)
        let files = FileManager.default
        for directory in ["bin", "dev", "proc", "sys", "tmp", "root", "mnt/config", "var/run", "var/log", "lib/modules", "usr"] {
            try files.createDirectory(at: tree.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        try files.copyItem(at: busybox, to: tree.appendingPathComponent("bin/busybox"))
        try await installApplets(tree: tree)
        for file in GuestFiles.all {
            let url = tree.appendingPathComponent(file.path)
            try files.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let contents = file.contents.hasSuffix("\n") ? file.contents : file.contents + "\n"
            guard files.createFile(atPath: url.path, contents: Data(contents.utf8), attributes: [.posixPermissions: file.mode]) else {
                throw GuestImageError.unexpected("cannot write \(url.path)")
            }
        }
        let moduleDirectory = tree.appendingPathComponent("lib/modules")
        try await installModules(bootModules, list: "boot.list", in: moduleDirectory)
        try await installModules(cdromModules, list: "cdrom.list", in: moduleDirectory)
        // No /dev/console node needed: the kernel's built-in initramfs (unpacked before ours)
        // already has one, so /init starts with the serial console as stdin/stdout.
        try await pack(tree: tree, archive: archive)
    }

    /// One symlink per busybox applet in /bin, and /sbin, /usr/bin, /usr/sbin pointing there,
    /// so scripts may use either spelling (`/sbin/init`, `/usr/bin/awk`).
    private func installApplets(tree: URL) async throws {
        let applets = try await Command(busybox.path, ["--list"]).run().split(separator: "\n").map(String.init)
        let bin = tree.appendingPathComponent("bin")
        for applet in applets where applet != "busybox" && !applet.contains("/") {
            try FileManager.default.createSymbolicLink(atPath: bin.appendingPathComponent(applet).path, withDestinationPath: "busybox")
        }
        try FileManager.default.createSymbolicLink(atPath: tree.appendingPathComponent("sbin").path, withDestinationPath: "bin")
        for link in ["usr/bin", "usr/sbin"] {
            try FileManager.default.createSymbolicLink(atPath: tree.appendingPathComponent(link).path, withDestinationPath: "../bin")
        }
    }

    /// Copies modules flat into lib/modules and writes their load order to `list`.
    ///
    /// xz-compressed modules (Debian's 6.12 kernels) are decompressed here, with the host's busybox:
    /// busybox insmod in the guest cannot be relied on to decompress, and the archive is gzip'd anyway.
    private func installModules(_ modules: [URL], list: String, in directory: URL) async throws {
        var names: [String] = []
        for module in modules {
            var name = module.lastPathComponent
            let target: URL
            switch module.pathExtension {
            case "ko":
                target = directory.appendingPathComponent(name)
                try FileManager.default.copyItem(at: module, to: target)
            case "xz", "gz":
                name = module.deletingPathExtension().lastPathComponent
                target = directory.appendingPathComponent(name)
                let decompressor = module.pathExtension == "xz" ? "unxz" : "gunzip"
                try await Command(busybox.path, [decompressor, "-c", module.path], output: target).run()
            default:
                throw GuestImageError.unexpected("cannot load \(name) in the guest: unsupported compression")
            }
            names.append(name)
        }
        let contents = names.map { $0 + "\n" }.joined()
        guard FileManager.default.createFile(atPath: directory.appendingPathComponent(list).path, contents: Data(contents.utf8)) else {
            throw GuestImageError.unexpected("cannot write \(list)")
        }
    }

    /// `busybox cpio -o -H newc` over the sorted file list (parents before children, stable
    /// output), owned by root whoever builds it, then `gzip -n` (no name or time stamp in the header).
    private func pack(tree: URL, archive: URL) async throws {
        guard let enumerator = FileManager.default.enumerator(atPath: tree.path) else {
            throw GuestImageError.unexpected("cannot list \(tree.path)")
        }
        let paths = enumerator.compactMap { $0 as? String }.sorted()
        let scratch = archive.deletingLastPathComponent()
        let list = scratch.appendingPathComponent("initramfs.list")
        let cpio = scratch.appendingPathComponent("initramfs.cpio")
        guard FileManager.default.createFile(atPath: list.path, contents: Data(paths.map { $0 + "\n" }.joined().utf8)) else {
            throw GuestImageError.unexpected("cannot write \(list.path)")
        }
        defer {
            try? FileManager.default.removeItem(at: list)
            try? FileManager.default.removeItem(at: cpio)
        }
        try await Command(busybox.path, ["cpio", "-o", "-H", "newc", "-R", "0:0"], workingDirectory: tree, input: list, output: cpio).run()
        try await Command("gzip", ["-n", "-9", "-c", cpio.path], output: archive).run()
        logger.debug("initramfs: \(paths.count) entries")
    }

    /// Throws unless `binary` is an ELF file without a program interpreter (PT_INTERP), i.e.
    /// statically linked: Debian's `busybox` package (not `busybox-static`) would boot to
    /// "/init: not found", with no hint that the loader is missing.
    private func requireStatic(_ binary: URL) throws {
        guard let data = FileManager.default.contents(atPath: binary.path), data.count > 64,
              data.prefix(4) == Data([0x7F, 0x45, 0x4C, 0x46]) else {
            throw GuestImageError.toolMissing(tool: binary.path, package: "busybox-static")
        }
        func integer<T: FixedWidthInteger>(_ offset: Int, as _: T.Type) -> T {
            data.subdata(in: offset..<offset + MemoryLayout<T>.size).withUnsafeBytes { $0.loadUnaligned(as: T.self) }.littleEndian
        }
        let headerOffset = Int(integer(0x20, as: UInt64.self))
        let headerSize = Int(integer(0x36, as: UInt16.self))
        let headerCount = Int(integer(0x38, as: UInt16.self))
        for index in 0..<headerCount {
            let offset = headerOffset + index * headerSize
            guard offset + 4 <= data.count else { break }
            if integer(offset, as: UInt32.self) == 3 {  // PT_INTERP
                throw GuestImageError.unexpected("\(binary.path) is dynamically linked: apt-get install busybox-static")
            }
        }
    }
}
