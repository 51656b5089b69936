internal import CUplinkCRC

/// IEEE 754 binary16 conversions by bit manipulation (F. Giesen's round-to-nearest-even method).
///
/// Written out rather than using `Float16` because that type is missing on some platforms
/// (macOS on Intel) and, without F16C, lowers to a library call per element; these loops are
/// branch-light and vectorize.
public enum Float16Bits {
    /// The binary16 bits nearest to `value` (ties to even); values of magnitude 65520 or more
    /// become infinity, NaN stays NaN.
    @inlinable @inline(__always)
    public static func fromFloat(_ value: Float) -> UInt16 {
        var u = value.bitPattern
        let sign = u & 0x8000_0000
        u ^= sign
        var o: UInt32
        if u >= 0x4780_0000 {  // ≥ 65536, infinity or NaN
            o = u > 0x7F80_0000 ? 0x7E00 : 0x7C00
        } else if u < 0x3880_0000 {  // below 2^-14: subnormal half or zero
            let f = Float(bitPattern: u) + Float(bitPattern: 0x3F00_0000)
            o = f.bitPattern &- 0x3F00_0000
        } else {
            let mantOdd = (u >> 13) & 1
            u = u &+ 0xC800_0FFF &+ mantOdd
            o = u >> 13
        }
        return UInt16(truncatingIfNeeded: o | (sign >> 16))
    }

    /// Whether this CPU converts in hardware (x86-64 F16C), detected at run time; the bulk
    /// conversions below then use it, otherwise the software conversions (same results, tested).
    package static let hardware: Bool = cuplink_half_hardware() != 0

    /// ``fromFloat(_:)`` with every case computed and one chosen by selects (the same value for
    /// every input, tested), so a loop of it vectorizes.
    @inlinable @inline(__always)
    public static func fromFloatBranchless(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = bits & 0x8000_0000
        let u = bits ^ sign
        let special: UInt32 = u > 0x7F80_0000 ? 0x7E00 : 0x7C00
        let subnormal = (Float(bitPattern: u) + Float(bitPattern: 0x3F00_0000)).bitPattern &- 0x3F00_0000
        let normal = (u &+ 0xC800_0FFF &+ ((u >> 13) & 1)) >> 13
        let o = u >= 0x4780_0000 ? special : (u < 0x3880_0000 ? subnormal : normal)
        return UInt16(truncatingIfNeeded: o | (sign >> 16))
    }

    /// Converts `count` finite floats at `x` to little-endian binary16 at `out`, writing each
    /// error `x − toFloat(h)` to `error` (which may be `x`) when given. Returns whether some
    /// result is infinite (the value was too large). Hardware when the CPU has it.
    package static func encode(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutableRawPointer, error: UnsafeMutablePointer<Float>?) -> Bool {
        if hardware {
            return cuplink_float_to_half(x, out.assumingMemoryBound(to: UInt8.self), error, count) != 0
        }
        return halfWidthEncode(x, count: count, into: out, error: error, exponent: 0x7C00, code: fromFloatBranchless, back: toFloatBranchless)
    }

    /// Converts `count` little-endian binary16 values at `src` to floats at `out` (exact).
    package static func decode(_ src: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        if hardware {
            cuplink_half_to_float(src.assumingMemoryBound(to: UInt8.self), out, count)
            return
        }
        for j in 0..<count {
            out[j] = toFloatBranchless(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 &* j, as: UInt16.self)))
        }
    }

    /// The software conversions of ``encode(_:count:into:error:)`` and ``decode(_:count:into:)``
    /// against the hardware ones, for tests: (hardware available, results identical) over `x`.
    package static func hardwareAgrees(_ x: [Float]) -> (available: Bool, identical: Bool) {
        guard hardware else { return (false, true) }
        var hw = [UInt8](repeating: 0, count: 2 * x.count), sw = hw
        var hwErr = [Float](repeating: 0, count: x.count), swErr = hwErr
        let hwBad = x.withUnsafeBufferPointer { p in cuplink_float_to_half(p.baseAddress!, &hw, &hwErr, x.count) != 0 }
        var swBad = false
        for i in 0..<x.count {
            let h = fromFloatBranchless(x[i])
            sw[2 * i] = UInt8(truncatingIfNeeded: h)
            sw[2 * i + 1] = UInt8(truncatingIfNeeded: h >> 8)
            swErr[i] = x[i] - toFloatBranchless(h)
            swBad = swBad || (h & 0x7C00) == 0x7C00
        }
        var back = [Float](repeating: 0, count: x.count)
        hw.withUnsafeBytes { cuplink_half_to_float($0.baseAddress!.assumingMemoryBound(to: UInt8.self), &back, x.count) }
        let decodes = (0..<x.count).allSatisfy { back[$0].bitPattern == toFloat(UInt16(hw[2 * $0]) | UInt16(hw[2 * $0 + 1]) << 8).bitPattern }
        return (true, hw == sw && hwErr.map(\.bitPattern) == swErr.map(\.bitPattern) && hwBad == swBad && decodes)
    }

    /// ``toFloat(_:)`` with every case computed and one chosen by selects, no branches, so a
    /// loop of it vectorizes; the same value for every input (tested over all 65,536).
    @inlinable @inline(__always)
    public static func toFloatBranchless(_ bits: UInt16) -> Float {
        let h = UInt32(bits)
        let magnitude = (h & 0x7FFF) << 13
        let exp = magnitude & 0x0F80_0000
        let normal = magnitude &+ 0x3800_0000  // rebias the exponent: (127 − 15) << 23
        let special = normal &+ 0x3800_0000  // infinity and NaN: exponent all ones
        // Subnormal halves: normalize through one float subtraction of normal numbers.
        let subnormal = (Float(bitPattern: normal &+ 0x0080_0000) - Float(bitPattern: 0x3880_0000)).bitPattern
        let o = exp == 0x0F80_0000 ? special : (exp == 0 ? subnormal : normal)
        return Float(bitPattern: o | ((h & 0x8000) << 16))
    }

    /// The float32 value of binary16 `bits` (exact).
    @inlinable @inline(__always)
    public static func toFloat(_ bits: UInt16) -> Float {
        var o = (UInt32(bits) & 0x7FFF) << 13
        let exp = o & 0x0F80_0000
        o = o &+ 0x3800_0000
        if exp == 0x0F80_0000 {
            o = o &+ 0x3800_0000
        } else if exp == 0 {
            o = o &+ 0x0080_0000
            o = (Float(bitPattern: o) - Float(bitPattern: 0x3880_0000)).bitPattern
        }
        return Float(bitPattern: o | ((UInt32(bits) & 0x8000) << 16))
    }
}

/// The software loop of both 16-bit float quantizers: `code(x[i])` little-endian at `out + 2i`,
/// and `x[i] − back(code)` into `error` when given. `error` may be `x` itself (error feedback):
/// that case runs on one pointer, because two pointers that overlap fail LLVM's run-time alias
/// check and the loop falls back to scalar. Returns whether some code has every bit of
/// `exponent` set (too large for the format); the flag is computed without a compare, which the
/// vectorizer had turned into a branch.
@inline(__always)
func halfWidthEncode(
    _ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutableRawPointer, error: UnsafeMutablePointer<Float>?,
    exponent: UInt16, code: (Float) -> UInt16, back: (UInt16) -> Float
) -> Bool {
    let carry = exponent & (~exponent &+ 1)  // the exponent's lowest bit: all ones + it = 0x8000
    var bad: UInt16 = 0
    if let e = error, UnsafePointer(e) == x {
        for i in 0..<count {
            let v = e[i]
            let h = code(v)
            out.storeBytes(of: h.littleEndian, toByteOffset: 2 &* i, as: UInt16.self)
            bad |= ((h & exponent) &+ carry) & 0x8000
            e[i] = v - back(h)
        }
    } else if let e = error {
        for i in 0..<count {
            let v = x[i]
            let h = code(v)
            out.storeBytes(of: h.littleEndian, toByteOffset: 2 &* i, as: UInt16.self)
            bad |= ((h & exponent) &+ carry) & 0x8000
            e[i] = v - back(h)
        }
    } else {
        for i in 0..<count {
            let h = code(x[i])
            out.storeBytes(of: h.littleEndian, toByteOffset: 2 &* i, as: UInt16.self)
            bad |= ((h & exponent) &+ carry) & 0x8000
        }
    }
    return bad != 0
}
