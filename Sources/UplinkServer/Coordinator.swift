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
///
/// Several coordinators (replicas) may share one round: the same PostgreSQL ledger
/// (`--database`) and the same data directory on shared storage. Then every check-in and
/// acceptance takes the round's lock in the database, replays what the other replicas recorded
/// since (so every replica's machine decides alike), and records its own; each replica sums the
/// frames it accepted; the replica that wins the round's close lock merges the others' partial
/// sums with its own, rebuilds from their frames whatever a dead replica held, and publishes
/// the next model (`docs/scaling.md`). With SQLite there is one replica and the same code runs
/// with nothing to replay or merge.
final class Coordinator: Sendable {
    let config: ServerConfiguration
    let data: DataDirectory
    let ledger: Ledger
    let logger: Logger
    let metrics: ServerMetrics
    let authority: TokenAuthority
    /// This replica's name (`--replica`), recorded with each frame it accepts.
    let replica: String
    /// This process of the replica (`<name>:<random>`): upload leases name it, and it holds a
    /// lock of its own for its life, so a lease a dead process left is seen as dead even after
    /// the replica restarted under the same name.
    let incarnation: String
    /// Called once when the last round (``ServerConfiguration/rounds``) has closed.
    let onFinished: @Sendable () -> Void

    struct RoundState {
        var machine: RoundMachine
        var aggregator: RoundAggregator
        var global: [Float]
        var optimizer: ServerOptimizer
        var model: ModelInfo
        /// The next accepted-frame sequence number (over all replicas) not yet replayed.
        var nextSequence: Int
        /// The next check-in sequence number not yet replayed.
        var nextCheckIn: Int
        /// The frames in this replica's sum: ledger sequence number and weight.
        var mine: [(sequence: UInt64, weight: Double)] = []
        /// How many of `mine` the partial aggregate on the shared store holds.
        var partialWritten = 0
        /// The round's ledger row says another replica is closing it.
        var closing = false
        var finished: Bool
        /// A ledger write failed after the machine changed: reload before the next decision.
        var stale = false
    }

    private let current: Locked<RoundState>
    private let slots = Locked<[String: UploadSlot]>([:])
    private let models = Locked<[UInt64: ModelInfo]>([:])
    private let finishedOnce = Locked(false)
    private let clock: @Sendable () -> Double
    /// Upload appends in flight (bodies being received).
    let inFlight = Locked(0)
    /// The largest upload accepted (`max-size`): ``uploadBound(_:)``.
    let maxUploadBytes: Int
    /// Seconds an upload's append lease lasts without renewal (a dead replica's uploads are
    /// free again after it).
    static let leaseSeconds = 10.0

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
        self.replica = config.replica
        let incarnation = config.replica + ":" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        self.incarnation = incarnation
        self.authority = try TokenAuthority(secret: config.tokenSecret)
        self.maxUploadBytes = try Self.uploadBound(config)
        let data = try DataDirectory(config.dataDirectory)
        self.data = data
        let db = try openLedgerDatabase(config.database ?? data.database)
        if db.dialect == .postgres && config.strategy.needsAllUpdates {
            throw UplinkError(.invalidArgument, "\(config.strategy) needs every update in one place: with --database postgres each replica holds only its own frames, so only the mean-based strategies can be merged; run it on one machine (SQLite)")
        }
        // One process per replica name: the lock is held for the process's life and freed by
        // the database when the process (or its connection) dies.
        guard try db.holdForever(LockKey.replica(config.replica)) else {
            throw UplinkError(.stateMismatch, "replica \(UplinkError.quoted(config.replica)) is already running against \(db.location): give each replica its own --replica")
        }
        guard try db.holdForever(LockKey.replica(incarnation)) else { throw UplinkError(.io, "cannot take this process's lock \(incarnation)") }
        let ledger = try Ledger(database: db, fingerprint: config.layout.fingerprint, parameterCount: config.layout.parameterCount)
        self.ledger = ledger
        let started = clock()
        let state = try Self.recover(config: config, data: data, ledger: ledger, logger: logger, replica: config.replica, now: started)
        current = Locked(state)
        models.withLock { $0[state.model.round] = state.model }
        logger.info("coordinator ready", metadata: [
            "round": "\(state.machine.round)", "accepted": "\(state.machine.reported.count)", "mine": "\(state.mine.count)", "replica": "\(config.replica)",
            "ledger": "\(db.dialect.rawValue)", "recoverySeconds": "\(String(format: "%.3f", clock() - started))",
        ])
        metrics.setRound(state.machine.round)
        if !state.finished { try advance() }
    }

    var now: Double { clock() }

    // MARK: Recovery

    private static func policy(_ config: ServerConfiguration, round: UInt64) -> RoundPolicy {
        RoundPolicy(round: round, normBound: config.normBound, normPolicy: config.normPolicy, limits: .forModel(config.layout), maxSamples: config.maxSamples)
    }

    /// Rebuilds the round in progress from the ledger: its machine from every recorded
    /// check-in and report (any replica's), this replica's sum from the frames it accepted, in
    /// acceptance order (the same order, so the same bits, as before a crash).
    private static func recover(config: ServerConfiguration, data: DataDirectory, ledger: Ledger, logger: Logger, replica: String, now: Double) throws(UplinkError) -> RoundState {
        if try ledger.lastRound() == nil {
            var optimizer = ServerOptimizer(strategy: config.strategy, layout: config.layout)
            try publish(config: config, data: data, round: 1, model: config.initialModel, optimizer: &optimizer)
            try ledger.openRound(1, at: now)
        }
        guard let last = try ledger.lastRound() else { throw UplinkError(.io, "the ledger lost its first round") }
        if last.state == "open" && ledger.db.dialect == .sqlite {
            // A ledger of schema 1 renamed a frame into the round's directory before recording
            // it: one left by a process that died in between was never acknowledged and goes
            // back to its upload. (Schema 2 records first and renames after, so this finds
            // nothing it wrote; with replicas the scan would race their renames: SQLite only.)
            let recorded = try ledger.accepted(round: last.round)
            let known = Set(recorded.map { ($0.file as NSString).lastPathComponent })
            let names = (try? FileManager.default.contentsOfDirectory(atPath: data.roundDirectory(last.round))) ?? []
            for name in names where name.hasSuffix(".upl") && !known.contains(name) {
                let id = String(name.dropLast(4).split(separator: "-").last ?? "")
                let path = data.roundDirectory(last.round) + "/" + name
                if let upload = try ledger.upload(id), upload.state == "open" {
                    try Durable.rename(path, to: data.part(id))
                    logger.notice("returned an unrecorded frame to its upload", metadata: ["upload": "\(id)"])
                } else {
                    unlink(path)
                }
            }
            // Part files of uploads that are no longer open are leftovers of a crash.
            for state in ["cancelled", "expired", "rejected"] {
                for u in try ledger.uploads(state: state) { unlink(data.part(u.id)) }
            }
        }
        return try load(last, config: config, data: data, ledger: ledger, replica: replica)
    }

    /// The state of round `row` from the ledger and the shared store.
    private static func load(_ row: Ledger.RoundRow, config: ServerConfiguration, data: DataDirectory, ledger: Ledger, replica: String) throws(UplinkError) -> RoundState {
        let round = row.round
        let limit = Int64.max
        let global = try FrameDecoder(limits: .forModel(config.layout)).decode(try Durable.read(data.globalModel(round), maxBytes: limit), layout: config.layout).values
        let optimizer = try ServerOptimizer(serialized: try Durable.read(data.optimizerState(round), maxBytes: limit), strategy: config.strategy, layout: config.layout)
        let downlink = data.downlinkModel(round)
        let model = ModelInfo(round: round, path: downlink, bytes: Int(Durable.fileSize(downlink) ?? 0), etag: try etag(of: downlink))
        var machine = RoundMachine(round: round, rules: config.rules, openedAt: row.openedAt)
        let aggregator = try RoundAggregator(layout: config.layout, strategy: config.strategy, policy: policy(config, round: round))
        var state = RoundState(machine: machine, aggregator: aggregator, global: global, optimizer: optimizer, model: model, nextSequence: 0, nextCheckIn: 0, finished: false)
        guard row.state == "open" || row.state == "closing" else {
            // The last round finished and no next one was opened: the run is over.
            machine.advance(to: .infinity)
            state.machine = machine
            state.finished = true
            return state
        }
        state.closing = row.state == "closing"
        for c in try ledger.checkIns(round: round) {
            _ = machine.checkIn(c.client, at: c.at)
            state.nextCheckIn = c.sequence + 1
        }
        for a in try ledger.accepted(round: round) {
            if a.replica == replica || a.replica.isEmpty {
                // Frames this replica accepted (or a schema-1 ledger's) go back into its sum.
                if Durable.fileSize(a.file) == nil, Durable.fileSize(data.part(a.upload)) != nil {
                    Logger(label: "uplink.serve").notice("moved a recorded frame out of its upload file (the process had stopped in between)", metadata: ["upload": "\(a.upload)"])
                }
                let frame = try readAccepted(a, data: data, config: config)
                let accepted = try aggregator.commit(try aggregator.prepare(frame), clientID: a.client)
                state.mine.append((UInt64(a.sequence), accepted.weight))
            }
            _ = machine.report(a.client, at: a.at)
            state.nextSequence = a.sequence + 1
        }
        state.machine = machine
        return state
    }

    /// The bytes of an accepted frame: its file in the round's directory, or, when the process
    /// that recorded it died before moving it there, its upload's part file (moved now).
    static func readAccepted(_ row: Ledger.AcceptedRow, data: DataDirectory, config: ServerConfiguration) throws(UplinkError) -> [UInt8] {
        if Durable.fileSize(row.file) == nil, Durable.fileSize(data.part(row.upload)) != nil {
            try Durable.makeDirectory((row.file as NSString).deletingLastPathComponent)
            try Durable.renameIfPresent(data.part(row.upload), to: row.file)
        }
        return try Durable.read(row.file, maxBytes: Int64(config.maxFrameBytes))
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

    // MARK: Keeping up with the other replicas

    /// Moves to the ledger's newest round when another replica finished this one (or reloads
    /// after a failed write).
    private func sync(_ s: inout RoundState) throws(UplinkError) {
        guard !s.finished || s.stale else { return }
        guard let last = try ledger.lastRound() else { return }
        let moved = last.round != s.machine.round || !(last.state == "open" || last.state == "closing")
        guard moved || s.stale else { return }
        let old = s.machine.round
        s = try Self.load(last, config: config, data: data, ledger: ledger, replica: replica)
        models.withLock { $0[s.model.round] = s.model }
        metrics.setRound(s.machine.round)
        if last.round != old { dropUploads(of: old) }
        if s.finished { announceFinished() }
    }

    /// Replays into the machine what other replicas recorded since the last look (inside the
    /// round's lock, so nothing is recorded meanwhile).
    private func catchUp(_ s: inout RoundState, _ tx: LedgerSession) throws(UplinkError) {
        let round = s.machine.round
        for c in try tx.checkIns(round: round, from: s.nextCheckIn) {
            _ = s.machine.checkIn(c.client, at: c.at)
            s.nextCheckIn = c.sequence + 1
        }
        for a in try tx.accepted(round: round, from: s.nextSequence) {
            _ = s.machine.report(a.client, at: a.at)
            s.nextSequence = a.sequence + 1
        }
        if let row = try tx.round(round) {
            s.closing = row.state == "closing"
            if row.state != "open" && row.state != "closing" { s.stale = true }
        }
    }

    private func announceFinished() {
        let first = finishedOnce.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        if first { onFinished() }
    }

    // MARK: Rounds

    /// Applies the deadline; finishes the round (and opens the next) when it closed or was
    /// abandoned. Called by the clock service and after every report.
    func advance() throws(UplinkError) {
        try current.withLock { (s) throws(UplinkError) in
            try sync(&s)
            guard !s.finished else { return }
            try ledger.locked(round: s.machine.round) { (tx) throws(UplinkError) in try catchUp(&s, tx) }
            if s.stale { try sync(&s) }
            guard !s.finished else { return }
            s.machine.advance(to: clock())
            if !s.machine.isOpen || s.closing { try finish(&s) }
        }
    }

    /// ``advance()`` only when this replica's own view says the round may be over or out of
    /// date (its deadline passed, its K-th report is in, or the ledger showed a change);
    /// otherwise nothing, and no ledger round trip. Request handlers call this: the locked
    /// catch-up they make anyway sees what other replicas recorded, and the clock service runs
    /// ``advance()`` every 250 ms.
    func advanceIfDue() throws(UplinkError) {
        let due = current.withLock { (s) -> Bool in
            if s.finished { return s.stale }
            if s.stale || s.closing || !s.machine.isOpen { return true }
            return s.machine.timeLeft(at: clock()) <= 0
        }
        if due { try advance() }
    }

    /// Closes the round if this replica wins its close lock (merging every replica's frames and
    /// publishing the next model); otherwise leaves its own partial sum for the replica that does.
    private func finish(_ s: inout RoundState) throws(UplinkError) {
        let round = s.machine.round
        let outcome = try ledger.db.withExclusiveLock(LockKey.close(round)) { () throws(UplinkError) -> RoundState? in
            // The round's frames are final once it is marked closing, under the round's lock.
            let rows = try ledger.locked(round: round) { (tx) throws(UplinkError) -> [Ledger.AcceptedRow]? in
                try catchUp(&s, tx)
                guard let row = try tx.round(round), row.state == "open" || row.state == "closing" else { return nil }
                try tx.tx.execute("UPDATE rounds SET state = 'closing' WHERE round = ? AND state = 'open'", [.int(Int64(bitPattern: round))])
                return try tx.accepted(round: round, from: 0)
            }
            guard let rows else { return nil }
            s.machine.advance(to: .infinity)
            CrashPoint.reach("close-marked")
            return try close(&s, rows: rows)
        }
        switch outcome {
        case .some(.some(let next)):
            s = next
        case .some(.none):
            s.stale = true
            try sync(&s)
        case .none:
            // Another replica is closing it: it needs this replica's sum.
            try writePartial(&s)
        }
    }

    /// Leaves this replica's partial sum on the shared store for the closing replica.
    private func writePartial(_ s: inout RoundState) throws(UplinkError) {
        guard !s.mine.isEmpty, s.partialWritten != s.mine.count else { return }
        let snap = try s.aggregator.snapshot()
        let partial = PartialAggregate(round: s.machine.round, fingerprint: config.layout.fingerprint, replica: replica, weight: snap.weight, entries: s.mine, sum: snap.sum)
        try Durable.makeDirectory(data.roundDirectory(s.machine.round))
        try DurableFile.replace(data.partialAggregate(round: s.machine.round, replica: replica), with: partial.serialized())
        s.partialWritten = s.mine.count
        logger.info("partial aggregate written", metadata: ["round": "\(s.machine.round)", "frames": "\(s.mine.count)", "replica": "\(replica)"])
    }

    /// The round's sum over all replicas: this replica's own, the partial aggregates the others
    /// left (waiting up to ``ServerConfiguration/mergeWaitSeconds`` for a running replica's),
    /// and every frame no partial holds decoded again from the shared store, each frame once.
    private func merge(_ s: RoundState, rows: [Ledger.AcceptedRow]) throws(UplinkError) -> (RoundAggregator, rebuilt: Int, partials: Int) {
        let round = s.machine.round
        let merged = try RoundAggregator(layout: config.layout, strategy: config.strategy, policy: Self.policy(config, round: round))
        let bySequence = Dictionary(rows.map { (UInt64($0.sequence), $0) }, uniquingKeysWith: { a, _ in a })
        var covered = Set<UInt64>()
        func updates(_ entries: [(sequence: UInt64, weight: Double)]) -> [AcceptedUpdate] {
            entries.map { e in
                let r = bySequence[e.sequence]!
                return AcceptedUpdate(clientID: r.client, samples: r.samples, weight: e.weight, norm: 0, scale: 1, bytes: r.bytes, transmitted: 0)
            }
        }
        var partials = 0
        if config.strategy.needsAllUpdates {
            // One replica (SQLite): the round's own aggregator holds every frame.
            return (s.aggregator, 0, 0)
        }
        let own = s.mine.filter { bySequence[$0.sequence] != nil }
        if !own.isEmpty {
            let snap = try s.aggregator.snapshot()
            try merged.absorb(PartialAggregate(round: round, fingerprint: config.layout.fingerprint, replica: replica, weight: snap.weight, entries: own, sum: snap.sum), updates: updates(own))
            for e in own { covered.insert(e.sequence) }
        }
        // The others' partials: wait while a running replica holds frames no partial covers.
        let others = Set(rows.map(\.replica)).subtracting([replica, ""])
        var taken: [String: PartialAggregate] = [:]
        let waitUntil = clock() + config.mergeWaitSeconds
        while true {
            var waiting: [String] = []
            for r in others.sorted() where taken[r] == nil {
                let theirs = rows.filter { $0.replica == r }.map { UInt64($0.sequence) }
                if let bytes = try? Durable.read(data.partialAggregate(round: round, replica: r), maxBytes: Int64(config.layout.parameterCount) * 8 + 16 * Int64(rows.count) + 4096),
                   let p = try? PartialAggregate(serialized: bytes, fingerprint: config.layout.fingerprint, parameterCount: config.layout.parameterCount),
                   p.round == round, p.replica == r,
                   p.entries.allSatisfy({ bySequence[$0.sequence]?.replica == r && !covered.contains($0.sequence) }),
                   Set(p.entries.map(\.sequence)).count == p.entries.count,
                   p.entries.count == theirs.count {
                    taken[r] = p
                    continue
                }
                if try !ledger.db.isLockFree(LockKey.replica(r)) { waiting.append(r) }
            }
            if waiting.isEmpty || clock() >= waitUntil {
                if !waiting.isEmpty { logger.warning("merging without the partial sums of running replicas", metadata: ["round": "\(round)", "replicas": "\(waiting)"]) }
                break
            }
            usleep(50_000)
        }
        for (_, p) in taken.sorted(by: { $0.key < $1.key }) {
            try merged.absorb(p, updates: updates(p.entries))
            for e in p.entries { covered.insert(e.sequence) }
            partials += 1
        }
        // Whatever no partial holds (a replica that died, or did not answer in time) is decoded
        // again from its accepted frame, in acceptance order.
        var rebuilt = 0
        for row in rows where !covered.contains(UInt64(row.sequence)) {
            let frame = try Self.readAccepted(row, data: data, config: config)
            try merged.commit(try merged.prepare(frame), clientID: row.client)
            rebuilt += 1
        }
        return (merged, rebuilt, partials)
    }

    /// Merges, publishes and records the end of the round; the next round's state.
    private func close(_ s: inout RoundState, rows: [Ledger.AcceptedRow]) throws(UplinkError) -> RoundState? {
        let round = s.machine.round
        let closedAt = s.machine.closedAt ?? clock()
        var global = s.global
        var optimizer = s.optimizer
        // The round's verdict from the machine, whose reports are the recorded ones.
        var outcome = s.machine.state == .closed ? "closed" : "abandoned"
        var reason = s.machine.closeReason.map { $0 == .target ? "target" : "deadline" } ?? "deadline"
        let (merged, rebuilt, partials) = try merge(s, rows: rows)
        if outcome == "closed" {
            do {
                let result = try merged.close()
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
            _ = try? merged.close()
        }
        _ = try? s.aggregator.close()
        let last = config.rounds.map { round >= UInt64($0) } ?? false
        let next = round + 1
        if last {
            // Keep the final model where the next round's would be: models/final.upl.
            var exact = FrameEncoder(layout: config.layout, pipeline: try Pipeline(parsing: "fp32 | lz4"))
            try DurableFile.replace(data.models + "/final.upl", with: try exact.encode(global, round: round))
        } else {
            try Self.publish(config: config, data: data, round: next, model: global, optimizer: &optimizer)
        }
        CrashPoint.reach("close-published")
        let opensAt = clock()
        let recorded = try ledger.locked(round: round) { (tx) throws(UplinkError) -> Bool in
            try tx.tx.execute("UPDATE rounds SET state = 'open' WHERE round = ? AND state = 'closing'", [.int(Int64(bitPattern: round))])
            return try tx.finishRound(round, state: outcome, at: closedAt, reason: reason, next: last ? nil : next, nextOpensAt: opensAt)
        }
        guard recorded else { return nil }
        CrashPoint.reach("close-recorded")
        for r in Set(rows.map(\.replica)) where !r.isEmpty { unlink(data.partialAggregate(round: round, replica: r)) }
        metrics.roundFinished(outcome: outcome, seconds: closedAt - s.machine.openedAt, reports: rows.count)
        logger.info("round finished", metadata: [
            "round": "\(round)", "outcome": "\(outcome)", "reason": "\(reason)", "reports": "\(rows.count)",
            "partials": "\(partials)", "rebuilt": "\(rebuilt)", "replica": "\(replica)",
        ])
        dropUploads(of: round)
        if last {
            var done = s
            done.finished = true
            done.global = global
            done.optimizer = optimizer
            announceFinished()
            return done
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
        metrics.setRound(next)
        return RoundState(
            machine: RoundMachine(round: next, rules: config.rules, openedAt: opensAt),
            aggregator: try RoundAggregator(layout: config.layout, strategy: config.strategy, policy: Self.policy(config, round: next)),
            global: global, optimizer: optimizer, model: info, nextSequence: 0, nextCheckIn: 0, finished: false)
    }

    /// Forgets a finished round's open uploads (their part files are dropped).
    private func dropUploads(of round: UInt64) {
        let stale = slots.withLock { m -> [UploadSlot] in
            let mine = m.values.filter { $0.round == round }
            for u in mine { m[u.id] = nil }
            return mine
        }
        for u in stale {
            let wasOpen = u.state.withLock { st -> Bool in
                defer { if st.phase == "open" { st.phase = "expired" } }
                return st.phase == "open"
            }
            if wasOpen { unlink(data.part(u.id)) }
        }
    }

    /// The current round's number and whether the run is over.
    var round: (number: UInt64, finished: Bool) { current.withLock { ($0.machine.round, $0.finished) } }

    func checkIn(client: String) throws(UplinkError) -> CheckInResult {
        try advanceIfDue()
        return try current.withLock { (s) throws(UplinkError) -> CheckInResult in
            // A round another replica finished shows up in the catch-up below (stale: the
            // client retries after 1 s, by when the clock has loaded the next round).
            if s.stale { try sync(&s) }
            guard !s.finished else { return .finished }
            let round = s.machine.round
            do throws(UplinkError) {
                return try ledger.locked(round: round) { (tx) throws(UplinkError) -> CheckInResult in
                    try catchUp(&s, tx)
                    let t = clock()
                    if s.closing || s.stale {
                        metrics.checkIn("retry")
                        return .retry(after: 1, reason: "round-closed")
                    }
                    // A client whose update is in comes back for the next round.
                    if s.machine.reported.contains(client) {
                        metrics.checkIn("retry")
                        // Soon: the round may close at its K-th report well before the deadline.
                        return .retry(after: max(1, min(10, s.machine.timeLeft(at: t)).rounded(.up)), reason: "already-reported")
                    }
                    switch s.machine.checkIn(client, at: t) {
                    case .selected(let deadline):
                        // Marked stale first: if the record fails, the machine is rebuilt from the ledger.
                        s.stale = true
                        try tx.recordCheckIn(round: round, client: client, at: t, sequence: s.nextCheckIn)
                        s.stale = false
                        s.nextCheckIn += 1
                        metrics.checkIn("selected")
                        return .selected(round: round, deadline: deadline, pipeline: config.pipelines[0].description, model: s.model)
                    case .alreadySelected(let deadline):
                        metrics.checkIn("again")
                        return .selected(round: round, deadline: deadline, pipeline: config.pipelines[0].description, model: s.model)
                    case .comeBack(let after):
                        metrics.checkIn("retry")
                        // Jitter spreads the returning clients over the window (pace steering).
                        return .retry(after: (after * Double.random(in: 1...1.25)).rounded(.up), reason: s.machine.isOpen ? "round-full" : "round-closed")
                    }
                }
            } catch {
                s.stale = true
                throw error
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
        try advanceIfDue()
        let check: Problem? = try current.withLock { (s) throws(UplinkError) -> Problem? in
            if s.stale || round > s.machine.round { try sync(&s) }
            if s.finished { return Problem.roundClosed(round, "the run is over") }
            if round != s.machine.round || !s.machine.isOpen || s.closing {
                return round > s.machine.round ? Problem.notFound("round \(round) has not started") : Problem.roundClosed(round, "round \(round) is closed")
            }
            // Selection may have happened on another replica: look at the ledger first.
            try ledger.locked(round: round) { (tx) throws(UplinkError) in try catchUp(&s, tx) }
            if s.stale || s.closing { return Problem.roundClosed(round, "round \(round) is closed") }
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
        let (older, open) = try ledger.transaction { (tx) throws(UplinkError) in (try tx.openUploads(client: client, round: round), try tx.openUploads(client: client)) }
        var replaced = 0
        for old in older {
            if let slot = try slot(old) { try cancel(slot); replaced += 1 }
            metrics.uploadFinished("replaced")
        }
        guard open - replaced < config.limits.maxOpenUploadsPerClient else {
            return .failure(.tooManyUploads(config.limits.maxOpenUploadsPerClient))
        }
        let id = MessageAuthentication.randomBytes(16).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        let t = clock()
        let row = Ledger.UploadRow(id: id, round: round, client: client, length: length, offset: 0, createdAt: t, expiresAt: t + Double(config.limits.maxAgeSeconds), state: "open")
        let file = try PartialFile(path: data.part(id), durableOffset: 0, create: true)
        try ledger.transaction { (tx) throws(UplinkError) in try tx.createUpload(row) }
        let slot = UploadSlot(row: row, file: file)
        slots.withLock { $0[id] = slot }
        metrics.uploadCreated()
        return .success(slot)
    }

    /// The upload resource `id`, loaded from the ledger after a restart (or when another
    /// replica created it); `nil` if unknown.
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

    /// Takes the upload's append lease in the ledger for the request holding `ticket` (so no
    /// other replica writes it meanwhile), and brings the slot up to the ledger: its durable
    /// offset, or the verdict another replica gave it. When another replica holds it, asks that
    /// replica to end its append and waits up to `wait` seconds. Whether the lease is held (or
    /// the upload is no longer open).
    func claim(_ slot: UploadSlot, ticket: Int, wait: Double = 3) throws(UplinkError) -> Bool {
        let owner = "\(incarnation)/\(ticket)"
        let until = clock() + wait
        while true {
            let t = clock()
            let (row, owned) = try ledger.transaction { (tx) throws(UplinkError) in
                try tx.claim(slot.id, owner: owner, replica: incarnation, now: t, leaseUntil: t + Self.leaseSeconds)
            }
            guard let row else { return true }
            if row.state != "open" {
                slot.state.withLock { st in
                    if st.phase == "open" || st.phase == "completing" {
                        st.phase = row.state
                        st.response = row.response.map { StoredResponse(json: $0) }
                        if row.state == "accepted" { st.durableOffset = slot.length }
                    }
                }
                return true
            }
            if owned {
                // Bytes past the recorded offset (another holder's, unacknowledged) are cut off.
                let cached = slot.durableOffset
                if row.offset != cached || (Durable.fileSize(data.part(slot.id)) ?? row.offset) > row.offset {
                    try slot.file.truncate(to: row.offset)
                }
                slot.state.withLock {
                    $0.durableOffset = row.offset
                    $0.lease = owner
                }
                return true
            }
            // A holder whose replica is not running (its lifetime lock is free) lost the upload
            // with it: no need to wait for its lease to run out.
            if let holder = row.owner, let process = holder.split(separator: "/").first.map(String.init), process != incarnation,
               try ledger.db.isLockFree(LockKey.replica(process)),
               try ledger.transaction({ (tx) throws(UplinkError) in try tx.takeOver(slot.id, from: holder, owner: owner, leaseUntil: clock() + Self.leaseSeconds) }) {
                continue
            }
            if clock() >= until { return false }
            usleep(50_000)
        }
    }

    /// Gives the append lease back (the request ended).
    func releaseLease(_ slot: UploadSlot, ticket: Int) {
        let owner = "\(incarnation)/\(ticket)"
        slot.state.withLock { if $0.lease == owner { $0.lease = nil } }
        do {
            try ledger.transaction { (tx) throws(UplinkError) in try tx.release(slot.id, owner: owner) }
        } catch {
            logger.warning("cannot release an upload lease (it runs out by itself)", metadata: ["upload": "\(slot.id)", "error": "\(error)"])
        }
    }

    /// Renews this replica's append leases and ends the appends another replica asked for.
    func renewLeases() throws(UplinkError) {
        let t = clock()
        let asked = try ledger.transaction { (tx) throws(UplinkError) in try tx.renewLeases(replica: incarnation, leaseUntil: t + Self.leaseSeconds) }
        for id in asked {
            if let slot = slots.withLock({ $0[id] }) { slot.interruptHolder() }
        }
    }

    /// Records that the bytes up to `offset` are fsynced.
    func recordOffset(_ slot: UploadSlot, _ offset: Int64) throws(UplinkError) {
        CrashPoint.reach("patch-synced")
        guard let owner = slot.state.withLock({ $0.lease }) else { throw UplinkError(.io, "upload \(slot.id): this request no longer holds its lease") }
        let t = clock()
        let recorded = try ledger.transaction { (tx) throws(UplinkError) in try tx.setOffset(slot.id, offset, owner: owner, leaseUntil: t + Self.leaseSeconds) }
        guard recorded else { throw UplinkError(.io, "upload \(slot.id) was taken over by another replica") }
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
    /// (with its code) or added to the sum, recorded in the ledger and moved to the round's
    /// directory, all before this returns, so the `2xx` it leads to acknowledges a durable update.
    func complete(_ slot: UploadSlot, client: String) throws(UplinkError) -> StoredResponse {
        if let stored = slot.state.withLock({ $0.response }) { return stored }
        try advanceIfDue()
        // A round that closed (or an upload that expired) while the body streamed: the late
        // upload's answer, before its (removed) file is touched.
        let (liveRound, over, closing) = current.withLock { ($0.machine.round, $0.finished, $0.closing) }
        if slot.round != liveRound || over || closing || slot.phase != "open" {
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
            outcome = .success(try commit(prepared, slot: slot, client: client))
        } catch {
            outcome = .failure(error)
        }
        switch outcome {
        case .success(let response):
            // The report may have been the K-th: close the round now, not at the next tick.
            try advanceIfDue()
            return response
        case .failure(let error):
            let problem = error.code == .roundClosed ? Problem.roundClosed(slot.round, error.message) : Problem.frameRejected(error, status: [.duplicateClient, .duplicateFrame].contains(error.code) ? 409 : 422)
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

    private func commit(_ prepared: PreparedUpdate, slot: UploadSlot, client: String) throws(UplinkError) -> StoredResponse {
        try current.withLock { (s) throws(UplinkError) -> StoredResponse in
            if s.stale { try sync(&s) }
            guard s.machine.round == slot.round, !s.finished else { throw UplinkError(.roundClosed, "round \(slot.round) is closed") }
            var summed = false
            // The frame's bytes reach the disk before the round's lock is taken: the lock is
            // shared by every replica, so it covers only the checks and the ledger row.
            try slot.file.sync()
            // With a sum (every strategy PostgreSQL allows), the update is added after its row
            // commits, outside the shared lock: the checks under the lock (the ledger's clients
            // and digests, this replica's round still open under `current`) are the ones
            // `commit` would make, so adding it cannot fail. Strategies that hold every update
            // (one replica, SQLite) add it under the lock, where its memory limit may refuse it.
            let sumAfterRecording = !config.strategy.needsAllUpdates
            do throws(UplinkError) {
                let (stored, sequence, recorded, t) = try ledger.locked(round: slot.round) { (tx) throws(UplinkError) -> (StoredResponse, Int, AcceptedUpdate, Double) in
                    try catchUp(&s, tx)
                    let t = clock()
                    guard !s.closing, !s.stale else { throw UplinkError(.roundClosed, "round \(slot.round) closed before the upload completed") }
                    switch s.machine.canReport(client, at: t) {
                    case .notSelected?: throw UplinkError(.notSelected, "client \(UplinkError.quoted(client)) was not selected for round \(slot.round)")
                    case .alreadyReported?: throw UplinkError(.duplicateClient, "client \(UplinkError.quoted(client)) already sent an update in round \(slot.round)")
                    case .roundClosed?: throw UplinkError(.roundClosed, "round \(slot.round) closed before the upload completed")
                    case nil: break
                    }
                    let digest = prepared.contentDigest.isEmpty ? "" : prepared.contentDigest.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
                    if try tx.hasDigest(round: slot.round, digest: digest) {
                        throw UplinkError(.duplicateFrame, "an identical frame was already accepted in round \(slot.round); a copy counts once")
                    }
                    let accepted: AcceptedUpdate
                    if sumAfterRecording {
                        accepted = s.aggregator.describe(prepared, clientID: client)
                    } else {
                        accepted = try s.aggregator.commit(prepared, clientID: client)
                        summed = true
                        CrashPoint.reach("accept-summed")
                    }
                    // From here the update is in the sum (or is recorded and then added): it must
                    // reach both, or the process ends (a restart rebuilds the sum from the ledger).
                    let sequence = s.nextSequence
                    let file = data.acceptedFile(round: slot.round, sequence: sequence, upload: slot.id)
                    let body = Self.acceptanceJSON(round: slot.round, client: client, sequence: sequence, accepted: accepted, upload: slot.id)
                    let stored = StoredResponse(status: 200, contentType: "application/json", body: body)
                    // Whether the row commits is unknown once it is sent: as with the sum, a
                    // failure from here ends the process and the restart reads the ledger.
                    summed = true
                    try tx.accept(Ledger.AcceptedRow(
                        round: slot.round, sequence: sequence, client: client, upload: slot.id, file: file, samples: accepted.samples, bytes: accepted.bytes, at: t,
                        replica: replica, digest: digest), response: stored.stored)
                    return (stored, sequence, accepted, t)
                }
                let accepted = sumAfterRecording ? try s.aggregator.commit(prepared, clientID: client) : recorded
                if sumAfterRecording { CrashPoint.reach("accept-summed") }
                CrashPoint.reach("accept-recorded")
                // Recorded: the frame moves to the round's directory (a crash before this leaves it
                // in the part file, where ``readAccepted`` finds it).
                try Durable.makeDirectory(data.roundDirectory(slot.round))
                try Durable.renameIfPresent(data.part(slot.id), to: data.acceptedFile(round: slot.round, sequence: sequence, upload: slot.id))
                CrashPoint.reach("accept-renamed")
                _ = s.machine.report(client, at: t)
                s.nextSequence = sequence + 1
                s.mine.append((UInt64(sequence), accepted.weight))
                slot.state.withLock {
                    $0.phase = "accepted"
                    $0.response = stored
                    $0.durableOffset = slot.length
                }
                metrics.frameAccepted(bytes: accepted.bytes)
                metrics.uploadFinished("accepted")
                logger.info("frame accepted", metadata: ["round": "\(slot.round)", "client": "\(client)", "sequence": "\(sequence)", "bytes": "\(accepted.bytes)", "replica": "\(replica)"])
                return stored
            } catch {
                guard summed else { throw error }
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
        // What the other replicas recorded counts too.
        try advance()
        guard let row = try ledger.round(round) else { return nil }
        let uploads = try ledger.uploads(round: round)
        var rejected: [Int: Int] = [:]
        var bytes: Int64 = 0
        for u in uploads {
            bytes += u.state == "open" ? (slots.withLock { $0[u.id] }?.durableOffset ?? u.offset) : (u.state == "accepted" ? u.length : u.offset)
            if u.state == "rejected", let code = u.code { rejected[code, default: 0] += 1 }
        }
        let accepted = try ledger.accepted(round: round)
        let (machine, finished, closing) = current.withLock { ($0.machine, $0.finished, $0.closing) }
        let live = machine.round == round && !finished
        var out: [String: Any] = [
            "round": round,
            "state": live ? (machine.isOpen && !closing ? Self.stateName(machine.state) : "closing") : row.state,
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
