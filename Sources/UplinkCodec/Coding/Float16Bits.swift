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
