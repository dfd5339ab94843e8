import ArgumentParser
import Dispatch
import Foundation
import NIOCore
import NIOPosix

@main
enum Entry {
    /// Swift concurrency runs on NIO's event loops, so a request is parsed, handled and answered
    /// on one thread instead of hopping between the event loop and the cooperative pool twice per
    /// request. Must happen before any task exists, hence a synchronous entry point.
    static func main() {
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        Task {
            await Nimbus.main()
            exit(0)
        }
        dispatchMain()
    }
}

struct Nimbus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nimbus",
        abstract: "An OpenStack-compatible cloud in one binary.",
        subcommands: [Up.self, Serve.self, AgentCommand.self, DB.self, TokenKeys.self, GuestImageCommand.self, Bench.self, NetworkCleanup.self])
}
