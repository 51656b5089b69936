import ArgumentParser
import Foundation
import UplinkCodec
import UplinkPrivacy
import UplinkSimulation
import UplinkTensorIO

extension UplinkCommand {
    /// `uplink simulate`: the bandwidth-simulating harness, the project's main job.
    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Simulate federated rounds over mobile networks and compare pipelines (bytes, upload time, participation, accuracy).",
            discussion: """
                Without arguments runs the bundled default scenario (scenarios/default.json): 100 clients on 3G/LTE/5G/Wi-Fi,
                10 reports per round with 1.3× over-selection, a 45 s deadline, five pipelines. Writes report.html,
                results.json and rounds.csv to --report (default simulation-report/). See docs/simulation.md.
                """)

        @Option(help: "A scenario JSON file (docs/simulation.md); default: the bundled default scenario.")
        var scenario: String?

        @Option(help: "Folder for report.html, results.json and rounds.csv.")
        var report: String = "simulation-report"

        @Option(help: "Override the scenario's rounds.")
        var rounds: Int?

        @Option(parsing: .singleValue, help: "Override the scenario's pipelines (repeat the option).")
        var pipeline: [String] = []

        @Flag(help: "Give each client a byte budget from its link and the deadline (runs each pipeline with and without).")
        var budgetFitting = false

        @Option(help: "The digits data (fixtures/digits/digits.csv.gz).")
        var data: String?

        @Option(help: "Seed for the DP client selection and noise, for a reproducible run (overrides the scenario's dpSeed; default: the system's secure generator, which the reported ε assumes).")
        var dpSeed: UInt64?

        @Flag(help: "Print the results as JSON instead of the table.")
        var json = false

        @Flag(help: "Print the per-round results as CSV instead of the table.")
        var csv = false

        func run() throws {
            try reportingErrors(json: json) {
                var s = try scenario.map { (p) throws(UplinkError) in try Scenario.load(path: p) } ?? Scenario()
                if let rounds { s.rounds = rounds }
                if !pipeline.isEmpty { s.pipelines = pipeline }
                if budgetFitting { s.budgetFitting = true }
                if let dpSeed { s.dpSeed = dpSeed }
                try s.validate()
                let digits = s.train ? try Digits.load(path: data ?? Digits.defaultPath()) : nil
                var replay: [Float]?
                if !s.train { replay = try TensorFiles.load(path: s.replayUpdate).values }
                let started = Date()
                let variants: [(label: String, fitting: Bool)] = s.pipelines.flatMap { p in
                    s.budgetFitting ? [(p, false), (p + " [budget]", true)] : [(p, false)]
                }
                var runs: [PipelineRun] = []
                FileHandle.standardError.write(Data("uplink simulate: scenario \"\(s.name)\", \(s.clients) clients, \(s.rounds) rounds, \(variants.count) runs\n".utf8))
                for (i, v) in variants.enumerated() {
                    var sv = s
                    sv.budgetFitting = v.fitting
                    let sim = try Simulator(scenario: sv, digits: digits, replay: replay)
                    let spec = v.fitting ? String(v.label.dropLast(" [budget]".count)) : v.label
                    var run = try sim.run(pipeline: spec) { r in
                        let acc = r.accuracy.map { String(format: ", accuracy %.1f%%", 100 * $0) } ?? ""
                        FileHandle.standardError.write(Data("  [\(i + 1)/\(variants.count)] \(spec)\(v.fitting ? " [budget]" : ""): round \(r.round)/\(sv.rounds), \(r.reported) reported\(acc)\n".utf8))
                    }
                    if v.fitting { run.pipeline += " [budget fitting]" }
                    runs.append(run)
                }
                if runs.allSatisfy({ $0.rounds.isEmpty }) {
                    throw UplinkError(.invalidArgument, "the ε budget \(s.dpEpsilonBudget ?? 0) is exhausted before the first round")
                }
                let result = SimulationReport(scenario: s.name, runs: runs)
                try FileManager.default.createDirectory(atPath: report, withIntermediateDirectories: true)
                try TensorFiles.writeFile(report + "/report.html", Array(result.html().utf8))
                try TensorFiles.writeFile(report + "/results.json", [UInt8](result.json()))
                try TensorFiles.writeFile(report + "/rounds.csv", Array(result.csv().utf8))
                if json {
                    print(String(decoding: result.json(), as: UTF8.self))
                } else if csv {
                    print(result.csv(), terminator: "")
                } else {
                    print(result.table())
                    print("\nparticipation by network (reports accepted / uploads that made the deadline / clients selected):")
                    print(result.participationTable())
                    if let p = runs.first?.privacy {
                        print(Self.privacyLine(p))
                    }
                    print(String(format: "\nwrote %@/report.html, results.json, rounds.csv (%.0f s)", report, Date().timeIntervalSince(started)))
                }
            }
        }

        /// The central-DP line of the text output; the round count is printed in full whatever its size.
        static func privacyLine(_ p: PrivacySummary) -> String {
            String(format: "\ncentral DP: ε = %.3f at δ = %g after ", p.epsilon, p.delta) + "\(p.rounds) rounds"
                + String(format: " with z = %g, accounted as Poisson sampling at q = selected/online per round (mean %.4f, max %.4f); ",
                         p.noiseMultiplier, p.meanSamplingRate, p.maxSamplingRate) + p.randomnessNote
        }
    }
}
