import Foundation

extension String {
    /// The text escaped for HTML and SVG content and attribute values.
    var htmlEscaped: String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for c in self {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}

/// Numbers in SVG coordinates, one decimal.
private func c(_ v: Double) -> String { String(format: "%.1f", v) }

/// A line chart as inline SVG: nice-number axes (``AxisScale``), one line per series and a
/// marker on every point of a short series, so a one-round run shows its points. Titles and
/// legends are HTML around the SVG (``SimulationReport/html()``), where long pipeline names wrap
/// instead of being cut; the SVG holds only short tick and axis labels, placed inside its box.
struct LineChart {
    struct Series {
        var name: String
        var color: String
        var points: [(x: Double, y: Double)]
    }

    var xLabel: String
    var yLabel: String
    var xUnit: AxisUnit
    var yUnit: AxisUnit
    var logX = false
    var logY = false
    /// Bounds the y domain may not leave (accuracy: [0, 1]).
    var yClamp: ClosedRange<Double>? = nil
    /// Values the y axis reaches whatever the data (0 and 1 for a share: the whole 0–100%).
    var yIncludes: [Double] = []
    /// A categorical x axis: x values are indices into these labels, evenly spaced.
    var xCategories: [String]? = nil
    var series: [Series]
    var width = 1100.0, height = 360.0

    static let left = 84.0, right = 40.0, top = 14.0, bottom = 52.0, inset = 8.0
    /// Series with at most this many points get a marker on each.
    static let markerLimit = 60
    /// Vertical room for one row of x tick labels, and the width a character of them may take
    /// (12 px sans-serif), for placing category labels that would collide on extra rows.
    static let tickRow = 15.0, tickCharacterWidth = 7.5

    var xScale: AxisScale? {
        if let categories = xCategories {
            guard !categories.isEmpty, series.contains(where: { !$0.points.isEmpty }) else { return nil }
            return AxisScale(low: -0.5, high: Double(categories.count) - 0.5, ticks: categories.indices.map(Double.init), logarithmic: false)
        }
        return scale(series.flatMap { $0.points.map(\.x) }, log: logX, maxTicks: 10, integer: xUnit == .count, clamp: nil)
    }
    var yScale: AxisScale? {
        let y = series.flatMap { $0.points.map(\.y) }
        return y.isEmpty ? nil : scale(y + yIncludes, log: logY, maxTicks: 7, integer: yUnit == .count, clamp: yClamp)
    }

    private func scale(_ values: [Double], log: Bool, maxTicks: Int, integer: Bool, clamp: ClosedRange<Double>?) -> AxisScale? {
        let v = values.filter { $0.isFinite && (!log || $0 > 0) }
        guard let lo = v.min(), let hi = v.max() else { return nil }
        return log ? AxisScale.log(lo, hi, maxTicks: maxTicks) : AxisScale.linear(lo, hi, maxTicks: maxTicks, integer: integer, clamp: clamp)
    }

    /// The x tick labels, and how many rows they take: category labels too wide for their slot
    /// go on alternate rows (two, three…), so no two labels overlap.
    func xTickLabels(_ xs: AxisScale) -> (labels: [String], rows: Int) {
        guard let categories = xCategories else { return (xUnit.labels(xs), 1) }
        let slot = (width - Self.left - Self.right - 2 * Self.inset) / Double(max(1, categories.count))
        let widest = Double(categories.map(\.count).max() ?? 0) * Self.tickCharacterWidth + 6
        return (categories, max(1, min(categories.count, Int((widest / slot).rounded(.up)))))
    }

    /// A point's x as a tooltip reads it.
    func xText(_ x: Double) -> String {
        if let categories = xCategories, let i = Int(exactly: x), categories.indices.contains(i) { return categories[i] }
        return xUnit.text(x)
    }

    /// The SVG, or nil when no series has a point.
    func svg() -> String? {
        guard let xs = xScale, let ys = yScale else { return nil }
        let (xLabels, labelRows) = xTickLabels(xs)
        let extra = Self.tickRow * Double(labelRows - 1)
        let (w, h) = (width, height + extra)
        let (pw, ph) = (w - Self.left - Self.right, h - Self.top - Self.bottom - extra)
        // The data area sits `inset` inside the frame, so a marker on the domain's edge is drawn whole.
        let inset = Self.inset
        func px(_ v: Double) -> Double { Self.left + inset + xs.fraction(v) * (pw - 2 * inset) }
        func py(_ v: Double) -> Double { Self.top + ph - inset - ys.fraction(v) * (ph - 2 * inset) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-size=\"12\">"
        for (t, label) in zip(ys.ticks, yUnit.labels(ys)) {
            let y = py(t)
            s += "<line x1=\"\(c(Self.left))\" x2=\"\(c(Self.left + pw))\" y1=\"\(c(y))\" y2=\"\(c(y))\" stroke=\"#e4e4e4\"/>"
            s += "<text class=\"tick\" x=\"\(c(Self.left - 8))\" y=\"\(c(y + 4))\" text-anchor=\"end\">\(label.htmlEscaped)</text>"
        }
        for (i, (t, label)) in zip(xs.ticks, xLabels).enumerated() {
            let x = px(t), row = Double(i % labelRows)
            s += "<line x1=\"\(c(x))\" x2=\"\(c(x))\" y1=\"\(c(Self.top))\" y2=\"\(c(Self.top + ph))\" stroke=\"#f0f0f0\"/>"
            s += "<text class=\"tick\" x=\"\(c(x))\" y=\"\(c(Self.top + ph + 17 + Self.tickRow * row))\" text-anchor=\"middle\">\(label.htmlEscaped)</text>"
        }
        s += "<rect x=\"\(c(Self.left))\" y=\"\(c(Self.top))\" width=\"\(c(pw))\" height=\"\(c(ph))\" fill=\"none\" stroke=\"#999\"/>"
        s += "<text x=\"\(c(Self.left + pw / 2))\" y=\"\(c(h - 10))\" text-anchor=\"middle\">\(xLabel.htmlEscaped)</text>"
        let mid = Self.top + ph / 2
        s += "<text x=\"18\" y=\"\(c(mid))\" transform=\"rotate(-90 18 \(c(mid)))\" text-anchor=\"middle\">\(yLabel.htmlEscaped)</text>"
        for line in series {
            let pts = line.points.filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) && (!logY || $0.y > 0) }
            let name = line.name.htmlEscaped
            if pts.count >= 2 {
                s += "<polyline class=\"series\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\" points=\"" + pts.map { "\(c(px($0.x))),\(c(py($0.y)))" }.joined(separator: " ") + "\"><title>\(name)</title></polyline>"
            }
            if pts.count <= Self.markerLimit {
                for p in pts {
                    let at = "\(xText(p.x)), \(yUnit.text(p.y))"
                    s += "<circle class=\"point\" cx=\"\(c(px(p.x)))\" cy=\"\(c(py(p.y)))\" r=\"3.5\" fill=\"\(line.color)\"><title>\(name): \(at.htmlEscaped)</title></circle>"
                }
            }
        }
        return s + "</svg>"
    }
}

/// Box plots of upload times, one row per pipeline: the label on its own line above the box
/// (so a long pipeline name is never cut), whiskers p5–p95, box p25–p75, a bar at the median,
/// on a log axis with nice ticks; the round's deadline, when given, as a dashed vertical line
/// labelled in a band above the rows, inside the axis.
struct BoxPlot {
    struct Row {
        var label: String
        var color: String
        /// Sorted samples.
        var samples: [Double]
    }

    var rows: [Row]
    /// The report deadline in seconds.
    var deadline: Double? = nil
    static let width = 1100.0, rowHeight = 50.0, left = 40.0, right = 40.0, top = 8.0, axisHeight = 40.0, deadlineBand = 20.0

    var scale: AxisScale? {
        let all = rows.flatMap(\.samples).filter { $0 > 0 && $0.isFinite }
        guard let lo = all.min(), let hi = all.max() else { return nil }
        let d = deadline.flatMap { $0 > 0 && $0.isFinite ? $0 : nil }
        return AxisScale.log(min(lo, d ?? lo), max(hi, d ?? hi), maxTicks: 10)
    }

    /// The SVG, or nil when no row has a completed upload.
    func svg() -> String? {
        guard let xs = scale else { return nil }
        let w = Self.width, pw = w - Self.left - Self.right
        let band = deadline == nil ? 0 : Self.deadlineBand
        let top = Self.top + band
        let h = top + Self.rowHeight * Double(rows.count) + Self.axisHeight
        func px(_ v: Double) -> Double { Self.left + max(0, min(1, xs.fraction(v))) * pw }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-size=\"12\">"
        let axisY = h - Self.axisHeight
        for (t, label) in zip(xs.ticks, AxisUnit.seconds.labels(xs)) {
            let x = px(t)
            s += "<line x1=\"\(c(x))\" x2=\"\(c(x))\" y1=\"\(c(top))\" y2=\"\(c(axisY))\" stroke=\"#eee\"/>"
            s += "<text class=\"tick\" x=\"\(c(x))\" y=\"\(c(axisY + 17))\" text-anchor=\"middle\">\(label.htmlEscaped)</text>"
        }
        s += "<line x1=\"\(c(Self.left))\" x2=\"\(c(Self.left + pw))\" y1=\"\(c(axisY))\" y2=\"\(c(axisY))\" stroke=\"#999\"/>"
        s += "<text x=\"\(c(Self.left + pw / 2))\" y=\"\(c(h - 4))\" text-anchor=\"middle\">upload time (log scale)</text>"
        if let deadline {
            let x = px(deadline), label = "deadline \(SimulationReport.seconds(deadline))"
            // The label runs away from the nearer edge, so it stays inside the plot.
            let (lx, anchor) = x > Self.left + pw / 2 ? (x - 5, "end") : (x + 5, "start")
            s += "<line class=\"deadline\" x1=\"\(c(x))\" x2=\"\(c(x))\" y1=\"\(c(Self.top + 2))\" y2=\"\(c(axisY))\" stroke=\"#444\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>"
            s += "<text class=\"deadline\" x=\"\(c(lx))\" y=\"\(c(Self.top + 13))\" text-anchor=\"\(anchor)\">\(label.htmlEscaped)</text>"
        }
        for (i, row) in rows.enumerated() {
            let y0 = top + Self.rowHeight * Double(i)
            s += "<text class=\"label\" x=\"\(c(Self.left))\" y=\"\(c(y0 + 13))\" font-family=\"ui-monospace, monospace\">\(row.label.htmlEscaped)</text>"
            let y = y0 + 32
            let q = [0.05, 0.25, 0.5, 0.75, 0.95].compactMap { SimulationReport.quantile(row.samples, $0) }
            guard q.count == 5 else {
                s += "<text x=\"\(c(Self.left))\" y=\"\(c(y + 4))\" fill=\"#888\">no completed uploads</text>"
                continue
            }
            let col = row.color
            s += "<line x1=\"\(c(px(q[0])))\" x2=\"\(c(px(q[4])))\" y1=\"\(c(y))\" y2=\"\(c(y))\" stroke=\"\(col)\"/>"
            s += "<rect x=\"\(c(px(q[1])))\" y=\"\(c(y - 9))\" width=\"\(c(max(2, px(q[3]) - px(q[1]))))\" height=\"18\" fill=\"\(col)\" fill-opacity=\"0.35\" stroke=\"\(col)\"/>"
            let summary = "p5 \(AxisUnit.seconds.text(q[0])), p25 \(AxisUnit.seconds.text(q[1])), median \(AxisUnit.seconds.text(q[2])), p75 \(AxisUnit.seconds.text(q[3])), p95 \(AxisUnit.seconds.text(q[4]))"
            s += "<line class=\"median\" x1=\"\(c(px(q[2])))\" x2=\"\(c(px(q[2])))\" y1=\"\(c(y - 11))\" y2=\"\(c(y + 11))\" stroke=\"\(col)\" stroke-width=\"3\"><title>\(summary.htmlEscaped)</title></line>"
        }
        return s + "</svg>"
    }
}

/// Shares in [0, 1] as horizontal bars, grouped (by network profile): each group's label on its
/// own line, then one bar per series (pipeline) with its value at the bar's end, on a 0–100%
/// axis; `threshold`, when given, as a dashed vertical line labelled in a band above the groups.
/// Like ``BoxPlot``, it grows downwards, so long labels and many bars are never cut.
struct GroupedBarChart {
    struct Bar {
        var series: String
        var color: String
        /// The share, or nil when there is nothing to measure (no client was selected).
        var value: Double?
        /// The text at the bar's end ("89.6%"), or in its place without a value ("not selected").
        var label: String
        /// The tooltip's detail: "112 of 125 selected in time".
        var detail: String
    }

    struct Group {
        var label: String
        var bars: [Bar]
    }

    var groups: [Group]
    var xLabel: String
    var threshold: Double? = nil
    var thresholdLabel = ""

    static let width = 1100.0, left = 40.0, right = 60.0, top = 8.0, band = 20.0, axisHeight = 40.0
    static let labelHeight = 20.0, barPitch = 17.0, barHeight = 12.0, groupGap = 10.0
    static let scale = AxisScale.linear(0, 1, maxTicks: 6)

    /// The SVG, or nil when there is no bar.
    func svg() -> String? {
        guard groups.contains(where: { !$0.bars.isEmpty }) else { return nil }
        let (w, pw, xs) = (Self.width, Self.width - Self.left - Self.right, Self.scale)
        let bodyTop = Self.top + (threshold == nil ? 0 : Self.band)
        let axisY = bodyTop + groups.reduce(0) { $0 + Self.labelHeight + Self.barPitch * Double($1.bars.count) + Self.groupGap }
        let h = axisY + Self.axisHeight
        func px(_ v: Double) -> Double { Self.left + max(0, min(1, xs.fraction(v))) * pw }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-size=\"12\">"
        for (t, label) in zip(xs.ticks, AxisUnit.percent.labels(xs)) {
            let x = px(t)
            s += "<line x1=\"\(c(x))\" x2=\"\(c(x))\" y1=\"\(c(bodyTop))\" y2=\"\(c(axisY))\" stroke=\"#eee\"/>"
            s += "<text class=\"tick\" x=\"\(c(x))\" y=\"\(c(axisY + 17))\" text-anchor=\"middle\">\(label.htmlEscaped)</text>"
        }
        s += "<line x1=\"\(c(Self.left))\" x2=\"\(c(Self.left + pw))\" y1=\"\(c(axisY))\" y2=\"\(c(axisY))\" stroke=\"#999\"/>"
        s += "<text x=\"\(c(Self.left + pw / 2))\" y=\"\(c(h - 4))\" text-anchor=\"middle\">\(xLabel.htmlEscaped)</text>"
        if let threshold {
            let x = px(threshold)
            let (lx, anchor) = x > Self.left + pw / 2 ? (x - 5, "end") : (x + 5, "start")
            s += "<line class=\"threshold\" x1=\"\(c(x))\" x2=\"\(c(x))\" y1=\"\(c(Self.top + 2))\" y2=\"\(c(axisY))\" stroke=\"#444\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>"
            s += "<text class=\"threshold\" x=\"\(c(lx))\" y=\"\(c(Self.top + 13))\" text-anchor=\"\(anchor)\">\(thresholdLabel.htmlEscaped)</text>"
        }
        var y = bodyTop
        for group in groups {
            s += "<text class=\"label\" x=\"\(c(Self.left))\" y=\"\(c(y + 13))\" font-weight=\"600\">\(group.label.htmlEscaped)</text>"
            y += Self.labelHeight
            for bar in group.bars {
                if let v = bar.value {
                    s += "<rect class=\"bar\" x=\"\(c(Self.left))\" y=\"\(c(y))\" width=\"\(c(px(v) - Self.left))\" height=\"\(c(Self.barHeight))\" fill=\"\(bar.color)\"><title>\("\(bar.series) on \(group.label): \(bar.detail)".htmlEscaped)</title></rect>"
                    s += "<text class=\"value\" x=\"\(c(px(v) + 4))\" y=\"\(c(y + Self.barHeight - 2))\" font-size=\"11\">\(bar.label.htmlEscaped)</text>"
                } else {
                    s += "<text class=\"value\" x=\"\(c(Self.left + 4))\" y=\"\(c(y + Self.barHeight - 2))\" font-size=\"11\" fill=\"#888\">\(bar.label.htmlEscaped)</text>"
                }
                y += Self.barPitch
            }
            y += Self.groupGap
        }
        return s + "</svg>"
    }
}
