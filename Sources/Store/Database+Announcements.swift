import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import SQLKit

/// Control-plane replicas that share a PostgreSQL database tell each other about changes with
/// NOTIFY/LISTEN, so that an agent long-polling one replica wakes for a write made through
/// another. On SQLite one process owns the database and there is nobody to tell.
extension Database {
    /// Announces a change on `channel`; the other replicas hear it when the transaction commits
    /// (NOTIFY is transactional: a rolled-back write announces nothing).
    public func announce(_ channel: String, payload: String, on db: any SQLDatabase) async throws {
        guard engine == .postgres else { return }
        try await db.raw("SELECT pg_notify(\(bind: channel), \(bind: payload))").run()
    }

    /// Calls `heard` with the payload of each announcement on `channel`, from any replica (this
    /// one included), over a connection of its own. After a lost connection it reconnects and
    /// calls `heard(nil)`: announcements may have been missed meanwhile. Stops at `shutdown`.
    /// Nothing happens on SQLite.
    public func subscribe(_ channel: String, heard: @escaping @Sendable (String?) -> Void) {
        guard let configuration = listenConfiguration else { return }
        let logger = self.logger
        subscriptions.add(Task {
            var reconnecting = false
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(
                        on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration, id: 0, logger: logger)
                    try await withTaskCancellationHandler {
                        let notifications = try await connection.listen(channel)
                        if reconnecting { heard(nil) }
                        for try await notification in notifications { heard(notification.payload) }
                    } onCancel: {
                        let _: EventLoopFuture<Void> = connection.close()
                    }
                    try? await connection.close()
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("listening for announcements failed; retrying", metadata: ["channel": "\(channel)", "error": "\(error)"])
                }
                reconnecting = true
                try? await Task.sleep(for: .seconds(1))
            }
        })
    }
}

/// The listening tasks of one `Database`.
final class Subscriptions: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var tasks: [Task<Void, Never>] = []

    func add(_ task: Task<Void, Never>) {
        lock.lock()
        tasks.append(task)
        lock.unlock()
    }

    func cancelAll() {
        lock.lock()
        let running = tasks
        tasks = []
        lock.unlock()
        for task in running { task.cancel() }
    }
}
