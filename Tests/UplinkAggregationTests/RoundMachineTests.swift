import Testing
import UplinkAggregation
import UplinkCodec

/// The round state machine the coordinator and the simulator share: every transition, every
/// refusal, and a seeded comparison against a reference model of the rules.
@Suite struct RoundMachineTests {
    static func rules(_ k: Int, _ overSelection: Double = 1, deadline: Double = 10, minimum: Double = 0) -> RoundRules {
        try! RoundRules(targetReports: k, overSelection: overSelection, deadline: deadline, minimumReportFraction: minimum)
    }

    // MARK: Rules

    @Test(arguments: [
        (0, 1.3, 10.0, 0.0, "targetReports"), (-1, 1.3, 10, 0, "targetReports"), (Int.min, 1.3, 10, 0, "targetReports"),
        (1, .nan, 10, 0, "overSelection"), (1, 0.99, 10, 0, "overSelection"), (1, 0, 10, 0, "overSelection"),
        (1, -1, 10, 0, "overSelection"), (1, .infinity, 10, 0, "overSelection"),
        (1, 1.3, 0, 0, "deadline"), (1, 1.3, -1, 0, "deadline"), (1, 1.3, .nan, 0, "deadline"), (1, 1.3, -.infinity, 0, "deadline"),
        (1, 1.3, 10, -0.01, "minimumReportFraction"), (1, 1.3, 10, 1.01, "minimumReportFraction"), (1, 1.3, 10, .nan, "minimumReportFraction"),
        (1, 1.3, 10, .infinity, "minimumReportFraction"),
    ] as [(Int, Double, Double, Double, String)])
    func rulesOutOfRangeAreRefused(k: Int, overSelection: Double, deadline: Double, minimum: Double, field: String) {
        do {
            _ = try RoundRules(targetReports: k, overSelection: overSelection, deadline: deadline, minimumReportFraction: minimum)
            Issue.record("accepted \(field)")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("round rules: \(field) must be"))
        }
    }

    @Test func rulesAtTheEdgesOfTheirRanges() throws {
        let r = try RoundRules(targetReports: 1, overSelection: 1, deadline: .infinity, minimumReportFraction: 1)
        #expect(r.selectionGoal == 1 && r.minimumReports == 1 && r.deadline == .infinity)
        let d = try RoundRules(targetReports: 7, deadline: 0x1p-1074)
        #expect(d.overSelection == 1.3 && d.minimumReportFraction == 0)
    }

    @Test(arguments: [
        (10, 1.3, 13), (1, 1, 1), (3, 1.5, 5), (4, 1.5, 6), (1, 1.0000001, 2), (1_000_000, 1000, 1_000_000_000),
        (Int.max, 1, Int.max), (Int.max, 1.3, Int.max), (Int.max / 2, 1000, Int.max), (1 << 62, 2, Int.max), ((1 << 62) + 1, 1, (1 << 62) + 1),
    ] as [(Int, Double, Int)])
    func selectionGoalIsTheCeilingClampedToInt(k: Int, overSelection: Double, goal: Int) {
        #expect(Self.rules(k, overSelection).selectionGoal == goal)
    }

    @Test(arguments: [
        (10, 0.0, 1), (10, 0.05, 1), (10, 0.1, 1), (10, 0.11, 2), (3, 0.5, 2), (4, 0.5, 2), (10, 1, 10), (1, 1, 1),
        (10, 1e-300, 1), (Int.max, 1, Int.max), (Int.max, 0.5, 1 << 62), (Int.max, 0, 1),
    ] as [(Int, Double, Int)])
    func minimumReportsIsTheCeilingOfTheFraction(k: Int, fraction: Double, minimum: Int) {
        #expect(Self.rules(k, minimum: fraction).minimumReports == minimum)
    }

    // MARK: Selection

    /// Check-ins are selected up to ⌈K × overSelection⌉; the one that reaches it moves the round
    /// to reporting; later ones are told to come back at the deadline, at least 1 s from now.
    @Test func selectionFillsToTheGoalThenSteersThePace() {
        var m = RoundMachine(round: 3, rules: Self.rules(2, 1.5), openedAt: 100)
        #expect(m.deadline == 110 && m.state == .selecting && m.isOpen)
        #expect(m.checkIn("a", at: 100) == .selected(deadline: 110))
        #expect(m.checkIn("b", at: 101) == .selected(deadline: 110))
        #expect(m.state == .selecting)
        #expect(m.checkIn("c", at: 102) == .selected(deadline: 110))
        #expect(m.state == .reporting)
        #expect(m.checkIn("d", at: 104) == .comeBack(after: 6))
        #expect(m.checkIn("e", at: 109.5) == .comeBack(after: 1))
        #expect(m.selected == ["a", "b", "c"])
        #expect(m.closedAt == nil && m.closeReason == nil)
    }

    /// A selected client checking in again (a restarted app) gets its assignment back and is not
    /// counted twice, in either open state.
    @Test func checkInIsIdempotent() {
        var m = RoundMachine(round: 1, rules: Self.rules(2, 1), openedAt: 0)
        #expect(m.checkIn("a", at: 1) == .selected(deadline: 10))
        #expect(m.checkIn("a", at: 2) == .alreadySelected(deadline: 10))
        #expect(m.selected == ["a"] && m.state == .selecting)
        #expect(m.checkIn("b", at: 3) == .selected(deadline: 10))
        #expect(m.state == .reporting)
        #expect(m.checkIn("a", at: 4) == .alreadySelected(deadline: 10))
        _ = m.report("a", at: 5)
        #expect(m.checkIn("a", at: 6) == .alreadySelected(deadline: 10))
        #expect(m.selected == ["a", "b"])
    }

    /// Ids compare by their UTF-8 bytes, as the aggregator's duplicate rule (900) does.
    @Test func clientIdsCompareByTheirBytes() {
        var m = RoundMachine(round: 1, rules: Self.rules(2, 1), openedAt: 0)
        #expect(m.checkIn("caf\u{E9}", at: 0) == .selected(deadline: 10))
        #expect(m.checkIn("cafe\u{301}", at: 0) == .selected(deadline: 10))
        #expect(m.report("caf\u{E9}", at: 1) == .accepted(closesRound: false))
        #expect(m.report("cafe\u{301}", at: 1) == .accepted(closesRound: true))
    }

    // MARK: Reports

    @Test func reportsFromTheUnselectedOrTwiceAreRefusedAndChangeNothing() {
        var m = RoundMachine(round: 1, rules: Self.rules(2, 1.5), openedAt: 0)
        _ = m.checkIn("a", at: 0)
        _ = m.checkIn("b", at: 0)
        #expect(m.canReport("x", at: 1) == .notSelected)
        #expect(m.report("x", at: 1) == .refused(.notSelected))
        #expect(m.canReport("a", at: 1) == nil)
        #expect(m.report("a", at: 1) == .accepted(closesRound: false))
        #expect(m.canReport("a", at: 2) == .alreadyReported)
        #expect(m.report("a", at: 2) == .refused(.alreadyReported))
        #expect(m.reported == ["a"] && m.selected == ["a", "b"] && m.state == .selecting && m.isOpen)
    }

    /// Reports count while the round is still selecting, and the K-th closes it at its time.
    @Test func theKthReportClosesTheRoundEvenWhileSelecting() {
        var m = RoundMachine(round: 1, rules: Self.rules(2, 2), openedAt: 0)
        _ = m.checkIn("a", at: 0)
        _ = m.checkIn("b", at: 0)
        #expect(m.state == .selecting)
        #expect(m.report("b", at: 3) == .accepted(closesRound: false))
        #expect(m.report("a", at: 4.25) == .accepted(closesRound: true))
        #expect(m.state == .closed && m.closeReason == .target && m.closedAt == 4.25 && !m.isOpen)
        #expect(m.reported == ["b", "a"])
        #expect(m.timeLeft(at: 5) == 0)
        // Final: a late check-in comes back in 1 s, and nothing reopens it.
        #expect(m.checkIn("c", at: 5) == .comeBack(after: 1))
        #expect(m.checkIn("a", at: 5) == .comeBack(after: 1))
        #expect(m.selected == ["a", "b"])
        #expect(m.advance(to: 20) == .closed)
        #expect(m.closeReason == .target && m.closedAt == 4.25)
    }

    @Test func reportsAfterCloseAreRoundClosed() {
        var m = RoundMachine(round: 1, rules: Self.rules(1, 2), openedAt: 0)
        _ = m.checkIn("a", at: 0)
        _ = m.checkIn("b", at: 0)
        _ = m.report("a", at: 1)
        #expect(m.canReport("b", at: 2) == .roundClosed)
        #expect(m.report("b", at: 2) == .refused(.roundClosed))
        #expect(m.report("a", at: 2) == .refused(.roundClosed))
        #expect(m.report("x", at: 2) == .refused(.roundClosed))
        #expect(m.reported == ["a"])
    }

    // MARK: The deadline

    /// A report exactly at the deadline counts; `advance(to: deadline)` then closes the round.
    @Test func theDeadlineIsInclusiveForReports() {
        var m = RoundMachine(round: 1, rules: Self.rules(3, 1), openedAt: 5)
        for c in ["a", "b", "c"] { _ = m.checkIn(c, at: 5) }
        #expect(m.canReport("a", at: 15) == nil)
        #expect(m.report("a", at: 15) == .accepted(closesRound: false))
        #expect(m.report("b", at: 15) == .accepted(closesRound: false))
        #expect(m.isOpen)
        #expect(m.canReport("c", at: 15.000001) == .roundClosed)
        #expect(m.advance(to: 15) == .closed)
        #expect(m.closeReason == .deadline && m.closedAt == 15 && m.reported == ["a", "b"])
    }

    /// The K-th report at the deadline closes for the target; advancing to the deadline then changes nothing.
    @Test func theKthReportAtTheDeadlineClosesForTheTarget() {
        var m = RoundMachine(round: 1, rules: Self.rules(1, 1), openedAt: 0)
        _ = m.checkIn("a", at: 0)
        #expect(m.report("a", at: 10) == .accepted(closesRound: true))
        #expect(m.advance(to: 10) == .closed)
        #expect(m.closeReason == .target && m.closedAt == 10)
    }

    /// A report after the deadline applies it first, then is refused.
    @Test func aLateReportAppliesTheDeadline() {
        var m = RoundMachine(round: 1, rules: Self.rules(3, 1), openedAt: 0)
        for c in ["a", "b", "c"] { _ = m.checkIn(c, at: 0) }
        _ = m.report("a", at: 9)
        #expect(m.report("b", at: 10.5) == .refused(.roundClosed))
        #expect(m.state == .closed && m.closeReason == .deadline && m.closedAt == 10 && m.reported == ["a"])
    }

    /// A check-in at the deadline applies it first: the round is over, so even a report at the
    /// same instant is refused afterwards.
    @Test func aCheckInAtTheDeadlineAppliesIt() {
        var m = RoundMachine(round: 1, rules: Self.rules(2, 1), openedAt: 0)
        _ = m.checkIn("a", at: 0)
        _ = m.report("a", at: 1)
        #expect(m.checkIn("z", at: 10) == .comeBack(after: 1))
        #expect(m.state == .closed && m.closeReason == .deadline && m.closedAt == 10)
        var n = RoundMachine(round: 1, rules: Self.rules(2, 1), openedAt: 0)
        _ = n.checkIn("a", at: 0)
        #expect(n.checkIn("a", at: 10) == .comeBack(after: 1))
        #expect(n.state == .abandoned)
        #expect(n.report("a", at: 10) == .refused(.roundClosed))
    }

    @Test func advanceBeforeTheDeadlineChangesNothing() {
        var m = RoundMachine(round: 1, rules: Self.rules(1, 1), openedAt: 0)
        #expect(m.advance(to: 9.999) == .selecting)
        _ = m.checkIn("a", at: 9.999)
        #expect(m.advance(to: 9.9999) == .reporting)
        #expect(m.closedAt == nil)
    }

    /// At the deadline a round with at least ⌈fraction × K⌉ reports (at least 1) closes; with
    /// fewer it is abandoned, with no close reason.
    @Test(arguments: [
        (0.0, 0, RoundMachine.State.abandoned), (0.0, 1, .closed), (0.5, 1, .abandoned), (0.5, 2, .closed), (0.5, 3, .closed),
        (0.51, 2, .abandoned), (0.51, 3, .closed), (1, 3, .abandoned),
    ] as [(Double, Int, RoundMachine.State)])
    func abandonmentFollowsTheMinimumFraction(fraction: Double, reports: Int, expected: RoundMachine.State) {
        var m = RoundMachine(round: 9, rules: Self.rules(4, 1, minimum: fraction), openedAt: 0)
        for c in ["a", "b", "c", "d"] { _ = m.checkIn(c, at: 0) }
        for c in ["a", "b", "c", "d"].prefix(reports) { #expect(m.report(c, at: 1) == .accepted(closesRound: false)) }
        #expect(m.advance(to: 30) == expected)
        #expect(m.closedAt == 10)
        #expect(m.closeReason == (expected == .closed ? .deadline : nil))
        #expect(m.reported.count == reports)
    }

    @Test func timeLeftCountsDownToZero() {
        var m = RoundMachine(round: 1, rules: Self.rules(1, 1), openedAt: 1000)
        #expect(m.timeLeft(at: 1000) == 10)
        #expect(m.timeLeft(at: 1002.5) == 7.5)
        #expect(m.timeLeft(at: 1010) == 0)
        #expect(m.timeLeft(at: 2000) == 0)
        #expect(m.isOpen)  // asking is not applying
        _ = m.checkIn("a", at: 1001)
        _ = m.report("a", at: 1002)
        #expect(m.timeLeft(at: 1003) == 0)
    }

    /// Without a deadline the round closes only at its K-th report; a full round's pace
    /// steering has no end to point to.
    @Test func aRoundWithoutDeadline() {
        var m = RoundMachine(round: 1, rules: Self.rules(2, 1, deadline: .infinity), openedAt: 0)
        #expect(m.deadline == .infinity)
        _ = m.checkIn("a", at: 0)
        _ = m.checkIn("b", at: 0)
        #expect(m.checkIn("c", at: 1e300) == .comeBack(after: .infinity))
        #expect(m.advance(to: 1e308) == .reporting)
        #expect(m.timeLeft(at: 1e308) == .infinity)
        #expect(m.report("a", at: 1e308) == .accepted(closesRound: false))
        #expect(m.report("b", at: 1e308) == .accepted(closesRound: true))
        #expect(m.closeReason == .target && m.closedAt == 1e308)
    }

    // MARK: Clocks that misbehave

    /// A time before one already given (or before the opening), and NaN, count as the latest
    /// time given: nothing traps and nothing reopens.
    @Test func timeNeverRunsBackwards() {
        var m = RoundMachine(round: 1, rules: Self.rules(2, 1), openedAt: 50)
        #expect(m.checkIn("a", at: 0) == .selected(deadline: 60))
        #expect(m.checkIn("b", at: .nan) == .selected(deadline: 60))
        #expect(m.checkIn("c", at: -.infinity) == .comeBack(after: 10))
        #expect(m.report("a", at: 58) == .accepted(closesRound: false))
        #expect(m.timeLeft(at: 40) == 2)
        #expect(m.report("b", at: 20) == .accepted(closesRound: true))
        #expect(m.closedAt == 58)
        var late = RoundMachine(round: 1, rules: Self.rules(2, 1), openedAt: 50)
        _ = late.checkIn("a", at: 50)
        #expect(late.advance(to: 61) == .abandoned)
        #expect(late.report("a", at: 55) == .refused(.roundClosed))
        #expect(late.checkIn("b", at: .nan) == .comeBack(after: 1))
    }

    @Test(arguments: [Double.nan, .infinity, -.infinity])
    func aNonFiniteOpeningIsTakenAsZero(openedAt: Double) {
        var m = RoundMachine(round: 1, rules: Self.rules(1, 1), openedAt: openedAt)
        #expect(m.openedAt == 0 && m.deadline == 10)
        #expect(m.checkIn("a", at: 1) == .selected(deadline: 10))
    }

    @Test func extremeTimesDoNotTrap() {
        var m = RoundMachine(round: .max, rules: Self.rules(Int.max, 1000, deadline: .greatestFiniteMagnitude), openedAt: .greatestFiniteMagnitude)
        #expect(m.deadline == .infinity)
        #expect(m.checkIn("a", at: .infinity) == .comeBack(after: 1))
        #expect(m.state == .abandoned && m.closedAt == .infinity)
    }

    // MARK: Against a reference model

    /// The rules written as plainly as possible, to hold the machine against.
    struct Reference {
        let k: Int, goal: Int, minimum: Int, deadline: Double
        var clock: Double
        var selected: [String] = [], reported: [String] = []
        var final: (state: RoundMachine.State, reason: RoundMachine.CloseReason?, at: Double)?

        init(_ rules: RoundRules, openedAt: Double) {
            k = rules.targetReports
            goal = Int((Double(rules.targetReports) * rules.overSelection).rounded(.up))
            minimum = max(1, Int((rules.minimumReportFraction * Double(rules.targetReports)).rounded(.up)))
            deadline = openedAt + rules.deadline
            clock = openedAt
        }

        var state: RoundMachine.State { final?.state ?? (selected.count < goal ? .selecting : .reporting) }

        func time(_ now: Double) -> Double { !now.isNaN && now > clock ? now : clock }

        mutating func at(_ now: Double) -> Double {
            clock = time(now)
            return clock
        }

        mutating func closeIfDue(_ due: Bool) {
            if final == nil, due { final = reported.count >= minimum ? (.closed, .deadline, deadline) : (.abandoned, nil, deadline) }
        }

        mutating func checkIn(_ c: String, _ now: Double) -> RoundMachine.CheckIn {
            let t = at(now)
            closeIfDue(t >= deadline)
            if final != nil { return .comeBack(after: 1) }
            if selected.contains(c) { return .alreadySelected(deadline: deadline) }
            if selected.count == goal { return .comeBack(after: max(1, deadline - t)) }
            selected.append(c)
            return .selected(deadline: deadline)
        }

        mutating func report(_ c: String, _ now: Double) -> RoundMachine.Report {
            let t = at(now)
            closeIfDue(t > deadline)
            if final != nil { return .refused(.roundClosed) }
            if !selected.contains(c) { return .refused(.notSelected) }
            if reported.contains(c) { return .refused(.alreadyReported) }
            reported.append(c)
            if reported.count == k { final = (.closed, .target, t) }
            return .accepted(closesRound: reported.count == k)
        }

        mutating func advance(_ now: Double) { closeIfDue(at(now) >= deadline) }
    }

    /// 3,000 seeded random rounds of 40 events each (check-ins, reports, deadline ticks; times
    /// that step forward, hit the deadline exactly, step back or are NaN): every answer and
    /// every observable field equals the reference model's, and the invariants hold.
    @Test func agreesWithTheReferenceModelOnRandomEventSequences() throws {
        var rng = SplitMix64(seed: 0x524F_554E_44)
        let clients = ["a", "b", "c", "d", "e", "f", "g", "h"]
        var outcomes: [RoundMachine.State: Int] = [:]
        var exactDeadlineReports = 0
        for trial in 0..<3000 {
            let k = Int.random(in: 1...5, using: &rng)
            let over = [1, 1.3, 1.5, 2, 3][Int.random(in: 0..<5, using: &rng)]
            let span = [5, 10, .infinity][Int.random(in: 0..<3, using: &rng)]
            let fraction = [0, 0.3, 0.5, 1][Int.random(in: 0..<4, using: &rng)]
            let rules = try RoundRules(targetReports: k, overSelection: over, deadline: span, minimumReportFraction: fraction)
            let opened = Double(Int.random(in: 0...3, using: &rng))
            var machine = RoundMachine(round: UInt64(trial), rules: rules, openedAt: opened)
            var model = Reference(rules, openedAt: opened)
            #expect(rules.selectionGoal == model.goal && rules.minimumReports == model.minimum)
            var now = opened
            var wasFinal: RoundMachine.State?
            for _ in 0..<40 {
                switch Int.random(in: 0..<10, using: &rng) {
                case 0: now = machine.deadline.isFinite ? machine.deadline : now  // exactly the deadline
                case 1: now -= Double(Int.random(in: 1...4, using: &rng))         // the clock steps back
                case 2: now = .nan
                default: now = (now.isNaN ? model.clock : now) + Double(Int.random(in: 0...3, using: &rng)) * 0.5
                }
                let client = clients[Int.random(in: 0..<clients.count, using: &rng)]
                switch Int.random(in: 0..<8, using: &rng) {
                case 0...2:
                    #expect(machine.checkIn(client, at: now) == model.checkIn(client, now))
                case 3...5:
                    let asked = machine.canReport(client, at: now)
                    let answer = machine.report(client, at: now)
                    #expect(answer == model.report(client, now))
                    if case .refused(let why) = answer { #expect(asked == why) } else { #expect(asked == nil) }
                    if answer == .accepted(closesRound: false) || answer == .accepted(closesRound: true), model.clock == machine.deadline { exactDeadlineReports += 1 }
                case 6:
                    machine.advance(to: now)
                    model.advance(now)
                default:
                    #expect(machine.timeLeft(at: now) == (model.final == nil ? max(0, model.deadline - model.time(now)) : 0))
                }
                #expect(machine.state == model.state)
                #expect(machine.closeReason == model.final?.reason)
                #expect(machine.closedAt == model.final?.at)
                #expect(machine.selected == model.selected && machine.reported == model.reported)
                // Invariants that do not depend on the model.
                #expect(Set(machine.reported).isSubset(of: Set(machine.selected)))
                #expect(Set(machine.selected).count == machine.selected.count && Set(machine.reported).count == machine.reported.count)
                #expect(machine.selected.count <= rules.selectionGoal && machine.reported.count <= k)
                switch (machine.state, machine.closeReason) {
                case (.closed, .target?): #expect(machine.reported.count == k && machine.closedAt! <= machine.deadline)
                case (.closed, .deadline?): #expect(machine.reported.count >= rules.minimumReports && machine.closedAt == machine.deadline)
                case (.abandoned, nil): #expect(machine.reported.count < rules.minimumReports && machine.closedAt == machine.deadline)
                case (.selecting, nil), (.reporting, nil): #expect(machine.closedAt == nil)
                default: Issue.record("state \(machine.state) with reason \(String(describing: machine.closeReason))")
                }
                if let final = wasFinal { #expect(machine.state == final) }
                if !machine.isOpen { wasFinal = machine.state }
            }
            machine.advance(to: .infinity)
            outcomes[machine.state, default: 0] += 1
        }
        // The sequences reach every ending, and reports exactly at the deadline happen.
        #expect(outcomes[.closed, default: 0] > 500 && outcomes[.abandoned, default: 0] > 100)
        #expect(exactDeadlineReports > 50)
    }
}
