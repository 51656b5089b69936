import Foundation
import Testing
import UplinkCodec
import UplinkPrivacy
import UplinkTestSupport

@Suite struct AccountantTests {
    struct Row: Decodable { var noise_multiplier: Double; var sampling_rate: Double; var steps: Int; var delta: Double; var epsilon: Double; var order: Double }
    struct Reference: Decodable { var rows: [Row] }

    static let reference = try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: Fixtures.url("privacy/rdp-reference.json")))

    /// ε agrees with Google's dp_accounting RDP accountant to 0.1% over z 0.5–4, q 0.001–1,
    /// 1–10,000 rounds, δ 1e-5 and 1e-6.
    @Test func epsilonMatchesDPAccounting() throws {
        #expect(Self.reference.rows.count == 200)
        for r in Self.reference.rows {
            let e = try RDPAccountant.epsilon(noiseMultiplier: r.noise_multiplier, samplingRate: r.sampling_rate, steps: r.steps, delta: r.delta)
            #expect(abs(e.epsilon - r.epsilon) <= 1e-3 * r.epsilon, "z \(r.noise_multiplier) q \(r.sampling_rate) T \(r.steps) δ \(r.delta): \(e.epsilon) vs \(r.epsilon)")
        }
    }

    @Test func epsilonIsMonotone() throws {
        let base = try RDPAccountant.epsilon(noiseMultiplier: 1.1, samplingRate: 0.01, steps: 1000, delta: 1e-5).epsilon
        #expect(try RDPAccountant.epsilon(noiseMultiplier: 1.1, samplingRate: 0.01, steps: 2000, delta: 1e-5).epsilon > base)
        #expect(try RDPAccountant.epsilon(noiseMultiplier: 1.1, samplingRate: 0.02, steps: 1000, delta: 1e-5).epsilon > base)
        #expect(try RDPAccountant.epsilon(noiseMultiplier: 1.5, samplingRate: 0.01, steps: 1000, delta: 1e-5).epsilon < base)
        #expect(try RDPAccountant.epsilon(noiseMultiplier: 1.1, samplingRate: 0.01, steps: 1000, delta: 1e-6).epsilon > base)
    }

    @Test(arguments: [(3.0, 0.01, 1000), (1.0, 0.1, 100), (8.0, 1.0, 10), (0.5, 0.001, 10000)])
    func inverseSearchFindsTheSmallestNoise(target: Double, q: Double, steps: Int) throws {
        let z = try RDPAccountant.noiseMultiplier(forEpsilon: target, samplingRate: q, steps: steps, delta: 1e-5)
        let eps = try RDPAccountant.epsilon(noiseMultiplier: z, samplingRate: q, steps: steps, delta: 1e-5).epsilon
        #expect(eps <= target && eps >= target * 0.999, "z \(z) gives ε \(eps) for target \(target)")
    }

    @Test func invalidInputsAreRefused() {
        for (z, q, d) in [(0.0, 0.01, 1e-5), (-1, 0.01, 1e-5), (1.1, 0, 1e-5), (1.1, 1.5, 1e-5), (1.1, 0.01, 0), (1.1, 0.01, 1)] {
            #expect(throws: UplinkError.self) { try RDPAccountant.epsilon(noiseMultiplier: z, samplingRate: q, steps: 10, delta: d) }
        }
    }
}
