import Foundation
import Testing
@testable import UplinkSimulation
import UplinkCodec
import UplinkTestSupport

/// Any model in `simulate`, `--set` / `--sweep` overrides, traces with offsets and separate
/// directions, and the `compare` measurements.
@Suite struct OwnModelTests {
    static let layout = try! ModelLayout([TensorSpec(name: "conv.weight", shape: [8, 3, 3, 3]), TensorSpec(name: "fc.bias", shape: [10]),
                                          TensorSpec(name: "fc.weight", shape: [10, 400])])

    static func replayScenario() -> Scenario {
        var s = Scenario()
        s.train = false
        s.clients = 40; s.reportsPerRound = 8; s.rounds = 4; s.deadlineSeconds = 60
        s.population = [Scenario.Group(profile: "LTE", share: 1)]
        return s
    }

    // MARK: any model

    /// Two real-shaped updates of very different size are cycled across clients: every round's
    /// accepted bytes are a mix of the two frame sizes, and both appear.
    @Test func severalUpdatesAreCycledAcrossClients() throws {
        let n = Self.layout.parameterCount
        let dense = TestData.heavyTailed(count: n, seed: 3, zeroFraction: 0)
        var sparse = [Float](repeating: 0, count: n)
        for i in stride(from: 0, to: n, by: 50) { sparse[i] = dense[i] }
        let replay = try ReplayUpdates(layout: Self.layout, updates: [dense, sparse])
        let run = try Simulator(scenario: Self.replayScenario(), digits: nil, replaying: replay).run(pipeline: "fp32 | lz4")
        var sizes: [Int] = []
        for (i, u) in [dense, sparse].enumerated() {
            var e = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "fp32 | lz4"))
            sizes.append(try e.encode(u, round: 1, sampleCount: 1).count)
            _ = i
        }
        #expect(sizes[0] > 2 * sizes[1])
        var sawBoth = false
        for r in run.rounds where r.reported > 0 {
            // acceptedBytes = a·s0 + b·s1 with a + b = reported (frames of later rounds differ
            // only in the round field, which has a fixed width).
            let mixes = (0...r.reported).filter { a in a * sizes[0] + (r.reported - a) * sizes[1] == r.acceptedBytes }
            #expect(mixes.count == 1, "round \(r.round): \(r.acceptedBytes) is no mix of \(sizes)")
            if let a = mixes.first, a > 0, a < r.reported { sawBoth = true }
        }
        #expect(sawBoth)
        #expect(run.rounds.allSatisfy { $0.accuracy == nil })
    }

    @Test func samplesPerClientSetsTheComputeTime() throws {
        var s = Self.replayScenario()
        s.population = [Scenario.Group(profile: "WiFi", share: 1, msPerSample: [100, 100], availability: 1, dropout: 0)]
        let replay = try ReplayUpdates(layout: Self.layout, updates: [TestData.heavyTailed(count: Self.layout.parameterCount, seed: 1)])
        s.samplesPerClient = 100  // 10 s of compute: reports arrive
        let quick = try Simulator(scenario: s, digits: nil, replaying: replay).run(pipeline: "fp16 | lz4")
        #expect(quick.rounds.allSatisfy { $0.reported == 8 })
        s.samplesPerClient = 700  // 70 s of compute, past the 60 s deadline: nobody reports
        let slow = try Simulator(scenario: s, digits: nil, replaying: replay).run(pipeline: "fp16 | lz4")
        #expect(slow.rounds.allSatisfy { $0.reported == 0 && $0.bytesUp == 0 })
    }

    @Test func replayedUpdatesMustMatchTheLayout() {
        #expect(throws: UplinkError.self) { try ReplayUpdates(layout: Self.layout, updates: [[1, 2, 3]]) }
        #expect(throws: UplinkError.self) { try ReplayUpdates(layout: Self.layout, updates: []) }
        #expect(throws: UplinkError.self) { try ReplayUpdates(layout: Self.layout, updates: [[Float](repeating: 0, count: Self.layout.parameterCount)], global: [1]) }
    }

    @Test func updatesInAScenarioFileImplyReplay() throws {
        let dir = try ScratchDirectory()
        try dir.write("u.safetensors", try Fixtures.bytes("updates/cnn-digits-update.safetensors"))
        let path = try dir.write("s.json", #"{"updates": ["u.safetensors", "u.safetensors"], "skipNonFloat": true, "samplesPerClient": 40}"#)
        let s = try Scenario.load(path: path)
        #expect(!s.train && s.updates == [dir.path("u.safetensors"), dir.path("u.safetensors")] && s.skipNonFloat && s.samplesPerClient == 40)
        #expect(scenarioError(#"{"updates": ["/nonexistent/u.safetensors"]}"#)?.message.contains("updates[0]: no file /nonexistent/u.safetensors") == true)
        #expect(scenarioError(#"{"updates": ["x"], "train": true}"#)?.message.contains("train: is true, but updates are replayed") == true)
        #expect(scenarioError(#"{"model": "x"}"#)?.message.contains("model: needs replayed updates") == true)
        #expect(scenarioError(#"{"samplesPerClient": 0, "train": false}"#)?.message.contains("samplesPerClient") == true)
        #expect(scenarioError(#"{"traceOffsets": "sometimes"}"#)?.message == #"traceOffsets: must be "random" or "none", got "sometimes""#)
    }

    // MARK: --set and --sweep

    @Test func overridesChangeFieldsByPath() throws {
        let sets = try ["deadlineSeconds=30", "population.0.share=0.5", "population[1].availability=0.9", "interruptions=restart",
                        "pipelines=[\"fp16 | lz4\"]", "name=\"123\""].map { try Scenario.Override(assignment: $0) }
        let s = try Scenario.load(path: nil, overrides: sets)
        #expect(s.deadlineSeconds == 30 && s.population[0].share == 0.5 && s.population[1].availability == 0.9)
        #expect(s.interruptions == .restart && s.pipelines == ["fp16 | lz4"] && s.name == "123")
        #expect(s.population.count == Scenario().population.count && s.rounds == Scenario().rounds)
    }

    @Test func overridesAreCheckedLikeTheFile() throws {
        func error(_ a: String) -> String? {
            do { _ = try Scenario.load(path: nil, overrides: [try Scenario.Override(assignment: a)]); return nil } catch { return error.message }
        }
        #expect(error("deadlineSecond=3")?.contains("unknown key (did you mean \"deadlineSeconds\"?)") == true)
        #expect(error("rounds=abc")?.contains("rounds: must be a whole number, got a string \"abc\"") == true)
        #expect(error("rounds=0")?.contains("rounds: must be in 1…1000000, got 0") == true)
        #expect(error("population.9.share=1")?.contains("index 9 is past the end of a list of 4") == true)
        #expect(error("rounds.x=1")?.contains("\"x\" is a field of an object, but here the scenario has a number") == true)
        #expect(error("population.0.share")?.contains("expected key=value") == true)
        #expect(error("=3")?.contains("expected key=value") == true)
        #expect(error("a..b=3")?.contains("an empty part") == true)
        #expect(error("0=3")?.contains("must start with a field name") == true)
    }

    /// A file without the field starts from the default; paths given on the command line are
    /// read from the working directory, not the scenario's folder.
    @Test func overridesOnAFile() throws {
        let dir = try ScratchDirectory()
        let path = try dir.write("sub/s.json", #"{"rounds": 3, "clients": 50}"#)
        let s = try Scenario.load(path: path, overrides: [try Scenario.Override(assignment: "population.0.share=0.5"), try Scenario.Override(assignment: "rounds=4")])
        #expect(s.rounds == 4 && s.clients == 50 && s.population[0].share == 0.5 && s.population.count == 4)
        let cwd = FileManager.default.currentDirectoryPath
        do {
            _ = try Scenario.load(path: path, overrides: [try Scenario.Override(assignment: "updates=[\"no-such.safetensors\"]")])
            Issue.record("a missing update file was accepted")
        } catch {
            #expect(error.message.contains("updates[0]: no file \(cwd)/no-such.safetensors"), "\(error.message)")
        }
    }

    @Test func sweepValuesSplitAtTopLevelCommas() {
        #expect(Scenario.sweepValues("30,45, 60") == ["30", "45", "60"])
        #expect(Scenario.sweepValues("[5,20],[50,200]") == ["[5,20]", "[50,200]"])
        #expect(Scenario.sweepValues(#""a,b",c"#) == [#""a,b""#, "c"])
        #expect(Scenario.sweepValues(#"{"x":1,"y":2},3"#) == [#"{"x":1,"y":2}"#, "3"])
        #expect(Scenario.sweepValues("one") == ["one"])
    }

    // MARK: traces

    @Test func traceOffsetsAndDirections() {
        let link = Link(trace: [1, 2, 3], downlinkTrace: [10, 20], offset: 1, rtt: 0.05)
        #expect(link.rate(at: 0, uplink: true) == 2000)
        #expect(link.rate(at: 2.5, uplink: true) == 1000)
        #expect(link.rate(at: 0, uplink: false) == 20_000)
        #expect(link.rate(at: 1, uplink: false) == 10_000)
        let same = Link(trace: [1, 2, 3], rtt: 0.05)
        #expect(same.rate(at: 0, uplink: false) == 1000 && same.rate(at: 0, uplink: true) == 1000)
        // An offset near Int.max does not trap.
        let far = Link(trace: [1, 2, 3], offset: Int.max, rtt: 0.05)
        #expect(far.rate(at: 5, uplink: true) > 0)
    }

    @Test func clientsOnATraceStartAtDifferentPointsUnlessTold() throws {
        let trace = Fixtures.url("traces/lte-fade.csv").path
        var s = Scenario()
        s.clients = 30
        s.population = [Scenario.Group(profile: "LTE", share: 1, trace: trace), Scenario.Group(profile: "LTE", share: 1, trace: trace, name: "second")]
        let random = try Population.make(s)
        #expect(Set(random.map(\.link.traceOffset)).count > 5)
        #expect(Set(random.map(\.profile)) == ["trace lte-fade.csv", "second"])
        s.traceOffsets = .none
        #expect(try Population.make(s).allSatisfy { $0.link.traceOffset == 0 })
    }

    @Test func downlinkTraceNeedsAnUplinkTrace() {
        #expect(scenarioError(#"{"population": [{"profile": "LTE", "share": 1, "downlinkTrace": "x.csv"}]}"#)?.message.contains("downlinkTrace: needs a trace") == true)
    }

    // MARK: compare

    static func comparison(_ pipelines: [String], update: [Float]? = nil, perTensor: Bool = false) throws -> PipelineComparison {
        var options = PipelineComparison.Options(profiles: [LinkProfile.named("3G")!, LinkProfile.named("LTE")!])
        options.clients = 200
        options.runs = 1
        options.deadline = 5
        options.perTensor = perTensor
        let u = update ?? TestData.heavyTailed(count: layout.parameterCount, seed: 9)
        return try PipelineComparison(update: u, layout: layout, pipelines: try pipelines.map { try Pipeline(parsing: $0) }, options: options)
    }

    @Test func losslessIsExactAndLossyIsNot() throws {
        let c = try Self.comparison(["fp32 | stored", "fp16 | lz4", "ef | topk 1% | int8 | lz4"])
        let exact = c.rows[0]
        #expect(exact.relativeL2Error == 0 && abs(exact.cosine! - 1) < 1e-12 && exact.maxAbsoluteError == 0)
        #expect(exact.bytes > exact.float32Bytes && exact.ratio < 1)  // the header
        #expect(c.rows[1].relativeL2Error > 0 && c.rows[1].relativeL2Error < 1e-3)
        let sparse = c.rows[2]
        #expect(sparse.transmitted == Int((0.01 * Double(Self.layout.parameterCount)).rounded(.up)) || sparse.transmitted > 0)
        #expect(sparse.relativeL2Error > 0.1 && sparse.cosine! < 1 && sparse.cosine! > 0)
        #expect(sparse.ratio > 20)
    }

    /// The same links for every pipeline: fewer bytes never upload more slowly, at every quantile.
    @Test func fewerBytesNeverUploadSlowerOnTheSameLinks() throws {
        let c = try Self.comparison(["fp32 | stored", "fp16 | lz4", "int8 | zlib", "ef | topk 1% | int8 | lz4"])
        let byBytes = c.rows.sorted { $0.bytes > $1.bytes }
        for p in 0..<2 {
            for (a, b) in zip(byBytes, byBytes.dropFirst()) {
                #expect(a.uploads[p].median >= b.uploads[p].median && a.uploads[p].p95 >= b.uploads[p].p95)
                #expect(a.uploads[p].withinDeadline! <= b.uploads[p].withinDeadline!)
            }
            #expect(c.rows.allSatisfy { $0.uploads[p].median <= $0.uploads[p].p95 })
        }
        // 3G is slower than LTE for the same frame.
        #expect(c.rows.allSatisfy { $0.uploads[0].median > $0.uploads[1].median })
        // At the link model's 1 Mbit/s median 3G uplink, the float32 frame's median is at least its serialization time.
        #expect(c.rows[0].uploads[0].median >= Double(c.rows[0].bytes * 8) / 1e6 * 0.3)
    }

    @Test func perTensorCostsAddUp() throws {
        var update = TestData.heavyTailed(count: Self.layout.parameterCount, seed: 4, zeroFraction: 0)
        for i in 216..<226 { update[i] = 0 }  // fc.bias all zero: top-k sends nothing of it
        let c = try Self.comparison(["fp16 | lz4", "ef | topk 1% | int8 | lz4"], update: update, perTensor: true)
        for r in c.rows {
            let t = try #require(r.tensors)
            #expect(t.map(\.name) == Self.layout.tensors.map(\.name))
            #expect(t.reduce(0) { $0 + $1.transmitted } == r.transmitted)
            let payload = t.reduce(0) { $0 + $1.attributedBytes }
            #expect(payload < Double(r.bytes) && payload > 0.8 * Double(r.bytes) - 200)
        }
        let sparse = c.rows[1].tensors!
        #expect(sparse[1].transmitted == 0 && sparse[1].attributedBytes == 0 && sparse[1].relativeL2Error == 0 && sparse[1].cosine == nil)
        #expect(c.rows[0].tensors!.map(\.transmitted) == Self.layout.elementCounts)
        let text = c.tensorTables(top: 2)
        #expect(text.contains("(the 2 costliest of 3 tensors)") && text.contains("fc.weight"))
    }

    @Test func outputsAreWellFormed() throws {
        let c = try Self.comparison(["fp32 | stored", "ef | topk 1% | int8 | lz4"], perTensor: true)
        let table = c.table()
        #expect(table.contains("3G p50") && table.contains("LTE p95") && table.contains("3G ≤ 5 s"))
        #expect(table.split(separator: "\n").count == 2 + 2)
        let data = try JSONSerialization.data(withJSONObject: c.jsonObject(input: "u.safetensors"))
        let back = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let rows = back["pipelines"] as! [[String: Any]]
        #expect(rows.count == 2 && (rows[1]["tensors"] as! [Any]).count == 3)
        #expect((rows[0]["bytes"] as! Int) == c.rows[0].bytes)
        #expect(PipelineComparison.duration(0.5) == "0.50 s" && PipelineComparison.duration(75) == "75.0 s")
        #expect(PipelineComparison.duration(900) == "15.0 min" && PipelineComparison.duration(40_000) == "11.1 h")
        #expect(PipelineComparison.duration(86_400) == "> 1 d")
        #expect(PipelineComparison.ratio(214.2) == "214×" && PipelineComparison.ratio(2.44) == "2.4×")
    }

    @Test func badOptionsAreRefused() {
        var o = PipelineComparison.Options(profiles: [LinkProfile.named("3G")!])
        o.clients = 0
        #expect(throws: UplinkError.self) { try PipelineComparison(update: [0], layout: try ModelLayout(name: "x", count: 1), pipelines: [], options: o) }
        o.clients = 10
        o.deadline = -1
        #expect(throws: UplinkError.self) { try PipelineComparison(update: [0], layout: try ModelLayout(name: "x", count: 1), pipelines: [], options: o) }
        o.deadline = nil
        #expect(throws: UplinkError.self) { try PipelineComparison(update: [0, 1], layout: try ModelLayout(name: "x", count: 1), pipelines: [], options: o) }
    }
}

/// Defects an outside attack found in the first version, each pinned.
@Suite struct OwnModelHardeningTests {
    /// Every client on a trace shares its one array: memory is the trace's, not clients × trace.
    @Test func clientsShareTheirTrace() throws {
        let dir = try ScratchDirectory()
        let trace = try dir.write("long.csv", "seconds,kbps\n0,100\n100000,200\n")
        var s = Scenario()
        s.clients = 500
        s.population = [Scenario.Group(profile: "LTE", share: 1, trace: trace)]
        let clients = try Population.make(s)
        let bases = Set(clients.map { c in c.link.trace!.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) } })
        #expect(bases.count == 1)
        #expect(clients[0].link.trace!.count == 100_001 && clients[0].link.rate(at: 0, uplink: true) > 0)
    }

    @Test func traceRowsAreExactlyTwoNumbers() throws {
        let dir = try ScratchDirectory()
        for (text, message) in [("seconds,kbps\n0,100,3\n", "line 2 is not \"seconds,kbit/s\" (two numbers)"),
                                ("seconds,kbps\n0,100\n1,200,\n", "line 3 is not"),
                                ("seconds,kbps\n0,100\n0,200\n", "line 3: seconds must increase (0.0 is not after 0.0)")] {
            let path = try dir.write("t.csv", text)
            #expect { try TraceFile.load(path: path) } throws: { ($0 as? UplinkError)?.message.contains(message) == true }
        }
    }

    /// A value one pipeline cannot hold refuses that pipeline only; NaN refuses them all.
    @Test func comparePipelinesFailAlone() throws {
        let layout = try ModelLayout([TensorSpec(name: "a", shape: [2]), TensorSpec(name: "w", shape: [3])])
        var options = PipelineComparison.Options(profiles: [LinkProfile.named("LTE")!])
        options.clients = 10
        options.runs = 1
        let pipelines = try ["fp16 | lz4", "fp32 | stored", "ef | topk 50% | int8 | lz4"].map { try Pipeline(parsing: $0) }
        let c = try PipelineComparison(update: [0.1, 0.2, 1, 70_000, 2], layout: layout, pipelines: pipelines, options: options)
        #expect(c.rows.map(\.pipeline) == ["fp32 | stored", "ef | topk 50% scope=global | int8 block=256 sym | lz4"])
        #expect(c.refused.map(\.pipeline) == ["fp16 | lz4"] && c.refused[0].error.code == .valueOutOfRange)
        #expect(c.refused[0].error.message.contains("tensor \"w\", element 1"))
        #expect(c.table().contains("\nfp16 | lz4: refused, error 705"))
        #expect(throws: UplinkError.self) { try PipelineComparison(update: [0, .nan, 0, 0, 0], layout: layout, pipelines: pipelines, options: options) }
    }

    @Test func namesWithControlCharactersAreShownEscaped() {
        #expect(PipelineComparison.shown("fc.weight") == "fc.weight")
        #expect(PipelineComparison.shown("a\u{1B}[31mred\n") == #""a\u{1b}[31mred\n""#)
        #expect(scenarioError(#"{"population": [{"profile": "3G", "share": 1, "name": "\u001b[31mred"}]}"#)?.message.contains("population[0].name: holds a control or format character") == true)
        #expect(scenarioError(#"{"population": [{"profile": "3G", "share": 1, "name": "3G slow"}]}"#) == nil)
    }

    @Test func scenarioCombinationsThatMeantSomethingElse() {
        #expect(scenarioError(#"{"train": false, "model": "/m.safetensors"}"#)?.message.contains("model: needs updates") == true)
    }

    @Test func hugeIndicesAreOutOfRange() {
        do {
            _ = try Scenario.Override(assignment: "population.99999999999999999999999.share=1")
            Issue.record("accepted")
        } catch {
            #expect(error.message.contains("index \"99999999999999999999999\" is out of range") || error.message.contains("index 99999999999999999999999 is out of range"), "\(error.message)")
        }
    }
}

/// Defects an outside code review found, each pinned.
@Suite struct OwnModelReviewTests {
    /// `--set` on the default scenario keeps training: the encoded default's empty `updates`
    /// does not mean replay.
    @Test func setOnTheDefaultScenarioStillTrains() throws {
        let s = try Scenario.load(path: nil, overrides: [try Scenario.Override(assignment: "rounds=5")])
        #expect(s.train && s.rounds == 5 && s.updates.isEmpty)
        #expect(try Scenario.read(Array(#"{"updates": []}"#.utf8), folder: nil).train)
    }

    @Test func budgetFittingNeedsTraining() {
        #expect(scenarioError(#"{"train": false, "budgetFitting": true}"#)?.message.contains("budgetFitting: needs training") == true)
    }

    /// A path inside a whole object value is read from the working directory too.
    @Test func pathsInsideWholeValuesAreFromTheWorkingDirectory() throws {
        let cwd = FileManager.default.currentDirectoryPath
        do {
            _ = try Scenario.load(path: nil, overrides: [try Scenario.Override(assignment: #"population=[{"profile": "LTE", "share": 1, "trace": "no-such.csv"}]"#)])
            Issue.record("a missing trace was accepted")
        } catch {
            #expect(error.message.contains("population[0].trace: no file \(cwd)/no-such.csv"), "\(error.message)")
        }
    }

    @Test func unbalancedSweepValuesStillSplit() {
        #expect(Scenario.sweepValues("a],b,c") == ["a]", "b", "c"])
    }

    /// With a deadline equal to the followed horizon, an upload that never finished is not on time.
    @Test func unfinishedUploadsAreNeverWithinTheDeadline() throws {
        let layout = try ModelLayout(name: "w", count: 10_000_000)
        var options = PipelineComparison.Options(profiles: [LinkProfile(name: "slow", uplinkMbps: 0.001, downlinkMbps: 1, spread: 0, rttMs: 10, variability: 0)])
        options.clients = 5
        options.runs = 1
        options.deadline = PipelineComparison.horizon
        let c = try PipelineComparison(update: [Float](repeating: 0.5, count: layout.parameterCount), layout: layout,
                                       pipelines: [try Pipeline(parsing: "fp32 | stored")], options: options)
        #expect(c.rows[0].uploads[0].withinDeadline == 0)
        #expect(c.rows[0].uploads[0].median == PipelineComparison.horizon)
    }

    /// A replayed file's error-feedback state advances only in rounds where one of its clients
    /// is accepted: with nobody accepted, round 2's frame equals round 1's but for the round.
    @Test func replayedStateCommitsOnAcceptanceOnly() throws {
        let layout = try ModelLayout(name: "w", count: 20_000)
        let u = TestData.heavyTailed(count: layout.parameterCount, seed: 2)
        var s = Scenario()
        s.train = false
        s.clients = 20; s.reportsPerRound = 4; s.rounds = 3
        s.population = [Scenario.Group(profile: "LTE", share: 1, availability: 1, dropout: 0)]
        let replay = try ReplayUpdates(layout: layout, updates: [u])
        let accepted = try Simulator(scenario: s, digits: nil, replaying: replay).run(pipeline: "ef | topk 1% | int8 | lz4")
        #expect(accepted.rounds.allSatisfy { $0.reported == 4 })
        // Accepted every round: the residual grows, so later frames differ from the first.
        var e = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "ef | topk 1% | int8 | lz4"))
        let first = try e.encode(u, round: 1, sampleCount: 1).count
        let second = try e.encode(u, round: 2, sampleCount: 1).count
        #expect(accepted.rounds[0].acceptedBytes == 4 * first && accepted.rounds[1].acceptedBytes == 4 * second)
    }
}

/// Counts past 2^32 print whole in the per-tensor table.
@Suite struct OwnModelLargeCountTests {
    @Test func perTensorCountsPast32Bits() throws {
        var c = try OwnModelTests.comparison(["fp16 | lz4"], perTensor: true)
        c.rows[0].tensors![0].parameters = 10_000_000_000
        c.rows[0].tensors![0].transmitted = 5_000_000_123
        let text = c.tensorTables(top: 3)
        #expect(text.contains("10000000000") && text.contains("5000000123 (50%)"), "\(text)")
    }
}
