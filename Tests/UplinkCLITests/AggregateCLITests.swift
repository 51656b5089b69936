import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

@Suite struct AggregateCLITests {
    /// A round of client frames on disk, the global model, and the dense updates they carry.
    static func round(_ s: Scratch, clients: Int, spec: String = "ef | topk 10% | int8 | lz4", round: UInt64 = 5, prefix: String = "client") throws -> [[Float]] {
        let layout = try ModelLayout([TensorSpec(name: TensorFiles.npyTensorName, shape: [40, 50])])
        try s.write("global.npy", Npy.write(shape: [40, 50], values: TestData.uniform(count: 2000, seed: 1)))
        var decoded: [[Float]] = []
        for c in 0..<clients {
            var e = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec))
            let frame = try e.encode(TestData.heavyTailed(count: 2000, seed: UInt64(c) + 10 + round), round: round, sampleCount: UInt64(c + 1))
            try s.write("\(prefix)\(c).upl", frame)
            decoded.append(try FrameDecoder().decode(frame).values)
        }
        return decoded
    }

    @Test func fedAvgRoundWritesTheWeightedMeanAndReportsRejections() throws {
        let s = try Scratch()
        let updates = try Self.round(s, clients: 6)
        try s.write("corrupt.upl", Array(try s.read("client2.upl").dropLast(3)))
        var other = FrameEncoder(layout: try ModelLayout(name: "x", count: 10), pipeline: Pipeline())
        try s.write("other.upl", try other.encode([Float](repeating: 0, count: 10), round: 5))
        let files = ["client0.upl", "client1.upl", "corrupt.upl", "client2.upl", "other.upl", "client3.upl", "client4.upl", "client5.upl", "client1.upl"]
        let r = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "new.npy", "--json"] + files, in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(summary["accepted_count"] as? Int == 6)
        let rejected = summary["rejected"] as! [[String: Any]]
        #expect(rejected.map { $0["file"] as! String } == ["corrupt.upl", "other.upl", "client1.upl"])
        #expect(rejected.map { $0["code"] as! Int } == [103, 300, 900])
        let global = try Npy.read(try s.read("global.npy")).values
        var expected = global.map(Double.init)
        let weight = Double((1...6).reduce(0, +))
        for (c, u) in updates.enumerated() { for i in 0..<u.count { expected[i] += Double(c + 1) * Double(u[i]) / weight } }
        let new = try Npy.read(try s.read("new.npy"))
        #expect(new.shape == [40, 50])
        for i in 0..<2000 { #expect(abs(Double(new.values[i]) - expected[i]) <= 1e-6 * max(1, abs(expected[i]))) }
    }

    @Test func strategyParametersAndServerStatePersist() throws {
        let s = try Scratch()
        _ = try Self.round(s, clients: 4)
        let frames = (0..<4).map { "client\($0).upl" }
        let first = try CLI.run(["aggregate", "--strategy", "fedadam", "lr=0.01", "--model", "global.npy", "--out", "new.npy", "--state", "server.state"] + frames, in: s.url)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(FileManager.default.fileExists(atPath: s.path("server.state")))
        // Re-running the applied round is a no-op; the next round starts from the saved moments;
        // another strategy's state is refused.
        let before = try s.read("new.npy")
        let retry = try CLI.run(["aggregate", "--strategy", "fedadam lr=0.01", "--model", "new.npy", "--out", "new.npy", "--state", "server.state", "--json"] + frames, in: s.url)
        #expect(retry.status == 0 && retry.stdout.contains("\"already_applied\" : true"), "\(retry.stdout)")
        #expect(try s.read("new.npy") == before)
        _ = try Self.round(s, clients: 4, round: 6, prefix: "next")
        let second = try CLI.run(["aggregate", "--strategy", "fedadam lr=0.01", "--model", "new.npy", "--out", "new2.npy", "--state", "server.state", "--json"] + (0..<4).map { "next\($0).upl" }, in: s.url)
        let summary = try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as! [String: Any]
        #expect(summary["optimizer_rounds"] as? Int == 2 && summary["round"] as? Int == 6)
        let wrong = try CLI.run(["aggregate", "--strategy", "fedyogi", "--model", "new.npy", "--out", "x.npy", "--state", "server.state"] + frames, in: s.url)
        #expect(wrong.status == 1 && wrong.stderr.contains("error 801"))
        for strategy in ["median", "trimmed-mean beta=0.25", "fedavgm", "fedadagrad", "norm-bounded clip=0.5"] {
            let r = try CLI.run(["aggregate", "--strategy", strategy, "--model", "global.npy", "--out", "m.npy"] + frames, in: s.url)
            #expect(r.status == 0, "\(strategy): \(r.stderr)")
        }
    }

    @Test func normPolicyAndRoundAreApplied() throws {
        let s = try Scratch()
        _ = try Self.round(s, clients: 3)
        let frames = (0..<3).map { "client\($0).upl" }
        let reject = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "n.npy", "--norm-bound", "1e-6", "--json"] + frames, in: s.url)
        #expect(reject.status == 1)
        let rj = try JSONSerialization.jsonObject(with: Data(reject.stdout.utf8)) as? [String: Any]
        #expect((rj?["rejected"] as? [[String: Any]])?.allSatisfy { $0["code"] as? Int == 902 } == true)
        #expect((rj?["error"] as? [String: Any])?["code"] as? Int == 904)
        let clip = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "n.npy", "--norm-bound", "1e-6", "--norm-policy", "clip"] + frames, in: s.url)
        #expect(clip.status == 0 && clip.stdout.contains("clipped"))
        let round = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "n.npy", "--round", "4"] + frames, in: s.url)
        #expect(round.status == 1 && round.stdout.contains("error 901"))
        let bad = try CLI.run(["aggregate", "--strategy", "fedprox", "--model", "global.npy", "--out", "n.npy"] + frames, in: s.url)
        #expect(bad.status == 1 && bad.stderr.contains("unknown strategy"))
    }
}
