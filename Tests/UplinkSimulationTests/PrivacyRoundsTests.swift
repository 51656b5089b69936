import Foundation
import Testing
import UplinkCodec
import UplinkPrivacy
@testable import UplinkSimulation
import UplinkTestSupport

/// The round drivers' side of the guarantee: the rate each round is accounted at bounds every
/// client's chance of being aggregated, and the sample is secret unless the run is seeded.
@Suite struct PrivacyRoundsTests {
    static let digits = try! Digits.load(path: Fixtures.url("digits/digits.csv.gz").path)

    /// 20 clients, half on 3G and half on Wi-Fi, K = 2 of ⌈2 × 1.5⌉ = 3 selected, with a replayed
    /// update: the first two reports are mostly Wi-Fi's.
    static func overSelected(rounds: Int, dpSeed: UInt64?) -> Scenario {
        var s = Scenario()
        s.clients = 20
        s.reportsPerRound = 2
        s.overSelection = 1.5
        s.population = [Scenario.Group(profile: "3G", share: 1), Scenario.Group(profile: "WiFi", share: 1)]
        s.train = false
        s.width = 4
        s.rounds = rounds
        s.pipelines = ["fp32 | stored"]
        s.dpClip = 1
        s.dpNoise = 1
        s.dpSeed = dpSeed
        return s
    }

    static func replay(width: Int) -> [Float] { [Float](repeating: 0.01, count: MLP.digits(width: width).layout.parameterCount) }

    /// Over-selection with first-K acceptance aggregates Wi-Fi clients 13.8% of rounds where
    /// K/N is 10%; each round is accounted at selected/online (19% on average), which bounds it.
    @Test func accountedRateBoundsEveryNetworksInclusionRate() throws {
        let s = Self.overSelected(rounds: 600, dpSeed: 1)
        let sim = try Simulator(scenario: s, digits: nil, replay: Self.replay(width: 4))
        let run = try sim.run(pipeline: "fp32 | stored")
        #expect(run.rounds.count == 600)
        #expect(run.rounds.allSatisfy { $0.samplingRate == Double($0.selected) / Double($0.online) && $0.reported <= $0.selected })
        let privacy = try #require(run.privacy)
        let rates = run.rounds.map { $0.samplingRate! }
        #expect(abs(privacy.meanSamplingRate - rates.reduce(0, +) / 600) < 1e-12 && privacy.maxSamplingRate == rates.max())
        let members = Dictionary(grouping: sim.clients, by: \.profile).mapValues(\.count)
        for (profile, count) in members {
            let included = Double(run.rounds.reduce(0) { $0 + ($1.reportedByProfile[profile] ?? 0) }) / Double(600 * count)
            // 6,000 client-rounds per network: the estimate's standard error is below 0.5 points.
            #expect(included + 0.02 <= privacy.meanSamplingRate, "\(profile): included \(included), accounted \(privacy.meanSamplingRate)")
        }
        let wifi = Double(run.rounds.reduce(0) { $0 + ($1.reportedByProfile["WiFi"] ?? 0) }) / Double(600 * members["WiFi"]!)
        #expect(wifi > 0.12)  // the bias is there: K/N = 0.1 would understate it
        var accountant = RDPAccountant()
        for q in rates { try accountant.compose(noiseMultiplier: 1, samplingRate: q, steps: 1) }
        #expect(abs(privacy.epsilon / (try accountant.epsilon(delta: 1e-5).epsilon) - 1) < 1e-12)
        #expect(run.rounds.last!.epsilon == privacy.epsilon)
    }

    /// Without a DP seed the selection is the secure generator's: two runs select differently
    /// (the online sets, which do not depend on anyone's data, stay seeded); with one it is the
    /// scenario seed's, the same as without DP.
    @Test func simulatorSelectionIsSecretUnlessSeeded() throws {
        let update = Self.replay(width: 4)
        func selections(_ s: Scenario) throws -> (rows: [[String: Int]], online: [Int], privacy: PrivacySummary?) {
            let run = try Simulator(scenario: s, digits: nil, replay: update).run(pipeline: "fp32 | stored")
            return (run.rounds.map(\.selectedByProfile), run.rounds.map(\.online), run.privacy)
        }
        let secret = Self.overSelected(rounds: 30, dpSeed: nil)
        let a = try selections(secret), b = try selections(secret)
        #expect(a.rows != b.rows && a.online == b.online)
        #expect(a.privacy?.secretRandomness == true)
        var plain = secret
        plain.dpClip = nil
        plain.dpNoise = nil
        let reference = try selections(plain)
        let seeded = try selections(Self.overSelected(rounds: 30, dpSeed: 7))
        #expect(seeded.rows == reference.rows && seeded.privacy?.secretRandomness == false && reference.privacy == nil)
        #expect(a.rows != reference.rows)
    }

    /// The same for `uplink train`: unseeded DP selections come from the secure generator; a DP
    /// seed makes them the seed's (`selection(round:)`).
    @Test func trainingSelectionIsSecretUnlessSeeded() throws {
        var config = FederatedConfig()
        config.clients = 20
        config.rounds = 4
        config.fraction = 0.25
        config.model = .mlp(width: 4)
        config.dp = DPSettings(clip: 1, noiseMultiplier: 1)
        let run = try FederatedTraining(config: config, train: Self.digits.train, test: Self.digits.test)
        let seededSelections = (1...4).map { run.selection(round: $0) }
        let a = try run.run().reports, b = try run.run().reports
        #expect(a.map(\.clients) != b.map(\.clients) && a.map(\.clients) != seededSelections)
        #expect(a.allSatisfy { $0.clients.count == 5 && Set($0.clients).count == 5 && $0.privacy?.secretRandomness == true })
        config.dp!.seed = 3
        let seeded = try FederatedTraining(config: config, train: Self.digits.train, test: Self.digits.test).run().reports
        #expect(seeded.map(\.clients) == seededSelections && seeded.last!.privacy?.secretRandomness == false)
        #expect(seeded.last!.privacy?.maxSamplingRate == 0.25)
    }
}
