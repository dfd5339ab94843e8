import Crypto
import Foundation
import NIOCore
import NimbusCore

/// Image data on the local disk, one file per image under `root/images`, and staged imports
/// under `root/staging`.
///
/// Uploads stream to a temp file while the hashes and the format inspection are computed, are
/// fsynced, and only then renamed into place: a crash leaves either no file or a whole one.
public struct ImageFileStore: Sendable {
    public let root: URL

    /// Whether uploads bypass the page cache where the filesystem allows it; tests turn it off
    /// to cover the buffered path on a filesystem that allows it.
    let directWrites: Bool

    public init(root: URL) throws { try self.init(root: root, directWrites: true) }

    init(root: URL, directWrites: Bool) throws {
        self.root = root
        self.directWrites = directWrites
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
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC
        guard let (descriptor, direct) = DirectIO.open(temporary, flags, tryDirect: directWrites) else {
            throw NimbusError.internal("cannot create image data (errno \(errno))")
        }
        let pipeline = WritePipeline(descriptor: descriptor, direct: direct)
        var inspector = DiskFormatInspector()
        do {
            for try await chunk in chunks {
                if inspector.totalBytes + Int64(chunk.readableBytes) > limit {
                    throw NimbusError(.payloadTooLarge, "Image storage quota exceeded: the upload would use more than the \(limit) bytes left for this project.")
                }
                inspector.feed(chunk.readableBytesView)
                try await pipeline.append(chunk)
            }
            try await pipeline.finish()
            guard rename(temporary, destination) == 0 else {
                throw NimbusError.internal("cannot move image data into place (errno \(errno))")
            }
        } catch {
            await pipeline.drain()
            close(descriptor)
            unlink(temporary)
            throw error
        }
        close(descriptor)
        let (md5, sha512) = pipeline.digests()
        return Written(size: inspector.totalBytes, md5: md5, sha512: sha512, inspection: inspector.result())
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
