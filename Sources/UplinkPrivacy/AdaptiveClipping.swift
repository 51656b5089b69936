import UplinkCodec

/// Adaptive clipping (Andrew, Thakkar, McMahan and Ramaswamy 2021, "Differentially Private
/// Learning with Adaptive Clipping"), with TensorFlow Federated's semantics: each round the
/// server releases a noised count of the clients whose update was within the bound,
/// `b̄ = (Σ 1[‖Δᵢ‖ ≤ C] + N(0, σ_b²)) / m`, and moves the bound geometrically toward the
/// target quantile γ: `C ← C · exp(−η (b̄ − γ))`. The count and the clipped sum are one Gaussian
/// mechanism: with value noise multiplier z_Δ and count noise σ_b the combined multiplier is
/// `z = (z_Δ⁻² + (2σ_b)⁻²)^(−1/2)`, so for a target z the value noise is
/// `z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2)`.
public struct AdaptiveClipping: Sendable, Hashable {
    /// The current bound C.
    public private(set) var clip: Double
    /// The target quantile γ of update norms.
    public var targetQuantile: Double
    /// The geometric learning rate η.
    public var learningRate: Double
    /// Standard deviation σ_b of the noise on the unclipped count.
    public var countNoise: Double

    /// Starts at `initialClip`; σ_b defaults to m/20 as in TFF.
    public init(initialClip: Double, targetQuantile: Double = 0.5, learningRate: Double = 0.2, expectedClients: Double) {
        self.clip = initialClip
        self.targetQuantile = targetQuantile
        self.learningRate = learningRate
        self.countNoise = expectedClients / 20
    }

    /// The noise multiplier left for the update sum when the whole round must be one Gaussian
    /// mechanism with multiplier `z`.
    public func valueNoiseMultiplier(total z: Double) throws(UplinkError) -> Double {
        let inner = 1 / (z * z) - 1 / (4 * countNoise * countNoise)
        guard inner > 0 else {
            throw UplinkError(.invalidArgument, "noise multiplier \(z) is too large for count noise σ_b = \(countNoise): need z < 2σ_b")
        }
        return 1 / inner.squareRoot()
    }

    /// Updates the bound from this round's norms (`norms` of the accepted updates).
    public mutating func update<G: RandomNumberGenerator>(norms: [Double], expectedClients m: Double, using rng: inout G) {
        let below = Double(norms.filter { $0 <= clip }.count)
        var noise = [Double](repeating: 0, count: 1)
        noise.withUnsafeMutableBufferPointer { GaussianNoise.add(to: $0, sigma: countNoise, using: &rng) }
        let fraction = (below + noise[0]) / m
        clip *= LibM.exp(-learningRate * (fraction - targetQuantile))
    }
}

