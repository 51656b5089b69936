import Testing
@testable import UplinkServer
import UplinkAggregation
import UplinkCodec
import UplinkTestSupport

/// `max-size` comes from the allowed pipelines: never below a real frame of the model, however
/// large its values (incompressible, all above any threshold), and far below the dense limit
/// for sparse pipelines.
@Suite struct UploadBoundTests {
    static let layouts = [
        try! ModelLayout([TensorSpec(name: "w", shape: [300, 400]), TensorSpec(name: "b", shape: [400])]),
        try! ModelLayout((0..<200).map { TensorSpec(name: "t\($0)", shape: [37 + $0]) }),
        try! ModelLayout([TensorSpec(name: "x", shape: [10])]),
    ]
    static let pipelines = [
        "fp32 | stored", "fp32 | lz4", "fp16 | zlib", "int8 | lz4", "ef | topk 1% | int8 | lz4", "ef | topk 17 scope=tensor | int8 | lz4",
        "threshold 0.001 | fp16 | lz4", "ef | sign | lz4", "randk 5% seed=3 | fp32 | stored", "clip 1 | noise z=1 seed=2 | int4 | lz4",
    ]

    @Test(arguments: pipelines)
    func theBoundHoldsEveryFrameOfTheModel(pipeline: String) throws {
        for layout in Self.layouts {
            let p = try Pipeline(parsing: pipeline)
            let config = try ServerConfiguration(
                dataDirectory: "/nonexistent", layout: layout, initialModel: [Float](repeating: 0, count: layout.parameterCount), pipelines: [p],
                rules: try RoundRules(targetReports: 1, deadline: 10), tokenSecret: [UInt8](repeating: 1, count: 32))
            let bound = try Coordinator.uploadBound(config)
            #expect(bound <= FrameLimits.forModel(layout).maxFrameBytes)
            for seed in 0..<3 {
                let values = TestData.uniform(count: layout.parameterCount, seed: UInt64(seed)).map { ($0 - 0.5) * 2000 }
                var encoder = FrameEncoder(layout: layout, pipeline: p)
                let frame = try encoder.encode(values, round: 1, sampleCount: 1)
                #expect(frame.count <= bound, "\(pipeline) on \(layout.tensors.count) tensors: frame \(frame.count) > bound \(bound)")
            }
        }
    }
}
