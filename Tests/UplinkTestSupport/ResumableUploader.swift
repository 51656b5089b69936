import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One upload by the test-side client of the resumable uploads draft (interop version 8), as
/// the Uplink server speaks it (`docs/server.md`): creation by `POST` (empty, or optimistic with
/// the whole body), appends by `PATCH` at the server's offset, `HEAD` to learn the offset after
/// a transport failure or a 5xx, and the `Upload-Offset` of a `409 mismatching-upload-offset`
/// adopted. Each ``step()`` is exactly one request on one connection, so a test can cut, kill
/// or restart the server between steps; ``run()`` steps with retries until an outcome.
///
/// Every `Upload-Offset` the server reports is kept in ``reportedOffsets`` (tests assert they
/// never decrease) and every request in ``exchanges``.
public struct ResumableUpload: Sendable {
    public struct Options: Sendable {
        /// `Upload-Draft-Interop-Version` sent on every request.
        public var interopVersion: Int
        /// Create with the whole body and `Upload-Complete: ?1`.
        public var optimistic: Bool
        /// Largest `PATCH` body, below the server's `max-append-size` (nil: the server's limit).
        public var appendSize: Int?
        /// Bound on each request, in seconds.
        public var requestTimeout: Double
        /// ``run()`` gives up after this many requests…
        public var maxRequests: Int
        /// …or after this many seconds.
        public var retryDuration: Double
        /// Pause after a failed request (transport error or 5xx), in seconds.
        public var backoff: Double
        /// More headers on every request.
        public var extraHeaders: [HTTPHeader]

        public init(interopVersion: Int = 8, optimistic: Bool = false, appendSize: Int? = nil, requestTimeout: Double = 10,
                    maxRequests: Int = 200, retryDuration: Double = 30, backoff: Double = 0.02, extraHeaders: [HTTPHeader] = []) {
            self.interopVersion = interopVersion
            self.optimistic = optimistic
            self.appendSize = appendSize
            self.requestTimeout = requestTimeout
            self.maxRequests = maxRequests
            self.retryDuration = retryDuration
            self.backoff = backoff
            self.extraHeaders = extraHeaders
        }
    }

    /// How an upload ended.
    public enum Outcome: Sendable {
        /// The request that completed the upload got a 2xx: the server's acceptance.
        case accepted(HTTPResponse)
        /// A `HEAD` (this response) says the upload is complete, but the answer to the request
        /// that completed it was lost.
        case completeUnacknowledged(HTTPResponse)
        /// The server refused with a final 4xx (other than an offset mismatch, which is resumed).
        case refused(HTTPResponse)
        /// The server broke the contract (a 201 without `Location`, a 204 without `Upload-Offset`…).
        case protocolViolation(String)
        /// Out of requests or time; the last failure.
        case gaveUp(String)

        /// The response that ended the upload, if one did.
        public var response: HTTPResponse? {
            switch self {
            case .accepted(let r), .completeUnacknowledged(let r), .refused(let r): r
            case .protocolViolation, .gaveUp: nil
            }
        }
    }

    /// One request and what came of it.
    public struct Exchange: Sendable {
        public var method: String
        public var path: String
        /// The `Upload-Offset` sent (PATCH) and the number of body bytes.
        public var sentOffset: Int?
        public var bodyBytes: Int
        /// The `Upload-Complete` sent.
        public var sentComplete: Bool?
        /// The final status, or nil when the exchange failed with `error`.
        public var status: Int?
        public var error: HTTPTestError?
        /// The `Upload-Offset` the final response reported.
        public var reportedOffset: Int?
    }

    public let body: [UInt8]
    public let creationPath: String
    public let token: String?
    public let options: Options
    private let port: @Sendable () -> Int

    /// The upload's path (from `Location`, scheme and authority dropped), once created.
    public private(set) var location: String?
    /// The offset the server last reported durable: the next append starts here.
    public private(set) var offset = 0
    public private(set) var limit: UploadLimit?
    /// Every `Upload-Offset` the server reported (final and interim responses), in order.
    public private(set) var reportedOffsets: [Int] = []
    public private(set) var exchanges: [Exchange] = []
    /// Set once the upload has ended.
    public private(set) var outcome: Outcome?
    private var needsHead = false

    /// An upload of `body` created at `creationPath` on 127.0.0.1:`port`.
    public init(body: [UInt8], creationPath: String, token: String?, port: Int, options: Options = Options()) {
        self.init(body: body, creationPath: creationPath, token: token, port: { port }, options: options)
    }

    /// As above, with the port read before each request (a server restarted on a new port, or
    /// a proxy in front of it).
    public init(body: [UInt8], creationPath: String, token: String?, port: @escaping @Sendable () -> Int, options: Options = Options()) {
        self.body = body
        self.creationPath = creationPath
        self.token = token
        self.port = port
        self.options = options
    }

    /// True when no reported offset is below an earlier one.
    public var offsetsNeverDecreased: Bool {
        zip(reportedOffsets, reportedOffsets.dropFirst()).allSatisfy { $0 <= $1 }
    }

    /// Steps, pausing ``Options/backoff`` after each failed request, until an outcome or until
    /// ``Options/maxRequests`` requests or ``Options/retryDuration`` seconds are spent.
    public mutating func run() -> Outcome {
        let deadline = Deadline(seconds: options.retryDuration)
        while true {
            if let outcome = step() { return outcome }
            if exchanges.count >= options.maxRequests || deadline.hasPassed {
                let why = "gave up after \(exchanges.count) requests: " + (exchanges.last.map(Self.summary) ?? "none")
                outcome = .gaveUp(why)
                return .gaveUp(why)
            }
            if let last = exchanges.last, last.error != nil || (last.status ?? 0) >= 500 {
                usleep(UInt32(max(0, min(options.backoff, 5)) * 1e6))
            }
        }
    }

    /// Exactly one request on one connection: the creation while none succeeded, a `HEAD`
    /// after a failure, else the next `PATCH`. Returns the outcome once the upload has ended,
    /// nil while it should go on.
    public mutating func step() -> Outcome? {
        if let outcome { return outcome }
        let result: Outcome?
        if location == nil {
            result = create()
        } else if needsHead {
            result = head()
        } else {
            result = append()
        }
        outcome = result
        return result
    }

    private var commonHeaders: [HTTPHeader] {
        var h = [HTTPHeader("Upload-Draft-Interop-Version", "\(options.interopVersion)")]
        if let token { h.append(HTTPHeader("Authorization", "Bearer \(token)")) }
        return h + options.extraHeaders
    }

    private mutating func create() -> Outcome? {
        let complete = options.optimistic
        var headers = commonHeaders
        headers.append(HTTPHeader("Upload-Complete", complete ? "?1" : "?0"))
        headers.append(HTTPHeader("Upload-Length", "\(body.count)"))
        guard let r = send("POST", creationPath, headers: headers, body: complete ? body : [], sentOffset: nil, sentComplete: complete) else {
            // A 104 that named the upload before the cut lets it resume instead of starting over.
            if location != nil { needsHead = true }
            return nil
        }
        if r.status >= 500 {
            if adoptLocation(r) { needsHead = true }
            return nil
        }
        guard (200..<300).contains(r.status) else { return .refused(r) }
        adoptLimit(r)
        if complete, let done = finished(r) { return done }
        guard adoptLocation(r) else { return .protocolViolation("\(r.status) to the creation without a Location") }
        guard let o = reported(r) else { return .protocolViolation("\(r.status) to the creation without an Upload-Offset") }
        return adopt(offset: o)
    }

    private mutating func head() -> Outcome? {
        guard let path = location, let r = send("HEAD", path, headers: commonHeaders, body: nil, sentOffset: nil, sentComplete: nil) else { return nil }
        if r.status >= 500 { return nil }
        guard (200..<300).contains(r.status) else { return .refused(r) }
        adoptLimit(r)
        guard let o = reported(r) else { return .protocolViolation("HEAD \(r.status) without an Upload-Offset") }
        guard let complete = r.header("Upload-Complete").flatMap(StructuredField.boolean) else {
            return .protocolViolation("HEAD \(r.status) without a structured Upload-Complete")
        }
        needsHead = false
        if complete {
            return o == body.count ? .completeUnacknowledged(r) : .protocolViolation("HEAD says complete at offset \(o) of \(body.count)")
        }
        return adopt(offset: o)
    }

    private mutating func append() -> Outcome? {
        guard let path = location else { return nil }
        let length = min(body.count - offset, limit?.maxAppendSize ?? Int.max, options.appendSize ?? Int.max)
        let complete = offset + length == body.count
        var headers = commonHeaders
        headers.append(HTTPHeader("Content-Type", "application/partial-upload"))
        headers.append(HTTPHeader("Upload-Offset", "\(offset)"))
        headers.append(HTTPHeader("Upload-Complete", complete ? "?1" : "?0"))
        guard let r = send("PATCH", path, headers: headers, body: Array(body[offset..<(offset + length)]), sentOffset: offset, sentComplete: complete) else {
            needsHead = true
            return nil
        }
        if r.status >= 500 { needsHead = true; return nil }
        if r.status == 409 {
            guard Self.problemType(r)?.contains("mismatching-upload-offset") == true else { return .refused(r) }
            if let o = reported(r) { return adopt(offset: o) }
            needsHead = true
            return nil
        }
        guard (200..<300).contains(r.status) else { return .refused(r) }
        if complete, let done = finished(r) { return done }
        guard let o = reported(r) else { return .protocolViolation("PATCH \(r.status) without an Upload-Offset") }
        return adopt(offset: o)
    }

    /// The 2xx to a request that carried the last byte accepts the upload, unless the server
    /// says it stored less.
    private func finished(_ r: HTTPResponse) -> Outcome? {
        if let o = reported(r), o < body.count { return nil }
        if r.header("Upload-Complete").flatMap(StructuredField.boolean) == false { return nil }
        return .accepted(r)
    }

    private mutating func adopt(offset o: Int) -> Outcome? {
        guard o >= 0, o <= body.count else { return .protocolViolation("Upload-Offset \(o) outside 0...\(body.count)") }
        offset = o
        return nil
    }

    private mutating func adoptLocation(_ r: HTTPResponse) -> Bool {
        guard let value = r.header("Location"), !value.isEmpty else { return location != nil }
        location = Self.path(of: value)
        return true
    }

    private mutating func adoptLimit(_ r: HTTPResponse) {
        if let value = r.header("Upload-Limit"), let l = UploadLimit(headerValue: value) { limit = l }
    }

    private func reported(_ r: HTTPResponse) -> Int? {
        r.header("Upload-Offset").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// One exchange, logged with its offsets; nil on a transport failure. Interim responses
    /// count too: a 104 may name the upload and its offset before the connection is cut.
    private mutating func send(_ method: String, _ path: String, headers: [HTTPHeader], body: [UInt8]?, sentOffset: Int?, sentComplete: Bool?) -> HTTPResponse? {
        let request = HTTPTestRequest(method: method, path: path, headers: headers, body: body)
        let (result, interim) = request.exchange(port: port(), timeout: options.requestTimeout)
        for r in interim {
            if let o = reported(r) { reportedOffsets.append(o) }
            if method == "POST" { _ = adoptLocation(r) }
        }
        var exchange = Exchange(method: method, path: path, sentOffset: sentOffset, bodyBytes: body?.count ?? 0, sentComplete: sentComplete)
        defer { exchanges.append(exchange) }
        switch result {
        case .failure(let e):
            exchange.error = e
            return nil
        case .success(let r):
            exchange.status = r.status
            exchange.reportedOffset = reported(r)
            if let o = exchange.reportedOffset { reportedOffsets.append(o) }
            return r
        }
    }

    /// The path of a `Location` value (absolute URLs lose scheme and authority, since the port
    /// a test reaches the server on may differ from the one the server knows).
    static func path(of location: String) -> String {
        for scheme in ["http://", "https://"] where location.lowercased().hasPrefix(scheme) {
            let rest = location.dropFirst(scheme.count)
            return rest.firstIndex(of: "/").map { String(rest[$0...]) } ?? "/"
        }
        return location
    }

    /// The `type` of a problem-details body (RFC 9457), if the body is one.
    static func problemType(_ r: HTTPResponse) -> String? {
        r.json()?["type"] as? String
    }

    static func summary(_ e: Exchange) -> String {
        "\(e.method) \(e.path)" + (e.sentOffset.map { " at \($0)" } ?? "") + " → " + (e.status.map { "\($0)" } ?? e.error.map { "\($0)" } ?? "?")
    }
}
