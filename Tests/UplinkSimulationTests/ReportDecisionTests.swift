import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import UplinkSimulation

/// The report as a basis for decisions: the scenario it ran, the deadline on the upload plot,
/// the share in time per network as bars, accuracy per round, and the findings paragraph, each
/// checked on hand-built runs whose numbers are known.
@Suite struct ReportDecisionTests {
    /// A round with `reported` reports of `frame` bytes each and the given selections and
    /// uploads in time per network.
    static func round(_ n: Int, frame: Int, reported: Int = 10, accuracy: Double?, selected: [String: Int], inTime: [String: Int],
                      ready: [String: Int]? = nil, uploads: [Double] = [0.5, 1.5, 2.5]) -> SimulatedRound {
        SimulatedRound(round: n, selected: selected.values.reduce(0, +), reported: reported, droppedDeadline: 0, droppedInterruption: 0, droppedDropout: 0,
                       surplus: 0, bytesUp: frame * reported, bytesDown: 1000, uploadTimes: uploads, duration: 10, wallClock: Double(n) * 10,
                       accuracy: accuracy, acceptedBytes: frame * reported, budgetFitted: 0, selectedByProfile: selected, reportedByProfile: [:],
                       inTimeByProfile: inTime, readyByProfile: ready ?? selected)
    }

    /// A run of six rounds, each with the same selections, frames and uploads in time.
    static func run(_ pipeline: String, frame: Int, accuracies: [Double?], selected: [String: Int], inTime: [String: Int]) -> PipelineRun {
        PipelineRun(pipeline: pipeline, rounds: accuracies.enumerated().map { i, a in
            round(i + 1, frame: frame, accuracy: a, selected: selected, inTime: inTime)
        })
    }

    static let topk = "ef | topk 1% | int8 | lz4"

    /// Three pipelines over six rounds on 3G (5 selected a round) and LTE (8): float32 gets 1 of
    /// 5 in on 3G (20%), top-k 4.5 of 5 (exactly 90%: fits), int8 4.33 of 5 (86.7%: does not).
    static func threePipelines() -> [PipelineRun] {
        [run("fp32 | stored", frame: 4_500_000, accuracies: [0.5, 0.6, 0.7, 0.8, 0.9, 0.92], selected: ["3G": 5, "LTE": 8], inTime: ["3G": 1, "LTE": 8]),
         PipelineRun(pipeline: topk, rounds: (1...6).map { i in
             round(i, frame: 22_000, accuracy: [0.5, 0.6, 0.7, 0.8, 0.88, 0.9][i - 1], selected: ["3G": 5, "LTE": 8], inTime: ["3G": i.isMultiple(of: 2) ? 4 : 5, "LTE": 8])
         }),
         PipelineRun(pipeline: "int8 | zlib", rounds: (1...6).map { i in
             round(i, frame: 733_700, accuracy: [0.5, 0.6, 0.7, 0.8, 0.9, 0.92][i - 1], selected: ["3G": 5, "LTE": 8], inTime: ["3G": i <= 2 ? 4 : 4 + (i % 2), "LTE": 8])
         })]
    }

    static func parse(_ html: String) throws -> XMLDocument { try ReportHTMLTests.parse(html) }
    static func texts(_ doc: XMLDocument, _ xpath: String) throws -> [String] { try ReportHTMLTests.texts(doc, xpath) }
    static func number(_ node: XMLNode, _ attribute: String) -> Double {
        Double((try? node.nodes(forXPath: "@" + attribute))?.first?.stringValue ?? "") ?? .nan
    }

    // MARK: The scenario parameters

    /// results.json holds the scenario's every field, off fields as null, and reads back as the
    /// same scenario; without settings it has no parameters.
    @Test func resultsJSONHoldsEveryScenarioField() throws {
        var s = Scenario()
        s.seed = UInt64.max
        s.deadlineSeconds = 7.5
        s.dpClip = 1; s.dpNoise = 0.5
        let report = SimulationReport(scenario: s.name, runs: Self.threePipelines(), settings: s)
        let object = try #require(try JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        let parameters = try #require(object["scenario_parameters"] as? [String: Any])
        #expect(Set(parameters.keys) == Set(Scenario.CodingKeys.allCases.map(\.rawValue)))
        #expect(parameters["deadlineSeconds"] as? Double == 7.5)
        #expect((parameters["seed"] as? NSNumber)?.uint64Value == UInt64.max)
        #expect(parameters["dpAdaptiveQuantile"] is NSNull && parameters["dpSeed"] is NSNull)
        let groups = try #require(parameters["population"] as? [[String: Any]])
        #expect(groups.map { $0["profile"] as? String } == ["3G", "LTE", "5G", "WiFi"])
        #expect(groups.allSatisfy { $0["trace"] is NSNull && Set($0.keys) == Set(Scenario.Group.CodingKeys.allCases.map(\.rawValue)) })
        // The object is a scenario file: it reads back as the scenario that ran.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let back = try Scenario.read([UInt8](JSONSerialization.data(withJSONObject: parameters)), folder: nil)
        #expect(try encoder.encode(back) == encoder.encode(s))
        let without = try #require(try JSONSerialization.jsonObject(with: SimulationReport(scenario: "x", runs: Self.threePipelines()).json()) as? [String: Any])
        #expect(without["scenario_parameters"] == nil)
    }

    /// The HTML report shows the main parameters and the population as tables, and every field
    /// as the same JSON that results.json holds.
    @Test func htmlShowsTheParameters() throws {
        var s = Scenario()
        s.deadlineSeconds = 45
        s.population = [Scenario.Group(profile: "3G", share: 1, availability: 0.5, dropout: 0.1),
                        Scenario.Group(profile: "LTE", share: 3, msPerSample: [2, 8], trace: "/traces/lte-fade.csv")]
        s.train = false
        s.replayUpdate = "/u/update.safetensors"
        let report = SimulationReport(scenario: s.name, runs: Self.threePipelines(), settings: s)
        let doc = try Self.parse(report.html())
        let names = try Self.texts(doc, "//table[@id='parameters']/tbody/tr/td[1]")
        let values = try Self.texts(doc, "//table[@id='parameters']/tbody/tr/td[2]")
        let rows = Dictionary(uniqueKeysWithValues: zip(names, values))
        #expect(rows["clients"] == "100" && rows["reports per round (K)"] == "10" && rows["rounds"] == "30" && rows["seed"] == "1")
        #expect(rows["over-selection"] == "1.3× (13 selected per round)")
        #expect(rows["deadline"] == "45 s")
        #expect(rows["downlink"] == "fp32 | stored")
        #expect(rows["updates"] == "replayed: update.safetensors, 1 sample per client")
        var own = s
        own.updates = (1...5).map { "/u/client-\($0).safetensors" }
        own.model = "/u/ckpt.safetensors"
        own.samplesPerClient = 40
        own.skipNonFloat = true
        #expect(SimulationReport.parameterRows(own).first { $0.0 == "updates" }?.1
            == "replayed: client-1.safetensors, client-2.safetensors, client-3.safetensors and 2 more, model ckpt.safetensors, 40 samples per client, non-float tensors skipped")
        #expect(rows["central DP"] == "off" && rows["budget fitting"] == "off")
        #expect(try Self.texts(doc, "//table[@id='parameters-population']/thead/tr/th") == ["network", "share", "availability", "dropout", "ms per sample", "trace"])
        #expect(try Self.texts(doc, "//table[@id='parameters-population']/tbody/tr[1]/td") == ["3G", "25%", "0.5", "0.1", "5–20", "—"])
        #expect(try Self.texts(doc, "//table[@id='parameters-population']/tbody/tr[2]/td") == ["LTE", "75%", "0.8", "0.02", "2–8", "/traces/lte-fade.csv"])
        let pre = try #require(try Self.texts(doc, "//details/pre[@id='parameters-json']").first)
        let shown = try JSONSerialization.jsonObject(with: Data(pre.utf8)) as! NSDictionary
        let inResults = try (JSONSerialization.jsonObject(with: report.json()) as! [String: Any])["scenario_parameters"] as! NSDictionary
        #expect(shown == inResults)
        // Trained updates read as the training settings.
        s.train = true
        let trained = try Self.parse(SimulationReport(scenario: s.name, runs: Self.threePipelines(), settings: s).html())
        #expect(try Self.texts(trained, "//table[@id='parameters']/tbody/tr[td[1]='updates']/td[2]")
                == ["trained: partition dirichlet:0.5, 1 local epoch, batch 32, learning rate 0.05, momentum 0.9, MLP width 1024"])
        // Without settings there is no scenario section.
        let bare = try Self.parse(SimulationReport(scenario: "x", runs: Self.threePipelines()).html())
        #expect(try bare.nodes(forXPath: "//table[@id='parameters']").isEmpty)
    }

    // MARK: The plots

    /// The dashed deadline line stands where the deadline falls on the log axis (read from two
    /// tick labels' positions), the axis reaching past it even when every upload is far faster.
    @Test(arguments: [45.0, 0.2, 1.0])
    func deadlineLineSitsAtTheDeadlineOnTheAxis(deadline: Double) throws {
        var s = Scenario()
        s.deadlineSeconds = deadline
        let doc = try Self.parse(SimulationReport(scenario: "d", runs: Self.threePipelines(), settings: s).html())
        let figure = "//figure[@id='upload-times']"
        let line = try #require(try doc.nodes(forXPath: "\(figure)//*[local-name()='line'][@class='deadline']").first)
        #expect(Self.number(line, "x1") == Self.number(line, "x2"))
        #expect(try Self.texts(doc, "\(figure)//*[local-name()='text'][@class='deadline']") == ["deadline \(String(format: "%g", deadline)) s"])
        let ticks = try doc.nodes(forXPath: "\(figure)//*[local-name()='text'][@class='tick']").map { node -> (value: Double, x: Double) in
            let label = node.stringValue ?? ""
            return (Double(label.dropLast(2))!, Self.number(node, "x"))
        }
        let (a, b) = (try #require(ticks.first), try #require(ticks.last))
        #expect(a.value <= min(deadline, 0.5) && b.value >= max(deadline, 2.5), "the axis \(a.value)…\(b.value) must hold the deadline and the uploads")
        let expected = a.x + (log10(deadline) - log10(a.value)) / (log10(b.value) - log10(a.value)) * (b.x - a.x)
        #expect(abs(Self.number(line, "x1") - expected) < 0.15, "deadline at \(Self.number(line, "x1")), axis says \(expected)")
    }

    /// Without the scenario the upload plot has no deadline line.
    @Test func noDeadlineLineWithoutSettings() throws {
        let doc = try Self.parse(SimulationReport(scenario: "d", runs: Self.threePipelines()).html())
        #expect(try doc.nodes(forXPath: "//*[local-name()='line'][@class='deadline']").isEmpty)
    }

    /// One bar per (network, pipeline) with a client selected, its length the share in time on
    /// the 0–100% axis, its label the share in per mille rounded down; a pipeline never selected
    /// on a network says so instead of a bar.
    @Test func participationChartHasABarPerNetworkAndPipeline() throws {
        let runs = [Self.run("fp32 | stored", frame: 100, accuracies: [nil, nil], selected: ["3G": 5, "WiFi": 4, "trace lte-fade.csv": 3], inTime: ["3G": 1, "WiFi": 4, "trace lte-fade.csv": 2]),
                    Self.run(Self.topk, frame: 10, accuracies: [nil, nil], selected: ["3G": 6, "WiFi": 4], inTime: ["3G": 5, "WiFi": 4])]
        let doc = try Self.parse(SimulationReport(scenario: "bars", runs: runs).html())
        let figure = "//figure[@id='in-time-by-network']"
        #expect(try Self.texts(doc, "\(figure)//*[local-name()='text'][@class='label']") == ["3G", "WiFi", "trace lte-fade.csv"])
        let bars = try doc.nodes(forXPath: "\(figure)//*[local-name()='rect'][@class='bar']")
        #expect(bars.count == 5)
        let ticks = try doc.nodes(forXPath: "\(figure)//*[local-name()='text'][@class='tick']")
        #expect(ticks.map { $0.stringValue ?? "" } == ["0%", "20%", "40%", "60%", "80%", "100%"])
        let (x0, x100) = (Self.number(ticks.first!, "x"), Self.number(ticks.last!, "x"))
        // 3G: 2/10 and 10/12; WiFi: 8/8 and 8/8; the trace: 4/6 and no bar.
        let shares = [2.0 / 10, 10.0 / 12, 1, 1, 4.0 / 6]
        for (bar, share) in zip(bars, shares) {
            #expect(abs(Self.number(bar, "x") - x0) < 0.15)
            #expect(abs(Self.number(bar, "width") - share * (x100 - x0)) < 0.15, "\(bar.stringValue ?? "")")
        }
        #expect(bars.map { $0.stringValue ?? "" } == ["fp32 | stored on 3G: 2 of 10 selected in time", "\(Self.topk) on 3G: 10 of 12 selected in time",
                                                       "fp32 | stored on WiFi: 8 of 8 selected in time", "\(Self.topk) on WiFi: 8 of 8 selected in time",
                                                       "fp32 | stored on trace lte-fade.csv: 4 of 6 selected in time"])
        #expect(try Self.texts(doc, "\(figure)//*[local-name()='text'][@class='value']") == ["20.0%", "83.3%", "100.0%", "100.0%", "66.6%", "not selected"])
        // The bars take the pipelines' colours, as the legend does.
        #expect(bars.map { Self.attribute($0, "fill") } == ["#1f77b4", "#d62728", "#1f77b4", "#d62728", "#1f77b4"])
        #expect(try Self.texts(doc, "\(figure)/*[local-name()='ul']/*[local-name()='li']") == ["fp32 | stored", Self.topk])
        let threshold = try #require(try doc.nodes(forXPath: "\(figure)//*[local-name()='line'][@class='threshold']").first)
        #expect(abs(Self.number(threshold, "x1") - (x0 + 0.9 * (x100 - x0))) < 0.15)
    }

    static func attribute(_ node: XMLNode, _ name: String) -> String { (try? node.nodes(forXPath: "@" + name))?.first?.stringValue ?? "" }

    /// Accuracy per round: a marked point per round and pipeline, at the round on x; a replay
    /// run has none and says why.
    @Test func accuracyPerRoundPlotsEveryRound() throws {
        let doc = try Self.parse(SimulationReport(scenario: "acc", runs: Self.threePipelines()).html())
        let circles = try doc.nodes(forXPath: "//figure[@id='accuracy-round']//*[local-name()='circle']")
        #expect(circles.count == 18)
        #expect(circles.prefix(6).map { $0.stringValue ?? "" } == ["50.00%", "60.00%", "70.00%", "80.00%", "90.00%", "92.00%"].enumerated().map { "fp32 | stored: \($0 + 1), \($1)" })
        let replay = [Self.run("fp32 | stored", frame: 100, accuracies: [nil, nil], selected: ["3G": 1], inTime: ["3G": 1])]
        let empty = try Self.parse(SimulationReport(scenario: "replay", runs: replay).html())
        #expect(try Self.texts(empty, "//figure[@id='accuracy-round']/p") == ["no accuracy (replayed updates are not trained)"])
    }

    // MARK: The findings

    /// The fit rule is exact: a share in per mille rounded down, so 27 of 30 is 90.0% and fits,
    /// and 899 of 1000 does not, whatever the count's size.
    @Test func fitSharesAreExactPerMille() {
        #expect(SimulationReport.perMille(27, of: 30) == 900)
        #expect(SimulationReport.perMille(29, of: 100) == 290)
        #expect(SimulationReport.perMille(899, of: 1000) == 899)
        #expect(SimulationReport.perMille(2, of: 3) == 666)
        #expect(SimulationReport.perMille(4_294_967_297, of: 5_000_000_000) == 858)
        #expect(SimulationReport.perMille(Int.max, of: Int.max) == 1000)
        #expect(SimulationReport.perMille(1, of: 0) == 0)
        #expect(SimulationReport.percent(perMille: 858) == "85.8%" && SimulationReport.percent(perMille: 1000) == "100.0%")
    }

    /// Three pipelines, one seed: where each fits, the baseline and the frames against it, and
    /// the accuracy cost in points, every number from the summaries.
    @Test func findingsOfThreePipelines() {
        let report = SimulationReport(scenario: "three", runs: Self.threePipelines(), settings: Scenario())
        #expect(report.findings() == [
            "A pipeline fits a network when at least 90.0% of the clients selected on it had their upload in by the deadline (45 s).",
            "On 3G, ef | topk 1% | int8 | lz4 fits; fp32 | stored (20.0% in time) and int8 | zlib (86.6%) do not.",
            "On LTE, every pipeline fits (the lowest: fp32 | stored, 100.0% in time).",
            "The baseline is fp32 | stored, the pipeline with the largest mean frame (4.50 MB); mean frames against it: ef | topk 1% | int8 | lz4 22.0 kB (205× smaller) and int8 | zlib 733.7 kB (6.1× smaller).",
            "Accuracy after the last round, and over the last 5 rounds: fp32 | stored (the baseline) 92.00% and 78.40%; ef | topk 1% | int8 | lz4 90.00% (−2.00 points) and 77.60% (−0.80 points); int8 | zlib 92.00% (+0.00 points) and 78.40% (+0.00 points).",
            "This is one seed (seed 1): accuracy differences of about a point are within seed noise on the digits task (docs/results.md).",
        ].joined(separator: " "))
    }

    /// A network where nothing fits is named with the pipeline closest to fitting; a network a
    /// pipeline was never selected on is said so; replayed updates have no accuracy to compare,
    /// so there is no seed caveat; without settings the deadline is not quoted.
    @Test func findingsWithAnUnfitNetworkAndNoAccuracy() {
        let runs = [Self.run("fp32 | stored", frame: 1_000_000, accuracies: [nil, nil], selected: ["3G": 15, "WiFi": 15], inTime: ["3G": 2, "WiFi": 15]),
                    Self.run(Self.topk, frame: 5_000_000_000, accuracies: [nil, nil], selected: ["3G": 15, "WiFi": 15, "trace lte-fade.csv": 5], inTime: ["3G": 10, "WiFi": 15, "trace lte-fade.csv": 5])]
        #expect(SimulationReport(scenario: "unfit", runs: runs).findings() == [
            "A pipeline fits a network when at least 90.0% of the clients selected on it had their upload in by the deadline.",
            "On 3G, no pipeline fits (the closest: ef | topk 1% | int8 | lz4, 66.6% in time).",
            "On WiFi, every pipeline fits (the lowest: fp32 | stored, 100.0% in time).",
            "On trace lte-fade.csv, ef | topk 1% | int8 | lz4 fits (100.0% in time) (no client of fp32 | stored was selected there).",
            "The baseline is ef | topk 1% | int8 | lz4, the pipeline with the largest mean frame (5.00 GB); mean frames against it: fp32 | stored 1.00 MB (5000× smaller).",
            "There is no accuracy to compare (replayed updates are not trained).",
        ].joined(separator: " "))
    }

    /// Every network without a fitting pipeline is named in one sentence, with the pipeline
    /// closest to fitting, or none when no upload was in time.
    @Test func findingsNameEveryNetworkWhereNothingFits() {
        let runs = [Self.run("fp32 | stored", frame: 1000, accuracies: [nil], selected: ["3G": 4, "LTE": 10, "WiFi": 2], inTime: ["3G": 0, "LTE": 5, "WiFi": 2]),
                    Self.run(Self.topk, frame: 10, accuracies: [nil], selected: ["3G": 4, "LTE": 10, "WiFi": 2], inTime: ["3G": 0, "LTE": 8, "WiFi": 2])]
        let text = SimulationReport(scenario: "unfit", runs: runs).findings()
        #expect(text.contains(" On 3G, no pipeline fits: no upload was in time. "))
        #expect(text.contains(" On LTE, no pipeline fits (the closest: ef | topk 1% | int8 | lz4, 80.0% in time). "))
        #expect(text.contains(" On WiFi, every pipeline fits (the lowest: fp32 | stored, 100.0% in time). "))
        #expect(!text.contains("finished downloading"))
    }

    /// A network whose clients mostly do not finish the download and training in time is
    /// named as limited by them, not by the uplink pipeline; a pipeline with no accepted report
    /// still has its frame size from the uploads it started.
    @Test func findingsSayWhenTheDownloadOrTrainingLimits() {
        var dense = Self.run("fp32 | stored", frame: 100_000_000, accuracies: [nil], selected: ["3G": 10, "WiFi": 10], inTime: ["3G": 0, "WiFi": 3])
        dense.rounds[0].reported = 0
        dense.rounds[0].acceptedBytes = 0
        dense.rounds[0].uploadedFrames = 4
        dense.rounds[0].uploadedFrameBytes = 400_000_000
        dense.rounds[0].readyByProfile = ["3G": 2, "WiFi": 10]
        var sparse = Self.run(Self.topk, frame: 500_000, accuracies: [nil], selected: ["3G": 10, "WiFi": 10], inTime: ["3G": 2, "WiFi": 10])
        sparse.rounds[0].readyByProfile = ["3G": 2, "WiFi": 10]
        let text = SimulationReport(scenario: "download", runs: [dense, sparse]).findings()
        #expect(text.contains(" On 3G, no pipeline fits (the closest: ef | topk 1% | int8 | lz4, 20.0% in time). Only 20.0% of the clients selected on 3G finished downloading the model and training before the deadline, so no uplink pipeline can fit it there: the download or the training is too slow. "), "\(text)")
        #expect(text.contains(" On WiFi, ef | topk 1% | int8 | lz4 fits; fp32 | stored (30.0% in time) does not. "), "\(text)")
        #expect(text.contains("The baseline is fp32 | stored, the pipeline with the largest mean frame (100.00 MB); mean frames against it: ef | topk 1% | int8 | lz4 500.0 kB (200× smaller)."), "\(text)")
        #expect(SimulationReport(scenario: "download", runs: [dense, sparse]).table().contains("100.00 MB"))
    }

    /// One pipeline: nothing to compare, its own accuracy over the rounds it has (three here).
    @Test func findingsOfOnePipeline() {
        let run = Self.run("fp32 | stored", frame: 4_500_000, accuracies: [0.5, 0.6, 0.7], selected: ["LTE": 8], inTime: ["LTE": 7])
        #expect(SimulationReport(scenario: "one", runs: [run], settings: Scenario()).findings() == [
            "A pipeline fits a network when at least 90.0% of the clients selected on it had their upload in by the deadline (45 s).",
            "On LTE, no pipeline fits (the closest: fp32 | stored, 87.5% in time).",
            "Only one pipeline ran (mean frame 4.50 MB), so there is no baseline to compare with.",
            "Its accuracy is 70.00% after the last round and 60.00% over the last 3 rounds (one seed).",
        ].joined(separator: " "))
    }

    /// No client selected (every client offline): nothing to judge, nothing to compare.
    @Test func findingsWhenNoClientWasSelected() {
        let runs = ["fp32 | stored", Self.topk].map { p in
            PipelineRun(pipeline: p, rounds: [Self.round(1, frame: 0, reported: 0, accuracy: 0.1, selected: [:], inTime: [:], uploads: [])])
        }
        #expect(SimulationReport(scenario: "none", runs: runs).findings() == [
            "A pipeline fits a network when at least 90.0% of the clients selected on it had their upload in by the deadline.",
            "No client was selected, so no pipeline can be judged against the deadline.",
            "No client got to upload, so there are no frames or accuracy to compare.",
        ].joined(separator: " "))
    }

    /// The HTML report opens with the same paragraph, pipeline names set as code.
    @Test func htmlOpensWithTheFindings() throws {
        let report = SimulationReport(scenario: "three", runs: Self.threePipelines(), settings: Scenario())
        let doc = try Self.parse(report.html())
        #expect(try Self.texts(doc, "//p[@id='findings']") == [report.findings()])
        #expect(try Self.texts(doc, "//p[@id='findings']/code").count == 10)
        #expect(try Self.texts(doc, "//body/h2[1]") == ["What this says"])
        // The paragraph comes before the first table.
        let html = report.html()
        #expect(html.range(of: "id=\"findings\"")!.lowerBound < html.range(of: "<table")!.lowerBound)
    }
}
