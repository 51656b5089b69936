extension Simulator {
    /// A client's byte budget: what `bitsPerSecond` moves in `seconds`, with a 20% margin.
    /// Clamped to 0…2⁶², so no rate or deadline, however extreme, traps the conversion to `Int`;
    /// no time left (or a rate that is zero or NaN) is a budget of 0.
    static func byteBudget(seconds: Double, bitsPerSecond: Double) -> Int {
        guard seconds > 0, bitsPerSecond > 0 else { return 0 }
        let bytes = seconds * bitsPerSecond / 8 * 0.8
        return bytes < 0x1p62 ? Int(bytes) : 1 << 62
    }
}
