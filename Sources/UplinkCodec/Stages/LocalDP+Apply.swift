extension LocalDP {
    /// The update clipped to L2 norm ≤ `clip` and, with a noise multiplier, plus N(0, (z·clip)²)
    /// per coordinate. The clip scale keeps a 10⁻⁶ relative margin, so float32 rounding can never
    /// leave the norm above the bound.
    public func apply(_ update: UnsafeBufferPointer<Float>, round: UInt64) -> [Float] {
        var out = Array(update)
        var squares = 0.0
        for v in out { squares += Double(v) * Double(v) }
        let norm = squares.squareRoot()
        if norm > clip {
            let scale = Float(clip / norm * (1 - 1e-6))
            for i in out.indices { out[i] *= scale }
        }
        if let z = noiseMultiplier {
            let sigma = z * clip
            if let seed {
                var rng = SplitMix64(seed: seed, round: round)
                GaussianNoise.add(to: &out, sigma: sigma, using: &rng)
            } else {
                var rng = SystemRandomNumberGenerator()  // getrandom(2) / arc4random: cryptographically secure
                GaussianNoise.add(to: &out, sigma: sigma, using: &rng)
            }
        }
        return out
    }
}

/// Gaussian noise by the Box–Muller transform, in double precision.
public enum GaussianNoise {
    /// Two independent N(0, σ²) draws.
    @inline(__always)
    static func pair<G: RandomNumberGenerator>(sigma: Double, using rng: inout G) -> (Double, Double) {
        let u1 = Double(rng.next() >> 11 | 1) * 0x1p-53
        let u2 = Double(rng.next() >> 11) * 0x1p-53
        let r = (-2 * LibM.log(u1)).squareRoot() * sigma
        let theta = 2 * Double.pi * u2
        return (r * LibM.cos(theta), r * LibM.sin(theta))
    }

    /// Adds independent N(0, σ²) to every element of `x`.
    public static func add<G: RandomNumberGenerator>(to x: inout [Float], sigma: Double, using rng: inout G) {
        for i in stride(from: 0, to: x.count, by: 2) {
            let (a, b) = pair(sigma: sigma, using: &rng)
            x[i] += Float(a)
            if i + 1 < x.count { x[i + 1] += Float(b) }
        }
    }

    /// Adds independent N(0, σ²) to every element of a double-precision `x`.
    public static func add<G: RandomNumberGenerator>(to x: UnsafeMutableBufferPointer<Double>, sigma: Double, using rng: inout G) {
        for i in stride(from: 0, to: x.count, by: 2) {
            let (a, b) = pair(sigma: sigma, using: &rng)
            x[i] += a
            if i + 1 < x.count { x[i + 1] += b }
        }
    }
}
