extension Sparsifier {
    /// The positions (increasing) this sparsifier keeps from `values`, a whole update of `layout`.
    func select(_ values: UnsafeBufferPointer<Float>, layout: ModelLayout, round: UInt64) -> [Int] {
        let n = values.count
        var out: [Int] = []
        func perTensor(_ body: (UnsafeBufferPointer<Float>, Int, Int) -> Void, amount: SparsityAmount) {
            let f = amount.fraction(of: n)
            for (t, count) in layout.elementCounts.enumerated() where count > 0 {
                let start = layout.offsets[t]
                let slice = UnsafeBufferPointer(rebasing: values[start..<(start + count)])
                body(slice, SparsityAmount.fraction(f).k(of: count), start)
            }
        }
        switch self {
        case .topK(let a, .global):
            TopKSelection.exact(values, k: a.k(of: n), base: 0, into: &out)
        case .topK(let a, .tensor):
            perTensor({ TopKSelection.exact($0, k: $1, base: $2, into: &out) }, amount: a)
        case .sampledTopK(let a, .global, let sample):
            TopKSelection.sampled(values, k: a.k(of: n), sampleFraction: sample, base: 0, into: &out)
        case .sampledTopK(let a, .tensor, let sample):
            perTensor({ TopKSelection.sampled($0, k: $1, sampleFraction: sample, base: $2, into: &out) }, amount: a)
        case .randomK(let a, let seed):
            out = RandomKSelection.indices(n: n, k: a.k(of: n), seed: seed, round: round)
        case .threshold(let tau):
            TopKSelection.threshold(values, tau: Float(tau), base: 0, into: &out)
        }
        return out
    }
}
