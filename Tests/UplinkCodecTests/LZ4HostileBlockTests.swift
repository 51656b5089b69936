import Testing
import UplinkCodec

/// Hostile LZ4 blocks: the Swift decoder throws the same typed error liblz4's path throws (500
/// lz4Failed for an invalid block or one too large for the section, 502 lengthMismatch for a
/// valid one that is too short), never reads or writes outside its buffers, and agrees with
/// liblz4 on every block liblz4 accepts, except offset 0 (the format forbids it; liblz4 1.9.4
/// decodes it as zeros, the Swift decoder rejects it).
@Suite struct LZ4HostileBlockTests {
    /// The code decoding `block` into `outputCount` bytes throws, or `nil` with the bytes.
    static func decode(_ block: [UInt8], outputCount: Int, using implementation: LZ4Implementation) -> Result<[UInt8], UplinkError> {
        var out = [UInt8](repeating: 0x5A, count: outputCount)
        let result = block.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                Result { () throws(UplinkError) in try LZ4Block.decompress(src, into: dst, using: implementation) }
            }
        }
        return result.map { out }
    }

    static func code(_ block: [UInt8], outputCount: Int, using implementation: LZ4Implementation = .swift) -> UplinkError.Code? {
        if case .failure(let e) = decode(block, outputCount: outputCount, using: implementation) { return e.code }
        return nil
    }

    /// Expects the Swift path to throw `expected` and, where liblz4 is linked, liblz4's too.
    static func expectBoth(_ block: [UInt8], outputCount: Int, _ expected: UplinkError.Code, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(code(block, outputCount: outputCount) == expected, sourceLocation: sourceLocation)
        if LZ4Implementation.systemAvailable {
            #expect(code(block, outputCount: outputCount, using: .system) == expected, "liblz4", sourceLocation: sourceLocation)
        }
    }

    static let literals15 = [UInt8](repeating: 0x41, count: 15)

    /// One literal `a`, a 4-byte match at `offset`, then 15 literals: 20 bytes of output.
    static func blockWithOffset(_ offset: Int) -> [UInt8] {
        [0x10, 0x61, UInt8(offset & 0xFF), UInt8(offset >> 8), 0xF0, 0x00] + literals15
    }

    @Test func theHandMadeBlockIsValid() throws {
        #expect(Self.code(Self.blockWithOffset(1), outputCount: 20) == nil)
        #expect(try Self.decode(Self.blockWithOffset(1), outputCount: 20, using: .swift).get() == [0x61] + [UInt8](repeating: 0x61, count: 4) + Self.literals15)
    }

    @Test func offsetZeroIsRejected() {
        #expect(Self.code(Self.blockWithOffset(0), outputCount: 20) == .lz4Failed)
        var out = [UInt8](repeating: 0, count: 20)
        let outcome = Self.blockWithOffset(0).withUnsafeBytes { src in out.withUnsafeMutableBytes { LZ4BlockDecoder.decode(src, into: $0) } }
        #expect(outcome == .corrupt(.zeroOffset, at: 2))
    }

    @Test func offsetsBeforeTheStartAreRejected() {
        for offset in [2, 3, 255, 65535] { Self.expectBoth(Self.blockWithOffset(offset), outputCount: 20, .lz4Failed) }
        // The same after 100 literals, in the fast loop (at least 64 bytes of output left):
        // offset 357, a 219-byte match, 15 last literals.
        let far: [UInt8] = [0xFF, 100 - 15] + [UInt8](repeating: 7, count: 100) + [0x65, 0x01, 200] + [0xF0, 0x00] + Self.literals15
        Self.expectBoth(far, outputCount: 100 + 219 + 15, .lz4Failed)
        var near = far
        near[102] = 100
        near[103] = 0
        #expect(Self.code(near, outputCount: 100 + 219 + 15) == nil)
    }

    @Test func lengthsRunningPastTheInputAreRejected() {
        Self.expectBoth([0xF0], outputCount: 100, .lz4Failed)
        Self.expectBoth([0xF0, 0xFF, 0xFF, 0xFF], outputCount: 100, .lz4Failed)
        Self.expectBoth([0xF0, 0xFF, 0xFF, 0x10] + [UInt8](repeating: 1, count: 40), outputCount: 600, .lz4Failed)
        // Literal lengths of many 255 bytes: the length far exceeds input and output.
        Self.expectBoth([0xF0] + [UInt8](repeating: 0xFF, count: 100_000) + [0x00], outputCount: 1 << 20, .lz4Failed)
        // Match lengths of many 255 bytes.
        Self.expectBoth([0x1F, 0x61, 0x01, 0x00] + [UInt8](repeating: 0xFF, count: 100_000) + [0x00, 0x50] + [UInt8](repeating: 1, count: 5), outputCount: 1 << 20, .lz4Failed)
        Self.expectBoth([0x1F, 0x61, 0x01, 0x00] + [UInt8](repeating: 0xFF, count: 10), outputCount: 1 << 20, .lz4Failed)
    }

    @Test func matchesIntoTheLastFiveBytesAreRejected() {
        // 1 literal, a match of 19 filling the output to its end: the last 5 bytes must be literals.
        Self.expectBoth([0x1F, 0x61, 0x01, 0x00, 0x00], outputCount: 20, .lz4Failed)
        Self.expectBoth([0x1F, 0x61, 0x01, 0x00, 0x00, 0x00], outputCount: 20, .lz4Failed)
    }

    @Test(.enabled(if: LZ4Implementation.systemAvailable))
    func trailingBytesAndWrongOutputSizesAreRejected() throws {
        for kind in LZ4Samples.Kind.allCases {
            for count in [20, 100, 5000, 70_000] {
                let input = LZ4Samples.bytes(kind, count: count, seed: 11)
                let block = input.withUnsafeBytes { LZ4Block.compressBlock($0, capacity: LZ4FastEncoder.bound(count), level: 0, using: .system)! }
                #expect(Self.code(block, outputCount: count) == nil)
                for extra in [[0x00], [0x10, 0x00], [UInt8](repeating: 0, count: 20)] {
                    Self.expectBoth(block + extra, outputCount: count, .lz4Failed)
                }
                Self.expectBoth(block, outputCount: count - 1, .lz4Failed)  // output too short
                Self.expectBoth(block, outputCount: count + 1, .lengthMismatch)  // output too long
                Self.expectBoth(block, outputCount: count + 100, .lengthMismatch)
                Self.expectBoth([], outputCount: count, .lz4Failed)
            }
        }
    }

    /// Every truncation of valid blocks fails, with liblz4's code.
    @Test func everyTruncationIsRejected() {
        for kind in LZ4Samples.Kind.allCases {
            for count in [13, 64, 300, 4000] {
                let input = LZ4Samples.bytes(kind, count: count, seed: 12)
                for level in [0, 9] {
                    let block = input.withUnsafeBytes { LZ4Block.compressBlock($0, capacity: LZ4FastEncoder.bound(count), level: level, using: .swift)! }
                    for length in 0..<block.count {
                        let truncated = Array(block[0..<length])
                        let swift = Self.code(truncated, outputCount: count)
                        #expect(swift == .lz4Failed || swift == .lengthMismatch, "\(kind) \(count) cut at \(length)")
                        if LZ4Implementation.systemAvailable {
                            #expect(swift == Self.code(truncated, outputCount: count, using: .system), "\(kind) \(count) cut at \(length)")
                        }
                    }
                }
            }
        }
    }

    /// Random corruptions of valid blocks (byte changes, insertions, deletions, wrong output
    /// sizes): both decoders give the same bytes or the same code, apart from offset 0.
    @Test(.enabled(if: LZ4Implementation.systemAvailable))
    func decodersAgreeOnCorruptedBlocks() {
        var rng = SplitMix64(seed: 13)
        var accepted = 0, compared = 0
        for round in 0..<6000 {
            let kind = LZ4Samples.Kind.allCases[round % LZ4Samples.Kind.allCases.count]
            let count = [20, 70, 200, 1500, 9000][Int(rng.below(5))]
            let input = LZ4Samples.bytes(kind, count: count, seed: UInt64(round))
            let level = [0, 0, 9][Int(rng.below(3))]
            var block = input.withUnsafeBytes { LZ4Block.compressBlock($0, capacity: LZ4FastEncoder.bound(count), level: level, using: .system)! }
            for _ in 0..<(1 + Int(rng.below(3))) {
                let at = Int(rng.below(UInt64(block.count)))
                switch rng.below(4) {
                case 0: block[at] = UInt8(truncatingIfNeeded: rng.next())
                case 1: block[at] ^= 1 << UInt8(rng.below(8))
                case 2: block.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                default: if block.count > 1 { block.remove(at: at) }
                }
            }
            let outputCount = rng.below(4) == 0 ? max(0, count + Int(rng.below(41)) - 20) : count
            var out = [UInt8](repeating: 0, count: outputCount)
            let outcome = block.withUnsafeBytes { src in out.withUnsafeMutableBytes { LZ4BlockDecoder.decode(src, into: $0) } }
            if case .corrupt(.zeroOffset, _) = outcome { continue }
            let swift = Self.decode(block, outputCount: outputCount, using: .swift)
            let system = Self.decode(block, outputCount: outputCount, using: .system)
            compared += 1
            switch (swift, system) {
            case (.success(let a), .success(let b)):
                accepted += 1
                #expect(a == b, "round \(round): different bytes")
            case (.failure(let a), .failure(let b)):
                #expect(a.code == b.code, "round \(round): \(a) vs \(b)")
            default:
                Issue.record("round \(round): swift \(swift), liblz4 \(system)")
            }
        }
        #expect(compared > 5000 && accepted > 0)
    }
}
