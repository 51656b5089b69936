import Dispatch

/// Encodes updates of one model with one pipeline into frames: the client side of Uplink.
///
/// ```swift
/// let layout = try ModelLayout([TensorSpec(name: "w", shape: [1024, 1024])])
/// var encoder = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "ef | topk 1% | int8 | lz4"))
/// let frame = try encoder.encode(update, round: 7, sampleCount: 600)
/// let saved = encoder.errorFeedback?.serialized()   // persist between app launches
/// ```
///
/// With error feedback the encoder carries the residual from one call to the next; it is a value
/// (``errorFeedback``) that can be saved and restored. An encode that throws leaves it unchanged.
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
    /// Threads for the passes over the whole update (error feedback and top-k selection);
    /// worth it for models of millions of parameters.
    public var threads: Int = 1
    /// The error-feedback memory, when the pipeline has an `ef` stage; set it with
    /// ``restore(_:)`` or ``restoreState(_:)``, which check it against the layout and pipeline.
    public package(set) var errorFeedback: ErrorFeedbackState? {
        didSet { if errorFeedback != nil { residualBound = nil } }
    }
    /// An upper bound of max |residual|, kept between encodes so the range check needs no pass.
    private var residualBound: Float?

    /// An encoder for `layout` and `pipeline`, with a zero residual if the pipeline has `ef`.
    public init(layout: ModelLayout, pipeline: Pipeline, includeTensorTable: Bool = true, writer: FrameWriter = FrameWriter()) {
        self.layout = layout
        self.pipeline = pipeline
        self.includeTensorTable = includeTensorTable
        self.writer = writer
        self.errorFeedback = pipeline.errorFeedback == nil ? nil : ErrorFeedbackState(layout: layout, pipeline: pipeline)
        self.residualBound = 0  // a fresh residual is all zeros
    }

    /// Replaces the error-feedback memory with `state`.
    /// - Throws: ``UplinkError/Code/stateMismatch`` when the pipeline has no `ef` stage or the
    ///   state is for another model, pipeline or parameter count.
    public mutating func restore(_ state: ErrorFeedbackState) throws(UplinkError) {
        guard pipeline.errorFeedback != nil else {
            throw UplinkError(.stateMismatch, "pipeline \"\(pipeline)\" has no error-feedback stage to restore a state into")
        }
        guard state.fingerprint == layout.fingerprint, state.residual.count == layout.parameterCount else {
            throw UplinkError(.stateMismatch, "error-feedback state is for model \(ModelLayout.hex(state.fingerprint)) with \(state.residual.count) parameters, not \(layout.fingerprintHex) with \(layout.parameterCount)")
        }
        guard state.pipelineKey == pipeline.lossyDescriptor else {
            throw UplinkError(.stateMismatch, "error-feedback state is for another pipeline than \"\(pipeline)\"")
        }
        errorFeedback = state
    }

    /// Restores error-feedback memory saved with `ErrorFeedbackState.serialized()`.
    public mutating func restoreState(_ bytes: [UInt8]) throws(UplinkError) {
        guard pipeline.errorFeedback != nil else {
            throw UplinkError(.stateMismatch, "pipeline \"\(pipeline)\" has no error-feedback stage to restore a state into")
        }
        try restore(ErrorFeedbackState(serialized: bytes, layout: layout, pipeline: pipeline))
    }

    /// The frame for `update`, the flat float32 vector of the layout's tensors in order.
    ///
    /// - Throws: ``UplinkError/Code/shapeMismatch`` when the count differs from the layout's,
    ///   ``UplinkError/Code/nonFiniteValue`` for NaN or infinity (naming tensor and index),
    ///   ``UplinkError/Code/valueOutOfRange`` when the quantizer cannot represent a value.
    public mutating func encode(_ update: UnsafeBufferPointer<Float>, round: UInt64 = 0, sampleCount: UInt64 = 1) throws(UplinkError) -> [UInt8] {
        guard update.count == layout.parameterCount else {
            throw UplinkError(.shapeMismatch, "update has \(update.count) values, the layout \(layout.parameterCount)")
        }
        // Without error feedback nothing changes if the encode throws, so a dense integer
        // quantizer checks for NaN and infinity as it scans each block (see `compress`) and
        // the separate pass over the update is skipped; its range is unlimited.
        if pipeline.errorFeedback == nil, pipeline.localDP == nil, pipeline.sparsifier == nil, case .int = pipeline.quantizer {
            return try write(try compress(update, round: round, residual: nil, preselected: nil), round: round, sampleCount: sampleCount)
        }
        let updateMax = try checkFinite(update, "update value")
        if let dp = pipeline.localDP {
            // Local DP first: the clipped, noised copy is what the rest of the pipeline sees.
            let private_ = dp.apply(update, round: round)
            return try private_.withUnsafeBufferPointer { (p) throws(UplinkError) in
                try encodeChecked(p, updateMax: Float(bitPattern: Self.maxMagnitudeBits(p, threads: threads)), round: round, sampleCount: sampleCount)
            }
        }
        return try encodeChecked(update, updateMax: updateMax, round: round, sampleCount: sampleCount)
    }

    /// The rest of ``encode(_:round:sampleCount:)``, on a finite update of the right size.
    private mutating func encodeChecked(_ update: UnsafeBufferPointer<Float>, updateMax: Float, round: UInt64, sampleCount: UInt64) throws(UplinkError) -> [UInt8] {
        // Everything that can fail is checked before the residual changes.
        if var state = errorFeedback {
            guard state.roundsEncoded < .max else {
                throw UplinkError(.malformedState, "error-feedback state has encoded 2^64 − 1 rounds; it cannot count another")
            }
            // Take the state out so its residual is uniquely referenced: mutating it in place then
            // costs no copy of a model-sized array (copy-on-write would otherwise duplicate it).
            if residualBound == nil { residualBound = Self.maxAbs(state.residual) }
            var newBound = residualBound
            // Deferred in this order so the bound is set after `errorFeedback`'s didSet clears it.
            defer { residualBound = newBound }
            errorFeedback = nil
            defer { errorFeedback = state }
            // |u + e| ≤ max|u| + max|e|: only when that bound could break the quantizer's range
            // is the exact element-wise check needed.
            if !(updateMax + newBound! <= rangeLimit) { try checkRange(update, plus: state.residual) }
            let decay = pipeline.errorFeedback!.decay
            // A typed closure, not `typed { … }`: the untyped rethrow and dynamic cast back to
            // UplinkError was miscompiled in release builds (segfault on every `ef | fp32` pipeline).
            let streams = try state.residual.withUnsafeMutableBufferPointer { (acc) throws(UplinkError) in
                var preselected: (indices: [Int], values: [Float])?
                // max |u + e| bounds the next residual: what is not sent keeps its value, what is
                // sent leaves a smaller quantization error, and decay only shrinks it.
                var accMax: UInt32 = 0
                if case .topK(let amount, .global)? = pipeline.sparsifier {
                    // One pass adds the update and collects the top-k candidates together.
                    let selected = TopKSelection.accumulateAndSelect(update, into: acc, k: amount.k(of: acc.count), threads: threads)
                    (preselected, accMax) = ((selected.indices, selected.values), selected.max)
                } else {
                    for i in 0..<acc.count {
                        acc[i] += update[i]
                        accMax = max(accMax, acc[i].bitPattern & 0x7FFF_FFFF)
                    }
                }
                let streams = try compress(UnsafeBufferPointer(acc), round: round, residual: acc, preselected: preselected)
                if decay != 1 { for i in 0..<acc.count { acc[i] *= decay } }
                newBound = Float(bitPattern: accMax)
                return streams
            }
            state.roundsEncoded += 1
            return try write(streams, round: round, sampleCount: sampleCount)
        }
        if !(updateMax <= rangeLimit) { try checkRange(update, plus: nil) }
        return try write(try compress(update, round: round, residual: nil, preselected: nil), round: round, sampleCount: sampleCount)
    }

    /// max |x| of finite values (0 for an empty array), by integer comparison of the magnitude
    /// bits, which orders finite floats exactly and vectorizes (a `Float` max does not, for NaN's sake).
    static func maxAbs(_ x: [Float]) -> Float {
        x.withUnsafeBufferPointer { p in Float(bitPattern: maxMagnitudeBits(p.baseAddress, count: p.count)) }
    }

    /// max over `x[0..<count]` of `bitPattern & 0x7FFF_FFFF` (0 when empty), by four 4-lane
    /// signed maxima at a time: the bits are below 2^31, and SSE2 compares only signed integers
    /// (an unsigned scalar max was vectorized with a bias on every compare, at half the speed).
    static func maxMagnitudeBits(_ x: UnsafePointer<Float>?, count: Int) -> UInt32 {
        guard let x, count > 0 else { return 0 }
        let raw = UnsafeRawPointer(x)
        let magnitude = SIMD4<UInt32>(repeating: 0x7FFF_FFFF)
        var m0 = SIMD4<Int32>(repeating: 0), m1 = m0, m2 = m0, m3 = m0
        @inline(__always) func lane(_ o: Int) -> SIMD4<Int32> {
            unsafeBitCast(raw.loadUnaligned(fromByteOffset: o, as: SIMD4<UInt32>.self) & magnitude, to: SIMD4<Int32>.self)
        }
        let groups = count / 16
        for g in 0..<groups {
            let o = 64 * g
            let a = lane(o), b = lane(o + 16), c = lane(o + 32), d = lane(o + 48)
            m0.replace(with: a, where: a .> m0)
            m1.replace(with: b, where: b .> m1)
            m2.replace(with: c, where: c .> m2)
            m3.replace(with: d, where: d .> m3)
        }
        m0.replace(with: m1, where: m1 .> m0)
        m2.replace(with: m3, where: m3 .> m2)
        m0.replace(with: m2, where: m2 .> m0)
        var m = UInt32(bitPattern: max(max(m0[0], m0[1]), max(m0[2], m0[3])))
        for i in (16 * groups)..<count { m = max(m, x[i].bitPattern & 0x7FFF_FFFF) }
        return m
    }

    /// max over `x` of `bitPattern & 0x7FFF_FFFF`, split over `threads` for large inputs.
    static func maxMagnitudeBits(_ x: UnsafeBufferPointer<Float>, threads: Int) -> UInt32 {
        let workers = max(1, min(threads, x.count / (1 << 16)))
        var parts = [UInt32](repeating: 0, count: workers)
        parts.withUnsafeMutableBufferPointer { parts in
            let shared = UnsafeSendable((x, parts))
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let (x, parts) = shared.value
                let lo = x.count * w / workers, hi = x.count * (w + 1) / workers
                parts[w] = maxMagnitudeBits(x.baseAddress.map { $0 + lo }, count: hi - lo)
            }
        }
        return parts.max() ?? 0
    }

    /// The largest magnitude the quantizer accepts.
    private var rangeLimit: Float {
        switch pipeline.quantizer {
        case .fp16: 65519.996
        case .bf16: Float(bitPattern: 0x7F7F_7FFF)  // rounds to the largest finite bfloat16
        default: .greatestFiniteMagnitude
        }
    }

    /// The frame for `update`.
    public mutating func encode(_ update: [Float], round: UInt64 = 0, sampleCount: UInt64 = 1) throws(UplinkError) -> [UInt8] {
        try update.withUnsafeBufferPointer { (p) throws(UplinkError) in try encode(p, round: round, sampleCount: sampleCount) }
    }

    /// Sparsifies and quantizes `values`. When `residual` is given (it aliases `values`), it is
    /// left holding `values − decoded` at every position: the untransmitted entries unchanged,
    /// the transmitted ones their quantization error.
    private func compress(
        _ values: UnsafeBufferPointer<Float>, round: UInt64, residual: UnsafeMutableBufferPointer<Float>?,
        preselected: (indices: [Int], values: [Float])?
    ) throws(UplinkError) -> [(kind: StreamKind, bytes: [UInt8])] {
        var streams: [(kind: StreamKind, bytes: [UInt8])] = []
        let q: QuantizedStreams
        if let sparsifier = pipeline.sparsifier {
            let indices = preselected?.indices ?? sparsifier.select(values, layout: layout, round: round)
            var kept = preselected?.values ?? indices.map { values[$0] }
            q = try kept.withUnsafeMutableBufferPointer { (k) throws(UplinkError) in
                try pipeline.quantizer.encode(UnsafeBufferPointer(k), error: residual == nil ? nil : k, round: round)
                    .checked(UnsafeBufferPointer(k), pipeline.quantizer)
            }
            if let residual { for (j, i) in indices.enumerated() { residual[i] = kept[j] } }
            if sparsifier.sendsIndices {
                streams.append((.indices, indices.withUnsafeBufferPointer { IndexCoding.encode($0, n: values.count) }))
            }
        } else {
            q = try pipeline.quantizer.encode(values, error: residual, round: round).checked(values, pipeline.quantizer)
            if q.sawNonFinite { _ = try checkFinite(values, "update value") }  // throws, naming the first
        }
        if pipeline.quantizer.scaleBlocks(1).bytes > 0 { streams.append((.scales, q.scales)) }
        streams.append((.values, q.values))
        return streams
    }

    private func write(_ streams: [(kind: StreamKind, bytes: [UInt8])], round: UInt64, sampleCount: UInt64) throws(UplinkError) -> [UInt8] {
        try writer.write(
            layout: layout, pipeline: pipeline, round: round, sampleCount: sampleCount,
            includeTensorTable: includeTensorTable, streams: streams)
    }

    /// Throws for a NaN or infinity (naming tensor and element); returns max |x|.
    private func checkFinite(_ update: UnsafeBufferPointer<Float>, _ what: String) throws(UplinkError) -> Float {
        // The largest magnitude bits: at or above 0x7F80_0000 means an infinity or a NaN.
        let m = Self.maxMagnitudeBits(update, threads: threads)
        guard m >= 0x7F80_0000 else { return Float(bitPattern: m) }
        let i = update.firstIndex { !$0.isFinite }!
        let t = layout.offsets.lastIndex { $0 <= i }!
        throw UplinkError(
            .nonFiniteValue,
            "\(what) \(update[i]) at index \(i) (tensor \(UplinkError.quoted(layout.tensors[t].name)), element \(i - layout.offsets[t])) is not finite")
    }

    /// Checks that `update + residual` is finite and within the quantizer's range.
    private func checkRange(_ update: UnsafeBufferPointer<Float>, plus residual: [Float]?) throws(UplinkError) {
        let limit = rangeLimit
        guard let residual else {
            guard limit < .greatestFiniteMagnitude else { return }
            if let i = update.firstIndex(where: { abs($0) > limit }) {
                throw UplinkError(.valueOutOfRange, "update value \(update[i]) at index \(i) (\(where_(i))) is outside the \(pipeline.quantizer) range")
            }
            return
        }
        var bad = false
        residual.withUnsafeBufferPointer { e in
            for i in 0..<update.count where !(abs(update[i] + e[i]) <= limit) { bad = true; break }
        }
        if bad {
            let i = (0..<update.count).first { !(abs(update[$0] + residual[$0]) <= limit) }!
            throw UplinkError(
                .valueOutOfRange,
                "update plus residual at index \(i) (\(update[i] + residual[i]); \(where_(i))) is outside the \(pipeline.quantizer) range")
        }
    }

    /// `tensor "fc.weight", element 12` for flat index `i`.
    private func where_(_ i: Int) -> String {
        let t = layout.offsets.lastIndex { $0 <= i } ?? 0
        return "tensor \(UplinkError.quoted(layout.tensors[t].name)), element \(i - layout.offsets[t])"
    }
}
