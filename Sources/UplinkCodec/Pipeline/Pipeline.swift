/// A compression pipeline: what the encoder does to an update, left to right, and what the
/// decoder undoes. It is data: it parses from spec text (`"fp16 | lz4"`), prints back as
/// canonical text, and is written into every frame header as a binary descriptor, so a
/// decoder needs no side channel.
///
/// The spec grammar and every stage's parameters are in `docs/pipeline.md`; the descriptor
/// bytes are in `docs/wire-format.md`.
public struct Pipeline: Hashable, Sendable, CustomStringConvertible {
    /// How values are represented on the wire.
    public var quantizer: Quantizer
    /// How each section's bytes are compressed.
    public var codec: CodecStage

    /// A pipeline from its stages.
    public init(quantizer: Quantizer = .fp32, codec: CodecStage = .stored) {
        self.quantizer = quantizer
        self.codec = codec
    }

    /// Parses spec text such as `"fp32 | zlib level=9"`.
    ///
    /// Stages run left to right: a quantizer, then a codec. Either may be left out: the
    /// quantizer defaults to `fp32` and the codec to `stored`.
    /// - Throws: ``UplinkError`` with a pipeline code (6xx) naming the offending stage.
    public init(parsing text: String) throws(UplinkError) {
        var quantizer: Quantizer?
        var codec: CodecStage?
        for stage in try PipelineSpecParser.split(text) {
            if let q = try Quantizer(stage) {
                guard codec == nil else {
                    throw UplinkError(.pipelineBadOrder, "quantizer \"\(stage.name)\" must come before the codec \"\(codec!)\"")
                }
                guard quantizer == nil else {
                    throw UplinkError(.pipelineBadOrder, "two quantizers: \"\(quantizer!)\" and \"\(stage.name)\"; a pipeline has one")
                }
                quantizer = q
            } else if let c = try CodecStage(stage) {
                guard codec == nil else {
                    throw UplinkError(.pipelineBadOrder, "two codecs: \"\(codec!)\" and \"\(stage.name)\"; a pipeline has one, at the end")
                }
                codec = c
            } else {
                throw UplinkError(
                    .pipelineUnknownStage,
                    "unknown stage \"\(stage.name)\"; known stages: \(Self.knownStageNames.joined(separator: ", "))")
            }
        }
        self.init(quantizer: quantizer ?? .fp32, codec: codec ?? .stored)
    }

    /// Every stage name the parser accepts.
    public static let knownStageNames = Quantizer.names + CodecStage.names

    /// The canonical spec text, with every parameter spelled out: parsing it gives back `self`.
    public var description: String { "\(quantizer) | \(codec)" }

    /// Whether decoding gives back the input bit for bit.
    public var isLossless: Bool { quantizer == .fp32 }

    /// The streams this pipeline writes for a model of `parameterCount` values, with their exact
    /// uncompressed lengths; the reader checks a frame's section table against these before it
    /// allocates anything.
    public func expectedStreams(parameterCount: Int) -> [(kind: StreamKind, rawLength: Int)] {
        [(.values, parameterCount * quantizer.bytesPerValue)]
    }
}

/// How values are represented on the wire.
public enum Quantizer: Hashable, Sendable, CustomStringConvertible {
    /// IEEE 754 binary32, as is (lossless).
    case fp32
    /// IEEE 754 binary16, round to nearest even; magnitudes of 65520 and above are rejected.
    case fp16

    static let names = ["fp32", "fp16"]

    /// Bytes per value in the values stream.
    public var bytesPerValue: Int {
        switch self {
        case .fp32: 4
        case .fp16: 2
        }
    }

    public var description: String {
        switch self {
        case .fp32: "fp32"
        case .fp16: "fp16"
        }
    }

    /// Interprets a spec stage, or returns nil when `stage` is not a quantizer.
    init?(_ stage: StageText) throws(UplinkError) {
        switch stage.name {
        case "fp32": self = .fp32
        case "fp16": self = .fp16
        default: return nil
        }
        try StageParameters(stage).finish()
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

/// What a stream of a frame holds. A pipeline defines which streams it writes.
public enum StreamKind: UInt8, Hashable, Sendable, CustomStringConvertible {
    /// The quantized values, in parameter order.
    case values = 1

    public var description: String {
        switch self {
        case .values: "values"
        }
    }
}
