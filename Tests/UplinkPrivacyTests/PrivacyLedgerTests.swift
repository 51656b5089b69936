import Foundation
import Testing
import UplinkAggregation
import UplinkCodec
import UplinkPrivacy
import UplinkTestSupport

/// The round's releases (the noised clipped sum and, with adaptive clipping, the noised count)
/// measured from the code that makes them, and the ledger that accounts them.
@Suite struct PrivacyLedgerTests {
    static func norm(_ x: [Float]) -> Double { x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

    /// Adding one client, below or above the bound, moves the released count by exactly ½: read
    /// off the clip's update, `C' = C·exp(−η(b̄ − γ))`, so with the same noise draw the released
    /// count m·b̄ differs by m·(log C'_a − log C'_b)/η.
    @Test func oneClientMovesTheReleasedCountByExactlyOneHalf() {
        var gen = SplitMix64(seed: 11)
        let m = 10.0
        for trial: UInt64 in 0..<300 {
            let norms = (0..<Int(gen.below(25))).map { _ in Double(gen.next() >> 11) * 0x1p-53 * 2 }
            let extra = Double(gen.next() >> 11) * 0x1p-53 * 2
            let start = AdaptiveClipping(initialClip: 1, targetQuantile: 0.5, expectedClients: m)
            var without = start, with = start
            var rngA = SplitMix64(seed: trial), rngB = rngA
            without.update(norms: norms, using: &rngA)
            with.update(norms: norms + [extra], using: &rngB)
            let moved = m * (log(without.clip) - log(with.clip)) / start.learningRate
            #expect(abs(abs(moved) - 0.5) < 1e-9, "norms \(norms), added \(extra): count moved by \(moved)")
            #expect(abs(start.centredCount(norms: norms + [extra]) - start.centredCount(norms: norms)) == AdaptiveClipping.countSensitivity)
        }
        #expect(AdaptiveClipping.countSensitivity == 0.5)
    }

    /// The count's noise has standard deviation σ_b = m/20 (200,000 draws: standard error 0.16%).
    @Test func countNoiseHasStandardDeviationSigmaB() {
        let clipping = AdaptiveClipping(initialClip: 1, expectedClients: 40)
        var rng = SplitMix64(seed: 2)
        let draws = (0..<200_000).map { _ in clipping.releasedCount(norms: [], using: &rng) }
        let mean = draws.reduce(0, +) / Double(draws.count)
        let sd = (draws.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(draws.count)).squareRoot()
        #expect(clipping.countNoise == 2)
        #expect(abs(sd / 2 - 1) < 0.01 && abs(mean) < 5 * 2 / Double(draws.count).squareRoot(), "sd \(sd), mean \(mean)")
    }

    /// The pair is one Gaussian mechanism with the requested multiplier: for each added client
    /// (far beyond the clip, just within it, small) the change of each release is measured with
    /// the same seeded noise, divided by the noise that release gets; the largest L2 norm of the
    /// two ratios over the clients is 1/z. (The client just within the clip is the worst case: it
    /// moves the sum by C and is counted.)
    @Test(arguments: [(10.0, 0.9), (100.0, 1.1), (40.0, 0.5), (1000.0, 3.0)])
    func sumAndCountAreOneGaussianMechanismOfMultiplierZ(m: Double, z: Double) throws {
        var ledger = try PrivacyLedger(settings: DPSettings(clip: 0.7, noiseMultiplier: z, adaptiveQuantile: 0.5, seed: 3), expectedClients: m)
        let round = try #require(try ledger.beginRound(samplingRate: 0.1))
        let clipping = try #require(ledger.adaptive)
        let layout = try ModelLayout(name: "w", count: 64)
        func releasedSum(_ updates: [[Float]]) throws -> [Float] {
            let dp = CentralDP(clip: round.clip, noiseMultiplier: round.sumNoiseMultiplier, expectedClients: m, seed: round.noiseSeed)
            let aggregator = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1, centralDP: dp))
            for (i, u) in updates.enumerated() {
                var encoder = FrameEncoder(layout: layout, pipeline: Pipeline())
                try aggregator.submit(try encoder.encode(u, round: 1, sampleCount: UInt64(i + 1)), clientID: "c\(i)")
            }
            let result = try aggregator.close()
            var mean = [Float](repeating: 0, count: 64)
            mean.withUnsafeMutableBufferPointer { result.delta(0..<64, into: $0) }
            return mean
        }
        let others = (0..<9).map { TestData.heavyTailed(count: 64, seed: UInt64($0 + 1), scale: 0.01) }
        let direction = TestData.heavyTailed(count: 64, seed: 99, scale: 1)
        let withinClip = direction.map { $0 * Float(round.clip * (1 - 1e-6) / Self.norm(direction)) }
        let base = try releasedSum(others)
        var worst = 0.0
        for added in [[Float](repeating: 100, count: 64), withinClip, others[0]] {
            let moved = try releasedSum(others + [added])
            // The released value is sum / m, so the sum moved by m × the mean's change.
            let sumChange = m * zip(base, moved).reduce(0.0) { $0 + Double($1.1 - $1.0) * Double($1.1 - $1.0) }.squareRoot()
            #expect(sumChange <= round.clip * (1 + 1e-5), "sum moved by \(sumChange), clip \(round.clip)")
            var rngA = SplitMix64(seed: 5), rngB = rngA
            let countChange = abs(clipping.releasedCount(norms: others.map(Self.norm) + [Self.norm(added)], using: &rngB)
                                  - clipping.releasedCount(norms: others.map(Self.norm), using: &rngA))
            #expect(abs(countChange - AdaptiveClipping.countSensitivity) < 1e-12, "count moved by \(countChange)")
            let sumRatio = sumChange / (round.sumNoiseMultiplier * round.clip), countRatio = countChange / clipping.countNoise
            worst = max(worst, (sumRatio * sumRatio + countRatio * countRatio).squareRoot())
        }
        #expect(abs(1 / worst / z - 1) < 1e-4, "pair multiplier \(1 / worst) for z = \(z)")
        #expect(abs(clipping.combinedNoiseMultiplier(valueNoiseMultiplier: round.sumNoiseMultiplier) - z) < 1e-12)
    }

    /// m = 10, z = 0.9, q = 0.1, 50 rounds with adaptive clipping: the ledger reports the ε of one
    /// Gaussian mechanism of multiplier 0.9 a round, 7.2507 (dp_accounting 0.6.0: 7.25071033).
    /// The raw 0/1 count with the same split would have made the pair's multiplier 0.486 and the
    /// true ε 27.72.
    @Test func adaptiveClippingSpendsTheEpsilonOfZ() throws {
        var ledger = try PrivacyLedger(settings: DPSettings(clip: 1, noiseMultiplier: 0.9, adaptiveQuantile: 0.5, seed: 1), expectedClients: 10)
        var rng = SplitMix64(seed: 4)
        for _ in 0..<50 {
            _ = try #require(try ledger.beginRound(samplingRate: 0.1))
            ledger.finishRound(norms: (0..<Int(rng.below(11))).map { _ in Double(rng.next() >> 11) * 0x1p-53 * 2 })
        }
        #expect(abs(ledger.epsilon / 7.2507103304 - 1) < 1e-3, "ε \(ledger.epsilon)")
        // 50 single steps against one 50-step composition: equal up to rounding of the sums.
        #expect(abs(ledger.epsilon / (try RDPAccountant.epsilon(noiseMultiplier: 0.9, samplingRate: 0.1, steps: 50, delta: 1e-5)).epsilon - 1) < 1e-12)
        #expect(ledger.rounds == 50 && ledger.summary.maxSamplingRate == 0.1)
    }

    /// The round that would exceed the budget is refused and spends nothing; an empty sample costs nothing.
    @Test func budgetStopsBeforeTheRoundThatWouldExceedIt() throws {
        let three = try RDPAccountant.epsilon(noiseMultiplier: 1, samplingRate: 0.2, steps: 3, delta: 1e-5).epsilon
        var ledger = try PrivacyLedger(settings: DPSettings(clip: 1, noiseMultiplier: 1, epsilonBudget: three * (1 + 1e-9)), expectedClients: 5)
        for _ in 0..<3 { #expect(try ledger.beginRound(samplingRate: 0.2) != nil) }
        let free = try #require(try ledger.beginRound(samplingRate: 0))
        #expect(free.epsilon == three && ledger.rounds == 4)
        #expect(try ledger.beginRound(samplingRate: 0.2) == nil)
        #expect(ledger.epsilon == three && ledger.rounds == 4)
        #expect(abs(ledger.summary.meanSamplingRate - 0.15) < 1e-12 && ledger.summary.maxSamplingRate == 0.2)
    }

    @Test func badSettingsAreRefused() {
        for (settings, m) in [
            (DPSettings(clip: 0, noiseMultiplier: 1), 10.0), (DPSettings(clip: 1, noiseMultiplier: -1), 10),
            (DPSettings(clip: 1, noiseMultiplier: 1, delta: 1), 10), (DPSettings(clip: 1, noiseMultiplier: 1, epsilonBudget: 0), 10),
            (DPSettings(clip: 1, noiseMultiplier: 1, adaptiveQuantile: 1), 10), (DPSettings(clip: 1, noiseMultiplier: 1), 0),
            (DPSettings(clip: 1, noiseMultiplier: 1, adaptiveQuantile: 0.5), 10),  // z = 1 ≥ 2σ_b = 1
        ] {
            #expect { try PrivacyLedger(settings: settings, expectedClients: m) } throws: { ($0 as? UplinkError)?.code == .invalidArgument }
        }
        var ledger = try! PrivacyLedger(settings: DPSettings(clip: 1, noiseMultiplier: 1), expectedClients: 10)
        #expect { try ledger.beginRound(samplingRate: 1.5) } throws: { ($0 as? UplinkError)?.code == .invalidArgument }
    }

    /// Seeded: SplitMix64's stream; unseeded: the secure generator, which no seed reproduces.
    @Test func privacyRandomnessIsSecretUnlessSeeded() {
        var seeded = PrivacyRandomness(seed: 9, round: 2), reference = SplitMix64(seed: 9, round: 2)
        #expect(!seeded.isSecret && (0..<8).map { _ in seeded.next() } == (0..<8).map { _ in reference.next() })
        var a = PrivacyRandomness(seed: nil), b = PrivacyRandomness(seed: nil)
        #expect(a.isSecret && (0..<4).map { _ in a.next() } != (0..<4).map { _ in b.next() })
        let seededRun = try! PrivacyLedger(settings: DPSettings(clip: 1, noiseMultiplier: 1, seed: 1), expectedClients: 10).summary
        #expect(seededRun.jsonObject["randomness"] as? String == "seeded" && seededRun.randomnessNote.hasPrefix("ε assumes a secret client sample"))
        var secretLedger = try! PrivacyLedger(settings: DPSettings(clip: 1, noiseMultiplier: 1), expectedClients: 10)
        #expect(secretLedger.summary.jsonObject["randomness"] as? String == "secret" && secretLedger.summary.secretRandomness)
        // The sum's noise: the aggregator's secure generator without a seed, a per-round seed with one.
        #expect(try! secretLedger.beginRound(samplingRate: 0.1)!.noiseSeed == nil)
        var seededLedger = try! PrivacyLedger(settings: DPSettings(clip: 1, noiseMultiplier: 1, seed: 40), expectedClients: 10)
        #expect(try! seededLedger.beginRound(samplingRate: 0.1)!.noiseSeed == 41 && (try! seededLedger.beginRound(samplingRate: 0.1)!.noiseSeed) == 42)
    }
}
