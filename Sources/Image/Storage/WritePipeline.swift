import Dispatch
import NIOCore
import NimbusCore
#if canImport(Glibc)
import Glibc
#endif

/// Writes an upload's batches to a file while hashing them, on three threads of their own.
///
/// MD5 and SHA-512 each cost more than the copy itself, and on two cores nothing else may wait for
/// them: each batch is hashed on two dispatch queues and written on a third while the upload task
/// gathers the next batch, which it hands over once the previous one is done (so at most two
/// batches are held). Not on the cooperative pool: it has one thread per core, and hashing jobs there
/// leave the upload task none to resume on.
///
/// The data bypasses the page cache (`O_DIRECT`, in aligned 1 MiB blocks copied into a buffer of
/// the pipeline's own): image data is read rarely, and on a VM whose host takes back freed guest
/// memory, each new page-cache page costs a fault on the host — buffered writes of 1 GiB took
/// 0.3–1.5 s of system time here, direct ones 0.15–0.2 s. The tail under a block, and filesystems
/// without O_DIRECT (tmpfs), are written through the page cache, whose writeback starts at once
/// (`sync_file_range`) so the closing `fsync` has little left to wait for.
final class WritePipeline: @unchecked Sendable {
    static let blockSize = 1 << 20

    private let descriptor: Int32
    private let md5Digest = DigestStream(.md5), sha512Digest = DigestStream(.sha512)
    private let md5Queue = DispatchQueue(label: "nimbus.image.md5")
    private let sha512Queue = DispatchQueue(label: "nimbus.image.sha512")
    private let writeQueue = DispatchQueue(label: "nimbus.image.write")
    private var inFlight: DispatchGroup?
    // Touched only on writeQueue, or after awaiting inFlight (the group orders the accesses).
    private var offset: off_t = 0
    private var writeError: Int32 = 0
    /// Aligned memory where direct writes gather a block (nil if the file is not open for them).
    private let staging: UnsafeMutableRawBufferPointer?
    private var stagingFill = 0
    private var direct: Bool

    /// - Parameter direct: whether `descriptor` was opened with O_DIRECT.
    init(descriptor: Int32, direct: Bool) {
        self.descriptor = descriptor
        var memory: UnsafeMutableRawPointer?
        if direct, posix_memalign(&memory, 4096, Self.blockSize) == 0, let memory {
            staging = UnsafeMutableRawBufferPointer(start: memory, count: Self.blockSize)
            self.direct = true
        } else {
            staging = nil
            self.direct = false
            if direct { Self.stopDirect(descriptor) }
        }
    }

    deinit { staging.map { free($0.baseAddress) } }

    /// Hands one batch over, once the previous one is hashed and written.
    func submit(_ batch: [ByteBuffer]) async throws {
        try await awaitPrevious()
        let group = DispatchGroup()
        md5Queue.async(group: group) { for buffer in batch { buffer.withUnsafeReadableBytes { self.md5Digest.update($0) } } }
        sha512Queue.async(group: group) { for buffer in batch { buffer.withUnsafeReadableBytes { self.sha512Digest.update($0) } } }
        writeQueue.async(group: group) { for buffer in batch { buffer.withUnsafeReadableBytes { self.write($0) } } }
        inFlight = group
    }

    /// Waits for the last batch, writes what is left of the last block, and makes the file durable.
    func finish() async throws {
        try await awaitPrevious()
        let failed: Int32 = await withCheckedContinuation { done in
            writeQueue.async {
                if self.direct, let staging = self.staging, self.stagingFill > 0 {
                    self.usePageCache()
                    self.writeAll(UnsafeRawBufferPointer(rebasing: staging[..<self.stagingFill]))
                }
                if self.writeError != 0 { return done.resume(returning: self.writeError) }
                done.resume(returning: fsync(self.descriptor) == 0 ? 0 : errno)
            }
        }
        if failed != 0 { throw NimbusError.internal("cannot write image data to disk (errno \(failed))") }
    }

    /// Waits for whatever is in flight, ignoring its outcome (the upload failed anyway).
    func drain() async { try? await awaitPrevious() }

    /// The hashes of everything submitted; call once, after `finish`.
    func digests() -> (md5: String, sha512: String) {
        (ImageFileStore.hex(md5Digest.finalize()), ImageFileStore.hex(sha512Digest.finalize()))
    }

    private func awaitPrevious() async throws {
        guard let group = inFlight else { return }
        await withCheckedContinuation { done in group.notify(queue: writeQueue) { done.resume() } }
        inFlight = nil
        if writeError != 0 { throw NimbusError.internal("cannot write image data (errno \(writeError))") }
    }

    private func write(_ bytes: UnsafeRawBufferPointer) {
        guard writeError == 0, !bytes.isEmpty else { return }
        guard direct, let staging else {
            if writeAll(bytes) == 0 {
                _ = GlibcExtras.syncFileRange?(descriptor, offset - bytes.count, bytes.count, GlibcExtras.syncFileRangeWrite)
            }
            return
        }
        var consumed = 0
        while consumed < bytes.count {
            let taken = min(bytes.count - consumed, staging.count - stagingFill)
            (staging.baseAddress! + stagingFill).copyMemory(from: bytes.baseAddress! + consumed, byteCount: taken)
            stagingFill += taken
            consumed += taken
            guard stagingFill == staging.count else { continue }
            stagingFill = 0
            if writeAll(UnsafeRawBufferPointer(staging)) == EINVAL {
                // The filesystem took O_DIRECT at open but refuses it for writes.
                writeError = 0
                usePageCache()
                writeAll(UnsafeRawBufferPointer(staging))
            }
            guard writeError == 0 else { return }
            if !direct { return write(UnsafeRawBufferPointer(rebasing: bytes[consumed...])) }
        }
    }

    /// pwrite(2) until all of `bytes` is at `offset`; records the error, if any, and returns it.
    @discardableResult
    private func writeAll(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        var done = 0
        while done < bytes.count {
            let written = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, offset + done)
            if written < 0 {
                if errno == EINTR { continue }
                writeError = errno
                return errno
            }
            done += written
        }
        offset += bytes.count
        return 0
    }

    /// From now on, writes go through the page cache.
    private func usePageCache() {
        direct = false
        Self.stopDirect(descriptor)
    }

    private static func stopDirect(_ descriptor: Int32) {
        guard let flag = GlibcExtras.openDirect else { return }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~flag)
    }
}
