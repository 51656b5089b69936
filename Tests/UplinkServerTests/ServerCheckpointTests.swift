import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

/// `uplink serve --model` on a real PyTorch-layout checkpoint (int64 BatchNorm counters): refused
/// at start, naming the tensor, unless `--skip-non-float`; with it the server's layout is the
/// float tensors, which a client encodes with the same option.
@Suite struct ServerCheckpointTests {
    static let cnn = Fixtures.url("updates/cnn-digits-update.safetensors")

    @Test func aCheckpointWithCountersNeedsTheOption() throws {
        let s = try ScratchDirectory()
        try s.write("model.safetensors", try Fixtures.bytes("updates/cnn-digits-update.safetensors"))
        #expect(throws: (any Error).self) { try TestCoordinator([], scratch: s) }
        let c = try TestCoordinator(["--skip-non-float"], scratch: s)
        defer { c.server.terminate() }
        #expect(c.server.stderrText.contains("skipped 2 non-float tensors: bn1.num_batches_tracked (I64), bn2.num_batches_tracked (I64)"), "\(c.server.stderrText)")
        // A client's frame of the checkpoint's float tensors (encode --skip-non-float) is accepted.
        let update = try TensorFiles.load(path: Self.cnn.path, nonFloat: .skip)
        var encoder = FrameEncoder(layout: update.layout, pipeline: try Pipeline(parsing: "fp32 | lz4"))
        let frame = try encoder.encode(update.values, round: 1, sampleCount: 5)
        let info = try c.checkIn("client-1")
        #expect(info["status"] as? String == "selected")
        let (outcome, _) = c.upload(frame, client: "client-1", round: 1)
        guard case .accepted = outcome else { Issue.record("the checkpoint's frame was not accepted: \(outcome)"); return }
    }
}
