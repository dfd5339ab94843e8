import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed host command, with what it wrote to stderr (the only useful diagnostic `ip`/`nft` give).
public struct DataplaneError: Error, CustomStringConvertible, Sendable {
    public var command: String
    public var status: Int32
    public var standardError: String

    public var description: String { "`\(command)` exited \(status): \(standardError.trimmingCharacters(in: .whitespacesAndNewlines))" }
}

/// Runs host tools with argument arrays (never a shell string), optionally feeding stdin
/// (`ip -batch -`, `nft -f -`).
///
/// Output goes to files rather than pipes: dnsmasq daemonizes and its child would keep a pipe
/// open (we would wait for its exit forever); files also avoid the full-pipe deadlock.
/// The blocking wait runs on a dispatch queue, never on the Swift cooperative pool.
struct CommandRunner: Sendable {
    /// When set, host-level commands run inside this namespace (a second emulated host).
    var executionNamespace: String?

    private static let queue = DispatchQueue(label: "nimbus.dataplane.commands", attributes: .concurrent)
    private static let searchPath = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"]

    /// Runs `arguments` on the host (inside the execution namespace when there is one).
    @discardableResult
    func host(_ arguments: [String], input: String? = nil) async throws -> String {
        try await Self.run(hostArguments(arguments), input: input)
    }

    /// `ip` with `-n NS` rather than `ip netns exec NS ip`: one process instead of two.
    @discardableResult
    func ip(_ arguments: [String], input: String? = nil) async throws -> String {
        let prefix = executionNamespace.map { ["-n", $0] } ?? []
        return try await Self.run(["ip"] + prefix + arguments, input: input)
    }

    /// Runs a batch of `ip` lines in one process; `-force` keeps going after an error so one bad
    /// device doesn't block the rest, and the error is still reported.
    func ipBatch(_ lines: [String]) async throws {
        guard !lines.isEmpty else { return }
        try await ip(["-force", "-batch", "-"], input: lines.joined(separator: "\n") + "\n")
    }

    /// Runs `arguments` inside a named (global) namespace, whatever the execution namespace.
    @discardableResult
    func inNamespace(_ namespace: String, _ arguments: [String], input: String? = nil) async throws -> String {
        try await Self.run(["ip", "netns", "exec", namespace] + arguments, input: input)
    }

    func hostArguments(_ arguments: [String]) -> [String] {
        guard let executionNamespace else { return arguments }
        return ["ip", "netns", "exec", executionNamespace] + arguments
    }

    @discardableResult
    static func run(_ arguments: [String], input: String? = nil) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try runBlocking(arguments, input: input) }) }
        }
    }

    /// Spawns with `posix_spawn` rather than `Process`: the child must start with an empty signal
    /// mask and default handlers. Dispatch threads block signals and a child inherits that mask,
    /// which left `busybox ping -W1` deaf to its own SIGALRM and would leave dnsmasq deaf to
    /// SIGHUP/SIGTERM.
    static func runBlocking(_ arguments: [String], input: String? = nil) throws -> String {
        let scratch = FileManager.default.temporaryDirectory.path + "/nimbus-dp-\(UUID().uuidString)"
        let outPath = scratch + ".out", errPath = scratch + ".err"
        defer { unlink(outPath); unlink(errPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipeFDs: [Int32] = [-1, -1]
        if input != nil {
            // Close-on-exec: a command spawned concurrently (another host's converge) must not
            // inherit this input's write end, or this command never sees the end of its input
            // while that one runs; two such commands waited on each other until killed.
            // (A socket pair, the one way here to get both ends close-on-exec atomically.)
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pipeFDs) == 0 else {
                throw spawnError(arguments, "socketpair")
            }
            posix_spawn_file_actions_adddup2(&actions, pipeFDs[0], 0)
            posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t(), defaults = sigset_t()
        sigemptyset(&mask)
        sigemptyset(&defaults)
        for signal in Int32(1)..<32 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let path = locate(arguments[0])
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, &argv, environ)
        if input != nil { close(pipeFDs[0]) }
        guard spawned == 0 else {
            if input != nil { close(pipeFDs[1]) }
            throw DataplaneError(command: arguments.joined(separator: " "), status: -1, standardError: String(cString: strerror(spawned)))
        }
        if let input {
            ignoreBrokenPipe
            // Inputs are small (a ruleset, a batch) and the tools read all of stdin before writing much.
            let bytes = Array(input.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { write(pipeFDs[1], $0.baseAddress, $0.count) }
                if written <= 0 { break }
                offset += written
            }
            close(pipeFDs[1])
        }
        let status = try waitForExit(pid, arguments)
        let exited = status & 0x7f == 0, code = (status >> 8) & 0xff
        guard exited, code == 0 else {
            let text = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            throw DataplaneError(command: arguments.joined(separator: " "), status: exited ? code : -(status & 0x7f), standardError: text)
        }
        return (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    }

    /// No host tool the dataplane runs takes long; one that does is hung, and waiting for it would
    /// stall every converge queued behind it. It is killed, and its converge fails (and retries).
    static let commandTimeout: Double = 60

    private static func waitForExit(_ pid: pid_t, _ arguments: [String]) throws -> Int32 {
        let deadline = Date().addingTimeInterval(commandTimeout)
        var status: Int32 = 0
        var pause: useconds_t = 50
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return status }
            if result < 0 && errno != EINTR { throw spawnError(arguments, "waitpid") }
            if Date() > deadline {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                throw DataplaneError(command: arguments.joined(separator: " "), status: -Int32(SIGKILL),
                                     standardError: "killed: still running after \(Int(commandTimeout)) s")
            }
            usleep(pause)
            pause = min(pause * 2, 2_000)
        }
    }

    /// A tool that dies before reading its stdin must give us EPIPE, not a SIGPIPE that kills the agent.
    private static let ignoreBrokenPipe: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    private static func spawnError(_ arguments: [String], _ what: String) -> DataplaneError {
        DataplaneError(command: arguments.joined(separator: " "), status: errno, standardError: "\(what): \(String(cString: strerror(errno)))")
    }

    private static func locate(_ tool: String) -> String {
        if tool.hasPrefix("/") { return tool }
        for directory in searchPath where FileManager.default.isExecutableFile(atPath: directory + "/" + tool) {
            return directory + "/" + tool
        }
        return "/usr/bin/" + tool
    }
}
