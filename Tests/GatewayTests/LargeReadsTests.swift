import Gateway
import NIOCore
import NIOPosix
import Testing

/// The server's connections read up to 256 KiB at a time, on a real socket: a client that sends
/// 4 MiB at once is read in pieces larger than NIO's default ceiling of 64 KiB.
@Suite struct LargeReadsTests {
    final class ReadSizes: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var largest = 0, total = 0
        let expected: Int
        let done: EventLoopPromise<Int>

        init(expected: Int, done: EventLoopPromise<Int>) {
            self.expected = expected
            self.done = done
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data).readableBytes
            largest = max(largest, bytes)
            total += bytes
            if total == expected { done.succeed(largest) }
        }
    }

    @Test func readsGrowPastSixtyFourKiB() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let size = 4 << 20
        let done = group.next().makePromise(of: Int.self)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([LargeReadsHandler(), ReadSizes(expected: size, done: done)])
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try await ClientBootstrap(group: group).connect(to: server.localAddress!).get()
        // Written before the server reads, so reads can fill whatever buffer they are given.
        try await client.writeAndFlush(ByteBuffer(repeating: 7, count: size)).get()
        let largest = try await done.futureResult.get()
        #expect(largest > 64 << 10, "largest read \(largest) bytes")
        #expect(largest <= 256 << 10)
        try await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }
}
