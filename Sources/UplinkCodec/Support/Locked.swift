import Foundation

/// A value behind a lock, shaped like `Synchronization.Mutex` (`withLock { (inout Value) in … }`)
/// but available on every platform the portable modules support (Mutex needs macOS 15 / iOS 18).
package final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    package init(_ value: Value) { self.value = value }

    /// Runs `body` with exclusive access to the value.
    package func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
