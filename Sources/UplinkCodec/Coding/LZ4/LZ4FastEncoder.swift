/// A pure-Swift port of liblz4's `LZ4_compress_default` (1.9.4, acceleration 1, 64-bit
/// little-endian build) whose output is byte-identical to liblz4's, so a frame made on a phone
/// without liblz4 equals the frame made on a Linux server.
///
/// Identity needs every decision liblz4 makes, not just a valid parse: the same table (8,192
/// 16-bit positions hashed by `LZ4_hash4` below 64 KiB + 11 bytes of input; 4,096 32-bit
/// positions hashed by `LZ4_hash5` above), the same skip step on incompressible data, the same
/// backward extension, the same positions inserted after a match, the same end rules (no match
/// starts in the last 12 bytes, the last 5 are literals) and the same "does not fit" verdicts
/// when the output is smaller than the worst case. On every platform it computes what 64-bit
/// little-endian liblz4 computes (a 32-bit or big-endian liblz4 hashes differently).
package enum LZ4FastEncoder {
    /// The largest input one block may hold (LZ4_MAX_INPUT_SIZE).
    package static let maxInput = 0x7E00_0000

    /// liblz4's worst-case output size for `count` input bytes (LZ4_compressBound), or 0 when the
    /// input is too large for one block.
    package static func bound(_ count: Int) -> Int {
        count < 0 || count > maxInput ? 0 : count + count / 255 + 16
    }

    /// Compresses `source` into `destination`; returns the compressed length, or 0 when the result
    /// would not fit `destination` (exactly when `LZ4_compress_default` returns 0 for the same
    /// capacity) or the input is larger than ``maxInput``.
    package static func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int {
        let count = source.count
        guard count <= maxInput else { return 0 }
        // liblz4 checks capacity as it goes only when it is below the worst case.
        let limited = destination.count < bound(count)
        guard count > 0, let s = source.baseAddress else {
            guard destination.count > 0 else { return 0 }
            destination[0] = 0
            return 1
        }
        guard let d = destination.baseAddress else { return 0 }
        if count < smallInputLimit {
            return withUnsafeTemporaryAllocation(of: UInt16.self, capacity: SmallTable.size) { table in
                table.initialize(repeating: 0)
                return encode(s, count, d, destination.count, limited, SmallTable(slots: table.baseAddress!))
            }
        }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: LargeTable.size) { table in
            table.initialize(repeating: 0)
            return encode(s, count, d, destination.count, limited, LargeTable(slots: table.baseAddress!))
        }
    }

    // MARK: - Constants (lz4.c)

    static let minMatch = 4
    static let lastLiterals = 5
    static let mfLimit = 12
    static let skipTrigger = 6
    static let maxDistance = 65535
    /// LZ4_64Klimit: below this input size liblz4 uses the 16-bit table.
    static let smallInputLimit = 65536 + mfLimit - 1

    // MARK: - Hash tables

    /// liblz4's two table types for a block compressed alone (byU16 and byU32 on 64 bits).
    protocol Table {
        /// Whether a candidate may be more than 65,535 bytes back (only with 32-bit positions).
        static var checksDistance: Bool { get }
        func hash(_ s: UnsafeRawPointer, _ p: Int) -> Int
        func get(_ h: Int) -> Int
        func put(_ h: Int, _ position: Int)
    }

    /// byU16: 8,192 16-bit positions, `LZ4_hash4` of 4 bytes with a 13-bit result.
    struct SmallTable: Table {
        static let size = 1 << 13
        static var checksDistance: Bool { false }
        let slots: UnsafeMutablePointer<UInt16>
        @inline(__always) func hash(_ s: UnsafeRawPointer, _ p: Int) -> Int {
            Int((read32(s, p) &* 2_654_435_761) >> (32 &- 13))
        }
        @inline(__always) func get(_ h: Int) -> Int { Int(slots[h]) }
        @inline(__always) func put(_ h: Int, _ position: Int) { slots[h] = UInt16(truncatingIfNeeded: position) }
    }

    /// byU32: 4,096 32-bit positions, `LZ4_hash5` of the low 5 bytes of a 64-bit little-endian load.
    struct LargeTable: Table {
        static let size = 1 << 12
        static var checksDistance: Bool { true }
        let slots: UnsafeMutablePointer<UInt32>
        @inline(__always) func hash(_ s: UnsafeRawPointer, _ p: Int) -> Int {
            Int(((read64(s, p) << 24) &* 889_523_592_379) >> (64 - 12))
        }
        @inline(__always) func get(_ h: Int) -> Int { Int(slots[h]) }
        @inline(__always) func put(_ h: Int, _ position: Int) { slots[h] = UInt32(truncatingIfNeeded: position) }
    }

    @inline(__always) static func read32(_ s: UnsafeRawPointer, _ p: Int) -> UInt32 {
        UInt32(littleEndian: s.loadUnaligned(fromByteOffset: p, as: UInt32.self))
    }

    @inline(__always) static func read64(_ s: UnsafeRawPointer, _ p: Int) -> UInt64 {
        UInt64(littleEndian: s.loadUnaligned(fromByteOffset: p, as: UInt64.self))
    }

    /// The number of equal bytes at `a` and `b` (`b < a`), counting no further than `limit`
    /// (LZ4_count).
    @inline(__always) static func countEqual(_ s: UnsafeRawPointer, _ a: Int, _ b: Int, limit: Int) -> Int {
        // Wrapping arithmetic: every index is below the input size, far from overflow.
        var i = a, j = b
        while i &+ 16 <= limit {
            let x = read64(s, i) ^ read64(s, j)
            if x != 0 { return i &+ x.trailingZeroBitCount / 8 &- a }
            let y = read64(s, i &+ 8) ^ read64(s, j &+ 8)
            if y != 0 { return i &+ 8 &+ y.trailingZeroBitCount / 8 &- a }
            i &+= 16
            j &+= 16
        }
        if i &+ 8 <= limit {
            let x = read64(s, i) ^ read64(s, j)
            if x != 0 { return i &+ x.trailingZeroBitCount / 8 &- a }
            i &+= 8
            j &+= 8
        }
        while i < limit && s.load(fromByteOffset: i, as: UInt8.self) == s.load(fromByteOffset: j, as: UInt8.self) {
            i &+= 1
            j &+= 1
        }
        return i &- a
    }

    /// Writes the 255-continued part of a length that reached its token's 15.
    @inline(__always) static func writeLengthRun(_ d: UnsafeMutableRawPointer, _ op: inout Int, _ rest: Int) {
        let full = rest / 255
        if full > 0 { (d + op).initializeMemory(as: UInt8.self, repeating: 255, count: full) }
        op += full
        d.storeBytes(of: UInt8(truncatingIfNeeded: rest % 255), toByteOffset: op, as: UInt8.self)
        op += 1
    }

    // MARK: - LZ4_compress_generic_validated (noDict)

    @inline(__always)
    static func encode<T: Table>(
        _ s: UnsafeRawPointer, _ count: Int, _ d: UnsafeMutableRawPointer, _ capacity: Int, _ limited: Bool, _ table: T
    ) -> Int {
        let iend = count
        let mflimitPlusOne = iend &- mfLimit &+ 1
        let matchLimit = iend &- lastLiterals
        var ip = 0, anchor = 0, op = 0

        lastLiterals: if count >= mfLimit &+ 1 {
            table.put(table.hash(s, 0), 0)
            ip = 1
            var forwardH = table.hash(s, ip)
            var match = 0
            var token = 0
            var continuing = false  // the next sequence starts right after a match, no literals
            while true {
                if !continuing {
                    // Find a match, stepping faster the longer none is found.
                    var forwardIp = ip
                    var step = 1
                    var searchMatchNb = 1 << skipTrigger
                    while true {
                        let h = forwardH
                        let current = forwardIp
                        let matchIndex = table.get(h)
                        ip = forwardIp
                        forwardIp &+= step
                        step = searchMatchNb >> skipTrigger
                        searchMatchNb &+= 1
                        if forwardIp > mflimitPlusOne { break lastLiterals }
                        match = matchIndex
                        forwardH = table.hash(s, forwardIp)
                        table.put(h, current)
                        if T.checksDistance && matchIndex &+ maxDistance < current { continue }
                        if read32(s, match) == read32(s, ip) { break }
                    }
                    // Extend backwards.
                    while ip > anchor && match > 0
                        && s.load(fromByteOffset: ip &- 1, as: UInt8.self) == s.load(fromByteOffset: match &- 1, as: UInt8.self)
                    {
                        ip &-= 1
                        match &-= 1
                    }
                    // Literals.
                    let litLength = ip &- anchor
                    token = op
                    op &+= 1
                    if limited && op &+ litLength &+ (2 &+ 1 &+ lastLiterals) &+ litLength / 255 > capacity { return 0 }
                    if litLength >= 15 {
                        d.storeBytes(of: 0xF0 as UInt8, toByteOffset: token, as: UInt8.self)
                        writeLengthRun(d, &op, litLength &- 15)
                    } else {
                        d.storeBytes(of: UInt8(truncatingIfNeeded: litLength << 4), toByteOffset: token, as: UInt8.self)
                    }
                    if litLength <= 64 && op &+ litLength &+ 8 <= capacity {
                        // 8-byte steps, the last up to 7 bytes past the literals (inside the
                        // output, and overwritten by the offset and what follows); the input
                        // has at least 11 bytes after ip.
                        var o = op, i = anchor
                        while o < op &+ litLength {
                            (d + o).storeBytes(of: (s + i).loadUnaligned(as: UInt64.self), as: UInt64.self)
                            o &+= 8
                            i &+= 8
                        }
                    } else if litLength > 0 {
                        (d + op).copyMemory(from: s + anchor, byteCount: litLength)
                    }
                    op &+= litLength
                }
                continuing = false

                // Offset and match length.
                let offset = ip &- match
                d.storeBytes(of: UInt8(truncatingIfNeeded: offset), toByteOffset: op, as: UInt8.self)
                d.storeBytes(of: UInt8(truncatingIfNeeded: offset >> 8), toByteOffset: op &+ 1, as: UInt8.self)
                op &+= 2
                var matchCode = countEqual(s, ip &+ minMatch, match &+ minMatch, limit: matchLimit)
                ip &+= matchCode &+ minMatch
                if limited && op &+ (1 &+ lastLiterals) &+ (matchCode &+ 240) / 255 > capacity { return 0 }
                let tokenByte = d.load(fromByteOffset: token, as: UInt8.self)
                if matchCode >= 15 {
                    d.storeBytes(of: tokenByte + 15, toByteOffset: token, as: UInt8.self)
                    matchCode &-= 15
                    writeLengthRun(d, &op, matchCode)
                } else {
                    d.storeBytes(of: tokenByte + UInt8(matchCode), toByteOffset: token, as: UInt8.self)
                }
                anchor = ip

                if ip >= mflimitPlusOne { break lastLiterals }
                table.put(table.hash(s, ip &- 2), ip &- 2)

                // Is there a match right here?
                let h = table.hash(s, ip)
                let current = ip
                let matchIndex = table.get(h)
                table.put(h, current)
                if (!T.checksDistance || matchIndex &+ maxDistance >= current) && read32(s, matchIndex) == read32(s, ip) {
                    token = op
                    op &+= 1
                    d.storeBytes(of: 0 as UInt8, toByteOffset: token, as: UInt8.self)
                    match = matchIndex
                    continuing = true
                    continue
                }
                ip &+= 1
                forwardH = table.hash(s, ip)
            }
        }

        // Last literals.
        let lastRun = iend &- anchor
        if limited && op &+ lastRun &+ 1 &+ (lastRun &+ 255 &- 15) / 255 > capacity { return 0 }
        if lastRun >= 15 {
            d.storeBytes(of: 0xF0 as UInt8, toByteOffset: op, as: UInt8.self)
            op &+= 1
            var rest = lastRun &- 15
            let full = rest / 255
            if full > 0 { (d + op).initializeMemory(as: UInt8.self, repeating: 255, count: full) }
            op &+= full
            rest &-= full * 255
            d.storeBytes(of: UInt8(truncatingIfNeeded: rest), toByteOffset: op, as: UInt8.self)
            op &+= 1
        } else {
            d.storeBytes(of: UInt8(truncatingIfNeeded: lastRun << 4), toByteOffset: op, as: UInt8.self)
            op &+= 1
        }
        if lastRun > 0 { (d + op).copyMemory(from: s + anchor, byteCount: lastRun) }
        return op &+ lastRun
    }
}
