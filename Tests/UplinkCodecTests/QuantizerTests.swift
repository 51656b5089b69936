import Testing
@testable import UplinkCodec
import UplinkTestSupport

/// Properties of the quantizers, through the public encoder and decoder.
@Suite struct QuantizerTests {
    static func roundTrip(_ spec: String, _ values: [Float], round: UInt64 = 0) throws -> (decoded: [Float], scales: [Float]) {
        let layout = try ModelLayout(name: "x", count: values.count)
        let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec)).encodeOnce(values, round: round)
        let prepared = try FrameDecoder().prepare(frame)
        var out = [Float](repeating: 0, count: values.count)
        out.withUnsafeMutableBufferPointer { prepared.write(into: $0) }
        let scales = try FrameDecoder().decode(frame).values
        _ = scales
        return (out, [])
    }

    /// Round to nearest: every element within half a step of its block's scale.
    @Test(arguments: ["int8", "int4", "int2"], [true, false])
    func nearestRoundingErrorIsAtMostHalfAStep(name: String, symmetric: Bool) throws {
        let bits = Int(name.dropFirst(3))!
        let block = 64
        let values = TestData.heavyTailed(count: 1000, seed: UInt64(bits), zeroFraction: 0.1, scale: 1)
        let (decoded, _) = try Self.roundTrip("\(name) block=\(block) \(symmetric ? "sym" : "asym")", values)
        for start in stride(from: 0, to: values.count, by: block) {
            let blockValues = values[start..<min(values.count, start + block)]
            let step: Float = symmetric
                ? blockValues.map(abs).max()! / Float((1 << (bits - 1)) - 1)
                : (blockValues.max()! - blockValues.min()!) / Float((1 << bits) - 1)
            for i in blockValues.indices {
                #expect(abs(values[i] - decoded[i]) <= step / 2 * 1.0001 + 1e-7, "\(name) element \(i)")
            }
        }
    }

    /// Stochastic rounding is unbiased: over many seeds the mean error is within 4σ of zero.
    @Test(arguments: ["int8", "int4", "int2"])
    func stochasticRoundingIsUnbiased(name: String) throws {
        let values: [Float] = [0.3, -0.71, 0.05, 0.999, -0.2, 0.0, 0.42, -1.0]
        let trials = 2000
        var sum = [Double](repeating: 0, count: values.count)
        var sumSq = [Double](repeating: 0, count: values.count)
        for seed in 0..<trials {
            let (decoded, _) = try Self.roundTrip("\(name) block=8 stochastic seed=\(seed)", values)
            for i in values.indices {
                let e = Double(decoded[i]) - Double(values[i])
                sum[i] += e
                sumSq[i] += e * e
            }
        }
        // σ from theory: a value at fraction p between two steps errs by (1 − p)·scale with
        // probability p and by −p·scale otherwise, a variance of p(1 − p)·scale².
        let qmax = Double((1 << (Int(name.dropFirst(3))! - 1)) - 1)
        let scale = Double(values.map(abs).max()!) / qmax
        for i in values.indices {
            let mean = sum[i] / Double(trials)
            let t = Double(values[i]) / scale
            let p = t - t.rounded(.down)
            let sigma = (p * (1 - p) * scale * scale / Double(trials)).squareRoot()
            #expect(abs(mean) <= 4 * sigma + 1e-6, "\(name) value \(values[i]): mean error \(mean), σ \(sigma)")
            _ = sumSq
        }
    }

    @Test func stochasticRoundingIsReproducibleAndVariesWithSeedAndRound() throws {
        let values = TestData.uniform(count: 500, seed: 3)
        let a = try Self.roundTrip("int4 stochastic seed=9", values, round: 1).decoded
        #expect(try Self.roundTrip("int4 stochastic seed=9", values, round: 1).decoded == a)
        #expect(try Self.roundTrip("int4 stochastic seed=10", values, round: 1).decoded != a)
        #expect(try Self.roundTrip("int4 stochastic seed=9", values, round: 2).decoded != a)
    }

    @Test func signSendsMeanMagnitudePerBlock() throws {
        let values: [Float] = [1, -3, 0.5, -0.5, 2, 2, -2, 10]
        let (decoded, _) = try Self.roundTrip("sign block=4", values)
        #expect(decoded == [1.25, -1.25, 1.25, -1.25, 4, 4, -4, 4])
        let one = try Self.roundTrip("sign block=0", values).decoded
        #expect(one == values.map { $0 < 0 ? -2.625 : 2.625 })
    }

    @Test func bf16KeepsTheTopHalfRoundedToNearestEven() throws {
        let values: [Float] = [1, 1 + 0x1p-8, 1 + 0x1p-7 + 0x1p-8, -3.14159, 1e30, 1e-30]
        let (decoded, _) = try Self.roundTrip("bf16", values)
        #expect(decoded[0] == 1)
        #expect(decoded[1] == 1)  // tie rounds to even
        #expect(decoded[2] == 1 + 0x1p-6)  // tie rounds up to even
        for (x, y) in zip(values, decoded) { #expect(abs(x - y) <= abs(x) * 0x1p-8) }
    }

    /// Sub-byte codes are bit-packed: the values stream is exactly ⌈m·bits/8⌉ bytes.
    @Test(arguments: [(8, 1001), (4, 1001), (2, 1001), (1, 1001)])
    func subByteCodesAreBitPacked(bits: Int, m: Int) throws {
        let spec = bits == 1 ? "sign block=100" : "int\(bits) block=100"
        let layout = try ModelLayout(name: "x", count: m)
        let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec)).encodeOnce(TestData.uniform(count: m, seed: 1))
        let header = try frame.withUnsafeBytes { try FrameReader.readHeader($0) }
        let valueBytes = header.sections.filter { $0.stream == .values }.reduce(0) { $0 + $1.rawLength }
        #expect(valueBytes == (m * bits + 7) / 8)
        let scaleBytes = header.sections.filter { $0.stream == .scales }.reduce(0) { $0 + $1.rawLength }
        #expect(scaleBytes == 11 * 4)
    }

    @Test func constantAndZeroBlocksDecodeExactly() throws {
        for spec in ["int8", "int4 asym", "int2", "sign block=4"] {
            let zeros = [Float](repeating: 0, count: 10)
            #expect(try Self.roundTrip(spec, zeros).decoded == zeros, "\(spec)")
        }
        let constant = [Float](repeating: 0.75, count: 10)
        #expect(try Self.roundTrip("int4 asym", constant).decoded == constant)
        #expect(try Self.roundTrip("int8", constant).decoded == constant)
    }
}
