/// A compression pipeline: what the encoder does to an update, left to right, and what the
/// decoder undoes. It is data: it parses from spec text (`"ef | topk 1% | int8 | lz4"`), prints
/// back as canonical text, and is written into every frame header as a binary descriptor, so a
/// decoder needs no side channel.
///
/// Stages run in a fixed order: error feedback (optional), a sparsifier (optional), a
/// quantizer, a codec. The spec grammar and every stage's parameters are in
/// `docs/pipeline.md`; the descriptor bytes are in `docs/wire-format.md`.
public struct Pipeline: Hashable, Sendable, CustomStringConvertible {
    /// Local differential privacy: clip the update's L2 norm, optionally add Gaussian noise,
    /// before anything else (client side only).
    public var localDP: LocalDP?
    /// Error feedback (residual memory), client side only.
    public var errorFeedback: ErrorFeedbackConfig?
    /// Which entries are sent; `nil` sends all of them (dense).
    public var sparsifier: Sparsifier?
    /// How values are represented on the wire.
    public var quantizer: Quantizer
    /// How each section's bytes are compressed.
    public var codec: CodecStage

    /// A pipeline from its stages.
    public init(
        localDP: LocalDP? = nil, errorFeedback: ErrorFeedbackConfig? = nil, sparsifier: Sparsifier? = nil,
        quantizer: Quantizer = .fp32, codec: CodecStage = .stored
    ) {
        self.localDP = localDP
        self.errorFeedback = errorFeedback
        self.sparsifier = sparsifier
        self.quantizer = quantizer
        self.codec = codec
    }

    /// Every stage name the parser accepts.
    public static let knownStageNames = ["clip", "noise", "ef"] + Sparsifier.names + Quantizer.names + CodecStage.names

    /// Parses spec text such as `"ef | topk 1% | int8 block=256 | lz4"`.
    ///
    /// Stages must appear in the order error feedback, sparsifier, quantizer, codec; each at most
    /// once. The quantizer defaults to `fp32` and the codec to `stored`.
    /// - Throws: ``UplinkError`` with a pipeline code (6xx) naming the offending stage.
    public init(parsing text: String) throws(UplinkError) {
        var result = Pipeline()
        var seen: [(rank: Int, name: String)] = []
        for stage in try PipelineSpecParser.split(text) {
            let rank: Int
            if stage.name == "clip" {
                rank = 0
                var p = StageParameters(stage)
                let c = try p.double("c", default: .nan, in: 1e-12...1e12, positional: true)
                guard c.isFinite else { throw UplinkError(.pipelineBadParameter, "stage \"clip\" needs the L2 bound, for example \"clip 1.0\"") }
                try p.finish()
                result.localDP = LocalDP(clip: c, noiseMultiplier: result.localDP?.noiseMultiplier, seed: result.localDP?.seed)
            } else if stage.name == "noise" {
                rank = 1
                var p = StageParameters(stage)
                let z = try p.double("z", default: .nan, in: 1e-6...1e6, positional: true)
                guard z.isFinite else { throw UplinkError(.pipelineBadParameter, "stage \"noise\" needs the noise multiplier, for example \"noise z=1.1\"") }
                // `seed=` must be an integer: a typo used to become seed 0 silently.
                var seed: UInt64?
                if stage.named.contains(where: { $0.key == "seed" }) { seed = try p.uint64("seed", default: 0) }
                try p.finish()
                guard let dp = result.localDP else {
                    throw UplinkError(.pipelineBadOrder, "noise needs a clip stage before it: the noise is scaled to the clipping bound (\"clip 1.0 | noise z=1.1\")")
                }
                result.localDP = LocalDP(clip: dp.clip, noiseMultiplier: z, seed: seed)
            } else if stage.name == "ef" {
                rank = 2
                result.errorFeedback = try ErrorFeedbackConfig(stage)
            } else if let s = try Sparsifier(stage) {
                rank = 3
                result.sparsifier = s
            } else if let q = try Quantizer(stage) {
                rank = 4
                result.quantizer = q
            } else if let c = try CodecStage(stage) {
                rank = 5
                result.codec = c
            } else {
                throw UplinkError(
                    .pipelineUnknownStage,
                    "unknown stage \(UplinkError.quoted(stage.name)); known stages: \(Self.knownStageNames.joined(separator: ", "))")
            }
            let kinds = ["clip", "noise", "error feedback", "sparsifier", "quantizer", "codec"]
            if let same = seen.first(where: { $0.rank == rank }) {
                throw UplinkError(.pipelineBadOrder, "two \(kinds[rank]) stages, \"\(same.name)\" and \"\(stage.name)\"; a pipeline has at most one")
            }
            if let later = seen.first(where: { $0.rank > rank }) {
                throw UplinkError(
                    .pipelineBadOrder,
                    "\(kinds[rank]) \"\(stage.name)\" must come before \(kinds[later.rank]) \"\(later.name)\" (order: clip | noise | ef | sparsifier | quantizer | codec)")
            }
            seen.append((rank, stage.name))
        }
        try result.validate()
        self = result
    }

    /// Checks combinations that parse but cannot work.
    func validate() throws(UplinkError) {
        if case .ternary = quantizer, sparsifier == nil {
            throw UplinkError(
                .pipelineBadOrder,
                "ternary quantizes the values a sparsifier keeps (Sparse Ternary Compression); put topk, topk-sampled, randk or threshold before it, or use sign for dense updates")
        }
    }

    /// The canonical spec text, with every parameter spelled out: parsing it gives back `self`.
    public var description: String {
        var parts: [String] = []
        if let dp = localDP {
            parts.append("clip \(shortest(dp.clip))")
            if let z = dp.noiseMultiplier { parts.append("noise z=\(shortest(z))" + (dp.seed.map { " seed=\($0)" } ?? "")) }
        }
        if let errorFeedback { parts.append(errorFeedback.description) }
        if let sparsifier { parts.append(sparsifier.description) }
        parts.append(quantizer.description)
        parts.append(codec.description)
        return parts.joined(separator: " | ")
    }

    /// Whether decoding gives back the input bit for bit.
    public var isLossless: Bool { sparsifier == nil && quantizer.isLossless }

    /// The number of values sent for a model of `n` parameters when the sparsifier fixes it
    /// in advance (dense and random-k), else `nil` (top-k variants and threshold write it
    /// into the index stream).
    public func fixedValueCount(parameterCount n: Int) -> Int? {
        switch sparsifier {
        case nil: n
        case .randomK(let a, _)?: a.k(of: n)
        default: nil
        }
    }

    /// The streams this pipeline writes for a model of `n` parameters, in order, each with the
    /// range its uncompressed length must fall in. The reader checks a frame's section table
    /// against these before it allocates anything; exact lengths that depend on k are checked
    /// once the index stream is decoded.
    public func streamPlan(parameterCount n: Int) -> [StreamPlan] {
        var plan: [StreamPlan] = []
        let m = fixedValueCount(parameterCount: n)
        if sparsifier?.sendsIndices == true {
            plan.append(StreamPlan(kind: .indices, lengths: 3...IndexCoding.maxLength(n: n)))
        }
        let exact = m.map { quantizer.streamLengths(values: $0) }
        let most = quantizer.streamLengths(values: n)
        if quantizer.scaleBlocks(n).bytes > 0 {
            plan.append(StreamPlan(kind: .scales, lengths: exact.map { $0.scales...$0.scales } ?? 0...most.scales))
        }
        plan.append(StreamPlan(kind: .values, lengths: exact.map { $0.values...$0.values } ?? 0...most.values))
        return plan
    }
}

/// Local differential privacy on the client: the update is clipped to L2 norm ≤ `clip`, then
/// (with a noise multiplier z) each coordinate gets N(0, (z·clip)²) noise, before error feedback
/// and compression. Noise comes from the system's cryptographically secure generator, or from
/// SplitMix64 with `seed` (mixed with the round) for reproducible tests and simulations.
public struct LocalDP: Hashable, Sendable {
    /// The L2 bound C.
    public var clip: Double
    /// The noise multiplier z, or `nil` for clipping only.
    public var noiseMultiplier: Double?
    /// A seed for reproducible noise; `nil` uses the system CSPRNG.
    public var seed: UInt64?

    public init(clip: Double, noiseMultiplier: Double? = nil, seed: UInt64? = nil) {
        self.clip = clip
        self.noiseMultiplier = noiseMultiplier
        self.seed = seed
    }
}

/// One stream a pipeline writes, and the range of its uncompressed length.
public struct StreamPlan: Hashable, Sendable {
    /// What the stream holds.
    public var kind: StreamKind
    /// Allowed uncompressed lengths.
    public var lengths: ClosedRange<Int>
}

/// Error feedback's configuration: residual decay.
public struct ErrorFeedbackConfig: Hashable, Sendable, CustomStringConvertible {
    /// The residual is multiplied by this after each round (1 = classic error feedback).
    public var decay: Float

    /// Error feedback with `decay` in 0…1.
    public init(decay: Float = 1) { self.decay = decay }

    public var description: String { decay == 1 ? "ef" : "ef decay=\(decay)" }

    init(_ stage: StageText) throws(UplinkError) {
        var p = StageParameters(stage)
        decay = Float(try p.double("decay", default: 1, in: 0...1))
        try p.finish()
    }
}

/// The codec stage at the end of a pipeline: which ``SectionCodec`` to try on each section, and
/// its level. A section whose compressed form is not smaller is written stored regardless.
public struct CodecStage: Hashable, Sendable, CustomStringConvertible {
    /// The codec to try.
    public var codec: SectionCodec
    /// LZ4: 0 is the fast compressor, 1…12 the HC compressor. zlib: 1…9. Stored: 0.
    public var level: Int

    /// A codec stage; `level` must be in the codec's range (see ``level``).
    public init(_ codec: SectionCodec, level: Int) {
        self.codec = codec
        self.level = level
    }

    /// No compression.
    public static let stored = CodecStage(.stored, level: 0)
    /// LZ4, fast compressor.
    public static let lz4 = CodecStage(.lz4, level: 0)
    /// zlib at its default level 6.
    public static let zlib = CodecStage(.zlib, level: 6)

    static let names = ["stored", "lz4", "zlib"]

    public var description: String {
        switch codec {
        case .stored: "stored"
        case .lz4: level == 0 ? "lz4" : "lz4 level=\(level)"
        case .zlib: "zlib level=\(level)"
        }
    }

    /// The levels the codec accepts.
    var levelRange: ClosedRange<Int> {
        switch codec {
        case .stored: 0...0
        case .lz4: 0...12
        case .zlib: 1...9
        }
    }

    init?(_ stage: StageText) throws(UplinkError) {
        var p = StageParameters(stage)
        switch stage.name {
        case "stored": self = .stored
        case "lz4": self = CodecStage(.lz4, level: try p.int("level", default: 0, in: 0...12, positional: true))
        case "zlib": self = CodecStage(.zlib, level: try p.int("level", default: 6, in: 1...9, positional: true))
        default: return nil
        }
        try p.finish()
    }
}

/// What a stream of a frame holds. A pipeline defines which streams it writes, in which order.
public enum StreamKind: UInt8, Hashable, Sendable, CustomStringConvertible {
    /// The quantized values, in transmitted order.
    case values = 1
    /// The coded positions of the kept entries (sparse pipelines other than random-k).
    case indices = 2
    /// Per-block scales (and offsets) of the quantizer.
    case scales = 3

    public var description: String {
        switch self {
        case .values: "values"
        case .indices: "indices"
        case .scales: "scales"
        }
    }
}
