/// How transmitted values are represented on the wire.
public enum Quantizer: Hashable, Sendable, CustomStringConvertible {
    /// IEEE 754 binary32, as is (lossless).
    case fp32
    /// IEEE 754 binary16, round to nearest even; magnitudes of 65520 and above are rejected.
    case fp16
    /// bfloat16 (the top 16 bits of binary32), round to nearest even.
    case bf16
    /// Uniform integer codes of 8, 4 or 2 bits with a float32 scale per block of values.
    case int(IntQuantizer)
    /// One bit per value (its sign) and a scale per block: the mean magnitude of the block
    /// (EF-signSGD). `block == 0` means one block for all values.
    case sign(block: Int)
    /// Sparse Ternary Compression: every kept value becomes ±μ, μ the mean kept magnitude of its
    /// block (entries not kept are the third value, 0). Needs a sparsifier before it; coded like
    /// `sign`. `block == 0` (the default) means one μ, as in the paper.
    case ternary(block: Int)

    static let names = ["fp32", "fp16", "bf16", "int8", "int4", "int2", "sign", "ternary"]

    public var description: String {
        switch self {
        case .fp32: "fp32"
        case .fp16: "fp16"
        case .bf16: "bf16"
        case .int(let q): q.description
        case .sign(let b): "sign block=\(b)"
        case .ternary(let b): "ternary block=\(b)"
        }
    }

    /// Whether decoding gives back every input bit for bit.
    public var isLossless: Bool { self == .fp32 }

    /// Bits per value in the values stream.
    public var bitsPerValue: Int {
        switch self {
        case .fp32: 32
        case .fp16, .bf16: 16
        case .int(let q): q.bits
        case .sign, .ternary: 1
        }
    }

    /// Number of scale blocks for `m` values, and bytes per block in the scales stream.
    func scaleBlocks(_ m: Int) -> (count: Int, bytes: Int) {
        switch self {
        case .fp32, .fp16, .bf16: return (0, 0)
        case .int(let q): return ((m + q.block - 1) / q.block, q.symmetric ? 4 : 8)
        case .sign(let b), .ternary(let b): return (b == 0 ? (m > 0 ? 1 : 0) : (m + b - 1) / b, 4)
        }
    }

    /// The block length for `m` values (every block but the last has this many values).
    func blockLength(_ m: Int) -> Int {
        switch self {
        case .fp32, .fp16, .bf16: return max(m, 1)
        case .int(let q): return q.block
        case .sign(let b), .ternary(let b): return b == 0 ? max(m, 1) : b
        }
    }

    /// Exact byte lengths of the scales and values streams for `m` transmitted values.
    public func streamLengths(values m: Int) -> (scales: Int, values: Int) {
        let (blocks, bytes) = scaleBlocks(m)
        return (blocks * bytes, (m * bitsPerValue + 7) / 8)
    }

    init?(_ stage: StageText) throws(UplinkError) {
        guard Self.names.contains(stage.name) else { return nil }
        var p = StageParameters(stage)
        switch stage.name {
        case "fp32": self = .fp32
        case "fp16": self = .fp16
        case "bf16": self = .bf16
        case "int8", "int4", "int2":
            let bits = Int(stage.name.dropFirst(3))!
            let block = try p.int("block", default: 256, in: 1...(1 << 24))
            let asym = p.flag("asym")
            let sym = p.flag("sym")
            guard !(asym && sym) else {
                throw UplinkError(.pipelineBadParameter, "stage \"\(stage.name)\": choose sym or asym, not both")
            }
            let stochastic = p.flag("stochastic")
            let seed = try p.uint64("seed", default: 0)
            if !stochastic, stage.named.contains(where: { $0.key == "seed" }) {
                throw UplinkError(.pipelineBadParameter, "stage \"\(stage.name)\": seed= needs stochastic rounding (add \"stochastic\")")
            }
            self = .int(IntQuantizer(bits: bits, block: block, symmetric: !asym, stochastic: stochastic, seed: seed))
        case "sign":
            self = .sign(block: try p.int("block", default: 1024, in: 0...(1 << 24)))
        default:
            self = .ternary(block: try p.int("block", default: 0, in: 0...(1 << 24)))
        }
        try p.finish()
    }
}

/// Uniform integer quantization with a scale per block.
///
/// Symmetric (absmax): `scale = max|x| / qmax`, `q = round(x / scale)` in `−qmax…qmax` with
/// `qmax = 2^(bits−1) − 1`, stored as `q + qmax`. Asymmetric (min-max): `scale = (max − min) /
/// (2^bits − 1)`, `q = round((x − min) / scale)` in `0…2^bits − 1`, value `min + q·scale`.
/// Rounding is to nearest, or stochastic (`⌊x/scale + u⌋`, u uniform in [0, 1) from a seeded
/// generator), which is unbiased: the expected decoded value equals the input.
public struct IntQuantizer: Hashable, Sendable, CustomStringConvertible {
    /// 8, 4 or 2.
    public let bits: Int
    /// Values per scale.
    public let block: Int
    /// Absmax (true) or min-max (false) scaling.
    public let symmetric: Bool
    /// Stochastic rounding instead of round-to-nearest.
    public let stochastic: Bool
    /// The stochastic-rounding seed, mixed with the round id.
    public let seed: UInt64

    /// A quantizer; `bits` must be 8, 4 or 2.
    public init(bits: Int, block: Int = 256, symmetric: Bool = true, stochastic: Bool = false, seed: UInt64 = 0) {
        precondition([2, 4, 8].contains(bits), "bits must be 8, 4 or 2")
        precondition(block >= 1)
        self.bits = bits
        self.block = block
        self.symmetric = symmetric
        self.stochastic = stochastic
        // The seed means something only to stochastic rounding: without it the quantizer holds
        // 0, so a pipeline equals what its descriptor parses back to (found by the fuzzer).
        self.seed = stochastic ? seed : 0
    }

    /// The largest code magnitude of the symmetric form.
    var qmax: Int { (1 << (bits - 1)) - 1 }
    /// The largest stored code.
    var maxCode: Int { symmetric ? 2 * qmax : (1 << bits) - 1 }

    public var description: String {
        "int\(bits) block=\(block) \(symmetric ? "sym" : "asym")" + (stochastic ? " stochastic seed=\(seed)" : "")
    }
}
