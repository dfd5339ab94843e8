import Foundation
import NimbusCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// What the metadata service answers to one request.
public struct MetadataReply: Sendable, Equatable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "text/plain", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    public init(status: Int, contentType: String = "text/plain", text: String) {
        self.init(status: status, contentType: contentType, body: Array(text.utf8))
    }
}

/// Answers one metadata request: the network it arrived on, the VM's source address, the path.
public typealias MetadataHandler = @Sendable (_ network: String, _ sourceAddress: String, _ path: String) async -> MetadataReply

/// An HTTP listener on 169.254.169.254:80 inside a DHCP namespace, with no extra process.
///
/// A socket belongs to the network namespace it was created in, so a dedicated thread enters the
/// namespace with `setns`, creates, binds and listens, and returns to its own namespace; the
/// socket keeps listening inside. `setns` affects only the calling thread, which is why this never
/// runs on a Swift cooperative-pool thread. The same thread then runs the accept loop; each
/// request is answered by a Task (the handler is async) and written back off the pool.
final class MetadataListener: @unchecked Sendable {
    private let socket: Int32
    private let network: String
    private let handler: MetadataHandler
    private let logger: Logger
    private let stopped = Locked(false)

    init(namespace: String, network: String, address: String, port: UInt16, handler: @escaping MetadataHandler, logger: Logger) throws {
        self.network = network
        self.handler = handler
        self.logger = logger
        let opened = Locked<Result<Int32, DataplaneError>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread {
            opened.withLock { $0 = Self.openSocket(namespace: namespace, address: address, port: port) }
            ready.signal()
        }
        thread.start()
        ready.wait()
        socket = try opened.withLock { $0! }.get()
        let loop = Thread { [self] in acceptLoop() }
        loop.name = "metadata-\(network.prefix(8))"
        loop.start()
    }

    /// Stops accepting: `shutdown` wakes the blocked `accept`, and the loop closes the socket.
    func stop() {
        stopped.withLock { $0 = true }
        _ = shutdown(socket, Int32(SHUT_RDWR))
    }

    private static func openSocket(namespace: String, address: String, port: UInt16) -> Result<Int32, DataplaneError> {
        func failure(_ what: String) -> Result<Int32, DataplaneError> {
            .failure(DataplaneError(command: "metadata \(what) in \(namespace)", status: errno, standardError: String(cString: strerror(errno))))
        }
        let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        let target = open("/var/run/netns/\(namespace)", O_RDONLY | O_CLOEXEC)
        defer { if home >= 0 { close(home) }; if target >= 0 { close(target) } }
        guard home >= 0, target >= 0 else { return failure("open namespace") }
        guard let enter = setnsFunction, enter(target, cloneNewNet) == 0 else { return failure("setns") }
        defer { _ = enter(home, cloneNewNet) }
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return failure("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        inet_pton(AF_INET, address, &sin.sin_addr)
        let bound = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let result = failure("bind \(address):\(port)")
            close(fd)
            return result
        }
        return .success(fd)
    }

    private func acceptLoop() {
        defer { close(socket) }
        while !stopped.withLock({ $0 }) {
            var peer = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let connection = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(socket, $0, &length) }
            }
            if connection >= 0 { _ = fcntl(connection, F_SETFD, FD_CLOEXEC) }
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &peer.sin_addr, &text, socklen_t(INET_ADDRSTRLEN))
            serve(connection, source: String(cString: text))
        }
    }

    /// Reads the request head on the accept thread (bounded by a receive timeout), then lets a
    /// Task ask the handler and a dispatch queue write the reply.
    private func serve(_ connection: Int32, source: String) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let head = Self.readHead(connection)
        guard let request = HTTPRequestLine(head) else {
            Self.write(MetadataReply(status: 400, text: "bad request\n"), to: connection)
            return
        }
        guard request.method == "GET" else {
            Self.write(MetadataReply(status: 405, text: "method not allowed\n"), to: connection)
            return
        }
        let handler = handler, network = network
        Task {
            let reply = await handler(network, source, request.path)
            DispatchQueue.global().async { Self.write(reply, to: connection) }
        }
    }

    private static func readHead(_ connection: Int32) -> [UInt8] {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while data.count < 16384 {
            let count = read(connection, &buffer, buffer.count)
            if count <= 0 { break }
            data += buffer[0..<count]
            // The head ends at the first blank line; a GET has no body to wait for.
            if String(decoding: data, as: UTF8.self).contains("\r\n\r\n") { break }
        }
        return data
    }

    private static func write(_ reply: MetadataReply, to connection: Int32) {
        let head = "HTTP/1.1 \(reply.status) \(reason(reply.status))\r\nContent-Type: \(reply.contentType)\r\n"
            + "Content-Length: \(reply.body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + reply.body
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { break }
            offset += written
        }
        close(connection)
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        default: status < 400 ? "OK" : "Error"
        }
    }
}

/// glibc's `setns` is a GNU extension the Swift Glibc module doesn't expose; look it up by name.
private let setnsFunction: (@convention(c) (Int32, Int32) -> Int32)? = {
    guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "setns") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
}()
private let cloneNewNet: Int32 = 0x4000_0000

/// The first line of an HTTP/1.x request: `GET /path HTTP/1.1`.
struct HTTPRequestLine: Equatable {
    var method: String
    var path: String

    init(method: String, path: String) {
        self.method = method
        self.path = path
    }

    init?(_ head: [UInt8]) {
        guard let end = head.firstIndex(of: 10) ?? (head.isEmpty ? nil : head.endIndex) else { return nil }
        let line = String(decoding: head[..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = line.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."), parts[1].hasPrefix("/") else { return nil }
        method = String(parts[0])
        path = String(parts[1])
    }
}
