import Testing
@testable import UplinkCodec
import UplinkTestSupport

/// Random-k regeneration in compact memory gives exactly the positions of the reference
/// (Floyd's algorithm over a hash set, as `docs/wire-format.md` §8 states it), so the wire
/// format is unchanged.
@Suite struct RandomKTests {
    static func reference(n: Int, k: Int, seed: UInt64, round: UInt64) -> [Int] {
        guard k > 0 else { return [] }
        if k >= n { return Array(0..<n) }
        var rng = SplitMix64(seed: seed, round: round)
        var chosen = Set<Int>()
        for j in (n - k)..<n {
            let t = Int(rng.below(UInt64(j + 1)))
            if !chosen.insert(t).inserted { chosen.insert(j) }
        }
        return chosen.sorted()
    }

    /// Both representations (bitset for k ≥ n/64, probing table below) and their boundary.
    @Test(arguments: [
        (1, 1), (2, 1), (64, 1), (64, 63), (1000, 15), (1000, 16), (1000, 17), (4096, 63), (4096, 64), (4096, 65),
        (100_000, 10), (100_000, 1562), (100_000, 1563), (100_000, 99_999), (100_000, 50_000), (123_457, 3),
    ])
    func sameAsTheReference(n: Int, k: Int) {
        for (seed, round): (UInt64, UInt64) in [(0, 0), (7, 3), (.max, 12345)] {
            let got = RandomKSelection.indices(n: n, k: k, seed: seed, round: round)
            #expect(got == Self.reference(n: n, k: k, seed: seed, round: round), "n \(n) k \(k) seed \(seed)")
            #expect(got.count == k)
        }
    }

    /// k ≈ n is regenerated in compact form: 4 bytes a position, plus an n/8-byte bitset (the
    /// hash set it replaces cost about 27 bytes a position; `uplink inspect` of such a frame at
    /// n = 2^26 is held to a memory limit in `LimitsCLITests`).
    @Test func hugeKRegeneratesCompactly() throws {
        let n = 1 << 22
        let p = RandomKSelection.positions(n: n, k: n - 1, seed: 1, round: 2)
        #expect(!p.isWide && p.count == n - 1 && p.narrow.capacity < n + n / 16)
        #expect(zip(p.narrow.dropFirst(), p.narrow).allSatisfy { $0 > $1 })
    }

    /// Beyond 2^32 parameters positions are kept in 64 bits and stay exact.
    @Test func widePositionsBeyondTwoToThe32() {
        let n = (1 << 33) + 5
        let p = RandomKSelection.positions(n: n, k: 1000, seed: 3, round: 1)
        #expect(p.isWide)
        #expect((0..<p.count).map { p[$0] } == Self.reference(n: n, k: 1000, seed: 3, round: 1))
    }
}
