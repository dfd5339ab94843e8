import Foundation

/// Why a guest image build failed.
///
/// Few cases with messages that say what to do: the build runs on an operator's host, and most
/// failures are a missing Debian package or a missing privilege rather than a bug.
public enum GuestImageError: Error, CustomStringConvertible, Sendable {
    /// Loop devices and mounts need root. Message: "guest-image build must run as root (loop devices, mount)".
    case notRoot
    /// A host tool is not installed. Message: "TOOL not found: apt-get install PACKAGE".
    case toolMissing(tool: String, package: String)
    /// A host tool exited non-zero. Message: "COMMAND failed (exit N): STDERR".
    case commandFailed(command: String, status: Int32, standardError: String)
    /// apt-cache knows no `linux-image-*-cloud-amd64-unsigned`, even after `apt-get update`.
    case kernelPackageNotFound(pattern: String)
    /// The kernel lacks a module the guest needs (and it is not built in either).
    case moduleNotFound(module: String, kernelRelease: String)
    /// Anything else about the host or the package contents, described in the message.
    case unexpected(String)

    public var description: String {
        switch self {
        case .notRoot:
            return "guest-image build must run as root (loop devices, mount)"
        case .toolMissing(let tool, let package):
            return "\(tool) not found: apt-get install \(package)"
        case .commandFailed(let command, let status, let standardError):
            let detail = standardError.trimmingCharacters(in: .whitespacesAndNewlines)
            return "\(command) failed (exit \(status))" + (detail.isEmpty ? "" : ": \(detail)")
        case .kernelPackageNotFound(let pattern):
            return "no Debian package matches \(pattern) (is deb.debian.org in the apt sources?)"
        case .moduleNotFound(let module, let kernelRelease):
            return "kernel \(kernelRelease) has no module \(module)"
        case .unexpected(let message):
            return message
        }
    }
}
