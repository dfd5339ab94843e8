import Crypto
import Foundation
import NIOCore
import NIOFileSystem
import NimbusCore

/// Image data on the local disk, one file per image under `root/images`, and staged imports
/// under `root/staging`.
///
/// Uploads stream to a temp file while the hashes and the format inspection are computed, are
/// fsynced, and only then renamed into place: a crash leaves either no file or a whole one.
public struct ImageFileStore: Sendable {
    public let root: URL

    public init(root: URL) throws {
        self.root = root
        for directory in ["images", "staging", "tmp"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
    }

    public func path(of imageID: String) -> String { root.appendingPathComponent("images/\(imageID)").path }
    public func stagingPath(of imageID: String) -> String { root.appendingPathComponent("staging/\(imageID)").path }

    /// What a finished write learned about the data.
    public struct Written: Sendable {
        public var size: Int64
        public var md5: String
        public var sha512: String
        public var inspection: DiskFormatInspector.Result
    }

    /// Streams `chunks` to `destination` atomically.
    /// - Parameter limit: bytes allowed; more fails with 413 and writes nothing.
    public func write<Chunks: AsyncSequence>(
        _ chunks: Chunks, to destination: String, limit: Int64
    ) async throws -> Written where Chunks.Element == ByteBuffer {
        let temporary = root.appendingPathComponent("tmp/\(Identifier.uuid())").path
        let md5 = DigestStream(.md5)
        let sha512 = DigestStream(.sha512)
        var inspector = DiskFormatInspector()
        // MD5 and SHA-512 each cost more than the copy itself. Each batch of 1 MiB is hashed on two
        // queues of its own while this task inspects and writes it and gathers the next one; a
        // batch's hashes are awaited only when the next batch is ready. Not on the cooperative pool:
        // it has one thread per core, and two hashing jobs there leave this task none to resume on.
        let md5Queue = DispatchQueue(label: "nimbus.image.md5"), sha512Queue = DispatchQueue(label: "nimbus.image.sha512")
        var hashing: DispatchGroup?
        func awaitHashes() async {
            guard let group = hashing else { return }
            await withCheckedContinuation { done in group.notify(queue: md5Queue) { done.resume() } }
            hashing = nil
        }
        do {
            try await FileSystem.shared.withFileHandle(forWritingAt: FilePath(temporary), options: .newFile(replaceExisting: true)) { handle in
                try await handle.withBufferedWriter(capacity: .mebibytes(1)) { writer in
                    var batch: [ByteBuffer] = []
                    var batchBytes = 0
                    func flush() async throws {
                        guard !batch.isEmpty else { return }
                        await awaitHashes()
                        let pending = batch
                        let group = DispatchGroup()
                        md5Queue.async(group: group) { for buffer in pending { buffer.withUnsafeReadableBytes { md5.update($0) } } }
                        sha512Queue.async(group: group) { for buffer in pending { buffer.withUnsafeReadableBytes { sha512.update($0) } } }
                        hashing = group
                        for buffer in pending {
                            inspector.feed(buffer.readableBytesView)
                            try await writer.write(contentsOf: buffer)
                        }
                        batch.removeAll(keepingCapacity: true)
                        batchBytes = 0
                    }
                    for try await chunk in chunks {
                        if inspector.totalBytes + Int64(batchBytes + chunk.readableBytes) > limit {
                            throw NimbusError(.payloadTooLarge, "Image storage quota exceeded: the upload would use more than the \(limit) bytes left for this project.")
                        }
                        batch.append(chunk)
                        batchBytes += chunk.readableBytes
                        if batchBytes >= 1 << 20 { try await flush() }
                    }
                    try await flush()
                }
                try await handle.synchronize()
            }
            guard rename(temporary, destination) == 0 else {
                throw NimbusError.internal("cannot move image data into place (errno \(errno))")
            }
        } catch {
            await awaitHashes()
            unlink(temporary)
            throw error
        }
        await awaitHashes()
        return Written(size: inspector.totalBytes, md5: Self.hex(md5.finalize()), sha512: Self.hex(sha512.finalize()),
                       inspection: inspector.result())
    }

    /// Moves staged data into the store (same filesystem: a rename).
    public func promote(stagedFor imageID: String) throws {
        guard rename(stagingPath(of: imageID), path(of: imageID)) == 0 else {
            throw NimbusError.conflict("No staged data for image \(imageID).")
        }
    }

    public func remove(_ imageID: String) {
        unlink(path(of: imageID))
        unlink(stagingPath(of: imageID))
    }

    /// Removes temp files a crash left behind.
    public func sweepTemporaryFiles() {
        let directory = root.appendingPathComponent("tmp")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] {
            unlink(directory.appendingPathComponent(name).path)
        }
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}
