/// A FIFO lock that suspends waiters instead of blocking threads.
///
/// SQLite allows one writer; letting several connections wait on its busy timeout parks NIO
/// thread-pool threads, and with two cores that starves the writer that holds the lock.
/// Queuing writers here first keeps every wait asynchronous.
actor AsyncLock {
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func lock() async {
        if !locked {
            locked = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func unlock() {
        if waiters.isEmpty {
            locked = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}
