/// Writes a bit stream LSB-first: bit i of the stream is bit (i mod 8) of byte ⌊i/8⌋.
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var acc: UInt64 = 0
    private var filled = 0

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    /// Appends the low `count` (0…57) bits of `value`.
    @inline(__always)
    mutating func write(_ value: UInt64, bits count: Int) {
        acc |= value << UInt64(filled)
        filled += count
        while filled >= 8 {
            bytes.append(UInt8(truncatingIfNeeded: acc))
            acc >>= 8
            filled -= 8
        }
    }

    /// Appends `count` one-bits.
    mutating func writeOnes(_ count: Int) {
        var left = count
        while left > 0 {
            let n = min(left, 32)
            write((1 << UInt64(n)) - 1, bits: n)
            left -= n
        }
    }

    /// Flushes the last partial byte (its unused high bits are zero) and returns the bytes.
    mutating func finish() -> [UInt8] {
        if filled > 0 { bytes.append(UInt8(truncatingIfNeeded: acc)) }
        acc = 0
        filled = 0
        return bytes
    }
}

/// Reads an LSB-first bit stream, throwing instead of reading past the end.
///
/// Reads go through a 64-bit window loaded unaligned from the current byte, so a unary run is one
/// `trailingZeroBitCount` and a fixed-width field one shift and mask.
struct BitReader {
    let base: UnsafeRawBufferPointer
    /// Position in bits.
    private(set) var position = 0

    init(_ base: UnsafeRawBufferPointer, position: Int = 0) {
        self.base = base
        self.position = position
    }

    var bitCount: Int { base.count * 8 }

    /// The next bits from `position` (at least 57 of them valid, fewer near the end, zero past it).
    @inline(__always)
    private func window() -> UInt64 {
        let byte = position >> 3
        var w: UInt64 = 0
        if byte + 8 <= base.count {
            w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: byte, as: UInt64.self))
        } else {
            for i in 0..<(base.count - byte) { w |= UInt64(base[byte + i]) << UInt64(8 * i) }
        }
        return w >> UInt64(position & 7)
    }

    /// Reads `count` (0…57) bits.
    @inline(__always)
    mutating func read(bits count: Int) throws(UplinkError) -> UInt64 {
        guard count <= bitCount - position else {
            throw UplinkError(.malformedStream, "index stream ends inside a code")
        }
        let v = count == 0 ? 0 : window() & ((1 << UInt64(count)) - 1)
        position += count
        return v
    }

    /// Counts one-bits up to the next zero bit (consumed), stopping at `limit` (≤ 56) ones (the
    /// zero is then not consumed).
    @inline(__always)
    mutating func readUnary(limit: Int) throws(UplinkError) -> Int {
        let available = bitCount - position
        let ones = (~window()).trailingZeroBitCount
        if ones >= limit, limit <= available {
            position += limit
            return limit
        }
        guard ones < available else { throw UplinkError(.malformedStream, "index stream ends inside a code") }
        position += ones + 1
        return ones
    }
}
