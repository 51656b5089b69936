import Foundation
import UplinkCodec

/// A simulation scenario: who the clients are, how they connect, what they train, how rounds
/// run, and which pipelines to compare. Read from JSON (`docs/simulation.md` documents every
/// field); every field has a default, so `{}` is the default scenario.
public struct Scenario: Codable, Sendable {
    /// A share of the population on one link profile.
    public struct Group: Codable, Sendable, Hashable {
        /// A built-in profile name (2G, 3G, LTE, 5G, WiFi) or one defined in `profiles`.
        public var profile: String
        /// Fraction of the population (normalized over groups).
        public var share: Double
        /// Compute speed: milliseconds per training sample, drawn uniformly from this range.
        public var msPerSample: [Double] = [5, 20]
        /// Probability that a client is online and eligible when a round selects.
        public var availability: Double = 0.8
        /// Probability that a selected client quits during the round.
        public var dropout: Double = 0.02
        /// A CSV trace of (seconds, kbit/s) rows to replay instead of the profile's rates.
        public var trace: String?

        /// A group; only `profile` and `share` are required in a scenario file.
        public init(profile: String, share: Double, msPerSample: [Double] = [5, 20], availability: Double = 0.8, dropout: Double = 0.02, trace: String? = nil) {
            self.profile = profile
            self.share = share
            self.msPerSample = msPerSample
            self.availability = availability
            self.dropout = dropout
            self.trace = trace
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                profile: try c.decode(String.self, forKey: .profile), share: try c.decode(Double.self, forKey: .share),
                msPerSample: try c.decodeIfPresent([Double].self, forKey: .msPerSample) ?? [5, 20],
                availability: try c.decodeIfPresent(Double.self, forKey: .availability) ?? 0.8,
                dropout: try c.decodeIfPresent(Double.self, forKey: .dropout) ?? 0.02,
                trace: try c.decodeIfPresent(String.self, forKey: .trace))
        }
    }

    /// Scenario name, for reports.
    public var name: String = "default"
    /// Seed for the population, links, selection and training.
    public var seed: UInt64 = 1
    /// Rounds per pipeline.
    public var rounds: Int = 30
    /// Clients in the population.
    public var clients: Int = 100
    /// Target reports per round (K).
    public var reportsPerRound: Int = 10
    /// Selected clients per round = ⌈K × overSelection⌉ (Bonawitz et al. 2019 use 1.3).
    public var overSelection: Double = 1.3
    /// Report deadline in seconds from the round's start.
    public var deadlineSeconds: Double = 45
    /// What an interrupted upload does.
    public var interruptions: InterruptionMode = .resume
    /// The population.
    public var population: [Group] = [
        Group(profile: "3G", share: 0.25), Group(profile: "LTE", share: 0.45),
        Group(profile: "5G", share: 0.15), Group(profile: "WiFi", share: 0.15),
    ]
    /// Extra or overriding link profiles.
    public var profiles: [LinkProfile] = []
    /// Pipelines to compare (uplink).
    public var pipelines: [String] = [
        "fp32 | stored", "fp16 | lz4", "int8 | zlib", "ef | topk 1% | int8 | lz4", "ef | topk 0.1% | int4 | lz4",
    ]
    /// Pipeline for the global model download (a lossy one makes clients train from the decoded model).
    public var downlink: String = "fp32 | stored"
    /// Real training (true) or a replayed update (false, for populations of many thousands).
    public var train: Bool = true
    /// The update replayed when `train` is false.
    public var replayUpdate: String = "fixtures/updates/mlp-digits-r6-c61.safetensors"
    /// Label partition of the training data.
    public var partition: String = "dirichlet:0.5"
    /// Local epochs, batch size, learning rate, momentum.
    public var localEpochs: Int = 1
    public var batchSize: Int = 32
    public var learningRate: Float = 0.05
    public var momentum: Float = 0.9
    /// Hidden width of the digits MLP.
    public var width: Int = 1024
    /// Give each client a byte budget from its link and the deadline, and sparsify to fit it.
    public var budgetFitting: Bool = false
    /// Central DP: clip bound and noise multiplier (both or neither), adaptive quantile, δ and
    /// an ε budget that ends the run early (docs/privacy.md).
    public var dpClip: Double?
    public var dpNoise: Double?
    public var dpAdaptiveQuantile: Double?
    public var dpDelta: Double = 1e-5
    public var dpEpsilonBudget: Double?
    /// Seed for the DP client sample and noise (a reproducible run); `nil` uses the secure generator.
    public var dpSeed: UInt64?

    /// The default scenario.
    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Scenario()
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? d.name
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        rounds = try c.decodeIfPresent(Int.self, forKey: .rounds) ?? d.rounds
        clients = try c.decodeIfPresent(Int.self, forKey: .clients) ?? d.clients
        reportsPerRound = try c.decodeIfPresent(Int.self, forKey: .reportsPerRound) ?? d.reportsPerRound
        overSelection = try c.decodeIfPresent(Double.self, forKey: .overSelection) ?? d.overSelection
        deadlineSeconds = try c.decodeIfPresent(Double.self, forKey: .deadlineSeconds) ?? d.deadlineSeconds
        interruptions = try c.decodeIfPresent(InterruptionMode.self, forKey: .interruptions) ?? d.interruptions
        population = try c.decodeIfPresent([Group].self, forKey: .population) ?? d.population
        profiles = try c.decodeIfPresent([LinkProfile].self, forKey: .profiles) ?? d.profiles
        pipelines = try c.decodeIfPresent([String].self, forKey: .pipelines) ?? d.pipelines
        downlink = try c.decodeIfPresent(String.self, forKey: .downlink) ?? d.downlink
        train = try c.decodeIfPresent(Bool.self, forKey: .train) ?? d.train
        replayUpdate = try c.decodeIfPresent(String.self, forKey: .replayUpdate) ?? d.replayUpdate
        partition = try c.decodeIfPresent(String.self, forKey: .partition) ?? d.partition
        localEpochs = try c.decodeIfPresent(Int.self, forKey: .localEpochs) ?? d.localEpochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        momentum = try c.decodeIfPresent(Float.self, forKey: .momentum) ?? d.momentum
        width = try c.decodeIfPresent(Int.self, forKey: .width) ?? d.width
        budgetFitting = try c.decodeIfPresent(Bool.self, forKey: .budgetFitting) ?? d.budgetFitting
        dpClip = try c.decodeIfPresent(Double.self, forKey: .dpClip)
        dpNoise = try c.decodeIfPresent(Double.self, forKey: .dpNoise)
        dpAdaptiveQuantile = try c.decodeIfPresent(Double.self, forKey: .dpAdaptiveQuantile)
        dpDelta = try c.decodeIfPresent(Double.self, forKey: .dpDelta) ?? d.dpDelta
        dpEpsilonBudget = try c.decodeIfPresent(Double.self, forKey: .dpEpsilonBudget)
        dpSeed = try c.decodeIfPresent(UInt64.self, forKey: .dpSeed)
    }

    /// Reads a scenario file, with errors that name the field.
    public static func load(path: String) throws(UplinkError) -> Scenario {
        guard let data = FileManager.default.contents(atPath: path) else { throw UplinkError(.io, "\(path): cannot read the scenario") }
        let scenario: Scenario
        do {
            scenario = try JSONDecoder().decode(Scenario.self, from: data)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context), let DecodingError.keyNotFound(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw UplinkError(.invalidArgument, "\(path): field \"\(field)\": \(context.debugDescription)")
        } catch let DecodingError.dataCorrupted(context) {
            throw UplinkError(.invalidArgument, "\(path): not a valid scenario: \(context.debugDescription)")
        } catch {
            throw UplinkError(.invalidArgument, "\(path): not a valid scenario (\(error))")
        }
        try scenario.validate()
        return scenario
    }

    /// Checks ranges and references.
    public func validate() throws(UplinkError) {
        func bad(_ m: String) -> UplinkError { UplinkError(.invalidArgument, "scenario: \(m)") }
        guard rounds >= 1, clients >= 1, reportsPerRound >= 1, reportsPerRound <= clients else { throw bad("rounds, clients ≥ 1 and 1 ≤ reportsPerRound ≤ clients") }
        guard overSelection >= 1, deadlineSeconds > 0 else { throw bad("overSelection ≥ 1 and deadlineSeconds > 0") }
        guard !population.isEmpty, population.allSatisfy({ $0.share > 0 }) else { throw bad("population needs groups with share > 0") }
        for g in population {
            guard g.trace != nil || profile(named: g.profile) != nil else {
                throw bad("unknown profile \"\(g.profile)\"; built in: \(LinkProfile.builtIn.map(\.name).joined(separator: ", "))")
            }
            guard g.msPerSample.count == 2, g.msPerSample[0] >= 0, g.msPerSample[1] >= g.msPerSample[0] else { throw bad("msPerSample is [min, max]") }
            guard (0...1).contains(g.availability), (0...1).contains(g.dropout), g.availability > 0 else { throw bad("availability in (0, 1], dropout in [0, 1]") }
        }
        for p in profiles {
            guard p.uplinkMbps > 0, p.downlinkMbps > 0, p.rttMs >= 0, p.spread >= 0, p.variability >= 0, p.outagesPerHour >= 0,
                  p.meanOutageSeconds >= 0, (0..<1).contains(p.loss) else {
                throw bad("profile \"\(p.name)\": rates > 0, other values ≥ 0, loss in [0, 1)")
            }
        }
        guard !pipelines.isEmpty else { throw bad("no pipelines") }
        for p in pipelines + [downlink] { _ = try Pipeline(parsing: p) }
        _ = try Partition(parsing: partition)
        guard localEpochs >= 1, batchSize >= 1, width >= 1, learningRate > 0 else { throw bad("localEpochs, batchSize, width ≥ 1, learningRate > 0") }
        guard (dpClip == nil) == (dpNoise == nil) else { throw bad("dpClip and dpNoise go together") }
        if let c = dpClip, let z = dpNoise { guard c > 0, z > 0, dpDelta > 0, dpDelta < 1 else { throw bad("dpClip, dpNoise > 0 and dpDelta in (0, 1)") } }
        if let q = dpAdaptiveQuantile { guard dpClip != nil, q > 0, q < 1 else { throw bad("dpAdaptiveQuantile in (0, 1), with dpClip") } }
    }

    /// A profile by name: scenario-defined first, then built-in.
    public func profile(named name: String) -> LinkProfile? {
        profiles.first { $0.name.lowercased() == name.lowercased() } ?? LinkProfile.named(name)
    }
}

/// Reads a (seconds, kbit/s) CSV trace into a per-second rate array.
public enum TraceFile {
    public static func load(path: String) throws(UplinkError) -> [Double] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw UplinkError(.io, "\(path): cannot read the trace")
        }
        var points: [(Double, Double)] = []
        for (i, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            let f = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count >= 2, let s = Double(f[0]), let k = Double(f[1]) else {
                if i == 0 { continue }  // a header row
                throw UplinkError(.invalidArgument, "\(path): line \(i + 1) is not \"seconds,kbit/s\"")
            }
            guard s >= 0, k >= 0, s.isFinite, k.isFinite else { throw UplinkError(.invalidArgument, "\(path): line \(i + 1) has a negative value") }
            points.append((s, k))
        }
        guard let last = points.last, points.count >= 1 else { throw UplinkError(.invalidArgument, "\(path): empty trace") }
        guard zip(points, points.dropFirst()).allSatisfy({ $0.0 < $1.0 }) else { throw UplinkError(.invalidArgument, "\(path): seconds must increase") }
        // Piecewise constant: each row's rate holds until the next row's time.
        let seconds = max(1, Int(last.0.rounded(.up)) + 1)
        var rates = [Double](repeating: points[0].1, count: seconds)
        var j = 0
        for s in 0..<seconds {
            while j + 1 < points.count, points[j + 1].0 <= Double(s) { j += 1 }
            rates[s] = points[j].1
        }
        return rates
    }
}
