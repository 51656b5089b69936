#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(ucrt)
import ucrt
#endif

/// The C math library functions Uplink's modules need, in one place (the codec has no
/// Foundation, and a type with a `log` or `exp` member cannot call the free function by name).
public enum LibM {
    public static func log(_ x: Double) -> Double { libmLog(x) }
    public static func exp(_ x: Double) -> Double { libmExp(x) }
    public static func lgamma(_ x: Double) -> Double { libmLgamma(x) }
    public static func cos(_ x: Double) -> Double { libmCos(x) }
    public static func sin(_ x: Double) -> Double { libmSin(x) }
}

typealias CMath = LibM

@inline(__always) private func libmExp(_ x: Double) -> Double { exp(x) }

@inline(__always) private func libmCos(_ x: Double) -> Double { cos(x) }
@inline(__always) private func libmSin(_ x: Double) -> Double { sin(x) }

@inline(__always) private func libmLog(_ x: Double) -> Double { log(x) }
@inline(__always) private func libmLgamma(_ x: Double) -> Double { lgamma(x) }
