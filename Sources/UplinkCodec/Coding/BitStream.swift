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
struct BitReader {
    let base: UnsafeRawBufferPointer
    /// Position in bits.
    private(set) var position = 0

    init(_ base: UnsafeRawBufferPointer) { self.base = base }

    var bitCount: Int { base.count * 8 }

    /// Reads `count` (0…57) bits.
    @inline(__always)
    mutating func read(bits count: Int) throws(UplinkError) -> UInt64 {
        guard count <= bitCount - position else {
            throw UplinkError(.malformedStream, "index stream ends inside a code")
        }
        var v: UInt64 = 0
        var got = 0
        while got < count {
            let byte = UInt64(base[(position + got) >> 3]) >> UInt64((position + got) & 7)
            let take = min(count - got, 8 - ((position + got) & 7))
            v |= (byte & ((1 << UInt64(take)) - 1)) << UInt64(got)
            got += take
        }
        position += count
        return v
    }

    /// Counts one-bits up to the next zero bit (consumed), stopping at `limit` ones (the zero
    /// is then not consumed).
    @inline(__always)
    mutating func readUnary(limit: Int) throws(UplinkError) -> Int {
        var ones = 0
        while ones < limit {
            guard position < bitCount else { throw UplinkError(.malformedStream, "index stream ends inside a code") }
            let bit = (base[position >> 3] >> UInt8(position & 7)) & 1
            position += 1
            if bit == 0 { return ones }
            ones += 1
        }
        return ones
    }
}
