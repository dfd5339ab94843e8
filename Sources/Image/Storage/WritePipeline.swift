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
/// Each written batch's writeback starts at once (`sync_file_range`), so the disk works while the
/// upload goes on and the closing `fsync` has little left to wait for.
final class WritePipeline: @unchecked Sendable {
    private let descriptor: Int32
    private let md5Digest = DigestStream(.md5), sha512Digest = DigestStream(.sha512)
    private let md5Queue = DispatchQueue(label: "nimbus.image.md5")
    private let sha512Queue = DispatchQueue(label: "nimbus.image.sha512")
    private let writeQueue = DispatchQueue(label: "nimbus.image.write")
    private var inFlight: DispatchGroup?
    // Touched only on writeQueue, or after awaiting inFlight (the group orders the accesses).
    private var offset: off_t = 0
    private var writeError: Int32 = 0

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// Hands one batch over, once the previous one is hashed and written.
    func submit(_ batch: [ByteBuffer]) async throws {
        try await awaitPrevious()
        let group = DispatchGroup()
        md5Queue.async(group: group) { for buffer in batch { buffer.withUnsafeReadableBytes { self.md5Digest.update($0) } } }
        sha512Queue.async(group: group) { for buffer in batch { buffer.withUnsafeReadableBytes { self.sha512Digest.update($0) } } }
        writeQueue.async(group: group) { self.write(batch) }
        inFlight = group
    }

    /// Waits for the last batch and makes the file durable.
    func finish() async throws {
        try await awaitPrevious()
        let failed: Int32 = await withCheckedContinuation { done in
            writeQueue.async { done.resume(returning: fsync(self.descriptor) == 0 ? 0 : errno) }
        }
        if failed != 0 { throw NimbusError.internal("cannot flush image data to disk (errno \(failed))") }
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

    private func write(_ batch: [ByteBuffer]) {
        guard writeError == 0 else { return }
        let start = offset
        for buffer in batch {
            let failed = buffer.withUnsafeReadableBytes { bytes -> Int32 in
                var done = 0
                while done < bytes.count {
                    let written = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, offset + done)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return errno
                    }
                    done += written
                }
                return 0
            }
            if failed != 0 { writeError = failed; return }
            offset += buffer.readableBytes
        }
        _ = GlibcExtras.syncFileRange?(descriptor, start, offset - start, GlibcExtras.syncFileRangeWrite)
    }
}
