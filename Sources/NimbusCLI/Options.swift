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
