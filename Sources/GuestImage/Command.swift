import Foundation

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

    /// Runs the tool on a dispatch thread and returns its standard output.
    ///
    /// `Process` blocks until exit and some steps take seconds; parking a cooperative-pool thread
    /// for that long would stall unrelated tasks if the builder runs inside a larger process.
    /// - Throws: `GuestImageError.toolMissing` or `.commandFailed` (with the tool's stderr).
    @discardableResult
    func run() async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try self.runBlocking() })
            }
        }
    }

    /// The blocking form, for cleanup steps that run from `defer`, which cannot `await`.
    @discardableResult
    func runBlocking() throws -> String {
        let process = Process()
        process.executableURL = try Self.locate(tool)
        process.arguments = arguments
        process.currentDirectoryURL = workingDirectory
        // Parsed output (apt-cache, modprobe) must not change with the operator's locale.
        process.environment = ProcessInfo.processInfo.environment.merging(["LC_ALL": "C"]) { _, new in new }

        // stdout and stderr go to files, not pipes: a pipe nobody drains while we wait for exit
        // deadlocks as soon as a tool writes more than the pipe buffer (apt-get's progress, depmod's warnings).
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-command-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let stdoutURL = output ?? scratch.appendingPathComponent("stdout")
        let stderrURL = scratch.appendingPathComponent("stderr")
        for url in [stdoutURL, stderrURL] {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw GuestImageError.unexpected("cannot create \(url.path)")
            }
        }
        let stdoutHandle = try FileHandle(forWritingTo: stdoutURL)
        let stderrHandle = try FileHandle(forWritingTo: stderrURL)
        defer {
            try? stdoutHandle.close()
            try? stderrHandle.close()
        }
        process.standardOutput = stdoutHandle
        process.standardError = stderrHandle
        process.standardInput = try input.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice

        try process.run()
        process.waitUntilExit()

        let standardError = String(decoding: (try? Data(contentsOf: stderrURL)) ?? Data(), as: UTF8.self)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw GuestImageError.commandFailed(command: description, status: process.terminationStatus, standardError: standardError)
        }
        if output != nil { return "" }
        return String(decoding: try Data(contentsOf: stdoutURL), as: UTF8.self)
    }

    /// `tool arg…` for error messages and logs only; it is never executed as a string.
    var description: String { ([tool] + arguments).joined(separator: " ") }

    /// Finds a tool on PATH and in the sbin directories, which a non-login root shell may lack.
    static func locate(_ tool: String) throws -> URL {
        if tool.contains("/") { return URL(fileURLWithPath: tool) }
        let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
        let fallback = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for directory in path + fallback {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(tool)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw GuestImageError.toolMissing(tool: tool, package: debianPackage[tool] ?? tool)
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
