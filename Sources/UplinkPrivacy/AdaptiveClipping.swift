import UplinkCodec

/// Adaptive clipping (Andrew, Thakkar, McMahan and Ramaswamy 2021, "Differentially Private
/// Learning with Adaptive Clipping"), with TensorFlow Privacy's quantile estimator: each round
/// the server releases a noised *centred* count of the clients whose update was within the
/// bound, `Σ (1[‖Δᵢ‖ ≤ C] − ½) + N(0, σ_b²)`, estimates the fraction below the bound as
/// `b̄ = released / m + ½`, and moves the bound geometrically toward the target quantile γ:
/// `C ← C · exp(−η (b̄ − γ))`.
///
/// Why centred: adding or removing one client moves `Σ (bᵢ − ½)` by exactly ½ whatever its
/// norm (``countSensitivity``), where the raw count `Σ bᵢ` moves by 1. The count and the clipped
/// sum (sensitivity C, noise z_Δ·C) are released on the same sample, so together they are one
/// Gaussian mechanism whose multiplier is the noise over the L2 sensitivity of the pair:
/// `z = ((1/z_Δ)² + (½/σ_b)²)^(−1/2) = (z_Δ⁻² + (2σ_b)⁻²)^(−1/2)`; for a target z the sum's
/// multiplier is therefore `z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2)`, which exists for z < 2σ_b.
public struct AdaptiveClipping: Sendable, Hashable {
    /// The change one client's presence makes to the released count: ½, because the count is of
    /// `1[‖Δᵢ‖ ≤ C] − ½`, which is ±½ for every client.
    public static let countSensitivity = 0.5

    /// The current bound C.
    public private(set) var clip: Double
    /// The target quantile γ of update norms.
    public var targetQuantile: Double
    /// The geometric learning rate η.
    public var learningRate: Double
    /// The expected number of clients per round m: the denominator of the estimate.
    public var expectedClients: Double
    /// Standard deviation σ_b of the noise on the centred count.
    public var countNoise: Double

    /// Starts at `initialClip`; σ_b defaults to m/20 as in TFF.
    public init(initialClip: Double, targetQuantile: Double = 0.5, learningRate: Double = 0.2, expectedClients: Double) {
        self.clip = initialClip
        self.targetQuantile = targetQuantile
        self.learningRate = learningRate
        self.expectedClients = expectedClients
        self.countNoise = expectedClients / 20
    }

    /// The noise multiplier left for the update sum when the sum and the count together must be
    /// one Gaussian mechanism with multiplier `z`: `(z⁻² − (σ_b / ½)⁻²)^(−1/2)`.
    /// - Throws: ``UplinkError/Code/invalidArgument`` when z ≥ 2σ_b (the count alone would spend it).
    public func valueNoiseMultiplier(total z: Double) throws(UplinkError) -> Double {
        let countShare = Self.countSensitivity / countNoise
        let inner = 1 / (z * z) - countShare * countShare
        guard inner > 0 else {
            throw UplinkError(.invalidArgument, "noise multiplier \(z) is too large for count noise σ_b = \(countNoise): need z < 2σ_b")
        }
        return 1 / inner.squareRoot()
    }

    /// The multiplier of the pair (sum with multiplier `zValue`, count with noise σ_b): the
    /// inverse of the L2 norm of (sensitivity ÷ noise) over the two releases.
    public func combinedNoiseMultiplier(valueNoiseMultiplier zValue: Double) -> Double {
        let countShare = Self.countSensitivity / countNoise
        return 1 / (1 / (zValue * zValue) + countShare * countShare).squareRoot()
    }

    /// What the round releases before noise: `Σ (1[‖Δᵢ‖ ≤ C] − ½)` over `norms`.
    public func centredCount(norms: [Double]) -> Double {
        var count = 0.0
        for norm in norms { count += norm <= clip ? 0.5 : -0.5 }
        return count
    }

    /// The noised centred count, `centredCount(norms) + N(0, σ_b²)`: the value that leaves the server.
    public func releasedCount<G: RandomNumberGenerator>(norms: [Double], using rng: inout G) -> Double {
        var noise = [Double](repeating: 0, count: 1)
        noise.withUnsafeMutableBufferPointer { GaussianNoise.add(to: $0, sigma: countNoise, using: &rng) }
        return centredCount(norms: norms) + noise[0]
    }

    /// Updates the bound from this round's norms (`norms` of the accepted updates) and returns
    /// the estimated fraction below the old bound, b̄.
    @discardableResult
    public mutating func update<G: RandomNumberGenerator>(norms: [Double], using rng: inout G) -> Double {
        let fraction = releasedCount(norms: norms, using: &rng) / expectedClients + 0.5
        clip *= LibM.exp(-learningRate * (fraction - targetQuantile))
        return fraction
    }
}
