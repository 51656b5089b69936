import Foundation
import Testing
@testable import UplinkCLI
@testable import UplinkPrivacy
@testable import UplinkSimulation
import UplinkTensorIO
import UplinkTestSupport

/// Issue 11 §21: text output printed 64-bit counts through 32-bit formats (`-2041983796 uplink
/// bytes`, `0 rounds` for 2^32). Every text output is checked with a count above 2^32.
@Suite struct LargeCountTests {
    @Test func trainFinalLinePrintsBytesAndRoundsInFull() {
        let line = UplinkCommand.Train.finalLine(accuracy: 0.9, uplinkBytes: 6_548_000_000, ratio: 1, seconds: 3, epsilon: 2.5, delta: 1e-5, rounds: 4_294_967_297)
        #expect(line.contains("6548000000 uplink bytes") && line.contains("after 4294967297 rounds"), "\(line)")
    }

    /// The per-round table printed `-2041983796` for cumulative bytes past 2^31.
    @Test func trainRoundLinePrintsBytesInFull() {
        let r = RoundReport(round: 7, reported: 10, accuracy: 0.9, uplinkBytes: 4_505_967_000, cumulativeUplinkBytes: 6_548_000_000,
                            cumulativeFloat32Bytes: 13_096_000_000, meanRelativeError: 0.1, epsilon: nil, clip: nil, privacy: nil)
        let line = UplinkCommand.Train.roundLine(r)
        #expect(line.contains(" 4505967000 ") && line.contains(" 6548000000 ") && line.contains("2.0×"), "\(line)")
    }

    @Test func simulatePrivacyLinePrintsRoundsInFull() {
        let p = PrivacySummary(epsilon: 3, delta: 1e-5, noiseMultiplier: 1, rounds: 4_294_967_297, maxSamplingRate: 0.2, meanSamplingRate: 0.1,
                               adaptiveClipping: false, secretRandomness: true)
        #expect(UplinkCommand.Simulate.privacyLine(p).contains("after 4294967297 rounds with z = 1"))
    }

    @Test func privacyPrintsRoundsPast2To32() throws {
        let s = try Scratch()
        let e = try CLI.run(["privacy", "epsilon", "--noise-multiplier", "1000", "--sampling-rate", "0.001", "--rounds", "4294967296"], in: s.url)
        #expect(e.status == 0 && e.stdout.contains("4294967296 rounds"), "\(e.stdout) \(e.stderr)")
        let z = try CLI.run(["privacy", "noise", "--epsilon", "10", "--sampling-rate", "0.0001", "--rounds", "5000000000"], in: s.url)
        #expect(z.status == 0 && z.stdout.contains("5000000000 rounds"), "\(z.stdout) \(z.stderr)")
    }

    @Test func inspectSaysLargerForAFrameThatGrew() throws {
        let s = try Scratch()
        try s.write("tiny.npy", Npy.write(shape: [3], values: [1, 2, 3]))
        #expect(try CLI.run(["encode", "--pipeline", "fp32", "--in", "tiny.npy", "--out", "tiny.upl"], in: s.url).status == 0)
        let r = try CLI.run(["inspect", "tiny.upl"], in: s.url)
        #expect(r.stdout.contains("× larger than float32") && !r.stdout.contains("smaller"), "\(r.stdout)")
    }

    @Test func ratioWordingForFramesLargerThanFloat32() {
        #expect(ratioToFloat32(float32Bytes: 100, frameBytes: 103) == "1.03× larger than float32")
        #expect(ratioToFloat32(float32Bytes: 8_000_000_000, frameBytes: 4_000_000_000) == "2.00× smaller than float32")
    }
}
