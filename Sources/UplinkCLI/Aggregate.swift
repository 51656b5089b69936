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
                with parameters as in "--strategy fedadam lr=0.01" (see docs/aggregation.md).

                Each frame's client id is its file name without extension. Bad frames are reported and
                skipped; a frame never decides anything unless it is accepted. A client id counts once
                (the first frame in argument order that is accepted), and so do byte-identical frames.
                Without --round, the round is the one carried by the most frames that pass every other
                check (ties: the later round); this reads every frame twice, so pass --round when known.
                The result is the same for any --threads. With --state, the model and the state are
                committed together (a crash leaves both old or both new) and re-running an applied
                round changes nothing.
                """)

        @Option(parsing: .upToNextOption, help: "The strategy and its parameters, e.g. fedavg, \"fedadam lr=0.01\", \"trimmed-mean beta=0.1\".")
        var strategy: [String]

        @Option(help: "The current global model (.npy or .safetensors); its layout is the model every frame must match.")
        var model: String

        @Flag(help: "Leave tensors that are not floating point (int64 counters, bool masks) out of --model's layout instead of refusing it, as the clients did with encode --skip-non-float; --out then holds the float tensors.")
        var skipNonFloat = false

        @Option(name: .customLong("out"), help: "Where to write the new global model (.npy or .safetensors); may be --model itself.")
        var output: String

        @Option(help: "Server optimizer state (momentum, Adam moments, last round applied): read if present, written with the model.")
        var state: String?

        @Option(parsing: .unconditional, help: "The round id frames must carry, 0…2^64 − 1 (default: the round of most frames that pass every other check).")
        var round: String?

        @Option(parsing: .unconditional, help: "Largest accepted L2 norm of an update.")
        var normBound: Double?

        @Option(help: "What to do with an update over --norm-bound: reject or clip.")
        var normPolicy: String = "reject"

        @Option(parsing: .unconditional, help: "Most training samples one frame may declare (its FedAvg weight); frames above are refused (error 906).")
        var maxSamples: UInt64 = RoundPolicy.defaultMaxSamples

        @Option(parsing: .unconditional, help: "Most memory median and trimmed mean may hold for the round's updates, in bytes (suffixes K, M, G); frames beyond are refused (error 408).")
        var memoryLimit: String = "4G"

        @Option(parsing: .unconditional, help: "Frames decoded in parallel.")
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
                if let normBound, !(normBound > 0 && normBound.isFinite) { throw UplinkError(.invalidArgument, "--norm-bound must be a finite number > 0") }
                let memory = try parseByteCount(memoryLimit, option: "--memory-limit")
                let requestedRound = try round.map { (text) throws(UplinkError) in try parseRound(text) }

                // A commit a crash interrupted is finished before anything is read.
                let journal = state.map { $0 + ".commit" }
                if let journal, try DurableCommit.recover(journal: journal) {
                    note("finished the commit of a previous run that was interrupted (\(journal))")
                }
                let reader = try TensorFileReader(path: model, nonFloat: skipNonFloat ? .skip : .refuse)
                let layout = reader.layout
                var optimizer = ServerOptimizer(strategy: chosen, layout: layout)
                if let state, FileManager.default.fileExists(atPath: state) {
                    do throws(UplinkError) {
                        optimizer = try ServerOptimizer(serialized: try TensorFiles.readFile(state, maxBytes: 16 * layout.parameterCount + (1 << 20), overLimit: .malformedState), strategy: chosen, layout: layout)
                    } catch {
                        throw UplinkError(error.code, "\(state): \(error.message)")
                    }
                }
                let limits = FrameLimits.forModel(layout)
                let roundPolicy = { (r: UInt64) in
                    RoundPolicy(round: r, normBound: normBound, normPolicy: policy, limits: limits, maxSamples: maxSamples, memoryLimit: memory)
                }
                var rejections: [Int: UplinkError] = [:]
                let roundID: UInt64
                if let requestedRound {
                    roundID = requestedRound
                } else {
                    let probe = try RoundAggregator(layout: layout, strategy: chosen, policy: roundPolicy(0))
                    guard let r = chooseRound(files, probe, maxBytes: limits.maxFrameBytes, rejections: &rejections) else {
                        let error = UplinkError(.emptyRound, "no frame passed the checks, so no round id could be chosen and nothing was written")
                        FileHandle.standardError.write(Data("uplink: \(error)\n".utf8))
                        var s = summary(nil, rejectionList(rejections, files), nil, chosen, nil, written: false)
                        s["error"] = ["code": Int(error.code.rawValue), "category": error.category.rawValue, "message": error.message]
                        if json { printJSON(s) } else { printText(s) }
                        throw ExitCode(1)
                    }
                    roundID = r
                    rejections = [:]
                }
                if let last = optimizer.lastRound, last == roundID, let state {
                    for path in [output, state, state + ".commit"] { DurableFile.removeStaleTemporaries(of: path) }
                    let message = "round \(roundID) was already applied (\(state) says so); nothing was written"
                    if json { printJSON(["strategy": chosen.description, "round": roundID, "already_applied": true, "message": message]) } else { print(message) }
                    return
                }
                let aggregator = try RoundAggregator(layout: layout, strategy: chosen, policy: roundPolicy(roundID))
                submitInOrder(files, aggregator, maxBytes: limits.maxFrameBytes, rejections: &rejections)
                let rejected = rejectionList(rejections, files)
                do throws(UplinkError) {
                    let result = try aggregator.close()
                    try applyStreaming(result, reader: reader, optimizer: &optimizer)
                    let s = summary(result, rejected, roundID, chosen, optimizer, written: true)
                    if json { printJSON(s) } else { printText(s) }
                } catch {
                    // One JSON document: the summary, with the error in it; nothing was written.
                    FileHandle.standardError.write(Data("uplink: \(error)\n".utf8))
                    var s = summary(nil, rejected, roundID, chosen, nil, written: false, accepted: aggregator.accepted)
                    s["error"] = ["code": Int(error.code.rawValue), "category": error.category.rawValue, "message": error.message]
                    if json { printJSON(s) } else { printText(s) }
                    throw ExitCode(1)
                }
            }
        }

        /// Prepares frames on `threads` workers and commits them in argument order, so the
        /// accepted set and the sum do not depend on thread timing.
        func submitInOrder(_ files: [String], _ aggregator: RoundAggregator, maxBytes: Int, rejections: inout [Int: UplinkError]) {
            let failures = Locked<[Int: UplinkError]>([:])
            let turn = Turnstile()
            // Real threads, not concurrentPerform: a worker blocks in the turnstile until the
            // frame before its own is committed, which needs every worker running at once.
            runOnThreads(threads) { worker in
                for i in stride(from: worker, to: files.count, by: threads) {
                    let prepared: Result<PreparedUpdate, UplinkError>
                    do throws(UplinkError) {
                        prepared = .success(try aggregator.prepare(try TensorFiles.readFile(files[i], maxBytes: maxBytes)))
                    } catch {
                        prepared = .failure(error)
                    }
                    turn.wait(for: i)
                    do throws(UplinkError) {
                        try aggregator.commit(try prepared.get(), clientID: clientID(files[i]))
                    } catch {
                        failures.withLock { $0[i] = error }
                    }
                    turn.advance()
                }
            }
            rejections = failures.withLock { $0 }
        }

        func rejectionList(_ rejections: [Int: UplinkError], _ files: [String]) -> [[String: Any]] {
            rejections.sorted { $0.key < $1.key }.map { (i, e) in
                ["file": files[i], "code": Int(e.code.rawValue), "category": e.category.rawValue, "message": e.message] as [String: Any]
            }
        }

        /// The round carried by the most frames that pass every check but the round's (one vote
        /// per client id and per frame content); ties go to the later round. `nil` when no frame
        /// passes, with each frame's error in `rejections`.
        func chooseRound(_ files: [String], _ probe: RoundAggregator, maxBytes: Int, rejections: inout [Int: UplinkError]) -> UInt64? {
            let votes = Locked<[Int: (round: UInt64, digest: [UInt8])]>([:])
            let failures = Locked<[Int: UplinkError]>([:])
            DispatchQueue.concurrentPerform(iterations: threads) { worker in
                for i in stride(from: worker, to: files.count, by: threads) {
                    do throws(UplinkError) {
                        let p = try probe.prepare(try TensorFiles.readFile(files[i], maxBytes: maxBytes), checkingRound: false)
                        votes.withLock { $0[i] = (p.round, p.contentDigest) }
                    } catch {
                        failures.withLock { $0[i] = error }
                    }
                }
            }
            rejections = failures.withLock { $0 }
            var seenIDs = Set<[UInt8]>(), seenContent = Set<[UInt8]>()
            var count: [UInt64: Int] = [:]
            for (i, v) in votes.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
                guard seenIDs.insert(Array(clientID(files[i]).utf8)).inserted, seenContent.insert(v.digest).inserted else { continue }
                count[v.round, default: 0] += 1
            }
            return count.max(by: { ($0.value, $0.key) < ($1.value, $1.key) })?.key
        }

        /// Reads the model block by block, applies Δ, writes the new model (and the state) as one
        /// commit: peak memory is the aggregate plus one block, not a second copy of the model.
        func applyStreaming(_ result: RoundResult, reader: TensorFileReader, optimizer: inout ServerOptimizer) throws(UplinkError) {
            let n = reader.layout.parameterCount
            let writer = try TensorFileWriter(path: output, layout: reader.layout)
            let block = 1 << 16
            var model = [Float](repeating: 0, count: block)
            var delta = [Float](repeating: 0, count: block)
            var next = optimizer
            var start = 0
            while start < n {
                let end = min(n, start + block)
                let count = end - start
                try model.withUnsafeMutableBufferPointer { (m) throws(UplinkError) in
                    try delta.withUnsafeMutableBufferPointer { (d) throws(UplinkError) in
                        let mb = UnsafeMutableBufferPointer(rebasing: m[0..<count])
                        let db = UnsafeMutableBufferPointer(rebasing: d[0..<count])
                        try reader.read(start..<end, into: mb)
                        result.delta(start..<end, into: db)
                        try next.step(model: mb, delta: UnsafeBufferPointer(db), range: start..<end)
                        try writer.write(UnsafeBufferPointer(mb))
                    }
                }
                start = end
            }
            try next.finishRound(round: result.round)
            let modelFile = try writer.staged()
            if let state {
                let stateFile = try DurableFile.Writer(path: state)
                try stateFile.write(next.serialized())
                try DurableCommit.commit([modelFile, stateFile], journal: state + ".commit")
            } else {
                try modelFile.commit()
            }
            optimizer = next
        }

        func clientID(_ file: String) -> String {
            ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        }

        func summary(_ r: RoundResult?, _ rejected: [[String: Any]], _ round: UInt64?, _ s: Strategy, _ o: ServerOptimizer?, written: Bool, accepted: [AcceptedUpdate] = []) -> [String: Any] {
            var out: [String: Any] = [
                "strategy": s.description, "round": round.map { $0 as Any } ?? NSNull(),
                "rejected": rejected, "rejected_count": rejected.count, "peak_rss_bytes": peakResidentBytes(),
            ]
            if written {
                out["output"] = output
                if let state { out["state"] = state }
            }
            let list = r?.accepted ?? accepted
            if let r { out["total_weight"] = r.totalWeight }
            out["accepted_count"] = list.count
            out["accepted"] = list.map {
                ["client": $0.clientID, "samples": $0.samples, "weight": $0.weight, "norm": $0.norm, "scale": $0.scale, "bytes": $0.bytes, "transmitted": $0.transmitted] as [String: Any]
            }
            out["bytes_received"] = list.reduce(0) { $0 + $1.bytes }
            if let o { out["optimizer_rounds"] = o.rounds }
            return out
        }

        func printText(_ s: [String: Any]) {
            let outcome = s["output"] != nil ? "→ wrote \(output)" : "→ nothing written"
            let round = (s["round"] as? UInt64).map { "round \($0)" } ?? "no round"
            print("\(round): \(s["accepted_count"]!) accepted, \(s["rejected_count"]!) rejected; \(s["strategy"]!) \(outcome)")
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

/// Runs `body(0..<count)` on `count` threads of their own and waits for all of them.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let done = DispatchGroup()
    for w in 0..<count {
        done.enter()
        let t = Thread {
            body(w)
            done.leave()
        }
        t.stackSize = 8 << 20
        t.start()
    }
    done.wait()
}

/// Lets thread `i` through only after thread `i − 1`: ordered commits from parallel work.
final class Turnstile: @unchecked Sendable {
    private let condition = NSCondition()
    private var next = 0

    func wait(for i: Int) {
        condition.lock()
        while next != i { condition.wait() }
        condition.unlock()
    }

    func advance() {
        condition.lock()
        next += 1
        condition.broadcast()
        condition.unlock()
    }
}

/// `"4G"`, `"512M"`, `"100000"` → bytes.
func parseByteCount(_ text: String, option: String) throws(UplinkError) -> Int {
    let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
    var digits = Substring(text.uppercased())
    var unit = 1
    if let last = digits.last, let u = units[last] {
        unit = u
        digits = digits.dropLast()
    }
    guard let v = Int(digits), v > 0, v <= Int.max / unit else {
        throw UplinkError(.invalidArgument, "\(option) \(UplinkError.quoted(text)) must be a positive byte count such as 4G, 512M or 100000")
    }
    return v * unit
}

/// A round id: a decimal integer in 0…2^64 − 1.
func parseRound(_ text: String) throws(UplinkError) -> UInt64 {
    guard let r = UInt64(text) else {
        throw UplinkError(.invalidArgument, "--round \(UplinkError.quoted(text)) must be a whole number from 0 to 18446744073709551615")
    }
    return r
}

/// The process's peak resident set size, in bytes.
func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    // VmHWM starts afresh at exec; ru_maxrss of a posix_spawn'ed process can carry the
    // parent's peak (seen: 427 MiB reported for a 29 MiB run under a 400 MiB parent).
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
       let kib = Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") {
        return kib * 1024
    }
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Int(usage.ru_maxrss)
    #endif
}
