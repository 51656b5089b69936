import Foundation
import Logging
import UplinkAggregation
import UplinkCodec
import UplinkTensorIO

/// Test hook: `UPLINK_CRASH_AT=<point>[:<n>]` kills the process (`_exit(137)`, as `kill -9`
/// would: no cleanup, no flush) the n-th time (default 1st) execution reaches `<point>`.
/// The crash tests use it to stop the server between two durable steps.
enum CrashPoint {
    private static let plan: (point: String, count: Int)? = {
        guard let spec = ProcessInfo.processInfo.environment["UPLINK_CRASH_AT"], !spec.isEmpty else { return nil }
        let parts = spec.split(separator: ":")
        return (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    }()
    private static let hits = Locked<[String: Int]>([:])

    static func reach(_ point: String) {
        guard let plan, plan.point == point else { return }
        let n = hits.withLock { h -> Int in
            h[point, default: 0] += 1
            return h[point]!
        }
        if n == plan.count { _exit(137) }
    }
}

/// The outcome of a check-in.
enum CheckInResult: Sendable {
    case selected(round: UInt64, deadline: Double, pipeline: String, model: ModelInfo)
    case retry(after: Double, reason: String)
    case finished
}

/// A published global model.
struct ModelInfo: Sendable, Hashable {
    var round: UInt64
    var path: String
    var bytes: Int
    var etag: String
}

/// The coordinator: the round in progress (its ``RoundMachine`` and ``RoundAggregator``), the
/// upload resources, and the ledger that makes both survive a crash. Every method blocks (file
/// and database I/O): call them from the server's I/O thread pool.
final class Coordinator: Sendable {
    let config: ServerConfiguration
    let data: DataDirectory
    let ledger: Ledger
    let logger: Logger
    let metrics: ServerMetrics
    let authority: TokenAuthority
    /// Called once when the last round (``ServerConfiguration/rounds``) has closed.
    let onFinished: @Sendable () -> Void

    struct RoundState {
        var machine: RoundMachine
        var aggregator: RoundAggregator
        var global: [Float]
        var optimizer: ServerOptimizer
        var model: ModelInfo
        var nextSequence: Int
        var finished: Bool
    }

    private let current: Locked<RoundState>
    private let slots = Locked<[String: UploadSlot]>([:])
    private let models = Locked<[UInt64: ModelInfo]>([:])
    private let clock: @Sendable () -> Double
    /// Upload appends in flight (bodies being received).
    let inFlight = Locked(0)
    /// The largest upload accepted (`max-size`): ``uploadBound(_:)``.
    let maxUploadBytes: Int

    /// The largest frame the allowed pipelines make for this model, with a margin: each
    /// pipeline encodes a sample of up to 2^16 incompressible values large enough to pass any
    /// threshold (the worst case for codecs, thresholds and index coding alike); the largest,
    /// scaled to the model's parameter count, ×1.5, plus the tensor table and 64 KiB, is the
    /// limit, never more than the model's frame limit (`FrameLimits.forModel`).
    /// `--max-upload-bytes` overrides it.
    static func uploadBound(_ config: ServerConfiguration) throws(UplinkError) -> Int {
        if let set = config.limits.maxUploadBytes { return set }
        let modelBound = FrameLimits.forModel(config.layout).maxFrameBytes
        let n = config.layout.parameterCount
        // The model's tensors, each cut to a few thousand values (about 2^16 in all), stand for
        // the model: per-tensor counts (`topk 17 scope=tensor`) stay per tensor, fractions scale
        // with the parameter count.
        let cap = max(64, (1 << 16) / max(1, config.layout.tensors.count))
        let sampleLayout = try ModelLayout(config.layout.elementCounts.enumerated().map { i, count in TensorSpec(name: "t\(i)", shape: [max(1, min(count, cap))]) })
        let m = sampleLayout.parameterCount
        var rng = SplitMix64(seed: 0x55504C4B)
        let sample = (0..<m).map { _ in Float(Int64(bitPattern: rng.next()) >> 40) * 0x1p-14 }
        var worst = 0
        for pipeline in config.pipelines {
            var encoder = FrameEncoder(layout: sampleLayout, pipeline: pipeline)
            worst = max(worst, try encoder.encode(sample, round: 0, sampleCount: 1).count)
        }
        let scaled = Int((Double(worst) * Double(n) / Double(m) * 1.5).rounded(.up)) + config.layout.tensorTableLength + (64 << 10)
        return min(modelBound, scaled)
    }

    init(config: ServerConfiguration, logger: Logger, metrics: ServerMetrics, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }, onFinished: @escaping @Sendable () -> Void) throws(UplinkError) {
        try config.validate()
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.clock = clock
        self.onFinished = onFinished
        self.authority = try TokenAuthority(secret: config.tokenSecret)
        self.maxUploadBytes = try Self.uploadBound(config)
        let data = try DataDirectory(config.dataDirectory)
        self.data = data
        let ledger = try Ledger(path: data.database, fingerprint: config.layout.fingerprint, parameterCount: config.layout.parameterCount)
        self.ledger = ledger
        let started = clock()
        let state = try Self.recover(config: config, data: data, ledger: ledger, logger: logger, now: started)
        current = Locked(state)
        models.withLock { $0[state.model.round] = state.model }
        let recovered = Int(state.machine.reported.count)
        logger.info("coordinator ready", metadata: [
            "round": "\(state.machine.round)", "accepted": "\(recovered)", "recoverySeconds": "\(String(format: "%.3f", clock() - started))",
        ])
        metrics.setRound(state.machine.round)
        if !state.finished { try advance() }
    }

    var now: Double { clock() }

    // MARK: Recovery

    private static func policy(_ config: ServerConfiguration, round: UInt64) -> RoundPolicy {
        RoundPolicy(round: round, normBound: config.normBound, normPolicy: config.normPolicy, limits: .forModel(config.layout), maxSamples: config.maxSamples)
    }

    /// Rebuilds the round in progress from the ledger: its machine from the recorded check-ins
    /// and reports, its sum from the accepted frames in acceptance order (the same order, so
    /// the same bits, as before the crash).
    private static func recover(config: ServerConfiguration, data: DataDirectory, ledger: Ledger, logger: Logger, now: Double) throws(UplinkError) -> RoundState {
        if try ledger.lastRound() == nil {
            var optimizer = ServerOptimizer(strategy: config.strategy, layout: config.layout)
            try publish(config: config, data: data, round: 1, model: config.initialModel, optimizer: &optimizer)
            try ledger.openRound(1, at: now)
        }
        guard let last = try ledger.lastRound() else { throw UplinkError(.io, "the ledger lost its first round") }
        let round = last.round
        let limit = Int64.max
        let global = try FrameDecoder(limits: .forModel(config.layout)).decode(try Durable.read(data.globalModel(round), maxBytes: limit), layout: config.layout).values
        let optimizer = try ServerOptimizer(serialized: try Durable.read(data.optimizerState(round), maxBytes: limit), strategy: config.strategy, layout: config.layout)
        let downlink = data.downlinkModel(round)
        let model = ModelInfo(round: round, path: downlink, bytes: Int(Durable.fileSize(downlink) ?? 0), etag: try etag(of: downlink))
        var machine = RoundMachine(round: round, rules: config.rules, openedAt: last.openedAt)
        let aggregator = try RoundAggregator(layout: config.layout, strategy: config.strategy, policy: policy(config, round: round))
        var next = 0
        if last.state == "open" {
            for c in try ledger.checkIns(round: round) { _ = machine.checkIn(c.client, at: c.at) }
            let recorded = try ledger.accepted(round: round)
            // A frame moved into the round's directory by a process that died before the ledger
            // recorded it was never acknowledged: it goes back to its upload, whose client
            // completes it again (and gets the answer it never received).
            let known = Set(recorded.map { ($0.file as NSString).lastPathComponent })
            let names = (try? FileManager.default.contentsOfDirectory(atPath: data.roundDirectory(round))) ?? []
            for name in names where name.hasSuffix(".upl") && !known.contains(name) {
                let id = String(name.dropLast(4).split(separator: "-").last ?? "")
                let path = data.roundDirectory(round) + "/" + name
                if let upload = try ledger.upload(id), upload.state == "open" {
                    try Durable.rename(path, to: data.part(id))
                    logger.notice("returned an unrecorded frame to its upload", metadata: ["upload": "\(id)"])
                } else {
                    unlink(path)
                }
            }
            for row in recorded {
                let frame = try Durable.read(row.file, maxBytes: Int64(config.maxFrameBytes))
                try aggregator.commit(try aggregator.prepare(frame), clientID: row.client)
                _ = machine.report(row.client, at: row.at)
                next = row.sequence + 1
            }
        } else {
            // The last round finished and no next one was opened: the run is over.
            machine.advance(to: .infinity)
        }
        // Part files of uploads that are no longer open are leftovers of a crash.
        for state in ["cancelled", "expired", "rejected"] {
            for u in try ledger.uploads(state: state) { unlink(data.part(u.id)) }
        }
        return RoundState(machine: machine, aggregator: aggregator, global: global, optimizer: optimizer, model: model, nextSequence: next, finished: last.state != "open")
    }

    /// Writes the models clients of `round` start from: the exact global model, its downlink
    /// encoding and the optimizer state, each atomically and durably.
    private static func publish(config: ServerConfiguration, data: DataDirectory, round: UInt64, model: [Float], optimizer: inout ServerOptimizer) throws(UplinkError) {
        var exact = FrameEncoder(layout: config.layout, pipeline: try Pipeline(parsing: "fp32 | lz4"))
        try DurableFile.replace(data.globalModel(round), with: try exact.encode(model, round: round))
        var down = FrameEncoder(layout: config.layout, pipeline: config.downlink)
        try DurableFile.replace(data.downlinkModel(round), with: try down.encode(model, round: round))
        try DurableFile.replace(data.optimizerState(round), with: optimizer.serialized())
    }

    static func etag(of path: String) throws(UplinkError) -> String {
        let bytes = try Durable.read(path, maxBytes: Int64.max)
        return "\"" + MessageAuthentication.sha256Hex(bytes) + "\""
    }

    // MARK: Rounds

    /// Applies the deadline; finishes the round (and opens the next) when it closed or was
    /// abandoned. Called by the clock service and after every report.
    func advance() throws(UplinkError) {
        try current.withLock { (s) throws(UplinkError) in
            guard !s.finished else { return }
            s.machine.advance(to: clock())
            if !s.machine.isOpen { try finish(&s) }
        }
    }

    private func finish(_ s: inout RoundState) throws(UplinkError) {
        let round = s.machine.round
        let closedAt = s.machine.closedAt ?? clock()
        var global = s.global
        var optimizer = s.optimizer
        var outcome = s.machine.state == .closed ? "closed" : "abandoned"
        var reason = s.machine.closeReason.map { $0 == .target ? "target" : "deadline" } ?? "deadline"
        if s.machine.state == .closed {
            do {
                let result = try s.aggregator.close()
                try result.apply(to: &global, optimizer: &optimizer)
            } catch {
                // A round whose result is not finite (or empty) leaves the model as it was.
                logger.error("round result refused; model unchanged", metadata: ["round": "\(round)", "error": "\(error)"])
                global = s.global
                optimizer = s.optimizer
                outcome = "abandoned"
                reason = "error \(error.code)"
            }
        } else {
            _ = try? s.aggregator.close()
        }
        let last = config.rounds.map { round >= UInt64($0) } ?? false
        let next = round + 1
        if !last { try Self.publish(config: config, data: data, round: next, model: global, optimizer: &optimizer) }
        CrashPoint.reach("close-published")
        let opensAt = clock()
        try ledger.finishRound(round, state: outcome, at: closedAt, reason: reason, next: last ? nil : next, nextOpensAt: opensAt)
        CrashPoint.reach("close-recorded")
        metrics.roundFinished(outcome: outcome, seconds: closedAt - s.machine.openedAt, reports: s.machine.reported.count)
        logger.info("round finished", metadata: [
            "round": "\(round)", "outcome": "\(outcome)", "reason": "\(reason)", "reports": "\(s.machine.reported.count)",
        ])
        // Drop the finished round's open uploads.
        let stale = slots.withLock { m -> [UploadSlot] in
            let mine = m.values.filter { $0.round == round }
            for u in mine { m[u.id] = nil }
            return mine
        }
        for u in stale {
            u.state.withLock { $0.phase = "expired" }
            unlink(data.part(u.id))
        }
        if last {
            s.finished = true
            s.global = global
            s.optimizer = optimizer
            // Keep the final model where the next round's would be: models/final.upl.
            var exact = FrameEncoder(layout: config.layout, pipeline: try Pipeline(parsing: "fp32 | lz4"))
            try DurableFile.replace(data.models + "/final.upl", with: try exact.encode(global, round: round))
            onFinished()
            return
        }
        let downlink = data.downlinkModel(next)
        let info = ModelInfo(round: next, path: downlink, bytes: Int(Durable.fileSize(downlink) ?? 0), etag: try Self.etag(of: downlink))
        models.withLock { $0[next] = info }
        // Models older than two rounds are no longer handed out (a client still training on
        // one would be refused as late anyway): remove them, so a long run does not fill the disk.
        if next > 3 {
            let old = next - 3
            for path in [data.globalModel(old), data.downlinkModel(old), data.optimizerState(old)] { unlink(path) }
            models.withLock { $0[old] = nil }
        }
        s = RoundState(
            machine: RoundMachine(round: next, rules: config.rules, openedAt: opensAt),
            aggregator: try RoundAggregator(layout: config.layout, strategy: config.strategy, policy: Self.policy(config, round: next)),
            global: global, optimizer: optimizer, model: info, nextSequence: 0, finished: false)
        metrics.setRound(next)
    }

    /// The current round's number and whether the run is over.
    var round: (number: UInt64, finished: Bool) { current.withLock { ($0.machine.round, $0.finished) } }

    func checkIn(client: String) throws(UplinkError) -> CheckInResult {
        try advance()
        return try current.withLock { (s) throws(UplinkError) -> CheckInResult in
            guard !s.finished else { return .finished }
            let t = clock()
            // A client whose update is in comes back for the next round.
            if s.machine.reported.contains(client) {
                metrics.checkIn("retry")
                return .retry(after: max(1, s.machine.timeLeft(at: t).rounded(.up)), reason: "already-reported")
            }
            let before = s.machine.selected.count
            switch s.machine.checkIn(client, at: t) {
            case .selected(let deadline):
                try ledger.recordCheckIn(round: s.machine.round, client: client, at: t, sequence: before)
                metrics.checkIn("selected")
                return .selected(round: s.machine.round, deadline: deadline, pipeline: config.pipelines[0].description, model: s.model)
            case .alreadySelected(let deadline):
                metrics.checkIn("again")
                return .selected(round: s.machine.round, deadline: deadline, pipeline: config.pipelines[0].description, model: s.model)
            case .comeBack(let after):
                metrics.checkIn("retry")
                // Jitter spreads the returning clients over the window (pace steering).
                return .retry(after: (after * Double.random(in: 1...1.25)).rounded(.up), reason: s.machine.isOpen ? "round-full" : "round-closed")
            }
        }
    }

    func model(round: UInt64) -> ModelInfo? {
        if let m = models.withLock({ $0[round] }) { return m }
        let path = data.downlinkModel(round)
        guard let size = Durable.fileSize(path), let etag = try? Self.etag(of: path) else { return nil }
        let info = ModelInfo(round: round, path: path, bytes: Int(size), etag: etag)
        models.withLock { $0[round] = info }
        return info
    }

    // MARK: Uploads

    /// Creates an upload resource for `client` in `round` of `length` bytes.
    func createUpload(client: String, round: UInt64, length: Int64) throws(UplinkError) -> Result<UploadSlot, Problem> {
        try advance()
        let check: Problem? = current.withLock { s in
            if s.finished { return Problem.roundClosed(round, "the run is over") }
            if round != s.machine.round || !s.machine.isOpen {
                return round > s.machine.round ? Problem.notFound("round \(round) has not started") : Problem.roundClosed(round, "round \(round) is closed")
            }
            switch s.machine.canReport(client, at: clock()) {
            case nil: return nil
            case .notSelected?: return Problem.notSelected(round)
            case .alreadyReported?: return Problem.frameRejected(UplinkError(.duplicateClient, "client \(UplinkError.quoted(client)) already sent an update in round \(round)"), status: 409)
            case .roundClosed?: return Problem.roundClosed(round, "round \(round) is closed")
            }
        }
        if let check { return .failure(check) }
        guard length <= Int64(maxUploadBytes) else { return .failure(.tooLarge(length: length, limit: Int64(maxUploadBytes))) }
        // Only one update per client counts in a round: a new creation replaces the client's
        // older open uploads of this round (one whose 201 was lost to a cut is otherwise an
        // orphan that would count against the limit until its max-age).
        for old in try ledger.openUploads(client: client, round: round) {
            if let slot = try slot(old) { try cancel(slot) }
            metrics.uploadFinished("replaced")
        }
        guard try ledger.openUploads(client: client) < config.limits.maxOpenUploadsPerClient else {
            return .failure(.tooManyUploads(config.limits.maxOpenUploadsPerClient))
        }
        let id = MessageAuthentication.randomBytes(16).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        let t = clock()
        let row = Ledger.UploadRow(id: id, round: round, client: client, length: length, offset: 0, createdAt: t, expiresAt: t + Double(config.limits.maxAgeSeconds), state: "open")
        let file = try PartialFile(path: data.part(id), durableOffset: 0, create: true)
        try ledger.createUpload(row)
        let slot = UploadSlot(row: row, file: file)
        slots.withLock { $0[id] = slot }
        metrics.uploadCreated()
        return .success(slot)
    }

    /// The upload resource `id`, loaded from the ledger after a restart; `nil` if unknown.
    func slot(_ id: String) throws(UplinkError) -> UploadSlot? {
        guard id.utf8.count == 32, id.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        if let s = slots.withLock({ $0[id] }) { return s }
        guard let row = try ledger.upload(id) else { return nil }
        let file: PartialFile
        if row.state == "open" {
            file = try PartialFile(path: data.part(id), durableOffset: row.offset, create: false)
        } else {
            file = try PartialFile(path: "/dev/null", durableOffset: 0, create: false)
        }
        let slot = UploadSlot(row: row, file: file)
        return slots.withLock { m in
            if let existing = m[id] { return existing }
            m[id] = slot
            return slot
        }
    }

    /// Records that the bytes up to `offset` are fsynced.
    func recordOffset(_ slot: UploadSlot, _ offset: Int64) throws(UplinkError) {
        CrashPoint.reach("patch-synced")
        try ledger.setOffset(slot.id, offset)
        slot.state.withLock { $0.durableOffset = max($0.durableOffset, offset) }
        CrashPoint.reach("offset-recorded")
    }

    func cancel(_ slot: UploadSlot) throws(UplinkError) {
        try ledger.finishUpload(slot.id, state: "cancelled", code: nil, message: nil, response: nil)
        slot.state.withLock { $0.phase = "cancelled" }
        unlink(data.part(slot.id))
        slots.withLock { $0[slot.id] = nil }
        metrics.uploadFinished("cancelled")
    }

    /// Validates the complete frame of `slot` and adds it to the round: the frame is refused
    /// (with its code) or added to the sum, moved to the round's directory and recorded in the
    /// ledger, all before this returns, so the `2xx` it leads to acknowledges a durable update.
    func complete(_ slot: UploadSlot, client: String) throws(UplinkError) -> StoredResponse {
        if let stored = slot.state.withLock({ $0.response }) { return stored }
        // A round that closed (or an upload that expired) while the body streamed: the late
        // upload's answer, before its (removed) file is touched.
        let (liveRound, over) = current.withLock { ($0.machine.round, $0.finished) }
        if slot.round != liveRound || over || slot.phase != "open" {
            let problem = slot.phase == "expired" && slot.round == liveRound && !over
                ? Problem.notFound("upload \(slot.id) outlived its max-age")
                : Problem.roundClosed(slot.round, "round \(slot.round) closed before upload \(slot.id) completed")
            return StoredResponse(status: problem.status, contentType: "application/problem+json", body: problem.json)
        }
        let frame = try Durable.read(data.part(slot.id), maxBytes: slot.length)
        guard Int64(frame.count) == slot.length else { throw UplinkError(.io, "upload \(slot.id) holds \(frame.count) bytes, not its \(slot.length)") }
        let (aggregator, round) = current.withLock { ($0.aggregator, $0.machine.round) }
        let outcome: Result<StoredResponse, UplinkError>
        do throws(UplinkError) {
            guard slot.round == round else { throw UplinkError(.roundClosed, "round \(slot.round) is closed") }
            let header = try Self.header(frame, limits: .forModel(config.layout))
            guard config.pipelines.contains(where: { Self.sameWirePipeline($0, header.pipeline) }) else {
                throw UplinkError(.pipelineNotAllowed, "frame pipeline \(UplinkError.quoted(header.pipeline.description)) is not one this round allows: \(config.pipelines.map { UplinkError.quoted($0.description) }.joined(separator: ", "))")
            }
            let prepared = try aggregator.prepare(frame)
            outcome = .success(try commit(prepared, frame: frame, slot: slot, client: client))
        } catch {
            outcome = .failure(error)
        }
        switch outcome {
        case .success(let response):
            try advance()
            return response
        case .failure(let error):
            let problem = error.code == .roundClosed ? Problem.roundClosed(slot.round, error.message) : Problem.frameRejected(error, status: error.code == .duplicateClient ? 409 : 422)
            let stored = StoredResponse(status: problem.status, contentType: "application/problem+json", body: problem.json)
            try ledger.finishUpload(slot.id, state: "rejected", code: Int(error.code.rawValue), message: error.message, response: stored.stored)
            slot.state.withLock {
                $0.phase = "rejected"
                $0.response = stored
            }
            unlink(data.part(slot.id))
            metrics.frameRejected(code: Int(error.code.rawValue))
            metrics.uploadFinished("rejected")
            logger.notice("frame rejected", metadata: ["upload": "\(slot.id)", "client": "\(client)", "code": "\(error.code)", "reason": "\(error.message)"])
            return stored
        }
    }

    static func header(_ frame: [UInt8], limits: FrameLimits) throws(UplinkError) -> FrameHeader {
        do {
            return try frame.withUnsafeBytes { raw in try FrameReader.readHeader(raw, limits: limits) }
        } catch let error as UplinkError {
            throw error
        } catch {
            throw UplinkError(.malformedHeader, "\(error)")
        }
    }

    /// Same pipeline on the wire: the stages and codecs a frame records (not spec-only sugar).
    static func sameWirePipeline(_ allowed: Pipeline, _ frame: Pipeline) -> Bool {
        allowed == frame || allowed.description == frame.description || allowed.descriptor == frame.descriptor
    }

    private func commit(_ prepared: PreparedUpdate, frame: [UInt8], slot: UploadSlot, client: String) throws(UplinkError) -> StoredResponse {
        try current.withLock { (s) throws(UplinkError) -> StoredResponse in
            let t = clock()
            guard s.machine.round == slot.round, !s.finished else { throw UplinkError(.roundClosed, "round \(slot.round) is closed") }
            switch s.machine.canReport(client, at: t) {
            case .notSelected?: throw UplinkError(.notSelected, "client \(UplinkError.quoted(client)) was not selected for round \(slot.round)")
            case .alreadyReported?: throw UplinkError(.duplicateClient, "client \(UplinkError.quoted(client)) already sent an update in round \(slot.round)")
            case .roundClosed?: throw UplinkError(.roundClosed, "round \(slot.round) closed before the upload completed")
            case nil: break
            }
            let accepted = try s.aggregator.commit(prepared, clientID: client)
            CrashPoint.reach("accept-summed")
            // From here the update is in the sum: it must reach the ledger, or the process ends
            // (a restart rebuilds the sum from the ledger, which then does not have it).
            let sequence = s.nextSequence
            do throws(UplinkError) {
                try Durable.makeDirectory(data.roundDirectory(slot.round))
                let file = data.acceptedFile(round: slot.round, sequence: sequence, upload: slot.id)
                try slot.file.sync()
                try Durable.rename(data.part(slot.id), to: file)
                CrashPoint.reach("accept-renamed")
                let body = Self.acceptanceJSON(round: slot.round, client: client, sequence: sequence, accepted: accepted, upload: slot.id)
                let stored = StoredResponse(status: 200, contentType: "application/json", body: body)
                try ledger.accept(Ledger.AcceptedRow(round: slot.round, sequence: sequence, client: client, upload: slot.id, file: file, samples: accepted.samples, bytes: accepted.bytes, at: t), response: stored.stored)
                CrashPoint.reach("accept-recorded")
                _ = s.machine.report(client, at: t)
                s.nextSequence += 1
                slot.state.withLock {
                    $0.phase = "accepted"
                    $0.response = stored
                    $0.durableOffset = slot.length
                }
                metrics.frameAccepted(bytes: accepted.bytes)
                metrics.uploadFinished("accepted")
                logger.info("frame accepted", metadata: ["round": "\(slot.round)", "client": "\(client)", "sequence": "\(sequence)", "bytes": "\(accepted.bytes)"])
                return stored
            } catch {
                logger.critical("an accepted update could not be made durable; stopping so a restart rebuilds the round from the ledger", metadata: ["error": "\(error)"])
                _exit(70)
            }
        }
    }

    private static func acceptanceJSON(round: UInt64, client: String, sequence: Int, accepted: AcceptedUpdate, upload: String) -> String {
        let object: [String: Any] = [
            "status": "accepted", "round": round, "client": client, "sequence": sequence, "samples": accepted.samples,
            "bytes": accepted.bytes, "norm": accepted.norm.isFinite ? accepted.norm : 0, "upload": upload,
        ]
        return String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    // MARK: Status

    func status(round: UInt64) throws(UplinkError) -> [String: Any]? {
        guard let row = try ledger.round(round) else { return nil }
        let uploads = try ledger.uploads(round: round)
        var rejected: [Int: Int] = [:]
        var bytes: Int64 = 0
        for u in uploads {
            bytes += u.state == "open" ? (slots.withLock { $0[u.id] }?.durableOffset ?? u.offset) : (u.state == "accepted" ? u.length : u.offset)
            if u.state == "rejected", let code = u.code { rejected[code, default: 0] += 1 }
        }
        let accepted = try ledger.accepted(round: round)
        let (machine, finished) = current.withLock { ($0.machine, $0.finished) }
        let live = machine.round == round && !finished
        var out: [String: Any] = [
            "round": round,
            "state": live ? Self.stateName(machine.state) : row.state,
            "openedAt": Self.iso(row.openedAt),
            "targetReports": config.rules.targetReports,
            "selectionGoal": config.rules.selectionGoal,
            "accepted": accepted.count,
            "acceptedBytes": accepted.reduce(0) { $0 + $1.bytes },
            "rejected": rejected.keys.sorted().map { ["code": $0, "count": rejected[$0]!] },
            "bytesReceived": bytes,
            "uploadsOpen": uploads.filter { $0.state == "open" }.count,
        ]
        if live {
            out["selected"] = machine.selected.count
            out["deadline"] = Self.iso(machine.deadline)
            out["secondsLeft"] = machine.timeLeft(at: clock())
        } else {
            out["deadline"] = Self.iso(row.openedAt + config.rules.deadline)
            out["secondsLeft"] = 0
            if let c = row.closedAt { out["closedAt"] = Self.iso(c) }
            if let r = row.reason { out["reason"] = r }
        }
        return out
    }

    static func stateName(_ s: RoundMachine.State) -> String {
        switch s {
        case .selecting: "selecting"
        case .reporting: "reporting"
        case .closed: "closed"
        case .abandoned: "abandoned"
        }
    }

    static func iso(_ t: Double) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: t))
    }

    /// Expires upload resources past their `max-age` (their bytes are dropped).
    func expireUploads() throws(UplinkError) {
        let t = clock()
        for u in try ledger.uploads(state: "open") where u.expiresAt < t {
            // An upload accepted since the query is not expired after the fact.
            guard try ledger.expireIfOpen(u.id) else { continue }
            if let live = slots.withLock({ $0.removeValue(forKey: u.id) }) { live.state.withLock { $0.phase = "expired" } }
            unlink(data.part(u.id))
            metrics.uploadFinished("expired")
        }
        try ledger.pruneUploads(before: t - 86400)
    }
}

extension MessageAuthentication {
    static func sha256Hex(_ bytes: [UInt8]) -> String {
        sha256(bytes).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}
