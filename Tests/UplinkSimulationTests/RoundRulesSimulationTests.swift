import Foundation
import Testing
@testable import UplinkSimulation
import UplinkCodec
import UplinkTestSupport

/// The simulator's rounds follow the coordinator's `RoundMachine`: abandonment below the
/// minimum fraction, and the central-DP release of an empty round.
@Suite struct RoundRulesSimulationTests {
    static let digits = SimulatorTests.digits

    /// Fast links, a short deadline and many dropouts (a client quits at a uniform time in the
    /// round, often before its upload is done): 7 selected for K = 5, so some rounds end at the
    /// deadline with fewer than 5 reports. Frames of `fp32 | stored` have one size whatever the model,
    /// so every network event is the same in every run of this scenario.
    static func flaky() -> Scenario {
        var s = SimulatorTests.small()
        s.rounds = 10
        s.deadlineSeconds = 2
        s.population = [Scenario.Group(profile: "WiFi", share: 1, availability: 1, dropout: 0.6)]
        return s
    }

    /// With `minimumReportFraction` 1 a round short of K at its deadline is abandoned and the
    /// model stays as it was (the accuracy repeats); everything the network did is the same as
    /// with the default 0, under which no round with reports is abandoned.
    @Test func roundsShortOfTheMinimumAreAbandonedAndKeepTheModel() throws {
        var strict = Self.flaky()
        strict.minimumReportFraction = 1
        let lenient = try Simulator(scenario: Self.flaky(), digits: Self.digits).run(pipeline: "fp32 | stored").rounds
        let rounds = try Simulator(scenario: strict, digits: Self.digits).run(pipeline: "fp32 | stored").rounds
        #expect(rounds.contains { $0.abandoned && $0.reported > 0 }, "no round was short: \(rounds.map(\.reported))")
        #expect(rounds.contains { !$0.abandoned })
        for (i, r) in rounds.enumerated() {
            let l = lenient[i]
            #expect(r.abandoned == (r.reported > 0 && r.reported < 5))
            #expect(!l.abandoned)
            let network: (SimulatedRound) -> [Int] = { [$0.selected, $0.reported, $0.droppedDeadline, $0.droppedDropout, $0.bytesUp, $0.bytesDown, $0.acceptedBytes] }
            #expect(network(r) == network(l))
            #expect(r.uploadTimes == l.uploadTimes && r.duration == l.duration)
            if r.reported < 5, i > 0 { #expect(r.accuracy == rounds[i - 1].accuracy, "round \(r.round) changed the model") }
        }
        #expect(rounds.map(\.accuracy) != lenient.map(\.accuracy))
    }

    /// The JSON results mark an abandoned round, and only then, and count them in the summary.
    @Test func abandonedRoundsAreMarkedInTheJSONResults() throws {
        var strict = Self.flaky()
        strict.minimumReportFraction = 1
        let run = try Simulator(scenario: strict, digits: Self.digits).run(pipeline: "fp32 | stored")
        let json = try JSONSerialization.jsonObject(with: SimulationReport(scenario: "t", runs: [run]).json()) as! [String: Any]
        let pipeline = (json["pipelines"] as! [[String: Any]])[0]
        let rows = pipeline["rounds"] as! [[String: Any]]
        #expect(rows.map { $0["abandoned"] as? Bool } == run.rounds.map { $0.abandoned ? true : nil })
        #expect((pipeline["summary"] as! [String: Any])["abandoned_rounds"] as? Int == run.rounds.filter(\.abandoned).count)
        let lenient = try Simulator(scenario: Self.flaky(), digits: Self.digits).run(pipeline: "fp32 | stored")
        let plain = try JSONSerialization.jsonObject(with: SimulationReport(scenario: "t", runs: [lenient]).json()) as! [String: Any]
        let plainPipeline = (plain["pipelines"] as! [[String: Any]])[0]
        #expect((plainPipeline["rounds"] as! [[String: Any]]).allSatisfy { $0["abandoned"] == nil })
        #expect((plainPipeline["summary"] as! [String: Any])["abandoned_rounds"] == nil)
    }

    /// No upload fits the deadline, so every round is abandoned empty (and not marked, having no
    /// reports): without DP the model never moves; with central DP each round still releases its
    /// noise (the ledger charged it).
    @Test func emptyRoundsReleaseNoiseOnlyWithCentralDP() throws {
        var s = SimulatorTests.small()
        s.population = [Scenario.Group(profile: "3G", share: 1, availability: 1, dropout: 0)]
        s.profiles = [LinkProfile(name: "3G", uplinkMbps: 0.05, downlinkMbps: 10, spread: 0.01, rttMs: 100, variability: 0, outagesPerHour: 0, loss: 0)]
        s.deadlineSeconds = 1
        let plain = try Simulator(scenario: s, digits: Self.digits).run(pipeline: "fp32 | stored").rounds
        #expect(plain.allSatisfy { $0.reported == 0 && !$0.abandoned && $0.duration == 1 })
        #expect(Set(plain.map(\.accuracy)).count == 1)
        s.dpClip = 0.3; s.dpNoise = 1; s.dpSeed = 5
        let dp = try Simulator(scenario: s, digits: Self.digits).run(pipeline: "fp32 | stored").rounds
        #expect(dp.allSatisfy { $0.reported == 0 && !$0.abandoned })
        #expect(dp.contains { $0.accuracy != plain[0].accuracy }, "the noise was not released")
    }
}
