extension Array {
    /// Moves a uniform sample of `k` elements, without replacement, to the front (the first `k`
    /// steps of a Fisher–Yates shuffle; index `i + ⌊next() × (count − i) / 2⁶⁴⌋`, so a SplitMix64
    /// gives the same draws as `SplitMix64.below`). The selection of both round drivers.
    mutating func shuffleFirst<G: RandomNumberGenerator>(_ k: Int, using rng: inout G) {
        for i in 0..<Swift.min(k, count) {
            swapAt(i, i + Int(rng.next().multipliedFullWidth(by: UInt64(count - i)).high))
        }
    }
}
