import UplinkCodec

/// One simulated client.
public struct SimulatedClient: Sendable {
    /// Index in the population.
    public var id: Int
    /// Its population group.
    public var group: Int
    /// The profile (or trace) name, for reports.
    public var profile: String
    /// Its network link.
    public var link: Link
    /// Training speed.
    public var msPerSample: Double
    /// Probability of being online when a round selects.
    public var availability: Double
    /// Probability of quitting during a round it was selected for.
    public var dropout: Double
}

/// Builds a population from a scenario: groups by share, a link and a compute speed per client,
/// all from the scenario seed.
public enum Population {
    public static func make(_ scenario: Scenario) throws(UplinkError) -> [SimulatedClient] {
        let total = scenario.population.reduce(0) { $0 + $1.share }
        var traces: [String: [Double]] = [:]
        for g in scenario.population {
            // In bit/s, once per file: every client's link shares the array.
            for t in [g.trace, g.downlinkTrace].compactMap({ $0 }) where traces[t] == nil { traces[t] = try TraceFile.load(path: t).map { $0 * 1000 } }
        }
        var rng = SplitMix64(seed: scenario.seed ^ 0x504F_5055_4C41_5449)
        var clients: [SimulatedClient] = []
        var cumulative = 0.0
        var assigned = 0
        for (gi, g) in scenario.population.enumerated() {
            cumulative += g.share / total
            let end = gi == scenario.population.count - 1 ? scenario.clients : Int((cumulative * Double(scenario.clients)).rounded())
            for id in assigned..<max(assigned, end) {
                let link: Link
                if let t = g.trace {
                    let profile = scenario.profile(named: g.profile)
                    let up = traces[t]!, down = g.downlinkTrace.map { traces[$0]! }
                    // A whole-second start within the longer trace (so both directions stay aligned).
                    let offset = scenario.traceOffsets == .random ? Int(rng.next() % UInt64(max(up.count, down?.count ?? 0))) : 0
                    link = Link(traceBitsPerSecond: up, downlinkTraceBitsPerSecond: down, offset: offset, rtt: (profile?.rttMs ?? 50) / 1000)
                } else {
                    link = Link(profile: scenario.profile(named: g.profile)!, seed: rng.next())
                }
                let ms = g.msPerSample[0] + (g.msPerSample[1] - g.msPerSample[0]) * Double(rng.next() >> 11) * 0x1p-53
                clients.append(SimulatedClient(id: id, group: gi, profile: g.label, link: link,
                                               msPerSample: ms, availability: g.availability, dropout: g.dropout))
            }
            assigned = max(assigned, end)
        }
        return clients
    }
}

/// A binary min-heap of timed events: the simulator's virtual clock.
struct EventQueue<Payload> {
    private var heap: [(time: Double, order: Int, payload: Payload)] = []
    private var counter = 0

    var isEmpty: Bool { heap.isEmpty }

    /// Schedules `payload` at `time`; equal times come out in scheduling order.
    mutating func schedule(_ time: Double, _ payload: Payload) {
        heap.append((time, counter, payload))
        counter += 1
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// The earliest event.
    mutating func next() -> (time: Double, payload: Payload)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, less(l, m) { m = l }
            if r < heap.count, less(r, m) { m = r }
            guard m != i else { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.payload)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].time < heap[b].time || (heap[a].time == heap[b].time && heap[a].order < heap[b].order)
    }
}
