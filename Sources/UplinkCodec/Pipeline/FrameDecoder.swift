/// A decoded frame: its header, the layout it was decoded with, and the dense update.
public struct DecodedFrame: Sendable {
    /// The frame's header.
    public var header: FrameHeader
    /// The layout, from the frame's tensor table or from the caller.
    public var layout: ModelLayout
    /// The update as a flat float32 vector in layout order (zeros where a sparse frame sent
    /// nothing).
    public var values: [Float]
    /// What the index stream held, for sparse frames.
    public var indexSummary: IndexCoding.Summary?
    /// How many values the frame transmitted (k for sparse frames, n for dense ones).
    public var transmittedCount: Int
}

/// Decodes frames: the server side of Uplink.
///
/// Every frame is validated in full (structure, limits, checksums, layout, code ranges, finite
/// values) before a single value is written to the caller's buffer, so a frame that fails
/// leaves the destination exactly as it was. Cost is O(k) for a sparse frame: nothing dense is
/// allocated.
public struct FrameDecoder: Sendable {
    /// The ceilings applied to every frame.
    public var limits: FrameLimits

    /// A decoder with `limits`.
    public init(limits: FrameLimits = .default) {
        self.limits = limits
    }

    /// Validates `frame` completely and returns it ready to apply; this is where every error is
    /// thrown. ``PreparedFrame/accumulate(into:weight:)`` cannot fail.
    ///
    /// - Parameter layout: the expected model. Required when the frame carries no tensor
    ///   table; when given, the frame must match it (``UplinkError/Code/fingerprintMismatch``).
    public func prepare(_ frame: UnsafeRawBufferPointer, layout: ModelLayout? = nil) throws(UplinkError) -> PreparedFrame {
        let header = try FrameReader.readHeader(frame, limits: limits)
        let resolved = try resolveLayout(header, layout)
        // Checksums first: a corrupted frame costs no allocation.
        try FrameReader.verifySectionChecksums(frame, header)
        // Each stream decompressed into one uninitialized buffer of its total raw length (every
        // section must fill its part exactly, or the frame is refused): no zeroing pass.
        var streams: [StreamKind: [UInt8]] = [:]
        var order: [StreamKind] = []
        for s in header.sections where !order.contains(s.stream) { order.append(s.stream) }
        for kind in order {
            let parts = header.sections.enumerated().filter { $0.element.stream == kind }
            let total = parts.reduce(0) { $0 + $1.element.rawLength }
            var failure: UplinkError?
            let buffer = [UInt8](unsafeUninitializedCapacity: total) { out, count in
                var at = 0
                for (i, s) in parts {
                    let stored = UnsafeRawBufferPointer(rebasing: frame[s.offset..<(s.offset + s.storedLength)])
                    do throws(UplinkError) {
                        try s.codec.decompress(stored, into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(out)[at..<(at + s.rawLength)]))
                    } catch {
                        failure = UplinkError(error.code, "section \(i) (\(s.stream)): \(error.message)")
                        count = 0
                        return
                    }
                    at += s.rawLength
                }
                count = total
            }
            if let failure { throw failure }
            streams[kind] = buffer
        }
        let n = header.parameterCount
        var positions: Positions?
        var summary: IndexCoding.Summary?
        let pipeline = header.pipeline
        // The number of transmitted values, known before any position is decoded: the value and
        // scale streams must already hold that many, so the work of regenerating or decoding
        // positions is bounded by bytes that were received and decompressed.
        let m: Int
        switch pipeline.sparsifier {
        case nil:
            m = n
        case .randomK(let amount, _)?:
            m = amount.k(of: n)
        case _?:
            let stream = streams[.indices] ?? []
            summary = try typed { try stream.withUnsafeBytes { try IndexCoding.summary($0, n: n).0 } }
            m = summary!.count
        }
        let expected = pipeline.quantizer.streamLengths(values: m)
        let scales = streams[.scales] ?? []
        let values = streams[.values] ?? []
        guard scales.count == expected.scales, values.count == expected.values else {
            throw UplinkError(
                .malformedStream,
                "\(m) transmitted values need \(expected.scales) scale and \(expected.values) value bytes, the frame has \(scales.count) and \(values.count)")
        }
        switch pipeline.sparsifier {
        case nil:
            break
        case .randomK(let amount, let seed)?:
            positions = RandomKSelection.positions(n: n, k: amount.k(of: n), seed: seed, round: header.round)
        case _?:
            let stream = streams[.indices] ?? []
            positions = try typed { try stream.withUnsafeBytes { try IndexCoding.decodePositions($0, n: n) } }
        }
        try typed {
            try scales.withUnsafeBytes { sc in
                try values.withUnsafeBytes { v in try pipeline.quantizer.validate(scales: sc, values: v, count: m) }
            }
        }
        return PreparedFrame(
            header: header, layout: resolved, positions: positions, indexSummary: summary, scales: scales, values: values)
    }

    /// Validates `frame` and returns it ready to apply.
    public func prepare(_ frame: [UInt8], layout: ModelLayout? = nil) throws(UplinkError) -> PreparedFrame {
        try typed { try frame.withUnsafeBytes { try prepare($0, layout: layout) } }
    }

    /// Decodes `frame` into a dense update.
    public func decode(_ frame: UnsafeRawBufferPointer, layout: ModelLayout? = nil) throws(UplinkError) -> DecodedFrame {
        let prepared = try prepare(frame, layout: layout)
        var values = [Float](repeating: 0, count: prepared.header.parameterCount)
        values.withUnsafeMutableBufferPointer { prepared.write(into: $0) }
        return DecodedFrame(
            header: prepared.header, layout: prepared.layout, values: values, indexSummary: prepared.indexSummary,
            transmittedCount: prepared.transmittedCount)
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
        let prepared = try prepare(frame, layout: layout)
        prepared.accumulate(into: destination, weight: weight)
        return prepared.header
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
}

/// A frame that passed every check, holding its decompressed streams (O(k) for sparse frames):
/// applying it cannot fail.
public struct PreparedFrame: Sendable {
    /// The frame's header.
    public let header: FrameHeader
    /// The model layout.
    public let layout: ModelLayout
    /// The transmitted positions, increasing; `nil` for a dense frame. Compact (32 bits each
    /// below 2^32 parameters): a sparse frame's decoded size is mostly these.
    let positions: Positions?
    /// The transmitted positions, increasing; `nil` for a dense frame (a copy, as `Int`s).
    public var indices: [Int]? { positions.map { p in (0..<p.count).map { p[$0] } } }
    /// What the index stream held (method, Rice parameter, k), when the frame has one.
    public let indexSummary: IndexCoding.Summary?
    let scales: [UInt8]
    let values: [UInt8]

    /// The bytes this prepared frame holds (decompressed streams and positions).
    public var heldBytes: Int {
        scales.count + values.count + (positions.map { $0.count * ($0.isWide ? 8 : 4) } ?? 0) + 256
    }

    /// How many values the frame transmits.
    public var transmittedCount: Int { positions?.count ?? header.parameterCount }

    /// Adds `weight ×` the update to `destination` (which must have the layout's parameter count).
    public func accumulate(into destination: UnsafeMutableBufferPointer<Float>, weight: Float) {
        apply(into: destination) { d, v in d += weight * v }
    }

    /// Writes the transmitted values into `destination`, leaving other positions as they are.
    public func write(into destination: UnsafeMutableBufferPointer<Float>) {
        apply(into: destination) { d, v in d = v }
    }

    /// The squared L2 norm of the decoded update, accumulated in double precision.
    public func squaredNorm() -> Double {
        var sum = 0.0
        forEachChunk { _, _, values in
            for v in values { sum += Double(v) * Double(v) }
        }
        return sum
    }

    /// Writes the update's values at parameters `range` into `out` (which has `range.count`
    /// elements): transmitted values where sent, 0 elsewhere. O(k log k) for a sparse frame.
    public func decode(parameters range: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == range.count && range.lowerBound >= 0 && range.upperBound <= header.parameterCount)
        let m = transmittedCount
        let quantizer = header.pipeline.quantizer
        scales.withUnsafeBytes { sc in
            values.withUnsafeBytes { v in
                if let positions {
                    for i in 0..<out.count { out[i] = 0 }
                    let first = lowerBound(positions, range.lowerBound)
                    var last = first
                    while last < positions.count, positions[last] < range.upperBound { last += 1 }
                    guard first < last else { return }
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: last - first) { tmp in
                        quantizer.decode(scales: sc, values: v, count: m, range: first..<last, into: tmp.baseAddress!)
                        for j in first..<last { out[positions[j] - range.lowerBound] = tmp[j - first] }
                    }
                } else {
                    quantizer.decode(scales: sc, values: v, count: m, range: range, into: out.baseAddress!)
                }
            }
        }
    }

    private func lowerBound(_ a: Positions, _ x: Int) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Calls `body(first, last, values)` for consecutive chunks of transmitted values.
    private func forEachChunk(_ body: (Int, Int, UnsafeBufferPointer<Float>) -> Void) {
        let m = transmittedCount
        let quantizer = header.pipeline.quantizer
        scales.withUnsafeBytes { sc in
            values.withUnsafeBytes { v in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: Quantizer.chunk) { tmp in
                    var start = 0
                    while start < m {
                        let end = min(m, start + Quantizer.chunk)
                        quantizer.decode(scales: sc, values: v, count: m, range: start..<end, into: tmp.baseAddress!)
                        body(start, end, UnsafeBufferPointer(rebasing: tmp[0..<(end - start)]))
                        start = end
                    }
                }
            }
        }
    }

    /// Adds `weight ×` the update to a double-precision `destination`: the server's running sum,
    /// where double accumulators make the result independent of arrival order.
    public func accumulate(into destination: UnsafeMutableBufferPointer<Double>, weight: Double) {
        apply(into: destination) { d, v in d += weight * Double(v) }
    }

    /// Decodes chunk by chunk and combines each value into its destination. Plain counted loops
    /// over raw pointers, with the position width chosen once: LLVM vectorizes the dense case.
    @inline(__always)
    private func apply<T>(into destination: UnsafeMutableBufferPointer<T>, _ combine: (inout T, Float) -> Void) {
        precondition(destination.count == header.parameterCount, "destination must have the layout's parameter count")
        let d = destination.baseAddress!
        forEachChunk { start, end, values in
            let v = values.baseAddress!
            let count = end - start
            if let positions {
                if positions.isWide {
                    positions.wide.withUnsafeBufferPointer { p in
                        let q = p.baseAddress! + start
                        for o in 0..<count { combine(&d[q[o]], v[o]) }
                    }
                } else {
                    positions.narrow.withUnsafeBufferPointer { p in
                        let q = p.baseAddress! + start
                        for o in 0..<count { combine(&d[Int(q[o])], v[o]) }
                    }
                }
            } else {
                let dd = d + start
                for o in 0..<count { combine(&dd[o], v[o]) }
            }
        }
    }
}
