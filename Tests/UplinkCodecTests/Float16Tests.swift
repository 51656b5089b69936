import Testing
import UplinkCodec
import UplinkTestSupport

@Suite struct Float16BitsTests {
    /// Every binary16 value widens exactly and narrows back to itself.
    @Test func everyHalfRoundTrips() {
        for bits in 0...UInt16.max {
            let f = Float16Bits.toFloat(bits)
            if f.isNaN {
                #expect((bits & 0x7C00) == 0x7C00 && (bits & 0x03FF) != 0)
                #expect(Float16Bits.fromFloat(f) & 0x7C00 == 0x7C00)
                continue
            }
            #expect(Float16Bits.fromFloat(f) == bits, "bits 0x\(String(bits, radix: 16))")
        }
    }

    /// The branchless widening (the vectorized decode's) gives the same bits for all 65,536
    /// halves, NaN payloads included.
    @Test func branchlessWideningIsIdentical() {
        var differing: [UInt16] = []
        for bits in 0...UInt16.max where Float16Bits.toFloatBranchless(bits).bitPattern != Float16Bits.toFloat(bits).bitPattern {
            differing.append(bits)
        }
        #expect(differing.isEmpty, "first: \(differing.prefix(5).map { String($0, radix: 16) })")
    }

    #if !(os(macOS) && arch(x86_64))
    /// Narrowing agrees with the platform's IEEE conversion (round to nearest, ties to even),
    /// including subnormals, ties, and overflow to infinity.
    @Test func narrowingMatchesPlatformRounding() {
        var rng = SplitMix64(seed: 16)
        var samples: [Float] = [0, -0, 65504, 65519.99, 65520, 1e-8, 5.96e-8, 2.98e-8, 6.1e-5, 1 + 1.0 / 2048, 1 + 3.0 / 2048]
        for _ in 0..<200_000 {
            samples.append(Float(bitPattern: UInt32.random(in: 0x3000_0000...0x4790_0000, using: &rng)) * (Bool.random(using: &rng) ? 1 : -1))
        }
        for f in samples {
            #expect(Float16Bits.fromFloat(f) == Float16(f).bitPattern, "value \(f)")
        }
    }
    #endif
}
