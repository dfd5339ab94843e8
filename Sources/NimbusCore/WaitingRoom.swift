import Foundation

/// Tasks parked until a change to some state wakes them, a timeout passes, or they are cancelled:
/// the long polls of the agents and the scheduler loop. Each user decides, under the lock, whether
/// a newcomer need wait at all and what a wake-up changes.
public final class WaitingRoom<State: Sendable>: Sendable {
    private struct Room {
        var state: State
        var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    }
    private let room: Locked<Room>

    public init(_ state: State) { room = Locked(Room(state: state)) }

    public var state: State { room.withLock { $0.state } }

    /// Changes the state and wakes everyone waiting; `change` is told whether anyone was.
    public func wakeAll(_ change: (inout State, _ anyoneWaiting: Bool) -> Void) {
        let woken = room.withLock { room in
            change(&room.state, !room.waiters.isEmpty)
            defer { room.waiters = [:] }
            return room.waiters.values
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns at once if `ready` (run under the lock; it may change the state) says so; otherwise
    /// at the next `wakeAll`, after `timeout`, or when the caller is cancelled (a shutdown must not
    /// wait out a long poll).
    public func wait(timeout: Duration, unless ready: @Sendable (inout State) -> Bool) async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Checked under the lock that `release` takes: a cancellation either finds the
                // waiter registered or is seen here.
                let parked = room.withLock { room -> Bool in
                    if ready(&room.state) || Task.isCancelled { return false }
                    room.waiters[id] = continuation
                    return true
                }
                guard parked else { return continuation.resume() }
                // Started only once registered, so a timeout can never miss its waiter.
                Task {
                    try? await Task.sleep(for: timeout)
                    self.release(id)
                }
            }
        } onCancel: {
            release(id)
        }
    }

    private func release(_ id: UUID) {
        room.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}
