import Foundation
import Logging

/// Undo steps for host resources a build acquires (loop devices, mounts), run newest first.
///
/// A failed or interrupted build must never leave a mounted loop device behind: the next build
/// would find the mount point busy, and loop devices are a small, host-wide pool. Swift's `defer`
/// cannot `await`, so the steps are blocking closures that run from `defer { cleanup.unwind() }`,
/// and the success path unwinds explicitly (and checks) before using the result.
final class CleanupStack {
    private var steps: [(label: String, action: () throws -> Void)] = []
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func push(_ label: String, _ action: @escaping () throws -> Void) {
        steps.append((label, action))
    }

    /// Runs every step, newest first, even after one fails, and returns what failed.
    @discardableResult
    func unwind() -> [String] {
        var failures: [String] = []
        while let step = steps.popLast() {
            do {
                try step.action()
            } catch {
                logger.error("cleanup failed: \(step.label): \(error)")
                failures.append("\(step.label): \(error)")
            }
        }
        return failures
    }

    /// Unwinds now and throws if anything could not be released: the image must not be read
    /// while its filesystem may still be mounted.
    func unwindOrThrow() throws {
        let failures = unwind()
        if !failures.isEmpty {
            throw GuestImageError.unexpected("cleanup failed: " + failures.joined(separator: "; "))
        }
    }
}
