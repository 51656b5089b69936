import Dispatch
import Testing
import UplinkCodec

/// `Locked`, the package's portable stand-in for `Synchronization.Mutex`.
@Suite struct LockedTests {
    /// 8 threads × 10,000 increments lose none.
    @Test func concurrentIncrementsAreExact() {
        let counter = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<10_000 { counter.withLock { $0 += 1 } }
        }
        #expect(counter.withLock { $0 } == 80_000)
    }

    /// A throwing closure rethrows its typed error, keeps what it changed before throwing, and
    /// releases the lock (the next `withLock` does not deadlock).
    @Test func aThrowingClosureReleasesTheLock() {
        let state = Locked([1, 2])
        #expect(throws: UplinkError(.lz4Failed, "x")) {
            try state.withLock { (v: inout [Int]) throws(UplinkError) in
                v.append(3)
                throw UplinkError(.lz4Failed, "x")
            }
        }
        #expect(state.withLock { $0 } == [1, 2, 3])
    }
}
