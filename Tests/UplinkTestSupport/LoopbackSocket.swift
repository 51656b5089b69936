import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in monotonic time after which a wait gives up: every wait in the network test
/// tools is bounded by one, so no test can hang on a silent peer.
struct Deadline: Sendable {
    let instant: ContinuousClock.Instant

    init(seconds: Double) {
        instant = .now + .nanoseconds(Int64(max(0, min(seconds, 86_400)) * 1e9))
    }

    /// The earlier of this deadline and `seconds` from now.
    func capped(at seconds: Double) -> Deadline {
        let other = Deadline(seconds: seconds)
        return other.instant < instant ? other : self
    }

    var hasPassed: Bool { ContinuousClock.now >= instant }

    /// Milliseconds left, rounded up, for poll(2); 0 once passed.
    var pollMilliseconds: Int32 {
        let left = instant - .now
        if left <= .zero { return 0 }
        let (seconds, attoseconds) = left.components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: ms)
    }
}

/// Nonblocking IPv4 loopback TCP sockets, each wait bounded by a ``Deadline``. Plumbing for
/// ``RawConnection``, ``LoopbackListener`` and ``CuttingProxy``; file descriptors are
/// close-on-exec so a launched server never inherits a test's sockets.
enum LoopbackSocket {
    static let pollIn = Int16(POLLIN)
    static let pollOut = Int16(POLLOUT)
    static let pollErrorOrHangup = Int16(POLLERR | POLLHUP)

    static func address(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        #if canImport(Darwin)
        a.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
        a.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
        return a
    }

    static func makeSocket() throws(HTTPTestError) -> Int32 {
        #if os(Linux)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(call: "socket", errno: errno) }
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        guard fd >= 0 else { throw .system(call: "socket", errno: errno) }
        configureAccepted(fd)
        #endif
        return fd
    }

    /// Close-on-exec and nonblocking (Linux sockets made by `socket` get both as flags), no
    /// SIGPIPE on Darwin (Linux passes MSG_NOSIGNAL to each send).
    static func configureAccepted(_ fd: Int32) {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        #if !os(Linux)
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// A connection to 127.0.0.1:`port`.
    static func openConnection(port: Int, deadline: Deadline) throws(HTTPTestError) -> Int32 {
        let (fd, connectErrno) = try startConnection(port: port)
        return try finishConnection(fd, port: port, connectErrno: connectErrno, deadline: deadline)
    }

    /// A non-blocking socket with `connect` to 127.0.0.1:`port` called: the socket and the
    /// `errno` of `connect` (0 when it completed at once).
    static func startConnection(port: Int) throws(HTTPTestError) -> (fd: Int32, connectErrno: Int32) {
        guard (1...65535).contains(port) else { throw .connectionRefused(port: port) }
        let fd = try makeSocket()
        var a = address(port: port)
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return (fd, rc == 0 ? 0 : errno)
    }

    /// Waits for a connect started by ``startConnection(port:)`` and returns the connected
    /// socket, or closes it and throws.
    ///
    /// A peer may accept, send and reset before this thread runs again. Its bytes are still in
    /// our receive queue and a reader must get them before the reset, so this looks for them
    /// first: reading `SO_ERROR` would consume the pending `ECONNRESET` (the reader would then
    /// see a clean end of stream), and failing the connect would throw the bytes away. A peek
    /// that finds no bytes consumes the pending error itself, so the error is taken from it.
    static func finishConnection(_ fd: Int32, port: Int, connectErrno: Int32, deadline: Deadline) throws(HTTPTestError) -> Int32 {
        var e = connectErrno
        if e == EINPROGRESS || e == EINTR {
            let ready: Bool
            do { ready = try wait(fd, events: pollOut, deadline: deadline) } catch { close(fd); throw error }
            guard ready else { close(fd); throw .timedOut("connect") }
            var probe: UInt8 = 0
            let peeked = recv(fd, &probe, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
            let peekError = errno
            if peeked >= 0 {
                setNoDelay(fd)
                return fd
            }
            // No bytes and no pending error: connected. Not SO_ERROR now: bytes and a reset
            // landing after the peek would lose the bytes the same way; a later read reports it.
            e = peekError == EAGAIN || peekError == EWOULDBLOCK || peekError == EINTR ? 0 : peekError
        }
        if e != 0 {
            close(fd)
            throw e == ECONNREFUSED ? .connectionRefused(port: port) : error(for: e, call: "connect")
        }
        setNoDelay(fd)
        return fd
    }

    /// A listening socket on 127.0.0.1:`port` (0: a free port) and the port it got.
    static func openListener(port: Int, backlog: Int32 = 1024) throws(HTTPTestError) -> (fd: Int32, port: Int) {
        let fd = try makeSocket()
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var a = address(port: port)
        let bound = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { let e = errno; close(fd); throw .system(call: "bind", errno: e) }
        guard listen(fd, backlog) == 0 else { let e = errno; close(fd); throw .system(call: "listen", errno: e) }
        var got = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &got) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, Int(UInt16(bigEndian: got.sin_port)))
    }

    /// The next connection on `listener`, or nil when none came before `deadline`.
    static func acceptConnection(_ listener: Int32, deadline: Deadline) throws(HTTPTestError) -> Int32? {
        while true {
            // accept4 is not visible from Swift's Glibc module; set the flags right after.
            let fd = accept(listener, nil, nil)
            if fd >= 0 { configureAccepted(fd) }
            if fd >= 0 { setNoDelay(fd); return fd }
            let e = errno
            switch e {
            case EINTR, ECONNABORTED: continue
            case EAGAIN, EWOULDBLOCK:
                guard try wait(listener, events: pollIn, deadline: deadline) else { return nil }
            default: throw .system(call: "accept", errno: e)
            }
        }
    }

    /// Waits until `fd` is ready for `events` (or has an error or hang-up): false at the deadline.
    static func wait(_ fd: Int32, events: Int16, deadline: Deadline) throws(HTTPTestError) -> Bool {
        while true {
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, deadline.pollMilliseconds)
            if rc > 0 { return true }
            if rc == 0 { return false }
            if errno != EINTR { throw .system(call: "poll", errno: errno) }
        }
    }

    /// Sends all of `bytes`, or throws (`.timedOut("send")` at the deadline).
    static func sendAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>, deadline: Deadline) throws(HTTPTestError) {
        var sent = 0
        while sent < bytes.count {
            let n = sendSome(fd, bytes.dropFirst(sent))
            if n > 0 { sent += n; continue }
            let e = errno
            switch e {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK:
                guard try wait(fd, events: pollOut, deadline: deadline) else { throw .timedOut("send") }
            default: throw error(for: e, call: "send")
            }
        }
    }

    /// One nonblocking `send` without SIGPIPE: bytes sent, or -1 with `errno` set.
    static func sendSome(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Int {
        if bytes.isEmpty { return 0 }
        #if os(Linux)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        return bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, flags) }
    }

    /// Up to `max` bytes, `[]` at end of stream, or throws (`.timedOut(phase)` at the deadline).
    static func receiveSome(_ fd: Int32, max: Int, deadline: Deadline, phase: String) throws(HTTPTestError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: Swift.max(1, max))
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { buffer.removeSubrange(n...); return buffer }
            let e = errno
            switch e {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK:
                guard try wait(fd, events: pollIn, deadline: deadline) else { throw .timedOut(phase) }
            default: throw error(for: e, call: "recv")
            }
        }
    }

    /// Makes the next `close` send a TCP RST instead of a FIN.
    static func setLingerZero(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }

    /// Closes `fd` (callers whose own `close()` hides the C function use this).
    static func closeDescriptor(_ fd: Int32) {
        _ = close(fd)
    }

    static func shutdownWrite(_ fd: Int32) {
        _ = shutdown(fd, Int32(SHUT_WR))
    }

    /// Bytes written to `fd` that the peer has not acknowledged yet (Linux `SIOCOUTQ`), or nil
    /// where that cannot be asked.
    static func unacknowledgedBytes(_ fd: Int32) -> Int? {
        #if os(Linux)
        var n: Int32 = 0
        let siocoutq: UInt = 0x5411
        return ioctl(fd, siocoutq, &n) == 0 ? Int(n) : nil
        #else
        return nil
        #endif
    }

    /// The pending error of `fd` (SO_ERROR), 0 if none.
    static func pendingError(_ fd: Int32) -> Int32 {
        var e: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len)
        return e
    }

    static func error(for e: Int32, call: String) -> HTTPTestError {
        switch e {
        case ECONNRESET, EPIPE, ENOTCONN: .reset
        case ETIMEDOUT: .timedOut(call)
        default: .system(call: call, errno: e)
        }
    }
}
