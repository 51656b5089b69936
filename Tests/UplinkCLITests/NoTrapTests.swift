import Foundation
import Testing
import UplinkCLI
import UplinkCodec
import UplinkSimulation

/// Issue 11 §13: inputs that trapped (a precondition, a `try!`, an `Int(Double)` conversion)
/// now end in a typed error and exit status 1. Exit tests run the command in a child process,
/// so a trap would be reported as a signal, not as exit code 1.
@Suite struct NoTrapTests {
    @Test func trainMedianWithCentralDPExitsWithAnError() async {
        await #expect(processExitsWith: .exitCode(1)) {
            UplinkCommand.main(["train", "--strategy", "median", "--dp-clip", "1", "--dp-noise", "1", "--rounds", "1", "--clients", "2"])
        }
    }

    @Test func trainWithAHugeWidthExitsWithAnError() async {
        await #expect(processExitsWith: .exitCode(1)) {
            UplinkCommand.main(["train", "--width", "20000000", "--rounds", "1"])
        }
    }

    @Test func aggregateWithANegativeRoundExitsWithAnError() async {
        await #expect(processExitsWith: .exitCode(1)) {
            UplinkCommand.main(["aggregate", "--strategy", "fedavg", "--model", "/nonexistent.npy", "--out", "/tmp/x.npy", "--round", "-1", "a.upl"])
        }
    }

    /// The network's own precondition is a deliberate trap for programming errors, and callers
    /// with untrusted widths check first.
    @Test func mlpPreconditionTrapsAndCheckSizesThrows() async {
        #expect(throws: UplinkError.self) { try MLP.checkSizes([64, 20_000_000, 20_000_000, 10]) }
        #expect(throws: UplinkError.self) { try MLP.checkSizes([64, Int.max / 2, Int.max / 2, 10]) }
        await #expect(processExitsWith: .failure) {
            _ = MLP(sizes: [64, 20_000_000, 20_000_000, 10])
        }
    }

    @Test func messagesForTheTrappingInputs() throws {
        let s = try Scratch()
        let median = try CLI.run(["train", "--strategy", "median", "--dp-clip", "1", "--dp-noise", "1", "--rounds", "1"], in: s.url)
        #expect(median.status == 1 && median.stderr.contains("error 707") && median.stderr.contains("not a mean"), "\(median.stderr)")
        let width = try CLI.run(["train", "--width", "20000000"], in: s.url)
        #expect(width.status == 1 && width.stderr.contains("error 707") && width.stderr.contains("smaller width"), "\(width.stderr)")
        let round = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "m.npy", "--out", "o.npy", "--round", "-1", "a.upl"], in: s.url)
        #expect(round.status == 1 && round.stderr.contains("--round \"-1\" must be a whole number"), "\(round.stderr)")
        // Negative numbers reach the option as values, not as "Missing value".
        let samples = try CLI.run(["aggregate", "--strategy", "fedavg", "--model", "m.npy", "--out", "o.npy", "--max-samples", "-1", "a.upl"], in: s.url)
        #expect(samples.status != 0 && samples.stderr.contains("'-1' is invalid") && !samples.stderr.contains("Missing value"), "\(samples.stderr)")
        let params = try CLI.run(["decode", "--in", "a.upl", "--out", "b.npy", "--max-params", "-5"], in: s.url)
        #expect(params.status == 1 && params.stderr.contains("--max-params -5 is outside"), "\(params.stderr)")
    }
}
