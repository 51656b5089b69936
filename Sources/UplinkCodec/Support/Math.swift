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
    static func cos(_ x: Double) -> Double { libmCos(x) }
    static func sin(_ x: Double) -> Double { libmSin(x) }
}

@inline(__always) private func libmCos(_ x: Double) -> Double { cos(x) }
@inline(__always) private func libmSin(_ x: Double) -> Double { sin(x) }

@inline(__always) private func libmLog(_ x: Double) -> Double { log(x) }
@inline(__always) private func libmLgamma(_ x: Double) -> Double { lgamma(x) }
