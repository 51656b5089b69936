/// Error-feedback memory of one client: the residual `e` of everything not yet sent.
///
/// Each round the encoder sends `C(u + e)` and keeps `e ← decay · ((u + e) − decode(C(u + e)))`,
/// so what compression drops is delayed, not lost (Seide et al. 2014; Karimireddy et al. 2019).
/// The state is a value: ``serialized()`` and ``init(serialized:layout:pipeline:)`` save and
/// restore it as a versioned, checksummed blob tied to one model and one pipeline.
public struct ErrorFeedbackState: Sendable, Equatable {
    /// The residual, one float per parameter, finite.
    public package(set) var residual: [Float]
    /// How many updates were encoded with this state.
    public package(set) var roundsEncoded: UInt64
    /// The model's fingerprint.
    public let fingerprint: UInt64
    /// The pipeline descriptor without its codec stage (a lossless codec does not change what
    /// the residual means, so switching LZ4 for zlib keeps the state valid).
    public let pipelineKey: [UInt8]

    /// A zero residual for `layout` and `pipeline`.
    public init(layout: ModelLayout, pipeline: Pipeline) {
        residual = [Float](repeating: 0, count: layout.parameterCount)
        roundsEncoded = 0
        fingerprint = layout.fingerprint
        pipelineKey = pipeline.lossyDescriptor
    }

    /// A state holding `residual` for `layout` and `pipeline` (for example one carried over
    /// from an encoder of another pipeline).
    /// - Throws: ``UplinkError/Code/stateMismatch`` when the residual's size is not the layout's,
    ///   ``UplinkError/Code/nonFiniteValue`` for a NaN or infinite residual.
    public init(residual: [Float], roundsEncoded: UInt64 = 0, layout: ModelLayout, pipeline: Pipeline) throws(UplinkError) {
        guard residual.count == layout.parameterCount else {
            throw UplinkError(.stateMismatch, "residual has \(residual.count) values, the layout \(layout.parameterCount)")
        }
        if let i = residual.firstIndex(where: { !$0.isFinite }) {
            throw UplinkError(.nonFiniteValue, "residual value \(residual[i]) at index \(i) is not finite")
        }
        self.residual = residual
        self.roundsEncoded = roundsEncoded
        fingerprint = layout.fingerprint
        pipelineKey = pipeline.lossyDescriptor
    }

    static let magic: [UInt8] = [0x55, 0x50, 0x4C, 0x53]  // "UPLS"
    static let version: UInt16 = 1

    /// The state blob: `"UPLS", u16 version, u16 0, u64 fingerprint, u64 n, u64 rounds,
    /// u16 key length, key, n × f32 residual, u32 CRC-32C of everything before`.
    public func serialized() -> [UInt8] {
        var w = ByteWriter(capacity: 40 + pipelineKey.count + residual.count * 4)
        w.write(bytes: Self.magic)
        w.write(Self.version)
        w.write(UInt16(0))
        w.write(fingerprint)
        w.write(UInt64(residual.count))
        w.write(roundsEncoded)
        w.write(UInt16(pipelineKey.count))
        w.write(bytes: pipelineKey)
        for v in residual { w.write(v.bitPattern) }
        w.write(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// Restores a state saved by ``serialized()``.
    /// - Throws: ``UplinkError/Code/malformedState`` for a damaged or unknown blob,
    ///   ``UplinkError/Code/stateMismatch`` for a state of another model or pipeline.
    public init(serialized bytes: [UInt8], layout: ModelLayout, pipeline: Pipeline) throws(UplinkError) {
        self = try typed {
            try bytes.withUnsafeBytes { raw in try Self.parse(raw, layout: layout, pipeline: pipeline) }
        }
    }

    private static func parse(_ raw: UnsafeRawBufferPointer, layout: ModelLayout, pipeline: Pipeline) throws(UplinkError) -> Self {
        func malformed(_ why: String) -> UplinkError { UplinkError(.malformedState, "error-feedback state \(why)") }
        guard raw.count >= 38, Array(raw[0..<4]) == magic else { throw malformed("is not an Uplink state file") }
        let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])
        let stored = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: raw.count - 4, as: UInt32.self))
        var r = ByteReader(body, offset: 4, what: "error-feedback state")
        let version: UInt16
        do throws(UplinkError) { version = try r.read(UInt16.self, "version") } catch { throw malformed("is truncated") }
        guard version == Self.version else { throw malformed("has unknown version \(version)") }
        guard CRC32C.checksum(body) == stored else { throw malformed("is corrupted (checksum mismatch)") }
        do throws(UplinkError) {
            let reserved = try r.read(UInt16.self, "reserved")
            guard reserved == 0 else { throw malformed("has a non-zero reserved field (\(reserved))") }
            let fingerprint = try r.read(UInt64.self, "fingerprint")
            let n = try r.read(UInt64.self, "parameter count")
            let rounds = try r.read(UInt64.self, "rounds")
            let keyLength = Int(try r.read(UInt16.self, "key length"))
            let key = Array(try r.bytes(keyLength, "pipeline key"))
            guard fingerprint == layout.fingerprint, n == UInt64(layout.parameterCount) else {
                throw UplinkError(
                    .stateMismatch,
                    "error-feedback state is for model \(ModelLayout.hex(fingerprint)) with \(n) parameters, not \(layout.fingerprintHex) with \(layout.parameterCount)")
            }
            guard key == pipeline.lossyDescriptor else {
                let other = (try? key.withUnsafeBytes { try Pipeline(descriptor: $0) })?.description ?? "another pipeline"
                throw UplinkError(.stateMismatch, "error-feedback state is for pipeline \"\(other)\", not \"\(pipeline)\"")
            }
            guard r.remaining == Int(n) * 4 else { throw malformed("has \(r.remaining) residual bytes for \(n) parameters") }
            let data = try r.bytes(Int(n) * 4, "residual")
            var residual = [Float](repeating: 0, count: Int(n))
            for i in 0..<Int(n) {
                let v = Float(bitPattern: UInt32(littleEndian: data.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                guard v.isFinite else { throw malformed("holds a non-finite residual at \(i)") }
                residual[i] = v
            }
            var state = ErrorFeedbackState(layout: layout, pipeline: pipeline)
            state.residual = residual
            state.roundsEncoded = rounds
            return state
        } catch where error.code == .truncated {
            throw malformed("is truncated")
        }
    }
}
