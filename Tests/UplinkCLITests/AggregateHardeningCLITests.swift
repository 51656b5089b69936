import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

/// Issue 11 §2, §3, §22 through the real `uplink aggregate`.
@Suite struct AggregateHardeningCLITests {
    static let layout = try! ModelLayout([TensorSpec(name: TensorFiles.npyTensorName, shape: [40, 50])])

    static func frame(seed: UInt64, round: UInt64 = 5, samples: UInt64 = 3, scale: Float = 0.01) throws -> [UInt8] {
        var e = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "topk 10% | int8 | lz4"))
        return try e.encode(TestData.heavyTailed(count: 2000, seed: seed, scale: scale), round: round, sampleCount: samples)
    }

    static func json(_ r: CLI.Result) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
    }

    /// §6: a frame whose header parses (round 99) but which is then rejected no longer decides
    /// the round; the round of most valid frames does, and a valid minority frame gets 901.
    @Test func aRejectedFrameNeverChoosesTheRound() throws {
        let s = try Scratch()
        try s.write("global.npy", Npy.write(shape: [40, 50], values: TestData.uniform(count: 2000, seed: 1)))
        var bad = try Self.frame(seed: 1, round: 99)
        bad[bad.count - 1] ^= 0xFF  // a section checksum fails; the header is intact
        try s.write("a-bad.upl", bad)
        for c in 0..<3 { try s.write("c\(c).upl", try Self.frame(seed: UInt64(c + 2))) }
        try s.write("late.upl", try Self.frame(seed: 9, round: 7))
        let r = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "new.npy", "--json", "a-bad.upl", "late.upl", "c0.upl", "c1.upl", "c2.upl"], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        let j = try Self.json(r)
        #expect(j["round"] as? Int == 5 && j["accepted_count"] as? Int == 3)
        #expect((j["rejected"] as! [[String: Any]]).map { $0["code"] as! Int } == [201, 901])
    }

    /// §7: the same client id through two paths, and the same bytes under two names: the result
    /// is the same for every run and thread count, the first accepted frame in argument order
    /// wins, and a copy counts once.
    @Test func identityIsDeterministicWithThreads() throws {
        let s = try Scratch()
        try s.write("global.npy", Npy.write(shape: [40, 50], values: TestData.uniform(count: 2000, seed: 1)))
        try FileManager.default.createDirectory(atPath: s.path("one"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: s.path("two"), withIntermediateDirectories: true)
        try s.write("one/alice.upl", try Self.frame(seed: 1, samples: 5))
        try s.write("two/alice.upl", try Self.frame(seed: 2, samples: 50, scale: 0.5))
        for c in 0..<6 { try s.write("c\(c).upl", try Self.frame(seed: UInt64(c + 10))) }
        try s.write("copy.upl", try s.read("c3.upl"))
        let files = ["c0.upl", "one/alice.upl", "c1.upl", "two/alice.upl", "c2.upl", "c3.upl", "copy.upl", "c4.upl", "c5.upl"]
        var outputs: Set<[UInt8]> = []
        for (run, threads) in [1, 2, 2, 2, 2, 2, 3].enumerated() {
            let out = "new\(run).npy"
            let r = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", out, "--threads", "\(threads)", "--json"] + files, in: s.url)
            #expect(r.status == 0, "\(r.stderr)")
            let j = try Self.json(r)
            let accepted = (j["accepted"] as! [[String: Any]]).map { $0["client"] as! String }
            #expect(accepted == ["c0", "alice", "c1", "c2", "c3", "c4", "c5"])
            #expect((j["accepted"] as! [[String: Any]])[1]["samples"] as? Int == 5)
            let rejected = (j["rejected"] as! [[String: Any]]).map { "\($0["file"]!) \($0["code"]!)" }
            #expect(rejected == ["two/alice.upl 900", "copy.upl 907"])
            outputs.insert(try s.read(out))
        }
        #expect(outputs.count == 1)
    }

    /// §8: a frame claiming 2^64 − 1 samples is refused with 906 and the round goes on.
    @Test func hugeSampleCountIsRefused() throws {
        let s = try Scratch()
        try s.write("global.npy", Npy.write(shape: [40, 50], values: TestData.uniform(count: 2000, seed: 1)))
        try s.write("good.upl", try Self.frame(seed: 1))
        var e = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "threshold 1e30 | fp32"))
        try s.write("evil.upl", try e.encode([Float](repeating: 0, count: 2000), round: 5, sampleCount: .max))
        let r = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "new.npy", "--json", "good.upl", "evil.upl"], in: s.url)
        let j = try Self.json(r)
        #expect(r.status == 0 && j["accepted_count"] as? Int == 1)
        #expect((j["rejected"] as! [[String: Any]]).map { $0["code"] as! Int } == [906])
        let lower = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "new.npy", "--max-samples", "2", "good.upl"], in: s.url)
        #expect(lower.status == 1 && lower.stdout.contains("error 906"))
    }

    /// §9: `fedavg lr=2` of a 3.4e38 update would write ∞ with exit 0; now the round is refused
    /// (908), the model is untouched even when --out is --model, and nothing claims a write.
    @Test func nonFiniteModelIsNeverWritten() throws {
        let s = try Scratch()
        try s.write("global.npy", Npy.write(shape: [40, 50], values: TestData.uniform(count: 2000, seed: 1)))
        let before = try s.read("global.npy")
        var e = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "fp32"))
        try s.write("big.upl", try e.encode([3.4e38] + [Float](repeating: 0, count: 1999), round: 5))
        let r = try CLI.run(["aggregate", "--strategy", "fedavg lr=2", "--model", "global.npy", "--out", "global.npy", "big.upl"], in: s.url)
        #expect(r.status == 1 && r.stderr.contains("error 908"), "\(r.stderr)")
        #expect(r.stdout.contains("nothing written") && !r.stdout.contains("wrote"))
        #expect(try s.read("global.npy") == before)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: s.url.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    /// §22: no "wrote" when every frame was rejected; a directory as --out gets a plain message.
    @Test func messagesSayWhatHappened() throws {
        let s = try Scratch()
        try s.write("global.npy", Npy.write(shape: [40, 50], values: TestData.uniform(count: 2000, seed: 1)))
        try s.write("junk.upl", Array("not a frame".utf8))
        let text = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "new.npy", "--round", "5", "junk.upl"], in: s.url)
        #expect(text.status == 1 && text.stdout.contains("nothing written") && !text.stdout.contains("wrote"), "\(text.stdout)")
        let json = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "new.npy", "--round", "5", "--json", "junk.upl"], in: s.url)
        #expect(try Self.json(json)["output"] == nil)
        #expect(!FileManager.default.fileExists(atPath: s.path("new.npy")))
        try s.write("good.upl", try Self.frame(seed: 1))
        try FileManager.default.createDirectory(atPath: s.path("out.npy"), withIntermediateDirectories: true)
        let dir = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "global.npy", "--out", "out.npy", "good.upl"], in: s.url)
        #expect(dir.status == 1 && dir.stderr.contains("cannot write out.npy: it is a directory") && !dir.stderr.contains("NSCocoa"), "\(dir.stderr)")
        #expect(dir.stdout.contains("1 accepted") && dir.stdout.contains("nothing written"), "\(dir.stdout)")
        let enc = try CLI.run(["encode", "--pipeline", "fp32", "--in", "global.npy", "--out", "out.npy"], in: s.url)
        #expect(enc.status == 1 && enc.stderr.contains("it is a directory") && !enc.stderr.contains("NSCocoa"), "\(enc.stderr)")
    }
}
