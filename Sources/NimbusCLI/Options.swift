import ArgumentParser
import Foundation
import Logging

/// `HOST:PORT` as given to `--listen`.
struct ListenAddress: ExpressibleByArgument, Sendable {
    var host: String
    var port: Int

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        host = String(argument[..<colon])
        self.port = port
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

func makeLogger(_ level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: "nimbus")
}

/// Prints a line and flushes at once: scripts wait for the ready line on a pipe.
func announce(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// How a QEMU host runs its guests: the same flags for `nimbus up` and `nimbus agent`.
struct QEMUHostOptions: ParsableArguments {
    @Option(help: "QEMU accelerator: auto (KVM if a probe shows it works), kvm or tcg.")
    var accel: String = "auto"

    @Option(help: "QEMU guests booting at once on this host.")
    var maxConcurrentSpawns: Int = 2

    @Option(help: "Seconds a guest gets to power off on ACPI before it is stopped hard.")
    var shutdownTimeout: Int = 15
}
