/// How many entries a sparsifier keeps: a fraction of the parameters or a count.
public enum SparsityAmount: Hashable, Sendable, CustomStringConvertible {
    /// A fraction in (0, 1]; `k = ⌊f·n + ½⌋`.
    case fraction(Double)
    /// An exact count; `k = min(count, n)`.
    case count(Int)

    /// The number of entries to keep out of `n`.
    public func k(of n: Int) -> Int {
        switch self {
        case .fraction(let f): min(n, Int((f * Double(n) + 0.5).rounded(.down)))
        case .count(let c): min(n, c)
        }
    }

    /// The fraction of `n` this amount stands for.
    func fraction(of n: Int) -> Double {
        switch self {
        case .fraction(let f): f
        case .count(let c): n == 0 ? 1 : min(1, Double(c) / Double(n))
        }
    }

    /// `1%`, `0.25%` or `1000`.
    public var description: String {
        switch self {
        case .fraction(let f):
            // Percent form when it reads back to the same Double, else the plain fraction.
            Double(shortest(f * 100)).map { $0 / 100 == f } == true ? "\(shortest(f * 100))%" : shortest(f)
        case .count(let c): String(c)
        }
    }

    /// Parses `1%`, `0.5%`, `0.01` (a fraction) or `1000` (a count).
    static func parse(_ text: String, stage: String) throws(UplinkError) -> SparsityAmount {
        if text.hasSuffix("%"), let p = Double(text.dropLast()), p > 0, p <= 100 {
            return .fraction(p / 100)
        }
        if let c = Int(text), c >= 1 { return .count(c) }
        if let f = Double(text), f > 0, f <= 1, !text.allSatisfy(\.isNumber) { return .fraction(f) }
        throw UplinkError(
            .pipelineBadParameter,
            "stage \"\(stage)\": \(UplinkError.quoted(text)) is not an amount; use a percentage (1%), a fraction in (0, 1] (0.01) or a count (1000)")
    }
}

/// Whether top-k picks the largest entries of the whole update or of each tensor.
public enum SparsityScope: UInt8, Hashable, Sendable, CustomStringConvertible {
    /// k largest magnitudes across all tensors.
    case global = 0
    /// ⌊f·nₜ + ½⌋ largest magnitudes of each tensor t.
    case tensor = 1

    public var description: String { self == .global ? "global" : "tensor" }
}

/// A sparsifier: picks which entries of the (error-compensated) update are sent.
public enum Sparsifier: Hashable, Sendable, CustomStringConvertible {
    /// Exact top-k by magnitude; ties go to the lower index.
    case topK(SparsityAmount, scope: SparsityScope)
    /// Deep Gradient Compression's sampled top-k: a threshold from a strided sample of
    /// `sample`·n entries, then trimmed to exactly k when more pass it (fewer may pass).
    case sampledTopK(SparsityAmount, scope: SparsityScope, sample: Double)
    /// k uniformly random entries from a seed mixed with the round; the decoder regenerates the
    /// indices, so none are sent.
    case randomK(SparsityAmount, seed: UInt64)
    /// Every entry with magnitude ≥ τ.
    case threshold(Double)

    public var description: String {
        switch self {
        case .topK(let a, let scope): "topk \(a) scope=\(scope)"
        case .sampledTopK(let a, let scope, let sample): "topk-sampled \(a) scope=\(scope) sample=\(shortest(sample * 100))%"
        case .randomK(let a, let seed): "randk \(a) seed=\(seed)"
        case .threshold(let t): "threshold \(shortest(t))"
        }
    }

    /// Whether the frame carries an index stream (random-k regenerates its indices instead).
    public var sendsIndices: Bool {
        if case .randomK = self { return false }
        return true
    }

    static let names = ["topk", "topk-sampled", "randk", "threshold"]

    init?(_ stage: StageText) throws(UplinkError) {
        guard Self.names.contains(stage.name) else { return nil }
        var p = StageParameters(stage)
        func amount() throws(UplinkError) -> SparsityAmount {
            guard let text = p.take("k", positional: true) else {
                throw UplinkError(.pipelineBadParameter, "stage \"\(stage.name)\" needs an amount, for example \"\(stage.name) 1%\"")
            }
            return try SparsityAmount.parse(text, stage: stage.name)
        }
        func scope() throws(UplinkError) -> SparsityScope {
            switch p.take("scope") {
            case nil, "global": return .global
            case "tensor": return .tensor
            case let other?: throw UplinkError(.pipelineBadParameter, "stage \"\(stage.name)\": scope=\(UplinkError.quoted(other)) must be global or tensor")
            }
        }
        switch stage.name {
        case "topk":
            self = .topK(try amount(), scope: try scope())
        case "topk-sampled":
            let a = try amount()
            let s = try scope()
            var sample = 0.01
            if let text = p.take("sample") {
                // A fraction of the entries, never a count (unlike an amount): `sample=1` is the
                // whole update, as `sample=1.0` and `sample=100%` are.
                let percent = text.hasSuffix("%") ? Double(text.dropLast()).map { $0 / 100 } : nil
                guard let f = percent ?? Double(text), f > 0, f <= 1 else {
                    throw UplinkError(.pipelineBadParameter, "stage \"topk-sampled\": sample=\(UplinkError.quoted(text)) must be a fraction in (0, 1] or a percentage")
                }
                sample = f
            }
            self = .sampledTopK(a, scope: s, sample: sample)
        case "randk":
            let a = try amount()
            let seed = try p.uint64("seed", default: 0)
            self = .randomK(a, seed: seed)
        default:
            guard let text = p.take("tau", positional: true), let t = Double(text), t > 0, t.isFinite else {
                throw UplinkError(.pipelineBadParameter, "stage \"threshold\" needs a magnitude τ > 0, for example \"threshold 0.001\"")
            }
            self = .threshold(t)
        }
        try p.finish()
    }
}

/// The shortest decimal text that parses back to `v`.
func shortest(_ v: Double) -> String {
    if v == v.rounded(), abs(v) < 1e15 { return String(Int(v)) }
    return String(v)
}
