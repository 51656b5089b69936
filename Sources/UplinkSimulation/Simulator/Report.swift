import Foundation

/// Summary statistics and the outputs of a simulation: terminal table, JSON, CSV and an HTML
/// report with inline SVG plots (no scripts, no external assets).
public struct SimulationReport: Sendable {
    /// The scenario's name.
    public var scenario: String
    public var runs: [PipelineRun]
    /// The scenario that ran, when known: results.json embeds it (`scenario_parameters`), the
    /// HTML report shows it, and the findings and the upload-time plot use its deadline.
    public var settings: Scenario?

    public init(scenario: String, runs: [PipelineRun], settings: Scenario? = nil) {
        self.scenario = scenario
        self.runs = runs
        self.settings = settings
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
        /// Rounds abandoned with reports (``SimulatedRound/abandoned``).
        public var abandonedRounds: Int
        /// Clients selected over all rounds.
        public var selected: Int
        /// Clients selected over all rounds per network profile.
        public var selectedByProfile: [String: Int]
        /// Reports accepted over all rounds per network profile.
        public var reportedByProfile: [String: Int]
        /// Clients per network profile whose upload made the deadline, over all rounds.
        public var inTimeByProfile: [String: Int]
        /// Clients per network profile that downloaded the model and trained before the deadline.
        public var readyByProfile: [String: Int]
        /// The mean size of the frames clients started uploading (accepted or not); 0 if none.
        public var meanUploadedFrameBytes: Double
        /// The mean accepted frame, or when no report was accepted the mean uploaded frame: the
        /// size of this pipeline's frames; 0 when no client got to upload.
        public var frameBytes: Double { meanAcceptedFrameBytes > 0 ? meanAcceptedFrameBytes : meanUploadedFrameBytes }
        /// The mean test accuracy of the last ``lastRounds`` rounds that have one.
        public var lastRoundsAccuracy: Double?
        /// min(5, rounds): the rounds ``lastRoundsAccuracy`` averages over.
        public var lastRounds: Int
    }

    /// Rounds in the "last rounds" accuracy mean (docs/results.md's last-5 measure).
    static let lastRoundsCount = 5

    public static func summarize(_ run: PipelineRun) -> Summary {
        let r = run.rounds
        let times = r.flatMap(\.uploadTimes).sorted()
        let reported = r.reduce(0) { $0 + $1.reported }
        let selected = r.reduce(0) { $0 + $1.selected }
        func total(_ counts: KeyPath<SimulatedRound, [String: Int]>) -> [String: Int] {
            r.reduce(into: [:]) { sum, round in sum.merge(round[keyPath: counts], uniquingKeysWith: +) }
        }
        let last = min(lastRoundsCount, r.count)
        let lastAccuracies = r.suffix(last).compactMap(\.accuracy)
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
            finalAccuracy: r.last?.accuracy, totalBytesUp: r.reduce(0) { $0 + $1.bytesUp }, wallClock: r.last?.wallClock ?? 0,
            abandonedRounds: r.filter(\.abandoned).count, selected: selected,
            selectedByProfile: total(\.selectedByProfile), reportedByProfile: total(\.reportedByProfile), inTimeByProfile: total(\.inTimeByProfile),
            readyByProfile: total(\.readyByProfile),
            meanUploadedFrameBytes: { let n = r.reduce(0) { $0 + $1.uploadedFrames }; return n == 0 ? 0 : Double(r.reduce(0) { $0 + $1.uploadedFrameBytes }) / Double(n) }(),
            lastRoundsAccuracy: lastAccuracies.isEmpty ? nil : lastAccuracies.reduce(0, +) / Double(lastAccuracies.count), lastRounds: last)
    }

    /// The comparison table's header row and one row per pipeline, as both the terminal table
    /// and the HTML report show them; `dp` adds the rounds and ε columns (by default when a run
    /// has central DP).
    func summaryRows(dp: Bool? = nil) -> [[String]] {
        let dp = dp ?? hasPrivacy
        return [Self.summaryHeader(dp: dp)] + runs.map { Self.summaryRow($0, dp: dp) }
    }

    /// The comparison table's header.
    static func summaryHeader(dp: Bool) -> [String] {
        ["pipeline", "frame", "up/round", "upload p50", "p95", "max", "round", "reported", "late", "cut", "quit", "accuracy", "wall clock"] + (dp ? ["rounds", "ε"] : [])
    }

    /// One pipeline's row of the comparison table.
    static func summaryRow(_ run: PipelineRun, dp: Bool) -> [String] {
        let bytes = AxisUnit.bytes.text, secs = { (s: Double?) in s.map(AxisUnit.seconds.text) ?? "—" }
        let s = summarize(run)
        var row: [String] = [
            s.pipeline, s.frameBytes > 0 ? bytes(s.frameBytes) : "—", bytes(s.meanBytesUpPerRound), secs(s.uploadP50), secs(s.uploadP95), secs(s.uploadMax),
            secs(s.meanRoundSeconds), String(format: "%.1f (%.0f%%)", s.reportedPerRound, 100 * s.participation),
            String(s.droppedDeadline), String(s.droppedInterruption), String(s.droppedDropout),
        ]
        row.append(s.finalAccuracy.map(AxisUnit.percent.text) ?? "—")
        row.append(String(format: "%.0f s", s.wallClock))
        if dp {
            row.append(String(run.rounds.count))
            row.append(run.rounds.last?.epsilon.map { String(format: "%.3f", $0) } ?? "—")
        }
        return row
    }

    /// A run spent ε (central DP).
    var hasPrivacy: Bool { runs.contains { $0.rounds.last?.epsilon != nil } }

    /// The comparison table for a terminal.
    public func table() -> String { Self.columns(summaryRows()) }

    /// The network profiles clients were selected on, in any run, sorted.
    var profiles: [String] { Array(Set(runs.flatMap { $0.rounds.flatMap { $0.selectedByProfile.keys } })).sorted() }

    /// Participation per network profile over all rounds, header row first: per pipeline and
    /// profile, reports accepted / updates that made the deadline / clients selected, and the
    /// share in time. Empty when no client was selected.
    func participationRows() -> [[String]] {
        let profiles = profiles
        guard !profiles.isEmpty else { return [] }
        var rows = [["reported / in time / selected"] + profiles]
        for run in runs {
            let s = Self.summarize(run)
            var row = [run.pipeline]
            for p in profiles {
                let sel = s.selectedByProfile[p] ?? 0, rep = s.reportedByProfile[p] ?? 0, inTime = s.inTimeByProfile[p] ?? 0
                row.append(sel == 0 ? "—" : "\(rep) / \(inTime) / \(sel) " + String(format: "(%.0f%% in time)", 100 * Double(inTime) / Double(sel)))
            }
            rows.append(row)
        }
        return rows
    }

    /// Participation per network profile over all rounds: reports accepted / updates that made
    /// the deadline / clients selected.
    public func participationTable() -> String {
        let rows = participationRows()
        return rows.isEmpty ? "" : Self.columns(rows)
    }

    /// Rows as aligned text columns (the first `leftAligned` columns left-aligned, the rest
    /// right-aligned) with a rule under the header row.
    static func columns(_ rows: [[String]], leftAligned: Int = 1) -> String {
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
        return rows.enumerated().map { i, row in
            let line = row.enumerated().map { c, cell in c < leftAligned ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
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

    /// JSON of every round of every pipeline, with the summaries, and the scenario's every
    /// field as `scenario_parameters` when ``settings`` is known.
    public func json() -> Data { Self.serialize(jsonObject()) }

    /// Pretty-printed JSON with sorted keys.
    static func serialize(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    }

    /// ``json()``'s object, for documents that hold several reports (``SweepReport``).
    func jsonObject() -> [String: Any] {
        var object: [String: Any] = ["scenario": scenario]
        if let parameters = settings?.parameters { object["scenario_parameters"] = parameters }
        object["pipelines"] = runs.map { run -> [String: Any] in
            let s = Self.summarize(run)
            var summary: [String: Any] = [
                "mean_bytes_up_per_round": s.meanBytesUpPerRound, "mean_frame_bytes": s.meanAcceptedFrameBytes, "mean_uploaded_frame_bytes": s.meanUploadedFrameBytes,
                "mean_round_seconds": s.meanRoundSeconds, "reported_per_round": s.reportedPerRound, "participation": s.participation,
                "dropped_deadline": s.droppedDeadline, "dropped_interruption": s.droppedInterruption, "dropped_dropout": s.droppedDropout,
                "total_bytes_up": s.totalBytesUp, "wall_clock_seconds": s.wallClock,
            ]
            if let v = s.uploadP50 { summary["upload_p50_seconds"] = v }
            if let v = s.uploadP95 { summary["upload_p95_seconds"] = v }
            if let v = s.uploadMax { summary["upload_max_seconds"] = v }
            if let v = s.finalAccuracy { summary["final_accuracy"] = v }
            if let p = run.privacy { summary["privacy"] = p.jsonObject }
            if s.abandonedRounds > 0 { summary["abandoned_rounds"] = s.abandonedRounds }
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
                        "in_time_by_profile": r.inTimeByProfile, "ready_by_profile": r.readyByProfile,
                        "uploaded_frames": r.uploadedFrames, "uploaded_frame_bytes": r.uploadedFrameBytes,
                    ]
                    if let a = r.accuracy { row["accuracy"] = a }
                    if let e = r.epsilon { row["epsilon"] = e }
                    if let q = r.samplingRate { row["sampling_rate"] = q }
                    if r.abandoned { row["abandoned"] = true }
                    return row
                },
            ]
        }
        return object
    }
}
