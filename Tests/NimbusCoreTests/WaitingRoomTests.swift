import NimbusCore
import Testing

/// The long polls' waiting: woken by a change, by the timeout, or by cancellation, and never
/// parked when the state already says there is no need.
@Suite struct WaitingRoomTests {
    /// Waits in the background; the returned task ends when the wait does.
    static func waiter(_ room: WaitingRoom<Int>, timeout: Duration = .seconds(30), after seen: Int) -> Task<ContinuousClock.Duration, Never> {
        Task {
            let clock = ContinuousClock()
            let started = clock.now
            await room.wait(timeout: timeout) { $0 > seen }
            return clock.now - started
        }
    }

    static func waitUntilParked() async throws { try await Task.sleep(for: .milliseconds(100)) }

    @Test func aChangeWakesEveryWaiter() async throws {
        let room = WaitingRoom(0)
        let first = Self.waiter(room, after: 0), second = Self.waiter(room, after: 0)
        try await Self.waitUntilParked()
        room.wakeAll { value, _ in value += 1 }
        #expect(await first.value < .seconds(10))
        #expect(await second.value < .seconds(10))
        #expect(room.state == 1)
    }

    @Test func aReadyStateDoesNotWait() async {
        let room = WaitingRoom(5)
        #expect(await Self.waiter(room, after: 4).value < .seconds(10))
    }

    @Test func theTimeoutEndsTheWait() async {
        let room = WaitingRoom(0)
        let waited = await Self.waiter(room, timeout: .milliseconds(200), after: 0).value
        #expect(waited >= .milliseconds(200))
        #expect(waited < .seconds(10))
    }

    @Test func cancellationEndsTheWait() async throws {
        let room = WaitingRoom(0)
        let waiter = Self.waiter(room, after: 0)
        try await Self.waitUntilParked()
        waiter.cancel()
        #expect(await waiter.value < .seconds(10))
        room.wakeAll { _, anyoneWaiting in #expect(!anyoneWaiting) }
    }
}
