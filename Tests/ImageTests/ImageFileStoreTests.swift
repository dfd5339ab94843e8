import Crypto
import Foundation
@testable import Image
import NIOCore
import NimbusCore
import Testing

/// The write path: batches hashed and written on three queues must still give the bytes and the
/// hashes of the whole stream, in order, and leave nothing behind when the upload fails.
@Suite struct ImageFileStoreTests {
    static func store() throws -> ImageFileStore {
        try ImageFileStore(root: FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-store-\(UUID().uuidString)"))
    }

    /// Chunks of uneven sizes (as a socket delivers them) adding up to several batches.
    static func chunks(total: Int) -> [ByteBuffer] {
        var generator = SystemRandomNumberGenerator()
        var chunks: [ByteBuffer] = [], made = 0, size = 1
        while made < total {
            let length = min(total - made, size)
            chunks.append(ByteBuffer(bytes: (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }))
            made += length
            size = size * 7 % 300_001 + 1
        }
        return chunks
    }

    @Test func manyBatchesKeepTheirOrderAndHashes() async throws {
        let store = try Self.store()
        defer { try? FileManager.default.removeItem(at: store.root) }
        let chunks = Self.chunks(total: 3_500_000)
        let expected = chunks.reduce(into: Data()) { $0.append(contentsOf: $1.readableBytesView) }
        let destination = store.path(of: "image-a")
        let written = try await store.write(chunks.async, to: destination, limit: .max)
        #expect(try Data(contentsOf: URL(fileURLWithPath: destination)) == expected)
        #expect(written.size == Int64(expected.count))
        #expect(written.md5 == ImageFileStore.hex(Insecure.MD5.hash(data: expected)))
        #expect(written.sha512 == ImageFileStore.hex(SHA512.hash(data: expected)))
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root.appendingPathComponent("tmp").path).isEmpty)
    }

    @Test func overTheLimitWritesNothing() async throws {
        let store = try Self.store()
        defer { try? FileManager.default.removeItem(at: store.root) }
        let destination = store.path(of: "image-b")
        await #expect(throws: NimbusError.self) {
            _ = try await store.write(Self.chunks(total: 3_000_000).async, to: destination, limit: 2_000_000)
        }
        #expect(!FileManager.default.fileExists(atPath: destination))
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root.appendingPathComponent("tmp").path).isEmpty)
    }
}

extension Array where Element: Sendable {
    /// The elements as an async sequence, as a request body delivers its chunks.
    var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}
