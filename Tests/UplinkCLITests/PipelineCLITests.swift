import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

@Suite struct PipelineCLITests {
    /// The pipelines listed in docs/pipeline.md's table, so the documentation cannot list one
    /// that does not work.
    static let documented: [String] = {
        let doc = (try? String(contentsOf: Fixtures.root.deletingLastPathComponent().appendingPathComponent("docs/pipeline.md"), encoding: .utf8)) ?? ""
        guard let marker = doc.range(of: "<!-- pipelines-table") else { return [] }
        var specs: [String] = []
        for line in doc[marker.upperBound...].split(separator: "\n").dropFirst() {
            guard line.hasPrefix("|") else { if !specs.isEmpty { break } else { continue } }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false)
            guard let first = line.range(of: "`"), let second = line[first.upperBound...].range(of: "`") else { continue }
            _ = cells
            specs.append(String(line[first.upperBound..<second.lowerBound]).replacingOccurrences(of: "\\|", with: "|"))
        }
        return specs
    }()

    @Test func docsListPipelines() {
        #expect(Self.documented.count >= 12)
    }

    @Test(arguments: documented)
    func documentedPipelineRoundTripsThroughTheCLI(spec: String) throws {
        let s = try Scratch()
        let values = TestData.heavyTailed(count: 20_000, seed: 4)
        try s.write("u.npy", Npy.write(shape: [100, 200], values: values))
        let enc = try CLI.run(["encode", "--pipeline", spec, "--in", "u.npy", "--out", "f.upl", "--state", "s.bin", "--round", "2", "--json"], in: s.url)
        #expect(enc.status == 0, "\(spec): \(enc.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(enc.stdout.utf8)) as! [String: Any]
        for key in ["bytes", "ratio_to_float32", "bits_per_value", "relative_l2_error"] { #expect(summary[key] != nil, "\(key)") }
        let canonical = try Pipeline(parsing: spec).description
        #expect(summary["pipeline"] as? String == canonical)
        if spec.contains("topk") || spec.contains("threshold") {
            #expect(summary["bits_per_position"] as? Double != nil && summary["bits_per_position_bound"] as? Double != nil)
        }
        let dec = try CLI.run(["decode", "--in", "f.upl", "--out", "back.npy"], in: s.url)
        #expect(dec.status == 0, "\(spec): \(dec.stderr)")
        let back = try Npy.read(try s.read("back.npy"))
        #expect(back.shape == [100, 200])
        if try Pipeline(parsing: spec).isLossless { #expect(back.values == values) }
        let ins = try CLI.run(["inspect", "f.upl", "--json"], in: s.url)
        #expect(ins.status == 0)
        let info = try JSONSerialization.jsonObject(with: Data(ins.stdout.utf8)) as! [String: Any]
        #expect(info["pipeline"] as? String == canonical)
        #expect(info["decoded_and_verified"] as? Bool == true)
        #expect(FileManager.default.fileExists(atPath: s.path("s.bin")) == spec.hasPrefix("ef"))
    }

    /// `--state` carries the residual across invocations, as an app restart would.
    @Test func stateFileCarriesTheResidualAcrossRuns() throws {
        let s = try Scratch()
        let spec = "ef | topk 1% | int8 | lz4"
        let u = TestData.heavyTailed(count: 10_000, seed: 8)
        try s.write("u.npy", Npy.write(shape: [10_000], values: u))
        for round in 0..<3 {
            let r = try CLI.run(["encode", "--pipeline", spec, "--in", "u.npy", "--out", "f\(round).upl", "--state", "s.bin", "--round", String(round)], in: s.url)
            #expect(r.status == 0, "\(r.stderr)")
        }
        // The same frames in process, with the state carried in memory.
        var encoder = FrameEncoder(layout: try ModelLayout([TensorSpec(name: TensorFiles.npyTensorName, shape: [10_000])]), pipeline: try Pipeline(parsing: spec))
        for round in 0..<3 {
            #expect(try encoder.encode(u, round: UInt64(round)) == (try s.read("f\(round).upl")), "round \(round)")
        }
        #expect(try s.read("s.bin") == encoder.errorFeedback!.serialized())
        // A state for another pipeline is refused, and nothing is written.
        let other = try CLI.run(["encode", "--pipeline", "ef | topk 2% | int8 | lz4", "--in", "u.npy", "--out", "g.upl", "--state", "s.bin"], in: s.url)
        #expect(other.status == 1 && other.stderr.contains("error 801"), "\(other.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.path("g.upl")))
        try s.write("bad.bin", [1, 2, 3])
        let bad = try CLI.run(["encode", "--pipeline", spec, "--in", "u.npy", "--out", "g.upl", "--state", "bad.bin"], in: s.url)
        #expect(bad.status == 1 && bad.stderr.contains("error 800"))
    }

    @Test func impossiblePipelinesGetClearErrors() throws {
        let s = try Scratch()
        try s.write("u.npy", Npy.write(shape: [4], values: [1, 2, 3, 4]))
        for (spec, code) in [("ternary | lz4", "603"), ("int8 | topk 1%", "603"), ("topk 200%", "602"), ("int3", "601")] {
            let r = try CLI.run(["encode", "--pipeline", spec, "--in", "u.npy", "--out", "f.upl"], in: s.url)
            #expect(r.status == 1 && r.stderr.contains("error \(code)"), "\(spec): \(r.stderr)")
        }
    }
}
