import Foundation
import Testing
@testable import UplinkSimulation
import UplinkCodec
import UplinkTestSupport

/// A folder of scenario files for one test, removed afterwards.
typealias ScenarioFolder = ScratchDirectory

/// The error `Scenario.read` gives for `json`, or nil if it reads.
func scenarioError(_ json: String) -> UplinkError? {
    do {
        _ = try Scenario.read(Array(json.utf8), folder: nil)
        return nil
    } catch {
        return error
    }
}

@Suite struct ScenarioFileTests {
    /// The messages of a representative set of bad files, exactly: each names the field by its
    /// path and says what is allowed and what was found.
    @Test(arguments: [
        (#"{"roundz": 3}"#, #"roundz: unknown key (did you mean "rounds"?)"#),
        (#"{"population": [{"profile": "3G", "share": 1}, {"profile": "LTE", "share": 1, "rtt": 5}]}"#,
         #"population[1].rtt: unknown key; known keys: profile, share, msPerSample, availability, dropout, trace, downlinkTrace, name"#),
        (#"{"profiles": [{"name": "3G", "uplinkMbps": 0.5, "rttMS": 100}]}"#, #"profiles[0].rttMS: unknown key (did you mean "rttMs"?)"#),
        (#"{"rounds": "many"}"#, #"rounds: must be a whole number, got a string "many""#),
        (#"{"rounds": 1.5}"#, "rounds: must be a whole number, got 1.5"),
        (#"{"rounds": 1e300}"#, "rounds: 1e300 is out of range for a whole number"),
        (#"{"rounds": 0}"#, "rounds: must be in 1…1000000, got 0"),
        (#"{"overSelection": 1e300}"#, "overSelection: must be in [1, 1000], got 1e+300"),
        (#"{"overSelection": 1e400}"#, "overSelection: 1e400 is too large for a number"),
        (#"{"deadlineSeconds": -1}"#, "deadlineSeconds: must be in (0, 86400], got -1.0"),
        (#"{"minimumReportFraction": 1.5}"#, "minimumReportFraction: must be in [0, 1], got 1.5"),
        (#"{"minimumReportFraction": -0.1}"#, "minimumReportFraction: must be in [0, 1], got -0.1"),
        (#"{"minimumReportFraction": "half"}"#, #"minimumReportFraction: must be a number, got a string "half""#),
        (#"{"minimumReportFraction": null}"#, "minimumReportFraction: must be a number, got null"),
        (#"{"minimumReportFraction": 1}"#, nil),
        (#"{"minimumReportFraction": 0.5, "dpClip": 1, "dpNoise": 1}"#,
         "minimumReportFraction: must be 0 with central DP (dpClip, dpNoise): one client's report would decide whether the others' count, which the privacy accounting does not cover"),
        (#"{"minimumReportFraction": 0, "dpClip": 1, "dpNoise": 1}"#, nil),
        (#"{"seed": -1}"#, "seed: must be a whole number in 0…18446744073709551615, got -1"),
        (#"{"seed": 18446744073709551615}"#, nil),
        (#"{"seed": 18446744073709551616}"#, "seed: 18446744073709551616 is out of range for a whole number"),
        (#"{"reportsPerRound": 500}"#, "reportsPerRound: must be in 1…clients (100), got 500"),
        (#"{"population": [{"profile": "3G", "share": 1, "availability": 1.5}]}"#, "population[0].availability: must be in (0, 1], got 1.5"),
        (#"{"population": [{"profile": "3G", "share": 1, "msPerSample": [20, 5]}]}"#, "population[0].msPerSample[1]: must be in [msPerSample[0], 3600000], got 5.0"),
        (#"{"population": [{"profile": "6G", "share": 1}]}"#, #"population[0].profile: unknown profile "6G"; known: 2G, 3G, LTE, 5G, WiFi"#),
        (#"{"population": [{"share": 1}]}"#, #"population[0]: a group needs a "profile""#),
        (#"{"population": {"profile": "3G"}}"#, "population: must be a list, got an object"),
        (#"{"profiles": [{"name": "sat", "uplinkMbps": 1}]}"#, #"profiles[0]: "sat" is not a built-in profile (2G, 3G, LTE, 5G, WiFi), so it needs downlinkMbps, rttMs"#),
        (#"{"profiles": [{"name": "3G", "loss": 1}]}"#, "profiles[0].loss: must be in [0, 1), got 1.0"),
        (#"{"profiles": [{"name": "3G", "outagesPerHour": 1e9}]}"#, "profiles[0].outagesPerHour: must be in [0, 60], got 1000000000.0"),
        (#"{"pipelines": ["fp32 | brotli"]}"#,
         #"pipelines[0]: unknown stage "brotli"; known stages: clip, noise, ef, topk, topk-sampled, randk, threshold, fp32, fp16, bf16, int8, int4, int2, sign, ternary, stored, lz4, zlib"#),
        (#"{"interruptions": "retry"}"#, #"interruptions: must be "resume" or "restart", got "retry""#),
        (#"{"train": 1}"#, "train: must be true or false, got a number 1"),
        (#"{"dpNoise": 1}"#, "dpNoise: needs dpClip (they go together)"),
        (#"{"dpClip": 1, "dpNoise": 1, "dpDelta": 1}"#, "dpDelta: must be in (0, 1), got 1.0"),
        (#"{"learningRate": 1e39}"#, "learningRate: 1e+39 is too large"),
        (#"{"rounds": 3, "rounds": 4}"#, #"not valid JSON at line 1, column 15: duplicate key "rounds""#),
        (#"{"rounds": 3,}"#, "not valid JSON at line 1, column 14: expected a key in double quotes"),
        ("{\n  \"rounds\": 3\n  \"clients\": 4\n}", #"not valid JSON at line 3, column 3: expected "," or "}" after a member"#),
        ("[1]", "scenario: must be an object, got a list"),
    ] as [(String, String?)])
    func badFieldsAreRefusedWithTheirPath(json: String, message: String?) {
        let error = scenarioError(json)
        guard let message else {
            #expect(error == nil, "\(json) → \(error?.message ?? "")")
            return
        }
        #expect(error?.message == message, "\(json)")
        #expect(error?.code == (json.contains("brotli") ? .pipelineUnknownStage : .invalidArgument))
    }

    /// Every numeric field refuses NaN-like, infinite and huge values with an error naming it
    /// (no `Int(Double)` downstream can trap), and the error is the scenario's code.
    @Test(arguments: ["rounds", "clients", "reportsPerRound", "overSelection", "deadlineSeconds", "minimumReportFraction", "localEpochs", "batchSize",
                      "learningRate", "momentum", "weightDecay", "width", "dpDelta"])
    func everyTopLevelNumberIsRangeChecked(field: String) {
        for value in ["1e300", "-1e300", "1e400", "9223372036854775808", "-0.5"] {
            let error = scenarioError(#"{"\#(field)": \#(value)}"#)
            #expect(error?.code == .invalidArgument && error?.message.hasPrefix(field + ":") == true, "\(field) = \(value) → \(error?.message ?? "accepted")")
        }
    }

    @Test(arguments: ["share", "availability", "dropout"])
    func everyGroupNumberIsRangeChecked(field: String) {
        for value in ["1e300", "-1e300", "1e400", "0", "-0.5"] where !(field == "dropout" && value == "0") {
            let other = field == "share" ? "" : #", "share": 1"#
            let error = scenarioError(#"{"population": [{"profile": "3G", "share": 1}, {"profile": "LTE"\#(other), "\#(field)": \#(value)}]}"#)
            #expect(error?.message.hasPrefix("population[1].\(field):") == true, "\(field) = \(value) → \(error?.message ?? "accepted")")
        }
        let ms = scenarioError(#"{"population": [{"profile": "3G", "share": 1, "msPerSample": [0, 1e300]}]}"#)
        #expect(ms?.message.hasPrefix("population[0].msPerSample[1]:") == true)
    }

    @Test(arguments: ["uplinkMbps", "downlinkMbps", "spread", "rttMs", "variability", "outagesPerHour", "meanOutageSeconds", "loss"])
    func everyProfileNumberIsRangeChecked(field: String) {
        for value in ["1e300", "-1e300", "1e400", "-0.5"] {
            let error = scenarioError(#"{"profiles": [{"name": "LTE", "\#(field)": \#(value)}]}"#)
            #expect(error?.message.hasPrefix("profiles[0].\(field):") == true, "\(field) = \(value) → \(error?.message ?? "accepted")")
        }
    }

    @Test func dpNumbersAreRangeChecked() {
        for (json, field) in [(#"{"dpClip": 1e300, "dpNoise": 1}"#, "dpClip"), (#"{"dpClip": 1, "dpNoise": 1e300}"#, "dpNoise"),
                              (#"{"dpClip": 1, "dpNoise": 1, "dpAdaptiveQuantile": 1}"#, "dpAdaptiveQuantile"),
                              (#"{"dpClip": 1, "dpNoise": 1, "dpEpsilonBudget": -1}"#, "dpEpsilonBudget"),
                              (#"{"dpEpsilonBudget": 3}"#, "dpEpsilonBudget")] {
            #expect(scenarioError(json)?.message.hasPrefix(field + ":") == true, "\(json)")
        }
        #expect(scenarioError(#"{"dpClip": null, "dpNoise": null}"#) == nil)  // null: off
    }

    /// A population whose links would hold more than 10⁸ outages is refused before it is built.
    @Test func outageMemoryIsBounded() {
        let error = scenarioError(#"{"clients": 1000000, "reportsPerRound": 10, "profiles": [{"name": "LTE", "outagesPerHour": 60}], "population": [{"profile": "LTE", "share": 1}]}"#)
        #expect(error?.message.hasPrefix("population: the links would draw about 1440000000 outages") == true, "\(error?.message ?? "accepted")")
    }

    /// "3G" with only its uplink given keeps every other 3G parameter.
    @Test func partialProfileOverrideInheritsTheBuiltInProfile() throws {
        let s = try Scenario.read(Array(#"{"profiles": [{"name": "3G", "uplinkMbps": 0.5}]}"#.utf8), folder: nil)
        var expected = LinkProfile.named("3G")!
        expected.uplinkMbps = 0.5
        #expect(s.profiles == [expected])
        #expect(s.profile(named: "3G") == expected)
        // An alias keeps the name as written and still inherits.
        let edge = try Scenario.read(Array(#"{"profiles": [{"name": "edge", "loss": 0.05}]}"#.utf8), folder: nil)
        #expect(edge.profiles[0].rttMs == LinkProfile.named("2G")!.rttMs && edge.profiles[0].loss == 0.05 && edge.profiles[0].name == "edge")
        // A new profile gives its rates and RTT; the rest is a steady link.
        let sat = try Scenario.read(Array(#"{"profiles": [{"name": "sat", "uplinkMbps": 2, "downlinkMbps": 20, "rttMs": 600}]}"#.utf8), folder: nil)
        #expect(sat.profiles == [LinkProfile(name: "sat", uplinkMbps: 2, downlinkMbps: 20, rttMs: 600)])
        #expect(scenarioError(#"{"profiles": [{"name": "3G", "uplinkMbps": 1}, {"name": "3g", "loss": 0}]}"#)?.message
                == #"profiles[1].name: "3g" is defined twice"#)
    }

    /// Paths in a scenario are read from its folder, whatever the working directory.
    @Test func relativePathsResolveAgainstTheScenarioFolder() throws {
        let dir = try ScenarioFolder()
        try dir.write("sims/traces/fade.csv", "seconds,kbps\n0,1000\n5,200\n")
        try dir.write("sims/update.safetensors", "placeholder")
        let file = try dir.write("sims/fade.json", #"{"population": [{"profile": "LTE", "share": 1, "trace": "traces/fade.csv"}], "replayUpdate": "update.safetensors"}"#)
        let s = try Scenario.load(path: file)
        #expect(s.population[0].trace == dir.path("sims/traces/fade.csv"))
        #expect(s.replayUpdate == dir.path("sims/update.safetensors"))
        #expect(try TraceFile.load(path: s.population[0].trace!).count == 6)
        let absolute = try dir.write("sims/abs.json", #"{"population": [{"profile": "LTE", "share": 1, "trace": "\#(dir.path("sims/traces/fade.csv"))"}]}"#)
        #expect(try Scenario.load(path: absolute).population[0].trace == dir.path("sims/traces/fade.csv"))
        let missing = try dir.write("sims/missing.json", #"{"population": [{"profile": "LTE", "share": 1, "trace": "nope.csv"}]}"#)
        #expect(throws: UplinkError(.invalidArgument, "\(missing): population[0].trace: no file \(dir.path("sims/nope.csv")) (relative paths are read from the scenario's folder, \(dir.path("sims")))")) {
            try Scenario.load(path: missing)
        }
    }

    /// Errors from a file name the file first.
    @Test func fileErrorsNameTheFile() throws {
        let dir = try ScenarioFolder()
        let file = try dir.write("s.json", #"{"roundz": 3}"#)
        #expect(throws: UplinkError(.invalidArgument, "\(file): roundz: unknown key (did you mean \"rounds\"?)")) { try Scenario.load(path: file) }
        #expect(throws: UplinkError(.io, "\(dir.path("none.json")): cannot read the scenario: no such file")) { try Scenario.load(path: dir.path("none.json")) }
        #expect(throws: UplinkError(.io, "\(dir.url.path): cannot read the scenario: it is a folder")) { try Scenario.load(path: dir.url.path) }
        let big = try dir.write("big.json", "{\"name\": \"" + String(repeating: "x", count: Scenario.maximumFileBytes) + "\"}")
        #expect(throws: UplinkError(.invalidArgument, "\(big): the scenario is larger than its limit of 1048576 bytes")) { try Scenario.load(path: big) }
    }

    /// Every field the reader knows survives encode → read, so the reader and the encoder agree.
    @Test func everyFieldRoundTripsThroughTheFileFormat() throws {
        var s = Scenario()
        s.name = "all"; s.seed = UInt64.max; s.rounds = 7; s.clients = 50; s.reportsPerRound = 5; s.overSelection = 1.5
        s.deadlineSeconds = 60; s.interruptions = .restart
        s.population = [Scenario.Group(profile: "slow", share: 2, msPerSample: [1, 2], availability: 0.5, dropout: 0.1, trace: Fixtures.url("traces/lte-fade.csv").path,
                                       downlinkTrace: Fixtures.url("traces/lte-fade.csv").path, name: "slow trace"),
                        Scenario.Group(profile: "3G", share: 1)]
        s.profiles = [LinkProfile(name: "slow", uplinkMbps: 0.2, downlinkMbps: 2, spread: 0.1, rttMs: 300, variability: 0.05, outagesPerHour: 3, meanOutageSeconds: 2, loss: 0.01)]
        s.pipelines = ["fp16 | lz4"]; s.downlink = "fp16 | lz4"; s.train = false; s.replayUpdate = "/u.safetensors"; s.partition = "iid"
        s.updates = [Fixtures.url("updates/cnn-digits-update.safetensors").path, Fixtures.url("updates/cnn-digits-update-2.safetensors").path]
        s.model = Fixtures.url("updates/cnn-digits-update.safetensors").path
        s.skipNonFloat = true; s.samplesPerClient = 40; s.traceOffsets = .none
        s.localEpochs = 2; s.batchSize = 16; s.learningRate = 0.1; s.momentum = 0.5; s.weightDecay = 1e-4; s.width = 8; s.budgetFitting = false  // true needs training, and updates need replay
        s.dpClip = 1; s.dpNoise = 0.8; s.dpAdaptiveQuantile = 0.5; s.dpDelta = 1e-6; s.dpEpsilonBudget = 8; s.dpSeed = UInt64.max - 1
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = try encoder.encode(s)
        let object = try JSONSerialization.jsonObject(with: json) as! [String: Any]
        #expect(Set(object.keys) == Set(Scenario.CodingKeys.allCases.map(\.rawValue)))
        var back = Scenario()
        do { back = try Scenario.read([UInt8](json), folder: nil) } catch { Issue.record("\(error)") }
        #expect(try encoder.encode(back) == json)
        // minimumReportFraction must be 0 with DP, so it round-trips in a scenario without.
        var fraction = Scenario()
        fraction.minimumReportFraction = 0.25
        let text = try encoder.encode(fraction)
        #expect(try Scenario.read([UInt8](text), folder: nil).minimumReportFraction == 0.25)
    }

    @Test func bundledScenariosLoadAndFindTheirFiles() throws {
        let scenarios = Fixtures.root.deletingLastPathComponent().appendingPathComponent("scenarios")
        let replay = try Scenario.load(path: scenarios.appendingPathComponent("replay-10k.json").path)
        #expect(replay.replayUpdate == Fixtures.url("updates/mlp-digits-r6-c61.safetensors").standardizedFileURL.path)
        #expect(FileManager.default.fileExists(atPath: replay.replayUpdate))
        _ = try Scenario.load(path: scenarios.appendingPathComponent("default.json").path)
    }

    /// Hostile JSON: deep nesting, bad escapes, invalid UTF-8 are errors, not crashes.
    @Test func hostileJSONIsRefused() {
        #expect(scenarioError(String(repeating: "[", count: 100_000))?.message == "not valid JSON at line 1, column 65: nested deeper than 64 levels")
        #expect(scenarioError(#"{"name": "\x"}"#)?.message == "not valid JSON at line 1, column 11: an unknown escape in a string")
        #expect(scenarioError(#"{"name": "\ud800"}"#)?.message.hasSuffix("an unpaired surrogate \\u escape") == true)
        #expect(scenarioError(#"{"name": "a\u00e9\ud83d\ude00"}"#) == nil)
        var bytes = Array(#"{"name": "x"}"#.utf8)
        bytes[10] = 0xFF
        #expect(throws: UplinkError.self) { try Scenario.read(bytes, folder: nil) }
        #expect(scenarioError(#"{"rounds": 01}"#)?.message == "not valid JSON at line 1, column 13: a number cannot have a leading zero")
        #expect(scenarioError(#"{"rounds": NaN}"#)?.message.hasSuffix("expected a value (an object, list, string, number, true, false or null)") == true)
        #expect(scenarioError("")?.message == "not valid JSON at line 1, column 1: the document ends where a value should be")
    }

    @Test func tracesAreBoundedAndChecked() throws {
        let dir = try ScenarioFolder()
        for (text, message) in [
            ("0,1000\n1e300,5\n", "line 2: seconds must be in [0, 1000000], got 1e300"),
            ("0,1e300\n", "line 1: kbit/s must be in [0, 1000000000], got 1e300"),
            ("0,nan\n", "line 1: kbit/s must be in [0, 1000000000], got nan"),
            ("0,-3\n", "line 1: kbit/s must be in [0, 1000000000], got -3"),
            ("0,5\n0,6\n", "line 2: seconds must increase (0.0 is not after 0.0)"),
        ] {
            let p = try dir.write("t.csv", text)
            #expect(throws: UplinkError(.invalidArgument, "\(p): \(message)")) { try TraceFile.load(path: p) }
        }
    }

    /// The byte budget never traps, whatever the link: extreme rates clamp to 2⁶², no time or
    /// no rate is 0.
    @Test func byteBudgetClampsInsteadOfTrapping() {
        #expect(Simulator.byteBudget(seconds: 10, bitsPerSecond: 8e6) == 8_000_000)
        #expect(Simulator.byteBudget(seconds: 86_400, bitsPerSecond: 1e30) == 1 << 62)
        #expect(Simulator.byteBudget(seconds: 1, bitsPerSecond: .infinity) == 1 << 62)
        #expect(Simulator.byteBudget(seconds: 0, bitsPerSecond: .infinity) == 0)
        #expect(Simulator.byteBudget(seconds: -5, bitsPerSecond: 1e6) == 0)
        #expect(Simulator.byteBudget(seconds: 5, bitsPerSecond: .nan) == 0)
    }

    /// `overSelection: 1e300` built in code reaches the simulator's ⌈K × overSelection⌉; it must
    /// be a typed error there, not an `Int(Double)` trap.
    @Test func hugeOverSelectionIsATypedErrorNotATrap() async {
        await #expect(processExitsWith: .success) {
            var s = Scenario()
            s.clients = 20; s.reportsPerRound = 4; s.rounds = 1; s.width = 8; s.train = false
            s.overSelection = 1e300
            let layout = MLP.digits(width: 8).layout
            do {
                _ = try Simulator(scenario: s, digits: nil, replay: [Float](repeating: 0.001, count: layout.parameterCount)).run(pipeline: "fp32 | stored")
                exit(2)
            } catch let error as UplinkError {
                exit(error.message.hasPrefix("overSelection:") ? 0 : 3)
            } catch {
                exit(4)
            }
        }
    }

    /// A fast link with a wide spread and a day-long deadline gives some clients a budget beyond
    /// `Int.max` bytes; budget fitting must clamp it, not trap.
    @Test func extremeLinksDoNotTrapBudgetFitting() async {
        await #expect(processExitsWith: .success) {
            var s = Scenario()
            s.clients = 200; s.reportsPerRound = 100; s.overSelection = 2; s.rounds = 1; s.width = 8
            s.deadlineSeconds = 86_400; s.budgetFitting = true; s.pipelines = ["fp32 | stored"]
            s.profiles = [LinkProfile(name: "fast", uplinkMbps: 1e6, downlinkMbps: 1e6, spread: 3, rttMs: 1, variability: 0)]
            s.population = [Scenario.Group(profile: "fast", share: 1, availability: 1, dropout: 0)]
            let digits = try! Digits.load(path: Fixtures.url("digits/digits.csv.gz").path)
            let run = try! Simulator(scenario: s, digits: digits).run(pipeline: "fp32 | stored")
            exit(run.rounds.count == 1 ? 0 : 3)
        }
    }
}
