import Foundation
import UplinkCodec
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sends one request on its own connection to 127.0.0.1:`port` (`Connection: close`, `Host`
/// and, with a body, `Content-Length` added) and returns the final response, its interim 1xx
/// responses in ``HTTPResponse/interim``. `timeout` bounds the whole exchange. Throws
/// ``HTTPTestError``: a transport failure (refused, reset, closed, timed out) or a malformed
/// answer. A response that arrives even though sending the body failed (a server refusing
/// early) is returned.
public func httpRequest(
    port: Int, method: String, path: String, headers: [(String, String)] = [], body: [UInt8]? = nil, timeout: Double = 10
) throws(HTTPTestError) -> HTTPResponse {
    try HTTPTestRequest(method: method, path: path, headers: headers, body: body).exchange(port: port, timeout: timeout).result.get()
}

extension HTTPTestRequest {
    /// One connection, this request, the final response; the interim responses seen are
    /// returned even when the exchange fails (a 104 may carry the upload's `Location`).
    func exchange(port: Int, timeout: Double) -> (result: Result<HTTPResponse, HTTPTestError>, interim: [HTTPResponse]) {
        let deadline = Deadline(seconds: timeout)
        let connection: RawConnection
        do { connection = try RawConnection(port: port, deadline: deadline) } catch { return (.failure(error), []) }
        defer { connection.close() }
        let result: Result<HTTPResponse, HTTPTestError>
        do throws(HTTPTestError) {
            try connection.send(serialized(port: port), deadline: deadline)
            result = Result { () throws(HTTPTestError) in try connection.readFinalResponse(for: method, deadline: deadline) }
        } catch {
            let answer = Result { () throws(HTTPTestError) in
                try connection.readFinalResponse(for: method, deadline: deadline.capped(at: 1))
            }
            if case .success = answer { result = answer } else { result = .failure(error) }
        }
        return (result, connection.interimResponses)
    }
}

/// One TCP connection on loopback, for tests that need more than a request and its answer:
/// half a request then a hang-up, a slow sender, garbage, a reset, or the server side of a
/// scripted exchange (see ``LoopbackListener``). Operations are serialized on the connection:
/// a `close()` from another thread waits for a pending read to end (each read is bounded by
/// its timeout).
public final class RawConnection: Sendable {
    private let state: Locked<ConnectionState>

    /// Connects to 127.0.0.1:`port` within `timeout` seconds.
    public convenience init(port: Int, timeout: Double = 5) throws(HTTPTestError) {
        try self.init(port: port, deadline: Deadline(seconds: timeout))
    }

    convenience init(port: Int, deadline: Deadline) throws(HTTPTestError) {
        self.init(fd: try LoopbackSocket.openConnection(port: port, deadline: deadline))
    }

    init(fd: Int32) {
        state = Locked(ConnectionState(fd: fd))
    }

    deinit {
        state.withLock { $0.closeSocket(reset: false) }
    }

    /// False once ``close()`` or ``reset()`` was called.
    public var isOpen: Bool { state.withLock { $0.open } }

    /// Every 1xx response ``readFinalResponse(for:timeout:)`` skipped on this connection.
    public var interimResponses: [HTTPResponse] { state.withLock { $0.interim } }

    public func send(_ bytes: [UInt8], timeout: Double = 10) throws(HTTPTestError) {
        try send(bytes, deadline: Deadline(seconds: timeout))
    }

    public func send(_ text: String, timeout: Double = 10) throws(HTTPTestError) {
        try send(Array(text.utf8), timeout: timeout)
    }

    func send(_ bytes: [UInt8], deadline: Deadline) throws(HTTPTestError) {
        try state.withLock { (s: inout ConnectionState) throws(HTTPTestError) in
            try LoopbackSocket.sendAll(try s.openFD(), bytes[...], deadline: deadline)
        }
    }

    /// Sends `bytes` `chunk` bytes at a time with `interval` seconds between chunks (a slow
    /// client); `timeout` bounds the whole send. Stops with the error when the peer goes away.
    public func sendSlowly(_ bytes: [UInt8], chunk: Int, interval: Double, timeout: Double = 60) throws(HTTPTestError) {
        let deadline = Deadline(seconds: timeout)
        try state.withLock { (s: inout ConnectionState) throws(HTTPTestError) in
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + max(1, chunk))
                try LoopbackSocket.sendAll(try s.openFD(), bytes[start..<end], deadline: deadline)
                start = end
                if start < bytes.count {
                    if deadline.hasPassed { throw .timedOut("slow send") }
                    usleep(UInt32(max(0, min(interval, 10)) * 1e6))
                }
            }
        }
    }

    /// The next response on this connection, a 1xx one included. `method` is the request's,
    /// since a response to `HEAD` has no body.
    public func readResponse(for method: String = "GET", timeout: Double = 10) throws(HTTPTestError) -> HTTPResponse {
        let deadline = Deadline(seconds: timeout)
        return try state.withLock { (s: inout ConnectionState) throws(HTTPTestError) in try s.readResponse(method: method, deadline: deadline) }
    }

    /// The next final (non-1xx) response, with the interim responses before it in
    /// ``HTTPResponse/interim`` (a server may send `104 Upload Resumption Supported` first).
    public func readFinalResponse(for method: String = "GET", timeout: Double = 10) throws(HTTPTestError) -> HTTPResponse {
        try readFinalResponse(for: method, deadline: Deadline(seconds: timeout))
    }

    func readFinalResponse(for method: String, deadline: Deadline) throws(HTTPTestError) -> HTTPResponse {
        try state.withLock { (s: inout ConnectionState) throws(HTTPTestError) in
            var interim: [HTTPResponse] = []
            while true {
                var r = try s.readResponse(method: method, deadline: deadline)
                guard (100..<200).contains(r.status), r.status != 101 else {
                    r.interim = interim
                    return r
                }
                interim.append(r)
                s.interim.append(r)
                if interim.count > 32 { throw .malformed("more than 32 interim responses") }
            }
        }
    }

    /// The next request on this connection (for a scripted server in a test).
    public func readRequest(timeout: Double = 10) throws(HTTPTestError) -> HTTPTestRequest {
        let deadline = Deadline(seconds: timeout)
        return try state.withLock { (s: inout ConnectionState) throws(HTTPTestError) in try s.readRequest(deadline: deadline) }
    }

    /// Up to `maxBytes` bytes (buffered ones first), `[]` once the peer has closed.
    public func receive(maxBytes: Int = 64 << 10, timeout: Double = 10) throws(HTTPTestError) -> [UInt8] {
        let deadline = Deadline(seconds: timeout)
        return try state.withLock { (s: inout ConnectionState) throws(HTTPTestError) in
            if s.pos == s.buffer.count {
                s.compact()
                _ = try s.fill(deadline: deadline, phase: "receive", max: max(1, maxBytes))
            }
            let end = min(s.buffer.count, s.pos + max(1, maxBytes))
            defer { s.pos = end }
            return Array(s.buffer[s.pos..<end])
        }
    }

    /// Everything until the peer closes (FIN), at most `maxBytes`; throws `.reset` if it resets
    /// and `.timedOut` if it stays open past `timeout`.
    public func readToEnd(maxBytes: Int = 64 << 20, timeout: Double = 10) throws(HTTPTestError) -> [UInt8] {
        let deadline = Deadline(seconds: timeout)
        return try state.withLock { (s: inout ConnectionState) throws(HTTPTestError) in
            s.compact()
            while try s.fill(deadline: deadline, phase: "read to end", max: 64 << 10) {
                if s.buffer.count > maxBytes { throw .malformed("more than \(maxBytes) bytes before the end") }
            }
            defer { s.pos = s.buffer.count }
            return Array(s.buffer[s.pos...])
        }
    }

    /// Sends a FIN: the peer reads end of stream; this side can still read.
    public func shutdownWrite() {
        state.withLock { if $0.open { LoopbackSocket.shutdownWrite($0.fd) } }
    }

    /// Aborts the connection with a TCP RST (SO_LINGER 0, then close).
    public func reset() {
        state.withLock { $0.closeSocket(reset: true) }
    }

    /// Closes the connection (a FIN, or a RST if unread data remains, as the kernel decides).
    public func close() {
        state.withLock { $0.closeSocket(reset: false) }
    }
}

/// The socket and read buffer of a ``RawConnection``, touched only under its lock.
struct ConnectionState: Sendable {
    var fd: Int32
    var open = true
    var buffer: [UInt8] = []
    /// Start of the unread bytes in `buffer`.
    var pos = 0
    var interim: [HTTPResponse] = []

    init(fd: Int32) { self.fd = fd }

    func openFD() throws(HTTPTestError) -> Int32 {
        guard open else { throw .closedLocally }
        return fd
    }

    mutating func closeSocket(reset: Bool) {
        guard open else { return }
        if reset { LoopbackSocket.setLingerZero(fd) }
        LoopbackSocket.closeDescriptor(fd)
        open = false
    }

    /// Drops the bytes already consumed.
    mutating func compact() {
        if pos > 0 { buffer.removeSubrange(0..<pos); pos = 0 }
    }

    /// Appends what arrives; false at end of stream.
    mutating func fill(deadline: Deadline, phase: String, max: Int = 64 << 10) throws(HTTPTestError) -> Bool {
        let chunk = try LoopbackSocket.receiveSome(try openFD(), max: max, deadline: deadline, phase: phase)
        buffer += chunk
        return !chunk.isEmpty
    }

    /// The bytes of this message so far, for `.closed(receivedBytes:)` (the buffer is compacted
    /// at the start of each message).
    var messageBytes: Int { buffer.count }

    mutating func readHead(deadline: Deadline, phase: String) throws(HTTPTestError) -> ArraySlice<UInt8> {
        compact()
        var scanned = 0
        while true {
            if buffer.count >= 4 {
                for i in scanned...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
                    pos = i + 4
                    return buffer[0..<i]
                }
                scanned = buffer.count - 3
            }
            if buffer.count > HTTPHead.maxHeadBytes { throw .malformed("head longer than \(HTTPHead.maxHeadBytes) bytes") }
            guard try fill(deadline: deadline, phase: phase) else { throw .closed(receivedBytes: messageBytes) }
        }
    }

    mutating func readResponse(method: String, deadline: Deadline) throws(HTTPTestError) -> HTTPResponse {
        let (line, fields) = try HTTPHead.parse(try readHead(deadline: deadline, phase: "response"))
        let (status, reason) = try HTTPHead.statusLine(line)
        let bodiless = method.uppercased() == "HEAD" || (100..<200).contains(status) || status == 204 || status == 304
        let framing: HTTPHead.Framing = bodiless ? .none : try HTTPHead.framing(fields, isRequest: false)
        let body = try readBody(framing, deadline: deadline, phase: "response body")
        return HTTPResponse(status: status, reason: reason, headers: fields, body: body)
    }

    mutating func readRequest(deadline: Deadline) throws(HTTPTestError) -> HTTPTestRequest {
        let (line, fields) = try HTTPHead.parse(try readHead(deadline: deadline, phase: "request"))
        let (method, target) = try HTTPHead.requestLine(line)
        let framing = try HTTPHead.framing(fields, isRequest: true)
        let body = try readBody(framing, deadline: deadline, phase: "request body")
        return HTTPTestRequest(method: method, path: target, headers: fields, body: framing == .none ? nil : body)
    }

    /// Makes sure `count` unread bytes are buffered.
    mutating func need(_ count: Int, deadline: Deadline, phase: String) throws(HTTPTestError) {
        while buffer.count - pos < count {
            guard try fill(deadline: deadline, phase: phase) else { throw .closed(receivedBytes: messageBytes) }
        }
    }

    /// One CRLF-terminated line (without the CRLF), at most 8 KiB.
    mutating func readLine(deadline: Deadline, phase: String) throws(HTTPTestError) -> String {
        var scanned = pos
        while true {
            if buffer.count - scanned >= 2 {
                for i in scanned...(buffer.count - 2) where buffer[i] == 13 && buffer[i + 1] == 10 {
                    defer { pos = i + 2 }
                    return String(decoding: buffer[pos..<i], as: UTF8.self)
                }
                scanned = buffer.count - 1
            }
            if buffer.count - pos > 8 << 10 { throw .malformed("line longer than 8 KiB in a chunked body") }
            guard try fill(deadline: deadline, phase: phase) else { throw .closed(receivedBytes: messageBytes) }
        }
    }

    mutating func readBody(_ framing: HTTPHead.Framing, deadline: Deadline, phase: String) throws(HTTPTestError) -> [UInt8] {
        switch framing {
        case .none:
            return []
        case .length(let n):
            try need(n, deadline: deadline, phase: phase)
            defer { pos += n }
            return Array(buffer[pos..<(pos + n)])
        case .untilClose:
            while try fill(deadline: deadline, phase: phase) {
                if buffer.count - pos > HTTPHead.maxBodyBytes { throw .malformed("body longer than \(HTTPHead.maxBodyBytes) bytes") }
            }
            defer { pos = buffer.count }
            return Array(buffer[pos...])
        case .chunked:
            var body: [UInt8] = []
            while true {
                let line = try readLine(deadline: deadline, phase: phase)
                let sizeText = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0]
                    .trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
                guard !sizeText.isEmpty, sizeText.count <= 8, let size = Int(sizeText, radix: 16) else {
                    throw .malformed("bad chunk size line: \(line.prefix(40))")
                }
                if size == 0 { break }
                guard body.count + size <= HTTPHead.maxBodyBytes else { throw .malformed("body longer than \(HTTPHead.maxBodyBytes) bytes") }
                try need(size + 2, deadline: deadline, phase: phase)
                body += buffer[pos..<(pos + size)]
                guard buffer[pos + size] == 13, buffer[pos + size + 1] == 10 else { throw .malformed("chunk data not followed by CRLF") }
                pos += size + 2
            }
            // The trailer section: fields up to an empty line, ignored.
            var trailers = 0
            while try !readLine(deadline: deadline, phase: phase).isEmpty {
                trailers += 1
                if trailers > 64 { throw .malformed("more than 64 trailer fields") }
            }
            return body
        }
    }
}

/// A listening socket on 127.0.0.1 for a scripted server in a test (or to find a free port).
public final class LoopbackListener: Sendable {
    private let fd: Locked<Int32?>
    public let port: Int

    /// Listens on `port` (0: a free one, then read ``port``).
    public init(port: Int = 0) throws(HTTPTestError) {
        let (fd, bound) = try LoopbackSocket.openListener(port: port)
        self.fd = Locked(fd)
        self.port = bound
    }

    deinit { close() }

    /// The next connection; throws `.timedOut("accept")` when none comes within `timeout`.
    /// A `close()` from another thread waits for a pending accept to end.
    public func accept(timeout: Double = 10) throws(HTTPTestError) -> RawConnection {
        let deadline = Deadline(seconds: timeout)
        return try fd.withLock { (fd: inout Int32?) throws(HTTPTestError) in
            guard let listener = fd else { throw .closedLocally }
            guard let accepted = try LoopbackSocket.acceptConnection(listener, deadline: deadline) else { throw .timedOut("accept") }
            return RawConnection(fd: accepted)
        }
    }

    public func close() {
        fd.withLock {
            if let f = $0 { LoopbackSocket.closeDescriptor(f) }
            $0 = nil
        }
    }
}
