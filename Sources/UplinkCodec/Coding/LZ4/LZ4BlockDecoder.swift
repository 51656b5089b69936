/// A pure-Swift decoder of one LZ4 block that accepts exactly what liblz4's `LZ4_decompress_safe`
/// (1.9.4) accepts and produces the same bytes, except that it rejects offset 0, which the LZ4
/// block format calls invalid and liblz4 decodes as zeros.
///
/// It mirrors liblz4's two loops, because their end-of-block rules differ slightly and the
/// accepted set must not: a fast loop while at least 64 bytes of output remain, where copies may
/// run a few bytes past the current sequence, then a careful loop that checks every length
/// against both ends. Every load and store is inside the two buffers for any input: a copy is
/// "wild" (8 or 16 bytes at a time, past the end of the sequence) only where the remaining
/// output and input are known to hold it, and exact otherwise.
package enum LZ4BlockDecoder {
    /// Why a block is not valid LZ4.
    package enum Corruption: Sendable, Hashable, CustomStringConvertible {
        /// The block is empty.
        case emptyInput
        /// The output is empty but the block is not the single zero token that encodes nothing.
        case nonEmptyBlockForEmptyOutput
        /// A run of length bytes (255, 255, …) reaches the end of the input.
        case lengthRunsPastInput
        /// A length is so large that the position after it overflows.
        case lengthOverflow
        /// The last literals do not end exactly at the end of the input, or overrun the output.
        case badLastLiterals
        /// A match copies from before the start of the output.
        case offsetBeforeStart
        /// A match offset is 0 (liblz4 accepts it and writes zeros; the format forbids it).
        case zeroOffset
        /// A match ends within the last 5 bytes of the output or past its end.
        case matchPastEnd
        /// The block ends in the middle of a sequence.
        case truncated

        package var description: String {
            switch self {
            case .emptyInput: "the block is empty"
            case .nonEmptyBlockForEmptyOutput: "an empty output must be the single token 0"
            case .lengthRunsPastInput: "a length runs past the end of the input"
            case .lengthOverflow: "a length overflows"
            case .badLastLiterals: "the last literals do not end the input exactly or overrun the output"
            case .offsetBeforeStart: "a match refers to before the start of the output"
            case .zeroOffset: "a match has offset 0"
            case .matchPastEnd: "a match runs into the last 5 bytes of the output or past its end"
            case .truncated: "the block ends inside a sequence"
            }
        }
    }

    /// The result of decoding: the number of bytes written, or why and where (input offset) the
    /// block is invalid. A block that decodes to fewer bytes than `destination` holds is not
    /// an error here (liblz4 returns the shorter count too); the caller compares.
    package enum Outcome: Sendable, Hashable {
        case decoded(Int)
        case corrupt(Corruption, at: Int)
    }

    // Constants of the LZ4 block format and of liblz4's decoder.
    static let minMatch = 4
    static let lastLiterals = 5
    static let mfLimit = 12
    static let matchSafeguardDistance = 12  // 2 × WILDCOPYLENGTH − MINMATCH
    static let fastLoopSafeDistance = 64

    /// Where the careful loop resumes when the fast loop hands over in the middle of a sequence.
    private enum Resume {
        case token, literalCopy, matchLength, matchCopy
    }

    /// Decodes the block `source` into `destination` (its capacity is the largest output allowed).
    package static func decode(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) -> Outcome {
        let iend = source.count
        let oend = destination.count
        if oend == 0 {
            return iend == 1 && source[0] == 0 ? .decoded(0) : .corrupt(.nonEmptyBlockForEmptyOutput, at: 0)
        }
        guard iend > 0, let s = source.baseAddress, let d = destination.baseAddress else {
            return .corrupt(.emptyInput, at: 0)
        }
        var ip = 0, op = 0
        var token = 0, length = 0, offset = 0, match = 0, cpy = 0
        var resume = Resume.token

        // MARK: Fast loop: at least 64 bytes of output left at every token.
        if oend &- op >= fastLoopSafeDistance {
            fast: while true {
                guard ip < iend else { return .corrupt(.truncated, at: ip) }
                token = Int(s.load(fromByteOffset: ip, as: UInt8.self))
                ip &+= 1
                length = token >> 4
                if length == 15 {
                    guard let more = readLength(s, &ip, limit: iend &- 15, initialCheck: true, end: iend) else {
                        return .corrupt(.lengthRunsPastInput, at: ip)
                    }
                    length &+= more
                    cpy = op &+ length
                    if cpy > oend &- 32 || ip &+ length > iend &- 32 {
                        resume = .literalCopy
                        break fast
                    }
                    // Both ends are at least 32 bytes away: 16-byte steps may run past cpy.
                    if length > 256 {
                        (d + op).copyMemory(from: s + ip, byteCount: length)
                    } else {
                        var o = op, i = ip
                        repeat {
                            copy16(d + o, s + i)
                            o &+= 16
                            i &+= 16
                        } while o < cpy
                    }
                    ip &+= length
                    op = cpy
                } else {
                    cpy = op &+ length
                    if ip > iend &- 17 {
                        resume = .literalCopy
                        break fast
                    }
                    // 16 bytes are readable (ip ≤ iend − 17) and writable (oend − op ≥ 64).
                    copy16(d + op, s + ip)
                    ip &+= length
                    op = cpy
                }
                // ip ≤ iend − 3 here: the offset's two bytes are inside the input.
                offset = readOffset(s, ip)
                ip &+= 2
                guard offset != 0 else { return .corrupt(.zeroOffset, at: ip &- 2) }
                match = op &- offset
                length = token & 15
                if length == 15 {
                    guard let more = readLength(s, &ip, limit: iend &- lastLiterals &+ 1, initialCheck: false, end: iend) else {
                        return .corrupt(.lengthRunsPastInput, at: ip)
                    }
                    length &+= more &+ minMatch
                    guard match >= 0 else { return .corrupt(.offsetBeforeStart, at: ip) }
                    if op &+ length >= oend &- fastLoopSafeDistance {
                        resume = .matchCopy
                        break fast
                    }
                } else {
                    length &+= minMatch
                    if op &+ length >= oend &- fastLoopSafeDistance {
                        resume = .matchCopy
                        break fast
                    }
                    if match >= 0 && offset >= 8 {
                        // 18 bytes in three steps, each reading only bytes already written.
                        copy8(d + op, d + match)
                        copy8(d + (op &+ 8), d + (match &+ 8))
                        (d + (op &+ 16)).storeBytes(of: (d + (match &+ 16)).loadUnaligned(as: UInt16.self), as: UInt16.self)
                        op &+= length
                        continue fast
                    }
                }
                guard match >= 0 else { return .corrupt(.offsetBeforeStart, at: ip) }
                cpy = op &+ length
                // cpy < oend − 64: the match copy may run up to 15 bytes past cpy.
                copyMatchWild(d, from: match, to: op, end: cpy, wide: true)
                op = cpy
            }
        }

        // MARK: Careful loop.
        while true {
            if resume == .token {
                guard ip < iend else { return .corrupt(.truncated, at: ip) }
                token = Int(s.load(fromByteOffset: ip, as: UInt8.self))
                ip &+= 1
                length = token >> 4
                // liblz4's shortcut: a short literal run and a short match far from both ends.
                if length != 15 && ip < iend &- 16 && op <= oend &- 32 {
                    copy16(d + op, s + ip)
                    op &+= length
                    ip &+= length
                    length = token & 15
                    offset = readOffset(s, ip)
                    ip &+= 2
                    guard offset != 0 else { return .corrupt(.zeroOffset, at: ip &- 2) }
                    match = op &- offset
                    if length != 15 && offset >= 8 && match >= 0 {
                        copy8(d + op, d + match)
                        copy8(d + (op &+ 8), d + (match &+ 8))
                        (d + (op &+ 16)).storeBytes(of: (d + (match &+ 16)).loadUnaligned(as: UInt16.self), as: UInt16.self)
                        op &+= length &+ minMatch
                        continue
                    }
                    resume = .matchLength
                } else {
                    if length == 15 {
                        guard let more = readLength(s, &ip, limit: iend &- 15, initialCheck: true, end: iend) else {
                            return .corrupt(.lengthRunsPastInput, at: ip)
                        }
                        length &+= more
                    }
                    cpy = op &+ length
                    resume = .literalCopy
                }
            }
            if resume == .literalCopy {
                if cpy > oend &- mfLimit || ip &+ length > iend &- (2 &+ 1 &+ lastLiterals) {
                    // Only the last sequence may come this close to either end: it must be
                    // literals that end the input exactly and fit the output.
                    guard ip &+ length == iend, cpy <= oend else { return .corrupt(.badLastLiterals, at: ip) }
                    if length > 0 { (d + op).copyMemory(from: s + ip, byteCount: length) }
                    op &+= length
                    return .decoded(op)
                }
                // cpy ≤ oend − 12 and ip + length ≤ iend − 8.
                copyLiterals(d + op, s + ip, length)
                ip &+= length
                op = cpy
                offset = readOffset(s, ip)
                ip &+= 2
                guard offset != 0 else { return .corrupt(.zeroOffset, at: ip &- 2) }
                match = op &- offset
                length = token & 15
                resume = .matchLength
            }
            if resume == .matchLength {
                if length == 15 {
                    guard let more = readLength(s, &ip, limit: iend &- lastLiterals &+ 1, initialCheck: false, end: iend) else {
                        return .corrupt(.lengthRunsPastInput, at: ip)
                    }
                    length &+= more
                }
                length &+= minMatch
            }
            resume = .token
            guard match >= 0 else { return .corrupt(.offsetBeforeStart, at: ip) }
            cpy = op &+ length
            guard cpy >= op else { return .corrupt(.lengthOverflow, at: ip) }
            if cpy > oend &- matchSafeguardDistance {
                // The last 5 bytes of a block are always literals.
                guard cpy <= oend &- lastLiterals else { return .corrupt(.matchPastEnd, at: ip) }
                copyMatchExact(d, from: match, to: op, end: cpy)
            } else {
                // At least 12 bytes after cpy: room for the 7-byte overrun of 8-byte steps.
                copyMatchWild(d, from: match, to: op, end: cpy, wide: false)
            }
            op = cpy
        }
    }

    // MARK: - Pieces

    /// Reads the 255-continued extension of a literal or match length, with liblz4's limits:
    /// `nil` once the position passes `limit` (or, with `initialCheck`, starts at or past it).
    @inline(__always)
    private static func readLength(
        _ s: UnsafeRawPointer, _ ip: inout Int, limit: Int, initialCheck: Bool, end: Int
    ) -> Int? {
        if initialCheck && ip >= limit { return nil }
        var length = 0
        while true {
            guard ip < end else { return nil }
            let b = Int(s.load(fromByteOffset: ip, as: UInt8.self))
            ip &+= 1
            length &+= b
            if ip > limit { return nil }
            if b != 255 { return length }
        }
    }

    @inline(__always)
    private static func readOffset(_ s: UnsafeRawPointer, _ ip: Int) -> Int {
        Int(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: ip, as: UInt16.self)))
    }

    @inline(__always)
    private static func copy8(_ to: UnsafeMutableRawPointer, _ from: UnsafeRawPointer) {
        to.storeBytes(of: from.loadUnaligned(as: UInt64.self), as: UInt64.self)
    }

    @inline(__always)
    private static func copy16(_ to: UnsafeMutableRawPointer, _ from: UnsafeRawPointer) {
        let a = from.loadUnaligned(as: UInt64.self)
        let b = from.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        to.storeBytes(of: a, as: UInt64.self)
        to.storeBytes(of: b, toByteOffset: 8, as: UInt64.self)
    }

    /// Copies literals when at least 8 bytes remain after both runs: 16-byte steps, the last one
    /// possibly past the run (into bytes the next sequence overwrites).
    @inline(__always)
    private static func copyLiterals(_ to: UnsafeMutableRawPointer, _ from: UnsafeRawPointer, _ count: Int) {
        if count <= 8 {
            copy8(to, from)
        } else if count <= 16 {
            copy8(to, from)
            copy8(to + 8, from + 8)
        } else {
            to.copyMemory(from: from, byteCount: count)
        }
    }

    /// Copies the match `[from, from + (end − to))` to `[to, end)` with LZ77 overlap semantics
    /// (a byte may repeat one written earlier in the same match). Writes up to 7 bytes past `end`,
    /// or 15 when `wide`; the caller guarantees those are inside the output. Needs `end ≥ to + 4`.
    @inline(__always)
    private static func copyMatchWild(_ d: UnsafeMutableRawPointer, from match: Int, to op: Int, end: Int, wide: Bool) {
        var m = match, o = op
        let distance = o &- m
        if distance == 1 || distance == 2 || distance == 4 {
            // A pattern that divides 8: build 8 bytes of it once and store them, with no loads
            // of bytes just written (liblz4's LZ4_memcpy_using_offset for 1, 2 and 4).
            let pattern: UInt64
            switch distance {
            case 1: pattern = UInt64(d.load(fromByteOffset: m, as: UInt8.self)) &* 0x0101_0101_0101_0101
            case 2: pattern = UInt64((d + m).loadUnaligned(as: UInt16.self)) &* 0x0001_0001_0001_0001
            default: pattern = UInt64((d + m).loadUnaligned(as: UInt32.self)) &* 0x0000_0001_0000_0001
            }
            if end &- o > 256 && distance == 1 {
                (d + o).initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: pattern), count: end &- o)
                return
            }
            repeat {
                (d + o).storeBytes(of: pattern, as: UInt64.self)
                o &+= 8
            } while o < end
            return
        }
        if distance < 8 {
            // liblz4's trick: four single bytes, four more from a shifted source, and the source
            // moved back to a multiple of `distance` at least 8 behind: the output is periodic
            // with `distance`, so copying from there gives the same bytes (8, 8, 9, 8, 10, 12, 14
            // behind for distances 1…7).
            for i in 0..<4 {
                d.storeBytes(of: d.load(fromByteOffset: m &+ i, as: UInt8.self), toByteOffset: o &+ i, as: UInt8.self)
            }
            let shift = distance &* 4
            m &+= (0x4440_1210 >> shift) & 0xF  // inc32table
            (d + (o &+ 4)).storeBytes(of: (d + m).loadUnaligned(as: UInt32.self), as: UInt32.self)
            m &-= ((0x7650_3444 >> shift) & 0xF) &- 4  // dec64table
            o &+= 8
            if o >= end { return }
        }
        if wide && o &- m >= 16 {
            repeat {
                copy16(d + o, d + m)
                o &+= 16
                m &+= 16
            } while o < end
        } else {
            repeat {
                copy8(d + o, d + m)
                o &+= 8
                m &+= 8
            } while o < end
        }
    }

    /// Copies a match without writing past `end` (the match ends near the end of the output):
    /// 8-byte steps up to 16 bytes before `end`, then byte by byte.
    @inline(__always)
    private static func copyMatchExact(_ d: UnsafeMutableRawPointer, from match: Int, to op: Int, end: Int) {
        let distance = op &- match
        var o = op
        if end &- o > 24 {
            copyMatchWild(d, from: match, to: o, end: end &- 16, wide: false)
            o = end &- 16
        }
        var m = o &- distance
        if distance >= 8 {
            while o &+ 8 <= end {
                copy8(d + o, d + m)
                o &+= 8
                m &+= 8
            }
        }
        while o < end {
            d.storeBytes(of: d.load(fromByteOffset: m, as: UInt8.self), toByteOffset: o, as: UInt8.self)
            o &+= 1
            m &+= 1
        }
    }
}
