import Synchronization
import UplinkCodec

/// What the server does with an update whose L2 norm exceeds the bound.
public enum NormPolicy: String, Sendable, Hashable {
    /// Refuse the update (error 902).
    case reject
    /// Scale it down to the bound.
    case clip
}

/// Central differential privacy at the server (DP-FedAvg, McMahan et al. 2018): each update
/// clipped to L2 ≤ `clip`, averaged unweighted, the sum noised with N(0, (z·clip)²) per
/// coordinate and divided by the *expected* number of clients, so one client's influence is
/// bounded by the clip whatever the round's size.
public struct CentralDP: Sendable, Hashable {
    /// The L2 bound C applied to each update.
    public var clip: Double
    /// The noise multiplier z.
    public var noiseMultiplier: Double
    /// The fixed denominator: the expected number of clients per round.
    public var expectedClients: Double
    /// Seed for reproducible noise; `nil` uses the system CSPRNG.
    public var seed: UInt64?

    public init(clip: Double, noiseMultiplier: Double, expectedClients: Double, seed: UInt64? = nil) {
        self.clip = clip
        self.noiseMultiplier = noiseMultiplier
        self.expectedClients = expectedClients
        self.seed = seed
    }
}

/// How a round accepts updates.
public struct RoundPolicy: Sendable, Hashable {
    /// The round id every frame must carry.
    public var round: UInt64
    /// An L2 bound on each update, with what to do beyond it; `nil` for none.
    public var normBound: Double?
    /// Reject or clip beyond ``normBound``.
    public var normPolicy: NormPolicy
    /// Frame reader limits (`FrameLimits.forModel` by default).
    public var limits: FrameLimits?
    /// Central DP; `nil` for none.
    public var centralDP: CentralDP?

    /// A policy for `round`.
    public init(round: UInt64, normBound: Double? = nil, normPolicy: NormPolicy = .reject, limits: FrameLimits? = nil, centralDP: CentralDP? = nil) {
        self.round = round
        self.normBound = normBound
        self.normPolicy = normPolicy
        self.limits = limits
        self.centralDP = centralDP
    }
}

/// An accepted update, as the round recorded it.
public struct AcceptedUpdate: Sendable, Hashable {
    /// The client's identity (from the upload's authentication, or the caller).
    public var clientID: String
    /// The frame's sample count.
    public var samples: UInt64
    /// The weight it entered the aggregate with (samples for FedAvg, 1 for the robust ones).
    public var weight: Double
    /// The update's L2 norm before any clipping.
    public var norm: Double
    /// The factor it was scaled by (1 unless clipped).
    public var scale: Double
    /// The frame's size.
    public var bytes: Int
    /// Values it transmitted.
    public var transmitted: Int
}

/// One round of server-side aggregation: frames arrive (from many uploads at once), each is
/// validated completely and then added straight into a double-precision running sum.
///
/// - **Atomic accept**: a frame is decoded and checked in full (structure, checksums, model,
///   round, finite values, norm bound) before it touches the sum; a frame that fails anywhere
///   leaves the aggregate exactly as it was. A client's second update in a round is refused.
/// - **Memory**: O(model) for the mean-based strategies, whatever the number of clients: one
///   `Double` per parameter per shard (so 2× the float32 model size with one shard) plus the
///   frame being decoded. Median and trimmed mean hold each accepted frame's validated wire
///   form instead (O(bytes received)).
/// - **Concurrency**: `submit` may be called from many threads. Decoding runs outside any lock;
///   the sum is split into `shards` independent accumulators, each behind its own mutex, merged
///   in a fixed order when the round closes.
/// - **Order**: double accumulation makes the float32 result independent of arrival order except
///   when two orders round differently at the last float32 bit (relative difference ≤ 2⁻²⁴; the
///   double sums differ by ~2⁻⁵² relative).
public final class RoundAggregator: Sendable {
    /// The model.
    public let layout: ModelLayout
    /// The strategy.
    public let strategy: Strategy
    /// The acceptance policy.
    public let policy: RoundPolicy
    private let decoder: FrameDecoder
    private let shards: [ShardBox]
    private let registry = Mutex(Registry())

    struct Shard {
        var sum: [Double]
        var weight: Double = 0
        var frames: [(frame: PreparedFrame, scale: Double)] = []
        var accepted: [(sequence: Int, update: AcceptedUpdate)] = []
        var closed = false
    }

    final class ShardBox: Sendable {
        let state: Mutex<Shard>
        init(_ shard: Shard) { state = Mutex(shard) }
    }

    struct Registry {
        var clients: Set<String> = []
        var closed = false
        var next = 0
    }

    /// A round for `layout` aggregated with `strategy`, split into `shards` accumulators
    /// (more shards: less lock contention, one more model-sized sum each).
    ///
    /// - Throws: ``UplinkError/Code/invalidArgument`` for fewer than one shard, or central DP
    ///   with a strategy that needs every update (median, trimmed mean: their sensitivity is not
    ///   bounded by the clip the noise is calibrated to).
    public init(layout: ModelLayout, strategy: Strategy, policy: RoundPolicy, shards: Int = 1) throws(UplinkError) {
        guard shards >= 1 else { throw UplinkError(.invalidArgument, "a round needs at least one shard, not \(shards)") }
        guard policy.centralDP == nil || !strategy.needsAllUpdates else {
            throw UplinkError(.invalidArgument, "central DP works only with the mean-based strategies (fedavg, fedavgm, fedadam, fedyogi, fedadagrad, norm-bounded), not \(strategy)")
        }
        self.layout = layout
        self.strategy = strategy
        self.policy = policy
        self.decoder = FrameDecoder(limits: policy.limits ?? .forModel(layout))
        let keepSum = !strategy.needsAllUpdates
        self.shards = (0..<shards).map { _ in ShardBox(Shard(sum: keepSum ? [Double](repeating: 0, count: layout.parameterCount) : [])) }
    }

    /// Validates `frame` from `clientID` and adds it to the round.
    ///
    /// - Throws: any frame error (1xx–7xx), ``UplinkError/Code/wrongRound``,
    ///   ``UplinkError/Code/duplicateClient``, ``UplinkError/Code/normExceeded``,
    ///   ``UplinkError/Code/zeroWeight``, ``UplinkError/Code/roundClosed``. On any error the
    ///   round is unchanged.
    @discardableResult
    public func submit(_ frame: [UInt8], clientID: String) throws(UplinkError) -> AcceptedUpdate {
        // Reserve the client first, so two concurrent uploads of one client cannot both pass.
        try registry.withLock { (r) throws(UplinkError) in
            guard !r.closed else { throw UplinkError(.roundClosed, "round \(policy.round) is closed") }
            guard r.clients.insert(clientID).inserted else {
                throw UplinkError(.duplicateClient, "client \"\(clientID)\" already sent an update in round \(policy.round)")
            }
        }
        do throws(UplinkError) {
            return try validateAndAdd(frame, clientID: clientID)
        } catch {
            _ = registry.withLock { $0.clients.remove(clientID) }
            throw error
        }
    }

    private func validateAndAdd(_ frame: [UInt8], clientID: String) throws(UplinkError) -> AcceptedUpdate {
        let prepared = try decoder.prepare(frame, layout: layout)
        let header = prepared.header
        guard header.round == policy.round else {
            throw UplinkError(.wrongRound, "frame is for round \(header.round), this is round \(policy.round)")
        }
        let norm = prepared.squaredNorm().squareRoot()
        var scale = 1.0
        if let bound = policy.normBound, norm > bound {
            guard policy.normPolicy == .clip else {
                throw UplinkError(.normExceeded, "update norm \(norm) exceeds the bound \(bound)")
            }
            scale = bound / norm
        }
        if case .normBounded(let clip, _) = strategy, norm * scale > clip { scale *= clip / (norm * scale) }
        if let dp = policy.centralDP, norm * scale > dp.clip { scale *= dp.clip / (norm * scale) * (1 - 1e-9) }
        let weight: Double
        switch strategy {
        case _ where policy.centralDP != nil:
            weight = 1  // DP aggregation is unweighted: a sample count would scale one client's influence
        case .median, .trimmedMean:
            weight = 1
        default:
            guard header.sampleCount > 0 else {
                throw UplinkError(.zeroWeight, "frame declares 0 samples; sample-weighted averaging needs at least 1")
            }
            weight = Double(header.sampleCount)
        }
        let sequence = registry.withLock { r -> Int in
            defer { r.next += 1 }
            return r.next
        }
        let accepted = AcceptedUpdate(
            clientID: clientID, samples: header.sampleCount, weight: weight, norm: norm, scale: scale,
            bytes: header.frameLength, transmitted: prepared.transmittedCount)
        // The shard's own `closed` flag decides: a frame that reaches a shard after the round
        // closed is refused whole, never half-added.
        try shards[sequence % shards.count].state.withLock { (s) throws(UplinkError) in
            guard !s.closed else { throw UplinkError(.roundClosed, "round \(policy.round) closed while the frame was being decoded") }
            if strategy.needsAllUpdates {
                s.frames.append((prepared, scale))
            } else {
                s.sum.withUnsafeMutableBufferPointer { prepared.accumulate(into: $0, weight: weight * scale) }
                s.weight += weight
            }
            s.accepted.append((sequence, accepted))
        }
        return accepted
    }

    /// The updates accepted so far, in acceptance order.
    public var accepted: [AcceptedUpdate] {
        shards.flatMap { box in box.state.withLock { $0.accepted } }.sorted { $0.sequence < $1.sequence }.map(\.update)
    }

    /// Closes the round (later submissions fail with ``UplinkError/Code/roundClosed``) and
    /// returns the aggregate update.
    public func close() throws(UplinkError) -> RoundResult {
        let alreadyClosed = registry.withLock { r -> Bool in
            defer { r.closed = true }
            return r.closed
        }
        guard !alreadyClosed else { throw UplinkError(.roundClosed, "round \(policy.round) is already closed") }
        // Each shard is closed under its own lock: what it holds then is final, and any frame
        // still decoding is refused when it reaches the shard.
        var sum: [Double] = []
        var weight = 0.0
        var frames: [(frame: PreparedFrame, scale: Double)] = []
        var tagged: [(sequence: Int, update: AcceptedUpdate)] = []
        for box in shards {
            box.state.withLock { s in
                s.closed = true
                if !s.sum.isEmpty {
                    if sum.isEmpty { sum = s.sum } else { for i in 0..<sum.count { sum[i] += s.sum[i] } }
                    s.sum = []
                }
                weight += s.weight
                frames += s.frames
                s.frames = []
                tagged += s.accepted
            }
        }
        let accepted = tagged.sorted { $0.sequence < $1.sequence }.map(\.update)
        if let dp = policy.centralDP {
            // Noise on the sum, then the fixed denominator; an empty round still releases noise.
            if sum.isEmpty { sum = [Double](repeating: 0, count: layout.parameterCount) }
            let sigma = dp.noiseMultiplier * dp.clip
            sum.withUnsafeMutableBufferPointer { s in
                if let seed = dp.seed {
                    var rng = SplitMix64(seed: seed, round: policy.round)
                    GaussianNoise.add(to: s, sigma: sigma, using: &rng)
                } else {
                    var rng = SystemRandomNumberGenerator()
                    GaussianNoise.add(to: s, sigma: sigma, using: &rng)
                }
            }
            return RoundResult(strategy: strategy, layout: layout, sum: sum, totalWeight: dp.expectedClients, frames: frames, accepted: accepted)
        }
        guard !accepted.isEmpty else { throw UplinkError(.emptyRound, "round \(policy.round) closed with no accepted update") }
        return RoundResult(strategy: strategy, layout: layout, sum: sum, totalWeight: weight, frames: frames, accepted: accepted)
    }
}

/// A closed round: the aggregate update Δ, produced block by block.
public struct RoundResult: Sendable {
    /// The strategy.
    public let strategy: Strategy
    /// The model.
    public let layout: ModelLayout
    let sum: [Double]
    /// Σ weights of the accepted updates.
    public let totalWeight: Double
    let frames: [(frame: PreparedFrame, scale: Double)]
    /// The accepted updates.
    public let accepted: [AcceptedUpdate]

    /// Δ for parameters `range` into `out`: the weighted mean for the mean-based strategies,
    /// the coordinate-wise median or trimmed mean for the robust ones.
    public func delta(_ range: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == range.count)
        switch strategy {
        case .median, .trimmedMean(_):
            RobustStatistics.blockDelta(frames: frames, strategy: strategy, range: range, into: out)
        default:
            for i in 0..<out.count { out[i] = Float(sum[range.lowerBound + i] / totalWeight) }
        }
    }

    /// Applies the round to `model` in memory with `optimizer` (block by block).
    public func apply(to model: inout [Float], optimizer: inout ServerOptimizer, blockSize: Int = 1 << 16) {
        precondition(model.count == layout.parameterCount)
        var start = 0
        withUnsafeTemporaryAllocation(of: Float.self, capacity: blockSize) { tmp in
            model.withUnsafeMutableBufferPointer { m in
                while start < m.count {
                    let end = min(m.count, start + blockSize)
                    let d = UnsafeMutableBufferPointer(rebasing: tmp[0..<(end - start)])
                    delta(start..<end, into: d)
                    optimizer.step(model: UnsafeMutableBufferPointer(rebasing: m[start..<end]), delta: UnsafeBufferPointer(d), range: start..<end)
                    start = end
                }
            }
        }
        optimizer.finishRound()
    }
}

/// Coordinate-wise median and trimmed mean over blocks of coordinates.
enum RobustStatistics {
    static func blockDelta(frames: [(frame: PreparedFrame, scale: Double)], strategy: Strategy, range: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        let clients = frames.count
        let width = range.count
        var matrix = [Float](repeating: 0, count: clients * width)
        matrix.withUnsafeMutableBufferPointer { m in
            for (c, f) in frames.enumerated() {
                let row = UnsafeMutableBufferPointer(rebasing: m[(c * width)..<((c + 1) * width)])
                f.frame.decode(parameters: range, into: row)
                if f.scale != 1 { for i in 0..<width { row[i] *= Float(f.scale) } }
            }
        }
        var column = [Float](repeating: 0, count: clients)
        let trim: Int
        if case .trimmedMean(let beta) = strategy { trim = Int((beta * Double(clients)).rounded(.down)) } else { trim = -1 }
        for i in 0..<width {
            for c in 0..<clients { column[c] = matrix[c * width + i] }
            column.sort()
            if trim < 0 {
                out[i] = clients % 2 == 1 ? column[clients / 2] : (column[clients / 2 - 1] + column[clients / 2]) / 2
            } else {
                var s = 0.0
                for c in trim..<(clients - trim) { s += Double(column[c]) }
                out[i] = Float(s / Double(clients - 2 * trim))
            }
        }
    }
}
