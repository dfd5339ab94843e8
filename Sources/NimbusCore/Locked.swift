import Foundation

/// A value behind a lock, for state shared across threads that is read and written in short,
/// synchronous sections.
///
/// Not `Synchronization.Mutex`: on this platform (Swift 6.3.1, Linux 6.18) a contended `Mutex`
/// crashed the process ("Unknown error occurred while attempting to acquire a Mutex": the
/// kernel's priority-inheritance futex answered ESRCH). A plain pthread mutex has no such mode.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
