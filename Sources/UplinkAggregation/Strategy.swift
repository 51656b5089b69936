import UplinkCodec

/// How a round's accepted updates become the next global model.
///
/// Mean-based strategies keep one double-precision running sum (O(model) memory whatever the
/// number of clients). The robust ones (``median``, ``trimmedMean(beta:)``) need every update
/// at once: they keep each accepted frame in its validated wire form (quantized, sparse,
/// decompressed; O(bytes sent) per client) until the round closes, then decode coordinate
/// blocks of all of them together.
public enum Strategy: Hashable, Sendable, CustomStringConvertible {
    /// FedAvg (McMahan et al. 2017): `x ← x + η·Σ nᵢΔᵢ / Σ nᵢ`, weighted by sample counts.
    case fedAvg(lr: Double)
    /// FedAvgM (Hsu et al. 2019): server momentum `v ← β·v + Δ`, `x ← x + η·v`.
    case fedAvgM(lr: Double, momentum: Double)
    /// FedAdam (Reddi et al. 2021): `m ← β₁m + (1−β₁)Δ`, `v ← β₂v + (1−β₂)Δ²`,
    /// `x ← x + η·m/(√v + τ)`.
    case fedAdam(lr: Double, beta1: Double, beta2: Double, tau: Double)
    /// FedYogi (Reddi et al. 2021): as FedAdam with `v ← v − (1−β₂)Δ²·sign(v − Δ²)`.
    case fedYogi(lr: Double, beta1: Double, beta2: Double, tau: Double)
    /// FedAdagrad (Reddi et al. 2021): `v ← v + Δ²`, `x ← x + η·m/(√v + τ)` with `m` as in FedAdam.
    case fedAdagrad(lr: Double, beta1: Double, tau: Double)
    /// Coordinate-wise median of the updates (Yin et al. 2018), unweighted.
    case median
    /// Coordinate-wise trimmed mean (Yin et al. 2018): drop the ⌊β·N⌋ largest and smallest
    /// values of each coordinate and average the rest, unweighted.
    case trimmedMean(beta: Double)
    /// Norm-bounded averaging (Sun et al. 2019): clip each update to L2 norm ≤ C, then FedAvg.
    case normBounded(clip: Double, lr: Double)

    /// Whether the strategy must see every update at once.
    public var needsAllUpdates: Bool {
        switch self {
        case .median, .trimmedMean: true
        default: false
        }
    }

    /// Whether the strategy carries optimizer state between rounds.
    public var isStateful: Bool {
        switch self {
        case .fedAvgM, .fedAdam, .fedYogi, .fedAdagrad: true
        default: false
        }
    }

    /// Names the parser accepts.
    public static let names = ["fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "median", "trimmed-mean", "norm-bounded"]

    public var description: String {
        switch self {
        case .fedAvg(let lr): "fedavg lr=\(fmt(lr))"
        case .fedAvgM(let lr, let m): "fedavgm lr=\(fmt(lr)) momentum=\(fmt(m))"
        case .fedAdam(let lr, let b1, let b2, let tau): "fedadam lr=\(fmt(lr)) beta1=\(fmt(b1)) beta2=\(fmt(b2)) tau=\(fmt(tau))"
        case .fedYogi(let lr, let b1, let b2, let tau): "fedyogi lr=\(fmt(lr)) beta1=\(fmt(b1)) beta2=\(fmt(b2)) tau=\(fmt(tau))"
        case .fedAdagrad(let lr, let b1, let tau): "fedadagrad lr=\(fmt(lr)) beta1=\(fmt(b1)) tau=\(fmt(tau))"
        case .median: "median"
        case .trimmedMean(let beta): "trimmed-mean beta=\(fmt(beta))"
        case .normBounded(let c, let lr): "norm-bounded clip=\(fmt(c)) lr=\(fmt(lr))"
        }
    }

    /// Parses `"fedadam lr=0.01"`, `"trimmed-mean beta=0.1"`, `"median"`… Defaults follow
    /// Reddi et al. 2021: β₁ = 0.9, β₂ = 0.99, τ = 1e-3; server learning rate 1 for FedAvg and
    /// FedAvgM (momentum 0.9), 0.01 for the adaptive ones.
    public init(parsing text: String) throws(UplinkError) {
        let stages = try PipelineSpecParser.split(text)
        guard stages.count == 1, let stage = stages.first else {
            throw UplinkError(.invalidArgument, "strategy \(UplinkError.quoted(text)) must be one name with parameters, e.g. \"fedadam lr=0.01\"")
        }
        var p = StageParameters(stage)
        func real(_ key: String, _ d: Double, _ r: ClosedRange<Double>) throws(UplinkError) -> Double {
            try p.double(key, default: d, in: r)
        }
        let open1 = 0...0.999_999_999
        switch stage.name {
        case "fedavg": self = .fedAvg(lr: try real("lr", 1, 0...1e6))
        case "fedavgm": self = .fedAvgM(lr: try real("lr", 1, 0...1e6), momentum: try real("momentum", 0.9, open1))
        case "fedadam":
            self = .fedAdam(lr: try real("lr", 0.01, 0...1e6), beta1: try real("beta1", 0.9, open1), beta2: try real("beta2", 0.99, open1), tau: try real("tau", 1e-3, 1e-12...1e6))
        case "fedyogi":
            self = .fedYogi(lr: try real("lr", 0.01, 0...1e6), beta1: try real("beta1", 0.9, open1), beta2: try real("beta2", 0.99, open1), tau: try real("tau", 1e-3, 1e-12...1e6))
        case "fedadagrad":
            self = .fedAdagrad(lr: try real("lr", 0.01, 0...1e6), beta1: try real("beta1", 0, open1), tau: try real("tau", 1e-3, 1e-12...1e6))
        case "median": self = .median
        case "trimmed-mean": self = .trimmedMean(beta: try real("beta", 0.1, 0...0.499_999))
        case "norm-bounded":
            guard let c = p.take("clip", positional: true).flatMap(Double.init), c > 0, c.isFinite else {
                throw UplinkError(.invalidArgument, "norm-bounded needs clip=C > 0, e.g. \"norm-bounded clip=1.0\"")
            }
            self = .normBounded(clip: c, lr: try real("lr", 1, 0...1e6))
        default:
            throw UplinkError(.invalidArgument, "unknown strategy \(UplinkError.quoted(stage.name)); known: \(Self.names.joined(separator: ", "))")
        }
        do throws(UplinkError) {
            try p.finish()
        } catch {
            throw UplinkError(.invalidArgument, "strategy: \(error.message)")
        }
    }
}

func fmt(_ v: Double) -> String {
    if v == v.rounded(), abs(v) < 1e15 { return String(Int(v)) }
    return String(v)
}
