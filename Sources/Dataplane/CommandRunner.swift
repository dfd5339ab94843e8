import Foundation
import NimbusCore

/// A failed host command, with what it wrote to stderr (the only useful diagnostic `ip`/`nft` give).
public typealias DataplaneError = HostCommandError

/// Runs host tools with argument arrays (never a shell string), optionally feeding stdin
/// (`ip -batch -`, `nft -f -`).
///
/// (`HostCommand` says why files, posix_spawn and close-on-exec input.)
struct CommandRunner: Sendable {
    /// When set, host-level commands run inside this namespace (a second emulated host).
    var executionNamespace: String?

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

    /// No host tool the dataplane runs takes long; one that does is hung, and waiting for it would
    /// stall every converge queued behind it. It is killed, and its converge fails (and retries).
    static let commandTimeout: Duration = .seconds(60)

    @discardableResult
    static func run(_ arguments: [String], input: String? = nil) async throws -> String {
        try await HostCommand(arguments, input: input.map { .text($0) } ?? .none, timeout: commandTimeout).run()
    }
}
