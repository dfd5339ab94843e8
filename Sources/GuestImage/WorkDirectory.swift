import Foundation
import Logging

/// The builder's work directory: one build at a time, and whatever a killed build left behind
/// is released before the next one starts.
///
/// `defer`-style cleanup covers errors, not SIGKILL, Ctrl-C or a power cut: a build killed while
/// its ext4 was mounted leaves a mount and a loop device that nothing else would ever release.
/// The exclusive lock makes "not locked by anyone else" mean "stale", so recovery can't hit a live build.
final class WorkDirectory {
    let url: URL
    private var lockDescriptor: Int32
    private let logger: Logger

    /// Takes the lock (waiting for a concurrent build to finish), then recovers stale builds.
    init(_ url: URL, logger: Logger) async throws {
        self.url = url
        self.logger = logger
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let descriptor = open(url.appendingPathComponent(".lock").path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw GuestImageError.unexpected("cannot open \(url.path)/.lock: \(String(cString: strerror(errno)))")
        }
        // flock(2) is released by the kernel when the process dies, so a killed build never
        // blocks the next one. Polled with LOCK_NB: a blocking flock would park a pool thread.
        var waited = false
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK else {
                close(descriptor)
                throw GuestImageError.unexpected("cannot lock \(url.path): \(String(cString: strerror(errno)))")
            }
            if !waited { logger.info("waiting for another guest image build in \(url.path)") }
            waited = true
            try await Task.sleep(for: .milliseconds(200))
        }
        lockDescriptor = descriptor
        recoverStaleBuilds()
    }

    deinit {
        unlock()
    }

    /// Releases the lock; call it at the end of the build (an explicit call also keeps this
    /// object, and so the lock, alive until then: ARC may end a lifetime at its last use).
    func unlock() {
        guard lockDescriptor >= 0 else { return }
        flock(lockDescriptor, LOCK_UN)
        close(lockDescriptor)
        lockDescriptor = -1
    }

    /// A fresh scratch directory for one build; `recoverStaleBuilds` knows the `build-` prefix.
    func makeScratch() throws -> URL {
        let scratch = url.appendingPathComponent("build-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        return scratch
    }

    /// Unmounts, detaches and deletes what killed builds left: scratch directories (with a
    /// possibly mounted `mnt` over a loop device on `disk.raw`), half-unpacked kernels and
    /// half-downloaded packages. Best effort: each failure is logged and the build goes on.
    private func recoverStaleBuilds() {
        let stale = entries(of: url).filter { $0.lastPathComponent.hasPrefix("build-") }
            + entries(of: url.appendingPathComponent("kernels")).filter { $0.lastPathComponent.hasPrefix(".unpack-") }
            + entries(of: url.appendingPathComponent("debs")).filter { $0.lastPathComponent.hasPrefix(".download-") }
        for directory in stale {
            logger.notice("removing what an interrupted build left: \(directory.path)")
            do {
                let mountPoint = directory.appendingPathComponent("mnt")
                if (try? Command("mountpoint", ["-q", mountPoint.path]).runBlocking()) != nil {
                    try BootDisk.unmount(mountPoint)
                }
                let raw = directory.appendingPathComponent("disk.raw")
                if FileManager.default.fileExists(atPath: raw.path) {
                    let loops = try Command("losetup", ["--associated", raw.path, "--output", "NAME", "--noheadings"]).runBlocking()
                    for loop in loops.split(separator: "\n") {
                        try Command("losetup", ["--detach", String(loop)]).runBlocking()
                    }
                }
                try Command("rm", ["-rf", "--one-file-system", directory.path]).runBlocking()
            } catch {
                logger.warning("could not clean up \(directory.path): \(error)")
            }
        }
    }

    private func entries(of directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.map { directory.appendingPathComponent($0) }
    }
}
