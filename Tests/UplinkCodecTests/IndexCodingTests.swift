import Testing
@testable import UplinkCodec
import UplinkTestSupport

@Suite struct IndexCodingTests {
    static func roundTrip(_ indices: [Int], n: Int) throws -> (decoded: [Int], bytes: [UInt8]) {
        let bytes = indices.withUnsafeBufferPointer { IndexCoding.encode($0, n: n) }
        let decoded = try bytes.withUnsafeBytes { try IndexCoding.decode($0, n: n) }
        return (decoded, bytes)
    }

    static func uniformPositions(n: Int, k: Int, seed: UInt64) -> [Int] {
        RandomKSelection.indices(n: n, k: k, seed: seed, round: 0)
    }

    @Test func edgeCasesRoundTrip() throws {
        let cases: [([Int], Int)] = [
            ([], 1000), ([0], 1), ([], 1), ([0], 1000), ([999], 1000), ([0, 999], 1000),
            (Array(0..<1000), 1000), (Array(0..<64), 64), ([5], 8), ([0, 1, 2, 3], 4),
            ([1 << 40], (1 << 40) + 1), ([0, 1 << 40], (1 << 40) + 1), ([(1 << 32) - 1], 1 << 32), ([1 << 32], (1 << 32) + 1),
        ]
        for (indices, n) in cases {
            #expect(try Self.roundTrip(indices, n: n).decoded == indices, "n \(n) k \(indices.count)")
        }
    }

    @Test(arguments: [1, 2, 3, 50, 500, 5000])
    func randomPositionsRoundTrip(k: Int) throws {
        for seed: UInt64 in 1...3 {
            let idx = Self.uniformPositions(n: 10_000, k: k, seed: seed)
            #expect(try Self.roundTrip(idx, n: 10_000).decoded == idx)
        }
    }

    /// Clustered positions with huge gaps between clusters use the escape and stay small.
    @Test func clusteredPositionsEscapeHugeGaps() throws {
        var idx: [Int] = []
        for c in stride(from: 0, to: 10_000_000, by: 1_000_000) { idx += Array(c..<(c + 100)) }
        let (decoded, bytes) = try Self.roundTrip(idx, n: 10_000_000)
        #expect(decoded == idx)
        #expect(bytes.count * 8 < idx.count * 2)  // under 2 bits per position
    }

    /// The goal of the issue: within 4% of log₂ C(n,k)/k at 1% density, 2% at 0.1%.
    @Test(arguments: [(0.01, 0.04), (0.001, 0.02), (0.1, 0.04)])
    func bitsPerPositionNearTheEntropyBound(density: Double, tolerance: Double) throws {
        let n = 1_000_000
        let k = Int(density * Double(n))
        let idx = Self.uniformPositions(n: n, k: k, seed: 42)
        let bytes = try Self.roundTrip(idx, n: n).bytes
        let bits = Double(bytes.count * 8) / Double(k)
        let bound = IndexCoding.entropyBoundBitsPerPosition(n: n, k: k)
        #expect(bits <= bound * (1 + tolerance), "\(bits) bits per position, bound \(bound)")
        #expect(bits >= bound * 0.99, "below the entropy bound on random positions: \(bits) < \(bound)")
    }

    /// The same goal on the frames of the seeded synthetic fixture (i.i.d. values, so its top-k
    /// positions are uniformly spread), through the whole encoder.
    @Test(arguments: [("topk 1% | int8 | stored", 0.04), ("topk 0.1% | int8 | stored", 0.02)])
    func syntheticFixtureFramesMeetTheGoal(spec: String, tolerance: Double) throws {
        let values = try Fixtures.npyFloats("updates/synthetic-lognormal-1m.npy")
        let layout = try ModelLayout(name: "u", count: values.count)
        let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec)).encodeOnce(values)
        let decoded = try FrameDecoder().decode(frame)
        let k = decoded.transmittedCount
        let bits = Double(decoded.header.streamBytes(.indices) * 8) / Double(k)
        let bound = IndexCoding.entropyBoundBitsPerPosition(n: values.count, k: k)
        #expect(bits <= bound * (1 + tolerance), "\(spec): \(bits) bits per position, bound \(bound)")
    }

    @Test func denseSelectionsUseTheBitmap() throws {
        let idx = Self.uniformPositions(n: 8000, k: 4000, seed: 1)
        let bytes = try Self.roundTrip(idx, n: 8000).bytes
        #expect(bytes[0] == IndexCoding.Method.bitmap.rawValue)
        #expect(bytes.count == 2 + 2 + 1000)
        let sparse = try Self.roundTrip(Self.uniformPositions(n: 8000, k: 40, seed: 1), n: 8000).bytes
        #expect(sparse[0] == IndexCoding.Method.rice.rawValue)
    }

    @Test func entropyBoundMatchesExactBinomial() {
        // log₂ C(10, 3) = log₂ 120
        #expect(abs(IndexCoding.entropyBoundBitsPerPosition(n: 10, k: 3) - 6.906890595608519 / 3) < 1e-9)
        #expect(IndexCoding.entropyBoundBitsPerPosition(n: 10, k: 0) == 0)
    }

    /// Hostile index streams: each is rejected with malformedStream, never decoded to garbage.
    @Test func rejectsMalformedStreams() throws {
        var cases: [[UInt8]] = [
            [], [0], [0, 0], [7, 0, 1, 0], [1, 3, 1, 0xFF], [0, 40, 1, 0],
            [0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],  // k > n
            [0, 0, 0x80, 0x00],  // non-minimal LEB128
            [1, 0, 3, 0b0000_0111, 0b1000_0000],  // bitmap bit past n = 10
            [1, 0, 2, 0b0000_0111, 0],  // bitmap popcount ≠ k
            [0, 0, 9, 0b0000_0000],  // Rice: the ninth code runs off the end
            [0, 0, 1, 0b0000_0000, 0],  // Rice: trailing byte
            [0, 0, 1, 0b0000_0010],  // Rice: non-zero padding
            [0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],  // escape then a position past n
        ]
        cases.append([0, 0, 100] + [UInt8](repeating: 0, count: 2))  // k larger than the payload can hold
        for (i, c) in cases.enumerated() {
            #expect(throws: UplinkError.self, "case \(i)") { try c.withUnsafeBytes { try IndexCoding.decode($0, n: 10) } }
        }
    }
}
