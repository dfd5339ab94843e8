import NIOCore
import NIOFileSystem

/// A file's contents as a sequence of buffers, so copies within the store reuse the upload path
/// (hashing and inspection included).
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String

    struct AsyncIterator: AsyncIteratorProtocol {
        var stream: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
        mutating func next() async throws -> ByteBuffer? { try await stream.next() }
    }

    func makeAsyncIterator() -> AsyncIterator {
        let path = self.path
        let stream = AsyncThrowingStream<ByteBuffer, any Error> { continuation in
            let task = Task {
                do {
                    try await FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
                        for try await chunk in handle.readChunks(chunkLength: .mebibytes(1)) {
                            continuation.yield(chunk)
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return AsyncIterator(stream: stream.makeAsyncIterator())
    }
}
