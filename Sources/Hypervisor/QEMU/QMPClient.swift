import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A QEMU Machine Protocol session over the instance's unix socket: one JSON object per line;
/// replies are told from asynchronous events (which may arrive first) by their `return`/`error`.
/// Blocking I/O with a receive timeout, run off the cooperative pool by `QMP.execute`.
final class QMPSession {
    private let descriptor: Int32

    init(path: String, timeout: Int = 10) throws {
        // Close-on-exec: QEMU serves one QMP client at a time, and a spawned tool that inherited
        // this socket would hold that slot.
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw HypervisorError("QMP socket: \(String(cString: strerror(errno)))") }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8CString)
        guard bytes.count <= MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(descriptor)
            throw HypervisorError("QMP socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in bytes.withUnsafeBytes { raw.copyMemory(from: $0) } }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            throw HypervisorError("QMP connect \(path): \(reason)")
        }
        _ = try readMessage()  // the greeting
        _ = try execute("qmp_capabilities")
    }

    deinit { Glibc.close(descriptor) }

    /// - Parameter arguments: the `arguments` object, already JSON.
    /// - Returns: the reply's `return` value.
    @discardableResult
    func execute(_ command: String, arguments: [String: Any]? = nil) throws -> Any {
        var message: [String: Any] = ["execute": command]
        if let arguments { message["arguments"] = arguments }
        let line = Array(try JSONSerialization.data(withJSONObject: message)) + [0x0A]
        guard line.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == line.count else {
            throw HypervisorError("QMP write failed: \(String(cString: strerror(errno)))")
        }
        while true {
            let reply = try readMessage()
            if let value = reply["return"] { return value }
            if let error = reply["error"] as? [String: Any] {
                throw HypervisorError("QMP \(command): \(error["desc"] as? String ?? "\(error)")")
            }
        }
    }

    func readMessage() throws -> [String: Any] {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            guard read(descriptor, &byte, 1) == 1 else { throw HypervisorError("QMP connection closed or timed out") }
            if byte == 0x0A { break }
            bytes.append(byte)
        }
        return (try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]) ?? [:]
    }
}

enum QMP {
    /// One command in a fresh session (QEMU serves one QMP client at a time; sessions are short).
    @discardableResult
    static func execute(_ socket: URL, _ command: String, arguments: [String: Any]? = nil) async throws -> [String: Any] {
        let box = UncheckedBox(arguments)
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result {
                    let value = try QMPSession(path: socket.path).execute(command, arguments: box.value)
                    return (value as? [String: Any]) ?? [:]
                })
            }
        }
    }

    /// Runs `body` with one session (for a conversation: commands, then waiting for an event),
    /// on a thread of its own since the session blocks. `timeout` bounds each wait for a message.
    static func withSession<T: Sendable>(_ socket: URL, timeout: Int = 10, _ body: @escaping @Sendable (QMPSession) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try body(try QMPSession(path: socket.path, timeout: timeout)) })
            }
        }
    }

    /// QMP replies are plain JSON objects handed across one dispatch hop.
    struct UncheckedBox<T>: @unchecked Sendable {
        let value: T
        init(_ value: T) { self.value = value }
    }
}
