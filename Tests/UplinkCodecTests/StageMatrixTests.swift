import Testing
import UplinkCodec
import UplinkTestSupport

/// Every stage combination the grammar allows, round-tripped: local DP × error feedback ×
/// sparsifier × quantizer × codec. Only public API, so `scripts/test` also runs this suite in a
/// release build (`swift test -c release --filter StageMatrixTests`): the `ef | fp32` segfault
/// of issue 11 was a release-only miscompile that every debug test missed.
@Suite struct StageMatrixTests {
    static let dp = ["", "clip 0.5 | ", "clip 0.5 | noise z=0.5 seed=3 | "]
    static let ef = ["", "ef | ", "ef decay=0.9 | "]
    static let sparsifiers = [
        "", "topk 5% | ", "topk 17 scope=tensor | ", "topk-sampled 5% sample=50% | ", "randk 5% seed=4 | ", "threshold 0.02 | ",
    ]
    static let quantizers = [
        "fp32", "fp16", "bf16", "int8", "int4 block=64 asym", "int2 block=7 stochastic seed=5", "sign block=100", "ternary",
    ]
    static let codecs = [" | stored", " | lz4", " | lz4 9", " | zlib 1"]

    /// Every spec the grammar accepts from those stages (ternary needs a sparsifier).
    static let specs: [String] = dp.flatMap { d in
        ef.flatMap { e in
            sparsifiers.flatMap { s in
                quantizers.compactMap { q -> String? in
                    (q == "ternary" && s.isEmpty) ? nil : d + e + s + q
                }
            }
        }
    }

    static let layout = try! ModelLayout([
        TensorSpec(name: "conv", shape: [4, 3, 3, 3]), TensorSpec(name: "fc", shape: [10, 30]), TensorSpec(name: "b", shape: [10]),
    ])

    @Test func theMatrixCoversEveryStageKind() throws {
        // 3 × 3 × (6 × 8 − 1) quantizer/sparsifier pairs, each with 4 codecs in the test below.
        #expect(Self.specs.count == 3 * 3 * 47)
        for spec in Self.specs { _ = try Pipeline(parsing: spec + " | lz4") }
    }

    /// Two rounds per pipeline (the second with a non-zero residual), each frame decoded and
    /// accumulated; with error feedback and no noise, what the server decoded plus the residual
    /// equals the sum of the updates; lossless pipelines give the update back bit for bit.
    @Test(arguments: specs)
    func encodesDecodesAndKeepsTheResidualExact(stages: String) throws {
        let n = Self.layout.parameterCount
        for codec in Self.codecs {
            let spec = stages + codec
            let pipeline = try Pipeline(parsing: spec)
            var encoder = FrameEncoder(layout: Self.layout, pipeline: pipeline)
            var sent = [Double](repeating: 0, count: n)
            var inputs = [Double](repeating: 0, count: n)
            for round in 0..<2 {
                let update = TestData.heavyTailed(count: n, seed: UInt64(round + 11), scale: 0.05)
                let frame = try encoder.encode(update, round: UInt64(round), sampleCount: 3)
                let decoded = try FrameDecoder().decode(frame, layout: Self.layout)
                #expect(decoded.values.count == n, "\(spec)")
                #expect(decoded.values.allSatisfy { $0.isFinite }, "\(spec)")
                #expect(decoded.header.round == UInt64(round) && decoded.header.sampleCount == 3)
                var acc = [Float](repeating: 1, count: n)
                try acc.withUnsafeMutableBufferPointer { d in
                    try frame.withUnsafeBytes { _ = try FrameDecoder().accumulate($0, into: d, weight: 2, layout: Self.layout) }
                }
                for i in 0..<n { #expect(acc[i] == 1 + 2 * decoded.values[i], "\(spec) index \(i)") }
                if pipeline.isLossless && pipeline.localDP == nil { #expect(decoded.values == update, "\(spec)") }
                for i in 0..<n {
                    sent[i] += Double(decoded.values[i])
                    inputs[i] += Double(update[i])
                }
            }
            guard let state = encoder.errorFeedback else {
                #expect(pipeline.errorFeedback == nil)
                continue
            }
            #expect(state.roundsEncoded == 2)
            let restored = try ErrorFeedbackState(serialized: state.serialized(), layout: Self.layout, pipeline: pipeline)
            #expect(restored == state)
            // Σ sent + residual = Σ updates (clip changes the input; decay shrinks the residual).
            guard pipeline.localDP == nil, pipeline.errorFeedback?.decay == 1 else { continue }
            for i in 0..<n {
                let lhs = sent[i] + Double(state.residual[i])
                #expect(abs(lhs - inputs[i]) <= 1e-5 * (1 + abs(inputs[i])), "\(spec) index \(i): \(lhs) vs \(inputs[i])")
            }
        }
    }
}
