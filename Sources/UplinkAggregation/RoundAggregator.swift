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
    /// The largest sample count one update may declare (its FedAvg weight); above it the frame
    /// is refused with ``UplinkError/Code/tooManySamples``, so one client cannot outweigh a
    /// round by claiming 2^64 − 1 samples. Default ``defaultMaxSamples``.
    public var maxSamples: UInt64
    /// The most bytes the round may hold for strategies that keep every update (median,
    /// trimmed mean); beyond it a frame is refused with ``UplinkError/Code/memoryLimit``.
    /// Default ``defaultMemoryLimit``.
    public var memoryLimit: Int
    /// Whether byte-identical frames count once (default: `true`, the second copy is refused
    /// with ``UplinkError/Code/duplicateFrame`` whatever client id it arrives under). A
    /// simulation that replays one update file for many clients turns this off.
    public var rejectDuplicateFrames: Bool

    /// 10^6 samples: more than any one device trains on in a round.
    public static let defaultMaxSamples: UInt64 = 1_000_000
    /// 4 GiB.
    public static let defaultMemoryLimit = 4 << 30

    /// A policy for `round`.
    public init(
        round: UInt64, normBound: Double? = nil, normPolicy: NormPolicy = .reject, limits: FrameLimits? = nil, centralDP: CentralDP? = nil,
        maxSamples: UInt64 = RoundPolicy.defaultMaxSamples, memoryLimit: Int = RoundPolicy.defaultMemoryLimit, rejectDuplicateFrames: Bool = true
    ) {
        self.round = round
        self.normBound = normBound
        self.normPolicy = normPolicy
        self.limits = limits
        self.centralDP = centralDP
        self.maxSamples = maxSamples
        self.memoryLimit = memoryLimit
        self.rejectDuplicateFrames = rejectDuplicateFrames
    }
}

/// A frame that passed every check of ``RoundAggregator/prepare(_:)``, ready to be committed to
/// the round in the caller's order (``RoundAggregator/commit(_:clientID:)``).
public struct PreparedUpdate: Sendable {
    let frame: PreparedFrame
    let digest: [UInt8]
    let norm: Double
    let scale: Double
    let weight: Double
    /// The frame's round.
    public var round: UInt64 { frame.header.round }
    /// The SHA-256 of the frame bytes (empty when the policy does not compare them).
    public var contentDigest: [UInt8] { digest }
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

    package init(clientID: String, samples: UInt64, weight: Double, norm: Double, scale: Double, bytes: Int, transmitted: Int) {
        self.clientID = clientID
        self.samples = samples
        self.weight = weight
        self.norm = norm
        self.scale = scale
        self.bytes = bytes
        self.transmitted = transmitted
    }
}

/// One round of server-side aggregation: frames arrive (from many uploads at once), each is
/// validated completely and then added straight into a double-precision running sum.
///
/// - **Atomic accept**: a frame is decoded and checked in full (structure, checksums, model,
///   round, finite values, norm bound) before it touches the sum; a frame that fails anywhere
///   leaves the aggregate exactly as it was. A client's second update in a round is refused.
/// - **Memory**: O(model) for the mean-based strategies, whatever the number of clients: one
///   `Double` per parameter per shard (so 2× the float32 model size with one shard) plus the
///   frames being decoded. Median and trimmed mean need every update at once, O(clients ×
///   model) by nature: they hold each accepted frame's validated, decompressed streams (never
///   more than its float32 values plus 1/8 byte a parameter of positions, and 4–400× less for
///   quantized or sparse frames), counted exactly against ``RoundPolicy/memoryLimit``.
/// - **Identity**: a client id (compared by its UTF-8 bytes) counts once per round, and so do
///   byte-identical frames (SHA-256 of the frame, ``ContentDigest``), whatever id they arrive under.
/// - **Concurrency**: `submit` (or ``prepare(_:)``) may be called from many threads. Decoding
///   runs outside any lock; the sum is split into `shards` independent accumulators, each behind
///   its own mutex, merged in a fixed order when the round closes. A caller that wants results
///   independent of thread timing prepares in parallel and commits in its own order.
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
    var shardBoxes: [ShardBox] { shards }
    private let registry = Locked(Registry())

    struct Shard {
        var sum: [Double]
        var weight: Double = 0
        var frames: [(frame: PreparedFrame, scale: Double)] = []
        var accepted: [(sequence: Int, update: AcceptedUpdate)] = []
        var closed = false
    }

    final class ShardBox: Sendable {
        let state: Locked<Shard>
        init(_ shard: Shard) { state = Locked(shard) }
    }

    struct Registry {
        var clients: Set<[UInt8]> = []
        var digests: Set<[UInt8]> = []
        var heldBytes = 0
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

    /// Validates `frame` from `clientID` and adds it to the round: ``prepare(_:)`` then
    /// ``commit(_:clientID:)``.
    ///
    /// - Throws: any frame error (1xx–7xx), ``UplinkError/Code/wrongRound``,
    ///   ``UplinkError/Code/duplicateClient``, ``UplinkError/Code/duplicateFrame``,
    ///   ``UplinkError/Code/normExceeded``, ``UplinkError/Code/zeroWeight``,
    ///   ``UplinkError/Code/tooManySamples``, ``UplinkError/Code/memoryLimit``,
    ///   ``UplinkError/Code/roundClosed``. On any error the round is unchanged.
    @discardableResult
    public func submit(_ frame: [UInt8], clientID: String) throws(UplinkError) -> AcceptedUpdate {
        try commit(try prepare(frame), clientID: clientID)
    }

    /// Validates `frame` in full (structure, checksums, model, values, round, sample count,
    /// norm) without touching the round; safe to call from many threads at once. With
    /// `checkingRound: false` a frame of any round passes (to find which round valid frames
    /// are for, before any is committed).
    public func prepare(_ frame: [UInt8], checkingRound: Bool = true) throws(UplinkError) -> PreparedUpdate {
        let prepared = try decoder.prepare(frame, layout: layout)
        let header = prepared.header
        guard !checkingRound || header.round == policy.round else {
            throw UplinkError(.wrongRound, "frame is for round \(header.round), this is round \(policy.round)")
        }
        guard header.sampleCount <= policy.maxSamples else {
            throw UplinkError(.tooManySamples, "frame declares \(header.sampleCount) samples; one update may weigh at most \(policy.maxSamples)")
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
        let digest = policy.rejectDuplicateFrames ? ContentDigest.sha256(frame) : []
        return PreparedUpdate(frame: prepared, digest: digest, norm: norm, scale: scale, weight: weight)
    }

    /// Adds a prepared update from `clientID` to the round.
    /// - Throws: ``UplinkError/Code/duplicateClient``, ``UplinkError/Code/duplicateFrame``,
    ///   ``UplinkError/Code/memoryLimit``, ``UplinkError/Code/roundClosed``; on any error the
    ///   round is unchanged.
    @discardableResult
    public func commit(_ update: PreparedUpdate, clientID: String) throws(UplinkError) -> AcceptedUpdate {
        let prepared = update.frame
        guard update.round == policy.round else {
            throw UplinkError(.wrongRound, "frame is for round \(update.round), this is round \(policy.round)")
        }
        let id = Array(clientID.utf8)
        let held = strategy.needsAllUpdates ? prepared.heldBytes : 0
        // Reserve the client, the content and the memory together, so two concurrent uploads
        // cannot both pass; released if the shard refuses.
        let sequence = try registry.withLock { (r) throws(UplinkError) -> Int in
            guard !r.closed else { throw UplinkError(.roundClosed, "round \(policy.round) is closed") }
            guard !r.clients.contains(id) else {
                throw UplinkError(.duplicateClient, "client \(UplinkError.quoted(clientID)) already sent an update in round \(policy.round)")
            }
            guard update.digest.isEmpty || !r.digests.contains(update.digest) else {
                throw UplinkError(.duplicateFrame, "an identical frame was already accepted in round \(policy.round); a copy counts once")
            }
            guard held <= policy.memoryLimit - r.heldBytes else {
                throw UplinkError(
                    .memoryLimit,
                    "\(strategy) holds every update until the round closes: \(r.clients.count) updates hold \(r.heldBytes) bytes, this one needs \(held) more, over the memory limit of \(policy.memoryLimit) bytes")
            }
            r.clients.insert(id)
            if !update.digest.isEmpty { r.digests.insert(update.digest) }
            r.heldBytes += held
            defer { r.next += 1 }
            return r.next
        }
        let accepted = describe(update, clientID: clientID)
        do throws(UplinkError) {
            // The shard's own `closed` flag decides: a frame that reaches a shard after the round
            // closed is refused whole, never half-added.
            try shards[sequence % shards.count].state.withLock { (s) throws(UplinkError) in
                guard !s.closed else { throw UplinkError(.roundClosed, "round \(policy.round) closed while the frame was being decoded") }
                if strategy.needsAllUpdates {
                    s.frames.append((prepared, update.scale))
                } else {
                    s.sum.withUnsafeMutableBufferPointer { prepared.accumulate(into: $0, weight: update.weight * update.scale) }
                    s.weight += update.weight
                }
                s.accepted.append((sequence, accepted))
            }
        } catch {
            registry.withLock { r in
                r.clients.remove(id)
                if !update.digest.isEmpty { r.digests.remove(update.digest) }
                r.heldBytes -= held
            }
            throw error
        }
        return accepted
    }

    /// What ``commit(_:clientID:)`` returns for `update`, without adding it (for a caller that
    /// records the update before adding it).
    package func describe(_ update: PreparedUpdate, clientID: String) -> AcceptedUpdate {
        let header = update.frame.header
        return AcceptedUpdate(
            clientID: clientID, samples: header.sampleCount, weight: update.weight, norm: update.norm, scale: update.scale,
            bytes: header.frameLength, transmitted: update.frame.transmittedCount)
    }

    /// Adds another replica's partial sum (``PartialAggregate``) of the `clients` it holds, as
    /// one unit: refused whole (nothing added) when the round is closed, a client is already in
    /// it, or the strategy keeps no sum. `updates` describe the frames, one per client.
    package func absorb(_ partial: PartialAggregate, updates: [AcceptedUpdate]) throws(UplinkError) {
        guard !strategy.needsAllUpdates else { throw UplinkError(.invalidArgument, "\(strategy) needs every update at once: partial sums cannot be merged") }
        guard partial.round == policy.round else { throw UplinkError(.wrongRound, "partial aggregate is for round \(partial.round), this is round \(policy.round)") }
        guard partial.sum.count == layout.parameterCount else { throw UplinkError(.invalidArgument, "partial aggregate has \(partial.sum.count) values, the model \(layout.parameterCount)") }
        let ids = updates.map { Array($0.clientID.utf8) }
        let first = try registry.withLock { (r) throws(UplinkError) -> Int in
            guard !r.closed else { throw UplinkError(.roundClosed, "round \(policy.round) is closed") }
            var seen = Set<[UInt8]>()
            for (id, u) in zip(ids, updates) where r.clients.contains(id) || !seen.insert(id).inserted {
                throw UplinkError(.duplicateClient, "client \(UplinkError.quoted(u.clientID)) is already in round \(policy.round)")
            }
            for id in ids { r.clients.insert(id) }
            defer { r.next += updates.count }
            return r.next
        }
        shards[0].state.withLock { s in
            for i in 0..<s.sum.count { s.sum[i] += partial.sum[i] }
            s.weight += partial.weight
            for (k, u) in updates.enumerated() { s.accepted.append((first + k, u)) }
        }
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
            return RoundResult(strategy: strategy, layout: layout, sum: sum, totalWeight: dp.expectedClients, frames: frames, accepted: accepted, round: policy.round)
        }
        guard !accepted.isEmpty else { throw UplinkError(.emptyRound, "round \(policy.round) closed with no accepted update") }
        return RoundResult(strategy: strategy, layout: layout, sum: sum, totalWeight: weight, frames: frames, accepted: accepted, round: policy.round)
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
    /// The round id.
    public let round: UInt64

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

    /// Applies the round to `model` in memory with `optimizer` (block by block), as one unit:
    /// on an error neither `model` nor `optimizer` changed.
    /// - Throws: ``UplinkError/Code/nonFiniteResult`` when the new model or optimizer state
    ///   would not be finite; ``UplinkError/Code/invalidArgument`` for a model of another size.
    public func apply(to model: inout [Float], optimizer: inout ServerOptimizer, blockSize: Int = 1 << 16) throws(UplinkError) {
        guard model.count == layout.parameterCount else {
            throw UplinkError(.invalidArgument, "model has \(model.count) values, the round's layout \(layout.parameterCount)")
        }
        var newModel = model
        var newOptimizer = optimizer
        var start = 0
        let block = max(1, blockSize)
        try withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { (tmp) throws(UplinkError) in
            try newModel.withUnsafeMutableBufferPointer { (m) throws(UplinkError) in
                while start < m.count {
                    let end = min(m.count, start + block)
                    let d = UnsafeMutableBufferPointer(rebasing: tmp[0..<(end - start)])
                    delta(start..<end, into: d)
                    try newOptimizer.step(model: UnsafeMutableBufferPointer(rebasing: m[start..<end]), delta: UnsafeBufferPointer(d), range: start..<end)
                    start = end
                }
            }
        }
        try newOptimizer.finishRound(round: round)
        model = newModel
        optimizer = newOptimizer
    }
}

/// Coordinate-wise median and trimmed mean over blocks of coordinates.
enum RobustStatistics {
    /// Bytes of the clients × width matrix one pass decodes into.
    static let matrixBytes = 16 << 20

    static func blockDelta(frames: [(frame: PreparedFrame, scale: Double)], strategy: Strategy, range: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        // Sub-blocks narrow enough that the matrix stays near `matrixBytes` whatever the count.
        let step = max(64, matrixBytes / 4 / max(1, frames.count))
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(range.upperBound, start + step)
            let o = start - range.lowerBound
            subBlockDelta(frames: frames, strategy: strategy, range: start..<end, into: UnsafeMutableBufferPointer(rebasing: out[o..<(o + end - start)]))
            start = end
        }
    }

    private static func subBlockDelta(frames: [(frame: PreparedFrame, scale: Double)], strategy: Strategy, range: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        let clients = frames.count
        let width = range.count
        var matrix = [Float](repeating: 0, count: clients * width)
        matrix.withUnsafeMutableBufferPointer { m in
            for (c, f) in frames.enumerated() {
                let row = UnsafeMutableBufferPointer(rebasing: m[(c * width)..<((c + 1) * width)])
                f.frame.decode(parameters: range, into: row)
                if f.scale != 1 { for i in 0..<width { row[i] = Float(Double(row[i]) * f.scale) } }
            }
        }
        var column = [Float](repeating: 0, count: clients)
        let trim: Int
        if case .trimmedMean(let beta) = strategy { trim = Int((beta * Double(clients)).rounded(.down)) } else { trim = -1 }
        for i in 0..<width {
            for c in 0..<clients { column[c] = matrix[c * width + i] }
            column.sort()
            if trim < 0 {
                // In double: the float32 mean of two values near ±3.4e38 would overflow to ±inf.
                out[i] = clients % 2 == 1 ? column[clients / 2] : Float((Double(column[clients / 2 - 1]) + Double(column[clients / 2])) / 2)
            } else {
                var s = 0.0
                for c in trim..<(clients - trim) { s += Double(column[c]) }
                out[i] = Float(s / Double(clients - 2 * trim))
            }
        }
    }
}
