import Testing
@testable import UplinkCodec
import UplinkTestSupport

@Suite struct TopKTests {
    /// The sort-based oracle: indices of the k largest magnitudes, ties to the lower index.
    static func oracle(_ x: [Float], k: Int) -> [Int] {
        Array(x.indices.sorted { (abs(x[$0]), -$0) > (abs(x[$1]), -$1) }.prefix(k)).sorted()
    }

    static func exact(_ x: [Float], k: Int) -> [Int] {
        var out: [Int] = []
        x.withUnsafeBufferPointer { TopKSelection.exact($0, k: k, base: 0, into: &out) }
        return out
    }

    @Test(arguments: [0, 1, 7, 100, 999, 1000])
    func exactTopKEqualsSortOracle(k: Int) {
        for seed: UInt64 in 1...5 {
            let x = TestData.heavyTailed(count: 1000, seed: seed)
            #expect(Self.exact(x, k: k) == Self.oracle(x, k: k), "seed \(seed)")
        }
    }

    /// Many ties and exact zeros defeat the sampled threshold and take the radix path.
    @Test func tiesAreBrokenByLowerIndexOnEveryPath() {
        var rng = SplitMix64(seed: 4)
        let levels: [Float] = [0, 0.5, -0.5, 1, -1, 2]
        let x = (0..<50_000).map { _ in levels[Int(rng.below(6))] }
        for k in [1, 10, 8000, 20_000, 33_000, 49_999] {
            #expect(Self.exact(x, k: k) == Self.oracle(x, k: k), "k \(k)")
        }
        let constant = [Float](repeating: 3, count: 10_000)
        #expect(Self.exact(constant, k: 123) == Array(0..<123))
        var out: [Int] = []
        x.withUnsafeBufferPointer { TopKSelection.radix($0, k: 777, base: 0, into: &out) }
        #expect(out == Self.oracle(x, k: 777))
    }

    @Test func largeInputsMatchOracle() {
        let x = TestData.heavyTailed(count: 200_000, seed: 11)
        for k in [200, 2000, 20_000] {
            #expect(Self.exact(x, k: k) == Self.oracle(x, k: k))
        }
    }

    @Test func perTensorScopeKeepsAFractionOfEachTensor() throws {
        let layout = try ModelLayout([TensorSpec(name: "big", shape: [1000]), TensorSpec(name: "small", shape: [10]), TensorSpec(name: "tiny", shape: [1])])
        var x = TestData.heavyTailed(count: 1011, seed: 2)
        for i in 1000..<1011 { x[i] *= 0.001 }  // tiny values: a global top-k would skip them
        let picked = x.withUnsafeBufferPointer { Sparsifier.topK(.fraction(0.1), scope: .tensor).select($0, layout: layout, round: 0) }
        #expect(picked.filter { $0 < 1000 } == Self.oracle(Array(x[0..<1000]), k: 100))
        #expect(picked.filter { $0 >= 1000 && $0 < 1010 }.count == 1)
        #expect(picked.count == 101)  // tiny: ⌊0.1 + ½⌋ = 0
        let global = x.withUnsafeBufferPointer { Sparsifier.topK(.fraction(0.1), scope: .global).select($0, layout: layout, round: 0) }
        #expect(global == Self.oracle(x, k: 101))
    }

    /// DGC's sampled top-k keeps at most k, and what it keeps are the largest.
    @Test func sampledTopKKeepsAtMostKOfTheLargest() {
        for seed: UInt64 in 1...10 {
            let x = TestData.heavyTailed(count: 50_000, seed: seed)
            var out: [Int] = []
            x.withUnsafeBufferPointer { TopKSelection.sampled($0, k: 500, sampleFraction: 0.01, base: 0, into: &out) }
            #expect(out.count <= 500 && out.count >= 250, "kept \(out.count)")
            #expect(out == Self.oracle(x, k: out.count))
        }
    }

    @Test func thresholdKeepsEverythingAtOrAboveTau() {
        let x: [Float] = [0.1, -0.5, 0.49, 0.5, -2, 0]
        var out: [Int] = []
        x.withUnsafeBufferPointer { TopKSelection.threshold($0, tau: 0.5, base: 10, into: &out) }
        #expect(out == [11, 13, 14])
    }

    @Test func randomKIsReproducibleDistinctSortedAndVariesByRound() {
        let a = RandomKSelection.indices(n: 100_000, k: 1000, seed: 7, round: 3)
        #expect(a == RandomKSelection.indices(n: 100_000, k: 1000, seed: 7, round: 3))
        #expect(a.count == 1000 && Set(a).count == 1000 && a == a.sorted() && a.last! < 100_000)
        #expect(a != RandomKSelection.indices(n: 100_000, k: 1000, seed: 7, round: 4))
        #expect(a != RandomKSelection.indices(n: 100_000, k: 1000, seed: 8, round: 3))
        #expect(RandomKSelection.indices(n: 10, k: 10, seed: 1, round: 0) == Array(0..<10))
        // Roughly uniform: each decile gets about a tenth.
        for d in 0..<10 {
            let c = a.filter { $0 / 10_000 == d }.count
            #expect(c > 60 && c < 140, "decile \(d): \(c)")
        }
    }

    /// Pinned values: other decoders regenerate these exact positions (docs/wire-format.md §8.3).
    @Test func randomKPositionsArePinned() {
        // Computed independently with the Python reference of wire-format.md §8.3.
        #expect(RandomKSelection.indices(n: 1000, k: 5, seed: 7, round: 7) == [284, 403, 520, 605, 792])
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)  // SplitMix64 reference output for seed 0
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
    }
}
