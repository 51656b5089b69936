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

        @Option(name: .customLong("set"), parsing: .singleValue, help: "Override a scenario field: key=value, for example deadlineSeconds=30 or population.0.share=0.5 (repeat; values are JSON, a bare word is a string).")
        var overrides: [String] = []

        @Option(parsing: .singleValue, help: "Run one simulation per value of a field and report them side by side: key=v1,v2,… (for example deadlineSeconds=30,45,60); one --sweep per run.")
        var sweep: [String] = []

        @Flag(help: "Leave non-float tensors (int64 counters, bool masks) out of the replayed updates and the model instead of refusing them (the scenario's skipNonFloat).")
        var skipNonFloat = false

        @Flag(help: "Print the results as JSON instead of the table.")
        var json = false

        @Flag(help: "Print the per-round results as CSV instead of the table.")
        var csv = false

        func run() throws {
            try reportingErrors(json: json) {
                var sets = try overrides.map { (a) throws(UplinkError) in try Scenario.Override(assignment: a) }
                if skipNonFloat { sets.append(try Scenario.Override(key: "skipNonFloat", value: "true")) }
                guard sweep.count <= 1 else {
                    throw UplinkError(.invalidArgument, "--sweep is given \(sweep.count) times; sweep one field per run (each --sweep value is one simulation; use --set for the other fields)")
                }
                guard let sweep = sweep.first else {
                    let s = try scenarioWithOptions(sets)
                    let (report, seconds) = try simulate(s, label: nil)
                    try write(files: [("report.html", Array(report.html().utf8)), ("results.json", [UInt8](report.json())), ("rounds.csv", Array(report.csv().utf8))])
                    if json {
                        print(String(decoding: report.json(), as: UTF8.self))
                    } else if csv {
                        print(report.csv(), terminator: "")
                    } else {
                        printTables(report)
                        print(String(format: "\nwrote %@/report.html, results.json, rounds.csv (%.0f s)", self.report, seconds))
                    }
                    return
                }
                let swept = try Scenario.Override(assignment: sweep, option: "--sweep")
                // An option applies after the overrides: it would make every swept value the same run.
                let byOption: [(String, Bool)] = [("rounds", rounds != nil), ("pipelines", !pipeline.isEmpty), ("budgetFitting", budgetFitting), ("dpSeed", dpSeed != nil)]
                if case .member(let top) = swept.path[0], let clash = byOption.first(where: { $0.0 == top && $0.1 }) {
                    throw UplinkError(.invalidArgument, "--sweep \(swept.key) and --\(clash.0 == "pipelines" ? "pipeline" : clash.0 == "budgetFitting" ? "budget-fitting" : clash.0 == "dpSeed" ? "dp-seed" : clash.0) set the same field; the option would override every swept value")
                }
                let values = Scenario.sweepValues(swept.valueText)
                guard (1...100).contains(values.count), !values.contains(where: \.isEmpty) else {
                    throw UplinkError(.invalidArgument, "--sweep \(swept.key): give 1 to 100 comma-separated values, none empty, got \"\(swept.valueText)\"")
                }
                // Every value is checked before the first simulation runs.
                let scenarios = try values.map { v throws(UplinkError) in try scenarioWithOptions(sets + [try Scenario.Override(key: swept.key, value: v, option: "--sweep")]) }
                var reports: [SimulationReport] = []
                let started = Date()
                for (i, (v, s)) in zip(values, scenarios).enumerated() {
                    FileHandle.standardError.write(Data("uplink simulate: sweep \(swept.key) = \(v) (\(i + 1)/\(values.count))\n".utf8))
                    reports.append(try simulate(s, label: "\(swept.key)=\(v)").report)
                }
                let result = SweepReport(key: swept.key, values: values, reports: reports)
                try write(files: [("report.html", Array(result.html().utf8)), ("results.json", [UInt8](result.json()))])
                if json {
                    print(String(decoding: result.json(), as: UTF8.self))
                } else if csv {
                    var out = ""
                    for (v, r) in zip(values, reports) {
                        let lines = r.csv().split(separator: "\n", omittingEmptySubsequences: false)
                        if out.isEmpty { out = "sweep_value," + lines[0] + "\n" }
                        for line in lines.dropFirst() where !line.isEmpty { out += "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\"" + "," + line + "\n" }
                    }
                    print(out, terminator: "")
                } else {
                    print(result.table())
                    for (v, r) in zip(values, reports) { print("\n\(swept.key) = \(v): " + r.findings()) }
                    print(String(format: "\nwrote %@/report.html, results.json (%.0f s)", self.report, Date().timeIntervalSince(started)))
                }
            }
        }

        /// The scenario from --scenario and the overrides, with the other options applied.
        func scenarioWithOptions(_ sets: [Scenario.Override]) throws(UplinkError) -> Scenario {
            var s = try Scenario.load(path: scenario, overrides: sets)
            if let rounds { s.rounds = rounds }
            if !pipeline.isEmpty { s.pipelines = pipeline }
            if budgetFitting { s.budgetFitting = true }
            if let dpSeed { s.dpSeed = dpSeed }
            try s.validate()
            return s
        }

        func write(files: [(String, [UInt8])]) throws(UplinkError) {
            do {
                try FileManager.default.createDirectory(atPath: report, withIntermediateDirectories: true)
            } catch {
                throw UplinkError(.io, "\(report): cannot make the report folder: \(error.localizedDescription)")
            }
            for (name, bytes) in files { try TensorFiles.writeFile(report + "/" + name, bytes) }
        }

        func printTables(_ result: SimulationReport) {
            print(result.table())
            print("\nparticipation by network (reports accepted / uploads that made the deadline / clients selected):")
            print(result.participationTable())
            if let p = result.runs.first?.privacy {
                print(Self.privacyLine(p))
            }
            print("\n" + result.findings())
        }

        /// Runs every pipeline of `s`; `label` names the run in progress lines (a sweep value).
        func simulate(_ s: Scenario, label: String?) throws(UplinkError) -> (report: SimulationReport, seconds: Double) {
            let digits = s.train ? try Digits.load(path: data ?? Digits.defaultPath()) : nil
            let replay = s.train ? nil : try Self.replay(s)
            let started = Date()
            let variants: [(label: String, fitting: Bool)] = s.pipelines.flatMap { p in
                s.budgetFitting ? [(p, false), (p + " [budget]", true)] : [(p, false)]
            }
            var runs: [PipelineRun] = []
            let model = replay.map { r in " on a model of \(r.layout.parameterCount) parameters in \(r.layout.tensors.count) tensors (\(r.updates.count) update\(r.updates.count == 1 ? "" : "s") replayed)" } ?? ""
            FileHandle.standardError.write(Data("uplink simulate: scenario \"\(s.name)\"\(label.map { " (\($0))" } ?? ""), \(s.clients) clients, \(s.rounds) rounds, \(variants.count) runs\(model)\n".utf8))
            for (i, v) in variants.enumerated() {
                var sv = s
                sv.budgetFitting = v.fitting
                let sim = try Simulator(scenario: sv, digits: digits, replaying: replay)
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
            var result = SimulationReport(scenario: s.name, runs: runs)
            result.settings = s
            return (result, Date().timeIntervalSince(started))
        }

        /// The updates a replaying scenario sends, all in one layout: that of `model` when
        /// given, else the first update's. A mismatch names the file and what differs.
        static func replay(_ s: Scenario) throws(UplinkError) -> ReplayUpdates {
            let nonFloat: NonFloatTensors = s.skipNonFloat ? .skip : .refuse
            var notes: Set<String> = []
            func load(_ path: String) throws(UplinkError) -> TensorSet {
                let (set, report) = try TensorFiles.loadReporting(path: path, nonFloat: nonFloat)
                for line in report.lines where notes.insert(line).inserted { note("\(path): \(line)") }
                return set
            }
            let global = try s.model.map { (p) throws(UplinkError) in try load(p) }
            if !s.updates.isEmpty || s.model != nil {
                var updates: [[Float]] = []
                var layout = global?.layout
                var loaded: [String: TensorSet] = [:]  // a file listed twice is read once and shared
                for path in s.replayFiles {
                    let u: TensorSet
                    if let cached = loaded[path] { u = cached } else { u = try load(path) }
                    loaded[path] = u
                    guard u.layout.parameterCount > 0 else { throw UplinkError(.invalidArgument, "\(path): the float tensors hold no values") }
                    if let expected = layout, u.layout != expected {
                        let whose = s.model.map { "the model's (\($0))" } ?? "the first update's (\(s.replayFiles[0]))"
                        throw UplinkError(.shapeMismatch, "\(path): its layout (\(u.layout.tensors.count) tensors, \(u.layout.parameterCount) parameters) is not \(whose) (\(expected.tensors.count) tensors, \(expected.parameterCount) parameters)"
                            + FrameHeader.difference(frame: u.layout.tensors, tensorCount: u.layout.tensors.count, parameterCount: u.layout.parameterCount, layout: expected, subject: "file"))
                    }
                    layout = u.layout
                    updates.append(u.values)
                }
                return try ReplayUpdates(layout: layout!, updates: updates, global: global?.values)
            }
            // The legacy form: one update of the digits MLP of the scenario's width.
            let u = try load(s.replayUpdate)
            let mlp = MLP.digits(width: s.width).layout
            guard u.values.count == mlp.parameterCount else {
                throw UplinkError(.invalidArgument, "\(s.replayUpdate): replayUpdate must be an update of the digits MLP (\(mlp.parameterCount) values at width \(s.width)), it has \(u.values.count); for another model list it under \"updates\" (docs/simulation.md)")
            }
            return try ReplayUpdates(layout: mlp, updates: [u.values])
        }

        /// The central-DP line of the text output; the round count is printed in full whatever its size.
        static func privacyLine(_ p: PrivacySummary) -> String {
            String(format: "\ncentral DP: ε = %.3f at δ = %g after ", p.epsilon, p.delta) + "\(p.rounds) rounds"
                + String(format: " with z = %g, accounted as Poisson sampling at q = selected/online per round (mean %.4f, max %.4f); ",
                         p.noiseMultiplier, p.meanSamplingRate, p.maxSamplingRate) + p.randomnessNote
        }
    }
}
