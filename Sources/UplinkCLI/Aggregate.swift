import Synchronization
import ArgumentParser
import Dispatch
import Foundation
import UplinkAggregation
import UplinkCodec
import UplinkTensorIO

extension UplinkCommand {
    /// `uplink aggregate`: one server round from frames on disk.
    struct Aggregate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Aggregate a round of frames into a new global model.",
            discussion: """
                Example: uplink aggregate --strategy fedavg --model global.npy --out new.npy c1.upl c2.upl c3.upl
                Strategies: fedavg, fedavgm, fedadam, fedyogi, fedadagrad, median, trimmed-mean, norm-bounded,
                with parameters as in "--strategy fedadam lr=0.01" (see docs/aggregation.md). Each frame's
                client id is its file name without extension; bad frames are reported and skipped.
                """)

        @Option(parsing: .upToNextOption, help: "The strategy and its parameters, e.g. fedavg, \"fedadam lr=0.01\", \"trimmed-mean beta=0.1\".")
        var strategy: [String]

        @Option(help: "The current global model (.npy or .safetensors); its layout is the model every frame must match.")
        var model: String

        @Option(name: .customLong("out"), help: "Where to write the new global model (.npy or .safetensors).")
        var output: String

        @Option(help: "Server optimizer state (momentum, Adam moments): read if present, written after the round.")
        var state: String?

        @Option(help: "The round id frames must carry (default: the round of the first readable frame).")
        var round: UInt64?

        @Option(help: "Largest accepted L2 norm of an update.")
        var normBound: Double?

        @Option(help: "What to do with an update over --norm-bound: reject or clip.")
        var normPolicy: String = "reject"

        @Option(help: "Frames decoded in parallel.")
        var threads: Int = 1

        @Flag(help: "Print a JSON summary instead of text.")
        var json = false

        @Argument(help: "The frames of the round.")
        var frames: [String] = []

        func run() throws {
            try reportingErrors(json: json) {
                // "--strategy fedadam lr=0.01 a.upl b.upl": words without '=' after the name are frames.
                let words = strategy.flatMap { $0.split(separator: " ").map(String.init) }
                guard let name = words.first else { throw UplinkError(.invalidArgument, "--strategy needs a name") }
                let params = words.dropFirst().filter { $0.contains("=") }
                let files = words.dropFirst().filter { !$0.contains("=") } + frames
                let chosen = try Strategy(parsing: ([name] + params).joined(separator: " "))
                guard let policy = NormPolicy(rawValue: normPolicy) else {
                    throw UplinkError(.invalidArgument, "--norm-policy \(normPolicy) must be reject or clip")
                }
                guard !files.isEmpty else { throw UplinkError(.invalidArgument, "no frames given") }
                guard (1...64).contains(threads) else { throw UplinkError(.invalidArgument, "--threads must be in 1…64") }
                if let normBound, !(normBound > 0) { throw UplinkError(.invalidArgument, "--norm-bound must be > 0") }

                let reader = try TensorFileReader(path: model)
                let layout = reader.layout
                let roundID = try round ?? firstRound(files, layout: layout)
                let aggregator = try RoundAggregator(
                    layout: layout, strategy: chosen,
                    policy: RoundPolicy(round: roundID, normBound: normBound, normPolicy: policy),
                    shards: threads)

                let rejected = Mutex<[[String: Any]]>([])
                DispatchQueue.concurrentPerform(iterations: threads) { worker in
                    for (i, file) in files.enumerated() where i % threads == worker {
                        do throws(UplinkError) {
                            let bytes = try TensorFiles.readFile(file)
                            try aggregator.submit(bytes, clientID: clientID(file))
                        } catch {
                            rejected.withLock {
                                $0.append(["file": file, "index": i, "code": Int(error.code.rawValue), "category": error.category.rawValue, "message": error.message])
                            }
                        }
                    }
                }
                let rejections = rejected.withLock { $0 }.sorted { ($0["index"] as! Int) < ($1["index"] as! Int) }

                var optimizer = ServerOptimizer(strategy: chosen, layout: layout)
                if let state, FileManager.default.fileExists(atPath: state) {
                    do throws(UplinkError) {
                        optimizer = try ServerOptimizer(serialized: try TensorFiles.readFile(state), strategy: chosen, layout: layout)
                    } catch {
                        throw UplinkError(error.code, "\(state): \(error.message)")
                    }
                }
                let result: RoundResult
                do throws(UplinkError) {
                    result = try aggregator.close()
                } catch {
                    // One JSON document: the summary, with the error in it.
                    FileHandle.standardError.write(Data("uplink: \(error)\n".utf8))
                    var s = summary(nil, rejections, roundID, chosen, nil)
                    s["error"] = ["code": Int(error.code.rawValue), "category": error.category.rawValue, "message": error.message]
                    if json { printJSON(s) } else { printText(s) }
                    throw ExitCode(1)
                }
                try applyStreaming(result, reader: reader, optimizer: &optimizer)
                if let state { try TensorFiles.writeFile(state, optimizer.serialized()) }
                let s = summary(result, rejections, roundID, chosen, optimizer)
                if json { printJSON(s) } else { printText(s) }
            }
        }

        /// Reads the model block by block, applies Δ, writes the new model: peak memory is the
        /// aggregate plus one block, not a second copy of the model.
        func applyStreaming(_ result: RoundResult, reader: TensorFileReader, optimizer: inout ServerOptimizer) throws(UplinkError) {
            let n = reader.layout.parameterCount
            let writer = try TensorFileWriter(path: output, layout: reader.layout)
            let block = 1 << 16
            var model = [Float](repeating: 0, count: block)
            var delta = [Float](repeating: 0, count: block)
            var start = 0
            while start < n {
                let end = min(n, start + block)
                let count = end - start
                try typed {
                    try model.withUnsafeMutableBufferPointer { m in
                        try delta.withUnsafeMutableBufferPointer { d in
                            let mb = UnsafeMutableBufferPointer(rebasing: m[0..<count])
                            let db = UnsafeMutableBufferPointer(rebasing: d[0..<count])
                            try reader.read(start..<end, into: mb)
                            result.delta(start..<end, into: db)
                            optimizer.step(model: mb, delta: UnsafeBufferPointer(db), range: start..<end)
                            try writer.write(UnsafeBufferPointer(mb))
                        }
                    }
                }
                start = end
            }
            optimizer.finishRound()
            try writer.finish()
        }

        func clientID(_ file: String) -> String {
            ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        }

        func firstRound(_ files: [String], layout: ModelLayout) throws(UplinkError) -> UInt64 {
            for file in files {
                guard let bytes = try? TensorFiles.readFile(file),
                      let h = try? bytes.withUnsafeBytes({ try FrameReader.readHeader($0, limits: .forModel(layout)) })
                else { continue }
                return h.round
            }
            throw UplinkError(.emptyRound, "no frame could be read, so no round id; pass --round")
        }

        func summary(_ r: RoundResult?, _ rejected: [[String: Any]], _ round: UInt64, _ s: Strategy, _ o: ServerOptimizer?) -> [String: Any] {
            var out: [String: Any] = [
                "strategy": s.description, "round": round, "output": output,
                "rejected": rejected.map { var e = $0; e.removeValue(forKey: "index"); return e },
                "rejected_count": rejected.count, "peak_rss_bytes": peakResidentBytes(),
            ]
            if let r {
                out["accepted_count"] = r.accepted.count
                out["total_weight"] = r.totalWeight
                out["accepted"] = r.accepted.map {
                    ["client": $0.clientID, "samples": $0.samples, "weight": $0.weight, "norm": $0.norm, "scale": $0.scale, "bytes": $0.bytes, "transmitted": $0.transmitted] as [String: Any]
                }
                out["bytes_received"] = r.accepted.reduce(0) { $0 + $1.bytes }
            } else {
                out["accepted_count"] = 0
            }
            if let o { out["optimizer_rounds"] = o.rounds }
            return out
        }

        func printText(_ s: [String: Any]) {
            print("round \(s["round"]!): \(s["accepted_count"]!) accepted, \(s["rejected_count"]!) rejected; \(s["strategy"]!) → wrote \(output)")
            for a in (s["accepted"] as? [[String: Any]]) ?? [] {
                let scale = a["scale"] as! Double
                print("  accepted \(a["client"]!): \(a["samples"]!) samples, \(a["bytes"]!) bytes, norm \(String(format: "%.4g", a["norm"] as! Double))\(scale < 1 ? String(format: ", clipped ×%.3g", scale) : "")")
            }
            for r in (s["rejected"] as? [[String: Any]]) ?? [] {
                print("  rejected \(r["file"]!): error \(r["code"]!) (\(r["category"]!)): \(r["message"]!)")
            }
            print("  peak memory \(humanBytes(s["peak_rss_bytes"] as! Int))")
        }
    }
}

/// The process's peak resident set size, in bytes.
func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Int(usage.ru_maxrss)
    #endif
}
