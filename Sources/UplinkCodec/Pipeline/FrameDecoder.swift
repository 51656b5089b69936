/// A decoded frame: its header, the layout it was decoded with, and the dense update.
public struct DecodedFrame: Sendable {
    /// The frame's header.
    public var header: FrameHeader
    /// The layout, from the frame's tensor table or from the caller.
    public var layout: ModelLayout
    /// The update as a flat float32 vector in layout order.
    public var values: [Float]
}

/// Decodes frames: the server side of Uplink.
///
/// Every frame is validated in full (structure, limits, checksums, layout, finite values)
/// before a single value is written to the caller's buffer, so a frame that fails leaves the
/// destination exactly as it was.
public struct FrameDecoder: Sendable {
    /// The ceilings applied to every frame.
    public var limits: FrameLimits

    /// A decoder with `limits`.
    public init(limits: FrameLimits = .default) {
        self.limits = limits
    }

    /// Decodes `frame` into a dense update.
    ///
    /// - Parameter layout: the expected model. Required when the frame carries no tensor
    ///   table; when given, the frame must match it (``UplinkError/Code/fingerprintMismatch``).
    public func decode(_ frame: UnsafeRawBufferPointer, layout: ModelLayout? = nil) throws(UplinkError) -> DecodedFrame {
        let header = try FrameReader.readHeader(frame, limits: limits)
        let resolved = try resolveLayout(header, layout)
        let streams = try decompressStreams(frame, header)
        var values = [Float](repeating: 0, count: header.parameterCount)
        try typed {
            try streams.values.withUnsafeBytes { raw in
                try header.pipeline.quantizer.checkFinite(raw)
                values.withUnsafeMutableBufferPointer { out in
                    header.pipeline.quantizer.decodeValues(raw, into: out, weight: 1, accumulate: false)
                }
            }
        }
        return DecodedFrame(header: header, layout: resolved, values: values)
    }

    /// Decodes `frame` into a dense update.
    public func decode(_ frame: [UInt8], layout: ModelLayout? = nil) throws(UplinkError) -> DecodedFrame {
        try typed { try frame.withUnsafeBytes { try decode($0, layout: layout) } }
    }

    /// Adds `weight ×` the update in `frame` to `destination`, the flat vector of `layout`.
    ///
    /// The frame is checked completely first; on any error `destination` is unchanged.
    /// - Returns: the frame's header (round, sample count, pipeline, sizes).
    @discardableResult
    public func accumulate(
        _ frame: UnsafeRawBufferPointer, into destination: UnsafeMutableBufferPointer<Float>,
        weight: Float, layout: ModelLayout
    ) throws(UplinkError) -> FrameHeader {
        guard destination.count == layout.parameterCount else {
            throw UplinkError(.shapeMismatch, "destination has \(destination.count) values, the layout \(layout.parameterCount)")
        }
        guard weight.isFinite else { throw UplinkError(.invalidArgument, "weight \(weight) is not finite") }
        let header = try FrameReader.readHeader(frame, limits: limits)
        _ = try resolveLayout(header, layout)
        let streams = try decompressStreams(frame, header)
        try typed {
            try streams.values.withUnsafeBytes { raw in
                try header.pipeline.quantizer.checkFinite(raw)
                header.pipeline.quantizer.decodeValues(raw, into: destination, weight: weight, accumulate: true)
            }
        }
        return header
    }

    private func resolveLayout(_ header: FrameHeader, _ given: ModelLayout?) throws(UplinkError) -> ModelLayout {
        if let given {
            try header.check(against: given)
            return given
        }
        guard let own = try header.layout() else {
            throw UplinkError(.layoutRequired, "frame carries no tensor table; pass the model layout to decode it")
        }
        return own
    }

    /// The uncompressed streams of `frame`, each section's checksum verified first.
    private func decompressStreams(_ frame: UnsafeRawBufferPointer, _ header: FrameHeader) throws(UplinkError) -> DecodedStreams {
        var values = [UInt8](repeating: 0, count: header.pipeline.expectedStreams(parameterCount: header.parameterCount)[0].rawLength)
        var position = 0
        try typed { try values.withUnsafeMutableBytes { out in
            for (i, s) in header.sections.enumerated() {
                let stored = UnsafeRawBufferPointer(rebasing: frame[s.offset..<(s.offset + s.storedLength)])
                let crc = CRC32C.checksum(stored)
                guard crc == s.checksum else {
                    throw UplinkError(.sectionChecksum, "section \(i) (\(s.stream)) checksum mismatch (stored 0x\(String(s.checksum, radix: 16)), computed 0x\(String(crc, radix: 16)))")
                }
                let dst = UnsafeMutableRawBufferPointer(rebasing: out[position..<(position + s.rawLength)])
                do {
                    try s.codec.decompress(stored, into: dst)
                } catch let error as UplinkError {
                    throw UplinkError(error.code, "section \(i): \(error.message)")
                }
                position += s.rawLength
            }
        } }
        return DecodedStreams(values: values)
    }
}

/// The uncompressed streams of one frame.
struct DecodedStreams {
    var values: [UInt8]
}
