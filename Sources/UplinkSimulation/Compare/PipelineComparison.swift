import Dispatch
import Foundation
import UplinkCodec

/// Every pipeline's cost on one real update: frame bytes, the decoded update's error, encode and
/// decode-and-accumulate time, and the upload time on network profiles from the link model
/// (`uplink compare`, docs/simulation.md).
///
/// Each pipeline encodes the update as a client's first round does: a fresh encoder, so error
/// feedback starts from a zero residual and the error is that of one round (error feedback
/// sends the rest in later rounds). The upload times are those of ``Link`` for the same
/// clients on every pipeline (common random numbers), so two pipelines differ only by their bytes.
public struct PipelineComparison: Sendable {
    /// The pipelines compared when none is given: dense float, quantized, sign and three sparse
    /// densities, from most bytes to fewest.
    public static let defaultPipelines = [
        "fp32 | stored", "fp16 | lz4", "int8 | zlib", "ef | sign | lz4",
        "ef | topk 10% | int8 | lz4", "ef | topk 1% | int8 | lz4", "ef | topk 0.1% | int4 | lz4",
    ]
    /// The network profiles shown when none is given.
    public static let defaultProfiles = ["3G", "LTE"]

    /// Upload time on one network profile: quantiles over `clients` links drawn from it.
    public struct Upload: Sendable, Hashable {
        public var profile: String
        /// Median and 95th percentile of the upload time in seconds, from the first request to
        /// the last byte (round trips, rate variability, outages with resume and loss included).
        public var median: Double
        public var p95: Double
        /// The share of clients whose upload finished within the deadline, when one was given.
        public var withinDeadline: Double?
    }

    /// One tensor's part of a frame.
    public struct TensorCost: Sendable, Hashable {
        public var name: String
        public var shape: [Int]
        public var parameters: Int
        /// Values the frame transmits for this tensor (all of them for a dense pipeline).
        public var transmitted: Int
        /// The frame's payload bytes (sections) attributed to this tensor in proportion to the
        /// values it transmits: exact for a dense `stored` pipeline, an attribution otherwise
        /// (compression and the positions of a sparse frame work across tensors).
        public var attributedBytes: Double
        /// ‖u − û‖ / ‖u‖ over the tensor (0 for an all-zero tensor decoded exactly).
        public var relativeL2Error: Double
        /// cos(u, û) over the tensor; nil when either is all zeros.
        public var cosine: Double?
    }

    /// One pipeline's figures.
    public struct Row: Sendable {
        public var pipeline: String
        public var bytes: Int
        public var float32Bytes: Int
        public var transmitted: Int
        public var relativeL2Error: Double
        /// cos(u, û); nil when the update or its decoding is all zeros.
        public var cosine: Double?
        public var maxAbsoluteError: Double
        /// Median over the runs, in seconds.
        public var encodeSeconds: Double
        public var decodeSeconds: Double
        public var uploads: [Upload]
        /// Per tensor, in layout order, when asked for.
        public var tensors: [TensorCost]?

        /// float32 bytes over frame bytes.
        public var ratio: Double { Double(float32Bytes) / Double(max(1, bytes)) }
    }

    /// What to measure.
    public struct Options: Sendable {
        public var profiles: [LinkProfile]
        /// Links drawn per profile.
        public var clients: Int = 1000
        /// Timed encode and decode runs per pipeline (the median is reported).
        public var runs: Int = 3
        /// Seed of the links.
        public var seed: UInt64 = 1
        /// An upload deadline in seconds, for ``Upload/withinDeadline``.
        public var deadline: Double?
        public var perTensor = false

        public init(profiles: [LinkProfile]) { self.profiles = profiles }
    }

    /// A pipeline that cannot encode this update (a value beyond fp16's range, say), with why.
    public struct Refusal: Sendable {
        public var pipeline: String
        public var error: UplinkError
    }

    public var layout: ModelLayout
    public var rows: [Row]
    /// The pipelines that refused the update; the others are still measured.
    public var refused: [Refusal] = []
    public var options: Options

    /// The longest an upload is followed (a day, the links' outage horizon); one that has not
    /// finished by then counts as this long.
    static let horizon = 86_400.0

    /// Measures every pipeline of `pipelines` on `update` (values in `layout` order).
    public init(update: [Float], layout: ModelLayout, pipelines: [Pipeline], options: Options,
                progress: (String) -> Void = { _ in }) throws(UplinkError) {
        guard update.count == layout.parameterCount else {
            throw UplinkError(.shapeMismatch, "\(update.count) values for a layout of \(layout.parameterCount) parameters")
        }
        guard (1...100_000).contains(options.clients) else { throw UplinkError(.invalidArgument, "clients must be in 1…100000, got \(options.clients)") }
        guard (1...1000).contains(options.runs) else { throw UplinkError(.invalidArgument, "runs must be in 1…1000, got \(options.runs)") }
        if let d = options.deadline, !(d > 0 && d <= Self.horizon) {
            throw UplinkError(.invalidArgument, "the deadline must be in (0, \(Int(Self.horizon))] seconds, got \(d)")
        }
        self.layout = layout
        self.options = options
        // The same clients for every pipeline: links and start times drawn once per profile.
        let clients = options.profiles.map { Self.clients(of: $0, count: options.clients, seed: options.seed) }
        guard layout.parameterCount > 0 else { throw UplinkError(.invalidArgument, "the update's float tensors hold no values") }
        var rows: [Row] = []
        var refused: [Refusal] = []
        for pipeline in pipelines {
            progress(pipeline.description)
            do throws(UplinkError) {
                rows.append(try Self.measure(pipeline, update: update, layout: layout, clients: clients, options: options))
            } catch {
                // The update itself (NaN, a value no quantizer can hold) is refused by every
                // pipeline alike; a range that only some pipelines have refuses only those.
                refused.append(Refusal(pipeline: pipeline.description, error: error))
            }
        }
        if rows.isEmpty, let first = refused.first { throw UplinkError(first.error.code, "every pipeline refused the update; \(first.pipeline): \(first.error.message)") }
        self.rows = rows
        self.refused = refused
    }

    /// `count` links drawn from `profile`, each with a start time in the first hour (so outages
    /// and rate variability fall differently on each).
    static func clients(of profile: LinkProfile, count: Int, seed: UInt64) -> [(link: Link, start: Double)] {
        var rng = SplitMix64(seed: seed ^ 0x434F_4D50_4152_45)
        for byte in profile.name.utf8 { rng = SplitMix64(seed: rng.next() ^ UInt64(byte)) }
        return (0..<count).map { _ in
            let link = Link(profile: profile, seed: rng.next(), horizon: horizon + 3600)
            return (link, Double(rng.next() >> 11) * 0x1p-53 * 3600)
        }
    }

    static func measure(_ pipeline: Pipeline, update: [Float], layout: ModelLayout, clients: [[(link: Link, start: Double)]],
                        options: Options) throws(UplinkError) -> Row {
        var frame: [UInt8] = []
        var encodeTimes: [Double] = []
        for _ in 0..<options.runs {
            var encoder = FrameEncoder(layout: layout, pipeline: pipeline)
            encoder.errorFeedback?.residual.withUnsafeMutableBufferPointer { _ in }  // allocated before timing
            let t0 = DispatchTime.now().uptimeNanoseconds
            frame = try encoder.encode(update, round: 1, sampleCount: 1)
            encodeTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        let decoder = FrameDecoder(limits: .forModel(layout))
        var decoded = [Float](repeating: 0, count: layout.parameterCount)
        var decodeTimes: [Double] = []
        for _ in 0..<options.runs {
            // Decode-and-accumulate into a zeroed buffer, as a server adds a frame to its sum: the
            // last run leaves exactly the decoded update.
            decoded.withUnsafeMutableBufferPointer { p in p.update(repeating: 0) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            try typed {
                try decoded.withUnsafeMutableBufferPointer { dest in
                    try frame.withUnsafeBytes { _ = try decoder.accumulate($0, into: dest, weight: 1, layout: layout) }
                }
            }
            decodeTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        let prepared = try decoder.prepare(frame, layout: layout)
        let whole = Self.error(update[...], decoded[...])
        var tensors: [TensorCost]?
        if options.perTensor {
            tensors = Self.tensorCosts(update: update, decoded: decoded, layout: layout, prepared: prepared)
        }
        let uploads = zip(options.profiles, clients).map { profile, sample in
            Self.upload(bytes: frame.count, profile: profile.name, clients: sample, deadline: options.deadline)
        }
        let median = { (a: [Double]) in a.sorted()[a.count / 2] }
        return Row(pipeline: pipeline.description, bytes: frame.count, float32Bytes: 4 * layout.parameterCount,
                   transmitted: prepared.transmittedCount, relativeL2Error: whole.relative, cosine: whole.cosine,
                   maxAbsoluteError: whole.maxAbsolute, encodeSeconds: median(encodeTimes), decodeSeconds: median(decodeTimes),
                   uploads: uploads, tensors: tensors)
    }

    /// Relative L2 error, cosine and largest absolute error of `decoded` against `update`, in
    /// double precision.
    static func error(_ update: ArraySlice<Float>, _ decoded: ArraySlice<Float>) -> (relative: Double, cosine: Double?, maxAbsolute: Double) {
        var uu = 0.0, dd = 0.0, ud = 0.0, ee = 0.0, maxAbs = 0.0
        for (u, d) in zip(update, decoded) {
            let x = Double(u), y = Double(d), e = x - y
            uu += x * x; dd += y * y; ud += x * y; ee += e * e
            maxAbs = max(maxAbs, abs(e))
        }
        let relative = uu > 0 ? (ee / uu).squareRoot() : (ee > 0 ? .infinity : 0)
        let cosine: Double? = uu > 0 && dd > 0 ? ud / (uu.squareRoot() * dd.squareRoot()) : nil
        return (relative, cosine, maxAbs)
    }

    static func tensorCosts(update: [Float], decoded: [Float], layout: ModelLayout, prepared: PreparedFrame) -> [TensorCost] {
        var sent = layout.elementCounts
        if let positions = prepared.indices {
            sent = [Int](repeating: 0, count: layout.tensors.count)
            var t = 0
            for p in positions {  // increasing
                while p >= layout.offsets[t] + layout.elementCounts[t] { t += 1 }
                sent[t] += 1
            }
        }
        let payload = Double(prepared.header.sections.reduce(0) { $0 + $1.storedLength })
        let total = Double(max(1, sent.reduce(0, +)))
        return layout.tensors.indices.map { t in
            let range = layout.offsets[t]..<(layout.offsets[t] + layout.elementCounts[t])
            let e = Self.error(update[range], decoded[range])
            return TensorCost(name: layout.tensors[t].name, shape: layout.tensors[t].shape, parameters: layout.elementCounts[t],
                              transmitted: sent[t], attributedBytes: payload * Double(sent[t]) / total,
                              relativeL2Error: e.relative, cosine: e.cosine)
        }
    }

    /// Upload-time quantiles of `bytes` over `clients` (resumable uploads).
    static func upload(bytes: Int, profile: String, clients: [(link: Link, start: Double)], deadline: Double?) -> Upload {
        let finished = clients.map { c -> Double? in
            let t = c.link.transfer(bytes: bytes, uplink: true, start: c.start, mode: .resume, deadline: c.start + horizon)
            return t.finish.map { $0 - c.start }
        }
        let times = finished.map { $0 ?? horizon }.sorted()
        let within = deadline.map { d in Double(finished.count { $0.map { $0 <= d } ?? false }) / Double(finished.count) }
        return Upload(profile: profile, median: SimulationReport.quantile(times, 0.5)!, p95: SimulationReport.quantile(times, 0.95)!, withinDeadline: within)
    }
}

extension PipelineComparison {
    /// A duration for the table: `0.84 s`, `12.3 s`, `14.1 min`, `3.2 h`; `> 1 d` at the horizon.
    static func duration(_ s: Double) -> String {
        if s >= horizon { return "> 1 d" }
        if s < 10 { return String(format: "%.2f s", s) }
        if s < 600 { return String(format: "%.1f s", s) }
        if s < 36_000 { return String(format: "%.1f min", s / 60) }
        return String(format: "%.1f h", s / 3600)
    }

    /// Milliseconds with three significant figures.
    static func milliseconds(_ s: Double) -> String {
        let ms = s * 1000
        return ms >= 100 ? String(format: "%.0f ms", ms) : ms >= 10 ? String(format: "%.1f ms", ms) : String(format: "%.2f ms", ms)
    }

    static func ratio(_ r: Double) -> String { r >= 100 ? String(format: "%.0f×", r) : String(format: "%.1f×", r) }

    /// The table: one row per pipeline.
    public func table() -> String {
        var header = ["pipeline", "bytes", "vs float32", "rel. L2 error", "cosine", "encode", "decode"]
        for p in options.profiles {
            header += ["\(p.name) p50", "\(p.name) p95"]
            if let d = options.deadline { header.append("\(p.name) ≤ " + (d < 600 ? String(format: "%g s", d) : Self.duration(d))) }
        }
        var lines = [header]
        for r in rows {
            var line = [r.pipeline, AxisUnit.bytes.text(Double(r.bytes)), Self.ratio(r.ratio), String(format: "%.3g", r.relativeL2Error),
                        r.cosine.map { String(format: "%.4f", $0) } ?? "—", Self.milliseconds(r.encodeSeconds), Self.milliseconds(r.decodeSeconds)]
            for u in r.uploads {
                line += [Self.duration(u.median), Self.duration(u.p95)]
                if let w = u.withinDeadline { line.append(String(format: "%.0f%%", 100 * w)) }
            }
            lines.append(line)
        }
        var text = SimulationReport.columns(lines)
        for r in refused { text += "\n\(r.pipeline): refused, \(r.error)" }
        return text
    }

    /// Per pipeline, the `top` tensors that cost the most bytes, as tables.
    public func tensorTables(top: Int) -> String {
        rows.compactMap { r -> String? in
            guard let tensors = r.tensors else { return nil }
            let order = tensors.indices.sorted { (tensors[$0].attributedBytes, tensors[$1].name) > (tensors[$1].attributedBytes, tensors[$0].name) }
            var lines = [["tensor", "shape", "parameters", "sent", "bytes", "share", "rel. L2 error", "cosine"]]
            let payload = max(1, tensors.reduce(0) { $0 + $1.attributedBytes })
            for i in order.prefix(top) {
                let t = tensors[i]
                lines.append([Self.shown(t.name), "[" + t.shape.map(String.init).joined(separator: ", ") + "]", String(t.parameters),
                              t.parameters == 0 ? "—" : "\(t.transmitted) " + String(format: "(%.3g%%)", 100 * Double(t.transmitted) / Double(t.parameters)),
                              AxisUnit.bytes.text(t.attributedBytes), String(format: "%.1f%%", 100 * t.attributedBytes / payload),
                              String(format: "%.3g", t.relativeL2Error), t.cosine.map { String(format: "%.4f", $0) } ?? "—"])
            }
            let more = tensors.count > top ? " (the \(top) costliest of \(tensors.count) tensors)" : ""
            return "\(r.pipeline)\(more):\n" + SimulationReport.columns(lines)
        }.joined(separator: "\n\n")
    }

    static func shown(_ name: String) -> String { UplinkError.shown(name) }

    /// A number for JSON, or null when it is not finite (JSON has no infinity).
    static func json(_ x: Double) -> Any { x.isFinite ? x : NSNull() }

    /// Everything measured, for `--json`.
    public func jsonObject(input: String?) -> [String: Any] {
        var out: [String: Any] = [
            "parameters": layout.parameterCount, "tensors": layout.tensors.count, "fingerprint": layout.fingerprintHex,
            "float32_bytes": 4 * layout.parameterCount, "clients_per_profile": options.clients, "runs": options.runs, "seed": options.seed,
            "profiles": options.profiles.map { p in
                ["name": p.name, "uplink_mbps": p.uplinkMbps, "rtt_ms": p.rttMs, "spread": p.spread, "variability": p.variability,
                 "outages_per_hour": p.outagesPerHour, "mean_outage_seconds": p.meanOutageSeconds, "loss": p.loss] as [String: Any]
            },
        ]
        if let input { out["input"] = input }
        out["refused"] = refused.map { ["pipeline": $0.pipeline, "code": Int($0.error.code.rawValue), "message": $0.error.message] as [String: Any] }
        if let d = options.deadline { out["deadline_seconds"] = d }
        out["pipelines"] = rows.map { r -> [String: Any] in
            var o: [String: Any] = [
                "pipeline": r.pipeline, "bytes": r.bytes, "ratio_to_float32": r.ratio, "transmitted": r.transmitted,
                "relative_l2_error": Self.json(r.relativeL2Error), "max_abs_error": r.maxAbsoluteError,
                "encode_seconds": r.encodeSeconds, "decode_accumulate_seconds": r.decodeSeconds,
                "upload_seconds": r.uploads.map { u -> [String: Any] in
                    var x: [String: Any] = ["profile": u.profile, "p50": u.median, "p95": u.p95]
                    if let w = u.withinDeadline { x["within_deadline"] = w }
                    return x
                },
            ]
            o["cosine"] = r.cosine ?? NSNull()
            if let tensors = r.tensors {
                o["tensors"] = tensors.map { t -> [String: Any] in
                    ["name": t.name, "shape": t.shape, "parameters": t.parameters, "transmitted": t.transmitted,
                     "attributed_bytes": t.attributedBytes, "relative_l2_error": Self.json(t.relativeL2Error), "cosine": t.cosine ?? NSNull()]
                }
            }
            return o
        }
        return out
    }
}
