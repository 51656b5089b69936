import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

/// Issue 11 §11: outputs are replaced atomically and durably, and `uplink aggregate` commits
/// the model and the server state as one unit, checked by SIGKILL at random points. The seed
/// of the kill times is random per run and printed with any failure.
@Suite(.serialized) struct KillTests {
    static let n = 1 << 17
    /// Kills per test; `UPLINK_KILLS=300 swift test --filter KillTests` for a longer campaign.
    static let kills = ProcessInfo.processInfo.environment["UPLINK_KILLS"].flatMap(Int.init) ?? 40

    /// Runs `uplink` and kills it with SIGKILL after `delay` seconds (if it is still running).
    static func runKilled(_ args: [String], in dir: URL, after delay: Double) throws -> Bool {
        let p = Process()
        p.executableURL = CLI.executable
        p.arguments = args
        p.currentDirectoryURL = dir
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        usleep(UInt32(delay * 1e6))
        let killed = p.isRunning
        if killed { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return killed
    }

    static func temporaries(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".uplink-tmp.") || $0.hasSuffix(".commit") }
    }

    static func time(_ body: () throws -> Void) rethrows -> Double {
        let t0 = Date()
        try body()
        return Date().timeIntervalSince(t0)
    }

    /// Killed anywhere, then retried: the model and state are those of exactly one application
    /// of the round (bit for bit the uninterrupted result), and nothing temporary is left.
    @Test func aggregateKilledAnywhereAppliesTheRoundExactlyOnce() throws {
        let s = try Scratch()
        let layout = try ModelLayout([TensorSpec(name: TensorFiles.npyTensorName, shape: [Self.n])])
        let global = Npy.write(shape: [Self.n], values: TestData.uniform(count: Self.n, seed: 1))
        var frames: [String] = []
        for c in 0..<6 {
            var e = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "topk 5% | int8 | lz4"))
            try s.write("c\(c).upl", try e.encode(TestData.heavyTailed(count: Self.n, seed: UInt64(c)), round: 3, sampleCount: 10))
            frames.append("c\(c).upl")
        }
        let args = ["aggregate", "--strategy", "fedadam lr=0.01", "--model", "model.npy", "--out", "model.npy", "--state", "server.state"] + frames
        try s.write("model.npy", global)
        let full = try Self.time { let r = try CLI.run(args, in: s.url); #expect(r.status == 0, "\(r.stderr)") }
        let reference = (try s.read("model.npy"), try s.read("server.state"))
        var rng = SystemRandomNumberGenerator()
        let seed = rng.next() as UInt64
        var times = SplitMix64(seed: seed)
        var outcomes = (untouched: 0, committed: 0, killed: 0)
        for _ in 0..<Self.kills {
            try s.write("model.npy", global)
            try? FileManager.default.removeItem(atPath: s.path("server.state"))
            let delay = Double(times.next() % 1000) / 1000 * full * 1.1
            if try Self.runKilled(args, in: s.url, after: delay) { outcomes.killed += 1 }
            // Between the kill and the retry: both files old, or (after recovery) both new.
            let model = try s.read("model.npy")
            if model == global { outcomes.untouched += 1 } else { outcomes.committed += 1 }
            #expect(model == global || model == reference.0, "torn model, kill seed \(seed)")
            let retry = try CLI.run(args, in: s.url)
            #expect(retry.status == 0, "kill seed \(seed): \(retry.stderr)")
            #expect(try s.read("model.npy") == reference.0, "round applied twice or not at all, kill seed \(seed)")
            #expect(try s.read("server.state") == reference.1, "kill seed \(seed)")
            #expect(try Self.temporaries(s.url) == [], "kill seed \(seed)")
        }
        // Not vacuous: most runs were killed, some before the commit point (the timing of the
        // rest depends on the machine's load, so it is reported, not required).
        #expect(outcomes.killed >= Self.kills / 4 && outcomes.untouched > 0, "\(outcomes), kill seed \(seed)")
    }

    /// `encode --state` killed anywhere: the frame and the state are each old or new, never torn,
    /// and never a new state without its frame (that would lose an update from the residual);
    /// the next run leaves no temporary file.
    @Test func encodeKilledAnywhereNeverLosesAnUpdate() throws {
        let s = try Scratch()
        try s.write("update.npy", Npy.write(shape: [Self.n], values: TestData.heavyTailed(count: Self.n, seed: 3)))
        let args = ["encode", "--pipeline", "ef | topk 1% | int8 | lz4", "--in", "update.npy", "--out", "frame.upl", "--state", "client.state"]
        let full = try Self.time { let r = try CLI.run(args, in: s.url); #expect(r.status == 0, "\(r.stderr)") }
        let reference = (try s.read("frame.upl"), try s.read("client.state"))
        var rng = SystemRandomNumberGenerator()
        let seed = rng.next() as UInt64
        var times = SplitMix64(seed: seed)
        for _ in 0..<Self.kills {
            for f in ["frame.upl", "client.state"] { try? FileManager.default.removeItem(atPath: s.path(f)) }
            _ = try Self.runKilled(args, in: s.url, after: Double(times.next() % 1000) / 1000 * full * 1.1)
            let frame = try? s.read("frame.upl"), state = try? s.read("client.state")
            #expect(frame == nil || frame == reference.0, "torn frame, kill seed \(seed)")
            #expect(state == nil || state == reference.1, "torn state, kill seed \(seed)")
            #expect(!(state != nil && frame == nil), "state advanced without its frame, kill seed \(seed)")
            if state == nil {
                #expect(try CLI.run(args, in: s.url).status == 0)
                #expect(try s.read("frame.upl") == reference.0 && s.read("client.state") == reference.1, "kill seed \(seed)")
            }
            #expect(try Self.temporaries(s.url) == [], "kill seed \(seed)")
        }
        // A later run of any writer to the same files removes what killed runs left.
        #expect(try CLI.run(args, in: s.url).status == 0)
        #expect(try Self.temporaries(s.url) == [], "kill seed \(seed)")
    }
}
