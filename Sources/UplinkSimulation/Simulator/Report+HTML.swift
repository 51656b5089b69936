extension SimulationReport {
    /// Series colours (matplotlib's tab10).
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

    /// A self-contained HTML page (no scripts, no external assets), laid out to be read whole
    /// at 1280 px: what the numbers say (``findings()``), the scenario's parameters when known,
    /// the comparison and participation tables as real tables (pipeline names wrap between
    /// stages; no column is hidden), the share in time per network as grouped bars, then line
    /// plots with nice-number ticks and HTML legends: uplink bytes per round, the upload-time
    /// distribution (with the deadline), and accuracy per round, against cumulative uplink bytes
    /// and against wall-clock time. Every point of a short run is marked, so a one-round run
    /// shows its points. `scripts/check-report` renders it in headless Chromium and fails if any
    /// text overflows its box.
    public func html() -> String {
        let legend = Self.legend(runs.map(\.pipeline))
        let colored = zip(runs, legend).map { ($0, $1.color) }
        func chart(_ points: (PipelineRun) -> [(x: Double, y: Double)]) -> [LineChart.Series] {
            colored.map { run, color in LineChart.Series(name: run.pipeline, color: color, points: points(run)) }
        }
        let bytes = LineChart(xLabel: "round", yLabel: "uplink bytes per round (log scale)", xUnit: .count, yUnit: .bytes, logY: true,
                              series: chart { run in run.rounds.map { (Double($0.round), Double(max(1, $0.bytesUp))) } })
        let accuracyRound = LineChart(xLabel: "round", yLabel: "test accuracy", xUnit: .count, yUnit: .percent, yClamp: 0...1,
                                      series: chart { run in run.rounds.compactMap { r in r.accuracy.map { (Double(r.round), $0) } } })
        let accuracyBytes = LineChart(xLabel: "cumulative uplink bytes (log scale)", yLabel: "test accuracy", xUnit: .bytes, yUnit: .percent, logX: true,
                                      yClamp: 0...1, series: chart { run in
                                          var total = 0.0
                                          return run.rounds.compactMap { r in total += Double(r.bytesUp); return r.accuracy.map { (max(1, total), $0) } }
                                      })
        let accuracyTime = LineChart(xLabel: "simulated wall-clock time", yLabel: "test accuracy", xUnit: .seconds, yUnit: .percent, yClamp: 0...1,
                                     series: chart { run in run.rounds.compactMap { r in r.accuracy.map { (r.wallClock, $0) } } })
        let uploads = BoxPlot(rows: colored.map { run, color in BoxPlot.Row(label: run.pipeline, color: color, samples: run.rounds.flatMap(\.uploadTimes).sorted()) },
                              deadline: settings?.deadlineSeconds)
        let rounds = runs.map(\.rounds.count).max() ?? 0
        let participation = participationRows()
        let noAccuracy = "no accuracy (replayed updates are not trained)"
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>
            <title>Uplink simulation: \(scenario.htmlEscaped)</title>
            <style>\(Self.style)</style></head><body>
            <h1>Uplink simulation: \(scenario.htmlEscaped)</h1>
            <p class="note">\(runs.count) pipeline run\(runs.count == 1 ? "" : "s"), \(rounds) round\(rounds == 1 ? "" : "s") each. Data: results.json, rounds.csv.</p>
            <h2>What this says</h2>
            <p id="findings" class="findings">\(findingsProse().html)</p>
            \(settings.map { "<h2>Scenario</h2>\n" + Self.parametersHTML($0, id: "parameters") } ?? "")
            <h2>Pipelines</h2>
            \(Self.table(summaryRows(), id: "summary", wrapParentheses: false))
            <p class="note">frame: mean accepted frame (with none accepted, the mean frame clients started uploading); up/round: every uplink byte sent in a round; upload: time from the end of training to the last byte (completed uploads); round: time to the K-th report or the deadline; reported: reports per round (share of the selected); late: dropped at the deadline; cut: dropped after an interruption; quit: client dropout; accuracy: after the last round; wall clock: simulated time of all rounds.</p>
            <h2>Participation by network</h2>
            \(participation.isEmpty ? "<p class=\"empty\">no client was selected</p>" : Self.table(participation, id: "participation", wrapParentheses: true))
            <p class="note">reports accepted / uploads that made the deadline / clients selected, over all rounds.</p>
            \(Self.figure("in-time-by-network", "Share of the selected clients whose upload made the deadline, by network", participationChart(colors: legend.map(\.color)).svg(), legend: legend, empty: "no client was selected"))
            <h2>Plots</h2>
            \(Self.figure("bytes-per-round", "Uplink bytes per round", bytes.svg(), legend: legend))
            \(Self.figure("upload-times", "Upload time distribution (p5, p25, median, p75, p95)" + (settings == nil ? "" : " and the deadline"), uploads.svg(), legend: nil, empty: "no completed uploads"))
            \(Self.figure("accuracy-round", "Accuracy per round", accuracyRound.svg(), legend: legend, empty: noAccuracy))
            \(Self.figure("accuracy-bytes", "Accuracy against cumulative uplink bytes", accuracyBytes.svg(), legend: legend, empty: noAccuracy))
            \(Self.figure("accuracy-time", "Accuracy against wall-clock time", accuracyTime.svg(), legend: legend, empty: noAccuracy))
            </body></html>

            """
    }

    /// Each series' name with its colour, in order.
    static func legend(_ names: [String]) -> [(name: String, color: String)] {
        names.enumerated().map { i, name in (name, colors[i % colors.count]) }
    }

    /// Per network profile, one bar per pipeline: the share of its selected clients on that
    /// network whose upload made the deadline, with the fit rule's threshold marked.
    func participationChart(colors: [String]) -> GroupedBarChart {
        let summaries = runs.map(Self.summarize)
        return GroupedBarChart(groups: profiles.map { p in
            GroupedBarChart.Group(label: p, bars: zip(summaries, colors).map { s, color in
                let selected = s.selectedByProfile[p] ?? 0, inTime = s.inTimeByProfile[p] ?? 0
                guard selected > 0 else { return .init(series: s.pipeline, color: color, value: nil, label: "not selected", detail: "no client selected") }
                return .init(series: s.pipeline, color: color, value: min(1, Double(inTime) / Double(selected)),
                             label: Self.percent(perMille: Self.perMille(inTime, of: selected)), detail: "\(inTime) of \(selected) selected in time")
            })
        }, xLabel: "share of the selected clients whose upload made the deadline", threshold: Double(Self.fitPerMille) / 1000,
           thresholdLabel: "fits: at least \(Self.percent(perMille: Self.fitPerMille))")
    }

    static let style = """
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1232px}\
        h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}\
        table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:4px 0 6px}\
        th,td{padding:5px 8px;border-bottom:1px solid #e2e2e2;vertical-align:top;text-align:right}\
        th{font-weight:600;border-bottom:2px solid #bbb}td{white-space:nowrap}\
        th:first-child,td:first-child{text-align:left}\
        td.pipeline{white-space:normal;min-width:14em}td.pipeline,.legend li,code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px}\
        td.wrap{white-space:normal}.nw{white-space:nowrap}\
        figure{margin:12px 0 28px}figcaption{font-weight:600;font-size:15px;margin-bottom:6px}\
        svg{display:block;max-width:100%;height:auto;border:1px solid #ddd;background:#fff}\
        ul.legend{list-style:none;padding:0;margin:8px 0 0;display:flex;flex-wrap:wrap;gap:4px 22px}\
        .swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:-1px}\
        p.note{color:#555;max-width:1100px;margin:4px 0}p.empty{color:#888}p.findings{max-width:1100px;margin:4px 0 8px}\
        table.parameters td.text{white-space:normal;text-align:left;overflow-wrap:anywhere}table.parameters th.text{text-align:left}\
        details{margin:6px 0 4px;max-width:1100px}summary{cursor:pointer;color:#444}\
        pre{white-space:pre-wrap;overflow-wrap:anywhere;font:12px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;background:#f7f7f7;padding:8px;margin:6px 0}\
        div.grid{display:flex;flex-wrap:wrap;gap:0 24px}div.grid figure{margin:8px 0 20px}h3{font-size:15px;margin:20px 0 6px}
        """

    /// Rows (header first) as an HTML table: the first column holds pipeline names, which wrap
    /// only between stages; the other cells stay on one line, or with `wrapParentheses` may
    /// break before a parenthesis.
    static func table(_ rows: [[String]], id: String, wrapParentheses: Bool) -> String {
        guard let header = rows.first else { return "" }
        var s = "<table id=\"\(id)\"><thead><tr>" + header.map { "<th>\($0.htmlEscaped)</th>" }.joined() + "</tr></thead><tbody>"
        for row in rows.dropFirst() {
            s += "<tr>"
            for (i, cell) in row.enumerated() {
                if i == 0 {
                    s += "<td class=\"pipeline\">\(pipelineHTML(cell))</td>"
                } else if wrapParentheses, let open = cell.range(of: " (") {
                    let before = String(cell[..<open.lowerBound]), after = "(" + String(cell[open.upperBound...])
                    s += "<td class=\"wrap\"><span class=\"nw\">\(before.htmlEscaped)</span> <span class=\"nw\">\(after.htmlEscaped)</span></td>"
                } else {
                    s += "<td>\(cell.htmlEscaped)</td>"
                }
            }
            s += "</tr>"
        }
        return s + "</tbody></table>"
    }

    /// A pipeline name whose stages stay whole: `ef | topk 1% scope=global` breaks only at a `|`.
    static func pipelineHTML(_ name: String) -> String {
        name.components(separatedBy: " | ").map { "<span class=\"nw\">\($0.htmlEscaped)</span>" }.joined(separator: " | ")
    }

    static func figure(_ id: String, _ title: String, _ svg: String?, legend: [(name: String, color: String)]?, empty: String = "no data") -> String {
        guard let svg else { return "<figure id=\"\(id)\"><figcaption>\(title.htmlEscaped)</figcaption><p class=\"empty\">\(empty.htmlEscaped)</p></figure>" }
        return "<figure id=\"\(id)\"><figcaption>\(title.htmlEscaped)</figcaption>\(svg)" + (legend.map(legendHTML) ?? "") + "</figure>"
    }

    /// A legend: each series' colour swatch and name.
    static func legendHTML(_ legend: [(name: String, color: String)]) -> String {
        "<ul class=\"legend\">" + legend.map { name, color in
            "<li><span class=\"swatch\" style=\"background:\(color)\"></span>\(name.htmlEscaped)</li>"
        }.joined() + "</ul>"
    }
}
