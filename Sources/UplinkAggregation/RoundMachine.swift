import UplinkCodec

/// The rules of a round (Bonawitz et al. 2019, "Towards Federated Learning at Scale"): the
/// target number of reports K, the over-selection factor, the report deadline and the minimum
/// share of K a round needs at its deadline to close rather than be abandoned.
///
/// Every value is checked when the rules are made, so a ``RoundMachine`` built from them never
/// meets a NaN, a negative count or an overflowing product.
public struct RoundRules: Sendable, Hashable {
    /// K, the reports that close the round (at least 1).
    public var targetReports: Int
    /// Selected clients = ⌈K × overSelection⌉; finite and at least 1 (Bonawitz et al. use 1.3).
    public var overSelection: Double
    /// Seconds from the round's opening to its deadline; greater than 0, and `+infinity` for a
    /// round without deadline (one that closes only at its K-th report).
    public var deadline: Double
    /// The share of K a round must have at its deadline to close; in [0, 1]. With fewer than
    /// ``minimumReports`` reports at the deadline the round is abandoned.
    public var minimumReportFraction: Double

    /// Rules checked for range: `targetReports ≥ 1`; `overSelection` finite and `≥ 1`;
    /// `deadline > 0` (`+infinity` allowed); `minimumReportFraction` in [0, 1]. NaN is refused
    /// everywhere. Anything else throws ``UplinkError/Code/invalidArgument`` (707) naming the value.
    public init(targetReports: Int, overSelection: Double = 1.3, deadline: Double, minimumReportFraction: Double = 0) throws(UplinkError) {
        guard targetReports >= 1 else {
            throw UplinkError(.invalidArgument, "round rules: targetReports must be at least 1, got \(targetReports)")
        }
        guard overSelection.isFinite, overSelection >= 1 else {
            throw UplinkError(.invalidArgument, "round rules: overSelection must be a finite number of at least 1, got \(overSelection)")
        }
        guard deadline > 0 else {  // false for NaN too
            throw UplinkError(.invalidArgument, "round rules: deadline must be more than 0 seconds (+infinity for none), got \(deadline)")
        }
        guard minimumReportFraction >= 0, minimumReportFraction <= 1 else {
            throw UplinkError(.invalidArgument, "round rules: minimumReportFraction must be in [0, 1], got \(minimumReportFraction)")
        }
        self.targetReports = targetReports
        self.overSelection = overSelection
        self.deadline = deadline
        self.minimumReportFraction = minimumReportFraction
    }

    /// The clients a round selects before it tells the rest to come back: ⌈K × overSelection⌉,
    /// computed in double precision, never less than K, and `Int.max` when the product does not
    /// fit an `Int` (so no K and factor, however large, trap).
    public var selectionGoal: Int {
        let goal = (Double(targetReports) * overSelection).rounded(.up)
        guard goal < 0x1p63 else { return Int.max }
        return max(targetReports, Int(goal))
    }

    /// The reports a round needs at its deadline to close: max(1, ⌈minimumReportFraction × K⌉),
    /// at most K. A round that reaches its deadline with none is always abandoned.
    public var minimumReports: Int {
        let minimum = (minimumReportFraction * Double(targetReports)).rounded(.up)
        guard minimum < 0x1p63 else { return targetReports }
        return max(1, min(targetReports, Int(minimum)))
    }
}

/// One round's selection and reporting, as a value: the coordinator server drives it with a
/// real clock and `uplink simulate` with its virtual one, so the simulator runs the server's
/// own rules.
///
/// States: **selecting** (fewer than ``RoundRules/selectionGoal`` clients selected) →
/// **reporting** (the goal reached; later check-ins are told to come back) → **closed** (at the
/// K-th accepted report, or at the deadline with at least ``RoundRules/minimumReports``) or
/// **abandoned** (at the deadline with fewer). Reports are accepted in both open states.
/// Closed and abandoned are final. Time is a `Double` of seconds on whatever clock the caller
/// drives; nothing here reads a clock, so every decision is a function of the calls made.
///
/// Client ids are compared by their UTF-8 bytes, as `RoundAggregator` compares them (`café`
/// precomposed and decomposed are two clients), so the machine and the aggregator always agree
/// on who a client is.
///
/// Time only moves forward: a time earlier than one already given (or earlier than
/// ``openedAt``) is taken as the latest time given, and NaN likewise, so a clock that steps back
/// cannot reopen a decision or trap.
public struct RoundMachine: Sendable {
    /// Where the round is.
    public enum State: Sendable, Hashable {
        /// Open, taking check-ins until the selection goal is reached; reports are accepted.
        case selecting
        /// Open, the selection goal reached: only reports (and already selected clients' check-ins).
        case reporting
        /// Final: the round reached K reports, or its deadline with at least the minimum.
        case closed
        /// Final: the deadline passed with fewer than the minimum reports; its reports count for nothing.
        case abandoned
    }

    /// Why a round closed.
    public enum CloseReason: Sendable, Hashable {
        /// The K-th report was accepted.
        case target
        /// The deadline passed with at least the minimum reports.
        case deadline
    }

    /// The answer to a check-in.
    public enum CheckIn: Sendable, Hashable {
        /// Newly selected; `deadline` is the round's absolute deadline on the caller's clock.
        case selected(deadline: Double)
        /// Selected by an earlier check-in (a restarted app): the same assignment again.
        case alreadySelected(deadline: Double)
        /// Not selected (pace steering): check in again after this many seconds, at least 1. For
        /// a round whose selection is full, the time until its deadline (when the next round opens
        /// at the latest; `+infinity` for a round without deadline); for a closed or abandoned round, 1.
        case comeBack(after: Double)
    }

    /// Why a report was refused.
    public enum Refusal: Sendable, Hashable {
        /// The client was not selected for this round.
        case notSelected
        /// The client's report for this round was already accepted.
        case alreadyReported
        /// The round is closed or abandoned, or its deadline has passed.
        case roundClosed
    }

    /// The answer to a report.
    public enum Report: Sendable, Hashable {
        /// Counted; `closesRound` when it was the K-th, which closed the round.
        case accepted(closesRound: Bool)
        /// Not counted, and nothing changed.
        case refused(Refusal)
    }

    /// The round's id.
    public let round: UInt64
    /// Its rules.
    public let rules: RoundRules
    /// When it opened, on the caller's clock (a non-finite time is taken as 0).
    public let openedAt: Double
    /// Where it is.
    public private(set) var state: State = .selecting
    /// Why it closed; `nil` while open and when abandoned.
    public private(set) var closeReason: CloseReason?
    /// When it closed or was abandoned: the time of the K-th report, or the deadline.
    public private(set) var closedAt: Double?
    /// The selected clients, in check-in order.
    public private(set) var selected: [String] = []
    /// The clients whose reports were accepted, in acceptance order.
    public private(set) var reported: [String] = []
    /// The selected and reported ids by their UTF-8 bytes, as `RoundAggregator` compares them.
    private var selectedSet: Set<[UInt8]> = []
    private var reportedSet: Set<[UInt8]> = []
    /// The latest time given (the clock never moves back).
    private var latest: Double

    /// A round `round` that opens at `openedAt` under `rules`, selecting.
    public init(round: UInt64, rules: RoundRules, openedAt: Double) {
        self.round = round
        self.rules = rules
        self.openedAt = openedAt.isFinite ? openedAt : 0
        self.latest = self.openedAt
    }

    /// The absolute deadline: ``openedAt`` + the rules' deadline (`+infinity` without one).
    public var deadline: Double { openedAt + rules.deadline }

    /// Whether the round still takes check-ins and reports (selecting or reporting). A round past
    /// its deadline stays open until a call applies the deadline (``advance(to:)``, a check-in, or
    /// a late report).
    public var isOpen: Bool { state == .selecting || state == .reporting }

    /// Seconds until the deadline at `now`, at least 0; 0 once closed or abandoned.
    public func timeLeft(at now: Double) -> Double {
        let t = time(now)
        guard isOpen, t < deadline else { return 0 }
        return deadline - t
    }

    /// A client checks in at `now`. At or after the deadline the deadline is applied first (the
    /// round closes or is abandoned) and the client is told to come back after 1 s; so is any
    /// client of a closed or abandoned round. A selected client gets its assignment again.
    /// Otherwise the client is selected while the round is selecting, and the check-in that
    /// reaches the selection goal moves it to reporting; once reporting, the client is told to
    /// come back when the round's deadline has passed.
    public mutating func checkIn(_ client: String, at now: Double) -> CheckIn {
        let t = observe(now)
        applyDeadline(at: t, inclusive: true)
        guard isOpen else { return .comeBack(after: 1) }
        let id = Array(client.utf8)
        if selectedSet.contains(id) { return .alreadySelected(deadline: deadline) }
        guard state == .selecting else { return .comeBack(after: max(1, deadline - t)) }
        selected.append(client)
        selectedSet.insert(id)
        if selected.count >= rules.selectionGoal { state = .reporting }
        return .selected(deadline: deadline)
    }

    /// What ``report(_:at:)`` would answer at `now`, changing nothing (so a server can refuse a
    /// report before it spends work decoding it): `nil` when it would be accepted.
    public func canReport(_ client: String, at now: Double) -> Refusal? {
        guard isOpen, time(now) <= deadline else { return .roundClosed }
        let id = Array(client.utf8)
        guard selectedSet.contains(id) else { return .notSelected }
        guard !reportedSet.contains(id) else { return .alreadyReported }
        return nil
    }

    /// A client's report arrives at `now`. It is accepted from a selected client that has not
    /// reported, while the round is open and `now ≤ deadline`: the deadline is inclusive, so a
    /// report exactly at the deadline counts. The K-th accepted report closes the round (reason
    /// ``CloseReason/target``, ``closedAt`` = `now`). After the deadline the deadline is applied
    /// first and the report is refused as ``Refusal/roundClosed``, as is any report to a closed
    /// or abandoned round; a refusal changes nothing else.
    public mutating func report(_ client: String, at now: Double) -> Report {
        let t = observe(now)
        applyDeadline(at: t, inclusive: false)
        if let refusal = canReport(client, at: t) { return .refused(refusal) }
        reported.append(client)
        reportedSet.insert(Array(client.utf8))
        guard reported.count >= rules.targetReports else { return .accepted(closesRound: false) }
        state = .closed
        closeReason = .target
        closedAt = t
        return .accepted(closesRound: true)
    }

    /// Applies the deadline at `now`: an open round whose deadline is at or before `now` closes
    /// (reason ``CloseReason/deadline``) with at least ``RoundRules/minimumReports`` reports and
    /// is abandoned with fewer; either way ``closedAt`` is the deadline. A round already closed,
    /// abandoned, or before its deadline is left as it is. Returns the state.
    @discardableResult
    public mutating func advance(to now: Double) -> State {
        applyDeadline(at: observe(now), inclusive: true)
        return state
    }

    /// Closes or abandons an open round whose deadline has come: at `t ≥ deadline` when
    /// `inclusive` (a check-in or `advance`), at `t > deadline` otherwise (a report, for which
    /// the deadline itself still counts).
    private mutating func applyDeadline(at t: Double, inclusive: Bool) {
        guard isOpen, inclusive ? t >= deadline : t > deadline else { return }
        if reported.count >= rules.minimumReports {
            state = .closed
            closeReason = .deadline
        } else {
            state = .abandoned
        }
        closedAt = deadline
    }

    /// `now` on the machine's clock: never before the latest time given, NaN taken as it.
    private func time(_ now: Double) -> Double { now > latest ? now : latest }

    /// Moves the clock to `now` (never back) and returns it.
    private mutating func observe(_ now: Double) -> Double {
        latest = time(now)
        return latest
    }
}
