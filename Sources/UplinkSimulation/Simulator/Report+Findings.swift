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
            sentences += profiles.flatMap { Self.networkSentences($0, summaries) }
        }
        sentences += comparison(summaries)
        return Prose.paragraph(sentences)
    }

    /// Which pipelines fit one network: "On 3G, ef | topk 1% | int8 | lz4 fits (95.0% in time);
    /// fp32 | stored (8.0%) does not." When too few clients there even got to upload (the
    /// download and training took past the deadline), a second sentence says so: no uplink
    /// pipeline can fix that.
    static func networkSentences(_ network: String, _ summaries: [Summary]) -> [Prose] {
        let judged = summaries.filter { ($0.selectedByProfile[network] ?? 0) > 0 }
        guard !judged.isEmpty else { return [] }
        let share = { (s: Summary) in perMille(s.inTimeByProfile[network] ?? 0, of: s.selectedByProfile[network] ?? 0) }
        let fits = judged.filter { share($0) >= fitPerMille }, misses = judged.filter { share($0) < fitPerMille }
        var sentence: Prose
        if misses.isEmpty {
            let lowest = judged.min { share($0) < share($1) }!
            sentence = judged.count == 1 ? "On \(network), \(pipeline: lowest.pipeline) fits (\(percent(perMille: share(lowest))) in time)"
                : "On \(network), every pipeline fits (the lowest: \(pipeline: lowest.pipeline), \(percent(perMille: share(lowest))) in time)"
        } else if fits.isEmpty {
            let best = misses.max { share($0) < share($1) }!
            sentence = share(best) == 0 ? "On \(network), no pipeline fits: no upload was in time"
                : "On \(network), no pipeline fits (the closest: \(pipeline: best.pipeline), \(percent(perMille: share(best))) in time)"
        } else {
            let fitting = Prose.list(fits.map { "\(pipeline: $0.pipeline)" })
            let missed = Prose.list(misses.enumerated().map { i, s in "\(pipeline: s.pipeline) (\(percent(perMille: share(s)))\(i == 0 ? " in time" : ""))" })
            sentence = "On \(network), \(fitting) \(fits.count == 1 ? "fits" : "fit"); \(missed) \(misses.count == 1 ? "does" : "do") not"
        }
        let unselected = summaries.filter { ($0.selectedByProfile[network] ?? 0) == 0 }
        if !unselected.isEmpty { sentence = "\(sentence) (no client of \(Prose.list(unselected.map { "\(pipeline: $0.pipeline)" })) was selected there)" }
        var out: [Prose] = ["\(sentence)."]
        // Clients that finished downloading and training in time, the same for every pipeline
        // up to dropouts: the most any run saw.
        let ready = judged.map { perMille($0.readyByProfile[network] ?? 0, of: $0.selectedByProfile[network] ?? 0) }.max()!
        if ready < fitPerMille, !misses.isEmpty {
            out.append("Only \(percent(perMille: ready)) of the clients selected on \(network) finished downloading the model and training before the deadline, so no uplink pipeline can fit it there: the download or the training is too slow.")
        }
        return out
    }

    /// The baseline, the other pipelines' frames against it, and the accuracy cost.
    func comparison(_ summaries: [Summary]) -> [Prose] {
        let bytes = AxisUnit.bytes.text, accuracy = AxisUnit.percent.text
        guard let top = summaries.map(\.frameBytes).max(), top > 0 else {
            return ["No client got to upload, so there are no frames or accuracy to compare."]
        }
        let baseIndex = summaries.firstIndex { $0.frameBytes == top }!
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
            s.frameBytes > 0 ? "\(pipeline: s.pipeline) \(bytes(s.frameBytes)) (\(Self.smaller(s.frameBytes, than: top)))"
                : "\(pipeline: s.pipeline) no upload"
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
