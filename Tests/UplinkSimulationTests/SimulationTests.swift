import Foundation
import Testing
@testable import UplinkSimulation
import UplinkCodec
import UplinkTestSupport

@Suite struct LinkModelTests {
    /// Constant link: time = RTT + 8·bytes / bandwidth, exactly.
    @Test(arguments: [(1_000, 1e6, 0.05), (4_505_852, 1e6, 0.2), (21_038, 6e6, 0.06), (1, 35e6, 0.02)])
    func constantLinkTimeIsRTTPlusSerialization(bytes: Int, bps: Double, rtt: Double) {
        let link = Link(uplinkBps: bps, downlinkBps: bps * 3, rtt: rtt)
        let t = link.transfer(bytes: bytes, uplink: true, start: 10, mode: .resume)
        #expect(abs(t.finish! - (10 + rtt + 8 * Double(bytes) / bps)) < 1e-9)
        #expect(t.bytesSent == bytes && t.interruptions == 0)
        let down = link.transfer(bytes: bytes, uplink: false, start: 0, mode: .resume)
        #expect(abs(down.finish! - (rtt + 8 * Double(bytes) / (bps * 3))) < 1e-9)
    }

    /// An outage from 2 s to 4 s during a 1 MB upload at 1 Mbit/s (125 kB/s), RTT 0.1 s.
    @Test func resumeContinuesAndRestartStartsOver() {
        var link = Link(uplinkBps: 1e6, downlinkBps: 1e6, rtt: 0.1)
        link.outages = [(2, 4)]
        let resume = link.transfer(bytes: 1_000_000, uplink: true, start: 0, mode: .resume)
        // 1.9 s of data before the outage (237,500 B), reconnect at 4.1 s, 762,500 B more: 6.1 s.
        #expect(abs(resume.finish! - 10.2) < 1e-9)
        #expect(resume.bytesSent == 1_000_000 && resume.interruptions == 1)
        let restart = link.transfer(bytes: 1_000_000, uplink: true, start: 0, mode: .restart)
        #expect(abs(restart.finish! - 12.1) < 1e-9)  // 4.1 s + the whole 8 s again
        #expect(restart.bytesSent == 1_237_500 && restart.interruptions == 1)
        // With a deadline at 11 s only the resumable upload makes it.
        #expect(link.transfer(bytes: 1_000_000, uplink: true, start: 0, mode: .restart, deadline: 11).finish == nil)
        #expect(link.transfer(bytes: 1_000_000, uplink: true, start: 0, mode: .resume, deadline: 11).finish != nil)
    }

    /// A trace: 1 Mbit/s for 2 s, nothing for 1 s, then 2 Mbit/s.
    @Test func traceDrivenLinkFollowsTheTrace() throws {
        let link = Link(trace: [1000, 1000, 0, 2000], rtt: 0.5)
        // 500,000 B: 0.5–2 s moves 187,500 B; second 2 is dead: reconnect at 3.5 s;
        // 3.5–4 s at 2 Mbit/s: 125,000 B; second 4 wraps to 1 Mbit/s: 125,000 B; second 5: 125,000 B…
        let t = link.transfer(bytes: 500_000, uplink: true, start: 0, mode: .resume)
        #expect(t.interruptions == 1)
        #expect(abs(t.finish! - 5.5) < 1e-9, "\(t)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trace-\(UUID()).csv")
        try "seconds,kbps\n0,1000\n2,0\n3,2000\n".write(to: dir, atomically: true, encoding: .utf8)
        #expect(try TraceFile.load(path: dir.path) == [1000, 1000, 0, 2000])
        try "0,5\n2,x\n".write(to: dir, atomically: true, encoding: .utf8)
        #expect(throws: UplinkError.self) { try TraceFile.load(path: dir.path) }
        #expect(try TraceFile.load(path: Fixtures.url("traces/lte-fade.csv").path).count == 60)
    }

    @Test func profileLinksAreReproducibleAndNearTheirMedians() {
        let profile = LinkProfile.named("LTE")!
        let links = (0..<2000).map { Link(profile: profile, seed: UInt64($0)) }
        #expect(Link(profile: profile, seed: 5).uplinkBps == links[5].uplinkBps)
        let median = links.map(\.uplinkBps).sorted()[1000]
        #expect(abs(median / 6e6 - 1) < 0.1, "median uplink \(median)")
        let outagesPerHour = Double(links.reduce(0) { $0 + $1.outages.count }) / Double(links.count) / 24
        #expect(abs(outagesPerHour - profile.outagesPerHour) < 0.2)
    }

    @Test func eventQueueOrdersByTimeThenScheduling() {
        var q = EventQueue<String>()
        for (t, s) in [(3.0, "c"), (1.0, "a"), (2.0, "b1"), (2.0, "b2"), (0.5, "z")] { q.schedule(t, s) }
        var out: [String] = []
        while let e = q.next() { out.append(e.payload) }
        #expect(out == ["z", "a", "b1", "b2", "c"])
    }
}

@Suite struct SimulatorTests {
    static let digits = try! Digits.load(path: Fixtures.url("digits/digits.csv.gz").path)

    static func small() -> Scenario {
        var s = Scenario()
        s.clients = 30
        s.rounds = 3
        s.reportsPerRound = 5
        s.width = 16
        s.pipelines = ["fp32 | stored", "ef | topk 10% | int8 | lz4"]
        return s
    }

    @Test func bundledScenarioFileIsTheDefault() throws {
        let file = try Scenario.load(path: Fixtures.root.deletingLastPathComponent().appendingPathComponent("scenarios/default.json").path)
        let builtIn = Scenario()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(try encoder.encode(file) == encoder.encode(builtIn))
    }

    @Test func replayIsDeterministic() throws {
        let s = Self.small()
        let a = try Simulator(scenario: s, digits: Self.digits).run(pipeline: "ef | topk 10% | int8 | lz4")
        let b = try Simulator(scenario: s, digits: Self.digits).run(pipeline: "ef | topk 10% | int8 | lz4")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(try encoder.encode(a) == encoder.encode(b))
        var other = s
        other.seed = 2
        let c = try Simulator(scenario: other, digits: Self.digits).run(pipeline: "ef | topk 10% | int8 | lz4")
        #expect(try encoder.encode(c) != encoder.encode(a))
    }

    /// Over-selection: ⌈K·1.3⌉ clients are selected, at most K reports are used, the rest are surplus.
    @Test func overSelectionSelectsMoreAndUsesK() throws {
        var s = Self.small()
        s.population = [Scenario.Group(profile: "WiFi", share: 1, availability: 1, dropout: 0)]
        s.deadlineSeconds = 600
        let run = try Simulator(scenario: s, digits: Self.digits).run(pipeline: "ef | topk 10% | int8 | lz4")
        for r in run.rounds {
            #expect(r.selected == 7)  // ⌈5 × 1.3⌉
            #expect(r.reported == 5)
            #expect(r.reported + r.surplus + r.droppedDeadline + r.droppedInterruption + r.droppedDropout <= r.selected)
            #expect(r.duration < 600)  // closed at the fifth report, not at the deadline
        }
    }

    /// A deadline too short for a dense update drops it; a sparse one makes it.
    @Test func deadlineDropsSlowUploads() throws {
        var s = Self.small()
        s.population = [Scenario.Group(profile: "3G", share: 1, availability: 1, dropout: 0)]
        s.profiles = [LinkProfile(name: "3G", uplinkMbps: 0.05, downlinkMbps: 10, spread: 0.01, rttMs: 100, variability: 0, outagesPerHour: 0, loss: 0)]
        s.deadlineSeconds = 5
        let sim = try Simulator(scenario: s, digits: Self.digits)
        // fp32 of the 16-wide MLP: 1,482 values, 5.9 kB: about 1 s at 50 kbit/s; 1M-wide would not fit.
        let dense = try sim.run(pipeline: "fp32 | stored")
        #expect(dense.rounds.allSatisfy { $0.reported == 5 })
        s.deadlineSeconds = 1.0
        let tight = try Simulator(scenario: s, digits: Self.digits).run(pipeline: "fp32 | stored")
        #expect(tight.rounds.allSatisfy { $0.reported == 0 && $0.droppedDeadline == 7 })
        let sparse = try Simulator(scenario: s, digits: Self.digits).run(pipeline: "ef | topk 1% | int8 | stored")
        #expect(sparse.rounds.allSatisfy { $0.reported == 5 }, "\(sparse.rounds.map(\.reported))")
    }

    /// Budget fitting turns late dense uploads into sparser ones that arrive.
    @Test func budgetFittingRaisesParticipation() throws {
        var s = Self.small()
        s.width = 64
        s.population = [Scenario.Group(profile: "slow", share: 1, availability: 1, dropout: 0)]
        s.profiles = [LinkProfile(name: "slow", uplinkMbps: 0.2, downlinkMbps: 20, spread: 0.3, rttMs: 100, variability: 0, outagesPerHour: 0, loss: 0)]
        s.deadlineSeconds = 1.5
        let without = try Simulator(scenario: s, digits: Self.digits).run(pipeline: "fp16 | stored")
        s.budgetFitting = true
        let with = try Simulator(scenario: s, digits: Self.digits).run(pipeline: "fp16 | stored")
        let a = without.rounds.reduce(0) { $0 + $1.reported }, b = with.rounds.reduce(0) { $0 + $1.reported }
        #expect(b > a, "reports without \(a), with budget fitting \(b)")
        #expect(with.rounds.reduce(0) { $0 + $1.budgetFitted } > 0)
    }

    /// A population of ten thousand with a replayed real update instead of training (the full
    /// 10,000-per-round run is `scenarios/replay-10k.json`, timed in docs/simulation.md).
    @Test func tenThousandClientsWithReplayedUpdates() throws {
        var s = Scenario()
        s.clients = 10_000
        s.rounds = 1
        s.reportsPerRound = 1_000
        s.train = false
        s.deadlineSeconds = 120
        let update = try Self.replayUpdate()
        let run = try Simulator(scenario: s, digits: nil, replay: update).run(pipeline: "topk 0.1% | int4 | lz4")
        let r = run.rounds[0]
        #expect(r.selected == 1_300)
        #expect(r.reported == 1_000)
        #expect(r.accuracy == nil)
    }

    static func replayUpdate() throws -> [Float] {
        try Fixtures.safetensors("updates/mlp-digits-r6-c61.safetensors").values
    }
}
