import Foundation
import UplinkCodec
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a ``CuttingProxy`` ends a connection it cuts.
public enum CutStyle: Sendable, Equatable {
    /// A TCP RST to both sides (SO_LINGER 0, then close), as a dropped network path or a
    /// crashed middlebox looks. The bytes already forwarded are acknowledged by the receiving
    /// kernel before the reset is sent.
    case reset
    /// A FIN to both sides; whatever either side sends afterwards is read and discarded until it
    /// closes too (at most 2 s), so neither sees a reset.
    case fin
}

/// Where a ``CuttingProxy`` cuts one connection: after forwarding exactly `afterBytes` bytes in
/// the named direction (0: as soon as both sides are connected).
public enum Cut: Sendable, Equatable, CustomStringConvertible {
    case clientToServer(afterBytes: Int, style: CutStyle = .reset)
    case serverToClient(afterBytes: Int, style: CutStyle = .reset)

    public var afterBytes: Int {
        switch self {
        case .clientToServer(let n, _), .serverToClient(let n, _): n
        }
    }

    public var style: CutStyle {
        switch self {
        case .clientToServer(_, let s), .serverToClient(_, let s): s
        }
    }

    /// A seeded random cut: a direction (each half the time), an offset in `0...clientBytes`
    /// or `0...serverBytes` for it, and a style (each half the time).
    public static func random(clientBytes: Int, serverBytes: Int, using rng: inout SplitMix64) -> Cut {
        let style: CutStyle = rng.below(2) == 0 ? .reset : .fin
        if rng.below(2) == 0 {
            return .clientToServer(afterBytes: Int(rng.below(UInt64(max(0, clientBytes)) + 1)), style: style)
        }
        return .serverToClient(afterBytes: Int(rng.below(UInt64(max(0, serverBytes)) + 1)), style: style)
    }

    public var description: String {
        switch self {
        case .clientToServer(let n, let s): "client→server after \(n) bytes (\(s))"
        case .serverToClient(let n, let s): "server→client after \(n) bytes (\(s))"
        }
    }
}

/// What happened to one connection through a ``CuttingProxy``.
public struct ProxiedConnection: Sendable {
    public enum End: Sendable, Equatable {
        /// Both sides finished (each sent a FIN that was passed on).
        case closed
        /// Cut by plan.
        case cut
        /// The client or the server reset its side; the reset was passed on to the other.
        case clientReset, serverReset
        /// The target port refused or did not answer; the client was reset.
        case targetUnreachable
        /// The proxy was closed while the connection was open; both sides were reset.
        case proxyClosed
    }

    /// The order in which it was accepted, from 0.
    public var index: Int
    /// The cut planned for it, nil for pass-through.
    public var plan: Cut?
    /// Bytes forwarded (written to the other side) each way.
    public var clientToServerBytes = 0
    public var serverToClientBytes = 0
    /// How it ended; nil while it is open.
    public var end: End?
}

/// A TCP proxy on 127.0.0.1 in front of a server on loopback, which cuts chosen connections
/// after exactly N bytes in one direction (see ``plan(_:)``) and passes the others through,
/// keeping a record of every connection. One thread per connection relays both directions
/// with nonblocking sockets, so neither direction can stall the other.
public final class CuttingProxy: Sendable {
    /// The port clients connect to.
    public let port: Int
    private let core: ProxyCore

    /// Listens on a free loopback port and forwards each connection to 127.0.0.1:`targetPort`.
    public init(targetPort: Int) throws(HTTPTestError) {
        let (fd, port) = try LoopbackSocket.openListener(port: 0)
        self.port = port
        core = ProxyCore(listener: fd, target: targetPort)
        let core = self.core
        let thread = Thread { core.acceptLoop() }
        thread.name = "CuttingProxy accept :\(port)"
        thread.start()
    }

    deinit { close() }

    /// The port connections are forwarded to.
    public var targetPort: Int { core.state.withLock { $0.target } }

    /// Forwards connections accepted from now on to `port` (a restarted server's new port).
    public func retarget(_ port: Int) {
        core.state.withLock { $0.target = port }
    }

    /// Queues the plan for the next accepted connection not yet planned: a cut, or nil for
    /// pass-through. Connections beyond the queue pass through.
    public func plan(_ cut: Cut?) {
        core.state.withLock { $0.plans.append(cut) }
    }

    /// Every connection accepted so far, in order.
    public var connections: [ProxiedConnection] { core.state.withLock { $0.records } }

    /// Connections accepted, bytes forwarded each way, and connections cut so far.
    public var totals: (connections: Int, clientToServerBytes: Int, serverToClientBytes: Int, cuts: Int) {
        core.state.withLock { s in
            (s.records.count, s.records.reduce(0) { $0 + $1.clientToServerBytes },
             s.records.reduce(0) { $0 + $1.serverToClientBytes }, s.records.count { $0.end == .cut })
        }
    }

    /// Waits until every accepted connection has ended: false if some are still open after
    /// `timeout` seconds.
    public func waitUntilIdle(timeout: Double = 5) -> Bool {
        let deadline = Deadline(seconds: timeout)
        while core.state.withLock({ s in s.records.contains { $0.end == nil } }) {
            if deadline.hasPassed { return false }
            usleep(2_000)
        }
        return true
    }

    /// Stops accepting, resets the connections still open, and waits (at most 5 s) for the
    /// proxy's threads to finish.
    public func close() {
        core.state.withLock { $0.closing = true }
        let deadline = Deadline(seconds: 5)
        while core.state.withLock({ !$0.acceptLoopDone || $0.relays > 0 }), !deadline.hasPassed {
            usleep(2_000)
        }
    }
}

/// The state a ``CuttingProxy`` shares with its threads (not the proxy itself, so dropping the
/// proxy closes it).
final class ProxyCore: Sendable {
    struct State: Sendable {
        var target: Int
        var plans: [Cut?] = []
        var records: [ProxiedConnection] = []
        var closing = false
        var acceptLoopDone = false
        var relays = 0
    }

    let listener: Int32
    let state: Locked<State>

    init(listener: Int32, target: Int) {
        self.listener = listener
        state = Locked(State(target: target))
    }

    var isClosing: Bool { state.withLock { $0.closing } }

    func acceptLoop() {
        defer {
            LoopbackSocket.closeDescriptor(listener)
            state.withLock { $0.acceptLoopDone = true }
        }
        while !isClosing {
            guard let client = try? LoopbackSocket.acceptConnection(listener, deadline: Deadline(seconds: 0.05)) else { continue }
            let (index, plan, target) = state.withLock { s in
                let plan = s.plans.isEmpty ? nil : s.plans.removeFirst()
                s.records.append(ProxiedConnection(index: s.records.count, plan: plan))
                s.relays += 1
                return (s.records.count - 1, plan, s.target)
            }
            let thread = Thread { [self] in
                let end = relay(client: client, target: target, index: index, plan: plan)
                state.withLock {
                    $0.records[index].end = end
                    $0.relays -= 1
                }
            }
            thread.name = "CuttingProxy relay #\(index)"
            thread.start()
        }
    }

    func addForwarded(_ n: Int, index: Int, direction: Int) {
        state.withLock {
            if direction == 0 { $0.records[index].clientToServerBytes += n } else { $0.records[index].serverToClientBytes += n }
        }
    }

    /// Relays one connection until both sides finish, one resets, the plan cuts it, or the
    /// proxy closes. Direction 0 is client→server (fds[0] → fds[1]), direction 1 the reverse.
    func relay(client: Int32, target: Int, index: Int, plan: Cut?) -> ProxiedConnection.End {
        guard let server = try? LoopbackSocket.openConnection(port: target, deadline: Deadline(seconds: 5)) else {
            LoopbackSocket.setLingerZero(client)
            LoopbackSocket.closeDescriptor(client)
            return .targetUnreachable
        }
        let fds = [client, server]
        let cutDirection: Int? = switch plan {
        case .clientToServer: 0
        case .serverToClient: 1
        case nil: nil
        }
        let cutAt = plan?.afterBytes ?? 0
        var pending: [[UInt8]] = [[], []]
        var pendingSent = [0, 0]
        var sourceEnded = [false, false]
        var finPassed = [false, false]
        var forwarded = [0, 0]
        var buffer = [UInt8](repeating: 0, count: 64 << 10)

        func abort(_ end: ProxiedConnection.End) -> ProxiedConnection.End {
            for fd in fds { LoopbackSocket.setLingerZero(fd); LoopbackSocket.closeDescriptor(fd) }
            return end
        }
        /// Bytes direction `d` may still read before its cut.
        func allowance(_ d: Int) -> Int {
            d == cutDirection ? cutAt - forwarded[d] - (pending[d].count - pendingSent[d]) : Int.max
        }

        if let plan, plan.afterBytes <= 0 { return cut(fds, style: plan.style, drainedSide: nil) }
        while true {
            if isClosing { return abort(.proxyClosed) }
            for d in 0..<2 where sourceEnded[d] && pending[d].isEmpty && !finPassed[d] {
                LoopbackSocket.shutdownWrite(fds[1 - d])
                finPassed[d] = true
            }
            if finPassed[0] && finPassed[1] {
                for fd in fds { LoopbackSocket.closeDescriptor(fd) }
                return .closed
            }
            var polls = [pollfd(fd: client, events: 0, revents: 0), pollfd(fd: server, events: 0, revents: 0)]
            for d in 0..<2 {
                if !pending[d].isEmpty {
                    polls[1 - d].events |= LoopbackSocket.pollOut
                } else if !sourceEnded[d] && allowance(d) > 0 {
                    polls[d].events |= LoopbackSocket.pollIn
                }
            }
            let rc = poll(&polls, 2, 50)
            if rc <= 0 { continue }
            var progressed = false
            for d in 0..<2 {
                let src = d, dst = 1 - d
                if polls[src].events & LoopbackSocket.pollIn != 0,
                   polls[src].revents & (LoopbackSocket.pollIn | LoopbackSocket.pollErrorOrHangup) != 0 {
                    let want = min(buffer.count, allowance(d))
                    let n = buffer.withUnsafeMutableBytes { recv(fds[src], $0.baseAddress, want, 0) }
                    if n > 0 {
                        pending[d] = Array(buffer[0..<n])
                        pendingSent[d] = 0
                        progressed = true
                    } else if n == 0 {
                        sourceEnded[d] = true
                        progressed = true
                    } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                        return abort(src == 0 ? .clientReset : .serverReset)
                    }
                }
                if polls[dst].events & LoopbackSocket.pollOut != 0, !pending[d].isEmpty,
                   polls[dst].revents & (LoopbackSocket.pollOut | LoopbackSocket.pollErrorOrHangup) != 0 {
                    let m = LoopbackSocket.sendSome(fds[dst], pending[d][pendingSent[d]...])
                    if m > 0 {
                        pendingSent[d] += m
                        forwarded[d] += m
                        addForwarded(m, index: index, direction: d)
                        if pendingSent[d] == pending[d].count { pending[d] = []; pendingSent[d] = 0 }
                        progressed = true
                        if d == cutDirection && forwarded[d] == cutAt {
                            return cut(fds, style: plan!.style, drainedSide: fds[dst])
                        }
                    } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                        return abort(dst == 0 ? .clientReset : .serverReset)
                    }
                }
            }
            // An error on a socket not polled for anything (a reset while we only wrote the
            // other way): pass it on rather than spin on POLLERR.
            for i in 0..<2 where polls[i].events == 0 && polls[i].revents & Int16(POLLERR) != 0 {
                if LoopbackSocket.pendingError(fds[i]) != 0 { return abort(i == 0 ? .clientReset : .serverReset) }
            }
            if !progressed { usleep(1_000) }
        }
    }

    /// Cuts both sockets. For a reset, first waits (at most 1 s) until the receiving kernel has
    /// acknowledged every byte forwarded to `drainedSide`, so a reset does not discard them in
    /// our own send queue.
    func cut(_ fds: [Int32], style: CutStyle, drainedSide: Int32?) -> ProxiedConnection.End {
        switch style {
        case .reset:
            if let side = drainedSide {
                let deadline = Deadline(seconds: 1)
                while let left = LoopbackSocket.unacknowledgedBytes(side), left > 0, !deadline.hasPassed { usleep(200) }
            }
            for fd in fds { LoopbackSocket.setLingerZero(fd); LoopbackSocket.closeDescriptor(fd) }
        case .fin:
            for fd in fds { LoopbackSocket.shutdownWrite(fd) }
            var open = [true, true]
            var sink = [UInt8](repeating: 0, count: 64 << 10)
            let deadline = Deadline(seconds: 2)
            while open.contains(true), !deadline.hasPassed, !isClosing {
                var polls = fds.enumerated().map { pollfd(fd: open[$0] ? $1 : -1, events: LoopbackSocket.pollIn, revents: 0) }
                guard poll(&polls, 2, 50) > 0 else { continue }
                for i in 0..<2 where open[i] && polls[i].revents != 0 {
                    let n = sink.withUnsafeMutableBytes { recv(fds[i], $0.baseAddress, $0.count, 0) }
                    if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { open[i] = false }
                }
            }
            for fd in fds { LoopbackSocket.closeDescriptor(fd) }
        }
        return .cut
    }
}
