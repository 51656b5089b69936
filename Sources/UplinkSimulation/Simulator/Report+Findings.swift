import Foundation

/// Text whose pipeline names are marked, so the terminal prints them as they are and the HTML
/// report sets them in code type: `"\(pipeline: name) fits on \(networks)"`.
struct Prose: ExpressibleByStringInterpolation, Sendable {
    enum Part: Sendable {
        case text(String)
        case pipeline(String)
    }

    var parts: [Part]

    init(parts: [Part]) { self.parts = parts }
    init(stringLiteral value: String) { parts = [.text(value)] }
    init(stringInterpolation: StringInterpolation) { parts = stringInterpolation.parts }

    struct StringInterpolation: StringInterpolationProtocol {
        var parts: [Part] = []
        init(literalCapacity: Int, interpolationCount: Int) {}
        mutating func appendLiteral(_ literal: String) { parts.append(.text(literal)) }
        mutating func appendInterpolation(_ text: String) { parts.append(.text(text)) }
        mutating func appendInterpolation(pipeline: String) { parts.append(.pipeline(pipeline)) }
        mutating func appendInterpolation(_ prose: Prose) { parts += prose.parts }
    }

    /// The text for a terminal.
    var plain: String {
        parts.map { part in
            switch part {
            case .text(let s), .pipeline(let s): s
            }
        }.joined()
    }

    /// The text as HTML, pipeline names in `<code>` whose stages break only at a `|`.
    var html: String {
        parts.map { part in
            switch part {
            case .text(let s): s.htmlEscaped
            case .pipeline(let s): "<code>" + SimulationReport.pipelineHTML(s) + "</code>"
            }
        }.joined()
    }

    /// Items joined as English lists them: "a", "a and b", "a, b and c"; with a `separator`
    /// (items that hold "and" themselves) every item is separated by it: "a; b; c".
    static func list(_ items: [Prose], separator: String? = nil) -> Prose {
        var parts: [Part] = []
        for (i, item) in items.enumerated() {
            if i > 0 { parts.append(.text(separator ?? (i == items.count - 1 ? " and " : ", "))) }
            parts += item.parts
        }
        return Prose(parts: parts)
    }

    /// Sentences joined by spaces.
    static func paragraph(_ sentences: [Prose]) -> Prose {
        Prose(parts: Array(sentences.map(\.parts).joined(separator: [.text(" ")])))
    }
}

extension SimulationReport {
    /// A pipeline fits a network when at least this many per mille of the clients selected on
    /// that network had their upload in by the deadline.
    static let fitPerMille = 900

    /// The share of `selected` that `inTime` is, in per mille rounded down, exactly (so a share
    /// shown as 90.0% is at least 90%, and the fit rule and the text cannot disagree).
    static func perMille(_ inTime: Int, of selected: Int) -> Int {
        guard selected > 0 else { return 0 }
        return selected.dividingFullWidth(max(0, inTime).multipliedFullWidth(by: 1000)).quotient
    }

    /// A per mille value as a percentage with one decimal: 958 → "95.8%".
    static func percent(perMille p: Int) -> String { "\(p / 10).\(p % 10)%" }

    /// A difference of two accuracies in points, signed: "+0.27", "−1.10" (a zero is "+0.00").
    static func points(_ a: Double, _ b: Double) -> String {
        let s = String(format: "%+.2f", 100 * (a - b))
        return s == "-0.00" ? "+0.00" : s.replacingOccurrences(of: "-", with: "−")
    }

    /// "N× smaller" for a frame against the baseline's (both positive).
    static func smaller(_ frame: Double, than base: Double) -> String {
        if frame == base { return "the same size" }
        let r = base / frame
        return String(format: r < 10 ? "%.1f× smaller" : "%.0f× smaller", r)
    }

    /// What the numbers say, in one paragraph for the terminal (after the tables) and the top of
    /// the HTML report: which pipelines fit the deadline on which networks (the rule is stated
    /// in the text), the baseline (the pipeline with the largest mean frame) and every other
    /// pipeline's frame against it, and the accuracy cost, with the one-seed caveat. Every
    /// number comes from ``summarize(_:)``.
    public func findings() -> String { findingsProse().plain }

    func findingsProse() -> Prose {
        let summaries = runs.map(Self.summarize)
        var sentences: [Prose] = []
        let deadline = settings.map { " (\(Self.seconds($0.deadlineSeconds)))" } ?? ""
        sentences.append("A pipeline fits a network when at least \(Self.percent(perMille: Self.fitPerMille)) of the clients selected on it had their upload in by the deadline\(deadline).")
        let profiles = profiles
        if profiles.isEmpty {
            sentences.append("No client was selected, so no pipeline can be judged against the deadline.")
        } else {
            sentences += summaries.map { Self.fitSentence($0, profiles: profiles) }
            if summaries.count > 1 { sentences += Self.unfitNetworks(summaries, profiles: profiles) }
        }
        sentences += comparison(summaries)
        return Prose.paragraph(sentences)
    }

    /// Where one pipeline fits: "fp32 | stored fits on 5G and WiFi but not on 3G (8.0% in time)."
    static func fitSentence(_ s: Summary, profiles: [String]) -> Prose {
        let judged = profiles.filter { (s.selectedByProfile[$0] ?? 0) > 0 }
        guard !judged.isEmpty else { return "\(pipeline: s.pipeline): no client was selected." }
        let share = { (p: String) in perMille(s.inTimeByProfile[p] ?? 0, of: s.selectedByProfile[p] ?? 0) }
        let fits = judged.filter { share($0) >= fitPerMille }, misses = judged.filter { share($0) < fitPerMille }
        let missed = Prose.list(misses.map { "\($0) (\(percent(perMille: share($0))) in time)" })
        var sentence: Prose
        if misses.isEmpty {
            let lowest = judged.min { share($0) < share($1) }!
            let scope = judged.count == profiles.count ? "every network" : "every network it was selected on"
            sentence = "\(pipeline: s.pipeline) fits on \(scope) (the lowest: \(lowest), \(percent(perMille: share(lowest))) in time)"
        } else if fits.isEmpty {
            sentence = "\(pipeline: s.pipeline) fits on no network: \(missed)"
        } else {
            sentence = "\(pipeline: s.pipeline) fits on \(Prose.list(fits.map { Prose(stringLiteral: $0) })) but not on \(missed)"
        }
        let unselected = profiles.filter { !judged.contains($0) }
        if !unselected.isEmpty { sentence = "\(sentence); no client was selected on \(Prose.list(unselected.map { Prose(stringLiteral: $0) }))" }
        return "\(sentence)."
    }

    /// The networks on which no pipeline fits, each with the pipeline closest to fitting, in
    /// one sentence (none when every network has a pipeline that fits).
    static func unfitNetworks(_ summaries: [Summary], profiles: [String]) -> [Prose] {
        let unfit = profiles.compactMap { p -> Prose? in
            let shares = summaries.compactMap { s -> (pipeline: String, share: Int)? in
                let selected = s.selectedByProfile[p] ?? 0
                return selected > 0 ? (s.pipeline, perMille(s.inTimeByProfile[p] ?? 0, of: selected)) : nil
            }
            guard let best = shares.map(\.share).max(), best < fitPerMille else { return nil }
            let closest = shares.first { $0.share == best }!
            return best == 0 ? "\(p) (no upload in time)" : "\(p) (the closest: \(pipeline: closest.pipeline), \(percent(perMille: best)) in time)"
        }
        return unfit.isEmpty ? [] : ["No pipeline fits on \(Prose.list(unfit))."]
    }

    /// The baseline, the other pipelines' frames against it, and the accuracy cost.
    func comparison(_ summaries: [Summary]) -> [Prose] {
        let bytes = AxisUnit.bytes.text, accuracy = AxisUnit.percent.text
        guard let top = summaries.map(\.meanAcceptedFrameBytes).max(), top > 0 else {
            return ["No report was accepted, so there are no frames or accuracy to compare."]
        }
        let baseIndex = summaries.firstIndex { $0.meanAcceptedFrameBytes == top }!
        let base = summaries[baseIndex]
        let lastRounds = { (s: Summary) in "the last \(s.lastRounds == 1 ? "round" : "\(s.lastRounds) rounds")" }
        guard summaries.count > 1 else {
            var sentences: [Prose] = ["Only one pipeline ran (mean frame \(bytes(top))), so there is no baseline to compare with."]
            if let final = base.finalAccuracy, let last = base.lastRoundsAccuracy {
                sentences.append("Its accuracy is \(accuracy(final)) after the last round and \(accuracy(last)) over \(lastRounds(base)) (one seed).")
            } else {
                sentences.append("There is no accuracy (replayed updates are not trained).")
            }
            return sentences
        }
        let others = summaries.indices.filter { $0 != baseIndex }.map { summaries[$0] }
        var sentences: [Prose] = []
        let frames = Prose.list(others.map { s in
            s.meanAcceptedFrameBytes > 0 ? "\(pipeline: s.pipeline) \(bytes(s.meanAcceptedFrameBytes)) (\(Self.smaller(s.meanAcceptedFrameBytes, than: top)))"
                : "\(pipeline: s.pipeline) no accepted report"
        })
        sentences.append("The baseline is \(pipeline: base.pipeline), the pipeline with the largest mean frame (\(bytes(top))); mean frames against it: \(frames).")
        guard let baseFinal = base.finalAccuracy, let baseLast = base.lastRoundsAccuracy else {
            let any = summaries.contains { $0.finalAccuracy != nil }
            sentences.append(any ? "The baseline has no accuracy to compare with." : "There is no accuracy to compare (replayed updates are not trained).")
            return sentences
        }
        let costs = others.map { s -> Prose in
            guard let final = s.finalAccuracy, let last = s.lastRoundsAccuracy else { return "\(pipeline: s.pipeline) no accuracy" }
            let over = s.lastRounds == base.lastRounds ? "" : " over \(lastRounds(s))"
            return "\(pipeline: s.pipeline) \(accuracy(final)) (\(Self.points(final, baseFinal)) points) and \(accuracy(last)) (\(Self.points(last, baseLast)) points)\(over)"
        }
        sentences.append("Accuracy after the last round, and over \(lastRounds(base)): \(pipeline: base.pipeline) (the baseline) \(accuracy(baseFinal)) and \(accuracy(baseLast)); \(Prose.list(costs, separator: "; ")).")
        let seed = settings.map { " (seed \($0.seed))" } ?? ""
        sentences.append("This is one seed\(seed): accuracy differences of about a point are within seed noise on the digits task (docs/results.md).")
        return sentences
    }

    /// Seconds as a parameter reads: "45 s", "7.5 s".
    static func seconds(_ s: Double) -> String { String(format: "%g s", s) }
}
