/// Constants of the frame format; `docs/wire-format.md` is the normative description.
public enum FrameFormat {
    /// The four magic bytes `U P L K`.
    public static let magic: [UInt8] = [0x55, 0x50, 0x4C, 0x4B]
    /// The format version this library writes.
    public static let version: UInt16 = 1
    /// Versions this library reads.
    public static let readableVersions: ClosedRange<UInt16> = 1...1
    /// Bytes before the header: magic, version, flags, header length.
    public static let preambleLength = 12
    /// Bytes of the fixed part of the header, before the pipeline descriptor.
    public static let fixedHeaderLength = 42
    /// Bytes of one section table entry.
    public static let sectionEntryLength = 24
    /// Bytes of the header checksum that follows the header.
    public static let headerChecksumLength = 4
    /// The largest uncompressed length of one section (64 MiB); longer streams are split.
    public static let maxSectionRawLength = 1 << 26
    /// The section size the encoder uses unless told otherwise (1 MiB).
    public static let defaultChunkLength = 1 << 20
}

/// The flags word of the preamble.
public struct FrameFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The header carries the tensor table (names and shapes), so the frame decodes without a layout.
    public static let hasTensorTable = FrameFlags(rawValue: 1 << 0)

    /// The flags version 1 defines; any other set bit is an error.
    public static let known: FrameFlags = [.hasTensorTable]
}

/// One entry of the section table: where a piece of a stream is and how it is stored.
public struct SectionEntry: Hashable, Sendable {
    /// The stream this section continues.
    public var stream: StreamKind
    /// How the bytes are stored.
    public var codec: SectionCodec
    /// The codec level the writer used (informational; decoding does not need it).
    public var level: UInt8
    /// CRC-32C of the stored bytes.
    public var checksum: UInt32
    /// Length after decompression.
    public var rawLength: Int
    /// Length on the wire.
    public var storedLength: Int
    /// Offset of the stored bytes from the start of the frame.
    public var offset: Int
}

/// Everything a frame's header says, checked for internal consistency.
public struct FrameHeader: Hashable, Sendable {
    /// The format version.
    public var version: UInt16
    /// The preamble flags.
    public var flags: FrameFlags
    /// FNV-1a 64 fingerprint of the model layout.
    public var fingerprint: UInt64
    /// The training round this update belongs to.
    public var round: UInt64
    /// The number of local samples behind the update, the weight in sample-weighted averaging.
    public var sampleCount: UInt64
    /// The model's total parameter count.
    public var parameterCount: Int
    /// The model's tensor count.
    public var tensorCount: Int
    /// The pipeline that produced the frame.
    public var pipeline: Pipeline
    /// The tensor table, when the frame carries one.
    public var tensors: [TensorSpec]?
    /// The section table, with payload offsets.
    public var sections: [SectionEntry]
    /// Header length H, as in the preamble.
    public var headerLength: Int
    /// The whole frame's length in bytes.
    public var frameLength: Int

    /// The model fingerprint as 16 hex digits.
    public var fingerprintHex: String { ModelLayout.hex(fingerprint) }

    /// The layout from the tensor table, when the frame carries one.
    public func layout() throws(UplinkError) -> ModelLayout? {
        guard let tensors else { return nil }
        return try ModelLayout(tensors)
    }

    /// Bytes of the dense float32 update this frame stands for.
    public var float32Bytes: Int { parameterCount * 4 }

    /// Bytes on the wire of the sections of stream `kind`.
    public func streamBytes(_ kind: StreamKind) -> Int {
        sections.lazy.filter { $0.stream == kind }.reduce(0) { $0 + $1.storedLength }
    }

    /// Dense float32 bytes divided by frame bytes: how many times smaller than float32.
    public var compressionRatio: Double { Double(float32Bytes) / Double(frameLength) }

    /// Checks that this frame belongs to `layout`: same fingerprint, tensor and parameter
    /// counts, and (when the frame carries one) the same tensor table.
    public func check(against layout: ModelLayout) throws(UplinkError) {
        guard fingerprint == layout.fingerprint else {
            throw UplinkError(
                .fingerprintMismatch,
                "frame is for model \(fingerprintHex), not \(layout.fingerprintHex) (\(layout.tensors.count) tensors, \(layout.parameterCount) parameters)"
                    + Self.difference(frame: tensors, tensorCount: tensorCount, parameterCount: parameterCount, layout: layout))
        }
        guard tensorCount == layout.tensors.count, parameterCount == layout.parameterCount else {
            throw UplinkError(
                .parameterCountMismatch,
                "frame has \(tensorCount) tensors and \(parameterCount) parameters, the layout \(layout.tensors.count) and \(layout.parameterCount)")
        }
        if let tensors, tensors != layout.tensors {
            throw UplinkError(.fingerprintMismatch, "frame's tensor table differs from the layout despite equal fingerprints")
        }
    }

    /// Why a frame's model is not `layout`, as a clause for error 300: with a tensor table, the
    /// first difference, or that only the order differs; without one, what the counts allow.
    /// Names compare byte for byte (the fingerprint's rule), so NFC and NFD spellings differ.
    package static func difference(frame tensors: [TensorSpec]?, tensorCount: Int, parameterCount: Int, layout: ModelLayout, subject: String = "frame") -> String {
        let orderRule = "the layout's order is the fingerprint's order: a .safetensors file's tensors sorted by name (UTF-8 bytes), whatever order its writer used; a layout built in code keeps its own order, so build it sorted, or from the same file"
        func key(_ t: TensorSpec) -> [UInt8] { Array(t.name.utf8) }
        guard let tensors else {
            if tensorCount == layout.tensors.count, parameterCount == layout.parameterCount {
                return "; the \(subject) has the same tensor and parameter counts, so it may be the same model with its tensors in another order or named differently (\(orderRule)); a frame with a tensor table (the default) names the difference"
            }
            return "; the \(subject) has \(tensorCount) tensors and \(parameterCount) parameters"
        }
        let mine = tensors.map { (key($0), $0.shape) }, theirs = layout.tensors.map { (key($0), $0.shape) }
        let sortedMine = mine.sorted { $0.0.lexicographicallyPrecedes($1.0) }, sortedTheirs = theirs.sorted { $0.0.lexicographicallyPrecedes($1.0) }
        if sortedMine.elementsEqual(sortedTheirs, by: { $0.0 == $1.0 && $0.1 == $1.1 }) {
            let i = mine.indices.first { mine[$0].0 != theirs[$0].0 || mine[$0].1 != theirs[$0].1 } ?? 0
            return "; the \(subject) holds the same tensors in another order: tensor \(i) is \(UplinkError.quoted(tensors[i].name)) in the \(subject) but \(UplinkError.quoted(layout.tensors[i].name)) in the layout (\(orderRule))"
        }
        let names = Dictionary(theirs.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        for (t, m) in zip(tensors, mine) {
            guard let shape = names[m.0] else {
                return "; the layout has no tensor \(UplinkError.quoted(t.name)) (the \(subject) has \(tensors.count) tensors, the layout \(layout.tensors.count))"
            }
            if shape != m.1 {
                return "; tensor \(UplinkError.quoted(t.name)) has shape \(UplinkError.excerpt(list: m.1)) in the \(subject) but \(UplinkError.excerpt(list: shape)) in the layout"
            }
        }
        let present = Set(mine.map(\.0))
        if let missing = layout.tensors.first(where: { !present.contains(key($0)) }) {
            return "; the \(subject) has no tensor \(UplinkError.quoted(missing.name)) (the \(subject) has \(tensors.count) tensors, the layout \(layout.tensors.count))"
        }
        return ""
    }
}
