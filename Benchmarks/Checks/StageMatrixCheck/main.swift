// The stage matrix of Tests/UplinkCodecTests/StageMatrixTests.swift, as a release-built
// executable: every stage combination the grammar allows, encoded twice (the second round with
// a residual), decoded, accumulated, and the error-feedback identity checked. Issue 11's
// `ef | fp32` segfault was a release-only miscompile that every debug test missed; CI builds
// this package in release anyway, so the check costs no second release build of the server.
// Run: swift run --package-path Benchmarks -c release StageMatrixCheck
import Foundation
import UplinkCodec

let dp = ["", "clip 0.5 | ", "clip 0.5 | noise z=0.5 seed=3 | "]
let ef = ["", "ef | ", "ef decay=0.9 | "]
let sparsifiers = ["", "topk 5% | ", "topk 17 scope=tensor | ", "topk-sampled 5% sample=50% | ", "randk 5% seed=4 | ", "threshold 0.02 | "]
let quantizers = ["fp32", "fp16", "bf16", "int8", "int4 block=64 asym", "int2 block=7 stochastic seed=5", "sign block=100", "ternary"]
let codecs = [" | stored", " | lz4", " | lz4 9", " | zlib 1"]
let layout = try! ModelLayout([TensorSpec(name: "conv", shape: [4, 3, 3, 3]), TensorSpec(name: "fc", shape: [10, 30]), TensorSpec(name: "b", shape: [10])])
let n = layout.parameterCount

/// Heavy-tailed values with exact zeros, as TestData.heavyTailed makes them.
func update(seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in
        let u = Double(rng.next() >> 11) * 0x1p-53
        if u < 0.3 { return 0 }
        let g = Double(rng.next() >> 11) * 0x1p-53
        return Float(0.05 * tan(Double.pi * (g - 0.5)) / 10)
    }
}

var failures: [String] = []
var checked = 0
@MainActor func fail(_ s: String) { if failures.count < 50 { failures.append(s) } }

for d in dp { for e in ef { for s in sparsifiers { for q in quantizers where !(q == "ternary" && s.isEmpty) { for c in codecs {
    let spec = d + e + s + q + c
    do {
        let pipeline = try Pipeline(parsing: spec)
        var encoder = FrameEncoder(layout: layout, pipeline: pipeline)
        var sent = [Double](repeating: 0, count: n), inputs = [Double](repeating: 0, count: n)
        for round in 0..<2 {
            let u = update(seed: UInt64(round + 11))
            let frame = try encoder.encode(u, round: UInt64(round), sampleCount: 3)
            let decoded = try FrameDecoder().decode(frame, layout: layout)
            if decoded.values.count != n || !decoded.values.allSatisfy(\.isFinite) { fail("\(spec): bad decode") }
            var acc = [Float](repeating: 1, count: n)
            try acc.withUnsafeMutableBufferPointer { dst in
                try frame.withUnsafeBytes { _ = try FrameDecoder().accumulate($0, into: dst, weight: 2, layout: layout) }
            }
            for i in 0..<n where acc[i] != 1 + 2 * decoded.values[i] { fail("\(spec): accumulate index \(i)"); break }
            if pipeline.isLossless && pipeline.localDP == nil && decoded.values != u { fail("\(spec): lossless round trip") }
            for i in 0..<n { sent[i] += Double(decoded.values[i]); inputs[i] += Double(u[i]) }
        }
        if let state = encoder.errorFeedback {
            let restored = try ErrorFeedbackState(serialized: state.serialized(), layout: layout, pipeline: pipeline)
            if restored != state { fail("\(spec): state round trip") }
            if pipeline.localDP == nil, pipeline.errorFeedback?.decay == 1 {
                for i in 0..<n where abs(sent[i] + Double(state.residual[i]) - inputs[i]) > 1e-5 * (1 + abs(inputs[i])) { fail("\(spec): residual identity at \(i)"); break }
            }
        } else if pipeline.errorFeedback != nil {
            fail("\(spec): no error-feedback state")
        }
    } catch {
        fail("\(spec): \(error)")
    }
    checked += 1
} } } } }

if checked != 3 * 3 * 47 * 4 { fail("checked \(checked) pipelines, expected \(3 * 3 * 47 * 4)") }
if failures.isEmpty {
    print("StageMatrixCheck: \(checked) pipelines round-trip in this build")
} else {
    for f in failures { FileHandle.standardError.write(Data("StageMatrixCheck: \(f)\n".utf8)) }
    exit(1)
}
