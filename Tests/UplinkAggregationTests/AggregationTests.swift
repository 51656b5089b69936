import Dispatch
import Testing
import UplinkAggregation
import UplinkCodec
import UplinkTestSupport

/// Helpers: fp32 frames of hand-picked updates for a 3-parameter model.
enum Round {
    static let layout = try! ModelLayout([TensorSpec(name: "w", shape: [3])])

    static func frame(_ values: [Float], samples: UInt64 = 1, round: UInt64 = 1, spec: String = "fp32", layout: ModelLayout = Round.layout) -> [UInt8] {
        try! FrameEncoder(layout: layout, pipeline: try! Pipeline(parsing: spec)).encodeOnce(values, round: round, sampleCount: samples)
    }

    /// Aggregates `frames` (client i is "c<i>") with `strategy` onto `model`.
    static func run(_ strategy: String, _ frames: [[UInt8]], model: [Float] = [0, 0, 0], optimizer: inout ServerOptimizer?, policy: RoundPolicy = RoundPolicy(round: 1), layout: ModelLayout = Round.layout) throws -> [Float] {
        let s = try Strategy(parsing: strategy)
        let agg = try RoundAggregator(layout: layout, strategy: s, policy: policy)
        for (i, f) in frames.enumerated() { try agg.submit(f, clientID: "c\(i)") }
        var opt = optimizer ?? ServerOptimizer(strategy: s, layout: layout)
        var m = model
        try agg.close().apply(to: &m, optimizer: &opt)
        optimizer = opt
        return m
    }

    static func run(_ strategy: String, _ frames: [[UInt8]], model: [Float] = [0, 0, 0]) throws -> [Float] {
        var none: ServerOptimizer?
        return try run(strategy, frames, model: model, optimizer: &none)
    }
}

@Suite struct StrategyWorkedExamples {
    // Client A: Δ = [1, 2, 3] from 1 sample; client B: Δ = [3, 0, −3] from 3 samples.
    // Weighted mean Δ = ([1, 2, 3] + 3·[3, 0, −3]) / 4 = [2.5, 0.5, −1.5].
    static let frames = [Round.frame([1, 2, 3], samples: 1), Round.frame([3, 0, -3], samples: 3)]

    @Test func fedAvgIsTheSampleWeightedMean() throws {
        #expect(try Round.run("fedavg", Self.frames, model: [10, 10, 10]) == [12.5, 10.5, 8.5])
        #expect(try Round.run("fedavg lr=0.5", Self.frames) == [1.25, 0.25, -0.75])
    }

    @Test func fedAvgMAccumulatesVelocity() throws {
        var opt: ServerOptimizer?
        // Round 1: v = Δ = [2.5, 0.5, −1.5]; x = 0 + v.
        let x1 = try Round.run("fedavgm lr=1 momentum=0.5", Self.frames, optimizer: &opt)
        #expect(x1 == [2.5, 0.5, -1.5])
        // Round 2 with Δ = [1, 1, 1]: v = 0.5·[2.5, 0.5, −1.5] + 1 = [2.25, 1.25, 0.25]; x = x1 + v.
        let x2 = try Round.run("fedavgm lr=1 momentum=0.5", [Round.frame([1, 1, 1])], model: x1, optimizer: &opt)
        #expect(x2 == [4.75, 1.75, -1.25])
        #expect(opt!.rounds == 2)
    }

    /// Reddi et al. 2021, one step from m = 0, v = τ² with η = 0.1, β₁ = 0.9, β₂ = 0.99,
    /// τ = 0.001: m = 0.1Δ = [0.25, 0.05, −0.15];
    /// Adam:  v = 0.99τ² + 0.01Δ² → x = 0.1·m/(√v + τ) = [0.0996008, 0.0980202, −0.0993356];
    /// Yogi:  v = τ² − 0.01Δ²·sign(τ² − Δ²) = τ² + 0.01Δ² → [0.0996008, 0.0980200, −0.0993356];
    /// Adagrad (β₁ = 0): m = Δ, v = τ² + Δ² → [0.0999600, 0.0998002, −0.0999334].
    @Test(arguments: [
        ("fedadam lr=0.1 beta1=0.9 beta2=0.99 tau=0.001", [0.09960080793, 0.09802019012, -0.09933557746]),
        ("fedyogi lr=0.1 beta1=0.9 beta2=0.99 tau=0.001", [0.09960079999, 0.09801999800, -0.09933555553]),
        ("fedadagrad lr=0.1 beta1=0 tau=0.001", [0.09996000800, 0.09980020000, -0.09993335556]),
    ])
    func adaptiveOptimizersTakeTheirFirstStep(strategy: String, expected: [Double]) throws {
        let x = try Round.run(strategy, Self.frames)
        for (a, b) in zip(x, expected) { #expect(abs(Double(a) - b) < 1e-6, "\(strategy): \(x)") }
    }

    @Test func medianIsCoordinateWise() throws {
        let frames = [Round.frame([1, 2, 3]), Round.frame([3, 0, -3]), Round.frame([100, -100, 5])]
        #expect(try Round.run("median", frames) == [3, 0, 3])
        // Even count: mean of the two middle values.
        #expect(try Round.run("median", frames + [Round.frame([2, 2, 2])]) == [2.5, 1, 2.5])
    }

    @Test func trimmedMeanDropsTheExtremes() throws {
        // β = 0.2 of 5 clients: drop one highest and one lowest per coordinate.
        let frames = [[1, 10, 0], [2, 20, 0], [3, 30, 0], [4, 40, 0], [1000, -1000, 9]].map { Round.frame($0.map(Float.init)) }
        #expect(try Round.run("trimmed-mean beta=0.2", frames) == [3, 20, 0])
    }

    @Test func normBoundedClipsBeforeAveraging() throws {
        // [3, 4, 0] has norm 5 → clipped to norm 1: [0.6, 0.8, 0]; [0, 0, 0.5] is within.
        let frames = [Round.frame([3, 4, 0]), Round.frame([0, 0, 0.5])]
        let x = try Round.run("norm-bounded clip=1", frames)
        for (a, b) in zip(x, [Float(0.3), 0.4, 0.25]) { #expect(abs(a - b) < 1e-7) }
    }
}

@Suite struct AggregatorProperties {
    static let layout = try! ModelLayout([TensorSpec(name: "a", shape: [100, 50]), TensorSpec(name: "b", shape: [50])])

    static func clientFrames(_ count: Int, spec: String = "ef | topk 5% | int8 | lz4") -> [[UInt8]] {
        (0..<count).map { c in
            var e = FrameEncoder(layout: layout, pipeline: try! Pipeline(parsing: spec))
            return try! e.encode(TestData.heavyTailed(count: layout.parameterCount, seed: UInt64(c) + 1), round: 1, sampleCount: UInt64(c % 7 + 1))
        }
    }

    static func run(_ frames: [[UInt8]], strategy: String = "fedavg", ids: [String]? = nil, shards: Int = 1) throws -> [Float] {
        let agg = try RoundAggregator(layout: layout, strategy: try Strategy(parsing: strategy), policy: RoundPolicy(round: 1), shards: shards)
        for (i, f) in frames.enumerated() { _ = try? agg.submit(f, clientID: ids?[i] ?? "c\(i)") }
        var opt = ServerOptimizer(strategy: agg.strategy, layout: layout)
        var model = [Float](repeating: 0, count: layout.parameterCount)
        try agg.close().apply(to: &model, optimizer: &opt)
        return model
    }

    /// FedAvg over frames equals FedAvg over the dense dequantized updates.
    @Test func fedAvgOverFramesEqualsFedAvgOverDecodedUpdates() throws {
        let frames = Self.clientFrames(12)
        var sum = [Double](repeating: 0, count: Self.layout.parameterCount)
        var weight = 0.0
        for f in frames {
            let d = try FrameDecoder().decode(f)
            for i in sum.indices { sum[i] += Double(d.header.sampleCount) * Double(d.values[i]) }
            weight += Double(d.header.sampleCount)
        }
        let expected = sum.map { Float($0 / weight) }
        #expect(try Self.run(frames) == expected)
    }

    @Test(arguments: ["fedavg", "median", "trimmed-mean beta=0.1", "fedadam"])
    func resultDoesNotDependOnArrivalOrder(strategy: String) throws {
        let frames = Self.clientFrames(20)
        let forward = try Self.run(frames, strategy: strategy, ids: (0..<20).map { "c\($0)" })
        var rng = SplitMix64(seed: 3)
        let order = Array(0..<20).shuffled(using: &rng)
        let shuffled = try Self.run(order.map { frames[$0] }, strategy: strategy, ids: order.map { "c\($0)" })
        for (a, b) in zip(forward, shuffled) { #expect(abs(a - b) <= abs(a) * 0x1p-23, "\(a) vs \(b)") }
    }

    /// Hostile frames in the middle of a batch leave the result equal to the batch without them.
    @Test func hostileFramesChangeNothing() throws {
        let good = Self.clientFrames(6)
        var flipped = good[2]
        flipped[flipped.count - 5] ^= 0x20
        var nanUpdate = TestData.heavyTailed(count: Self.layout.parameterCount, seed: 99)
        let nanFrame: [UInt8] = {
            var b = FrameBuilder(count: Self.layout.parameterCount)
            nanUpdate[17] = .nan
            let payload = nanUpdate.float32LE
            b.table = []
            b.flags = 0
            b.tensorCount = 2
            b.fingerprint = Self.layout.fingerprint
            b.round = 1
            b.sections = stride(from: 0, to: payload.count, by: 1 << 20).map { start in
                let chunk = Array(payload[start..<min(payload.count, start + (1 << 20))])
                return FrameBuilder.section(crc: CRC32C.checksum(chunk), raw: UInt64(chunk.count), stored: UInt64(chunk.count))
            }
            b.payload = payload
            return b.build()
        }()
        let otherRound = try FrameEncoder(layout: Self.layout, pipeline: Pipeline()).encodeOnce(TestData.uniform(count: Self.layout.parameterCount, seed: 5), round: 2)
        let otherModel = try FrameEncoder(layout: try ModelLayout(name: "x", count: 10), pipeline: Pipeline()).encodeOnce([Float](repeating: 1, count: 10), round: 1)
        let hostile: [[UInt8]] = [flipped, nanFrame, otherRound, otherModel, Array(good[4].prefix(100)), [], Array("hello".utf8)]
        let mixed = [good[0], good[1]] + hostile + [good[3], good[4], good[5]]
        let ids = ["g0", "g1"] + hostile.indices.map { "h\($0)" } + ["g3", "g4", "g5"]
        let withHostile = try Self.run(mixed, ids: ids)
        let without = try Self.run([good[0], good[1], good[3], good[4], good[5]], ids: ["g0", "g1", "g3", "g4", "g5"])
        #expect(withHostile == without)
        // And every hostile frame was refused with its own reason.
        let agg = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1))
        var codes: [UplinkError.Code] = []
        for (i, f) in hostile.enumerated() {
            do { try agg.submit(f, clientID: "h\(i)") } catch { codes.append(error.code) }
        }
        #expect(codes == [.sectionChecksum, .nonFiniteValue, .wrongRound, .fingerprintMismatch, .truncated, .truncated, .badMagic])
    }

    /// One client sending a huge update moves the median and the trimmed mean by little,
    /// and FedAvg by a lot.
    @Test func robustStrategiesResistOneHugeUpdate() throws {
        let honest = Self.clientFrames(9, spec: "fp32")
        var evil = FrameEncoder(layout: Self.layout, pipeline: Pipeline())
        let attack = try evil.encode([Float](repeating: 1e6, count: Self.layout.parameterCount), round: 1, sampleCount: 1)
        for strategy in ["median", "trimmed-mean beta=0.1"] {
            let clean = try Self.run(honest, strategy: strategy)
            let attacked = try Self.run(honest + [attack], strategy: strategy)
            let shift = zip(clean, attacked).map { abs($0 - $1) }.max()!
            #expect(shift < 0.2, "\(strategy) moved by \(shift)")
        }
        let avg = try Self.run(honest + [attack])
        #expect(avg.map(abs).min()! > 1000)
    }

    @Test func concurrentShardedSubmissionEqualsSequential() throws {
        let frames = Self.clientFrames(40)
        let sequential = try Self.run(frames)
        let agg = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1), shards: 4)
        DispatchQueue.concurrentPerform(iterations: frames.count) { i in _ = try? agg.submit(frames[i], clientID: "c\(i)") }
        var opt = ServerOptimizer(strategy: .fedAvg(lr: 1), layout: Self.layout)
        var model = [Float](repeating: 0, count: Self.layout.parameterCount)
        let result = try agg.close()
        #expect(result.accepted.count == 40)
        try result.apply(to: &model, optimizer: &opt)
        for (a, b) in zip(model, sequential) { #expect(abs(a - b) <= abs(a) * 0x1p-23) }
    }

    @Test func duplicatesRoundsNormsAndClosedRoundsAreRefused() throws {
        let frames = Self.clientFrames(3, spec: "fp32")
        let agg = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1, normBound: 1e9))
        try agg.submit(frames[0], clientID: "alice")
        #expect { try agg.submit(frames[1], clientID: "alice") } throws: { ($0 as? UplinkError)?.code == .duplicateClient }
        // A failed frame does not use up the client's turn.
        #expect(throws: UplinkError.self) { try agg.submit([1, 2, 3], clientID: "bob") }
        try agg.submit(frames[1], clientID: "bob")
        _ = try agg.close()
        #expect { try agg.submit(frames[2], clientID: "carol") } throws: { ($0 as? UplinkError)?.code == .roundClosed }
        #expect { try agg.close() } throws: { ($0 as? UplinkError)?.code == .roundClosed }

        let norm = try FrameDecoder().decode(frames[0]).values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let strict = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1, normBound: norm / 2, normPolicy: .reject))
        #expect { try strict.submit(frames[0], clientID: "a") } throws: { ($0 as? UplinkError)?.code == .normExceeded }
        let clipping = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1, normBound: norm / 2, normPolicy: .clip))
        let accepted = try clipping.submit(frames[0], clientID: "a")
        #expect(abs(accepted.scale - 0.5) < 1e-12)
        var opt = ServerOptimizer(strategy: .fedAvg(lr: 1), layout: Self.layout)
        var model = [Float](repeating: 0, count: Self.layout.parameterCount)
        try clipping.close().apply(to: &model, optimizer: &opt)
        let clippedNorm = model.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(abs(clippedNorm - norm / 2) < norm * 1e-6)

        let zero = try FrameEncoder(layout: Self.layout, pipeline: Pipeline()).encodeOnce(TestData.uniform(count: Self.layout.parameterCount, seed: 1), round: 1, sampleCount: 0)
        let z = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1))
        #expect { try z.submit(zero, clientID: "z") } throws: { ($0 as? UplinkError)?.code == .zeroWeight }
        #expect { try z.close() } throws: { ($0 as? UplinkError)?.code == .emptyRound }
    }

    @Test func serverStateRoundTrips() throws {
        let strategy = try Strategy(parsing: "fedadam lr=0.05")
        var a = ServerOptimizer(strategy: strategy, layout: Self.layout)
        var model = [Float](repeating: 0, count: Self.layout.parameterCount)
        for r in 0..<2 {
            let agg = try RoundAggregator(layout: Self.layout, strategy: strategy, policy: RoundPolicy(round: 1))
            for (i, f) in Self.clientFrames(3).enumerated() { try agg.submit(f, clientID: "c\(i)\(r)") }
            try agg.close().apply(to: &model, optimizer: &a)
        }
        let restored = try ServerOptimizer(serialized: a.serialized(), strategy: strategy, layout: Self.layout)
        #expect(restored == a)
        #expect(restored.rounds == 2)
        #expect { try ServerOptimizer(serialized: a.serialized(), strategy: try Strategy(parsing: "fedyogi lr=0.05"), layout: Self.layout) } throws: {
            ($0 as? UplinkError)?.code == .stateMismatch
        }
        var bad = a.serialized()
        bad[40] ^= 1
        #expect { try ServerOptimizer(serialized: bad, strategy: strategy, layout: Self.layout) } throws: { ($0 as? UplinkError)?.code == .malformedState }
    }

    @Test(arguments: ["fedavg", "fedavgm momentum=0.5", "fedadam lr=0.01 beta1=0.9 beta2=0.999 tau=1e-9", "median", "trimmed-mean beta=0.25", "norm-bounded clip=2 lr=0.5"])
    func strategiesParseToCanonicalText(text: String) throws {
        let s = try Strategy(parsing: text)
        #expect(try Strategy(parsing: s.description) == s)
    }

    @Test(arguments: ["", "fedprox", "fedavg lr=-1", "fedadam beta1=1", "trimmed-mean beta=0.5", "norm-bounded", "fedavg momentum=0.9", "fedavg | median"])
    func badStrategiesAreRejected(text: String) {
        #expect(throws: UplinkError.self) { try Strategy(parsing: text) }
    }
}
