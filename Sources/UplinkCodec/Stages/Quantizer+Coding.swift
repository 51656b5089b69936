/// The scales and values streams of a quantized block of values.
struct QuantizedStreams {
    var scales: [UInt8]
    var values: [UInt8]
    /// The first value the quantizer could not represent (fp16/bf16 overflow), if any.
    var overflowIndex: Int?
    /// Whether an integer quantizer met a NaN or infinity (it checks as it scans each block, so
    /// an encoder without error feedback needs no separate pass over the update).
    var sawNonFinite = false

    /// Throws ``UplinkError/Code/valueOutOfRange`` for a value the quantizer could not represent.
    func checked(_ values: UnsafeBufferPointer<Float>, _ quantizer: Quantizer) throws(UplinkError) -> QuantizedStreams {
        guard let i = overflowIndex else { return self }
        throw UplinkError(.valueOutOfRange, "value \(values[i]) at transmitted index \(i) is outside the \(quantizer) range")
    }
}

extension Quantizer {
    /// Quantizes `values` into its streams. When `error` is given (it may alias `values`), each
    /// value's quantization error `x − decode(encode(x))` is written there, for error feedback.
    /// A value the quantizer cannot represent is reported in ``QuantizedStreams/overflowIndex``
    /// (``QuantizedStreams/checked(_:_:)`` turns it into the error).
    ///
    /// Deliberately not `throws`: with Swift 6.3.1 `-O`, a typed-throwing version of this
    /// function returned from its `fp32` branch with the error register still holding the
    /// caller's garbage, so every `ef | fp32` encode "threw" an invalid error and crashed.
    func encode(
        _ values: UnsafeBufferPointer<Float>, error: UnsafeMutableBufferPointer<Float>?, round: UInt64
    ) -> QuantizedStreams {
        let m = values.count
        let lengths = streamLengths(values: m)
        var scales = [UInt8](repeating: 0, count: lengths.scales)
        // Packed codes are OR-ed into place, so they start at zero; 8-bit and float codes are
        // each written once and need no clearing pass.
        let overwrites: Bool = switch self {
        case .fp32, .fp16, .bf16: true
        case .int(let q): q.bits == 8
        case .sign, .ternary: false
        }
        var codes = overwrites
            ? [UInt8](unsafeUninitializedCapacity: lengths.values) { _, count in count = lengths.values }
            : [UInt8](repeating: 0, count: lengths.values)
        var overflowIndex = -1
        var sawNonFinite = false
        scales.withUnsafeMutableBytes { sc in
            codes.withUnsafeMutableBytes { out in
                switch self {
                case .fp32:
                    for i in 0..<m { out.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
                    if let error { for i in 0..<m { error[i] = 0 } }
                case .fp16:
                    if m > 0, Float16Bits.encode(values.baseAddress!, count: m, into: out.baseAddress!, error: error?.baseAddress) {
                        overflowIndex = (0..<m).first { Float16Bits.fromFloat(values[$0]) & 0x7C00 == 0x7C00 } ?? 0
                    }
                case .bf16:
                    let bad = m > 0 && halfWidthEncode(
                        values.baseAddress!, count: m, into: out.baseAddress!, error: error?.baseAddress, exponent: 0x7F80,
                        code: BFloat16Bits.fromFloat, back: BFloat16Bits.toFloat)
                    if bad { overflowIndex = (0..<m).first { BFloat16Bits.fromFloat(values[$0]) & 0x7F80 == 0x7F80 } ?? 0 }
                case .int(let q):
                    sawNonFinite = q.encode(values, scales: sc, codes: out, error: error, round: round)
                case .sign(let b), .ternary(let b):
                    SignCoding.encode(values, block: b == 0 ? max(m, 1) : b, scales: sc, codes: out, error: error)
                }
            }
        }
        return QuantizedStreams(scales: scales, values: codes, overflowIndex: overflowIndex >= 0 ? overflowIndex : nil, sawNonFinite: sawNonFinite)
    }

    /// Checks decoded streams for `m` values: codes in range, zero padding bits, finite
    /// non-negative scales, and finite decoded values. Nothing is written anywhere.
    func validate(scales: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count m: Int) throws(UplinkError) {
        let bits = m * bitsPerValue
        if bits % 8 != 0, values[values.count - 1] >> UInt8(bits % 8) != 0 {
            throw UplinkError(.malformedStream, "values stream has non-zero padding bits")
        }
        let (blocks, bytes) = scaleBlocks(m)
        for b in 0..<blocks {
            let s = Float(bitPattern: UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: b * bytes, as: UInt32.self)))
            guard s.isFinite, s >= 0 else {
                throw UplinkError(.malformedStream, "scale \(s) of block \(b) is not a finite non-negative number")
            }
            if bytes == 8 {
                let lo = Float(bitPattern: UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: b * 8 + 4, as: UInt32.self)))
                guard lo.isFinite else { throw UplinkError(.malformedStream, "offset \(lo) of block \(b) is not finite") }
            }
        }
        switch self {
        case .int(let q):
            if q.maxCode < (1 << q.bits) - 1, m > 0 {
                // Symmetric codes never use the all-ones pattern.
                let all = UInt8((1 << q.bits) - 1)
                // Eight bytes at a time: a field is all ones exactly when it is zero in the
                // complement, and `(x − lows) & ~x & highs` is non-zero exactly when some field
                // of x is zero (fields never straddle bytes, so byte order does not matter;
                // padding bits are zero, never all ones). A byte loop stayed scalar: it was a
                // third of an int8 accumulate.
                let lows: UInt64 = q.bits == 8 ? 0x0101_0101_0101_0101 : q.bits == 4 ? 0x1111_1111_1111_1111 : 0x5555_5555_5555_5555
                let highs = lows &<< UInt64(q.bits - 1)
                let raw = values.baseAddress!
                var found: UInt64 = 0
                let words = values.count / 8
                for w in 0..<words {
                    let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 &* w, as: UInt64.self))
                    found |= (~word &- lows) & word & highs
                }
                var tail: UInt64 = 0  // missing bytes are 0: their complement has no zero field
                for j in (8 * words)..<values.count { tail |= UInt64(values[j]) << UInt64(8 * (j - 8 * words)) }
                found |= (~tail &- lows) & tail & highs
                let bad = found != 0
                if bad, let i = (0..<m).first(where: { code(values, $0, bits: q.bits) == all }) {
                    throw UplinkError(.malformedStream, "value code \(all) at \(i) is outside the symmetric int\(q.bits) range")
                }
            }
            // A decoded value is monotone in its code, so a block's values are all finite when
            // its two extremes are: nothing is decoded unless one is not (then for its index).
            let qm = Float(q.qmax), top = Float(q.maxCode)
            for b in 0..<blocks {
                let s = Float(bitPattern: UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: b * bytes, as: UInt32.self)))
                let finite: Bool
                if q.symmetric {
                    finite = ((top - qm) * s).isFinite && ((0 - qm) * s).isFinite
                } else {
                    let lo = Float(bitPattern: UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: b * 8 + 4, as: UInt32.self)))
                    finite = (lo + top * s).isFinite
                }
                if !finite { try firstNonFinite(scales: scales, values: values, count: m, range: (b * q.block)..<min(m, (b + 1) * q.block)) }
            }
        case .sign, .ternary:
            return  // ±scale, and every scale was checked finite
        case .fp32, .fp16, .bf16:
            // A float code is finite exactly when its exponent bits are not all ones: checked
            // on the codes, nothing decoded.
            let (width, mask): (Int, UInt32) = switch self {
            case .fp32: (4, 0x7F80_0000)
            case .fp16: (2, 0x7C00)
            default: (2, 0x7F80)
            }
            guard m > 0 else { return }
            // Eight bytes (four or two codes) at a time: a lane's exponent e = code & mask is
            // all ones exactly when e + (mask's lowest bit) reaches the bit above the mask,
            // with no carry into the next lane. The per-code loop did not vectorize.
            let lanes: UInt64 = width == 4 ? 0x0000_0001_0000_0001 : 0x0001_0001_0001_0001
            let masks = UInt64(mask) &* lanes
            let low = UInt64(mask & (~mask &+ 1)) &* lanes
            let top = UInt64((mask &+ (mask & (~mask &+ 1)))) &* lanes
            let base = values.baseAddress!
            var found: UInt64 = 0
            let words = values.count / 8
            for w in 0..<words {
                let x = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 &* w, as: UInt64.self))
                found |= ((x & masks) &+ low) & top
            }
            var bad: UInt32 = found != 0 ? 1 : 0
            for i in ((8 * words) / width)..<m {
                let code = width == 4 ? UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                    : UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                bad |= code & mask == mask ? 1 : 0
            }
            if bad != 0 { try firstNonFinite(scales: scales, values: values, count: m, range: 0..<m) }
        }
    }

    /// Decodes `range` in chunks, without holding the values, and throws
    /// ``UplinkError/Code/nonFiniteValue`` for its first value that is not finite.
    private func firstNonFinite(scales: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count m: Int, range: Range<Int>) throws(UplinkError) {
        try withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.chunk) { (tmp) throws(UplinkError) in
            var start = range.lowerBound
            while start < range.upperBound {
                let end = min(range.upperBound, start + Self.chunk)
                decode(scales: scales, values: values, count: m, range: start..<end, into: tmp.baseAddress!)
                if let i = (0..<(end - start)).first(where: { !tmp[$0].isFinite }) {
                    throw UplinkError(.nonFiniteValue, "frame holds a NaN or infinite value at transmitted index \(start + i)")
                }
                start = end
            }
        }
    }

    /// Values decoded per step when validating or accumulating.
    static let chunk = 4096

    /// Decodes transmitted values `range` (of `m`) into `out[0..<range.count]`.
    func decode(
        scales: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count m: Int, range: Range<Int>,
        into out: UnsafeMutablePointer<Float>
    ) {
        guard !range.isEmpty else { return }
        switch self {
        // Plain counted loops over a raw base pointer: LLVM vectorizes them (an `enumerated()`
        // range and per-element bounds checks kept the 16-bit cases scalar).
        case .fp32:
            let base = values.baseAddress! + 4 * range.lowerBound
            for j in 0..<range.count {
                out[j] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * j, as: UInt32.self)))
            }
        case .fp16:
            Float16Bits.decode(values.baseAddress! + 2 * range.lowerBound, count: range.count, into: out)
        case .bf16:
            let base = values.baseAddress! + 2 * range.lowerBound
            for j in 0..<range.count {
                out[j] = BFloat16Bits.toFloat(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self)))
            }
        case .int(let q):
            // Block by block: the scale is loaded once per block and the inner loop is a plain
            // code → float map over raw pointers (the 8-bit case vectorizes).
            let codes = values.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var i = range.lowerBound
            while i < range.upperBound {
                let b = i / q.block
                let end = min(range.upperBound, (b + 1) * q.block)
                let scale: Float, offset: Float
                if q.symmetric {
                    scale = Float(bitPattern: UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 4 * b, as: UInt32.self)))
                    offset = -Float(q.qmax) * scale
                } else {
                    scale = Float(bitPattern: UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 8 * b, as: UInt32.self)))
                    offset = Float(bitPattern: UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 8 * b + 4, as: UInt32.self)))
                }
                let dst = out + (i - range.lowerBound)
                let count = end - i
                if q.symmetric {
                    // (c − qmax)·s exactly as the encoder computes it: the subtraction is exact.
                    let qm = Float(q.qmax)
                    if q.bits == 8 {
                        let src = codes + i
                        for j in 0..<count { dst[j] = (Float(src[j]) - qm) * scale }
                    } else {
                        for j in 0..<count { dst[j] = (Float(Self.code(codes, i &+ j, bits: q.bits)) - qm) * scale }
                    }
                } else if q.bits == 8 {
                    let src = codes + i
                    for j in 0..<count { dst[j] = offset + Float(src[j]) * scale }
                } else {
                    for j in 0..<count { dst[j] = offset + Float(Self.code(codes, i &+ j, bits: q.bits)) * scale }
                }
                i = end
            }
        case .sign(let blk), .ternary(let blk):
            // Block by block, the scale loaded once: ±s from one bit per value.
            let block = blk == 0 ? max(m, 1) : blk
            let bitsIn = values.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var i = range.lowerBound
            while i < range.upperBound {
                let b = i / block
                let end = min(range.upperBound, (b + 1) * block)
                let s = Float(bitPattern: UInt32(littleEndian: scales.loadUnaligned(fromByteOffset: 4 * b, as: UInt32.self)))
                // ±s by flipping s's sign bit with the code bit (−s exactly, also for s = −0): eight values a byte in the
                // middle, one by one at unaligned edges.
                let sb = s.bitPattern
                var g = i
                while g < end, g & 7 != 0 {
                    out[g - range.lowerBound] = Float(bitPattern: sb ^ UInt32((bitsIn[g &>> 3] &>> UInt8(g & 7)) & 1) &<< 31)
                    g += 1
                }
                while g + 8 <= end {
                    let byte = UInt32(bitsIn[g &>> 3])
                    let dst = out + (g - range.lowerBound)
                    for t in 0..<8 { dst[t] = Float(bitPattern: sb ^ ((byte &>> UInt32(t)) & 1) &<< 31) }
                    g += 8
                }
                while g < end {
                    out[g - range.lowerBound] = Float(bitPattern: sb ^ UInt32((bitsIn[g &>> 3] &>> UInt8(g & 7)) & 1) &<< 31)
                    g += 1
                }
                i = end
            }
        }
    }

    /// The `bits`-wide code `i` of a packed stream at `p` (LSB-first within each byte).
    @inline(__always)
    static func code(_ p: UnsafePointer<UInt8>, _ i: Int, bits: Int) -> UInt8 {
        switch bits {
        case 8: return p[i]
        case 4: return (p[i &>> 1] &>> UInt8(truncatingIfNeeded: (i & 1) &* 4)) & 0xF
        case 2: return (p[i &>> 2] &>> UInt8(truncatingIfNeeded: (i & 3) &* 2)) & 0x3
        default: return (p[i &>> 3] &>> UInt8(truncatingIfNeeded: i & 7)) & 1
        }
    }

    /// The `bits`-wide code `i` of a packed stream (LSB-first within each byte).
    @inline(__always)
    func code(_ values: UnsafeRawBufferPointer, _ i: Int, bits: Int) -> UInt8 {
        switch bits {
        case 8: return values[i]
        case 4: return (values[i >> 1] >> UInt8((i & 1) * 4)) & 0xF
        case 2: return (values[i >> 2] >> UInt8((i & 3) * 2)) & 0x3
        default: return (values[i >> 3] >> UInt8(i & 7)) & 1
        }
    }
}

extension IntQuantizer {
    /// Quantizes `values` block by block into `scales` and bit-packed `codes` (which must start
    /// zeroed below 8 bits). Returns whether a value was NaN or infinite (its codes are then
    /// meaningless: the caller throws).
    func encode(
        _ values: UnsafeBufferPointer<Float>, scales: UnsafeMutableRawBufferPointer, codes: UnsafeMutableRawBufferPointer,
        error: UnsafeMutableBufferPointer<Float>?, round: UInt64
    ) -> Bool {
        var nonFinite = false
        let m = values.count
        var rng = SplitMix64(seed: seed, round: round)
        let perByte = 8 / bits
        var start = 0
        var b = 0
        while start < m {
            let end = min(m, start + block)
            var scale: Float
            var lo: Float = 0
            if symmetric {
                // The largest magnitude, compared as integer bits (finite inputs): vectorizes.
                var bitsMax: Int32 = 0
                for i in start..<end { bitsMax = max(bitsMax, Int32(bitPattern: values[i].bitPattern & 0x7FFF_FFFF)) }
                let amax = Float(bitPattern: UInt32(bitPattern: bitsMax))
                nonFinite = nonFinite || bitsMax >= 0x7F80_0000
                scale = amax / Float(qmax)
                scales.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: 4 * b, as: UInt32.self)
            } else {
                var hi = -Float.greatestFiniteMagnitude
                lo = Float.greatestFiniteMagnitude
                var exponents: UInt32 = 0
                for i in start..<end {
                    lo = min(lo, values[i])
                    hi = max(hi, values[i])
                    exponents |= (values[i].bitPattern & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0
                }
                nonFinite = nonFinite || exponents != 0
                scale = (hi - lo) / Float(maxCode)
                if !scale.isFinite { scale = .greatestFiniteMagnitude }  // hi − lo overflowed
                scales.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: 8 * b, as: UInt32.self)
                scales.storeBytes(of: lo.bitPattern.littleEndian, toByteOffset: 8 * b + 4, as: UInt32.self)
            }
            let inv: Float = scale > 0 ? 1 / scale : 0
            let offset: Float = symmetric ? Float(qmax) : 0
            let top = Float(maxCode)
            // (x − lo)·(1/scale) + offset; when 1/scale overflows (a block of magnitudes below
            // about 1e−36), x/scale instead: 0·∞ would be NaN.
            let divide = !inv.isFinite
            if stochastic || divide {
                for i in start..<end {
                    let x = values[i]
                    var t = divide ? (symmetric ? x : x - lo) / scale + offset : (symmetric ? x : x - lo) * inv + offset
                    t = stochastic ? (t + rng.unitFloat()).rounded(.down) : t.rounded(.toNearestOrEven)
                    t = t > 0 ? t : 0  // NaN-safe clamp (none can arise; nothing read may trap)
                    t = t < top ? t : top
                    let c = UInt8(t)
                    // 8-bit codes start uninitialized (each is written once); packed ones at zero.
                    if perByte == 1 { codes[i] = c } else { codes[i / perByte] |= c << UInt8((i % perByte) * bits) }
                    if let error {
                        let decoded = symmetric ? (t - offset) * scale : lo + t * scale
                        error[i] = x - decoded
                    }
                }
            } else {
                Self.roundToNearest(
                    values.baseAddress! + start, count: end - start, firstIndex: start, lo: symmetric ? 0 : lo, inv: inv,
                    offset: offset, top: top, scale: scale, symmetric: symmetric, bits: bits, codes: codes,
                    error: error.map { $0.baseAddress! + start })
            }
            start = end
            b += 1
        }
        return nonFinite
    }
}

extension IntQuantizer {
    /// 1.5 · 2^23: for 0 ≤ t < 2^22, `t + magic` rounds t to the nearest integer, ties to even
    /// (the FPU's rounding of the sum), and leaves that integer in its low mantissa bits.
    static let magic: Float = 0x1.8p23

    /// The round-to-nearest codes of one block (values `x[0..<count]`, global index `firstIndex`
    /// onward), and their quantization errors into `error` (which may be `x` itself).
    ///
    /// Clamping before rounding gives the same code as rounding before clamping (the bounds are
    /// integers), and the magic-constant round equals `rounded(.toNearestOrEven)` on [0, 255]:
    /// the loop then has no libm call and no trapping conversion, and LLVM vectorizes it.
    @inline(__always)
    static func roundToNearest(
        _ x: UnsafePointer<Float>, count: Int, firstIndex: Int, lo: Float, inv: Float, offset: Float, top: Float, scale: Float,
        symmetric: Bool, bits: Int, codes: UnsafeMutableRawBufferPointer, error: UnsafeMutablePointer<Float>?
    ) {
        @inline(__always) func code(_ v: Float) -> (code: UInt8, t: Float) {
            var t = (v - lo) * inv + offset
            t = t > 0 ? t : 0
            t = t < top ? t : top
            let r = t + magic
            return (UInt8(truncatingIfNeeded: r.bitPattern), r - magic)
        }
        @inline(__always) func decoded(_ t: Float) -> Float { symmetric ? (t - offset) * scale : lo + t * scale }
        if bits == 8 {
            let c = codes.baseAddress!.assumingMemoryBound(to: UInt8.self) + firstIndex
            if let error, UnsafePointer(error) == x {
                // In place (error feedback): one pointer, so no aliasing check stops vectorization.
                for i in 0..<count {
                    let v = error[i]
                    let (q, t) = code(v)
                    c[i] = q
                    error[i] = v - decoded(t)
                }
            } else if let error {
                for i in 0..<count {
                    let v = x[i]
                    let (q, t) = code(v)
                    c[i] = q
                    error[i] = v - decoded(t)
                }
            } else {
                for i in 0..<count { c[i] = code(x[i]).code }
            }
            return
        }
        let perByte = 8 / bits
        for i in 0..<count {
            let v = x[i]
            let (q, t) = code(v)
            let g = firstIndex + i
            codes[g / perByte] |= q << UInt8((g % perByte) * bits)
            if let error { error[i] = v - decoded(t) }
        }
    }
}

/// One bit per value (1 = negative) and the mean magnitude per block.
enum SignCoding {
    static func encode(
        _ values: UnsafeBufferPointer<Float>, block: Int, scales: UnsafeMutableRawBufferPointer,
        codes: UnsafeMutableRawBufferPointer, error: UnsafeMutableBufferPointer<Float>?
    ) {
        let m = values.count
        var start = 0
        var b = 0
        while start < m {
            let end = min(m, start + block)
            var sum: Double = 0
            for i in start..<end { sum += Double(abs(values[i])) }
            let scale = Float(sum / Double(end - start))
            scales.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: 4 * b, as: UInt32.self)
            // Bits: whole bytes eight values at a time (negative: bits above 0x8000_0000, so −0
            // is not), the block's partial bytes at its edges one bit at a time. Codes start at
            // zero. Then the errors, a plain select loop. Both vectorize; the per-bit loop did not.
            let x = values.baseAddress!
            let out = codes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var i = start
            while i < end, i & 7 != 0 {
                if x[i].bitPattern > 0x8000_0000 { out[i &>> 3] |= 1 &<< UInt8(i & 7) }
                i += 1
            }
            while i + 8 <= end {
                var byte: UInt8 = 0
                for t in 0..<8 { byte |= (x[i &+ t].bitPattern > 0x8000_0000 ? 1 : 0) &<< UInt8(t) }
                out[i &>> 3] = byte
                i += 8
            }
            while i < end {
                if x[i].bitPattern > 0x8000_0000 { out[i &>> 3] |= 1 &<< UInt8(i & 7) }
                i += 1
            }
            if let e = error?.baseAddress {
                if UnsafePointer(e) == x {
                    for j in start..<end { let v = e[j]; e[j] = v - (v < 0 ? -scale : scale) }
                } else {
                    for j in start..<end { let v = x[j]; e[j] = v - (v < 0 ? -scale : scale) }
                }
            }
            start = end
            b += 1
        }
    }
}

/// bfloat16 conversions: the top half of binary32, rounded to nearest even.
public enum BFloat16Bits {
    /// The bfloat16 nearest to `value` (ties to even); finite values too large become infinity.
    @inlinable @inline(__always)
    public static func fromFloat(_ value: Float) -> UInt16 {
        // Both results computed and one selected, no branch, so a loop of it vectorizes.
        let u = value.bitPattern
        let nan = UInt16(truncatingIfNeeded: u >> 16) | 0x40  // quiet NaN
        let rounded = UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
        return u & 0x7FFF_FFFF > 0x7F80_0000 ? nan : rounded
    }

    /// The float32 value of bfloat16 `bits` (exact).
    @inlinable @inline(__always)
    public static func toFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}
