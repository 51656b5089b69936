import Foundation
import Testing
import UplinkTestSupport

/// `uplink compare`, `simulate` on a non-MLP model, `--set` and `--sweep`, and non-float
/// tensors in the other commands, as a user runs them.
@Suite struct OwnModelCLITests {
    static let cnn = Fixtures.url("updates/cnn-digits-update.safetensors").path
    static let cnn2 = Fixtures.url("updates/cnn-digits-update-2.safetensors").path

    @Test func compareOnARealCheckpointSkipsItsCounters() throws {
        let s = try Scratch()
        let r = try CLI.run(["compare", "--in", Self.cnn, "--runs", "1", "--clients", "100", "--deadline", "10", "--per-tensor", "--top", "2"], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("uplink: note: skipped 2 non-float tensors: bn1.num_batches_tracked (I64), bn2.num_batches_tracked (I64)"))
        #expect(r.stdout.hasPrefix("\(Self.cnn): 13898 parameters, 16 tensors, 55.6 kB as float32"))
        for p in ["fp32 | stored", "fp16 | lz4", "ef | topk 1% scope=global | int8 block=256 sym | lz4", "3G p95", "LTE ≤ 10 s", "(the 2 costliest of 16 tensors)"] {
            #expect(r.stdout.contains(p), "\(p)")
        }
        let j = try CLI.run(["compare", "--in", Self.cnn, "--runs", "1", "--clients", "50", "--pipeline", "fp16 | lz4", "--pipeline", "ef | topk 1% | int8 | lz4", "--profile", "all", "--json"], in: s.url)
        #expect(j.status == 0, "\(j.stderr)")
        let o = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any]
        #expect(o["parameters"] as? Int == 13_898)
        let rows = o["pipelines"] as! [[String: Any]]
        #expect(rows.count == 2 && (rows[0]["upload_seconds"] as! [Any]).count == 5)
        #expect((rows[0]["bytes"] as! Int) > (rows[1]["bytes"] as! Int))
        #expect((o["skipped_tensors"] as! [[String: Any]]).map { $0["name"] as! String } == ["bn1.num_batches_tracked", "bn2.num_batches_tracked"])
    }

    @Test func compareRefusesWhatItCannotDo() throws {
        let s = try Scratch()
        for (args, expected) in [
            (["--refuse-non-float"], "tensor \"bn1.num_batches_tracked\" has dtype I64"),
            (["--profile", "6G"], "--profile \"6G\" is not a network profile; known: 2G, 3G, LTE, 5G, WiFi, all"),
            (["--pipeline", "fp32 | brotli"], "--pipeline \"fp32 | brotli\""),
            (["--deadline", "0"], "the deadline must be in (0, 86400]"),
            (["--clients", "0"], "clients must be in 1…100000"),
            (["--skip-non-float", "--refuse-non-float"], "contradict"),
        ] {
            let r = try CLI.run(["compare", "--in", Self.cnn, "--runs", "1"] + args, in: s.url)
            #expect(r.status == 1 && r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
        let missing = try CLI.run(["compare", "--in", "nope.safetensors"], in: s.url)
        #expect(missing.status == 1 && missing.stderr.contains("nope.safetensors: no such file"))
    }

    /// encode refuses the counters unless told; the layout a server reads must use the same option.
    @Test func encodeAndDecodeAgreeOnSkipping() throws {
        let s = try Scratch()
        let refused = try CLI.run(["encode", "--pipeline", "fp16 | lz4", "--in", Self.cnn, "--out", "f.upl", "--omit-layout"], in: s.url)
        #expect(refused.status == 1 && refused.stderr.contains("error 701") && refused.stderr.contains("--skip-non-float"))
        let ok = try CLI.run(["encode", "--pipeline", "fp16 | lz4", "--in", Self.cnn, "--out", "f.upl", "--omit-layout", "--skip-non-float"], in: s.url)
        #expect(ok.status == 0, "\(ok.stderr)")
        let decoded = try CLI.run(["decode", "--in", "f.upl", "--out", "back.safetensors", "--layout", Self.cnn, "--skip-non-float"], in: s.url)
        #expect(decoded.status == 0, "\(decoded.stderr)")
        let noOption = try CLI.run(["decode", "--in", "f.upl", "--out", "back2.safetensors", "--layout", Self.cnn], in: s.url)
        #expect(noOption.status == 1 && noOption.stderr.contains("error 701"))
        // The server side: aggregate against the checkpoint, with and without the option.
        let aggregated = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", Self.cnn, "--skip-non-float", "--out", "global.safetensors", "f.upl"], in: s.url)
        #expect(aggregated.status == 0, "\(aggregated.stderr)")
        let refused2 = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", Self.cnn, "--out", "global2.safetensors", "f.upl"], in: s.url)
        #expect(refused2.status == 1 && refused2.stderr.contains("\(Self.cnn): tensor \"bn1.num_batches_tracked\""), "\(refused2.stderr)")
        let inspected = try CLI.run(["inspect", "f.upl", "--layout", Self.cnn, "--skip-non-float"], in: s.url)
        #expect(inspected.status == 0, "\(inspected.stderr)")
    }

    /// A frame for another model is refused naming the first difference.
    @Test func layoutMismatchIsExplained() throws {
        let s = try Scratch()
        let ok = try CLI.run(["encode", "--pipeline", "fp32 | stored", "--in", Self.cnn, "--out", "f.upl", "--skip-non-float"], in: s.url)
        #expect(ok.status == 0, "\(ok.stderr)")
        // The decoded file has the same tensors; a layout file of another model is named as such.
        let other = try CLI.run(["decode", "--in", "f.upl", "--out", "x.safetensors", "--layout", Fixtures.url("updates/mlp-digits-r6-c61.safetensors").path], in: s.url)
        #expect(other.status == 1 && other.stderr.contains("error 300") && other.stderr.contains("the layout has no tensor \"bn1.bias\""), "\(other.stderr)")
    }

    @Test func simulateReplaysAnyModel() throws {
        let s = try Scratch()
        let scenario = Fixtures.root.deletingLastPathComponent().appendingPathComponent("scenarios/cnn-digits.json").path
        let r = try CLI.run(["simulate", "--scenario", scenario, "--report", "out", "--rounds", "2", "--pipeline", "fp32 | stored", "--pipeline", "ef | topk 1% | int8 | lz4"], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("on a model of 13898 parameters in 16 tensors (2 updates replayed)"))
        #expect(r.stderr.contains("skipped 2 non-float tensors"))
        let json = try JSONSerialization.jsonObject(with: Data(try s.read("out/results.json"))) as! [String: Any]
        let runs = json["pipelines"] as! [[String: Any]]
        #expect(runs.count == 2)
        let dense = (runs[0]["summary"] as! [String: Any])["mean_frame_bytes"] as! Double
        #expect(dense > 55_592 && dense < 56_500)  // 13,898 float32 values and a header
        #expect(json["scenario_parameters"] != nil)
    }

    @Test func simulateRefusesMismatchedUpdatesNamingTheFile() throws {
        let s = try Scratch()
        let mlp = Fixtures.url("updates/mlp-digits-r6-c61.safetensors").path
        let r = try CLI.run(["simulate", "--set", "updates=[\"\(Self.cnn)\", \"\(mlp)\"]", "--skip-non-float", "--report", "out"], in: s.url)
        #expect(r.status == 1)
        #expect(r.stderr.contains("\(mlp): its layout (6 tensors, 1126410 parameters) is not the first update's (\(Self.cnn)) (16 tensors, 13898 parameters)"), "\(r.stderr)")
        let counters = try CLI.run(["simulate", "--set", "updates=[\"\(Self.cnn)\"]", "--report", "out"], in: s.url)
        #expect(counters.status == 1 && counters.stderr.contains("bn1.num_batches_tracked"), "\(counters.stderr)")
    }

    @Test func setAndSweepFromTheCommandLine() throws {
        let s = try Scratch()
        let base = ["simulate", "--set", "updates=[\"\(Self.cnn)\", \"\(Self.cnn2)\"]", "--skip-non-float", "--set", "clients=30", "--set", "reportsPerRound=5",
                    "--rounds", "2", "--pipeline", "fp32 | stored", "--pipeline", "ef | topk 1% | int8 | lz4"]
        let bad = try CLI.run(base + ["--set", "deadlineSecond=3", "--report", "out"], in: s.url)
        #expect(bad.status == 1 && bad.stderr.contains("deadlineSecond: unknown key (did you mean \"deadlineSeconds\"?)"), "\(bad.stderr)")
        let twice = try CLI.run(base + ["--sweep", "deadlineSeconds=30,45", "--sweep", "rounds=1,2", "--report", "out"], in: s.url)
        #expect(twice.status == 1 && twice.stderr.contains("--sweep is given 2 times"), "\(twice.stderr)")
        let clash = try CLI.run(base + ["--sweep", "rounds=1,2", "--report", "out"], in: s.url)
        #expect(clash.status == 1 && clash.stderr.contains("--sweep rounds and --rounds set the same field"), "\(clash.stderr)")
        let badSweep = try CLI.run(base + ["--sweep", "deadlineSeconds=30,-1", "--report", "out"], in: s.url)
        #expect(badSweep.status == 1 && badSweep.stderr.contains("deadlineSeconds: must be in (0, 86400], got -1"), "\(badSweep.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.path("out/results.json")))  // checked before any run
        let r = try CLI.run(base + ["--sweep", "deadlineSeconds=1,30", "--report", "sweep"], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("sweep deadlineSeconds = 1 (1/2)") && r.stderr.contains("sweep deadlineSeconds = 30 (2/2)"))
        #expect(r.stdout.contains("\ndeadlineSeconds = 1: A pipeline fits a network when") && r.stdout.contains("\ndeadlineSeconds = 30: A pipeline fits"))
        #expect(r.stdout.hasPrefix("deadlineSeconds  pipeline"))
        let json = try JSONSerialization.jsonObject(with: Data(try s.read("sweep/results.json"))) as! [String: Any]
        let sweep = json["sweep"] as! [String: Any]
        #expect(sweep["key"] as? String == "deadlineSeconds")
        let runs = json["runs"] as! [[String: Any]]
        #expect(runs.count == 2)
        let html = String(decoding: try s.read("sweep/report.html"), as: UTF8.self)
        #expect(html.contains("deadlineSeconds"))
        let csv = try CLI.run(base + ["--sweep", "deadlineSeconds=1,30", "--report", "sweep2", "--csv"], in: s.url)
        let lines = csv.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("sweep_value,pipeline,round,") == true)
        #expect(lines.count == 1 + 2 * 2 * 2)
        #expect(lines[1].hasPrefix("\"1\",") && lines.last!.hasPrefix("\"30\","))
    }
}
