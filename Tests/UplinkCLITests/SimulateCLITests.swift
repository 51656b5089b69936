import Foundation
import Testing
import UplinkTestSupport

@Suite struct SimulateCLITests {
    static let scenario = """
        {"name": "tiny", "clients": 20, "rounds": 2, "reportsPerRound": 4, "width": 16, "deadlineSeconds": 30,
         "pipelines": ["fp32 | stored", "ef | topk 5% | int8 | lz4"],
         "population": [{"profile": "3G", "share": 1}, {"profile": "LTE", "share": 1, "trace": "TRACE"}]}
        """

    @Test func simulateWritesTheReportAndPrintsTheTable() throws {
        let s = try Scratch()
        let trace = Fixtures.url("traces/lte-fade.csv").path
        try s.write("tiny.json", Array(Self.scenario.replacingOccurrences(of: "TRACE", with: trace).utf8))
        let data = Fixtures.url("digits/digits.csv.gz").path
        let r = try CLI.run(["simulate", "--scenario", "tiny.json", "--report", "out", "--data", data], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ef | topk 5% scope=global") && r.stdout.contains("participation by network"))
        #expect(r.stderr.contains("round 2/2"))  // progress
        for file in ["report.html", "results.json", "rounds.csv"] { #expect(FileManager.default.fileExists(atPath: s.path("out/" + file))) }
        let html = String(decoding: try s.read("out/report.html"), as: UTF8.self)
        // Bars in time per network, bytes per round, upload times, accuracy per round, against bytes and against time.
        #expect(html.components(separatedBy: "<svg").count - 1 == 6)
        let json = try JSONSerialization.jsonObject(with: Data(try s.read("out/results.json"))) as! [String: Any]
        let pipelines = json["pipelines"] as! [[String: Any]]
        #expect(pipelines.count == 2 && (pipelines[0]["rounds"] as! [[String: Any]]).count == 2)
        let csv = String(decoding: try s.read("out/rounds.csv"), as: UTF8.self).split(separator: "\n")
        #expect(csv.count == 1 + 2 * 2 && csv[0].hasPrefix("pipeline,round,"))
        let j = try CLI.run(["simulate", "--scenario", "tiny.json", "--report", "out2", "--data", data, "--json", "--rounds", "1"], in: s.url)
        let parsed = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any]
        #expect(((parsed["pipelines"] as! [[String: Any]])[0]["rounds"] as! [Any]).count == 1)
    }

    /// `weightDecay` reaches local training: the same scenario with it trains a different
    /// model (other accuracies), and the report says it was on.
    @Test func weightDecayChangesTheTrainingAndIsReported() throws {
        let s = try Scratch()
        let data = Fixtures.url("digits/digits.csv.gz").path
        var accuracies: [[Double]] = []
        for (name, decay) in [("plain", "0"), ("decayed", "0.5")] {
            let text = #"{"name": "wd", "clients": 20, "rounds": 2, "reportsPerRound": 4, "width": 16, "deadlineSeconds": 30, "localEpochs": 2, "weightDecay": DECAY, "pipelines": ["fp32 | stored"]}"#
            try s.write(name + ".json", Array(text.replacingOccurrences(of: "DECAY", with: decay).utf8))
            let r = try CLI.run(["simulate", "--scenario", name + ".json", "--report", name, "--data", data, "--json"], in: s.url)
            #expect(r.status == 0, "\(r.stderr)")
            let parsed = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let rounds = (parsed["pipelines"] as! [[String: Any]])[0]["rounds"] as! [[String: Any]]
            accuracies.append(rounds.compactMap { $0["accuracy"] as? Double })
            let html = String(decoding: try s.read(name + "/report.html"), as: UTF8.self)
            #expect(html.contains("weight decay 0.5") == (decay != "0"), "\(name): the parameters line")
        }
        #expect(accuracies[0].count == 2 && accuracies[1].count == 2)
        #expect(accuracies[0] != accuracies[1], "weight decay 0.5 trained the same model: \(accuracies)")
    }

    @Test func badScenariosGetErrorsNamingTheProblem() throws {
        let s = try Scratch()
        for (text, expected) in [
            (#"{"population": [{"profile": "6G", "share": 1}]}"#, "unknown profile"),
            (#"{"rounds": "many"}"#, "rounds"),
            (#"{"pipelines": ["fp32 | brotli"]}"#, "brotli"),
            (#"{"reportsPerRound": 500}"#, "reportsPerRound"),
            ("not json", "bad.json: not valid JSON at line 1, column 1: expected a value"),
        ] {
            try s.write("bad.json", Array(text.utf8))
            let r = try CLI.run(["simulate", "--scenario", "bad.json", "--report", "out"], in: s.url)
            #expect(r.status == 1 && r.stderr.contains(expected), "\(text): \(r.stderr)")
        }
    }

    /// A scenario value that used to reach an `Int(Double)` conversion exits with the typed
    /// error's exit code (1) and message, not a signal.
    @Test func hugeOverSelectionExitsWithTheTypedError() throws {
        let s = try Scratch()
        try s.write("huge.json", Array(#"{"clients": 20, "reportsPerRound": 4, "rounds": 1, "width": 8, "overSelection": 1e300}"#.utf8))
        let r = try CLI.run(["simulate", "--scenario", "huge.json", "--report", "out"], in: s.url)
        #expect(r.status == 1)
        #expect(r.stderr == "uplink: error 707 (input): huge.json: overSelection: must be in [1, 1000], got 1e+300\n")
        let rounds = try CLI.run(["simulate", "--rounds", "0", "--report", "out"], in: s.url)
        #expect(rounds.status == 1 && rounds.stderr == "uplink: error 707 (input): rounds: must be in 1…1000000, got 0\n", "\(rounds.stderr)")
    }

    /// Unknown keys are refused naming the key and the file, with the nearest known key.
    @Test func unknownKeysAreRefused() throws {
        let s = try Scratch()
        // Small enough that a reader ignoring the key would finish quickly (and fail the status check).
        try s.write("typo.json", Array(#"{"roundz": 1, "rounds": 1, "clients": 20, "reportsPerRound": 4, "width": 8, "pipelines": ["fp16 | lz4"]}"#.utf8))
        let r = try CLI.run(["simulate", "--scenario", "typo.json", "--report", "out"], in: s.url)
        #expect(r.status == 1)
        #expect(r.stderr == #"uplink: error 707 (input): typo.json: roundz: unknown key (did you mean "rounds"?)"# + "\n")
    }

    /// A scenario in another folder finds its trace beside it, and a profile override that gives
    /// only the uplink rate runs.
    @Test func scenarioPathsAreReadFromItsFolderAndProfilesInherit() throws {
        let s = try Scratch()
        try FileManager.default.createDirectory(atPath: s.path("sims"), withIntermediateDirectories: true)
        try s.write("sims/fade.csv", try Fixtures.bytes("traces/lte-fade.csv"))
        try s.write("sims/tiny.json", Array("""
            {"name": "tiny", "clients": 12, "rounds": 1, "reportsPerRound": 3, "width": 8, "pipelines": ["fp16 | lz4"],
             "profiles": [{"name": "3G", "uplinkMbps": 0.5}],
             "population": [{"profile": "3G", "share": 1}, {"profile": "LTE", "share": 1, "trace": "fade.csv"}]}
            """.utf8))
        let data = Fixtures.url("digits/digits.csv.gz").path
        let r = try CLI.run(["simulate", "--scenario", "sims/tiny.json", "--report", "out", "--data", data], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("trace"))  // the trace group took part
    }
}
