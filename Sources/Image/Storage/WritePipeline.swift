import Dispatch
import NIOCore
import NimbusCore
#if canImport(Glibc)
import Glibc
#endif

/// Writes an upload to a file while hashing it, on three threads of its own.
///
/// The upload task copies what the socket delivers into 1 MiB blocks of the pipeline's own,
/// aligned for direct writes (see `DirectIO`), and lets go of the socket's buffers at once. Each
/// full block is hashed on two dispatch queues (MD5, SHA-512) and written with `pwrite` on a
/// third, while the task fills the next one. Up to `depth` blocks are in flight, so the slowest
/// hash (MD5, about 700 MiB/s on one core here) always has work queued: with one block in
/// flight, 1 GiB uploaded at 309–392 MiB/s; with eight, 383–494, in the same hour. Not on the
/// cooperative pool: it has one thread per core, and hashing jobs there would leave the upload
/// task none to resume on.
///
/// Whole blocks are written past the page cache when the file was opened so. The last, partial
/// block, and every block on filesystems without O_DIRECT (tmpfs before Linux 6.6), go through
/// the page cache, whose writeback starts at once (`sync_file_range`) so the closing `fsync` has
/// little left.
final class WritePipeline: @unchecked Sendable {
    static let blockSize = 1 << 20
    /// 8 MiB at most, whatever the upload's size.
    static let depth = 8

    private let descriptor: Int32
    private let md5Digest = DigestStream(.md5), sha512Digest = DigestStream(.sha512)
    private let md5Queue = DispatchQueue(label: "nimbus.image.md5")
    private let sha512Queue = DispatchQueue(label: "nimbus.image.sha512")
    private let writeQueue = DispatchQueue(label: "nimbus.image.write")

    // Touched only by the upload task.
    private var blocks: [UnsafeMutableRawBufferPointer] = []
    private var idle: [UnsafeMutableRawBufferPointer] = []
    private var inFlight: [(done: DispatchGroup, block: UnsafeMutableRawBufferPointer)] = []
    private var filling: UnsafeMutableRawBufferPointer?
    private var filled = 0

    // Touched only on writeQueue.
    private var direct: Bool
    private var offset: off_t = 0
    private var writeError: Int32 = 0

    /// - Parameter direct: whether `descriptor` was opened with O_DIRECT.
    init(descriptor: Int32, direct: Bool) {
        self.descriptor = descriptor
        self.direct = direct
    }

    // The queues' jobs hold the pipeline, so nothing uses the blocks by now.
    deinit { for block in blocks { free(block.baseAddress) } }

    /// Takes a copy of `chunk`; waits only when `depth` blocks are still being hashed or written.
    func append(_ chunk: ByteBuffer) async throws {
        var consumed = 0
        while consumed < chunk.readableBytes {
            let block = try await fillingBlock()
            let taken = min(chunk.readableBytes - consumed, block.count - filled)
            chunk.withUnsafeReadableBytes { bytes in
                (block.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + consumed, byteCount: taken)
            }
            filled += taken
            consumed += taken
            if filled == block.count { send(block, count: filled) }
        }
    }

    /// Sends the last block, waits for every block, and makes the file durable.
    func finish() async throws {
        if let block = filling, filled > 0 { send(block, count: filled) }
        try await awaitAll()
        let failed: Int32 = await withCheckedContinuation { done in
            writeQueue.async { done.resume(returning: fsync(self.descriptor) == 0 ? 0 : errno) }
        }
        if failed != 0 { throw NimbusError.internal("cannot write image data to disk (errno \(failed))") }
    }

    /// Waits for whatever is in flight, ignoring its outcome (the upload failed anyway).
    func drain() async {
        while !inFlight.isEmpty { try? await awaitOldest() }
    }

    /// The hashes of everything appended; call once, after `finish`.
    func digests() -> (md5: String, sha512: String) {
        (ImageFileStore.hex(md5Digest.finalize()), ImageFileStore.hex(sha512Digest.finalize()))
    }

    private func fillingBlock() async throws -> UnsafeMutableRawBufferPointer {
        if let filling { return filling }
        if idle.isEmpty {
            if blocks.count < Self.depth {
                guard let block = DirectIO.allocate(Self.blockSize) else {
                    throw NimbusError.internal("cannot allocate memory for an upload")
                }
                blocks.append(block)
                idle.append(block)
            } else {
                try await awaitOldest()
            }
        }
        let block = idle.removeLast()
        filling = block
        filled = 0
        return block
    }

    private func send(_ block: UnsafeMutableRawBufferPointer, count: Int) {
        let span = Span(bytes: UnsafeRawBufferPointer(rebasing: block[..<count]))
        let done = DispatchGroup()
        md5Queue.async(group: done) { self.md5Digest.update(span.bytes) }
        sha512Queue.async(group: done) { self.sha512Digest.update(span.bytes) }
        writeQueue.async(group: done) { self.write(span.bytes) }
        inFlight.append((done, block))
        filling = nil
    }

    /// A block's filled part, read by the three queues at once and written by none of them.
    private struct Span: @unchecked Sendable { let bytes: UnsafeRawBufferPointer }

    private func awaitAll() async throws {
        while !inFlight.isEmpty { try await awaitOldest() }
    }

    /// Waits for the oldest block in flight and puts it back among the idle ones.
    private func awaitOldest() async throws {
        let (done, block) = inFlight.removeFirst()
        // Read on writeQueue: later blocks may be writing meanwhile.
        let failed: Int32 = await withCheckedContinuation { resume in
            done.notify(queue: writeQueue) { resume.resume(returning: self.writeError) }
        }
        idle.append(block)
        if failed != 0 { throw NimbusError.internal("cannot write image data (errno \(failed))") }
    }

    /// On writeQueue: one block at the next offset.
    private func write(_ bytes: UnsafeRawBufferPointer) {
        guard writeError == 0 else { return }
        // Only whole blocks are aligned in length; the last one ends the upload.
        if direct, bytes.count < Self.blockSize { usePageCache() }
        var failed = writeAll(bytes)
        if failed == EINVAL, direct {
            // The filesystem took O_DIRECT at open but refuses it for writes.
            usePageCache()
            failed = writeAll(bytes)
        }
        if failed != 0 {
            writeError = failed
        } else {
            if !direct {
                _ = GlibcExtras.syncFileRange?(descriptor, offset, off_t(bytes.count), GlibcExtras.syncFileRangeWrite)
            }
            offset += off_t(bytes.count)
        }
    }

    /// pwrite(2) until all of `bytes` is at `offset`; returns errno, or 0.
    private func writeAll(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        var done = 0
        while done < bytes.count {
            let written = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, offset + off_t(done))
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            done += written
        }
        return 0
    }

    private func usePageCache() {
        direct = false
        DirectIO.stop(on: descriptor)
    }
}
