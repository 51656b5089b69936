import ArgumentParser
import Dispatch
import Foundation
import UplinkAggregation
import UplinkCodec
import UplinkTensorIO

extension UplinkCommand {
    /// `uplink bench`: time a pipeline's encode and decode-and-accumulate on this machine.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time encode and decode-and-accumulate of a pipeline in process (median of several runs).",
            discussion: """
                Example: uplink bench --pipeline "ef | topk 1% | int8 | lz4" --params 10000000 --json
                The synthetic update is seeded and heavy-tailed with 30% exact zeros; --in times a real one.
                Build with -c release: debug builds are 10–50× slower.
                """)

        @Option(help: "The pipeline spec.") var pipeline: String
        @Option(help: "Parameters of a synthetic update.") var params: Int = 10_000_000
        @Option(name: .customLong("in"), help: "Time this update (.npy or .safetensors) instead of a synthetic one.") var input: String?
        @Option(help: "Timed runs (the median is reported).") var runs: Int = 7
        @Option(help: "Encoder threads (the error-feedback and top-k passes).") var threads: Int = 1
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Also measure the streaming floor of the pipeline's unavoidable memory traffic in the same run, and give each time as a multiple of it.") var roofline = false

        @Flag(help: "Leave tensors that are not floating point out of the --in file instead of refusing it.") var skipNonFloat = false
        @Option(help: "Also time a FedAvg round (RoundAggregator) of this many clients' frames, with one thread and with --threads (at least 2), in frames per second.") var aggregate: Int?

        func run() throws {
            try reportingErrors(json: json) {
                guard (1...1000).contains(runs), (1...64).contains(threads) else { throw UplinkError(.invalidArgument, "--runs must be in 1…1000 and --threads in 1…64") }
                let spec = try Pipeline(parsing: pipeline)
                let (layout, update): (ModelLayout, [Float])
                if let input {
                    let (set, report) = try TensorFiles.loadReporting(path: input, nonFloat: skipNonFloat ? .skip : .refuse)
                    for line in report.lines { note(line) }
                    (layout, update) = (set.layout, set.values)
                } else {
                    guard (1...(1 << 30)).contains(params) else { throw UplinkError(.invalidArgument, "--params must be in 1…2^30") }
                    (layout, update) = (try ModelLayout(name: "update", count: params), Self.synthetic(count: params, seed: 1))
                }
                let n = layout.parameterCount
                // A fresh encoder per run, made before timing: the first encode is what a client does each round.
                var encodeTimes: [Double] = []
                var frame: [UInt8] = []
                // Encoder memory: the high-water mark before and after the first encode, with the
                // update and a materialized residual already resident.
                var first = FrameEncoder(layout: layout, pipeline: spec)
                first.threads = threads
                first.errorFeedback?.residual.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = 0 } }
                let before = peakResidentBytes()
                frame = try first.encode(update, round: 1, sampleCount: 1)
                let encoderExtra = peakResidentBytes() - before
                let resident = 4 * n * (spec.errorFeedback == nil ? 1 : 2)
                // With --roofline each timed run is followed by a run of its floor, and the
                // multiples are medians of those adjacent pairs' ratios (bandwidth drifts).
                let decoder = FrameDecoder(limits: .forModel(layout))
                let prepared = try decoder.prepare(frame, layout: layout)  // the frame's metadata; nothing decoded
                let encodeFloor = roofline ? Roofline.encodeFloor(n: n, errorFeedback: spec.errorFeedback != nil, dense: spec.sparsifier == nil ? spec.quantizer : nil) : nil
                let accumulateFloor = roofline ? Roofline.accumulateFloor(n: n, quantizer: spec.quantizer, positions: prepared.indices) : nil
                var encodeFloorTimes: [Double] = [], accumulateFloorTimes: [Double] = []
                // The codec alone on the same sections, run after each timed run too: its own
                // time drifts with the machine as much as the floor's does.
                var codec = try CodecAlone(frame, pipeline: spec, limits: decoder.limits)
                var codecEncodeTimes: [Double] = [], codecDecodeTimes: [Double] = []
                for _ in 0..<runs {
                    var encoder = FrameEncoder(layout: layout, pipeline: spec)
                    encoder.threads = threads
                    // The zero residual is written (so resident) by the initializer. Touching it here
                    // through `errorFeedback` would copy it and drop the encoder's residual bound,
                    // adding a max-|residual| pass a client that keeps its encoder never makes.
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    frame = try encoder.encode(update, round: 1, sampleCount: 1)
                    encodeTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                    if let encodeFloor { encodeFloorTimes.append(encodeFloor.time()) }
                    codecEncodeTimes.append(try codec.encode())
                }
                var sum = [Float](repeating: 0, count: n)
                var accumulateTimes: [Double] = []
                for _ in 0..<runs {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try typed {
                        try sum.withUnsafeMutableBufferPointer { dest in
                            try frame.withUnsafeBytes { _ = try decoder.accumulate($0, into: dest, weight: 0.5, layout: layout) }
                        }
                    }
                    accumulateTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                    if let accumulateFloor { accumulateFloorTimes.append(accumulateFloor.time()) }
                    codecDecodeTimes.append(try codec.decode())
                }
                // The frame checksum over the update's 4n bytes: the CPU's instructions (when it
                // has them) against the table, in the same run.
                let (crcHardware, crcTable) = update.withUnsafeBytes { raw -> (Double, Double) in
                    var sink: UInt32 = 0
                    func time(_ f: (UnsafeRawBufferPointer) -> UInt32) -> Double {
                        var best = Double.infinity
                        for _ in 0..<max(3, runs) {
                            let t0 = DispatchTime.now().uptimeNanoseconds
                            sink ^= f(raw)
                            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                        }
                        return best
                    }
                    let hw = time { CRC32C.checksum($0) }
                    let table = time { CRC32C.softwareUpdate(0, $0) }
                    Roofline.blackHole(sink)  // the checksums are used, so neither loop is optimized away
                    return (hw, table)
                }
                let decoded = prepared
                let median = Roofline.median
                Roofline.blackHole(codec.sink)
                let codecEncode = median(codecEncodeTimes), codecDecode = median(codecDecodeTimes)
                let enc = median(encodeTimes), acc = median(accumulateTimes)
                let k = decoded.transmittedCount
                var out: [String: Any] = [
                    "pipeline": spec.description, "parameters": n, "runs": runs, "threads": threads, "bytes": frame.count,
                    "ratio_to_float32": Double(4 * n) / Double(frame.count),
                    "encode_seconds": enc, "encode_gb_per_s": Double(4 * n) / enc / 1e9, "encode_runs_seconds": encodeTimes,
                    "accumulate_seconds": acc, "accumulate_gb_per_s": Double(4 * n) / acc / 1e9, "accumulate_runs_seconds": accumulateTimes,
                    "transmitted": k,
                    "crc32c_gb_per_s": Double(4 * n) / crcHardware / 1e9, "crc32c_table_gb_per_s": Double(4 * n) / crcTable / 1e9,
                    "crc32c_hardware": CRC32C.hardware,
                    "encoder_peak_extra_bytes": encoderExtra,
                    "encoder_peak_over_update_and_residual": Double(resident + encoderExtra) / Double(resident),
                ]
                out["codec_encode_seconds"] = codecEncode
                out["codec_decode_seconds"] = codecDecode
                out["codec_encode_runs_seconds"] = codecEncodeTimes
                out["codec_decode_runs_seconds"] = codecDecodeTimes
                if roofline {
                    out["encode_without_codec_over_floor"] = median((0..<runs).map { (encodeTimes[$0] - codecEncodeTimes[$0]) / encodeFloorTimes[$0] })
                    out["accumulate_without_codec_over_floor"] = median((0..<runs).map { (accumulateTimes[$0] - codecDecodeTimes[$0]) / accumulateFloorTimes[$0] })
                    out["encode_floor_seconds"] = median(encodeFloorTimes)
                    out["accumulate_floor_seconds"] = median(accumulateFloorTimes)
                    out["encode_floor_runs_seconds"] = encodeFloorTimes
                    out["accumulate_floor_runs_seconds"] = accumulateFloorTimes
                    out["encode_over_floor"] = median(zip(encodeTimes, encodeFloorTimes).map { $0 / $1 })
                    out["accumulate_over_floor"] = median(zip(accumulateTimes, accumulateFloorTimes).map { $0 / $1 })
                }
                if let clients = aggregate {
                    let (one, many, threadsUsed, close) = try Self.aggregateRate(layout: layout, pipeline: spec, clients: clients, threads: max(2, threads), runs: runs)
                    out["aggregate_clients"] = clients
                    out["aggregate_threads"] = threadsUsed
                    out["aggregate_frames_per_second_one_thread"] = one
                    out["aggregate_frames_per_second"] = many
                    out["aggregate_speedup"] = many / one
                    out["aggregate_close_seconds"] = close
                }
                if decoded.indexSummary != nil, k > 0 {
                    out["bits_per_position"] = Double(decoded.header.streamBytes(.indices) * 8) / Double(k)
                    out["bits_per_position_bound"] = IndexCoding.entropyBoundBitsPerPosition(n: n, k: k)
                }
                if json {
                    printJSON(out)
                } else {
                    print("\(spec), \(n) parameters, median of \(runs) runs")
                    print(String(format: "  encode      %9.3f ms  %6.2f GB/s of float32 input", 1000 * enc, Double(4 * n) / enc / 1e9))
                    print(String(format: "  accumulate  %9.3f ms  %6.2f GB/s", 1000 * acc, Double(4 * n) / acc / 1e9))
                    print("  frame       \(frame.count) bytes, \(ratioToFloat32(float32Bytes: 4 * n, frameBytes: frame.count)), \(k) values sent")
                    if let ef = out["encode_floor_seconds"] as? Double, let af = out["accumulate_floor_seconds"] as? Double,
                       let er = out["encode_over_floor"] as? Double, let ar = out["accumulate_over_floor"] as? Double {
                        print(String(format: "  roofline    encode %.2f× its floor (%.3f ms), accumulate %.2f× its floor (%.3f ms)", er, 1000 * ef, ar, 1000 * af))
                        if spec.codec.codec != .stored, let ec = out["encode_without_codec_over_floor"] as? Double,
                           let ac = out["accumulate_without_codec_over_floor"] as? Double {
                            print(String(format: "              without the codec: encode %.2f×, accumulate %.2f×", ec, ac))
                        }
                    }
                    if spec.codec.codec != .stored {
                        print(String(format: "  codec       %@ alone: compress %.3f ms, decompress %.3f ms (the frame's sections)", spec.codec.codec.description, 1000 * codecEncode, 1000 * codecDecode))
                    }
                    print(String(format: "  crc32c      %6.2f GB/s %@, table %.2f GB/s", Double(4 * n) / crcHardware / 1e9, CRC32C.hardware ? "(CPU instructions)" : "(no CPU instructions: the table)", Double(4 * n) / crcTable / 1e9))
                    print(String(format: "  memory      encoder peak %.3f× (update + residual): %@ above them", Double(resident + encoderExtra) / Double(resident), humanBytes(encoderExtra)))
                    if let one = out["aggregate_frames_per_second_one_thread"] as? Double, let many = out["aggregate_frames_per_second"] as? Double,
                       let t = out["aggregate_threads"] as? Int, let c = out["aggregate_clients"] as? Int {
                        // Counts by interpolation (%d is 32-bit in String(format:)).
                        print("  aggregate   FedAvg round of \(c) frames: " + String(format: "%.1f frames/s on 1 thread, %.1f on ", one, many)
                            + "\(t)" + String(format: " (%.2f×); closing it %.3f ms", many / one, 1000 * (out["aggregate_close_seconds"] as? Double ?? 0)))
                    }
                    if let b = out["bits_per_position"] as? Double, let bound = out["bits_per_position_bound"] as? Double {
                        print(String(format: "  positions   %.3f bits each, bound %.3f (%+.2f%%)", b, bound, 100 * (b / bound - 1)))
                    }
                }
            }
        }

        /// Frames per second through one FedAvg round of `clients` distinct clients' frames (each
        /// client's update is the synthetic one with its own seed): submitted from one thread into
        /// one shard, and from `threads` threads into as many shards; medians of `runs` rounds.
        static func aggregateRate(layout: ModelLayout, pipeline: Pipeline, clients: Int, threads: Int, runs: Int) throws -> (Double, Double, Int, Double) {
            guard (2...10_000).contains(clients) else { throw UplinkError(.invalidArgument, "--aggregate must be in 2…10000") }
            let n = layout.parameterCount
            var frames: [[UInt8]] = []
            for c in 0..<clients {
                var encoder = FrameEncoder(layout: layout, pipeline: pipeline)
                frames.append(try encoder.encode(synthetic(count: n, seed: UInt64(c) + 100), round: 1, sampleCount: UInt64(c + 1)))
            }
            let ids = (0..<clients).map { "client-\($0)" }
            // Frames per second over the submissions; the round's close (merging the shards'
            // sums, once per round whatever the number of clients) is timed apart.
            func round(_ threads: Int) throws -> (rate: Double, close: Double) {
                let aggregator = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1), shards: threads)
                let failures = Locked(0)
                let t0 = DispatchTime.now().uptimeNanoseconds
                let frames = frames
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    for i in stride(from: t, to: frames.count, by: threads) {
                        do { _ = try aggregator.submit(frames[i], clientID: ids[i]) } catch { failures.withLock { $0 += 1 } }
                    }
                }
                let t1 = DispatchTime.now().uptimeNanoseconds
                let result = try aggregator.close()
                let t2 = DispatchTime.now().uptimeNanoseconds
                Roofline.blackHole(result)
                guard failures.withLock({ $0 }) == 0 else { throw UplinkError(.invalidArgument, "a frame was refused by the round") }
                return (Double(frames.count) / (Double(t1 - t0) / 1e9), Double(t2 - t1) / 1e9)
            }
            var one: [Double] = [], many: [Double] = [], close: [Double] = []
            for _ in 0..<runs {
                let a = try round(1), b = try round(threads)
                one.append(a.rate)
                many.append(b.rate)
                close.append(a.close)
            }
            return (Roofline.median(one), Roofline.median(many), threads, Roofline.median(close))
        }

        /// The codec's own time on a frame's sections, one run at a time (each paired with a timed
        /// run, as the floors are): compressing each section's raw bytes as the frame writer does
        /// (sampling included), and decompressing each compressed section. Zero for `stored`.
        struct CodecAlone {
            let codec: SectionCodec, level: Int
            var sections: [(codec: SectionCodec, stored: [UInt8], raw: [UInt8])] = []
            var scratch: [UInt8]
            var sink = 0

            init(_ frame: [UInt8], pipeline: Pipeline, limits: FrameLimits) throws {
                (codec, level) = (pipeline.codec.codec, pipeline.codec.level)
                let header = try frame.withUnsafeBytes { (f) throws(UplinkError) in try FrameReader.readHeader(f, limits: limits) }
                for s in header.sections where codec != .stored {
                    let stored = Array(frame[s.offset..<(s.offset + s.storedLength)])
                    var raw = [UInt8](repeating: 0, count: s.rawLength)
                    try typed {
                        try stored.withUnsafeBytes { src in try raw.withUnsafeMutableBytes { try s.codec.decompress(src, into: $0) } }
                    }
                    sections.append((s.codec, stored, raw))
                }
                scratch = [UInt8](repeating: 0, count: sections.map(\.raw.count).max() ?? 0)
            }

            /// Seconds to compress every section as the frame writer does (sampling included),
            /// into one warm buffer as the writer compresses into the frame; 0 for stored.
            mutating func encode() throws -> Double {
                guard codec != .stored else { return 0 }
                let t0 = DispatchTime.now().uptimeNanoseconds
                for s in sections {
                    sink &+= try typed {
                        try s.raw.withUnsafeBytes { r in
                            try scratch.withUnsafeMutableBytes { out in
                                try FrameWriter.compressSection(r, codec: codec, level: level, into: UnsafeMutableRawBufferPointer(rebasing: out[0..<r.count])) ?? 0
                            }
                        }
                    }
                }
                return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            }

            /// Seconds to decompress every compressed section; 0 for stored.
            mutating func decode() throws -> Double {
                guard codec != .stored else { return 0 }
                let t0 = DispatchTime.now().uptimeNanoseconds
                for s in sections where s.codec != .stored {
                    try typed {
                        try s.stored.withUnsafeBytes { src in
                            try scratch.withUnsafeMutableBytes { try s.codec.decompress(src, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<s.raw.count])) }
                        }
                    }
                }
                sink &+= Int(scratch.first ?? 0)
                return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            }
        }

        /// Seeded heavy-tailed values (a cube of a uniform, times a scale) with 30% exact zeros.
        static func synthetic(count: Int, seed: UInt64) -> [Float] {
            var rng = SplitMix64(seed: seed)
            return (0..<count).map { _ in
                let r = rng.next()
                if r % 10 < 3 { return 0 }
                let u = Float(r >> 40) * 0x1p-24 - 0.5
                return u * u * u * 0.05
            }
        }
    }
}
