import ArgumentParser
import CConcurrencyHook
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
        if !NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() {
            installEventLoopsAsGlobalExecutor()
        }
        Task {
            await Nimbus.main()
            exit(0)
        }
        dispatchMain()
    }
}

/// What NIO's installer does, through a hook address the linker resolved: in a statically linked
/// binary NIO's dlsym cannot see the hook, and every task would hop between NIO's threads and
/// dispatch's pool. Jobs go to the current event loop when there is one (`any()` is sticky).
private func installEventLoopsAsGlobalExecutor() {
    typealias Hook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void
    let slot = nimbus_swift_task_enqueue_global_hook()
    guard slot.pointee == nil else { return }
    withUnsafeTemporaryAllocation(of: Hook.self, capacity: 1) { hook in
        hook.baseAddress!.initialize(to: { job, _ in
            MultiThreadedEventLoopGroup.singleton.any().enqueue(ExecutorJob(job))
        })
        hook.baseAddress!.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: 1) { slot.pointee = $0.pointee }
    }
}

struct Nimbus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nimbus",
        abstract: "An OpenStack-compatible cloud in one binary.",
        subcommands: [Up.self, Serve.self, AgentCommand.self, DB.self, TokenKeys.self, GuestImageCommand.self, Bench.self, NetworkCleanup.self])
}
