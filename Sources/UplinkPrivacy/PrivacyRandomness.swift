import UplinkCodec

/// The generator behind what a DP guarantee needs to be secret: which clients a round samples
/// and the noise it adds. Without a seed it is the system's cryptographically secure generator
/// (`getrandom(2)` on Linux, `arc4random` on Apple platforms), as amplification by sampling and
/// the Gaussian mechanism assume; with a seed it is SplitMix64, for tests and reproducible
/// studies, and then anyone who knows the seed can recompute the sample and remove the noise.
public struct PrivacyRandomness: RandomNumberGenerator, Sendable {
    private var seeded: SplitMix64?

    /// The secure generator for `seed == nil`, else SplitMix64 at `seed`.
    public init(seed: UInt64?) {
        seeded = seed.map { SplitMix64(seed: $0) }
    }

    /// The secure generator for `seed == nil`, else SplitMix64 at `seed` in `round` (see
    /// ``SplitMix64/init(seed:round:)``).
    public init(seed: UInt64?, round: UInt64) {
        seeded = seed.map { SplitMix64(seed: $0, round: round) }
    }

    /// Whether the draws come from the secure generator.
    public var isSecret: Bool { seeded == nil }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        if seeded != nil { return seeded!.next() }
        var system = SystemRandomNumberGenerator()
        return system.next()
    }
}
