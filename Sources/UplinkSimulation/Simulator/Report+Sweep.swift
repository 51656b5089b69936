import Foundation

/// One simulation per value of a scenario field (`--sweep deadlineSeconds=30,45,60`), reported
/// with the field as an axis: a terminal table of every pipeline's summary per value, one JSON
/// document holding each run's results.json object, and one HTML page whose plots put the
/// swept value on x. The axis is numeric when every value reads as a finite number ("30",
/// "1e3"), so unevenly spaced values stand where they belong; otherwise the values are evenly
/// spaced categories in the order given.
public struct SweepReport: Sendable {
    /// The swept scenario field, as the scenario file spells it.
    public var key: String
    /// Its values, as given; `reports[i]` ran with `values[i]`.
    public var values: [String]
    public var reports: [SimulationReport]

    /// A sweep of `key` over `values`, one report each (the counts must match).
    public init(key: String, values: [String], reports: [SimulationReport]) {
        precondition(values.count == reports.count, "a sweep needs one report per value (\(values.count) values, \(reports.count) reports)")
        self.key = key
        self.values = values
        self.reports = reports
    }

    /// The values as numbers, or nil unless every one is a finite number.
    var numericValues: [Double]? {
        let numbers = values.compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }.filter(\.isFinite)
        return numbers.count == values.count && !values.isEmpty ? numbers : nil
    }

    /// Every pipeline of any report, in the order they first appear.
    var pipelines: [String] {
        var seen = Set<String>()
        return reports.flatMap { $0.runs.map(\.pipeline) }.filter { seen.insert($0).inserted }
    }

    /// The network profiles of any report, sorted.
    var profiles: [String] { Array(Set(reports.flatMap(\.profiles))).sorted() }

    /// A pipeline's run at each value (nil where that report lacks it).
    func runs(of pipeline: String) -> [PipelineRun?] {
        reports.map { r in r.runs.first { $0.pipeline == pipeline } }
    }

    /// The table's rows, header first: the swept value, then the comparison columns, each
    /// pipeline's rows together in the order of the values.
    func summaryRows() -> [[String]] {
        let dp = reports.contains(where: \.hasPrivacy)
        var rows = [[key] + SimulationReport.summaryHeader(dp: dp)]
        for pipeline in pipelines {
            for (value, run) in zip(values, runs(of: pipeline)) {
                if let run { rows.append([value] + SimulationReport.summaryRow(run, dp: dp)) }
            }
        }
        return rows
    }

    /// The comparison table for a terminal: the swept value first, each pipeline's values on
    /// adjacent rows.
    public func table() -> String { SimulationReport.columns(summaryRows(), leftAligned: 2) }

    /// `{"sweep": {"key": …, "values": […]}, "runs": [{"value": …, <results.json of that run>}, …]}`,
    /// the values as given (strings).
    public func json() -> Data {
        let runs = zip(values, reports).map { value, report in report.jsonObject().merging(["value": value]) { $1 } }
        return SimulationReport.serialize(["sweep": ["key": key, "values": values] as [String: Any], "runs": runs])
    }

    /// One line chart per measure with the swept value on x and a series per pipeline; a
    /// point only where the pipeline ran and the measure exists.
    func chart(_ yLabel: String, _ yUnit: AxisUnit, logY: Bool = false, share: Bool = false, small: Bool = false,
               _ measure: (SimulationReport.Summary) -> Double?) -> LineChart {
        let numbers = numericValues
        let series = zip(pipelines, SimulationReport.legend(pipelines)).map { pipeline, legend in
            var points = runs(of: pipeline).enumerated().compactMap { i, run -> (x: Double, y: Double)? in
                guard let run, let y = measure(SimulationReport.summarize(run)) else { return nil }
                return (numbers?[i] ?? Double(i), y)
            }
            if numbers != nil { points.sort { $0.x < $1.x } }
            return LineChart.Series(name: pipeline, color: legend.color, points: points)
        }
        // A share (participation, in time) reads on the whole 0–100% axis; accuracy zooms in.
        var chart = LineChart(xLabel: key, yLabel: yLabel, xUnit: .plain, yUnit: yUnit, logY: logY, yClamp: yUnit == .percent ? 0...1 : nil,
                              yIncludes: share ? [0, 1] : [], xCategories: numbers == nil ? values : nil, series: series)
        if small { (chart.width, chart.height) = (540, 260) }
        return chart
    }

    /// A self-contained HTML page (no scripts), checked by `scripts/check-report` like the single
    /// report: plots of participation, share in time per network, upload p95, uplink bytes per
    /// round and final accuracy against the swept value; then per value its findings, tables
    /// and parameters.
    public func html() -> String {
        let legend = SimulationReport.legend(pipelines)
        let name = reports.first?.scenario ?? ""
        let numeric = numericValues != nil
        let noAccuracy = "no accuracy (replayed updates are not trained)"
        let participation = chart("reported / selected", .percent, share: true) { $0.selected > 0 ? $0.participation : nil }
        let p95 = chart("upload time p95 (log scale)", .seconds, logY: true) { $0.uploadP95 }
        let bytes = chart("uplink bytes per round (log scale)", .bytes, logY: true) { max(1, $0.meanBytesUpPerRound) }
        let accuracy = chart("test accuracy after the last round", .percent) { $0.finalAccuracy }
        let networks = profiles.enumerated().map { i, p in
            let share = chart("in time on \(p)", .percent, share: true, small: true) { s in
                let selected = s.selectedByProfile[p] ?? 0
                return selected > 0 ? Double(s.inTimeByProfile[p] ?? 0) / Double(selected) : nil
            }
            return SimulationReport.figure("in-time-\(i)", "In time on \(p)", share.svg(), legend: nil, empty: "no client selected on \(p)")
        }.joined()
        let dp = reports.contains(where: \.hasPrivacy)
        let sections = zip(values, reports).enumerated().map { i, pair in
            let (value, report) = pair
            let participationRows = report.participationRows()
            return """
                <section id="value-\(i)"><h3>\(key.htmlEscaped) = \(value.htmlEscaped)</h3>
                <p class="findings">\(report.findingsProse().html)</p>
                \(SimulationReport.table(report.summaryRows(dp: dp), id: "summary-\(i)", wrapParentheses: false))
                \(participationRows.isEmpty ? "<p class=\"empty\">no client was selected</p>" : SimulationReport.table(participationRows, id: "participation-\(i)", wrapParentheses: true))
                \(report.settings.map { "<details><summary>Parameters of this run</summary>" + SimulationReport.parametersHTML($0, id: "parameters-\(i)") + "</details>" } ?? "")
                </section>
                """
        }.joined(separator: "\n")
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>
            <title>Uplink sweep: \(name.htmlEscaped) over \(key.htmlEscaped)</title>
            <style>\(SimulationReport.style)</style></head><body>
            <h1>Uplink sweep: \(name.htmlEscaped) over \(key.htmlEscaped)</h1>
            <p class="note">\(values.count) value\(values.count == 1 ? "" : "s") of <code>\(key.htmlEscaped)</code> (\(values.joined(separator: ", ").htmlEscaped)), one simulation each, \(pipelines.count) pipeline\(pipelines.count == 1 ? "" : "s"); the plots put the value on x (\(numeric ? "a numeric axis" : "in the order given, evenly spaced")). Per value below: what it says, the tables and the parameters.</p>
            <h2>Plots</h2>
            \(SimulationReport.figure("sweep-participation", "Participation: reports per selected client", participation.svg(), legend: legend, empty: "no client was selected"))
            <h2>Share of the selected clients whose upload made the deadline, by network</h2>
            <div class="grid">\(networks.isEmpty ? "<p class=\"empty\">no client was selected</p>" : networks)</div>
            \(SimulationReport.legendHTML(legend))
            \(SimulationReport.figure("sweep-upload-p95", "Upload time p95", p95.svg(), legend: legend, empty: "no completed uploads"))
            \(SimulationReport.figure("sweep-bytes", "Mean uplink bytes per round", bytes.svg(), legend: legend))
            \(SimulationReport.figure("sweep-accuracy", "Final accuracy", accuracy.svg(), legend: legend, empty: noAccuracy))
            <h2>Per value</h2>
            \(sections)
            </body></html>

            """
    }
}
