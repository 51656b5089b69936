import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import UplinkSimulation

/// The sweep report: one simulation per value of a scenario field, as a table with the value
/// first, one JSON document, and one HTML page with the value on x.
@Suite struct ReportSweepTests {
    static let topk = ReportDecisionTests.topk

    /// A report whose float32 run gets `inTime` of 10 3G clients in per round (two rounds) and
    /// whose top-k run gets all 10; `withTopK: false` leaves top-k out.
    static func report(inTime: Int, accuracy: Double? = 0.9, withTopK: Bool = true, deadline: Double = 45) -> SimulationReport {
        var s = Scenario()
        s.deadlineSeconds = deadline
        let fp32 = ReportDecisionTests.run("fp32 | stored", frame: 4_500_000, accuracies: [accuracy, accuracy], selected: ["3G": 10, "LTE": 5], inTime: ["3G": inTime, "LTE": 5])
        let sparse = ReportDecisionTests.run(topk, frame: 22_000, accuracies: [accuracy, accuracy], selected: ["3G": 10, "LTE": 5], inTime: ["3G": 10, "LTE": 5])
        return SimulationReport(scenario: "sweep", runs: withTopK ? [fp32, sparse] : [fp32], settings: s)
    }

    static func parse(_ html: String) throws -> XMLDocument { try ReportHTMLTests.parse(html) }
    static func texts(_ doc: XMLDocument, _ xpath: String) throws -> [String] { try ReportHTMLTests.texts(doc, xpath) }

    /// The value comes first and each pipeline's rows stand together in the order of the
    /// values; a pipeline a report lacks has no row there.
    @Test func tableGroupsEachPipelinesValues() {
        let reports = [Self.report(inTime: 2), Self.report(inTime: 6), Self.report(inTime: 9, withTopK: false)]
        let sweep = SweepReport(key: "deadlineSeconds", values: ["30", "45", "60"], reports: reports)
        let rows = sweep.summaryRows()
        #expect(rows[0] == ["deadlineSeconds"] + SimulationReport.summaryHeader(dp: false))
        #expect(rows.dropFirst().map { [$0[0], $0[1]] } == [["30", "fp32 | stored"], ["45", "fp32 | stored"], ["60", "fp32 | stored"], ["30", Self.topk], ["45", Self.topk]])
        #expect(rows[1] == ["30"] + SimulationReport.summaryRow(reports[0].runs[0], dp: false))
        #expect(rows[5] == ["45"] + SimulationReport.summaryRow(reports[1].runs[1], dp: false))
        #expect(rows[1][2] == "4.50 MB" && rows[4][2] == "22.0 kB")
        let lines = sweep.table().split(separator: "\n")
        #expect(lines.count == 7)
        // The value and the pipeline are left-aligned, the numbers right-aligned.
        #expect(lines[0].hasPrefix("deadlineSeconds  pipeline     "))
        #expect(lines[2].hasPrefix("30" + String(repeating: " ", count: 15) + "fp32 | stored" + String(repeating: " ", count: Self.topk.count - 13 + 2)))
    }

    /// `{"sweep": {"key", "values"}, "runs": [{"value", …results.json}]}`: each run is its
    /// report's results.json object plus the value, as given.
    @Test func jsonHoldsEveryRunWithItsValue() throws {
        let reports = [Self.report(inTime: 2), Self.report(inTime: 9)]
        let sweep = SweepReport(key: "deadlineSeconds", values: ["1e3", "2000"], reports: reports)
        let object = try #require(try JSONSerialization.jsonObject(with: sweep.json()) as? [String: Any])
        #expect(Set(object.keys) == ["sweep", "runs"])
        let header = try #require(object["sweep"] as? [String: Any])
        #expect(header["key"] as? String == "deadlineSeconds" && header["values"] as? [String] == ["1e3", "2000"])
        let runs = try #require(object["runs"] as? [[String: Any]])
        #expect(runs.map { $0["value"] as? String } == ["1e3", "2000"])
        for (run, report) in zip(runs, reports) {
            var rest = run
            rest["value"] = nil
            #expect(NSDictionary(dictionary: rest) == (try JSONSerialization.jsonObject(with: report.json()) as! NSDictionary))
            #expect(rest["scenario_parameters"] != nil)
        }
    }

    /// The x position and the label of each point of a chart, in drawing order.
    static func points(_ doc: XMLDocument, _ figure: String) throws -> [(x: Double, title: String)] {
        try doc.nodes(forXPath: "//figure[@id='\(figure)']//*[local-name()='circle']").map { ((ReportDecisionTests.number($0, "cx")), $0.stringValue ?? "") }
    }

    /// Every value a number ("1e3" among them, given out of order): the points stand at their
    /// values on a numeric axis, each line drawn in increasing x, and the table keeps the text.
    @Test func numericValuesGetANumericAxis() throws {
        let sweep = SweepReport(key: "clients", values: ["1e3", "250", "2000"], reports: [Self.report(inTime: 5), Self.report(inTime: 2), Self.report(inTime: 9)])
        let doc = try Self.parse(sweep.html())
        let fp32 = try Self.points(doc, "sweep-participation").filter { $0.title.hasPrefix("fp32") }
        // Participation: the hand-built rounds report 10 of the 15 selected.
        #expect(fp32.map(\.title) == ["250", "1000", "2000"].map { "fp32 | stored: \($0), 66.67%" })
        #expect(abs((fp32[1].x - fp32[0].x) / (fp32[2].x - fp32[0].x) - 750.0 / 1750) < 0.001)
        let ticks = try Self.texts(doc, "//figure[@id='sweep-participation']//*[local-name()='text'][@class='tick'][@text-anchor='middle']")
        #expect(ticks == ["200", "400", "600", "800", "1000", "1200", "1400", "1600", "1800", "2000"])
        // Shares read on the whole 0–100% axis, whatever the data.
        for figure in ["sweep-participation", "in-time-0"] {
            #expect(try Self.texts(doc, "//figure[@id='\(figure)']//*[local-name()='text'][@class='tick'][@text-anchor='end']") == ["0%", "20%", "40%", "60%", "80%", "100%"])
        }
        // The share in time on 3G per value: 5/10, 2/10, 9/10, drawn in x order.
        let threeG = try #require(Self.texts(doc, "//figure[@id='in-time-0']/figcaption").first)
        #expect(threeG == "In time on 3G")
        #expect(try Self.points(doc, "in-time-0").map(\.title).prefix(3) == ["fp32 | stored: 250, 20.00%", "fp32 | stored: 1000, 50.00%", "fp32 | stored: 2000, 90.00%"])
        #expect(sweep.summaryRows().dropFirst().map { $0[0] } == ["1e3", "250", "2000", "1e3", "250", "2000"])
    }

    /// A value that is not a number makes every value a category: evenly spaced in the order
    /// given, labelled with the values.
    @Test func nonNumericValuesAreEvenlySpacedCategories() throws {
        let sweep = SweepReport(key: "interruptions", values: ["resume", "restart", "1e3"], reports: [Self.report(inTime: 5), Self.report(inTime: 2), Self.report(inTime: 9)])
        let doc = try Self.parse(sweep.html())
        #expect(try Self.texts(doc, "//figure[@id='sweep-bytes']//*[local-name()='text'][@class='tick'][@text-anchor='middle']") == ["resume", "restart", "1e3"])
        let fp32 = try Self.points(doc, "in-time-0").filter { $0.title.hasPrefix("fp32") }
        #expect(fp32.map(\.title) == ["fp32 | stored: resume, 50.00%", "fp32 | stored: restart, 20.00%", "fp32 | stored: 1e3, 90.00%"])
        #expect(abs((fp32[1].x - fp32[0].x) - (fp32[2].x - fp32[1].x)) < 0.25)
    }

    /// Category labels too wide for their slot go on alternate rows of a small chart; in a
    /// wide chart they share one row.
    @Test func wideCategoryLabelsDoNotCollide() throws {
        let values = ["ef | topk 1% scope=global | int8 lz4", "ef | topk 0.1% scope=tensor | int4", "fp16 | lz4 level=9 and more words"]
        let sweep = SweepReport(key: "downlink", values: values, reports: values.map { _ in Self.report(inTime: 5) })
        let doc = try Self.parse(sweep.html())
        let small = try doc.nodes(forXPath: "//figure[@id='in-time-0']//*[local-name()='text'][@class='tick'][@text-anchor='middle']")
        #expect(small.map { $0.stringValue ?? "" } == values)
        #expect(Set(small.map { ReportDecisionTests.number($0, "y") }).count == 3)
        let wide = try doc.nodes(forXPath: "//figure[@id='sweep-bytes']//*[local-name()='text'][@class='tick'][@text-anchor='middle']")
        #expect(Set(wide.map { ReportDecisionTests.number($0, "y") }).count == 1)
    }

    /// One value: every chart marks one point per pipeline, on an axis padded around it, and
    /// the page has one section with its findings, tables and parameters.
    @Test func oneValueSweep() throws {
        let sweep = SweepReport(key: "deadlineSeconds", values: ["45"], reports: [Self.report(inTime: 5)])
        let doc = try Self.parse(sweep.html())
        for figure in ["sweep-participation", "sweep-upload-p95", "sweep-bytes", "sweep-accuracy", "in-time-0", "in-time-1"] {
            #expect(try Self.points(doc, figure).count == 2, "\(figure)")
        }
        let ticks = try Self.texts(doc, "//figure[@id='sweep-bytes']//*[local-name()='text'][@class='tick'][@text-anchor='middle']").map { Double($0)! }
        #expect(ticks.first! < 45 && ticks.last! > 45)
        #expect(try doc.nodes(forXPath: "//section").count == 1)
        #expect(try Self.texts(doc, "//section[@id='value-0']/h3") == ["deadlineSeconds = 45"])
        #expect(try Self.texts(doc, "//section[@id='value-0']/p[@class='findings']") == [sweep.reports[0].findings()])
        #expect(try Self.texts(doc, "//table[@id='summary-0']/tbody/tr/td[1]") == ["fp32 | stored", Self.topk])
        #expect(try doc.nodes(forXPath: "//table[@id='participation-0']").count == 1)
        #expect(try doc.nodes(forXPath: "//table[@id='parameters-0']").count == 1)
    }

    /// Replayed updates: no accuracy chart, and it says why.
    @Test func sweepWithoutAccuracySaysWhy() throws {
        let sweep = SweepReport(key: "seed", values: ["1", "2"], reports: [Self.report(inTime: 5, accuracy: nil), Self.report(inTime: 6, accuracy: nil)])
        let doc = try Self.parse(sweep.html())
        #expect(try Self.texts(doc, "//figure[@id='sweep-accuracy']/p") == ["no accuracy (replayed updates are not trained)"])
    }

    /// A sweep needs one report per value: a mismatch is a programming error and traps.
    @Test func mismatchedCountsTrap() async {
        await #expect(processExitsWith: .failure) {
            _ = SweepReport(key: "deadlineSeconds", values: ["30", "45"], reports: [])
        }
    }

    /// Real simulations: a numeric sweep (the deadline) and a categorical one (the partition)
    /// render as well-formed pages with a section per value (`scripts/check-report` renders the
    /// CLI's `--sweep` reports in Chromium).
    @Test func realSweepsRender() throws {
        var base = SimulatorTests.small()
        base.name = "check: sweep"
        base.width = 32
        base.pipelines = ["fp32 | stored", "ef | topk 1% | int8 | lz4"]
        let sweeps: [(name: String, key: String, values: [String], apply: (inout Scenario, String) -> Void)] = [
            ("sweep-deadline", "deadlineSeconds", ["0.5", "2", "10"], { $0.deadlineSeconds = Double($1)! }),
            ("sweep-partition", "partition", ["iid", "dirichlet:0.5", "quantity:1"], { $0.partition = $1 }),
        ]
        for sweep in sweeps {
            let reports = try sweep.values.map { value in
                var s = base
                sweep.apply(&s, value)
                let runs = try s.pipelines.map { try Simulator(scenario: s, digits: SimulatorTests.digits).run(pipeline: $0) }
                return SimulationReport(scenario: s.name, runs: runs, settings: s)
            }
            let report = SweepReport(key: sweep.key, values: sweep.values, reports: reports)
            let html = report.html()
            let doc = try Self.parse(html)
            #expect(try doc.nodes(forXPath: "//section").count == sweep.values.count)
            #expect(try Self.points(doc, "sweep-bytes").count == sweep.values.count * 2)
            #expect(try Self.texts(doc, "//figure[@id='sweep-bytes']//*[local-name()='text'][@class='tick'][@text-anchor='middle']").isEmpty == false)
        }
    }
}
