import UplinkCodec

/// One upload resource in memory: its durable offset and the append that currently owns it.
///
/// Appends are exclusive. A newer request (append, offset retrieval, cancellation) ends the
/// one in flight, as the draft's concurrency section recommends: the older request's body
/// stops being read, what it stored is fsynced and recorded, and only then does the newer one
/// see the offset — so an offset the server reports is always one the next append may use.
final class UploadSlot: Sendable {
    let id: String
    let round: UInt64
    let client: String
    let length: Int64
    let expiresAt: Double
    let file: PartialFile

    struct State {
        var durableOffset: Int64
        /// open, completing, accepted, rejected, cancelled, expired
        var phase: String
        var response: StoredResponse?
        var owner: Int = 0
        var holder: (@Sendable () -> Void)?
        var waiters: [(ticket: Int, resume: CheckedContinuation<Bool, Never>, interrupt: @Sendable () -> Void)] = []
        var held = false
        var nextTicket = 1
        /// The ledger lease (`<replica>/<ticket>`) the request holding the slot has, if any.
        var lease: String?
    }

    let state: Locked<State>

    init(row: Ledger.UploadRow, file: PartialFile) {
        id = row.id
        round = row.round
        client = row.client
        length = row.length
        expiresAt = row.expiresAt
        self.file = file
        let response = row.response.map { StoredResponse(json: $0) }
        state = Locked(State(durableOffset: row.offset, phase: row.state, response: response))
    }

    var durableOffset: Int64 { state.withLock { $0.durableOffset } }
    var phase: String { state.withLock { $0.phase } }

    /// Takes the upload for one request, ending the request that holds it (through its
    /// `interrupt`) and any earlier waiter. Returns a ticket, or `nil` when a still newer
    /// request took over while this one waited.
    func acquire(interrupt: @escaping @Sendable () -> Void) async -> Int? {
        let (ticket, mustWait, toInterrupt, superseded) = state.withLock { s -> (Int, Bool, (@Sendable () -> Void)?, [CheckedContinuation<Bool, Never>]) in
            let t = s.nextTicket
            s.nextTicket += 1
            if !s.held {
                s.held = true
                s.owner = t
                s.holder = interrupt
                return (t, false, nil, [])
            }
            let older = s.waiters.map(\.resume)
            s.waiters = []
            return (t, true, s.holder, older)
        }
        for w in superseded { w.resume(returning: false) }
        guard mustWait else { return ticket }
        toInterrupt?()
        let granted = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let immediate = state.withLock { s -> Bool? in
                if !s.held {
                    s.held = true
                    s.owner = ticket
                    s.holder = interrupt
                    return true
                }
                s.waiters.append((ticket, c, interrupt))
                return nil
            }
            if let immediate { c.resume(returning: immediate) }
        }
        return granted ? ticket : nil
    }

    /// Ends the request that holds the upload (another replica asked for it).
    func interruptHolder() {
        let holder = state.withLock { $0.held ? $0.holder : nil }
        holder?()
    }

    /// Hands the upload to the newest waiter, if any.
    func release(_ ticket: Int) {
        let next = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            guard s.owner == ticket, s.held else { return nil }
            s.holder = nil
            if let last = s.waiters.last {
                let others = s.waiters.dropLast().map(\.resume)
                s.waiters = []
                s.owner = last.ticket
                s.holder = last.interrupt
                for o in others { o.resume(returning: false) }
                return last.resume
            }
            s.held = false
            return nil
        }
        next?.resume(returning: true)
    }

}

/// A final response kept for an upload, replayed when a client asks again after losing it.
struct StoredResponse: Sendable, Hashable {
    var status: Int
    var contentType: String
    var body: String

    init(status: Int, contentType: String, body: String) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// Stored as `status content-type\nbody`.
    init(json stored: String) {
        let head = stored.prefix { $0 != "\n" }
        let parts = head.split(separator: " ", maxSplits: 1)
        status = parts.first.flatMap { Int($0) } ?? 200
        contentType = parts.count > 1 ? String(parts[1]) : "application/json"
        body = String(stored.dropFirst(head.count + 1))
    }

    var stored: String { "\(status) \(contentType)\n\(body)" }
}
