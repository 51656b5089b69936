import UplinkPrivacy
import Dispatch
import UplinkAggregation
import UplinkCodec

/// A federated training run: FedAvg-style rounds where every client update goes through the
/// real encoder (each client with its own error-feedback state) and the real server aggregator.
public struct FederatedConfig: Sendable {
    /// Number of clients (N).
    public var clients: Int = 100
    /// How the training set is split among them.
    public var partition: Partition = .dirichlet(0.5)
    /// Rounds to run.
    public var rounds: Int = 50
    /// Fraction of clients selected per round (C).
    public var fraction: Double = 0.1
    /// Local training (E, B, learning rate, momentum, FedProx μ).
    public var local = LocalTraining()
    /// The uplink pipeline.
    public var pipeline = Pipeline()
    /// The server strategy.
    public var strategy: Strategy = .fedAvg(lr: 1)
    /// The network: ``ModelKind/mlp(width:)`` (features → w → w → classes) or the simple CNN.
    public var model: ModelKind = .mlp(width: 1024)
    /// Seed for initialization, partition, selection and local shuffles (with central DP, the
    /// selection only when the DP settings carry a seed too).
    public var seed: UInt64 = 1
    /// Clients trained in parallel.
    public var threads: Int = 2
    /// Central differential privacy, `nil` for none. Without a DP seed the client selection, as
    /// well as the noise, comes from the system's secure generator (docs/privacy.md).
    public var dp: DPSettings?

    /// The defaults of `uplink train`.
    public init() {}
}

/// What one round did.
public struct RoundReport: Sendable {
    /// Round number, from 1.
    public var round: Int
    /// Clients whose update was accepted.
    public var reported: Int
    /// Test accuracy of the new global model.
    public var accuracy: Double
    /// Uplink bytes of the round's frames.
    public var uplinkBytes: Int
    /// Uplink bytes so far.
    public var cumulativeUplinkBytes: Int
    /// What the same updates would have cost as dense float32.
    public var cumulativeFloat32Bytes: Int
    /// Mean relative L2 error of the decoded updates against the local deltas.
    public var meanRelativeError: Double
    /// ε spent so far (central DP), at the configured δ.
    public var epsilon: Double?
    /// The clip bound used this round (central DP).
    public var clip: Double?
    /// The guarantee after this round (central DP): ε, the sampling rate accounted, the randomness.
    public var privacy: PrivacySummary?
    /// The clients selected (for tests; kept out of reports, since a DP run's sample is secret).
    var clients: [Int] = []
}

/// Runs federated training on a dataset.
public struct FederatedTraining: Sendable {
    public let config: FederatedConfig
    /// The network being trained.
    public let model: any Classifier
    let train: Dataset
    let test: Dataset
    let shares: [[Int]]

    /// A run of `config` on `train` (split among clients) evaluated on `test`.
    /// - Throws: ``UplinkError/Code/invalidArgument`` when the model does not fit the data or
    ///   the partition cannot split it among the clients.
    public init(config: FederatedConfig, train: Dataset, test: Dataset) throws(UplinkError) {
        try config.partition.check(examples: train.count, clients: config.clients)
        guard train.featureCount == test.featureCount, train.classCount == test.classCount else {
            throw UplinkError(.invalidArgument, "the training and test sets differ in features or classes")
        }
        self.config = config
        self.model = try config.model.model(for: train)
        self.train = train
        self.test = test
        self.shares = config.partition.split(labels: train.labels, classes: train.classCount, clients: config.clients, seed: config.seed)
    }

    /// The number of clients a round selects, m = ⌊C·N + ½⌋ (at least 1).
    var selectionSize: Int { max(1, min(config.clients, Int((config.fraction * Double(config.clients)).rounded()))) }

    /// The clients selected in `round` from the seed: m without replacement. A run with central
    /// DP and no DP seed draws its selections from the secure generator instead.
    public func selection(round: Int) -> [Int] {
        var rng = SplitMix64(seed: config.seed &+ 0x5345_4C45_4354, round: UInt64(round))
        return selection(using: &rng)
    }

    func selection<G: RandomNumberGenerator>(using rng: inout G) -> [Int] {
        var pool = Array(0..<config.clients)
        pool.shuffleFirst(selectionSize, using: &rng)
        return pool[0..<selectionSize].sorted()
    }

    /// Runs every round, calling `progress` after each; returns the reports and the final model.
    /// Each round is a `RoundMachine` as the coordinator runs it (K = the m selected clients,
    /// no over-selection, no deadline): every selected client reports, in client order, and
    /// the m-th report closes the round.
    public func run(progress: (RoundReport) -> Void = { _ in }) throws(UplinkError) -> (reports: [RoundReport], parameters: [Float]) {
        var global = model.initialParameters(seed: config.seed)
        var optimizer = ServerOptimizer(strategy: config.strategy, layout: model.layout)
        var encoders: [Int: FrameEncoder] = [:]
        var reports: [RoundReport] = []
        var cumulative = 0, cumulativeDense = 0
        let n = model.layout.parameterCount
        let m = selectionSize
        // The coordinator's round rules: the m selected clients are the round (no
        // over-selection), and without a deadline it closes at the m-th report.
        let rules = try RoundRules(targetReports: m, overSelection: 1, deadline: .infinity)
        var ledger: PrivacyLedger?
        if let dp = config.dp { ledger = try PrivacyLedger(settings: dp, expectedClients: Double(m)) }
        // Amplification by sampling assumes nobody can predict the sample: secret unless seeded.
        let secretSelection = config.dp != nil && config.dp?.seed == nil
        var secure = PrivacyRandomness(seed: nil)
        for round in 1...config.rounds {
            var policy = RoundPolicy(round: UInt64(round))
            var dpRound: PrivacyLedger.Round?
            if ledger != nil {
                // A uniform sample of m of the N clients: each is in it with probability exactly m/N.
                guard let planned = try ledger!.beginRound(samplingRate: Double(m) / Double(config.clients)) else { break }
                dpRound = planned
                policy.centralDP = CentralDP(clip: planned.clip, noiseMultiplier: planned.sumNoiseMultiplier, expectedClients: Double(m), seed: planned.noiseSeed)
            }
            let chosen = secretSelection ? selection(using: &secure) : selection(round: round)
            var machine = RoundMachine(round: UInt64(round), rules: rules, openedAt: 0)
            for client in chosen { _ = machine.checkIn(Simulator.clientID(client), at: 0) }
            let starting = global
            let states = chosen.map { encoders[$0] ?? FrameEncoder(layout: model.layout, pipeline: config.pipeline) }
            let results = Locked([(frame: [UInt8], encoder: FrameEncoder, error: Double)?](repeating: nil, count: chosen.count))
            let failure = Locked<UplinkError?>(nil)
            DispatchQueue.concurrentPerform(iterations: max(1, config.threads)) { worker in
                for slot in stride(from: worker, to: chosen.count, by: max(1, config.threads)) {
                    let client = chosen[slot]
                    let data = train.subset(shares[client])
                    let local = config.local.train(model, from: starting, data: data, seed: config.seed ^ UInt64(client) &* 0x9E37_79B9 ^ UInt64(round) << 32)
                    var delta = [Float](repeating: 0, count: n)
                    for i in 0..<n { delta[i] = local[i] - starting[i] }
                    var encoder = states[slot]
                    do throws(UplinkError) {
                        let frame = try encoder.encode(delta, round: UInt64(round), sampleCount: UInt64(data.count))
                        let decoded = try FrameDecoder(limits: .forModel(model.layout)).decode(frame, layout: model.layout).values
                        var diff = 0.0, norm = 0.0
                        for i in 0..<n {
                            diff += Double(decoded[i] - delta[i]) * Double(decoded[i] - delta[i])
                            norm += Double(delta[i]) * Double(delta[i])
                        }
                        let error = norm > 0 ? (diff / norm).squareRoot() : 0
                        results.withLock { $0[slot] = (frame, encoder, error) }
                    } catch {
                        failure.withLock { $0 = error }
                    }
                }
            }
            if let error = failure.withLock({ $0 }) { throw error }
            let outcomes = results.withLock { $0 }
            // Report in client order: the server sees the same sequence every run. Every selected
            // client reports, and the round machine accepts each (the m-th closes the round).
            let aggregator = try RoundAggregator(layout: model.layout, strategy: config.strategy, policy: policy)
            var bytes = 0, errors = 0.0
            for (slot, client) in chosen.enumerated() {
                guard let outcome = outcomes[slot], case .accepted = machine.report(Simulator.clientID(client), at: 0) else { continue }
                encoders[client] = outcome.encoder
                try aggregator.submit(outcome.frame, clientID: Simulator.clientID(client))
                bytes += outcome.frame.count
                errors += outcome.error
            }
            let result = try aggregator.close()
            try result.apply(to: &global, optimizer: &optimizer)
            ledger?.finishRound(norms: result.accepted.map(\.norm))
            cumulative += bytes
            cumulativeDense += result.accepted.count * n * 4
            let report = RoundReport(
                round: round, reported: result.accepted.count, accuracy: model.accuracy(global, data: test),
                uplinkBytes: bytes, cumulativeUplinkBytes: cumulative, cumulativeFloat32Bytes: cumulativeDense,
                meanRelativeError: errors / Double(max(1, result.accepted.count)), epsilon: dpRound?.epsilon,
                clip: dpRound?.clip, privacy: ledger?.summary, clients: chosen)
            reports.append(report)
            progress(report)
        }
        return (reports, global)
    }

    /// Centralized training on the whole training set (a reference for the federated runs).
    public static func centralized(model: MLP, train: Dataset, epochs: Int, local: LocalTraining, seed: UInt64) -> [Float] {
        var settings = local
        settings.epochs = epochs
        return settings.train(model, from: model.initialParameters(seed: seed), data: train, seed: seed)
    }
}
