import Testing
import UplinkCodec

/// `String(validatingUTF8Bytes:)`, the package's stand-in for `String(validating:as:)` (macOS 15).
@Suite struct ValidatingUTF8Tests {
    @Test func validTextIsKeptAndInvalidSequencesAreRefused() {
        let valid: [[UInt8]] = [[], Array("dense.weight".utf8), Array("naïve ✓ 𝄞".utf8), [0], [0xF4, 0x8F, 0xBF, 0xBF], [0xEF, 0xBF, 0xBD]]
        for bytes in valid { #expect(String(validatingUTF8Bytes: bytes).map { Array($0.utf8) } == bytes) }
        let invalid: [[UInt8]] = [
            [0x80], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80],
            [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFF], [0x61, 0xC3], [0x61, 0xC3, 0x28],
        ]
        for bytes in invalid { #expect(String(validatingUTF8Bytes: bytes) == nil, "\(bytes)") }
    }

    /// On random bytes it agrees with the standard library's validation, where that exists.
    @Test func agreesWithTheStandardLibrary() {
        guard #available(macOS 15, iOS 18, tvOS 18, watchOS 11, visionOS 2, *) else { return }
        var rng = SplitMix64(seed: 21)
        for round in 0..<20_000 {
            let pool: [UInt8] = [0x41, 0x7F, 0x80, 0xBF, 0xC2, 0xC3, 0xDF, 0xE0, 0xE2, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]
            let bytes = (0..<Int(rng.below(9))).map { _ in rng.below(3) == 0 ? UInt8(truncatingIfNeeded: rng.next()) : pool[Int(rng.below(UInt64(pool.count)))] }
            #expect(String(validatingUTF8Bytes: bytes) == String(validating: bytes, as: UTF8.self), "round \(round): \(bytes)")
        }
    }
}
