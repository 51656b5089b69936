import Foundation
import Testing
import UplinkCodec

/// Seeded inputs of the kinds sections hold, for the LZ4 tests.
enum LZ4Samples {
    enum Kind: String, CaseIterable, CustomStringConvertible {
        case zeros, random, text, sparseInt8, float32, runs
        var description: String { rawValue }
    }

    /// The sizes that matter to LZ4's rules: below and at the 13-byte minimum, the 12-byte and
    /// 5-byte end rules, and both sides of the 64 KiB + 11 switch between hash tables.
    static let sizes = Array(0...40) + [63, 64, 65, 127, 128, 255, 256, 300, 1000, 4096, 65535, 65536, 65537, 65546, 65547, 65548, 200_003]

    static func bytes(_ kind: Kind, count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed &+ UInt64(count) &* 0x9E37 &+ UInt64(Kind.allCases.firstIndex(of: kind)!) << 32)
        switch kind {
        case .zeros:
            return [UInt8](repeating: 0, count: count)
        case .random:
            return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case .text:
            let words = ["federated ", "update ", "frame ", "checksum ", "lz4 ", "round ", "client ", "the ", "of "]
            var out: [UInt8] = []
            out.reserveCapacity(count + 16)
            while out.count < count { out += words[Int(rng.below(UInt64(words.count)))].utf8 }
            return Array(out.prefix(count))
        case .sparseInt8:
            // int8 codes of a top-k update: mostly zeros, small signed values elsewhere.
            return (0..<count).map { _ in
                rng.below(10) < 8 ? 0 : UInt8(bitPattern: Int8(truncatingIfNeeded: Int(rng.below(31)) - 15))
            }
        case .float32:
            var out: [UInt8] = []
            out.reserveCapacity(count + 4)
            while out.count < count {
                let v = (rng.unitFloat() - 0.5) * 0.02
                withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 }
            }
            return Array(out.prefix(count))
        case .runs:
            var out: [UInt8] = []
            while out.count < count {
                let b = UInt8(truncatingIfNeeded: rng.next())
                out += [UInt8](repeating: b, count: 1 + Int(rng.below(40)))
            }
            return Array(out.prefix(count))
        }
    }

    /// Every (kind, size) pair, with one seed each.
    static var all: [(Kind, Int)] { Kind.allCases.flatMap { k in sizes.map { (k, $0) } } }
}

/// Compress with one implementation, decompress with another, and expect the input back.
func lz4RoundTrip(_ input: [UInt8], level: Int, encoder: LZ4Implementation, decoder: LZ4Implementation) throws -> Bool {
    let block = input.withUnsafeBytes { LZ4Block.compressBlock($0, capacity: LZ4FastEncoder.bound($0.count), level: level, using: encoder) }
    guard let block else { return false }
    var out = [UInt8](repeating: 0xA5, count: input.count)
    try block.withUnsafeBytes { src in
        try out.withUnsafeMutableBytes { try LZ4Block.decompress(src, into: $0, using: decoder) }
    }
    return out == input
}

@Suite struct LZ4CodecTests {
    static let levels = [0, 1, 9, 12]

    @Test(arguments: levels)
    func swiftEncoderRoundTripsThroughSwiftDecoder(level: Int) throws {
        for (kind, count) in LZ4Samples.all where count > 0 {
            let input = LZ4Samples.bytes(kind, count: count, seed: 1)
            #expect(try lz4RoundTrip(input, level: level, encoder: .swift, decoder: .swift), "\(kind) \(count) level \(level)")
        }
    }

    @Test(.enabled(if: LZ4Implementation.systemAvailable), arguments: levels)
    func liblz4DecodesSwiftBlocks(level: Int) throws {
        for (kind, count) in LZ4Samples.all where count > 0 {
            let input = LZ4Samples.bytes(kind, count: count, seed: 2)
            #expect(try lz4RoundTrip(input, level: level, encoder: .swift, decoder: .system), "\(kind) \(count) level \(level)")
        }
    }

    @Test(.enabled(if: LZ4Implementation.systemAvailable), arguments: levels)
    func swiftDecodesLiblz4Blocks(level: Int) throws {
        for (kind, count) in LZ4Samples.all where count > 0 {
            let input = LZ4Samples.bytes(kind, count: count, seed: 3)
            #expect(try lz4RoundTrip(input, level: level, encoder: .system, decoder: .swift), "\(kind) \(count) level \(level)")
        }
    }

    /// The fast encoder is byte-identical to `LZ4_compress_default`, with room for the worst case
    /// and with the codec's count − 1 (where both must also agree on "does not fit").
    @Test(.enabled(if: LZ4Implementation.systemAvailable), arguments: LZ4Samples.Kind.allCases)
    func fastEncoderIsByteIdenticalToLiblz4(kind: LZ4Samples.Kind) {
        for count in LZ4Samples.sizes + [1 << 20] {
            for seed: UInt64 in [4, 5] {
                let input = LZ4Samples.bytes(kind, count: count, seed: seed)
                input.withUnsafeBytes { raw in
                    for capacity in [LZ4FastEncoder.bound(count), count - 1, count / 2, 1, 0] where capacity >= 0 {
                        let swift = LZ4Block.compressBlock(raw, capacity: capacity, level: 0, using: .swift)
                        let system = LZ4Block.compressBlock(raw, capacity: capacity, level: 0, using: .system)
                        #expect(swift == system, "\(kind) \(count) bytes, capacity \(capacity), seed \(seed)")
                    }
                }
            }
        }
    }

    /// A 1 MiB section of each kind both ways at the HC levels, decoded by the other side.
    @Test(.enabled(if: LZ4Implementation.systemAvailable), arguments: [1, 9, 12])
    func oneMebibyteCrossDecodesAtHCLevels(level: Int) throws {
        for kind in LZ4Samples.Kind.allCases {
            let input = LZ4Samples.bytes(kind, count: 1 << 20, seed: 6)
            #expect(try lz4RoundTrip(input, level: level, encoder: .system, decoder: .swift), "\(kind) level \(level)")
            #expect(try lz4RoundTrip(input, level: level, encoder: .swift, decoder: .system), "\(kind) level \(level)")
        }
    }

    /// The chain encoder earns its levels: on compressible data level 9 is never larger than the
    /// fast encoder's block, and never larger than level 1's.
    @Test func chainEncoderCompressesAtLeastAsWellAsTheFastOne() {
        for kind in [LZ4Samples.Kind.text, .sparseInt8, .runs, .float32] {
            let input = LZ4Samples.bytes(kind, count: 300_000, seed: 7)
            let sizes = [0, 1, 9].map { level in
                input.withUnsafeBytes { LZ4Block.compressBlock($0, capacity: LZ4FastEncoder.bound($0.count), level: level, using: .swift)!.count }
            }
            #expect(sizes[2] <= sizes[0] && sizes[2] <= sizes[1], "\(kind): fast, 1, 9 = \(sizes)")
        }
    }

    /// An empty input is the single zero token, as liblz4 writes it.
    @Test func emptyInputIsTheZeroToken() {
        for level in [0, 9] {
            let block = [UInt8]().withUnsafeBytes { LZ4Block.compressBlock($0, capacity: 16, level: level, using: .swift) }
            #expect(block == [0])
        }
        var nothing = [UInt8]()
        let outcome = [UInt8(0)].withUnsafeBytes { src in nothing.withUnsafeMutableBytes { LZ4BlockDecoder.decode(src, into: $0) } }
        #expect(outcome == .decoded(0))
    }

    /// The section codec compresses through the implementation `UPLINK_LZ4` selects.
    @Test func activeImplementationFollowsTheEnvironment() {
        let requested = ProcessInfo.processInfo.environment["UPLINK_LZ4"]?.lowercased()
        let expected: LZ4Implementation = requested == "swift" || !LZ4Implementation.systemAvailable ? .swift : .system
        #expect(LZ4Implementation.active == expected)
    }
}
