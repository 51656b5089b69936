import UplinkPrivacy
import Dispatch
import UplinkAggregation
import UplinkCodec

/// What happened in one simulated round.
public struct SimulatedRound: Sendable, Codable {
    public var round: Int
    public var selected: Int
    public var reported: Int
    public var droppedDeadline: Int
    public var droppedInterruption: Int
    public var droppedDropout: Int
    public var surplus: Int
    public var bytesUp: Int
    public var bytesDown: Int
    /// Upload durations (seconds) of the uploads that completed.
    public var uploadTimes: [Double]
    public var duration: Double
    public var wallClock: Double
    public var accuracy: Double?
    /// Sum of uplink frame bytes of the accepted reports.
    public var acceptedBytes: Int
    /// Clients that sent a sparser pipeline than configured because of their byte budget.
    public var budgetFitted: Int
    /// Selected and reported clients per network profile.
    public var selectedByProfile: [String: Int] = [:]
    public var reportedByProfile: [String: Int] = [:]
    /// Clients per profile whose upload would have arrived by the deadline (reported, or surplus
    /// after the round filled up): whether the update fits the link at all.
    public var inTimeByProfile: [String: Int] = [:]
    /// Clients per profile that finished downloading the model and training before the
    /// deadline, so they could start their upload: what bounds the share in time whatever the
    /// uplink pipeline.
    public var readyByProfile: [String: Int] = [:]
    /// Frames clients started uploading this round (accepted or not), and their bytes.
    public var uploadedFrames: Int = 0
    public var uploadedFrameBytes: Int = 0
    /// Clients online when the round selected.
    public var online: Int = 0
    /// ε spent so far, with central DP.
    public var epsilon: Double?
    /// The sampling rate this round was accounted at, with central DP: selected / online, the
    /// probability that any one online client is selected (docs/privacy.md).
    public var samplingRate: Double?
    /// The round was abandoned with reports: it reached its deadline with some, but fewer than
    /// ⌈``Scenario/minimumReportFraction`` × K⌉, so the reports accepted on arrival did not change
    /// the model. A round without reports is abandoned too but not marked (``reported`` is 0),
    /// so with the default fraction 0 this is never true. In the JSON results only when true.
    public var abandoned: Bool = false
}

/// A pipeline's run through the whole scenario.
public struct PipelineRun: Sendable, Codable {
    public var pipeline: String
    public var rounds: [SimulatedRound]
    /// The guarantee of the run, with central DP.
    public var privacy: PrivacySummary?
}

/// Real updates a scenario replays instead of training: any model's layout, one or more
/// updates (client i sends update i mod count) and the global model the downlink sends.
public struct ReplayUpdates: Sendable {
    public var layout: ModelLayout
    public var updates: [[Float]]
    /// The global model's values for the downlink; nil sends the first update's values (the
    /// same size; with the default `fp32 | stored` downlink only the size matters).
    public var global: [Float]?

    /// Replayed updates; each must have `layout`'s parameter count, and so must `global`.
    public init(layout: ModelLayout, updates: [[Float]], global: [Float]? = nil) throws(UplinkError) {
        guard !updates.isEmpty else { throw UplinkError(.invalidArgument, "no update to replay") }
        for (i, u) in updates.enumerated() where u.count != layout.parameterCount {
            throw UplinkError(.shapeMismatch, "replayed update \(i) has \(u.count) values, the layout \(layout.parameterCount)")
        }
        if let global, global.count != layout.parameterCount {
            throw UplinkError(.shapeMismatch, "the global model has \(global.count) values, the layout \(layout.parameterCount)")
        }
        self.layout = layout
        self.updates = updates
        self.global = global
    }
}

/// The discrete-event simulator: the real encoder, aggregator and training; simulated links and clock.
///
/// Per round (Bonawitz et al. 2019): select ⌈K·overSelection⌉ of the available clients; each
/// downloads the global model (the bytes of its real encoding with the downlink pipeline),
/// trains for `samples × epochs × msPerSample`, encodes its real update, and uploads it over its
/// link (one round trip per request; outages resume or restart). Events (downloads, compute,
/// arrivals, dropouts, the deadline) run on a virtual clock. Selection, the deadline, closing
/// at the K-th report and abandonment are decided by the coordinator's own ``RoundMachine``,
/// driven by the virtual clock; the reports it accepted aggregate with the real aggregator.
/// A client's error-feedback state is committed only when its report is accepted.
public struct Simulator: Sendable {
    public let scenario: Scenario
    public let clients: [SimulatedClient]
    let model: MLP
    let train: Dataset?
    let test: Dataset?
    let shares: [[Int]]
    let replay: ReplayUpdates?

    /// A simulator for `scenario`; `digits` is the training data when the scenario trains, and
    /// `replay` one update of the digits MLP (of the scenario's width) when it does not.
    public init(scenario: Scenario, digits: (train: Dataset, test: Dataset)?, replay: [Float]? = nil) throws(UplinkError) {
        let layout = MLP.digits(width: scenario.width).layout
        if !scenario.train, let replay, replay.count != layout.parameterCount {
            throw UplinkError(.invalidArgument, "replayed update must have \(layout.parameterCount) values (width \(scenario.width))")
        }
        try self.init(scenario: scenario, digits: digits, replaying: try replay.map { v throws(UplinkError) in try ReplayUpdates(layout: layout, updates: [v]) })
    }

    /// A simulator for `scenario` that replays `replaying` (any model) when it does not train.
    public init(scenario: Scenario, digits: (train: Dataset, test: Dataset)?, replaying: ReplayUpdates?) throws(UplinkError) {
        try scenario.validate()
        self.scenario = scenario
        self.clients = try Population.make(scenario)
        try MLP.checkSizes([64, scenario.width, scenario.width, 10])
        self.model = MLP.digits(width: scenario.width)
        self.train = digits?.train
        self.test = digits?.test
        if scenario.train {
            guard let digits else { throw UplinkError(.invalidArgument, "the scenario trains but no data was given") }
            guard scenario.clients <= digits.train.count else { throw UplinkError(.invalidArgument, "scenario: more clients than training examples") }
            let partition = try Partition(parsing: scenario.partition)
            try partition.check(examples: digits.train.count, clients: scenario.clients)
            self.shares = partition.split(labels: digits.train.labels, classes: 10, clients: scenario.clients, seed: scenario.seed)
            self.replay = nil
        } else {
            guard let replaying else { throw UplinkError(.invalidArgument, "the scenario replays updates but none was given") }
            self.shares = []
            self.replay = replaying
        }
    }

    /// The id a simulated client has at the coordinator (the round machine and the aggregator).
    static func clientID(_ index: Int) -> String { "client-\(index)" }

    /// The ladder budget fitting climbs down, sparsest last.
    static func budgetLadder(_ base: Pipeline) -> [Pipeline] {
        var ladder = [base]
        for amount in [0.003, 0.001, 0.0003, 0.0001] {
            var p = base
            p.sparsifier = .topK(.fraction(amount), scope: .global)
            if case .int(let q) = p.quantizer, amount <= 0.001 { p.quantizer = .int(IntQuantizer(bits: 4, block: q.block, symmetric: q.symmetric, stochastic: q.stochastic, seed: q.seed)) }
            if case .int = p.quantizer {} else { p.quantizer = .int(IntQuantizer(bits: amount <= 0.001 ? 4 : 8)) }
            if p.errorFeedback == nil { p.errorFeedback = ErrorFeedbackConfig() }
            ladder.append(p)
        }
        return ladder
    }

    /// Runs every round with `pipelineText`; `progress` gets each round as it completes.
    public func run(pipeline pipelineText: String, progress: (SimulatedRound) -> Void = { _ in }) throws(UplinkError) -> PipelineRun {
        let pipeline = try Pipeline(parsing: pipelineText)
        let downlink = try Pipeline(parsing: scenario.downlink)
        let layout = replay?.layout ?? model.layout
        let n = layout.parameterCount
        var global = replay.map { $0.global ?? $0.updates[0] } ?? model.initialParameters(seed: scenario.seed)
        var optimizer = ServerOptimizer(strategy: .fedAvg(lr: 1), layout: layout)
        var encoders: [Int: FrameEncoder] = [:]
        var rounds: [SimulatedRound] = []
        var wallClock = 0.0
        let k = scenario.reportsPerRound
        let deadline = scenario.deadlineSeconds
        let rules = try RoundRules(targetReports: k, overSelection: scenario.overSelection, deadline: deadline,
                                   minimumReportFraction: scenario.minimumReportFraction)
        let local = LocalTraining(epochs: scenario.localEpochs, batchSize: scenario.batchSize, learningRate: scenario.learningRate, momentum: scenario.momentum,
                                  weightDecay: scenario.weightDecay)
        // Replay: per update file, one encoder (its error feedback) and this round's frame.
        var replayFrames: [(frame: [UInt8], encoder: FrameEncoder)?] = Array(repeating: nil, count: replay?.updates.count ?? 0)
        let m = Double(k)
        var ledger: PrivacyLedger?
        if let dp = scenario.dpSettings { ledger = try PrivacyLedger(settings: dp, expectedClients: m) }
        // Amplification by sampling assumes nobody can predict the sample: secret unless seeded.
        let secretSelection = ledger != nil && scenario.dpSeed == nil
        var secure = PrivacyRandomness(seed: nil)
        for round in 1...scenario.rounds {
            var rng = SplitMix64(seed: scenario.seed ^ 0x524F_554E_44, round: UInt64(round))
            // Selection with over-selection among the clients online this round.
            let online = clients.filter { Double(rng.next() >> 11) * 0x1p-53 < $0.availability }
            let want = min(online.count, rules.selectionGoal)
            var pool = online
            if secretSelection { pool.shuffleFirst(want, using: &secure) } else { pool.shuffleFirst(want, using: &rng) }
            // The sample checks in at the round's opening (t = 0), in id order; the round machine
            // selects up to its goal, which the sample never exceeds.
            var machine = RoundMachine(round: UInt64(round), rules: rules, openedAt: 0)
            let selected = pool[0..<want].sorted { $0.id < $1.id }.filter { c in
                if case .selected = machine.checkIn(Self.clientID(c.id), at: 0) { return true }
                return false
            }
            var dpRound: PrivacyLedger.Round?
            if ledger != nil {
                // Who is online does not depend on anyone's data; given that set, each online client
                // is selected with probability exactly want / online, and only a selected client can
                // be aggregated (first K to arrive), so want / online bounds every client's inclusion.
                guard let planned = try ledger!.beginRound(samplingRate: online.isEmpty ? 0 : Double(want) / Double(online.count)) else { break }
                dpRound = planned
            }
            let dpPolicy = dpRound.map { CentralDP(clip: $0.clip, noiseMultiplier: $0.sumNoiseMultiplier, expectedClients: m, seed: $0.noiseSeed) }
            // The download: the real encoding of the global model; a lossy downlink changes what clients train from.
            var downEncoder = FrameEncoder(layout: layout, pipeline: downlink, includeTensorTable: false)
            let downFrame = try downEncoder.encode(global, round: UInt64(round))
            // (Replayed updates are not trained, so their clients need no decoded model.)
            let start = downlink.isLossless || replay != nil ? global : try FrameDecoder(limits: .forModel(layout)).decode(downFrame, layout: layout).values
            // Per client: timeline up to the end of compute, and whether it quits first.
            struct Plan { var client: SimulatedClient; var download: Transfer; var computeDone: Double?; var dropAt: Double? }
            let plans: [Plan] = selected.map { c in
                let dl = c.link.transfer(bytes: downFrame.count, uplink: false, start: 0, mode: scenario.interruptions, deadline: deadline)
                let samples = Double(replay == nil ? shares[c.id].count : scenario.samplesPerClient)
                let done = dl.finish.map { $0 + samples * Double(scenario.localEpochs) * c.msPerSample / 1000 }
                let drop = Double(rng.next() >> 11) * 0x1p-53 < c.dropout ? Double(rng.next() >> 11) * 0x1p-53 * deadline : nil
                return Plan(client: c, download: dl, computeDone: done, dropAt: drop)
            }
            // Real training and encoding for the clients that get to upload, in parallel.
            let trainers = plans.indices.filter { i in
                guard let done = plans[i].computeDone, done < deadline else { return false }
                return plans[i].dropAt.map { $0 > done } ?? true
            }
            let frames = Locked([Int: (frame: [UInt8], encoder: FrameEncoder, fitted: Bool)]())
            let failure = Locked<UplinkError?>(nil)
            let current = encoders
            // Replay: the encoders before this round, so a file none of whose clients is
            // accepted keeps its error-feedback state, as a training client does.
            let replayBefore = replayFrames.map { $0?.encoder }
            if let replay {
                // One encoding per update file and round (frames carry the round id), shared by
                // every client that sends that file; only the files someone uploads are encoded.
                let needed = Set(trainers.map { plans[$0].client.id % replay.updates.count })
                for f in needed.sorted() {
                    var e = replayFrames[f]?.encoder ?? FrameEncoder(layout: layout, pipeline: pipeline)
                    replayFrames[f] = (try e.encode(replay.updates[f], round: UInt64(round), sampleCount: UInt64(scenario.samplesPerClient)), e)
                }
            }
            let reusable = replayFrames
            DispatchQueue.concurrentPerform(iterations: 2) { worker in
                for slot in stride(from: worker, to: trainers.count, by: 2) {
                    let plan = plans[trainers[slot]]
                    let c = plan.client
                    do throws(UplinkError) {
                        if !reusable.isEmpty, let shared = reusable[c.id % reusable.count] {
                            // Replay: one frame and one encoder per file (copy-on-write, so never copied) for every client.
                            frames.withLock { $0[c.id] = (shared.frame, shared.encoder, false) }
                            continue
                        }
                        let data = train!.subset(shares[c.id])
                        let trained = local.train(model, from: start, data: data, seed: scenario.seed ^ UInt64(c.id) &* 0x9E37_79B9 ^ UInt64(round) << 32)
                        var delta = [Float](repeating: 0, count: n)
                        for i in 0..<n { delta[i] = trained[i] - start[i] }
                        var encoder = current[c.id] ?? FrameEncoder(layout: layout, pipeline: pipeline)
                        var frame = try encoder.encode(delta, round: UInt64(round), sampleCount: UInt64(data.count))
                        var fitted = false
                        if scenario.budgetFitting, let computeDone = plan.computeDone {
                            // Budget: what the median goodput moves in the time left, with a 20% margin.
                            let secondsLeft = deadline - computeDone - 2 * c.link.rtt
                            let goodput = c.link.meanUplinkBps
                            let budget = Self.byteBudget(seconds: secondsLeft, bitsPerSecond: goodput)
                            if frame.count > budget {
                                let residual = current[c.id]?.errorFeedback?.residual
                                for candidate in Self.budgetLadder(pipeline).dropFirst() {
                                    var e = FrameEncoder(layout: layout, pipeline: candidate)
                                    if let residual, candidate.errorFeedback != nil { try e.restore(ErrorFeedbackState(residual: residual, layout: layout, pipeline: candidate)) }
                                    let f = try e.encode(delta, round: UInt64(round), sampleCount: UInt64(data.count))
                                    frame = f
                                    // Carry the residual back under the configured pipeline.
                                    var back = FrameEncoder(layout: layout, pipeline: pipeline)
                                    if let r = e.errorFeedback?.residual, back.errorFeedback != nil {
                                        try back.restore(ErrorFeedbackState(residual: r, layout: layout, pipeline: pipeline))
                                    }
                                    encoder = back
                                    fitted = true
                                    if f.count <= budget { break }
                                }
                            }
                        }
                        frames.withLock { $0[c.id] = (frame, encoder, fitted) }
                    } catch {
                        failure.withLock { $0 = error }
                    }
                }
            }
            if let error = failure.withLock({ $0 }) { throw error }
            let built = frames.withLock { $0 }

            // The event loop of the round.
            enum Event { case arrival(Int), failed(Int), dropout(Int), deadline }
            var queue = EventQueue<Event>()
            var uploads: [Int: (transfer: Transfer, start: Double)] = [:]
            for (i, plan) in plans.enumerated() {
                if let drop = plan.dropAt { queue.schedule(drop, .dropout(i)) }
                guard let done = plan.computeDone, done < deadline, let f = built[plan.client.id] else {
                    queue.schedule(min(deadline, plan.download.finish ?? deadline), .failed(i))
                    continue
                }
                let ul = plan.client.link.transfer(bytes: f.frame.count, uplink: true, start: done, mode: scenario.interruptions, deadline: deadline)
                uploads[i] = (ul, done)
                if let finish = ul.finish { queue.schedule(finish, .arrival(i)) } else { queue.schedule(deadline, .failed(i)) }
            }
            queue.schedule(deadline, .deadline)
            var stats = SimulatedRound(round: round, selected: plans.count, reported: 0, droppedDeadline: 0, droppedInterruption: 0, droppedDropout: 0,
                                       surplus: 0, bytesUp: 0, bytesDown: 0, uploadTimes: [], duration: deadline, wallClock: 0, accuracy: nil,
                                       acceptedBytes: 0, budgetFitted: 0)
            stats.online = online.count
            stats.samplingRate = dpRound?.samplingRate
            var quit = Set<Int>(), resolved = Set<Int>()
            var accepted: [Int] = []
            // The machine answers every arrival and applies the deadline; the loop ends when it
            // closes (at the K-th report) or at the deadline (closed or abandoned). Arrivals at
            // the deadline run before the deadline event (ties go in scheduling order) and count,
            // as the machine's deadline is inclusive for reports.
            loop: while let (time, event) = queue.next() {
                switch event {
                case .dropout(let i):
                    if !resolved.contains(i) { quit.insert(i) }
                case .arrival(let i):
                    guard !quit.contains(i) else { continue }
                    resolved.insert(i)
                    switch machine.report(Self.clientID(plans[i].client.id), at: time) {
                    case .accepted(let closesRound):
                        accepted.append(i)
                        if closesRound { break loop }
                    case .refused:
                        stats.surplus += 1
                    }
                case .failed(let i):
                    guard !quit.contains(i) else { continue }
                    resolved.insert(i)
                case .deadline:
                    machine.advance(to: time)
                    break loop
                }
            }
            let closeTime = machine.closedAt ?? deadline
            // Tally: bytes each client moved until the round closed (the server aborts the rest).
            // Replayed frames go through the real aggregator too (its validation and decoding at
            // the population's scale), but the model does not learn from them: it is not closed.
            let aggregator = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: UInt64(round), centralDP: dpPolicy, rejectDuplicateFrames: replay == nil))
            for (i, plan) in plans.enumerated() {
                let c = plan.client
                stats.selectedByProfile[c.profile, default: 0] += 1
                if accepted.contains(i) { stats.reportedByProfile[c.profile, default: 0] += 1 }
                if !quit.contains(i), let finish = uploads[i]?.transfer.finish, finish <= deadline { stats.inTimeByProfile[c.profile, default: 0] += 1 }
                if let done = plan.computeDone, done < deadline { stats.readyByProfile[c.profile, default: 0] += 1 }
                if uploads[i] != nil {
                    stats.uploadedFrames += 1
                    stats.uploadedFrameBytes += built[c.id]!.frame.count
                }
                stats.bytesDown += plan.download.finish.map { $0 <= closeTime } == true ? plan.download.bytesSent
                    : c.link.transfer(bytes: downFrame.count, uplink: false, start: 0, mode: scenario.interruptions, deadline: closeTime).bytesSent
                if let up = uploads[i] {
                    let moved = (up.transfer.finish ?? .infinity) <= closeTime ? up.transfer.bytesSent
                        : c.link.transfer(bytes: built[c.id]!.frame.count, uplink: true, start: up.start, mode: scenario.interruptions, deadline: max(up.start, closeTime)).bytesSent
                    stats.bytesUp += moved
                    if let finish = up.transfer.finish, finish <= closeTime, !quit.contains(i) { stats.uploadTimes.append(finish - up.start) }
                }
                if accepted.contains(i) { continue }
                if quit.contains(i) {
                    stats.droppedDropout += 1
                } else if let up = uploads[i], up.transfer.finish == nil {
                    if up.transfer.interruptions > 0 { stats.droppedInterruption += 1 } else { stats.droppedDeadline += 1 }
                } else if uploads[i] == nil {
                    stats.droppedDeadline += 1
                }
            }
            // An abandoned round's reports were acknowledged on arrival (so their clients commit
            // their state), but the round is discarded: they are not aggregated.
            for i in accepted {
                let c = plans[i].client
                let b = built[c.id]!
                if machine.state == .closed { try aggregator.submit(b.frame, clientID: Self.clientID(c.id)) }
                stats.acceptedBytes += b.frame.count
                if b.fitted { stats.budgetFitted += 1 }
                if replay == nil { encoders[c.id] = b.encoder }  // state committed on acceptance only
            }
            if let replay {
                let committed = Set(accepted.map { plans[$0].client.id % replay.updates.count })
                for f in replayFrames.indices where !committed.contains(f) {
                    if let before = replayBefore[f] { replayFrames[f]?.encoder = before } else { replayFrames[f] = nil }
                }
            }
            stats.reported = accepted.count
            stats.duration = closeTime
            stats.abandoned = machine.state == .abandoned && !accepted.isEmpty
            // An abandoned round leaves the model as it was, except with central DP: the ledger
            // has charged the round, and the Gaussian mechanism must release an output for every
            // round it charged, so an empty round releases its noise (skipping it would reveal
            // that no one reported). Scenario.validate refuses a minimum fraction with DP, so
            // with DP only an empty round is abandoned and the aggregator holds no update.
            if (machine.state == .closed || dpPolicy != nil), replay == nil {
                let result = try aggregator.close()
                try result.apply(to: &global, optimizer: &optimizer)
                ledger?.finishRound(norms: result.accepted.map(\.norm))
            }
            stats.epsilon = dpRound?.epsilon
            wallClock += closeTime
            stats.wallClock = wallClock
            if let test, replay == nil { stats.accuracy = model.accuracy(global, data: test) }
            rounds.append(stats)
            progress(stats)
        }
        return PipelineRun(pipeline: pipeline.description, rounds: rounds, privacy: ledger?.summary)
    }
}
