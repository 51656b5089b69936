import Foundation
import Testing
@testable import UplinkCodec
import UplinkTestSupport

@Suite struct SparsePipelineTests {
    static let pipelines = [
        "ef | topk 1% | int8 block=256 | lz4", "ef | randk 1% seed=7 | int4 | zlib", "ef | sign block=1024 | lz4",
        "ef | topk 0.1% | ternary | stored", "topk 5% scope=tensor | fp16 | stored", "topk-sampled 2% | bf16 | zlib",
        "threshold 0.01 | int8 asym | lz4", "int4 block=64 asym stochastic seed=2 | zlib level=9", "int2 | stored",
        "randk 3 | fp32 | stored", "topk 10 | int8 | lz4",
    ]

    static let layout = try! ModelLayout([
        TensorSpec(name: "conv", shape: [16, 3, 3, 3]), TensorSpec(name: "fc", shape: [64, 100]), TensorSpec(name: "bias", shape: [64]),
    ])

    /// decode-and-accumulate equals decode-then-add, and sparse frames touch only their positions.
    @Test(arguments: pipelines)
    func accumulateEqualsDecodeThenAdd(spec: String) throws {
        let n = Self.layout.parameterCount
        var encoder = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: spec))
        let frame = try encoder.encode(TestData.heavyTailed(count: n, seed: 5), round: 4, sampleCount: 10)
        let decoded = try FrameDecoder().decode(frame)
        let start = TestData.uniform(count: n, seed: 6)
        var sum = start
        try sum.withUnsafeMutableBufferPointer { d in
            try frame.withUnsafeBytes { _ = try FrameDecoder().accumulate($0, into: d, weight: 3, layout: Self.layout) }
        }
        for i in 0..<n { #expect(sum[i] == start[i] + 3 * decoded.values[i]) }
        if let indices = try FrameDecoder().prepare(frame).indices {
            let kept = Set(indices)
            for i in 0..<n where !kept.contains(i) { #expect(decoded.values[i] == 0) }
        }
    }

    /// Every pipeline's canonical text parses back, and frames carry it exactly.
    @Test(arguments: pipelines)
    func canonicalTextRoundTripsThroughFrames(spec: String) throws {
        let p = try Pipeline(parsing: spec)
        #expect(try Pipeline(parsing: p.description) == p)
        let back = try p.descriptor.withUnsafeBytes { try Pipeline(descriptor: $0) }
        #expect(back == p)
        let frame = try FrameEncoder(layout: Self.layout, pipeline: p).encodeOnce(TestData.heavyTailed(count: Self.layout.parameterCount, seed: 1))
        #expect(try FrameDecoder().decode(frame).header.pipeline == p)
    }

    /// More encoder threads give the same frames and the same residual.
    @Test(arguments: ["ef | topk 1% | int8 | lz4", "ef | topk 0.1% | int4 | lz4", "ef | int8 | stored"])
    func threadedEncodeIsIdentical(spec: String) throws {
        let layout = try ModelLayout(name: "w", count: 400_000)
        var one = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec))
        var four = one
        four.threads = 4
        for round in 0..<3 {
            let u = TestData.heavyTailed(count: 400_000, seed: UInt64(round) + 30)
            #expect(try one.encode(u, round: UInt64(round)) == (try four.encode(u, round: UInt64(round))))
        }
        #expect(one.errorFeedback == four.errorFeedback)
    }

    @Test func randomKSendsNoIndicesAndTheDecoderRegeneratesThem() throws {
        let n = Self.layout.parameterCount
        let p = try Pipeline(parsing: "randk 2% seed=11 | fp32 | stored")
        let u = TestData.uniform(count: n, seed: 3)
        let frame = try FrameEncoder(layout: Self.layout, pipeline: p).encodeOnce(u, round: 9)
        let header = try frame.withUnsafeBytes { try FrameReader.readHeader($0) }
        #expect(!header.sections.contains { $0.stream == .indices })
        let expected = RandomKSelection.indices(n: n, k: SparsityAmount.fraction(0.02).k(of: n), seed: 11, round: 9)
        #expect(try FrameDecoder().prepare(frame).indices == expected)
        let decoded = try FrameDecoder().decode(frame).values
        for i in expected { #expect(decoded[i] == u[i]) }
    }

    /// The sparse frame's size is O(k): a 0.1% frame of 1M parameters is a few kilobytes.
    @Test func sparseFramesCostOrderK() throws {
        let layout = try ModelLayout(name: "w", count: 1_000_000)
        let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "topk 0.1% | int8 | stored"))
            .encodeOnce(TestData.heavyTailed(count: 1_000_000, seed: 1))
        #expect(frame.count < 1000 * (8 + 12) / 8 + 200)
    }

    /// The acceptance figures, on a real client update of the digits MLP.
    @Test(arguments: [("ef | topk 1% | int8 | lz4", 150.0), ("ef | topk 0.1% | int4 | lz4", 1000.0)])
    func realUpdateCompressionTargets(spec: String, minimumRatio: Double) throws {
        let (layout, values) = try Self.loadRealUpdate()
        var encoder = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec))
        let frame = try encoder.encode(values)
        let ratio = Double(layout.parameterCount * 4) / Double(frame.count)
        #expect(ratio >= minimumRatio, "\(spec): \(ratio)×")
        let decoded = try FrameDecoder().decode(frame, layout: layout)
        #expect(decoded.transmittedCount == SparsityAmount.fraction(spec.contains("0.1%") ? 0.001 : 0.01).k(of: layout.parameterCount))
    }

    /// The real update.
    static func loadRealUpdate() throws -> (ModelLayout, [Float]) {
        try Fixtures.safetensors("updates/mlp-digits-r6-c61.safetensors")
    }
}
