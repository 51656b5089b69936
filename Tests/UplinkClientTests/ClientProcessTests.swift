import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

/// The command-line client as a user runs it: `uplink upload` and `uplink participate`, killed
/// with SIGKILL mid-upload and started again.
@Suite(.serialized) struct ClientProcessTests {
    static let parameters = 300_000

    /// A server on a 300,000-parameter model taking `pipeline`, one report per round.
    static func bigServer(_ s: ScratchDirectory, pipeline: String, extra: [String] = []) throws -> TestCoordinator {
        let layout = try ModelLayout([TensorSpec(name: "w", shape: [parameters])])
        try s.write("model.safetensors", try Safetensors.write(TensorSet(layout: layout, values: TestData.uniform(count: parameters, seed: 2))))
        return try TestCoordinator(["--pipeline", pipeline, "--reports", "1"] + extra, scratch: s)
    }

    static func roundBytes(_ c: TestCoordinator, _ round: UInt64) throws -> Int {
        (try c.status(round: round)["bytesReceived"] as? NSNumber)?.intValue ?? -1
    }

    /// Waits for `condition` (bounded); false on timeout.
    static func waitFor(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        try TestCoordinator.wait(seconds: seconds) { try condition() }
    }

    @Test func aKilledUploadResumesTheSameUploadAfterRestart() throws {
        let s = try ScratchDirectory()
        let c = try Self.bigServer(s, pipeline: "fp32 | stored")
        let layout = try ModelLayout([TensorSpec(name: "w", shape: [Self.parameters])])
        var enc = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "fp32 | stored"))
        let frame = try enc.encode(TestData.heavyTailed(count: Self.parameters, seed: 4), round: 1, sampleCount: 3)
        try s.write("f.upl", frame)
        _ = try c.checkIn("alice")
        let args = ["upload", "--server", "http://127.0.0.1:\(c.port)", "--token", c.token("alice"), "--round", "1", "--in", s.path("f.upl"),
                    "--max-append-bytes", "4096"]
        let first = try ToolProcess(args, in: s.url, name: "first")
        // Kill it once the server has stored a quarter of the frame.
        let reached = try Self.waitFor(60) { try Self.roundBytes(c, 1) >= frame.count / 4 }
        first.kill9()
        try #require(reached, "the first upload never got a quarter in: \(first.stderrText)")
        let stored = try Self.roundBytes(c, 1)
        #expect(stored < frame.count, "killed after the whole frame was stored")
        #expect(FileManager.default.fileExists(atPath: s.path("f.upl.upload.json")), "no session beside the frame")
        let restarted = Date()
        let second = try ToolProcess(args + ["--json"], in: s.url, name: "second")
        #expect(second.waitForExit(timeout: 120) == 0, "\(second.stderrText)")
        let seconds = Date().timeIntervalSince(restarted)
        let out = try #require(try JSONSerialization.jsonObject(with: Data(second.stdoutText.utf8)) as? [String: Any], "\(second.stdoutText)")
        #expect(out["status"] as? String == "accepted")
        let resumedAt = (out["resumedAt"] as? NSNumber)?.intValue ?? 0
        #expect(resumedAt >= stored, "resumed at \(resumedAt), the server had \(stored)")
        // The same upload resumed: the server stored the frame's bytes about once.
        let total = try Self.roundBytes(c, 1)
        #expect(Double(total) < 1.1 * Double(frame.count), "the server stored \(total) bytes for a \(frame.count)-byte frame")
        let names = try FileManager.default.contentsOfDirectory(atPath: c.data.appendingPathComponent("rounds/1").path)
        #expect(names.count == 1)
        if let name = names.first { #expect([UInt8](try Data(contentsOf: c.data.appendingPathComponent("rounds/1/\(name)"))) == frame) }
        print("aKilledUploadResumesTheSameUploadAfterRestart: frame \(frame.count) B, killed with \(stored) stored, resumed at \(resumedAt), server stored \(total) B in all (×\(String(format: "%.3f", Double(total) / Double(frame.count)))), restart to acceptance \(String(format: "%.2f", seconds)) s in \((out["requests"] as? NSNumber)?.intValue ?? -1) requests")
    }

    @Test func aKilledParticipantFinishesItsPendingUpdateOnRestart() throws {
        let s = try ScratchDirectory()
        let pipeline = "ef | fp32 | stored"
        let c = try Self.bigServer(s, pipeline: pipeline)
        let layout = try ModelLayout([TensorSpec(name: "w", shape: [Self.parameters])])
        let u = TestData.heavyTailed(count: Self.parameters, seed: 6)
        try s.write("u.safetensors", try Safetensors.write(TensorSet(layout: layout, values: u)))
        let args = ["participate", "--server", "http://127.0.0.1:\(c.port)", "--token", c.token("alice"), "--state", s.path("state"),
                    "--in", s.path("u.safetensors"), "--samples", "4", "--max-append-bytes", "4096"]
        let first = try ToolProcess(args, in: s.url, name: "first")
        let reached = try Self.waitFor(60) { (try? Self.roundBytes(c, 1)) ?? 0 >= 300_000 }
        first.kill9()
        try #require(reached, "the first run never uploaded 300 kB: \(first.stderrText)")
        #expect(FileManager.default.fileExists(atPath: s.path("state/pending/frame.upl.upload.json")))
        let second = try ToolProcess(args + ["--json"], in: s.url, name: "second")
        #expect(second.waitForExit(timeout: 120) == 0, "\(second.stderrText)")
        let line = second.stdoutText.split(separator: "\n").first.map(String.init) ?? ""
        let out = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(second.stdoutText)")
        #expect(out["status"] as? String == "accepted")
        #expect(out["resumed"] as? Bool == true)
        #expect(out["residual"] as? String == "committed")
        #expect(((out["resumedAt"] as? NSNumber)?.intValue ?? 0) >= 300_000, "\(out)")
        let frameBytes = (out["frameBytes"] as? NSNumber)?.intValue ?? 0
        #expect(Double(try Self.roundBytes(c, 1)) < 1.1 * Double(frameBytes))
        #expect(!FileManager.default.fileExists(atPath: s.path("state/pending")))
    }

    /// The README's example: a server and three participants complete rounds.
    @Test func threeParticipantsCompleteTwoRounds() throws {
        let c = try TestCoordinator(["--pipeline", "ef | topk 10% | int8 | lz4", "--reports", "3", "--over-selection", "1", "--rounds", "2"])
        let s = c.scratch
        var runs: [ToolProcess] = []
        for i in 0..<3 {
            let u = TestData.heavyTailed(count: TestCoordinator.layout.parameterCount, seed: UInt64(40 + i), scale: 0.02)
            try s.write("u\(i).safetensors", try Safetensors.write(TensorSet(layout: TestCoordinator.layout, values: u)))
            try s.write("token\(i)", c.token("device-\(i)"))
            runs.append(try ToolProcess([
                "participate", "--server", "http://127.0.0.1:\(c.port)", "--token-file", s.path("token\(i)"), "--state", s.path("state\(i)"),
                "--in", s.path("u\(i).safetensors"), "--samples", "\(10 + i)", "--rounds", "2", "--max-wait", "0.5", "--retry-initial-delay", "0.05",
            ], in: s.url, name: "p\(i)"))
        }
        for (i, r) in runs.enumerated() {
            #expect(r.waitForExit(timeout: 120) == 0, "participant \(i): \(r.stderrText)")
            let rounds = r.stdoutText.split(separator: "\n").filter { $0.hasPrefix("round ") }
            #expect(rounds.count == 2, "participant \(i): \(r.stdoutText)")
            #expect(rounds.allSatisfy { $0.contains("accepted") && $0.contains("residual committed") }, "\(rounds)")
        }
        #expect(c.server.waitForExit(timeout: 30) == 0)
        for round in UInt64(1)...2 {
            let names = try FileManager.default.contentsOfDirectory(atPath: c.data.appendingPathComponent("rounds/\(round)").path)
            #expect(names.count == 3, "round \(round): \(names)")
        }
        #expect(FileManager.default.fileExists(atPath: c.data.appendingPathComponent("models/final.upl").path))
    }

    @Test func participateRefusesWhatItCannotDo() throws {
        let c = try TestCoordinator()
        let s = c.scratch
        let expired = try c.authority.mint(client: "alice", ttl: 60, now: Date().timeIntervalSince1970 - 600)
        let common = ["participate", "--server", "http://127.0.0.1:\(c.port)", "--state", s.path("st")]
        // An expired token: a typed error, exit 1, JSON with its kind.
        let r = try TestCoordinator.cli(common + ["--token", expired, "--train", "digits", "--json"], in: s.url)
        #expect(r.status == 1)
        #expect(r.stdout.contains("\"kind\":\"token-expired\""), "\(r.stdout)")
        #expect(r.stderr.contains("expired"), "\(r.stderr)")
        // Plain HTTP to a host that is not loopback is refused before any connection.
        let insecure = try TestCoordinator.cli(["participate", "--server", "http://192.0.2.1:8080", "--state", s.path("st"), "--token", c.token("a"), "--train", "digits"], in: s.url)
        #expect(insecure.status == 1 && insecure.stderr.contains("not loopback"), "\(insecure.stderr)")
        // --train digits against a model that is not the digits MLP: said so, not a crash.
        let wrong = try TestCoordinator.cli(common + ["--token", c.token("b"), "--train", "digits"], in: s.url)
        #expect(wrong.status == 1 && wrong.stderr.contains("not a digits MLP"), "\(wrong.stderr)")
        // More shards than the digits set has examples: the partition's own message, not a trap.
        let shards = try TestCoordinator.cli(common + ["--token", c.token("e"), "--train", "digits", "--clients", "100", "--partition", "shards:20"], in: s.url)
        #expect(shards.status == 1 && shards.stderr.contains("needs 2000 shards"), "\(shards.stderr)")
        // Local SGD settings that cannot train: refused before any connection.
        for bad in [["--weight-decay=-1"], ["--weight-decay", "nan"], ["--lr", "0"], ["--momentum", "1"]] {
            let r = try TestCoordinator.cli(common + ["--token", c.token("f"), "--train", "digits"] + bad, in: s.url)
            #expect(r.status != 0 && r.stderr.contains("--weight-decay finite and ≥ 0"), "\(bad): \(r.stderr)")
        }
        // Neither --in nor --train.
        let neither = try TestCoordinator.cli(common + ["--token", c.token("c")], in: s.url)
        #expect(neither.status != 0 && neither.stderr.contains("exactly one of"), "\(neither.stderr)")
        // A frame file that does not exist.
        let missing = try TestCoordinator.cli(["upload", "--server", "http://127.0.0.1:\(c.port)", "--token", c.token("d"), "--round", "1", "--in", s.path("nope.upl")], in: s.url)
        #expect(missing.status == 1 && missing.stderr.contains("nope.upl"), "\(missing.stderr)")
    }
}
