import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A host tool that failed, with what it wrote to stderr (usually the only useful diagnostic).
public struct HostCommandError: Error, CustomStringConvertible, Sendable {
    public var command: String
    /// The exit status, the negated signal that ended it, or an errno for a failure to start it.
    public var status: Int32
    public var standardError: String

    public init(command: String, status: Int32, standardError: String) {
        self.command = command
        self.status = status
        self.standardError = standardError
    }

    public var description: String { "`\(command)` exited \(status): \(standardError.trimmingCharacters(in: .whitespacesAndNewlines))" }
}

/// Runs a host tool from an argument array, never a shell string: names and metadata can hold
/// any character and must reach no parser but the tool's. The one way Nimbus starts processes.
///
/// - `posix_spawn`, not Foundation's `Process`: a child starts with an empty signal mask and
///   default handlers. Dispatch threads block signals and `Process` children inherit that mask,
///   which left `busybox ping -W1` deaf to its own SIGALRM and dnsmasq deaf to SIGTERM.
/// - Output goes to files, not pipes: a daemonizing child (dnsmasq) keeps a pipe open forever,
///   and a pipe nobody drains deadlocks a chatty tool.
/// - The child gets standard input, output and error, and no other descriptor of ours.
/// - Input comes through a close-on-exec socket pair: a command spawned concurrently must not
///   inherit another's write end, or each waits for the other's end of input.
public struct HostCommand: Sendable {
    public enum Input: Sendable {
        case none
        case text(String)
        case file(String)
    }

    public var arguments: [String]
    public var input: Input
    /// A file that receives standard output instead of the returned string.
    public var outputFile: String?
    public var workingDirectory: String?
    /// Set on top of this process's environment.
    public var environment: [String: String]
    /// A command still running after this long is killed and reported as failed.
    public var timeout: Duration?

    public init(_ arguments: [String], input: Input = .none, outputFile: String? = nil, workingDirectory: String? = nil,
                environment: [String: String] = [:], timeout: Duration? = nil) {
        self.arguments = arguments
        self.input = input
        self.outputFile = outputFile
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.timeout = timeout
    }

    private static let queue = DispatchQueue(label: "nimbus.host-commands", attributes: .concurrent)

    /// Runs to completion on a dispatch thread, never parking the cooperative pool.
    /// - Returns: standard output (empty when it went to `outputFile`).
    @discardableResult
    public func run() async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Self.queue.async { continuation.resume(with: Result { try self.runBlocking() }) }
        }
    }

    /// The blocking form, for cleanup steps in `defer`, which cannot `await`.
    @discardableResult
    public func runBlocking() throws -> String {
        let scratch = FileManager.default.temporaryDirectory.path + "/nimbus-run-\(UUID().uuidString)"
        let outPath = outputFile ?? scratch + ".out", errPath = scratch + ".err"
        defer {
            if outputFile == nil { unlink(outPath) }
            unlink(errPath)
        }
        var inputFDs: [Int32] = [-1, -1]
        var text: [UInt8]?
        switch input {
        case .none, .file: break
        case .text(let string):
            text = Array(string.utf8)
            // A socket pair: the one way here to get both ends close-on-exec atomically.
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &inputFDs) == 0 else {
                throw failure("socketpair")
            }
        }
        let pid: pid_t
        do {
            pid = try Self.spawn(arguments, stdin: inputFDs[0], stdinPath: { if case .file(let path) = input { path } else { nil } }(),
                                 stdout: outPath, stderr: errPath, append: false, workingDirectory: workingDirectory,
                                 environment: environment, newSession: false)
        } catch {
            if text != nil { close(inputFDs[0]); close(inputFDs[1]) }
            throw error
        }
        if let text {
            close(inputFDs[0])
            Self.ignoreBrokenPipe
            // Inputs are small (a ruleset, a batch, a partition script), read whole before output.
            var offset = 0
            while offset < text.count {
                let written = text[offset...].withUnsafeBytes { write(inputFDs[1], $0.baseAddress, $0.count) }
                if written <= 0 { break }
                offset += written
            }
            close(inputFDs[1])
        }
        let status = try waitForExit(pid)
        let exited = status & 0x7f == 0, code = (status >> 8) & 0xff
        guard exited, code == 0 else {
            let standardError = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            throw HostCommandError(command: description, status: exited ? code : -(status & 0x7f), standardError: standardError)
        }
        if outputFile != nil { return "" }
        return (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    }

    /// Starts a long-lived process (QEMU) with stdout and stderr appended to `log`, in a session
    /// of its own so that a terminal's Ctrl-C or the agent's death never reaches it.
    /// - Returns: its pid. The caller reaps it with `exitStatus(of:)`.
    public static func start(_ arguments: [String], log: String, environment: [String: String] = [:]) throws -> pid_t {
        try spawn(arguments, stdin: -1, stdinPath: nil, stdout: log, stderr: log, append: true, workingDirectory: nil,
                  environment: environment, newSession: true)
    }

    /// The wait status of a child that has exited (reaping it), or nil while it runs.
    public static func exitStatus(of pid: pid_t) -> Int32? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { return status }
        // Not (or no longer) our child: nothing to wait for.
        if result < 0 && errno == ECHILD { return 0 }
        return nil
    }

    /// `tool arg…` for messages only; it is never executed as a string.
    public var description: String { arguments.joined(separator: " ") }

    /// Finds a tool in PATH and the sbin directories, which a non-login root shell may lack.
    public static func locate(_ tool: String) -> String? {
        if tool.contains("/") { return tool }
        let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
        for directory in path + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        where FileManager.default.isExecutableFile(atPath: directory + "/" + tool) {
            return directory + "/" + tool
        }
        return nil
    }

    private static func spawn(_ arguments: [String], stdin: Int32, stdinPath: String?, stdout: String, stderr: String, append: Bool,
                              workingDirectory: String?, environment: [String: String], newSession: Bool) throws -> pid_t {
        let command = arguments.joined(separator: " ")
        guard let tool = arguments.first, let path = locate(tool) else {
            throw HostCommandError(command: command, status: ENOENT, standardError: "\(arguments.first ?? "") is not installed")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if stdin >= 0 {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
        }
        let outputFlags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, outputFlags, 0o600)
        if stderr == stdout {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, outputFlags, 0o600)
        }
        // Only 0, 1 and 2 reach the child. Not every descriptor here is close-on-exec (NIO's
        // listening sockets are not): a QEMU that inherited the API's socket kept its port bound
        // after the cloud was killed, and the restarted cloud could not listen.
        guard let addCloseFrom = GlibcExtras.spawnAddCloseFrom else {
            throw HostCommandError(command: command, status: ENOSYS, standardError: "posix_spawn cannot close descriptors here (glibc < 2.34)")
        }
        _ = addCloseFrom(&actions, 3)
        if let workingDirectory {
            guard let addchdir = GlibcExtras.spawnAddChdir else {
                throw HostCommandError(command: command, status: ENOSYS, standardError: "posix_spawn cannot change directory here")
            }
            _ = addchdir(&actions, workingDirectory)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t(), defaults = sigset_t()
        sigemptyset(&mask)
        sigemptyset(&defaults)
        for signal in Int32(1)..<32 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= GlibcExtras.spawnSetSID }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        var merged = ProcessInfo.processInfo.environment
        for (name, value) in environment { merged[name] = value }
        var environ: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            environ.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, &argv, &environ)
        guard spawned == 0 else {
            throw HostCommandError(command: command, status: spawned, standardError: String(cString: strerror(spawned)))
        }
        return pid
    }

    private func waitForExit(_ pid: pid_t) throws -> Int32 {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var status: Int32 = 0
        var pause: useconds_t = 50
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return status }
            if result < 0 && errno != EINTR { throw failure("waitpid") }
            if let deadline, ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                throw HostCommandError(command: description, status: -SIGKILL, standardError: "killed: still running after \(timeout!)")
            }
            usleep(pause)
            pause = min(pause * 2, 2_000)
        }
    }

    /// A tool that dies before reading its input must give us EPIPE, not a SIGPIPE that kills us.
    private static let ignoreBrokenPipe: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    private func failure(_ what: String) -> HostCommandError {
        HostCommandError(command: description, status: errno, standardError: "\(what): \(String(cString: strerror(errno)))")
    }
}
