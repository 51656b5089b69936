/// SplitMix64 (Steele, Lea and Flood; Vigna's constants): the seeded generator behind random-k
/// indices and stochastic rounding. Its exact output is part of the wire contract for random-k
/// (a decoder must regenerate the same indices), so it is specified in `docs/wire-format.md`.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator state.
    public var state: UInt64

    /// A generator at `seed`.
    public init(seed: UInt64) { state = seed }

    /// A generator for `seed` in round `round`: `seed XOR (round × 0x9E3779B97F4A7C15 mod 2^64)`,
    /// so the same seed gives different draws each round.
    public init(seed: UInt64, round: UInt64) {
        state = seed ^ (round &* 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`: the high 64 bits of `next() × bound` (bias below 2^-64 × bound).
    @inlinable
    public mutating func below(_ bound: UInt64) -> UInt64 {
        next().multipliedFullWidth(by: bound).high
    }

    /// A float uniform in [0, 1) with 24 random bits.
    @inlinable
    public mutating func unitFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }
}
