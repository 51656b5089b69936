/// A pure-Swift LZ4 "high compression" block encoder for `lz4 level=1…12` where liblz4 is absent:
/// a hash-chain match finder (liblz4 HC's table sizes: 32,768 heads hashed from 4 bytes, a
/// 65,536-entry chain of 16-bit back steps) with lazy matching (one step ahead, two from level 6).
///
/// Its blocks are valid LZ4 that any decoder reads, but they are not byte-identical to
/// `LZ4_compress_HC`'s: liblz4's HC parser looks ahead over up to three overlapping matches and
/// levels 10–12 run an optimal parser, neither of which this reproduces. The level sets how many
/// chain candidates each position tries (liblz4's counts for 1–9: 2, 2, 4, …, 256; then 1,024,
/// 4,096 and 16,384), so higher levels trade time for ratio as they do in liblz4.
package enum LZ4ChainEncoder {
    static let minMatch = 4
    static let lastLiterals = 5
    static let mfLimit = 12
    static let maxDistance = 65535
    static let hashLog = 15
    static let chainSize = 1 << 16

    /// The chain candidates tried per position at `level` (clamped to 1…12).
    package static func attempts(level: Int) -> Int {
        switch min(max(level, 1), 12) {
        case 1, 2: 2
        case 10: 1024
        case 11: 4096
        case 12: 16384
        case let l: 1 << (l - 1)
        }
    }

    /// Compresses `source` into `destination` at `level`; returns the compressed length, or 0 when
    /// it would not fit `destination` or the input exceeds ``LZ4FastEncoder/maxInput``.
    package static func compress(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, level: Int
    ) -> Int {
        let count = source.count
        guard count <= LZ4FastEncoder.maxInput else { return 0 }
        guard count > 0, let s = source.baseAddress else {
            guard destination.count > 0 else { return 0 }
            destination[0] = 0
            return 1
        }
        guard let d = destination.baseAddress else { return 0 }
        let heads = UnsafeMutablePointer<Int32>.allocate(capacity: 1 << hashLog)
        heads.initialize(repeating: -1, count: 1 << hashLog)
        let chain = UnsafeMutablePointer<UInt16>.allocate(capacity: chainSize)
        chain.initialize(repeating: UInt16.max, count: chainSize)
        defer {
            heads.deallocate()
            chain.deallocate()
        }
        var finder = MatchFinder(s: s, heads: heads, chain: chain, matchLimit: count - lastLiterals, attempts: attempts(level: level))
        var writer = SequenceWriter(d: d, capacity: destination.count)

        let lookTwo = level >= 6
        var ip = 0, anchor = 0
        let mflimit = count - mfLimit  // the last position a match may start at
        if count >= mfLimit + 1 {
            while ip <= mflimit {
                var (length, ref) = finder.best(at: ip)
                if length < minMatch {
                    ip += 1
                    continue
                }
                // Lazy steps: a longer match one byte later is worth a literal; from level 6, two
                // bytes later (when one byte later is not) worth two if longer by more than one.
                while ip + 1 <= mflimit {
                    let (next, nextRef) = finder.best(at: ip + 1)
                    if next > length {
                        ip += 1
                        length = next
                        ref = nextRef
                        continue
                    }
                    guard lookTwo && ip + 2 <= mflimit else { break }
                    let (after, afterRef) = finder.best(at: ip + 2)
                    guard after > length + 1 else { break }
                    ip += 2
                    length = after
                    ref = afterRef
                }
                // Extend backwards over equal bytes the literals would otherwise carry.
                while ip > anchor && ref > 0
                    && s.load(fromByteOffset: ip - 1, as: UInt8.self) == s.load(fromByteOffset: ref - 1, as: UInt8.self)
                {
                    ip -= 1
                    ref -= 1
                    length += 1
                }
                guard writer.sequence(literals: s + anchor, ip - anchor, offset: ip - ref, matchLength: length) else { return 0 }
                ip += length
                anchor = ip
            }
        }
        return writer.last(literals: s + anchor, count - anchor) ? writer.op : 0
    }

    /// Hash heads and chain links over positions inserted so far, searched newest first.
    struct MatchFinder {
        let s: UnsafeRawPointer
        let heads: UnsafeMutablePointer<Int32>
        let chain: UnsafeMutablePointer<UInt16>
        let matchLimit: Int
        let attempts: Int
        var nextToInsert = 0

        @inline(__always) func hash(_ p: Int) -> Int {
            Int((LZ4FastEncoder.read32(s, p) &* 2_654_435_761) >> UInt32(32 - hashLog))
        }

        /// Inserts every position before `target` into the chains.
        @inline(__always) mutating func insert(upTo target: Int) {
            while nextToInsert < target {
                let p = nextToInsert
                let h = hash(p)
                let previous = Int(heads[h])
                let delta = previous < 0 ? maxDistance : min(p - previous, maxDistance)
                chain[p & (chainSize - 1)] = UInt16(delta)
                heads[h] = Int32(p)
                nextToInsert += 1
            }
        }

        /// The longest match for `ip` among the chain candidates: (length, position), length 0
        /// when there is none of at least 4 bytes.
        mutating func best(at ip: Int) -> (Int, Int) {
            insert(upTo: ip)
            var bestLength = 0, bestRef = 0
            var candidate = Int(heads[hash(ip)])
            var left = attempts
            let head = LZ4FastEncoder.read32(s, ip)
            while candidate >= 0 && ip - candidate <= maxDistance && left > 0 {
                left -= 1
                // A candidate can beat the best only if it matches one byte past its length.
                if bestLength == 0 || (ip + bestLength < matchLimit
                    && s.load(fromByteOffset: candidate + bestLength, as: UInt8.self) == s.load(fromByteOffset: ip + bestLength, as: UInt8.self))
                {
                    if LZ4FastEncoder.read32(s, candidate) == head {
                        let length = minMatch + LZ4FastEncoder.countEqual(s, ip + minMatch, candidate + minMatch, limit: matchLimit)
                        if length > bestLength {
                            bestLength = length
                            bestRef = candidate
                        }
                    }
                }
                let delta = Int(chain[candidate & (chainSize - 1)])
                if delta >= maxDistance { break }
                candidate -= delta
            }
            return (bestLength, bestRef)
        }
    }

    /// Writes sequences with exact capacity checks.
    struct SequenceWriter {
        let d: UnsafeMutableRawPointer
        let capacity: Int
        var op = 0

        @inline(__always) static func runBytes(_ length: Int) -> Int { length >= 15 ? (length - 15) / 255 + 1 : 0 }

        @inline(__always) mutating func byte(_ b: Int) {
            d.storeBytes(of: UInt8(truncatingIfNeeded: b), toByteOffset: op, as: UInt8.self)
            op += 1
        }

        @inline(__always) mutating func run(_ length: Int) {
            guard length >= 15 else { return }
            let rest = length - 15
            let full = rest / 255
            if full > 0 { (d + op).initializeMemory(as: UInt8.self, repeating: 255, count: full) }
            op += full
            byte(rest % 255)
        }

        /// A sequence of literals and a match; `false` when it does not fit.
        mutating func sequence(literals: UnsafeRawPointer, _ literalCount: Int, offset: Int, matchLength: Int) -> Bool {
            let code = matchLength - minMatch
            let needed = 1 + Self.runBytes(literalCount) + literalCount + 2 + Self.runBytes(code)
            guard op + needed <= capacity else { return false }
            byte(min(literalCount, 15) << 4 | min(code, 15))
            run(literalCount)
            if literalCount > 0 { (d + op).copyMemory(from: literals, byteCount: literalCount) }
            op += literalCount
            byte(offset)
            byte(offset >> 8)
            run(code)
            return true
        }

        /// The final literals-only sequence; `false` when it does not fit.
        mutating func last(literals: UnsafeRawPointer, _ literalCount: Int) -> Bool {
            guard op + 1 + Self.runBytes(literalCount) + literalCount <= capacity else { return false }
            byte(min(literalCount, 15) << 4)
            run(literalCount)
            if literalCount > 0 { (d + op).copyMemory(from: literals, byteCount: literalCount) }
            op += literalCount
            return true
        }
    }
}
