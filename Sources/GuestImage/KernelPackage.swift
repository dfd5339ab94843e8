import Foundation
import Logging

/// Which Debian cloud kernel the guest gets. Never a hard-coded version: ABI packages come and go
/// with security updates.
public enum KernelChoice: Sendable, Equatable {
    /// The kernel Debian's `linux-image-cloud-amd64` metapackage depends on: the release's default
    /// series at its newest ABI (6.1 on bookworm). The default: under TCG it boots 1.5–2 s faster
    /// than bookworm-security's 6.12 series (lz4 vs zstd bzImage, fewer initcalls).
    case distributionDefault
    /// The highest version of any `linux-image-*-cloud-amd64-unsigned` apt knows.
    case newest
    /// This package.
    case package(String)
}

/// The Debian cloud kernel the guest boots: found with apt-cache, fetched once with
/// `apt-get download`, unpacked with dpkg-deb.
///
/// The cloud flavour because it is small and already has what a QEMU guest needs built in
/// (ext4, AF_PACKET, 8250 serial, ACPI PCI hot-plug); the rest comes as modules (FACTS.md).
/// "-unsigned" because the guest boots it directly, without shim/secure boot.
struct KernelPackage: Sendable {
    static let namePattern = "^linux-image-.*-cloud-amd64-unsigned$"

    let name: String
    let version: DebianVersion

    /// `uname -r` of this kernel, which names its modules directory: the package name without
    /// `linux-image-` and `-unsigned`.
    var release: String {
        String(name.dropFirst("linux-image-".count).dropLast("-unsigned".count))
    }

    /// The package `choice` names, as apt knows it now.
    ///
    /// Runs `apt-get update` only when apt-cache knows no matching kernel: a fresh container has
    /// empty lists, while on a configured host an update would cost seconds and network on every build.
    static func select(_ choice: KernelChoice, logger: Logger) async throws -> KernelPackage {
        if let found = try await lookUp(choice, logger: logger) { return found }
        logger.info("apt-cache knows no matching kernel; running apt-get update")
        try await Command("apt-get", ["update", "-q"]).run()
        if let found = try await lookUp(choice, logger: logger) { return found }
        if case .package(let name) = choice { throw GuestImageError.kernelPackageNotFound(pattern: name) }
        throw GuestImageError.kernelPackageNotFound(pattern: namePattern)
    }

    /// Each apt-cache run costs about a second (it loads the whole package cache), so the default
    /// path asks only about the metapackage and its one kernel.
    private static func lookUp(_ choice: KernelChoice, logger: Logger) async throws -> KernelPackage? {
        switch choice {
        case .package(let name):
            return try? await show([name]).first
        case .distributionDefault:
            if let name = await distributionDefaultName(), let found = try? await show([name]).first { return found }
            let newest = try await lookUp(.newest, logger: logger)
            if let newest { logger.notice("linux-image-cloud-amd64 names no known kernel; using the newest, \(newest.name)") }
            return newest
        case .newest:
            let names = try await search()
            return names.isEmpty ? nil : try await show(names).max { $0.version < $1.version }
        }
    }

    private static func search() async throws -> [String] {
        let output = try await Command("apt-cache", ["search", "--names-only", namePattern]).run()
        return output.split(separator: "\n").compactMap { line in
            line.split(separator: " ", maxSplits: 1).first.map(String.init)
        }
    }

    private static func show(_ names: [String]) async throws -> [KernelPackage] {
        parse(stanzas: try await Command("apt-cache", ["show", "--no-all-versions"] + names).run())
    }

    /// The unsigned twin of the kernel Debian's `linux-image-cloud-amd64` metapackage depends on,
    /// e.g. `linux-image-6.1.0-56-cloud-amd64-unsigned`: the release's default series at its newest ABI.
    private static func distributionDefaultName() async -> String? {
        guard let output = try? await Command("apt-cache", ["show", "--no-all-versions", "linux-image-cloud-amd64"]).run(),
              let depends = output.split(separator: "\n").first(where: { $0.hasPrefix("Depends:") }) else { return nil }
        let words = depends.dropFirst("Depends:".count).split(whereSeparator: { " ,|".contains($0) })
        return words.first { $0.hasPrefix("linux-image-") }.map { "\($0)-unsigned" }
    }

    /// `Package:`/`Version:` pairs of `apt-cache show` stanzas.
    static func parse(stanzas: String) -> [KernelPackage] {
        stanzas.components(separatedBy: "\n\n").compactMap { stanza in
            var fields: [Substring: Substring] = [:]
            for line in stanza.split(separator: "\n") {
                guard let colon = line.firstIndex(of: ":"), !line.hasPrefix(" ") else { continue }
                fields[line[..<colon]] = line[line.index(after: colon)...].drop(while: { $0 == " " })
            }
            guard let name = fields["Package"], let version = fields["Version"],
                  name.hasPrefix("linux-image-"), name.hasSuffix("-unsigned") else { return nil }
            return KernelPackage(name: String(name), version: DebianVersion(String(version)))
        }
    }

    /// The .deb in `cache`, downloaded on first use.
    ///
    /// apt-get writes into a private directory that is renamed into the cache afterwards, so a
    /// killed download never leaves a truncated .deb under the name later builds trust.
    func download(into cache: URL, logger: Logger) async throws -> URL {
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        // apt-get download's file name: NAME_VERSION_ARCH.deb, with an epoch's ':' as %3a.
        let prefix = "\(name)_\(version.description.replacingOccurrences(of: ":", with: "%3a"))_"
        func cached(in directory: URL) throws -> URL? {
            try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .first { $0.hasPrefix(prefix) && $0.hasSuffix(".deb") }
                .map { directory.appendingPathComponent($0) }
        }
        if let deb = try cached(in: cache) {
            logger.debug("using cached \(deb.path)")
            return deb
        }
        let partial = cache.appendingPathComponent(".download-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: partial) }
        let started = ContinuousClock.now
        try await Command("apt-get", ["download", "-q", "\(name)=\(version)"], workingDirectory: partial).run()
        guard let downloaded = try cached(in: partial) else {
            throw GuestImageError.unexpected("apt-get download \(name) left no .deb in \(partial.path)")
        }
        let target = cache.appendingPathComponent(downloaded.lastPathComponent)
        try renameReplacing(downloaded, target)
        logger.info("downloaded \(target.lastPathComponent) in \(ContinuousClock.now - started)")
        return target
    }

    /// The .deb unpacked into `cache/NAME_VERSION`, with modules.dep, which the package does not
    /// ship (Debian's postinst runs depmod on install; we never install). Done once per version.
    ///
    /// Kept rather than redone per build: unpacking and depmod take ~2 s, and deleting the
    /// ~100 MB tree just written took 3–4 s more on our hosts (writeback already under way).
    /// The tree appears under its final name only when complete; delete the cache at any time.
    func unpack(_ deb: URL, cache: URL) async throws -> UnpackedKernel {
        let root = cache.appendingPathComponent(deb.deletingPathExtension().lastPathComponent)
        let complete = root.appendingPathComponent(".nimbus-unpacked")
        let unpacked = UnpackedKernel(
            root: root, release: release, vmlinuz: root.appendingPathComponent("boot/vmlinuz-\(release)"))
        if FileManager.default.fileExists(atPath: complete.path) { return unpacked }

        let partial = cache.appendingPathComponent(".unpack-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: true)
        defer { _ = try? Command("rm", ["-rf", "--one-file-system", partial.path]).runBlocking() }
        try await Command("dpkg-deb", ["-x", deb.path, partial.path]).run()
        for path in ["lib/modules/\(release)", "boot/vmlinuz-\(release)"]
        where !FileManager.default.fileExists(atPath: partial.appendingPathComponent(path).path) {
            throw GuestImageError.unexpected("\(name) has no /\(path)")
        }
        try await Command("depmod", ["-b", partial.path, release]).run()
        guard FileManager.default.createFile(atPath: partial.appendingPathComponent(".nimbus-unpacked").path, contents: nil) else {
            throw GuestImageError.unexpected("cannot write to \(partial.path)")
        }
        // A leftover tree without the marker (older layout, manual edits) is replaced.
        if rename(partial.path, root.path) != 0 && !FileManager.default.fileExists(atPath: complete.path) {
            try Command("rm", ["-rf", "--one-file-system", root.path]).runBlocking()
            try renameReplacing(partial, root)
        }
        return unpacked
    }
}

/// A kernel package unpacked into a directory, with modules.dep.
struct UnpackedKernel: Sendable {
    let root: URL
    let release: String
    let vmlinuz: URL

    /// The module files `insmod` must load, in order, for each of `modules`, each file once.
    ///
    /// Modules built into this kernel contribute nothing (virtio_pci is a module in 6.1 and built in
    /// in 6.12). `optional` modules may be missing (the 6.1 cloud kernel has no ahci).
    /// - Parameter skipping: files already loaded by an earlier list.
    func loadOrder(for modules: [String], optional: Set<String> = [], skipping: [URL] = []) async throws -> [URL] {
        var order: [URL] = []
        var seen = Set(skipping.map(\.path))
        for module in modules {
            let output: String
            do {
                output = try await Command("modprobe", ["-d", root.path, "-S", release, "--show-depends", module]).run()
            } catch GuestImageError.commandFailed(_, _, let standardError) where standardError.contains("not found") {
                if optional.contains(module) { continue }
                throw GuestImageError.moduleNotFound(module: module, kernelRelease: release)
            }
            // Lines are `insmod /path/to/mod.ko[.xz] [options]` or `builtin NAME`.
            for line in output.split(separator: "\n") {
                let words = line.split(separator: " ")
                guard words.count >= 2, words[0] == "insmod" else { continue }
                let path = String(words[1])
                if seen.insert(path).inserted { order.append(URL(fileURLWithPath: path)) }
            }
        }
        return order
    }
}

/// rename(2): atomic, and unlike FileManager.moveItem it replaces an existing target, which is
/// what a rebuild (or a concurrent download of the same .deb) must do.
func renameReplacing(_ source: URL, _ target: URL) throws {
    guard rename(source.path, target.path) == 0 else {
        throw GuestImageError.unexpected("rename \(source.path) -> \(target.path): \(String(cString: strerror(errno)))")
    }
}
