import Foundation
import UplinkCodec

/// A simulation scenario: who the clients are, how they connect, what they train, how rounds
/// run, and which pipelines to compare. Read from JSON with ``load(path:)`` (`docs/simulation.md`
/// documents every field and its range); every field has a default, so `{}` is the default
/// scenario. Encodes to the same JSON it reads.
public struct Scenario: Encodable, Sendable {
    /// A share of the population on one link profile.
    public struct Group: Encodable, Sendable, Hashable {
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
        /// A CSV trace of (seconds, kbit/s) rows to replay instead of the profile's rates: the
        /// uplink's, and the downlink's unless ``downlinkTrace`` is given.
        public var trace: String?
        /// A separate downlink trace (needs ``trace``).
        public var downlinkTrace: String?
        /// The group's name in reports; default: the profile's name, or `trace <file>` for a
        /// trace group. Groups with one name are reported together.
        public var name: String?

        /// A group; only `profile` and `share` are required in a scenario file.
        public init(profile: String, share: Double, msPerSample: [Double] = [5, 20], availability: Double = 0.8, dropout: Double = 0.02,
                    trace: String? = nil, downlinkTrace: String? = nil, name: String? = nil) {
            self.profile = profile
            self.share = share
            self.msPerSample = msPerSample
            self.availability = availability
            self.dropout = dropout
            self.trace = trace
            self.downlinkTrace = downlinkTrace
            self.name = name
        }

        /// The name reports use for this group's clients.
        public var label: String {
            if let name { return name }
            guard let trace else { return profile }
            let file = (trace as NSString).lastPathComponent
            return downlinkTrace.map { "trace \(file) / \(($0 as NSString).lastPathComponent)" } ?? "trace \(file)"
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case profile, share, msPerSample, availability, dropout, trace, downlinkTrace, name
        }
    }

    /// Where each client on a trace starts in it.
    public enum TraceOffsets: String, Encodable, Sendable {
        /// A seeded random whole second within the trace, per client.
        case random
        /// Second 0 for every client: all clients on a trace see the same rate at the same time.
        case none
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
    /// The share of K a round needs at its deadline to close; with fewer reports it is
    /// abandoned and leaves the model as it was (``RoundRules/minimumReportFraction``). With the
    /// default 0 only a round without reports is abandoned.
    public var minimumReportFraction: Double = 0
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
    /// Real training of the digits MLP (true) or replayed updates (false: any model, and
    /// populations of many thousands). A scenario with ``updates`` replays them.
    public var train: Bool = true
    /// The update replayed when `train` is false and ``updates`` is empty.
    public var replayUpdate: String = "fixtures/updates/mlp-digits-r6-c61.safetensors"
    /// Real update files of any model (`.safetensors` or `.npy`) to replay: client i sends file
    /// i mod count, so clients' updates differ. All must have one layout (that of ``model`` when given).
    public var updates: [String] = []
    /// A tensor file of the model (a checkpoint): its layout is what the updates must match, and
    /// its values are the global model the downlink sends. Default: the first update's layout
    /// and values.
    public var model: String?
    /// Leave non-float tensors (int64 counters, bool masks) out of ``updates`` and ``model``
    /// instead of refusing the file.
    public var skipNonFloat: Bool = false
    /// Training samples behind each replayed update: the compute time (samples × localEpochs ×
    /// msPerSample) and the frame's sample count.
    public var samplesPerClient: Int = 1
    /// Where clients on a trace start in it.
    public var traceOffsets: TraceOffsets = .random
    /// Label partition of the training data.
    public var partition: String = "dirichlet:0.5"
    /// Local epochs, batch size, learning rate, momentum, L2 weight decay (PyTorch's).
    public var localEpochs: Int = 1
    public var batchSize: Int = 32
    public var learningRate: Float = 0.05
    public var momentum: Float = 0.9
    public var weightDecay: Float = 0
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
    /// Seed for the DP noise and (with DP) the client selection; `nil` draws both from the
    /// system's secure generator, as the privacy analysis assumes (docs/privacy.md).
    public var dpSeed: UInt64?

    /// The default scenario.
    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, seed, rounds, clients, reportsPerRound, overSelection, deadlineSeconds, minimumReportFraction, interruptions, population, profiles
        case pipelines, downlink, train, replayUpdate, updates, model, skipNonFloat, samplesPerClient, traceOffsets, partition, localEpochs, batchSize, learningRate, momentum, weightDecay, width
        case budgetFitting, dpClip, dpNoise, dpAdaptiveQuantile, dpDelta, dpEpsilonBudget, dpSeed
    }

    /// The links draw outages over this horizon (`Link(profile:seed:horizon:)`'s default), so a
    /// round's deadline may not be longer.
    static let linkHorizonSeconds = 86_400.0
    /// At most this many outages over all clients' links, so a population's memory is bounded.
    static let maximumOutages = 100_000_000.0

    /// Checks every field's range and every reference, naming the field by its path in the
    /// scenario file (`population[1].availability`). ``load(path:)`` calls it; so does
    /// `Simulator.init`, for scenarios built in code.
    public func validate() throws(UplinkError) {
        try check("rounds", rounds, 1...1_000_000)
        try check("clients", clients, 1...1_000_000)
        try check("reportsPerRound", reportsPerRound, 1...max(1, clients), "1…clients (\(clients))")
        try check("overSelection", overSelection, .closed(1, 1000))
        try check("deadlineSeconds", deadlineSeconds, .init(0, Self.linkHorizonSeconds, openLow: true))
        try check("minimumReportFraction", minimumReportFraction, .closed(0, 1))
        guard !population.isEmpty else { throw Self.invalid("population", "needs at least one group") }
        var expectedOutages = 0.0
        let totalShare = population.reduce(0) { $0 + $1.share }
        for (i, g) in population.enumerated() {
            let at = "population[\(i)]"
            try check(at + ".share", g.share, .init(0, 1e9, openLow: true))
            guard g.msPerSample.count == 2 else { throw Self.invalid(at + ".msPerSample", "must be [min, max], got \(g.msPerSample.count) values") }
            try check(at + ".msPerSample[0]", g.msPerSample[0], .closed(0, 3_600_000))
            try check(at + ".msPerSample[1]", g.msPerSample[1], .closed(g.msPerSample[0], 3_600_000), "[msPerSample[0], 3600000]")
            try check(at + ".availability", g.availability, .init(0, 1, openLow: true))
            try check(at + ".dropout", g.dropout, .closed(0, 1))
            if g.downlinkTrace != nil && g.trace == nil { throw Self.invalid(at + ".downlinkTrace", "needs a trace (the uplink's)") }
            if let t = g.downlinkTrace, t.isEmpty { throw Self.invalid(at + ".downlinkTrace", "is an empty path") }
            if let n = g.name {
                guard !n.isEmpty, n.utf8.count <= 200 else { throw Self.invalid(at + ".name", "must be 1 to 200 bytes") }
                let printable = n.unicodeScalars.allSatisfy { c in
                    switch c.properties.generalCategory { case .control, .format, .lineSeparator, .paragraphSeparator: false; default: true }
                }
                guard printable else { throw Self.invalid(at + ".name", "holds a control or format character; a report label must be printable text") }
            }
            if let t = g.trace {
                guard !t.isEmpty else { throw Self.invalid(at + ".trace", "is an empty path") }
            } else if let p = profile(named: g.profile) {
                expectedOutages += g.share / totalShare * Double(clients) * p.outagesPerHour * Self.linkHorizonSeconds / 3600
            } else {
                let names = (LinkProfile.builtIn.map(\.name) + profiles.map(\.name)).joined(separator: ", ")
                throw Self.invalid(at + ".profile", "unknown profile \"\(JSONValue.quoted(g.profile))\"; known: \(names)")
            }
        }
        guard totalShare.isFinite else { throw Self.invalid("population", "the shares add up to more than a double holds") }
        var seen = Set<String>()
        for (i, p) in profiles.enumerated() {
            let at = "profiles[\(i)]"
            guard !p.name.isEmpty else { throw Self.invalid(at + ".name", "is empty") }
            guard seen.insert(p.name.lowercased()).inserted else { throw Self.invalid(at + ".name", "\"\(JSONValue.quoted(p.name))\" is defined twice") }
            try check(at + ".uplinkMbps", p.uplinkMbps, .init(0, 1e6, openLow: true))
            try check(at + ".downlinkMbps", p.downlinkMbps, .init(0, 1e6, openLow: true))
            try check(at + ".spread", p.spread, .closed(0, 3))
            try check(at + ".rttMs", p.rttMs, .closed(0, 60_000))
            try check(at + ".variability", p.variability, .closed(0, 3))
            try check(at + ".outagesPerHour", p.outagesPerHour, .closed(0, 60))
            try check(at + ".meanOutageSeconds", p.meanOutageSeconds, .closed(0, Self.linkHorizonSeconds))
            try check(at + ".loss", p.loss, .init(0, 1, openHigh: true))
        }
        guard expectedOutages <= Self.maximumOutages else {
            throw Self.invalid("population", String(format: "the links would draw about %.0f outages (clients × outagesPerHour × 24 hours), more than %.0f; use fewer clients or outages", expectedOutages, Self.maximumOutages))
        }
        guard !pipelines.isEmpty else { throw Self.invalid("pipelines", "needs at least one pipeline") }
        for (i, p) in pipelines.enumerated() { try Self.naming("pipelines[\(i)]") { () throws(UplinkError) in _ = try Pipeline(parsing: p) } }
        try Self.naming("downlink") { () throws(UplinkError) in _ = try Pipeline(parsing: downlink) }
        try Self.naming("partition") { () throws(UplinkError) in _ = try Partition(parsing: partition) }
        if !train { guard !replayUpdate.isEmpty else { throw Self.invalid("replayUpdate", "is an empty path") } }
        if train && !updates.isEmpty { throw Self.invalid("train", "is true, but updates are replayed, not trained (train runs the bundled digits MLP); leave train out or set it to false") }
        guard updates.count <= 10_000 else { throw Self.invalid("updates", "at most 10000 files, got \(updates.count)") }
        for (i, u) in updates.enumerated() where u.isEmpty { throw Self.invalid("updates[\(i)]", "is an empty path") }
        if let m = model, m.isEmpty { throw Self.invalid("model", "is an empty path") }
        if model != nil && train { throw Self.invalid("model", "needs replayed updates (train false): the trained model is the digits MLP") }
        if model != nil && updates.isEmpty { throw Self.invalid("model", "needs updates: the update files of that model, which it checks and whose layout it gives") }
        try check("samplesPerClient", samplesPerClient, 1...1_000_000_000)
        if budgetFitting && !train { throw Self.invalid("budgetFitting", "needs training (train true): replayed frames are encoded once per file and shared, so there is no per-client frame to fit") }
        try check("localEpochs", localEpochs, 1...1000)
        try check("batchSize", batchSize, 1...1_000_000)
        try check("width", width, 1...4096)
        try check("learningRate", Double(learningRate), .init(0, 1000, openLow: true))
        try check("momentum", Double(momentum), .init(0, 1, openHigh: true))
        try check("weightDecay", Double(weightDecay), .init(0, 100))
        switch (dpClip, dpNoise) {
        case (nil, nil):
            if dpAdaptiveQuantile != nil { throw Self.invalid("dpAdaptiveQuantile", "needs dpClip and dpNoise") }
            if dpEpsilonBudget != nil { throw Self.invalid("dpEpsilonBudget", "needs dpClip and dpNoise") }
        case let (c?, z?):
            // DP accounts each client as changing the sum by at most one clipped update; with a
            // minimum to close, one client's report could decide whether the others' count.
            guard minimumReportFraction == 0 else {
                throw Self.invalid("minimumReportFraction", "must be 0 with central DP (dpClip, dpNoise): one client's report would decide whether the others' count, which the privacy accounting does not cover")
            }
            try check("dpClip", c, .init(0, 1e6, openLow: true))
            try check("dpNoise", z, .init(0, 1000, openLow: true))
            if let q = dpAdaptiveQuantile { try check("dpAdaptiveQuantile", q, .init(0, 1, openLow: true, openHigh: true)) }
            if let b = dpEpsilonBudget { try check("dpEpsilonBudget", b, .init(0, 1e6, openLow: true)) }
        case (nil, _?): throw Self.invalid("dpNoise", "needs dpClip (they go together)")
        case (_?, nil): throw Self.invalid("dpClip", "needs dpNoise (they go together)")
        }
        try check("dpDelta", dpDelta, .init(0, 1, openLow: true, openHigh: true))
    }

    /// The update files a replaying scenario sends: ``updates``, or ``replayUpdate`` alone.
    public var replayFiles: [String] { updates.isEmpty ? [replayUpdate] : updates }

    /// A profile by name: scenario-defined first, then built-in.
    public func profile(named name: String) -> LinkProfile? {
        profiles.first { $0.name.lowercased() == name.lowercased() } ?? LinkProfile.named(name)
    }

    /// An allowed interval of a numeric field.
    struct Interval: CustomStringConvertible {
        var low: Double, high: Double
        var openLow = false, openHigh = false

        init(_ low: Double, _ high: Double, openLow: Bool = false, openHigh: Bool = false) {
            (self.low, self.high, self.openLow, self.openHigh) = (low, high, openLow, openHigh)
        }

        static func closed(_ low: Double, _ high: Double) -> Interval { Interval(low, high) }

        /// False for NaN and the infinities (the bounds are finite).
        func contains(_ x: Double) -> Bool { (openLow ? x > low : x >= low) && (openHigh ? x < high : x <= high) }

        var description: String { "\(openLow ? "(" : "[")\(Self.number(low)), \(Self.number(high))\(openHigh ? ")" : "]")" }

        static func number(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : "\(x)" }
    }

    private func check(_ field: String, _ value: Double, _ allowed: Interval, _ shown: String? = nil) throws(UplinkError) {
        guard allowed.contains(value) else { throw Self.invalid(field, "must be in \(shown ?? allowed.description), got \(value)") }
    }

    private func check(_ field: String, _ value: Int, _ allowed: ClosedRange<Int>, _ shown: String? = nil) throws(UplinkError) {
        guard allowed.contains(value) else { throw Self.invalid(field, "must be in \(shown ?? "\(allowed.lowerBound)…\(allowed.upperBound)"), got \(value)") }
    }

    /// An error about one field: `"population[1].share: must be …"`.
    static func invalid(_ field: String, _ message: String) -> UplinkError { UplinkError(.invalidArgument, "\(field): \(message)") }

    /// Runs `body`, prefixing the field to its error's message and keeping its code.
    static func naming(_ field: String, _ body: () throws(UplinkError) -> Void) throws(UplinkError) {
        do { try body() } catch { throw UplinkError(error.code, "\(field): \(error.message)") }
    }
}
