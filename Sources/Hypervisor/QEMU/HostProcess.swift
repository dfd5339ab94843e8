import Foundation

/// Runs a host tool (qemu-img, genisoimage, QEMU itself) from an argument array, never a shell
/// string: names and metadata can hold any character and must reach no parser but the tool's.
struct HostProcess {
    var tool: String
    var arguments: [String]

    init(_ tool: String, _ arguments: [String]) {
        self.tool = tool
        self.arguments = arguments
    }

    static func locate(_ tool: String) throws -> URL {
        for directory in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
            let url = URL(fileURLWithPath: directory).appendingPathComponent(tool)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw HypervisorError("\(tool) is not installed")
    }

    /// Runs to completion off the cooperative pool. - Returns: standard output.
    /// - Throws: `HypervisorError` carrying the tool's standard error when it fails.
    @discardableResult
    func run() async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try self.runBlocking() }) }
        }
    }

    func runBlocking() throws -> String {
        let process = Process()
        process.executableURL = try Self.locate(tool)
        process.arguments = arguments
        process.environment = ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL": "C"]
        // Files, not pipes: a tool that writes more than a pipe holds would block forever.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("out"), err = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: out), errHandle = try FileHandle(forWritingTo: err)
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let standardError = String(decoding: (try? Data(contentsOf: err)) ?? Data(), as: UTF8.self)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let detail = standardError.trimmingCharacters(in: .whitespacesAndNewlines)
            throw HypervisorError("\(tool) failed (status \(process.terminationStatus)): \(detail)")
        }
        return String(decoding: (try? Data(contentsOf: out)) ?? Data(), as: UTF8.self)
    }
}
