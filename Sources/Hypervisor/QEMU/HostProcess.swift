import Foundation
import NimbusCore

/// A host tool the driver runs (qemu-img, genisoimage), through `HostCommand`, with its failure
/// reported as a `HypervisorError` that carries the tool's standard error.
struct HostProcess {
    var tool: String
    var arguments: [String]

    init(_ tool: String, _ arguments: [String]) {
        self.tool = tool
        self.arguments = arguments
    }

    static func locate(_ tool: String) throws -> String {
        guard let path = HostCommand.locate(tool) else { throw HypervisorError("\(tool) is not installed") }
        return path
    }

    /// - Returns: standard output.
    @discardableResult
    func run() async throws -> String {
        do {
            return try await HostCommand([try Self.locate(tool)] + arguments, environment: ["LC_ALL": "C"]).run()
        } catch let error as HostCommandError {
            throw HypervisorError("\(tool) failed (status \(error.status)): \(error.standardError.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
