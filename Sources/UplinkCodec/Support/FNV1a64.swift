/// 64-bit FNV-1a, used for the model fingerprint: trivial to reimplement in any language, and
/// good enough to tell model layouts apart. It is not a security mechanism; the frame also
/// carries the full tensor table when asked to, and a server compares layouts exactly.
public struct FNV1a64: Sendable {
    /// The FNV-1a 64-bit offset basis.
    public static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
    /// The FNV 64-bit prime.
    public static let prime: UInt64 = 0x0000_0100_0000_01B3

    /// The hash so far.
    public private(set) var value: UInt64 = FNV1a64.offsetBasis

    /// A hasher at the offset basis.
    public init() {}

    /// Mixes in `bytes`, one at a time: `h = (h XOR b) × prime mod 2^64`.
    public mutating func combine(_ bytes: some Sequence<UInt8>) {
        var h = value
        for b in bytes { h = (h ^ UInt64(b)) &* Self.prime }
        value = h
    }

    /// The hash of `bytes` alone.
    public static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h = FNV1a64()
        h.combine(bytes)
        return h.value
    }
}
