import UplinkCodec

/// Central DP settings of a run (DP-FedAvg, McMahan et al. 2018): the clip, the noise
/// multiplier of each round's Gaussian mechanism, optional adaptive clipping, δ, an ε budget
/// and where the randomness comes from.
public struct DPSettings: Sendable, Hashable {
    /// The (initial) clip bound C.
    public var clip: Double
    /// The noise multiplier z of each round's Gaussian mechanism (count and sum together when adaptive).
    public var noiseMultiplier: Double
    /// Target quantile for adaptive clipping; `nil` keeps C fixed.
    public var adaptiveQuantile: Double?
    /// δ for the reported ε.
    public var delta: Double
    /// Stop before the round that would take ε above this.
    public var epsilonBudget: Double?
    /// Seed for the client sample and the noise (reproducible runs); `nil`, the default, uses the
    /// system's secure generator, which the reported ε assumes (``PrivacyRandomness``).
    public var seed: UInt64?

    /// Settings; everything but C and z has a default.
    public init(clip: Double, noiseMultiplier: Double, adaptiveQuantile: Double? = nil, delta: Double = 1e-5, epsilonBudget: Double? = nil, seed: UInt64? = nil) {
        self.clip = clip
        self.noiseMultiplier = noiseMultiplier
        self.adaptiveQuantile = adaptiveQuantile
        self.delta = delta
        self.epsilonBudget = epsilonBudget
        self.seed = seed
    }
}

/// The privacy side of a DP-FedAvg run, one round at a time, shared by every round driver
/// (`uplink train`, `uplink simulate`): the RDP accountant, the budget stop, the split of the
/// noise between the clipped sum and the adaptive-clipping count, and the clip's update.
///
/// A round is accounted before it runs (``beginRound(samplingRate:)``, which refuses the round
/// that would exceed the budget) and the clip adapts after it (``finishRound(norms:)``). Each
/// round is accounted as one Poisson-subsampled Gaussian mechanism with the configured z at the
/// sampling rate the driver gives, which must bound every client's probability of being in
/// that round's aggregate (docs/privacy.md).
public struct PrivacyLedger: Sendable {
    /// What one round releases and what it costs.
    public struct Round: Sendable, Hashable {
        /// The bound C every update is clipped to.
        public var clip: Double
        /// The noise multiplier of the sum alone, z_Δ: the sum gets N(0, (z_Δ·C)²) per coordinate.
        /// z itself with a fixed clip; larger with adaptive clipping, whose count takes a share.
        public var sumNoiseMultiplier: Double
        /// The sampling rate the round was accounted at.
        public var samplingRate: Double
        /// ε after this round.
        public var epsilon: Double
        /// The seed for the sum's noise, `nil` for the secure generator.
        public var noiseSeed: UInt64?
    }

    /// The settings.
    public let settings: DPSettings
    /// The expected clients per round m (the fixed denominator).
    public let expectedClients: Double
    /// The adaptive clip state, `nil` with a fixed clip.
    public private(set) var adaptive: AdaptiveClipping?
    /// ε spent so far at δ.
    public private(set) var epsilon = 0.0
    /// Rounds accounted.
    public private(set) var rounds = 0
    /// The largest sampling rate accounted.
    public private(set) var maxSamplingRate = 0.0
    private var samplingRateSum = 0.0
    private var accountant = RDPAccountant()
    /// One round's RDP curve by sampling rate: a simulation's rates take few distinct values.
    private var stepCurves: [Double: RDPAccountant] = [:]
    private var countRandomness: PrivacyRandomness
    private let sumNoiseMultiplier: Double

    /// A ledger with nothing spent.
    /// - Throws: ``UplinkError/Code/invalidArgument`` for C or z ≤ 0, δ outside (0, 1), a
    ///   quantile outside (0, 1), a budget ≤ 0, m ≤ 0, or (adaptive) z ≥ 2σ_b.
    public init(settings: DPSettings, expectedClients m: Double) throws(UplinkError) {
        guard settings.clip > 0, settings.clip.isFinite else { throw UplinkError(.invalidArgument, "DP clip must be > 0, got \(settings.clip)") }
        guard settings.noiseMultiplier > 0, settings.noiseMultiplier.isFinite else {
            throw UplinkError(.invalidArgument, "DP noise multiplier must be > 0, got \(settings.noiseMultiplier)")
        }
        guard settings.delta > 0, settings.delta < 1 else { throw UplinkError(.invalidArgument, "δ must be in (0, 1), got \(settings.delta)") }
        guard m >= 1, m.isFinite else { throw UplinkError(.invalidArgument, "expected clients per round must be ≥ 1, got \(m)") }
        if let b = settings.epsilonBudget, !(b > 0) { throw UplinkError(.invalidArgument, "ε budget must be > 0, got \(b)") }
        self.settings = settings
        self.expectedClients = m
        if let q = settings.adaptiveQuantile {
            guard q > 0, q < 1 else { throw UplinkError(.invalidArgument, "adaptive clipping quantile must be in (0, 1), got \(q)") }
            let clipping = AdaptiveClipping(initialClip: settings.clip, targetQuantile: q, expectedClients: m)
            sumNoiseMultiplier = try clipping.valueNoiseMultiplier(total: settings.noiseMultiplier)
            adaptive = clipping
        } else {
            sumNoiseMultiplier = settings.noiseMultiplier
        }
        countRandomness = PrivacyRandomness(seed: settings.seed.map { $0 ^ 0x434C_4950 })
    }

    /// Accounts the next round at sampling rate `q` (0 when no client can be in the round: its
    /// release is pure noise and costs nothing). Returns the round's clip and noise, or `nil`
    /// when ε would exceed the budget; then nothing is spent and the run must stop.
    public mutating func beginRound(samplingRate q: Double) throws(UplinkError) -> Round? {
        guard q >= 0, q <= 1 else { throw UplinkError(.invalidArgument, "sampling rate must be in [0, 1], got \(q)") }
        var next = accountant
        if q > 0 {
            if stepCurves[q] == nil {
                var step = RDPAccountant()
                try step.compose(noiseMultiplier: settings.noiseMultiplier, samplingRate: q, steps: 1)
                stepCurves[q] = step
            }
            next.compose(stepCurves[q]!)
        }
        let eps = try next.epsilon(delta: settings.delta).epsilon
        if let budget = settings.epsilonBudget, eps > budget { return nil }
        accountant = next
        epsilon = eps
        rounds += 1
        samplingRateSum += q
        maxSamplingRate = max(maxSamplingRate, q)
        return Round(clip: adaptive?.clip ?? settings.clip, sumNoiseMultiplier: sumNoiseMultiplier, samplingRate: q, epsilon: eps,
                     noiseSeed: settings.seed.map { $0 &+ UInt64(rounds) })
    }

    /// Moves an adaptive clip from the norms of the updates the round aggregated (a fixed clip
    /// ignores them).
    public mutating func finishRound(norms: [Double]) {
        adaptive?.update(norms: norms, using: &countRandomness)
    }

    /// What has been spent, for reports.
    public var summary: PrivacySummary {
        PrivacySummary(epsilon: epsilon, delta: settings.delta, noiseMultiplier: settings.noiseMultiplier, rounds: rounds,
                       maxSamplingRate: maxSamplingRate, meanSamplingRate: rounds == 0 ? 0 : samplingRateSum / Double(rounds),
                       adaptiveClipping: adaptive != nil, secretRandomness: settings.seed == nil)
    }
}

/// The privacy guarantee of a finished run, as reports state it.
public struct PrivacySummary: Sendable, Codable, Hashable {
    /// ε spent at ``delta``.
    public var epsilon: Double
    /// δ.
    public var delta: Double
    /// The noise multiplier z of each round's mechanism.
    public var noiseMultiplier: Double
    /// Rounds accounted.
    public var rounds: Int
    /// The largest and the mean sampling rate accounted.
    public var maxSamplingRate: Double
    public var meanSamplingRate: Double
    /// Whether the clip adapted.
    public var adaptiveClipping: Bool
    /// Whether the sample and the noise came from the secure generator (no seed).
    public var secretRandomness: Bool

    /// One sentence on where the sample and the noise came from, and what that means for ε.
    public var randomnessNote: String {
        secretRandomness
            ? "client sample and noise from the system's secure generator, as the accountant assumes"
            : "ε assumes a secret client sample and secret noise, but this run's sample and noise are reproducible from its seeds (anyone with them can recompute the sample and remove the noise)"
    }

    /// The summary as JSON-ready values (snake_case keys).
    public var jsonObject: [String: Any] {
        ["epsilon": epsilon, "delta": delta, "noise_multiplier": noiseMultiplier, "rounds": rounds,
         "max_sampling_rate": maxSamplingRate, "mean_sampling_rate": meanSamplingRate, "adaptive_clipping": adaptiveClipping,
         "randomness": secretRandomness ? "secret" : "seeded", "randomness_note": randomnessNote]
    }
}
