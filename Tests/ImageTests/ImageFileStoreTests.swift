import Crypto
import Foundation
@testable import Image
import NIOCore
import NimbusCore
import Testing

/// The write path: batches hashed and written on three queues must still give the bytes and the
/// hashes of the whole stream, in order, and leave nothing behind when the upload fails.
@Suite struct ImageFileStoreTests {
    static func store(directWrites: Bool = true) throws -> ImageFileStore {
        try ImageFileStore(root: FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-store-\(UUID().uuidString)"),
                           directWrites: directWrites)
    }

    /// Chunks of uneven sizes (as a socket delivers them) adding up to several batches. The bytes
    /// repeat a random pattern of odd length, so a batch out of place changes the file and its
    /// hashes; built by copying, as a byte-by-byte loop in a debug build would hold a
    /// cooperative thread (of two) for seconds.
    static func chunks(total: Int) -> [ByteBuffer] {
        let pattern = (0..<65_537).map { _ in UInt8.random(in: 0...255) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        while bytes.count < total { bytes.append(contentsOf: pattern.prefix(total - bytes.count)) }
        var chunks: [ByteBuffer] = [], made = 0, size = 1
        while made < total {
            let length = min(total - made, size)
            chunks.append(ByteBuffer(bytes: bytes[made..<(made + length)]))
            made += length
            size = size * 7 % 300_001 + 1
        }
        return chunks
    }

    /// Direct writes (whole 1 MiB blocks, then a buffered tail) and buffered ones; nothing, a tail
    /// only, one whole block, and more blocks than the pipeline holds at once (so blocks are reused).
    @Test(arguments: [true, false], [0, 1_000, WritePipeline.blockSize, WritePipeline.blockSize * (WritePipeline.depth + 2) + 17])
    func manyBlocksKeepTheirOrderAndHashes(directWrites: Bool, total: Int) async throws {
        let store = try Self.store(directWrites: directWrites)
        defer { try? FileManager.default.removeItem(at: store.root) }
        let chunks = Self.chunks(total: total)
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

/// Reading back: whole files and ranges that start and end anywhere in a block.
@Suite struct FileChunksTests {
    @Test func rangesAnywhereReadTheRightBytes() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-chunks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("data")
        let data = Data((0..<300_123).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) })
        try data.write(to: file)
        func read(_ range: ClosedRange<Int64>?, blockSize: Int) async throws -> Data {
            var out = Data()
            for try await chunk in FileChunks(path: file.path, range: range, blockSize: blockSize) {
                #expect(chunk.readableBytes <= blockSize)
                out.append(contentsOf: chunk.readableBytesView)
            }
            return out
        }
        for blockSize in [4096, 65536, 1 << 20] {
            #expect(try await read(nil, blockSize: blockSize) == data)
            for range: ClosedRange<Int64> in [0...0, 1...4095, 4095...4096, 5000...200_001, 299_999...300_122, 123...300_122] {
                let expected = data[Int(range.lowerBound)...Int(range.upperBound)]
                #expect(try await read(range, blockSize: blockSize) == expected, "\(range), blocks of \(blockSize)")
            }
        }
    }
}
