import Foundation

/// Summary statistics and the outputs of a simulation: terminal table, JSON, CSV and an HTML
/// report with inline SVG plots (no scripts, no external assets).
public struct SimulationReport: Sendable, Codable {
    public var scenario: String
    public var runs: [PipelineRun]

    public init(scenario: String, runs: [PipelineRun]) {
        self.scenario = scenario
        self.runs = runs
    }

    /// A value of a sorted sample at quantile q (nearest rank).
    static func quantile(_ sorted: [Double], _ q: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        return sorted[min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - (q == 0 ? 0 : 1))]
    }

    public struct Summary: Sendable {
        public var pipeline: String
        public var meanBytesUpPerRound: Double
        public var meanAcceptedFrameBytes: Double
        public var uploadP50: Double?
        public var uploadP95: Double?
        public var uploadMax: Double?
        public var meanRoundSeconds: Double
        public var reportedPerRound: Double
        public var droppedDeadline: Int
        public var droppedInterruption: Int
        public var droppedDropout: Int
        public var participation: Double
        public var finalAccuracy: Double?
        public var totalBytesUp: Int
        public var wallClock: Double
    }

    public static func summarize(_ run: PipelineRun) -> Summary {
        let r = run.rounds
        let times = r.flatMap(\.uploadTimes).sorted()
        let reported = r.reduce(0) { $0 + $1.reported }
        let selected = r.reduce(0) { $0 + $1.selected }
        return Summary(
            pipeline: run.pipeline,
            meanBytesUpPerRound: Double(r.reduce(0) { $0 + $1.bytesUp }) / Double(r.count),
            meanAcceptedFrameBytes: reported == 0 ? 0 : Double(r.reduce(0) { $0 + $1.acceptedBytes }) / Double(reported),
            uploadP50: quantile(times, 0.5), uploadP95: quantile(times, 0.95), uploadMax: times.last,
            meanRoundSeconds: r.reduce(0) { $0 + $1.duration } / Double(r.count),
            reportedPerRound: Double(reported) / Double(r.count),
            droppedDeadline: r.reduce(0) { $0 + $1.droppedDeadline }, droppedInterruption: r.reduce(0) { $0 + $1.droppedInterruption },
            droppedDropout: r.reduce(0) { $0 + $1.droppedDropout },
            participation: selected == 0 ? 0 : Double(reported) / Double(selected),
            finalAccuracy: r.last?.accuracy, totalBytesUp: r.reduce(0) { $0 + $1.bytesUp }, wallClock: r.last?.wallClock ?? 0)
    }

    /// The comparison table for a terminal.
    public func table() -> String {
        func bytes(_ b: Double) -> String {
            b >= 1e6 ? String(format: "%.2f MB", b / 1e6) : b >= 1e3 ? String(format: "%.1f kB", b / 1e3) : String(format: "%.0f B", b)
        }
        func secs(_ s: Double?) -> String { s.map { String(format: "%.2f s", $0) } ?? "—" }
        let dp = runs.contains { $0.rounds.last?.epsilon != nil }
        let header = ["pipeline", "frame", "up/round", "upload p50", "p95", "max", "round", "reported", "late", "cut", "quit", "accuracy", "wall clock"] + (dp ? ["rounds", "ε"] : [])
        var rows = [header]
        for run in runs {
            let s = Self.summarize(run)
            var row: [String] = [
                s.pipeline, bytes(s.meanAcceptedFrameBytes), bytes(s.meanBytesUpPerRound), secs(s.uploadP50), secs(s.uploadP95), secs(s.uploadMax),
                secs(s.meanRoundSeconds), String(format: "%.1f (%.0f%%)", s.reportedPerRound, 100 * s.participation),
                String(s.droppedDeadline), String(s.droppedInterruption), String(s.droppedDropout),
            ]
            row.append(s.finalAccuracy.map { String(format: "%.2f%%", 100 * $0) } ?? "—")
            row.append(String(format: "%.0f s", s.wallClock))
            if dp {
                row.append(String(run.rounds.count))
                row.append(run.rounds.last?.epsilon.map { String(format: "%.3f", $0) } ?? "—")
            }
            rows.append(row)
        }
        return Self.columns(rows)
    }

    /// Participation per network profile over all rounds: reports accepted / updates that made
    /// the deadline / clients selected.
    public func participationTable() -> String {
        let profiles = Array(Set(runs.flatMap { $0.rounds.flatMap { $0.selectedByProfile.keys } })).sorted()
        guard !profiles.isEmpty else { return "" }
        var rows = [["reported / in time / selected"] + profiles]
        for run in runs {
            var row = [run.pipeline]
            for p in profiles {
                let sel = run.rounds.reduce(0) { $0 + ($1.selectedByProfile[p] ?? 0) }
                let rep = run.rounds.reduce(0) { $0 + ($1.reportedByProfile[p] ?? 0) }
                let inTime = run.rounds.reduce(0) { $0 + ($1.inTimeByProfile[p] ?? 0) }
                row.append(sel == 0 ? "—" : String(format: "%d / %d / %d (%.0f%% in time)", rep, inTime, sel, 100 * Double(inTime) / Double(sel)))
            }
            rows.append(row)
        }
        return Self.columns(rows)
    }

    /// Rows as aligned text columns (first column left-aligned, the rest right-aligned) with a
    /// rule under the header row.
    static func columns(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
        return rows.enumerated().map { i, row in
            let line = row.enumerated().map { c, cell in c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - cell.count) + cell }.joined(separator: "  ")
            return i == 0 ? line + "\n" + String(repeating: "-", count: line.count) : line
        }.joined(separator: "\n")
    }

    /// One CSV row per pipeline and round.
    public func csv() -> String {
        var lines = ["pipeline,round,selected,reported,dropped_deadline,dropped_interruption,dropped_dropout,surplus,bytes_up,bytes_down,upload_p50_s,upload_p95_s,upload_max_s,duration_s,wall_clock_s,accuracy,budget_fitted"]
        for run in runs {
            for r in run.rounds {
                let t = r.uploadTimes.sorted()
                let q = { (x: Double) in Self.quantile(t, x).map { String(format: "%.4f", $0) } ?? "" }
                lines.append("\"\(run.pipeline)\",\(r.round),\(r.selected),\(r.reported),\(r.droppedDeadline),\(r.droppedInterruption),\(r.droppedDropout),\(r.surplus),\(r.bytesUp),\(r.bytesDown),\(q(0.5)),\(q(0.95)),\(t.last.map { String(format: "%.4f", $0) } ?? ""),\(String(format: "%.4f", r.duration)),\(String(format: "%.4f", r.wallClock)),\(r.accuracy.map { String(format: "%.4f", $0) } ?? ""),\(r.budgetFitted)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// JSON of every round of every pipeline, with the summaries.
    public func json() -> Data {
        var object: [String: Any] = ["scenario": scenario]
        object["pipelines"] = runs.map { run -> [String: Any] in
            let s = Self.summarize(run)
            var summary: [String: Any] = [
                "mean_bytes_up_per_round": s.meanBytesUpPerRound, "mean_frame_bytes": s.meanAcceptedFrameBytes,
                "mean_round_seconds": s.meanRoundSeconds, "reported_per_round": s.reportedPerRound, "participation": s.participation,
                "dropped_deadline": s.droppedDeadline, "dropped_interruption": s.droppedInterruption, "dropped_dropout": s.droppedDropout,
                "total_bytes_up": s.totalBytesUp, "wall_clock_seconds": s.wallClock,
            ]
            if let v = s.uploadP50 { summary["upload_p50_seconds"] = v }
            if let v = s.uploadP95 { summary["upload_p95_seconds"] = v }
            if let v = s.uploadMax { summary["upload_max_seconds"] = v }
            if let v = s.finalAccuracy { summary["final_accuracy"] = v }
            if let p = run.privacy { summary["privacy"] = p.jsonObject }
            return [
                "pipeline": run.pipeline, "summary": summary,
                "rounds": run.rounds.map { r -> [String: Any] in
                    let t = r.uploadTimes.sorted()
                    var row: [String: Any] = [
                        "round": r.round, "selected": r.selected, "reported": r.reported, "dropped_deadline": r.droppedDeadline,
                        "dropped_interruption": r.droppedInterruption, "dropped_dropout": r.droppedDropout, "surplus": r.surplus,
                        "bytes_up": r.bytesUp, "bytes_down": r.bytesDown, "duration_seconds": r.duration, "wall_clock_seconds": r.wallClock,
                        "budget_fitted": r.budgetFitted, "upload_seconds": t,
                        "selected_by_profile": r.selectedByProfile, "reported_by_profile": r.reportedByProfile,
                        "in_time_by_profile": r.inTimeByProfile,
                    ]
                    if let a = r.accuracy { row["accuracy"] = a }
                    if let e = r.epsilon { row["epsilon"] = e }
                    if let q = r.samplingRate { row["sampling_rate"] = q }
                    return row
                },
            ]
        }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    }

    /// A self-contained HTML page: the table and four SVG plots.
    public func html() -> String {
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
        func series(_ f: (PipelineRun) -> [(Double, Double)]) -> [(String, String, [(Double, Double)])] {
            runs.enumerated().map { (i, run) in (run.pipeline, colors[i % colors.count], f(run)) }
        }
        let bytesPlot = SVGPlot(title: "Uplink bytes per round", xLabel: "round", yLabel: "bytes (log)", logY: true,
                                series: series { run in run.rounds.map { (Double($0.round), Double(max(1, $0.bytesUp))) } })
        let accBytes = SVGPlot(title: "Accuracy against cumulative uplink bytes", xLabel: "cumulative uplink bytes (log)", yLabel: "test accuracy", logX: true,
                               series: series { run in
                                   var total = 0.0
                                   return run.rounds.compactMap { r in total += Double(r.bytesUp); return r.accuracy.map { (max(1, total), $0) } }
                               })
        let accTime = SVGPlot(title: "Accuracy against wall-clock time", xLabel: "simulated seconds", yLabel: "test accuracy",
                              series: series { run in run.rounds.compactMap { r in r.accuracy.map { (r.wallClock, $0) } } })
        let box = SVGPlot.boxes(title: "Upload time distribution (p5, p25, p50, p75, p95; log)", labels: runs.map(\.pipeline), colors: colors,
                                samples: runs.map { $0.rounds.flatMap(\.uploadTimes).sorted() })
        let esc = { (s: String) in s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>Uplink simulation: \(esc(scenario))</title>
            <style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}pre{background:#f6f6f6;padding:1em;overflow-x:auto}
            svg{margin:1em 0;border:1px solid #ddd}</style></head><body>
            <h1>Uplink simulation: \(esc(scenario))</h1>
            <pre>\(esc(table()))</pre>
            <h2>Participation by network</h2>
            <pre>\(esc(participationTable()))</pre>
            <p>late: dropped at the deadline; cut: dropped after an interruption; quit: client dropout. Data: results.json, rounds.csv.</p>
            \(bytesPlot.svg())\(box)\(accBytes.svg())\(accTime.svg())
            </body></html>
            """
    }
}

/// A minimal SVG line chart.
struct SVGPlot {
    var title: String
    var xLabel: String
    var yLabel: String
    var logX = false
    var logY = false
    var series: [(String, String, [(Double, Double)])]
    let w = 1200.0, h = 420.0, left = 80.0, right = 420.0, top = 40.0, bottom = 50.0

    func svg() -> String {
        let points = series.flatMap(\.2)
        guard !points.isEmpty else { return "<p>\(title): no data</p>" }
        func tx(_ v: Double) -> Double { logX ? log10(max(v, 1e-12)) : v }
        func ty(_ v: Double) -> Double { logY ? log10(max(v, 1e-12)) : v }
        var (x0, x1) = (points.map { tx($0.0) }.min()!, points.map { tx($0.0) }.max()!)
        var (y0, y1) = (points.map { ty($0.1) }.min()!, points.map { ty($0.1) }.max()!)
        if x1 == x0 { x1 = x0 + 1 }
        if y1 == y0 { y1 = y0 + 1; y0 -= 1 }
        let pw = w - left - right, ph = h - top - bottom
        func px(_ v: Double) -> Double { left + (tx(v) - x0) / (x1 - x0) * pw }
        func py(_ v: Double) -> Double { top + ph - (ty(v) - y0) / (y1 - y0) * ph }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-size=\"12\">"
        s += "<text x=\"\(w / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(title)</text>"
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#999\"/>"
        for i in 0...4 {
            let fx = x0 + (x1 - x0) * Double(i) / 4, fy = y0 + (y1 - y0) * Double(i) / 4
            let xv = logX ? pow(10, fx) : fx, yv = logY ? pow(10, fy) : fy
            let xpos = left + pw * Double(i) / 4, ypos = top + ph - ph * Double(i) / 4
            s += "<text x=\"\(xpos)\" y=\"\(top + ph + 16)\" text-anchor=\"middle\">\(Self.fmt(xv))</text>"
            s += "<text x=\"\(left - 6)\" y=\"\(ypos + 4)\" text-anchor=\"end\">\(Self.fmt(yv))</text>"
            s += "<line x1=\"\(left)\" x2=\"\(left + pw)\" y1=\"\(ypos)\" y2=\"\(ypos)\" stroke=\"#eee\"/>"
        }
        s += "<text x=\"\(left + pw / 2)\" y=\"\(h - 10)\" text-anchor=\"middle\">\(xLabel)</text>"
        s += "<text x=\"16\" y=\"\(top + ph / 2)\" transform=\"rotate(-90 16 \(top + ph / 2))\" text-anchor=\"middle\">\(yLabel)</text>"
        for (i, (name, color, pts)) in series.enumerated() {
            if !pts.isEmpty {
                s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"" + pts.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ") + "\"/>"
            }
            let ly = top + 14 + Double(i) * 18
            s += "<rect x=\"\(w - right + 12)\" y=\"\(ly - 9)\" width=\"12\" height=\"12\" fill=\"\(color)\"/>"
            s += "<text x=\"\(w - right + 30)\" y=\"\(ly + 1)\">\(name.replacingOccurrences(of: "&", with: "&amp;"))</text>"
        }
        return s + "</svg>"
    }

    static func boxes(title: String, labels: [String], colors: [String], samples: [[Double]]) -> String {
        let all = samples.flatMap { $0 }.filter { $0 > 0 }
        guard let lo = all.min(), let hi = all.max() else { return "<p>\(title): no completed uploads</p>" }
        let w = 1000.0, rowH = 34.0, left = 300.0, right = 40.0, top = 40.0
        let h = top + rowH * Double(labels.count) + 40
        let (a, b) = (log10(lo), max(log10(hi), log10(lo) + 1e-6))
        func px(_ v: Double) -> Double { left + (log10(max(v, lo)) - a) / (b - a) * (w - left - right) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-size=\"12\">"
        s += "<text x=\"\(w / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(title)</text>"
        for i in 0...4 {
            let v = pow(10, a + (b - a) * Double(i) / 4)
            let x = left + (w - left - right) * Double(i) / 4
            s += "<line x1=\"\(x)\" x2=\"\(x)\" y1=\"\(top)\" y2=\"\(h - 30)\" stroke=\"#eee\"/><text x=\"\(x)\" y=\"\(h - 14)\" text-anchor=\"middle\">\(fmt(v)) s</text>"
        }
        for (i, label) in labels.enumerated() {
            let y = top + rowH * Double(i) + rowH / 2
            s += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(label.replacingOccurrences(of: "&", with: "&amp;"))</text>"
            let sorted = samples[i]
            guard let q5 = SimulationReport.quantile(sorted, 0.05), let q25 = SimulationReport.quantile(sorted, 0.25),
                  let q50 = SimulationReport.quantile(sorted, 0.5), let q75 = SimulationReport.quantile(sorted, 0.75),
                  let q95 = SimulationReport.quantile(sorted, 0.95) else {
                s += "<text x=\"\(left + 8)\" y=\"\(y + 4)\" fill=\"#999\">no completed uploads</text>"
                continue
            }
            let c = colors[i % colors.count]
            s += "<line x1=\"\(px(q5))\" x2=\"\(px(q95))\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"\(c)\"/>"
            s += "<rect x=\"\(px(q25))\" y=\"\(y - 10)\" width=\"\(max(1, px(q75) - px(q25)))\" height=\"20\" fill=\"\(c)\" fill-opacity=\"0.35\" stroke=\"\(c)\"/>"
            s += "<line x1=\"\(px(q50))\" x2=\"\(px(q50))\" y1=\"\(y - 10)\" y2=\"\(y + 10)\" stroke=\"\(c)\" stroke-width=\"3\"/>"
        }
        return s + "</svg>"
    }

    static func fmt(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1e9 { return String(format: "%.3gG", v / 1e9) }
        if a >= 1e6 { return String(format: "%.3gM", v / 1e6) }
        if a >= 1e3 { return String(format: "%.3gk", v / 1e3) }
        return String(format: "%.3g", v)
    }
}
