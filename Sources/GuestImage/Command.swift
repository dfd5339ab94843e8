import Foundation
import NimbusCore

/// One run of a host tool: an executable and an argument array, never a shell string, so no path
/// or package name is ever re-parsed by a shell.
struct Command: Sendable {
    var tool: String
    var arguments: [String]
    var workingDirectory: URL?
    /// A file fed to standard input (sfdisk's partition script, cpio's file list).
    var input: URL?
    /// A file that receives standard output instead of the returned string (archives, decompressed modules).
    var output: URL?

    init(_ tool: String, _ arguments: [String], workingDirectory: URL? = nil, input: URL? = nil, output: URL? = nil) {
        self.tool = tool
        self.arguments = arguments
        self.workingDirectory = workingDirectory
        self.input = input
        self.output = output
    }

    /// Runs the tool off the cooperative pool (some steps take seconds) and returns its
    /// standard output.
    /// - Throws: `GuestImageError.toolMissing` or `.commandFailed` (with the tool's stderr).
    @discardableResult
    func run() async throws -> String {
        do {
            return try await hostCommand().run()
        } catch let error as HostCommandError {
            throw GuestImageError.commandFailed(command: description, status: error.status, standardError: error.standardError)
        }
    }

    /// The blocking form, for cleanup steps that run from `defer`, which cannot `await`.
    @discardableResult
    func runBlocking() throws -> String {
        do {
            return try hostCommand().runBlocking()
        } catch let error as HostCommandError {
            throw GuestImageError.commandFailed(command: description, status: error.status, standardError: error.standardError)
        }
    }

    func hostCommand() throws -> HostCommand {
        // Parsed output (apt-cache, modprobe) must not change with the operator's locale.
        HostCommand([try Self.locate(tool).path] + arguments, input: input.map { .file($0.path) } ?? .none,
                    outputFile: output?.path, workingDirectory: workingDirectory?.path, environment: ["LC_ALL": "C"])
    }

    /// `tool arg…` for error messages and logs only; it is never executed as a string.
    var description: String { ([tool] + arguments).joined(separator: " ") }

    /// Finds a tool on PATH and in the sbin directories, which a non-login root shell may lack.
    static func locate(_ tool: String) throws -> URL {
        guard let path = HostCommand.locate(tool) else {
            throw GuestImageError.toolMissing(tool: tool, package: debianPackage[tool] ?? tool)
        }
        return URL(fileURLWithPath: path)
    }

    /// Which Debian package provides each tool the builder runs (see scripts/guest-deps.txt).
    static let debianPackage: [String: String] = [
        "apt-cache": "apt", "apt-get": "apt", "dpkg-deb": "dpkg",
        "depmod": "kmod", "modprobe": "kmod",
        "busybox": "busybox-static", "gzip": "gzip",
        "sfdisk": "fdisk", "losetup": "mount", "mount": "mount", "umount": "mount",
        "mkfs.ext4": "e2fsprogs", "extlinux": "extlinux", "qemu-img": "qemu-utils", "rm": "coreutils", "mountpoint": "util-linux",
    ]
}
