/// A compression pipeline: what the encoder does to an update, left to right, and what the
/// decoder undoes. It is data: it parses from spec text (`"ef | topk 1% | int8 | lz4"`), prints
/// back as canonical text, and is written into every frame header as a binary descriptor, so a
/// decoder needs no side channel.
///
/// Stages run in a fixed order: error feedback (optional), a sparsifier (optional), a
/// quantizer, a codec. The spec grammar and every stage's parameters are in
/// `docs/pipeline.md`; the descriptor bytes are in `docs/wire-format.md`.
public struct Pipeline: Hashable, Sendable, CustomStringConvertible {
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
        errorFeedback: ErrorFeedbackConfig? = nil, sparsifier: Sparsifier? = nil,
        quantizer: Quantizer = .fp32, codec: CodecStage = .stored
    ) {
        self.errorFeedback = errorFeedback
        self.sparsifier = sparsifier
        self.quantizer = quantizer
        self.codec = codec
    }

    /// Every stage name the parser accepts.
    public static let knownStageNames = ["ef"] + Sparsifier.names + Quantizer.names + CodecStage.names

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
            if stage.name == "ef" {
                rank = 0
                result.errorFeedback = try ErrorFeedbackConfig(stage)
            } else if let s = try Sparsifier(stage) {
                rank = 1
                result.sparsifier = s
            } else if let q = try Quantizer(stage) {
                rank = 2
                result.quantizer = q
            } else if let c = try CodecStage(stage) {
                rank = 3
                result.codec = c
            } else {
                throw UplinkError(
                    .pipelineUnknownStage,
                    "unknown stage \"\(stage.name)\"; known stages: \(Self.knownStageNames.joined(separator: ", "))")
            }
            let kinds = ["error feedback", "sparsifier", "quantizer", "codec"]
            if let same = seen.first(where: { $0.rank == rank }) {
                throw UplinkError(.pipelineBadOrder, "two \(kinds[rank]) stages, \"\(same.name)\" and \"\(stage.name)\"; a pipeline has at most one")
            }
            if let later = seen.first(where: { $0.rank > rank }) {
                throw UplinkError(
                    .pipelineBadOrder,
                    "\(kinds[rank]) \"\(stage.name)\" must come before \(kinds[later.rank]) \"\(later.name)\" (order: ef | sparsifier | quantizer | codec)")
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
