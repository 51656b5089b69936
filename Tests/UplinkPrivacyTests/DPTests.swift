import Foundation
import Testing
import UplinkAggregation
import UplinkCodec
import UplinkPrivacy
import UplinkTestSupport

@Suite struct DPTests {
    static func norm(_ x: [Float]) -> Double { x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

    @Test func clippedNormsNeverExceedTheBound() {
        for seed: UInt64 in 1...50 {
            let u = TestData.heavyTailed(count: 5000, seed: seed, scale: Float(seed))
            for c in [1e-3, 0.1, 1, 10] {
                let out = u.withUnsafeBufferPointer { LocalDP(clip: c).apply($0, round: 0) }
                #expect(Self.norm(out) <= c)
                if Self.norm(u) <= c { #expect(out == u) }  // within the bound: untouched
            }
        }
    }

    /// The noise has standard deviation z·C: over 200,000 coordinates the estimate's own
    /// standard error is 0.16%, so 1% is a 6σ tolerance.
    @Test(arguments: [(1.1, 1.0), (0.5, 0.2), (4.0, 0.01)])
    func localNoiseHasStandardDeviationZC(z: Double, c: Double) {
        let zeros = [Float](repeating: 0, count: 200_000)
        let noised = zeros.withUnsafeBufferPointer { LocalDP(clip: c, noiseMultiplier: z, seed: 7).apply($0, round: 3) }
        let mean = noised.reduce(0.0) { $0 + Double($1) } / Double(noised.count)
        let sd = (noised.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(noised.count)).squareRoot()
        #expect(abs(sd / (z * c) - 1) < 0.01, "sd \(sd) for z·C = \(z * c)")
        #expect(abs(mean) < 5 * z * c / Double(noised.count).squareRoot())
        // Seeded noise is reproducible; the system generator is not.
        let again = zeros.withUnsafeBufferPointer { LocalDP(clip: c, noiseMultiplier: z, seed: 7).apply($0, round: 3) }
        #expect(again == noised)
        let secure1 = zeros.withUnsafeBufferPointer { LocalDP(clip: c, noiseMultiplier: z).apply($0, round: 3) }
        let secure2 = zeros.withUnsafeBufferPointer { LocalDP(clip: c, noiseMultiplier: z).apply($0, round: 3) }
        #expect(secure1 != secure2)
    }

    /// Central DP: the aggregate of zero updates is pure noise with sd z·C / m.
    @Test func centralNoiseIsScaledToTheExpectedClients() throws {
        let layout = try ModelLayout(name: "w", count: 100_000)
        let dp = CentralDP(clip: 0.5, noiseMultiplier: 2, expectedClients: 10, seed: 1)
        let agg = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1, centralDP: dp))
        for c in 0..<10 {
            var e = FrameEncoder(layout: layout, pipeline: Pipeline())
            try agg.submit(try e.encode([Float](repeating: 0, count: 100_000), round: 1, sampleCount: UInt64(c + 1)), clientID: "c\(c)")
        }
        let result = try agg.close()
        var delta = [Float](repeating: 0, count: 100_000)
        delta.withUnsafeMutableBufferPointer { result.delta(0..<100_000, into: $0) }
        let sd = (delta.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(delta.count)).squareRoot()
        #expect(abs(sd / (2 * 0.5 / 10) - 1) < 0.02, "sd \(sd)")
    }

    /// Updates above the bound are clipped, and weights are equal whatever the sample counts.
    @Test func centralDPClipsAndAveragesUnweighted() throws {
        let layout = try ModelLayout(name: "w", count: 2)
        let dp = CentralDP(clip: 1, noiseMultiplier: 1e-9, expectedClients: 2, seed: 1)
        let agg = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: RoundPolicy(round: 1, centralDP: dp))
        var e = FrameEncoder(layout: layout, pipeline: Pipeline())
        try agg.submit(try e.encode([30, 40], round: 1, sampleCount: 1000), clientID: "big")    // norm 50 → clipped to 1
        try agg.submit(try e.encode([0.5, 0], round: 1, sampleCount: 1), clientID: "small")   // within the bound
        var delta = [Float](repeating: 0, count: 2)
        let result = try agg.close()
        delta.withUnsafeMutableBufferPointer { result.delta(0..<2, into: $0) }
        #expect(abs(delta[0] - (0.6 + 0.5) / 2) < 1e-5 && abs(delta[1] - 0.8 / 2) < 1e-5, "\(delta)")
    }

    @Test func adaptiveClippingMovesTowardTheQuantile() throws {
        var rng = SplitMix64(seed: 1)
        var low = AdaptiveClipping(initialClip: 0.01, targetQuantile: 0.5, expectedClients: 100)
        var high = AdaptiveClipping(initialClip: 100, targetQuantile: 0.5, expectedClients: 100)
        let norms = (0..<100).map { Double($0 + 1) / 100 }  // median 0.5
        for _ in 0..<200 {
            low.update(norms: norms, using: &rng)
            high.update(norms: norms, using: &rng)
        }
        #expect(abs(low.clip - 0.5) < 0.1 && abs(high.clip - 0.5) < 0.1, "\(low.clip) \(high.clip)")
        #expect(throws: UplinkError.self) { try low.valueNoiseMultiplier(total: 100) }
    }

    @Test func localDPStagesParseAndRoundTrip() throws {
        let p = try Pipeline(parsing: "clip 1.0 | noise z=1.1 | ef | topk 1% | int8 | lz4")
        #expect(p.description == "clip 1 | noise z=1.1 | ef | topk 1% scope=global | int8 block=256 sym | lz4")
        #expect(try Pipeline(parsing: p.description) == p)
        #expect(try p.descriptor.withUnsafeBytes { try Pipeline(descriptor: $0) } == p)
        let seeded = try Pipeline(parsing: "clip 0.5 | noise 2 seed=9")
        #expect(try seeded.descriptor.withUnsafeBytes { try Pipeline(descriptor: $0) } == seeded)
        for (bad, code) in [("noise z=1", UplinkError.Code.pipelineBadOrder), ("ef | clip 1", .pipelineBadOrder), ("clip", .pipelineBadParameter), ("clip -1", .pipelineBadParameter), ("clip 1 | noise", .pipelineBadParameter)] {
            #expect { try Pipeline(parsing: bad) } throws: { ($0 as? UplinkError)?.code == code }
        }
    }
}
