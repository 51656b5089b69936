import Testing
import UplinkAggregation
import UplinkCodec
import UplinkTestSupport

/// Issue 11 §2–§5 at the API: no rejected input decides anything, no non-finite or overflowed
/// result is published, and no value read from a state file traps.
@Suite struct AggregationHardeningTests {
    static let layout = Round.layout

    /// §8: one frame claiming 2^64 − 1 samples (k = 0) cancelled a FedAvg round; the weight one
    /// client may carry is capped (906), and the cap is configurable.
    @Test func sampleCountAboveTheCapIsRefused() throws {
        let agg = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1))
        try agg.submit(Round.frame([1, 2, 3], samples: 10), clientID: "honest")
        let hostile = Round.frame([0, 0, 0], samples: .max, spec: "threshold 1e30 | fp32")
        #expect(hostile.count < 200)
        #expect(throws: UplinkError.self) { try agg.submit(hostile, clientID: "evil") }
        do { try agg.submit(hostile, clientID: "evil") } catch { #expect(error.code == .tooManySamples) }
        let capped = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1, maxSamples: 9))
        do { try capped.submit(Round.frame([1, 2, 3], samples: 10), clientID: "a"); Issue.record("accepted") } catch { #expect(error.code == .tooManySamples) }
        var model: [Float] = [0, 0, 0]
        var opt = ServerOptimizer(strategy: .fedAvg(lr: 1), layout: Self.layout)
        try agg.close().apply(to: &model, optimizer: &opt)
        #expect(model == [1, 2, 3])
    }

    /// §7: byte-identical frames under two ids count once (907); client ids compare by their
    /// UTF-8 bytes, so two spellings of "é" are two clients.
    @Test func identicalFramesCountOnceAndIdsCompareByBytes() throws {
        let agg = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1))
        let f = Round.frame([1, 1, 1], samples: 4)
        try agg.submit(f, clientID: "a")
        do { try agg.submit(f, clientID: "b"); Issue.record("copy accepted") } catch { #expect(error.code == .duplicateFrame) }
        try agg.submit(Round.frame([3, 3, 3], samples: 4), clientID: "caf\u{E9}")
        try agg.submit(Round.frame([5, 5, 5], samples: 4), clientID: "cafe\u{301}")
        do { try agg.submit(Round.frame([7, 7, 7]), clientID: "a"); Issue.record("second update of a accepted") } catch { #expect(error.code == .duplicateClient) }
        let result = try agg.close()
        #expect(result.accepted.map(\.clientID) == ["a", "caf\u{E9}", "cafe\u{301}"])
        // A replaying simulation may turn the content check off.
        let replay = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1, rejectDuplicateFrames: false))
        try replay.submit(f, clientID: "a")
        try replay.submit(f, clientID: "b")
        #expect(try replay.close().accepted.count == 2)
    }

    /// §4: median and trimmed mean hold every update; what they hold is counted and capped (408),
    /// and a refused frame leaves the round as it was.
    @Test func robustStrategiesEnforceTheMemoryLimit() throws {
        let layout = try ModelLayout(name: "w", count: 10_000)
        let frames = (0..<5).map { c in
            try! FrameEncoder(layout: layout, pipeline: try! Pipeline(parsing: "fp32 | lz4")).encodeOnce(TestData.uniform(count: 10_000, seed: UInt64(c)), round: 1)
        }
        // Each dense fp32 update holds its 40,000 decoded-stream bytes (plus a small constant).
        let agg = try RoundAggregator(layout: layout, strategy: .median, policy: RoundPolicy(round: 1, memoryLimit: 3 * 40_256))
        for c in 0..<3 { try agg.submit(frames[c], clientID: "c\(c)") }
        do { try agg.submit(frames[3], clientID: "c3"); Issue.record("over the limit") } catch {
            #expect(error.code == .memoryLimit && error.message.contains("memory limit of 120768 bytes"))
        }
        let result = try agg.close()
        #expect(result.accepted.count == 3)
        // Sparse frames hold O(k): 1% of 10,000 values with int8 is ~100 values + 4-byte positions.
        let sparse = try RoundAggregator(layout: layout, strategy: .median, policy: RoundPolicy(round: 1, memoryLimit: 1 << 20))
        var e = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "topk 1% | int8 | lz4"))
        for c in 0..<200 { try sparse.submit(try e.encode(TestData.uniform(count: 10_000, seed: UInt64(c + 10)), round: 1), clientID: "s\(c)") }
        #expect(try sparse.close().accepted.count == 200)
    }

    /// §9: the median of two values near the float32 maximum is that value, not ∞ (the mean of
    /// the two middle values is taken in double).
    @Test func medianOfHugeValuesIsFinite() throws {
        let big = Float.greatestFiniteMagnitude
        let out = try Round.run("median", [Round.frame([big, -big, 1]), Round.frame([big, -big, 3])])
        #expect(out == [big, -big, 2])
    }

    /// §9: FedAvg lr=2 of a 3.4e38 update would write ∞: the round is refused (908) and the
    /// model and optimizer are unchanged; FedAdam squares in double, so 1e20 stays finite.
    @Test func nonFiniteResultsAreRefusedAndChangeNothing() throws {
        let agg = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 2), policy: RoundPolicy(round: 1))
        try agg.submit(Round.frame([3.4e38, 1, 1]), clientID: "a")
        var model: [Float] = [1, 1, 1]
        var opt = ServerOptimizer(strategy: .fedAvg(lr: 2), layout: Self.layout)
        do { try agg.close().apply(to: &model, optimizer: &opt); Issue.record("published ∞") } catch { #expect(error.code == .nonFiniteResult) }
        #expect(model == [1, 1, 1] && opt.rounds == 0)

        let adam = try Strategy(parsing: "fedadam lr=0.01")
        var adamOpt = ServerOptimizer(strategy: adam, layout: Self.layout)
        var m: [Float] = [0, 0, 0]
        let a1 = try RoundAggregator(layout: Self.layout, strategy: adam, policy: RoundPolicy(round: 1))
        try a1.submit(Round.frame([1e20, 1, 1]), clientID: "a")
        try a1.close().apply(to: &m, optimizer: &adamOpt)
        #expect(m.allSatisfy { $0.isFinite } && adamOpt.v.allSatisfy { $0.isFinite })
        let restored = try ServerOptimizer(serialized: adamOpt.serialized(), strategy: adam, layout: Self.layout)
        #expect(restored == adamOpt && restored.lastRound == 1)
        // 3e38 squared overflows even the float32 second moment: refused, state kept.
        let a2 = try RoundAggregator(layout: Self.layout, strategy: adam, policy: RoundPolicy(round: 2))
        try a2.submit(Round.frame([3e38, 1, 1], round: 2), clientID: "a")
        let before = (m, adamOpt)
        do { try a2.close().apply(to: &m, optimizer: &adamOpt); Issue.record("published ∞") } catch { #expect(error.code == .nonFiniteResult) }
        #expect(m == before.0 && adamOpt == before.1)
    }

    /// §10: a server state with a valid CRC and 2^64 − 1 rounds trapped after aggregation; now the
    /// round is refused with a typed error.
    @Test func roundCounterAtTheMaximumIsATypedError() throws {
        var opt = ServerOptimizer(strategy: .fedAvg(lr: 1), layout: Self.layout)
        var blob = opt.serialized()
        // rounds is the u64 at offset 16 (after magic, version, flags, fingerprint).
        for i in 16..<24 { blob[i] = 0xFF }
        let crc = CRC32C.checksum(blob[0..<(blob.count - 4)])
        for i in 0..<4 { blob[blob.count - 4 + i] = UInt8(truncatingIfNeeded: crc >> UInt32(8 * i)) }
        opt = try ServerOptimizer(serialized: blob, strategy: .fedAvg(lr: 1), layout: Self.layout)
        #expect(opt.rounds == .max)
        let agg = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1))
        try agg.submit(Round.frame([1, 1, 1]), clientID: "a")
        var model: [Float] = [0, 0, 0]
        do { try agg.close().apply(to: &model, optimizer: &opt); Issue.record("counted past 2^64 − 1") } catch { #expect(error.code == .malformedState) }
        #expect(model == [0, 0, 0])
    }

    /// §10: reserved bits of the server state must be zero.
    @Test func serverStateReservedBitsMustBeZero() throws {
        var blob = ServerOptimizer(strategy: .fedAvg(lr: 1), layout: Self.layout).serialized()
        blob[6] = 0x02
        let crc = CRC32C.checksum(blob[0..<(blob.count - 4)])
        for i in 0..<4 { blob[blob.count - 4 + i] = UInt8(truncatingIfNeeded: crc >> UInt32(8 * i)) }
        do { _ = try ServerOptimizer(serialized: blob, strategy: .fedAvg(lr: 1), layout: Self.layout); Issue.record("accepted") } catch {
            #expect(error.code == .malformedState)
        }
    }

    /// §12: the optimizer step checks its range instead of writing out of bounds.
    @Test func optimizerStepChecksItsRange() throws {
        var opt = ServerOptimizer(strategy: try Strategy(parsing: "fedavgm"), layout: Self.layout)
        var model: [Float] = [0, 0, 0, 0]
        let delta: [Float] = [1, 1, 1, 1]
        model.withUnsafeMutableBufferPointer { m in
            delta.withUnsafeBufferPointer { d in
                do throws(UplinkError) { try opt.step(model: m, delta: d, range: 0..<4); Issue.record("out of range accepted") } catch { #expect(error.code == .invalidArgument) }
                do throws(UplinkError) {
                    try opt.step(model: UnsafeMutableBufferPointer(rebasing: m[0..<2]), delta: UnsafeBufferPointer(rebasing: d[0..<2]), range: 2..<4)
                    Issue.record("out of range accepted")
                } catch { #expect(error.code == .invalidArgument) }
            }
        }
        #expect(opt.m == [0, 0, 0])
    }

    /// Central DP with a strategy that holds every update was a precondition; now a typed error.
    @Test func centralDPWithMedianIsATypedError() {
        let dp = CentralDP(clip: 1, noiseMultiplier: 1, expectedClients: 10, seed: 1)
        #expect(throws: UplinkError.self) { _ = try RoundAggregator(layout: Self.layout, strategy: .median, policy: RoundPolicy(round: 1, centralDP: dp)) }
        #expect(throws: UplinkError.self) { _ = try RoundAggregator(layout: Self.layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1), shards: 0) }
    }
}
