import Foundation
import UplinkCodec

/// Runs N closures on N real threads at once, for load tests (a thousand concurrent uploads):
/// every thread waits at a start barrier until all have started, then all run together. Each
/// wait is bounded; a closure still running at the timeout is reported unfinished (threads
/// cannot be stopped, so it keeps running in the background until it returns).
public enum ConcurrentRunner {
    public struct Report<T: Sendable>: Sendable {
        /// Per index: the closure's result, or nil if it had not finished at the timeout.
        public var results: [Result<T, any Error>?]
        /// True when every thread had reached the barrier before it was released.
        public var startedTogether: Bool
        /// From the release of the barrier until the last closure finished (or the timeout).
        public var elapsed: Duration

        /// The values of the closures that returned, in index order.
        public var values: [T] { results.compactMap { try? $0?.get() } }
        /// The closures that threw.
        public var failures: [(index: Int, error: any Error)] {
            results.enumerated().compactMap { i, r in
                if case .failure(let e)? = r { return (i, e) }
                return nil
            }
        }
        /// The indices that had not finished at the timeout.
        public var unfinished: [Int] { results.indices.filter { results[$0] == nil } }
        /// Every closure returned.
        public var allSucceeded: Bool { startedTogether && failures.isEmpty && unfinished.isEmpty }
    }

    /// Runs `body(0)`, …, `body(count - 1)` each on its own thread (`stackSize` bytes of stack),
    /// released together; waits at most `timeout` seconds in all.
    public static func run<T: Sendable>(
        _ count: Int, timeout: Double, stackSize: Int = 512 << 10, _ body: @escaping @Sendable (Int) throws -> T
    ) -> Report<T> {
        let shared = Shared<T>(count: count)
        let deadline = Deadline(seconds: timeout)
        let until = Date(timeIntervalSinceNow: max(0, timeout))
        for i in 0..<count {
            let thread = Thread {
                shared.condition.lock()
                shared.ready += 1
                shared.condition.broadcast()
                while !shared.released && Date() < until { _ = shared.condition.wait(until: until) }
                shared.condition.unlock()
                let result = Result { try body(i) }
                shared.results.withLock { $0[i] = result }
                shared.condition.lock()
                shared.finished += 1
                shared.condition.broadcast()
                shared.condition.unlock()
            }
            thread.stackSize = stackSize
            thread.name = "ConcurrentRunner #\(i)"
            thread.start()
        }
        shared.condition.lock()
        while shared.ready < count && !deadline.hasPassed { _ = shared.condition.wait(until: until) }
        let startedTogether = shared.ready == count
        shared.released = true
        shared.condition.broadcast()
        let start = ContinuousClock.now
        while shared.finished < count && !deadline.hasPassed { _ = shared.condition.wait(until: until) }
        shared.condition.unlock()
        let elapsed = ContinuousClock.now - start
        return Report(results: shared.results.withLock { $0 }, startedTogether: startedTogether, elapsed: elapsed)
    }

    /// The barrier's counters, read and written only with `condition` locked (hence unchecked),
    /// and the results behind their own lock.
    private final class Shared<T: Sendable>: @unchecked Sendable {
        let condition = NSCondition()
        var ready = 0
        var released = false
        var finished = 0
        let results: Locked<[Result<T, any Error>?]>

        init(count: Int) {
            results = Locked(Array(repeating: nil, count: count))
        }
    }
}
