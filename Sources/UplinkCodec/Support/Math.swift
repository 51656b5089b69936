#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(ucrt)
import ucrt
#endif

/// The C math library functions the codec needs, in one place.
enum CMath {
    static func log(_ x: Double) -> Double { libmLog(x) }
    static func lgamma(_ x: Double) -> Double { libmLgamma(x) }
}

@inline(__always) private func libmLog(_ x: Double) -> Double { log(x) }
@inline(__always) private func libmLgamma(_ x: Double) -> Double { lgamma(x) }
