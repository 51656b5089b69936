import UplinkCodec

/// What happens to an upload when the link drops.
public enum InterruptionMode: String, Codable, Sendable {
    /// Resumable upload: continue from the last acknowledged byte after reconnecting.
    case resume
    /// Plain upload: start over after reconnecting.
    case restart
}

/// The outcome of one transfer.
public struct Transfer: Hashable, Sendable {
    /// When the last byte arrived, or `nil` if it did not before the deadline.
    public var finish: Double?
    /// Bytes put on the wire, including those lost to restarts and the partial transfer.
    public var bytesSent: Int
    /// Outages met during the transfer.
    public var interruptions: Int
}

/// One client's network link: rates, round-trip time, per-second variability, outages and
/// loss, all fixed by a seed, so replaying a client gives the same link. Time is in seconds
/// on the simulation clock.
public struct Link: Sendable {
    /// Uplink and downlink rate in bit/s before variability and loss.
    public var uplinkBps: Double
    public var downlinkBps: Double
    /// Round-trip time in seconds.
    public var rtt: Double
    /// σ of the per-second log-rate factor.
    public var variability: Double
    /// Packet loss probability.
    public var loss: Double
    /// Outage intervals `[start, end)`, sorted.
    public var outages: [(start: Double, end: Double)]
    /// A replayed rate trace in bit/s per second, instead of the rates: the uplink's, and the
    /// downlink's too unless ``downlinkTrace`` is set.
    public var trace: [Double]?
    /// A separate downlink trace in bit/s per second.
    public var downlinkTrace: [Double]?
    /// Where in its trace this client's second 0 falls, so clients on one trace do not move in
    /// lockstep (whole seconds; the traces repeat).
    public var traceOffset: Int = 0
    let seed: UInt64

    /// A constant link: no variability, loss or outages.
    public init(uplinkBps: Double, downlinkBps: Double, rtt: Double) {
        self.uplinkBps = uplinkBps
        self.downlinkBps = downlinkBps
        self.rtt = rtt
        self.variability = 0
        self.loss = 0
        self.outages = []
        self.trace = nil
        self.seed = 0
    }

    /// A link drawn from `profile` with `seed`, with outages generated up to `horizon` seconds.
    public init(profile: LinkProfile, seed: UInt64, horizon: Double = 86_400) {
        var rng = SplitMix64(seed: seed)
        func lognormal(_ median: Double, _ sigma: Double) -> Double { median * LibM.exp(sigma * Random.normal(using: &rng)) }
        uplinkBps = lognormal(profile.uplinkMbps, profile.spread) * 1e6
        downlinkBps = lognormal(profile.downlinkMbps, profile.spread) * 1e6
        rtt = lognormal(profile.rttMs, 0.3) / 1000
        variability = profile.variability
        loss = profile.loss
        trace = nil
        self.seed = rng.next()
        var outages: [(Double, Double)] = []
        if profile.outagesPerHour > 0 {
            let rate = profile.outagesPerHour / 3600
            var t = 0.0
            while true {
                t += -LibM.log(1 - Double(rng.next() >> 11) * 0x1p-53) / rate
                guard t < horizon else { break }
                let length = -LibM.log(1 - Double(rng.next() >> 11) * 0x1p-53) * profile.meanOutageSeconds
                outages.append((t, t + length))
                t += length
            }
        }
        self.outages = outages
    }

    /// A trace-driven link: `kbps[i]` is the uplink rate during second i + `offset` (repeating),
    /// 0 an outage; `downlinkKbps` likewise for the downlink (the uplink trace when nil).
    public init(trace kbps: [Double], downlinkTrace downlinkKbps: [Double]? = nil, offset: Int = 0, rtt: Double) {
        self.init(traceBitsPerSecond: kbps.map { $0 * 1000 }, downlinkTraceBitsPerSecond: downlinkKbps?.map { $0 * 1000 }, offset: offset, rtt: rtt)
    }

    /// A trace-driven link on rates already in bit/s. The arrays are shared, not copied, by
    /// every link made from them, so a population on one trace holds it once.
    init(traceBitsPerSecond up: [Double], downlinkTraceBitsPerSecond down: [Double]?, offset: Int, rtt: Double) {
        precondition(!up.isEmpty && down?.isEmpty != true)
        uplinkBps = 0
        downlinkBps = 0
        self.rtt = rtt
        variability = 0
        loss = 0
        outages = []
        trace = up
        downlinkTrace = down
        traceOffset = max(0, offset)
        seed = 0
    }

    /// The mean uplink goodput in bit/s (of the trace, or the rate less loss).
    var meanUplinkBps: Double {
        if let trace { return trace.reduce(0, +) / Double(trace.count) }
        return min(uplinkBps * (1 - loss), lossCeiling)
    }

    /// TCP goodput with loss (Mathis et al. 1997): 1.22·MSS/(RTT·√p), MSS = 1460 bytes.
    var lossCeiling: Double { loss > 0 ? 1.22 * 1460 * 8 / (rtt * loss.squareRoot()) : .infinity }

    /// The goodput in bit/s during second `second` (0 in an outage or a zero trace second).
    func rate(at t: Double, uplink: Bool) -> Double {
        let second = Int(t.rounded(.down))
        if let up = trace {
            let t = uplink ? up : downlinkTrace ?? up
            let (shifted, overflow) = second.addingReportingOverflow(traceOffset)
            let i = (overflow ? second : shifted) % t.count
            return t[i < 0 ? i + t.count : i]
        }
        let base = uplink ? uplinkBps : downlinkBps
        var factor = 1.0
        if variability > 0 {
            var r = SplitMix64(seed: seed ^ UInt64(bitPattern: Int64(second)) &* 0x9E37_79B9_7F4A_7C15 ^ (uplink ? 1 : 2))
            factor = LibM.exp(variability * Random.normal(using: &r))
        }
        return min(base * factor * (1 - loss), lossCeiling)
    }

    /// The outage containing `t`, if any.
    func outage(at t: Double) -> (start: Double, end: Double)? {
        var lo = 0, hi = outages.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if outages[mid].end <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo < outages.count && outages[lo].start <= t ? outages[lo] : nil
    }

    func nextOutageStart(after t: Double) -> Double {
        var lo = 0, hi = outages.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if outages[mid].start <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo < outages.count ? outages[lo].start : .infinity
    }

    /// Sends `bytes` starting at `start`: one round trip to open the request, then the data at the
    /// link's goodput, second by second. An outage (or a zero-rate trace second) interrupts it: after
    /// the link returns and one more round trip, the upload resumes from the last byte or restarts,
    /// by `mode`. Gives up at `deadline`.
    public func transfer(bytes: Int, uplink: Bool, start: Double, mode: InterruptionMode, deadline: Double = .infinity) -> Transfer {
        var t = start + rtt
        var remaining = Double(bytes)
        var sent = 0.0
        var interruptions = 0
        var idleSeconds = 0
        while remaining > 0 {
            guard t < deadline else { return Transfer(finish: nil, bytesSent: Int(sent.rounded(.up)), interruptions: interruptions) }
            if let o = outage(at: t) {
                interruptions += 1
                t = o.end + rtt
                if mode == .restart { remaining = Double(bytes) }
                continue
            }
            let r = rate(at: t, uplink: uplink)
            if r <= 0 {
                // A dead trace second: an outage until the next second.
                idleSeconds += 1
                guard idleSeconds < 1_000_000 else { return Transfer(finish: nil, bytesSent: Int(sent), interruptions: interruptions) }
                interruptions += 1
                t = t.rounded(.down) + 1 + rtt
                if mode == .restart { remaining = Double(bytes) }
                continue
            }
            let segmentEnd = min(t.rounded(.down) + 1, nextOutageStart(after: t), deadline)
            let capacity = r * (segmentEnd - t) / 8
            if capacity >= remaining {
                t += remaining * 8 / r
                sent += remaining
                remaining = 0
            } else {
                remaining -= capacity
                sent += capacity
                t = segmentEnd
            }
        }
        return Transfer(finish: t, bytesSent: Int(sent.rounded(.up)), interruptions: interruptions)
    }
}
