#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(ucrt)
import ucrt
#endif

/// The process's environment and standard error through the C library (UplinkCodec does not
/// import Foundation), for the switches that pick an implementation once per process
/// (`UPLINK_LZ4`, `UPLINK_SELECT`).
package enum ProcessEnvironment {
    /// The value of the environment variable `name`, or nil when it is unset.
    package static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Writes `text` to standard error (file descriptor 2), unbuffered.
    package static func writeStandardError(_ text: String) {
        var bytes = Array(text.utf8)
        #if os(Windows)
        _ = _write(2, &bytes, UInt32(bytes.count))
        #else
        _ = write(2, &bytes, bytes.count)
        #endif
    }
}
