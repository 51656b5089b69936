/// Encodes updates of one model with one pipeline into frames: the client side of Uplink.
///
/// ```swift
/// let layout = try ModelLayout([TensorSpec(name: "w", shape: [1024, 1024])])
/// let encoder = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "fp16 | lz4"))
/// let frame = try encoder.encode(update, round: 7, sampleCount: 600)
/// ```
public struct FrameEncoder: Sendable {
    /// The model every update must match.
    public let layout: ModelLayout
    /// The pipeline applied to every update.
    public let pipeline: Pipeline
    /// Whether frames carry the tensor table (names and shapes). Without it a frame is smaller
    /// by about `Σ (name length + 3 + 8 × rank)` bytes but decodes only with the layout at hand.
    public var includeTensorTable: Bool
    /// The frame writer (section size).
    public var writer: FrameWriter

    /// An encoder for `layout` and `pipeline`.
    public init(layout: ModelLayout, pipeline: Pipeline, includeTensorTable: Bool = true, writer: FrameWriter = FrameWriter()) {
        self.layout = layout
        self.pipeline = pipeline
        self.includeTensorTable = includeTensorTable
        self.writer = writer
    }

    /// The frame for `update`, the flat float32 vector of the layout's tensors in order.
    ///
    /// - Throws: ``UplinkError/Code/shapeMismatch`` when the count differs from the layout's,
    ///   ``UplinkError/Code/nonFiniteValue`` for NaN or infinity (naming tensor and index),
    ///   ``UplinkError/Code/valueOutOfRange`` when the quantizer cannot represent a value.
    public func encode(_ update: UnsafeBufferPointer<Float>, round: UInt64 = 0, sampleCount: UInt64 = 1) throws(UplinkError) -> [UInt8] {
        guard update.count == layout.parameterCount else {
            throw UplinkError(.shapeMismatch, "update has \(update.count) values, the layout \(layout.parameterCount)")
        }
        try checkFinite(update)
        let values = try pipeline.quantizer.encodeValues(update)
        return try writer.write(
            layout: layout, pipeline: pipeline, round: round, sampleCount: sampleCount,
            includeTensorTable: includeTensorTable, streams: [(.values, values)])
    }

    /// The frame for `update`.
    public func encode(_ update: [Float], round: UInt64 = 0, sampleCount: UInt64 = 1) throws(UplinkError) -> [UInt8] {
        try typed { try update.withUnsafeBufferPointer { try encode($0, round: round, sampleCount: sampleCount) } }
    }

    private func checkFinite(_ update: UnsafeBufferPointer<Float>) throws(UplinkError) {
        var any: UInt32 = 0
        for v in update { any |= (v.bitPattern & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0 }
        guard any != 0 else { return }
        let i = update.firstIndex { !$0.isFinite }!
        let t = layout.offsets.lastIndex { $0 <= i }!
        throw UplinkError(
            .nonFiniteValue,
            "update value \(update[i]) at index \(i) (tensor \"\(layout.tensors[t].name)\", element \(i - layout.offsets[t])) is not finite")
    }
}
