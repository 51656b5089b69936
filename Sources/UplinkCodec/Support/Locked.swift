#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(WinSDK)
import WinSDK
#endif

/// A value behind a lock, shaped like `Synchronization.Mutex` (`withLock { (inout Value) in … }`)
/// but available from macOS 13 and iOS 16, which the package supports (`Mutex` needs macOS 15
/// and iOS 18).
///
/// A class, because the lock must stay at one address for its whole life (a POSIX mutex may not
/// be moved); `Mutex` gets that from being `~Copyable`, which the package's types that hold one
/// cannot all be. It is `@unchecked Sendable` as `Mutex` is `Sendable`: the value is reached only
/// inside `withLock`, one thread at a time. The lock is not recursive: calling `withLock` on the
/// same instance from inside its closure deadlocks.
package final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    #if os(Windows)
    private let lock = UnsafeMutablePointer<SRWLOCK>.allocate(capacity: 1)
    #else
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    #endif

    /// A lock holding `value`.
    package init(_ value: Value) {
        self.value = value
        #if os(Windows)
        InitializeSRWLock(lock)
        #else
        lock.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(lock, nil)
        precondition(status == 0, "pthread_mutex_init failed (\(status))")
        #endif
    }

    deinit {
        #if !os(Windows)
        pthread_mutex_destroy(lock)
        lock.deinitialize(count: 1)
        #endif
        lock.deallocate()
    }

    /// Runs `body` with exclusive access to the value and returns its result; the lock is held
    /// only for the closure's duration and released when it throws.
    package func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        #if os(Windows)
        AcquireSRWLockExclusive(lock)
        defer { ReleaseSRWLockExclusive(lock) }
        #else
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        #endif
        return try body(&value)
    }
}
