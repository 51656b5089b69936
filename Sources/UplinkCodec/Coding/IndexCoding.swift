/// Codes the sorted positions of the kept entries of a sparse update into the `indices` stream,
/// choosing per frame whichever of two methods is smaller:
///
/// - **Rice** coding of the gaps `g₀ = i₀`, `gⱼ = iⱼ − iⱼ₋₁ − 1`, with the parameter r that
///   minimises the exact size (searched around log₂ of the mean gap). A quotient of 32 or more
///   escapes to the gap in plain binary, so a few huge gaps (clustered positions) stay cheap.
/// - a **bitmap** of n bits.
///
/// For uniformly random positions Rice is within 0.4% of the entropy bound log₂ C(n,k)/k at 1%
/// density and 0.8% at 0.1%. Layout (normative in `docs/wire-format.md` §8):
/// `u8 method, u8 r, LEB128 k, payload`.
public enum IndexCoding {
    /// The two methods.
    public enum Method: UInt8, Sendable, CustomStringConvertible {
        case rice = 0
        case bitmap = 1
        public var description: String { self == .rice ? "rice" : "bitmap" }
    }

    /// Quotients at or above this escape to a plain-binary gap.
    static let escapeQuotient = 32

    /// Bits of a plain-binary position below `n`.
    static func positionBits(_ n: Int) -> Int { n <= 1 ? 1 : Int.bitWidth - (n - 1).leadingZeroBitCount }

    /// The index stream for strictly increasing `indices` below `n`.
    public static func encode(_ indices: UnsafeBufferPointer<Int>, n: Int) -> [UInt8] {
        let k = indices.count
        var header = [UInt8]()
        let bitmapBytes = (n + 7) / 8
        let (r, riceBits) = bestRice(indices, n: n)
        if (riceBits + 7) / 8 < bitmapBytes || k == 0 {
            header = [Method.rice.rawValue, UInt8(r)]
            appendLEB128(UInt64(k), to: &header)
            var w = BitWriter(capacity: header.count + (riceBits + 7) / 8)
            w.write(bytes: header)
            let width = positionBits(n)
            var prev = -1
            for i in indices {
                let g = UInt64(i - prev - 1)
                prev = i
                let q = Int(g >> UInt64(r))
                if q < escapeQuotient {
                    w.writeOnes(q)
                    w.write(0, bits: 1)
                    if r > 0 { w.write(g & ((1 << UInt64(r)) - 1), bits: r) }
                } else {
                    w.writeOnes(escapeQuotient)
                    w.write(g, bits: width)
                }
            }
            return w.finish()
        }
        header = [Method.bitmap.rawValue, 0]
        appendLEB128(UInt64(k), to: &header)
        var out = header + [UInt8](repeating: 0, count: bitmapBytes)
        for i in indices { out[header.count + (i >> 3)] |= 1 << UInt8(i & 7) }
        return out
    }

    /// The best Rice parameter for these indices and its exact payload size in bits.
    ///
    /// One pass builds, per gap bit length ℓ, the count and sum of the gaps. For a parameter r a
    /// gap escapes exactly when ℓ ≥ r + 6 (its quotient is then ≥ 32), so the cost of every r is
    /// known up to the floor in `g >> r` from these 65 bins; the two best estimates are then
    /// costed exactly. This finds small r for clustered positions (many tiny gaps, a few huge
    /// ones) where a guess from the mean gap would not.
    static func bestRice(_ indices: UnsafeBufferPointer<Int>, n: Int) -> (r: Int, bits: Int) {
        let k = indices.count
        guard k > 0 else { return (0, 0) }
        let width = positionBits(n)
        var count = [Int](repeating: 0, count: 65)
        var sum = [Double](repeating: 0, count: 65)
        var prev = -1
        for i in indices {
            let g = i - prev - 1
            prev = i
            let length = Int.bitWidth - g.leadingZeroBitCount
            count[length] += 1
            sum[length] += Double(g)
        }
        var estimates: [(r: Int, bits: Double)] = []
        for r in 0...min(width, 57) {
            var bits = 0.0
            for length in 0...64 where count[length] > 0 {
                if length >= r + 6 {
                    bits += Double(count[length] * (escapeQuotient + width))
                } else {
                    bits += Double(count[length] * (1 + r)) + sum[length] / Double(1 << r)
                }
            }
            estimates.append((r, bits))
        }
        estimates.sort { $0.bits < $1.bits }
        var best = (r: 0, bits: Int.max)
        for (r, _) in estimates.prefix(2) {
            let bits = exactRiceBits(indices, r: r, width: width)
            if bits < best.bits || (bits == best.bits && r < best.r) { best = (r, bits) }
        }
        return best
    }

    static func exactRiceBits(_ indices: UnsafeBufferPointer<Int>, r: Int, width: Int) -> Int {
        var bits = 0
        var prev = -1
        for i in indices {
            let q = (i - prev - 1) >> r
            prev = i
            bits += q < escapeQuotient ? q + 1 + r : escapeQuotient + width
        }
        return bits
    }

    /// What an index stream holds, read from its first bytes.
    public struct Summary: Sendable {
        public var method: Method
        public var riceParameter: Int
        public var count: Int
    }

    /// Reads the method, Rice parameter and k without decoding the positions.
    public static func summary(_ stream: UnsafeRawBufferPointer, n: Int) throws(UplinkError) -> (Summary, payloadOffset: Int) {
        guard stream.count >= 3 else { throw UplinkError(.malformedStream, "index stream of \(stream.count) bytes is too short") }
        guard let method = Method(rawValue: stream[0]) else {
            throw UplinkError(.malformedStream, "index stream has unknown method \(stream[0])")
        }
        let r = Int(stream[1])
        guard method == .rice ? r <= positionBits(n) : r == 0 else {
            throw UplinkError(.malformedStream, "index stream Rice parameter \(r) is out of range")
        }
        var offset = 2
        let k = try readLEB128(stream, &offset)
        guard k <= UInt64(n) else { throw UplinkError(.malformedStream, "index stream declares k = \(k) of n = \(n)") }
        return (Summary(method: method, riceParameter: r, count: Int(k)), offset)
    }

    /// Decodes the positions, checking that they are strictly increasing, below `n`, exactly
    /// `k` of them, and that the stream has no extra bytes or non-zero padding.
    public static func decode(_ stream: UnsafeRawBufferPointer, n: Int) throws(UplinkError) -> [Int] {
        let p = try decodePositions(stream, n: n)
        return (0..<p.count).map { p[$0] }
    }

    /// ``decode(_:n:)`` into the compact form the decoder keeps (32 bits a position below 2^32).
    static func decodePositions(_ stream: UnsafeRawBufferPointer, n: Int) throws(UplinkError) -> Positions {
        let (s, offset) = try summary(stream, n: n)
        let payload = UnsafeRawBufferPointer(rebasing: stream[offset...])
        var out = Positions(n: n)
        switch s.method {
        case .bitmap:
            guard payload.count == (n + 7) / 8 else {
                throw UplinkError(.malformedStream, "bitmap of \(payload.count) bytes for n = \(n) needs \((n + 7) / 8)")
            }
            if n % 8 != 0, payload[payload.count - 1] >> UInt8(n % 8) != 0 {
                throw UplinkError(.malformedStream, "bitmap has bits set past n")
            }
            var ones = 0
            for b in payload { ones += b.nonzeroBitCount }
            guard ones == s.count else { throw UplinkError(.malformedStream, "bitmap holds \(ones) positions, k = \(s.count)") }
            out.reserve(s.count)
            for (j, b) in payload.enumerated() where b != 0 {
                var v = b
                while v != 0 {
                    out.append(j * 8 + v.trailingZeroBitCount)
                    v &= v - 1
                }
            }
        case .rice:
            // Every code takes at least one bit, so k is bounded by the payload before reserving.
            guard s.count <= payload.count * 8 else {
                throw UplinkError(.malformedStream, "index stream of \(payload.count) bytes cannot hold \(s.count) positions")
            }
            let r = s.riceParameter
            let width = positionBits(n)
            var prev = -1
            var reader = BitReader(payload)
            // One code: the careful reader (bounds-checked, escapes, the last bytes).
            func slowCode() throws(UplinkError) -> Int {
                let q = try reader.readUnary(limit: escapeQuotient)
                let g: UInt64
                if q < escapeQuotient {
                    g = (UInt64(q) << UInt64(r)) | (r > 0 ? try reader.read(bits: r) : 0)
                } else {
                    g = try reader.read(bits: width)
                }
                guard g < UInt64(n), prev + 1 + Int(g) < n else {
                    throw UplinkError(.malformedStream, "index stream position past n = \(n)")
                }
                prev = prev + 1 + Int(g)
                return prev
            }
            if !out.isWide {
                // Below 2^32 parameters (every model the default limits accept): codes decoded
                // straight into 32-bit positions. While 8 bytes remain, one unaligned load holds a
                // whole non-escape code (q + 1 + r ≤ 57 bits), read without any bounds check; the
                // checked reader takes escapes and the tail. The same stream, the same refusals.
                var failure: UplinkError?
                let count = s.count
                let mask: UInt64 = r == 0 ? 0 : (1 << UInt64(r)) &- 1
                let narrow = [UInt32](unsafeUninitializedCapacity: count) { buf, initialized in
                    let bytes = payload.count
                    let base = payload.baseAddress
                    var i = 0
                    var pos = 0
                    while i < count {
                        let byte = pos &>> 3
                        if let base, byte &+ 8 <= bytes {
                            let w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: byte, as: UInt64.self)) &>> UInt64(pos & 7)
                            let q = (~w).trailingZeroBitCount
                            if q < escapeQuotient, q &+ 1 &+ r <= 57 {
                                let g = (UInt64(q) &<< UInt64(r)) | ((w &>> UInt64(q &+ 1)) & mask)
                                guard g < UInt64(n), prev &+ 1 &+ Int(g) < n else {
                                    failure = UplinkError(.malformedStream, "index stream position past n = \(n)")
                                    break
                                }
                                prev = prev &+ 1 &+ Int(g)
                                buf[i] = UInt32(truncatingIfNeeded: prev)
                                i &+= 1
                                pos &+= q &+ 1 &+ r
                                continue
                            }
                        }
                        reader = BitReader(payload, position: pos)
                        do throws(UplinkError) {
                            buf[i] = UInt32(truncatingIfNeeded: try slowCode())
                        } catch {
                            failure = error
                            break
                        }
                        i += 1
                        pos = reader.position
                    }
                    reader = BitReader(payload, position: pos)
                    initialized = failure == nil ? count : 0
                }
                if let failure { throw failure }
                out = Positions(narrow: narrow)
            } else {
                out.reserve(s.count)
                for _ in 0..<s.count { out.append(try slowCode()) }
            }
            let used = (reader.position + 7) / 8
            guard used == payload.count else {
                throw UplinkError(.malformedStream, "index stream has \(payload.count - used) bytes after its last code")
            }
            if reader.position % 8 != 0, payload[used - 1] >> UInt8(reader.position % 8) != 0 {
                throw UplinkError(.malformedStream, "index stream has non-zero padding bits")
            }
        }
        return out
    }

    /// The largest valid index stream for `n` parameters: header plus a bitmap (Rice is used
    /// only when smaller).
    public static func maxLength(n: Int) -> Int { 2 + 10 + (n + 7) / 8 }

    /// log₂ C(n, k) / k: the fewest bits per position any code can average over uniformly
    /// random positions.
    public static func entropyBoundBitsPerPosition(n: Int, k: Int) -> Double {
        guard k > 0, k < n else { return 0 }
        let lg = lgammaD(Double(n) + 1) - lgammaD(Double(k) + 1) - lgammaD(Double(n - k) + 1)
        return lg / 0.6931471805599453 / Double(k)
    }

    static func appendLEB128(_ v: UInt64, to out: inout [UInt8]) {
        var v = v
        repeat {
            let byte = UInt8(v & 0x7F)
            v >>= 7
            out.append(v == 0 ? byte : byte | 0x80)
        } while v != 0
    }

    static func readLEB128(_ s: UnsafeRawBufferPointer, _ offset: inout Int) throws(UplinkError) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < s.count, shift < 64 else { throw UplinkError(.malformedStream, "index stream count is truncated or too long") }
            let b = s[offset]
            offset += 1
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                // Canonical form only: no redundant trailing zero groups.
                guard b != 0 || shift == 0 else { throw UplinkError(.malformedStream, "index stream count is not minimally encoded") }
                return v
            }
            shift += 7
        }
    }
}

extension BitWriter {
    mutating func write(bytes: [UInt8]) {
        for b in bytes { write(UInt64(b), bits: 8) }
    }
}

func lgammaD(_ x: Double) -> Double { CMath.lgamma(x) }
