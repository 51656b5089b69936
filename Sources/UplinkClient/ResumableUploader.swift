import Foundation
import UplinkCodec

/// What the client remembers of one upload, saved beside its frame (`<frame>.upload.json`) so a
/// restarted app resumes the same upload resource instead of starting over.
public struct UploadSession: Codable, Sendable, Equatable {
    /// The creation URL path (`/v1/rounds/<round>/updates`).
    public var creation: String
    /// The upload resource (`Location` of the `201`), once the server created it.
    public var upload: String?
    /// The frame's size in bytes.
    public var length: Int
    /// `sha256:<hex>` of the frame: a session is used only for the frame it was made for.
    public var digest: String
    /// When the session was made.
    public var created: Date

    /// The session file of the frame at `framePath`.
    public static func path(forFrame framePath: String) -> String { framePath + ".upload.json" }

    /// Reads the session saved for `frame` at `framePath`; nil when there is none, it does not
    /// parse, or it belongs to other bytes (then it is stale and will be replaced).
    static func load(forFrame framePath: String, frame: [UInt8], creation: String) -> UploadSession? {
        guard let data = FileManager.default.contents(atPath: path(forFrame: framePath)),
              let s = try? JSONDecoder.session.decode(UploadSession.self, from: data),
              s.length == frame.count, s.digest == Self.digest(frame), s.creation == creation else { return nil }
        return s
    }

    func save(forFrame framePath: String) throws(UplinkClientError) {
        let data: Data
        do { data = try JSONEncoder.session.encode(self) } catch { throw .local(UplinkError(.io, "cannot encode the upload session: \(error)")) }
        do { try DurableFile.replace(Self.path(forFrame: framePath), with: [UInt8](data)) } catch { throw .local(error) }
    }

    static func digest(_ frame: [UInt8]) -> String { "sha256:" + SHA256.hex(SHA256.hash(frame)) }
}

extension JSONEncoder {
    static var session: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .iso8601
        return e
    }
}

extension JSONDecoder {
    static var session: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }
}

/// The server's acceptance of an update (the `200` of the completing request).
public struct UploadReceipt: Sendable, Equatable {
    public var round: UInt64
    public var client: String
    /// Acceptance order within the round.
    public var sequence: Int
    public var samples: UInt64
    public var bytes: Int
    /// The update's L2 norm as the server computed it.
    public var norm: Double
    /// The upload resource id.
    public var upload: String

    init?(json body: [UInt8]) {
        guard let j = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any], j["status"] as? String == "accepted",
              let round = (j["round"] as? NSNumber)?.uint64Value, let client = j["client"] as? String else { return nil }
        self.round = round
        self.client = client
        sequence = (j["sequence"] as? NSNumber)?.intValue ?? 0
        samples = (j["samples"] as? NSNumber)?.uint64Value ?? 0
        bytes = (j["bytes"] as? NSNumber)?.intValue ?? 0
        norm = (j["norm"] as? NSNumber)?.doubleValue ?? 0
        upload = j["upload"] as? String ?? ""
    }
}

/// How an upload ended.
public enum UploadVerdict: Sendable, Equatable {
    /// The server accepted the frame.
    case accepted(UploadReceipt)
    /// The server already holds an accepted update of this client for the round (`409`, code
    /// 900): the answer to this frame's completing request was lost, and the frame counted.
    case alreadyAccepted(round: UInt64)
    /// The frame will never count: the round is over, the client was not selected, or the frame
    /// was refused (its problem, with the Uplink code).
    case refused(ServerProblem)

    /// Whether the server holds the frame.
    public var isAccepted: Bool {
        switch self {
        case .accepted, .alreadyAccepted: true
        case .refused: false
        }
    }
}

/// Progress of one upload: bytes the server has stored durably (its `Upload-Offset`) of the total.
public struct UploadProgress: Sendable, Equatable {
    public var acknowledged: Int
    public var total: Int
    /// Requests sent so far and failures retried so far.
    public var requests: Int
    public var retries: Int
}

/// The figures of one upload.
public struct UploadStatistics: Sendable, Equatable {
    /// Requests sent (creation, appends, offset retrievals).
    public var requests = 0
    /// Failed exchanges that were retried (transport errors, 5xx, 408, superseded).
    public var retries = 0
    /// Body bytes handed to the transport, counting a cut append in full (an upper bound of what crossed the network).
    public var bodyBytesSent = 0
    /// The offset the server reported when this run first asked (non-zero: resumed after a restart).
    public var resumedAt: Int?
    /// Seconds from start to verdict.
    public var seconds = 0.0
}

/// The client side of draft-ietf-httpbis-resumable-upload (interop version 8, as `uplink serve`
/// speaks it; `docs/client.md`).
///
/// Careful creation (`POST`, `Upload-Complete: ?0`, `Upload-Length`, no body; or optimistic, the
/// whole frame in the creation, when ``Options/optimistic``), then appends (`PATCH`) no larger
/// than the smaller of the server's `max-append-size` and ``Options/maxAppendBytes``, each from
/// the server's durable offset. On a transport error, a 5xx or a `408`: back off
/// (``RetryPolicy``), `HEAD` for the server's offset, and go on from there. On `409
/// mismatching-upload-offset`: adopt the offset the server names. On `404` (the resource expired
/// or was dropped): create a new one. Other 4xx end the upload with the server's problem. The
/// session is saved before the first append, so an app killed at any point resumes the same
/// upload on restart.
struct ResumableUploader {
    /// Options of an upload.
    struct Options: Sendable {
        var interopVersion = 8
        var maxAppendBytes = 1 << 20
        var optimistic = false
        var retry = RetryPolicy()
        /// Timeouts scale with the body: `base + bytes / minimumRate` seconds per request.
        var requestTimeoutBase = 30.0
        var minimumRate = 4096.0

        init() {}

        /// The upload part of a participant's options.
        init(_ o: ClientOptions) {
            interopVersion = o.interopVersion
            maxAppendBytes = o.maxAppendBytes
            optimistic = o.optimisticUpload
            retry = o.retry
            requestTimeoutBase = o.requestTimeoutBase
            minimumRate = o.minimumRate
        }
    }

    let transport: any UplinkTransport
    let endpoint: ServerEndpoint
    let token: String
    let options: Options

    /// Uploads `frame` (saved at `framePath`) to the creation URL `creation`, resuming the saved
    /// session if there is one for these bytes. `deadline` (the round's) bounds the retries.
    func upload(
        frame: [UInt8], framePath: String, creation: String, round: UInt64, deadline: Date?,
        progress: (UploadProgress) -> Void
    ) async throws -> (UploadVerdict, UploadStatistics) {
        let started = Date()
        var stats = UploadStatistics()
        var budget = RetryBudget(policy: options.retry, deadline: deadline)
        var session = UploadSession.load(forFrame: framePath, frame: frame, creation: creation)
            ?? UploadSession(creation: creation, upload: nil, length: frame.count, digest: UploadSession.digest(frame), created: Date())
        /// The server's durable offset, once known.
        var offset: Int? = nil
        var appendLimit = options.maxAppendBytes
        var lastReported = -1
        func report(_ o: Int) {
            guard o != lastReported else { return }
            lastReported = o
            progress(UploadProgress(acknowledged: o, total: frame.count, requests: stats.requests, retries: budget.total))
        }
        func finish(_ v: UploadVerdict) -> (UploadVerdict, UploadStatistics) {
            stats.retries = budget.total
            stats.seconds = Date().timeIntervalSince(started)
            if v.isAccepted { report(frame.count) }
            return (v, stats)
        }

        while true {
            try Task.checkCancellation()
            // 1. Creation, when no resource is known.
            guard let uploadPath = session.upload else {
                let whole = options.optimistic
                var headers = base()
                headers.append(("Upload-Complete", whole ? "?1" : "?0"))
                headers.append(("Upload-Length", "\(frame.count)"))
                if whole { headers.append(("Content-Type", "application/vnd.uplink.frame")) }
                let body = whole ? frame : []
                stats.requests += 1
                stats.bodyBytesSent += body.count
                guard let r = try await budget.exchange(try request("POST", creation, headers, body), over: transport, "creating the upload") else { continue }
                if let limit = Self.maxAppend(r.head) { appendLimit = min(options.maxAppendBytes, limit) }
                switch r.status {
                case 201:
                    guard let location = r.header("Location") else { throw UplinkClientError.protocolViolation("201 Created without Location") }
                    _ = try endpoint.url(location)
                    session.upload = location
                    try session.save(forFrame: framePath)
                    offset = try Self.offset(r.head, length: frame.count) ?? 0
                    if stats.resumedAt == nil { stats.resumedAt = 0 }
                    budget.progressed()
                    report(offset!)
                    continue
                case 200 where whole:
                    return finish(try verdict(r, round: round))
                default:
                    if let v = try await settle(r, budget: &budget, round: round) { return finish(v) }
                    continue
                }
            }
            // 2. Where the server is, when not known (after a restart, a failure, a superseded request).
            guard let at = offset else {
                stats.requests += 1
                guard let r = try await budget.exchange(try request("HEAD", uploadPath, base(), []), over: transport, "asking for the offset") else { continue }
                if let limit = Self.maxAppend(r.head) { appendLimit = min(options.maxAppendBytes, limit) }
                switch r.status {
                case 200, 204:
                    guard let o = try Self.offset(r.head, length: frame.count) else {
                        throw UplinkClientError.protocolViolation("HEAD answered \(r.status) without Upload-Offset")
                    }
                    if stats.resumedAt == nil { stats.resumedAt = o }
                    offset = o
                    report(o)
                case 404, 409:
                    // Expired, cancelled, or dropped with its round (a HEAD's 409 round-closed
                    // carries no body to say which): a new creation says which, with its problem.
                    session.upload = nil
                    try session.save(forFrame: framePath)
                default:
                    if let v = try await settle(r, budget: &budget, round: round) { return finish(v) }
                }
                continue
            }
            // 3. Append from the server's offset; the last append completes the upload (an empty
            // one at the full length asks for a verdict whose answer was lost).
            let end = min(frame.count, at + max(1, appendLimit))
            let complete = end == frame.count
            var headers = base()
            headers.append(("Content-Type", "application/partial-upload"))
            headers.append(("Upload-Offset", "\(at)"))
            headers.append(("Upload-Complete", complete ? "?1" : "?0"))
            let body = Array(frame[at..<end])
            stats.requests += 1
            stats.bodyBytesSent += body.count
            guard let r = try await budget.exchange(try request("PATCH", uploadPath, headers, body), over: transport, "appending at \(at)") else {
                offset = nil
                continue
            }
            switch r.status {
            case 204:
                guard let o = try Self.offset(r.head, length: frame.count), o >= at else {
                    throw UplinkClientError.protocolViolation("204 to an append without a valid Upload-Offset")
                }
                if o > at { budget.progressed() }
                offset = o
                report(o)
                if o == frame.count, !complete { continue }
            case 200, 201:
                return finish(try verdict(r, round: round))
            case 409 where ServerProblem(status: 409, body: r.body).name == "mismatching-upload-offset":
                guard let o = try Self.offset(r.head, length: frame.count) else {
                    throw UplinkClientError.protocolViolation("409 offset mismatch without Upload-Offset")
                }
                offset = o
                report(o)
            case 404:
                session.upload = nil
                offset = nil
                try session.save(forFrame: framePath)
            default:
                offset = nil
                if let v = try await settle(r, budget: &budget, round: round) { return finish(v) }
            }
        }
    }

    /// A failure answer: retried (5xx, 408, superseded; returns nil after the pause) or final
    /// (returns the verdict, or throws for a refusal that is not about the frame).
    private func settle(_ r: TransportResponse, budget: inout RetryBudget, round: UInt64) async throws -> UploadVerdict? {
        let problem = ServerProblem(status: r.status, body: r.body)
        if r.status >= 500 || r.status == 408 || problem.name == "superseded" {
            try await budget.failed("the server answered \(problem)", retryAfter: r.header("Retry-After").flatMap(Double.init))
            return nil
        }
        if r.status == 409, problem.code == 900 { return .alreadyAccepted(round: round) }
        // The frame's own fate: refused, the round over, not selected. The upload is finished.
        if problem.name == "frame-rejected" || problem.roundIsOver || problem.name == "not-selected" {
            return .refused(problem)
        }
        throw UplinkClientError.refused(problem)
    }

    private func verdict(_ r: TransportResponse, round: UInt64) throws -> UploadVerdict {
        guard let receipt = UploadReceipt(json: r.body) else {
            throw UplinkClientError.protocolViolation("the completing request was answered \(r.status) without an acceptance: \(String(decoding: r.body.prefix(200), as: UTF8.self))")
        }
        return .accepted(receipt)
    }

    private func base() -> [(name: String, value: String)] {
        [("Authorization", "Bearer \(token)"), ("Upload-Draft-Interop-Version", "\(options.interopVersion)")]
    }

    private func request(_ method: String, _ path: String, _ headers: [(name: String, value: String)], _ body: [UInt8]) throws -> TransportRequest {
        TransportRequest(method: method, url: try endpoint.url(path), headers: headers, body: body,
                         timeout: options.requestTimeoutBase + Double(body.count) / options.minimumRate)
    }

    /// `Upload-Offset`, checked to lie within the upload.
    static func offset(_ head: TransportResponseHead, length: Int) throws(UplinkClientError) -> Int? {
        guard let text = head.header("Upload-Offset") else { return nil }
        guard let o = Int(text.trimmingCharacters(in: .whitespaces)), o >= 0, o <= length else {
            throw .protocolViolation("Upload-Offset \(text.prefix(40)) is not within the upload's \(length) bytes")
        }
        return o
    }

    /// `max-append-size` from `Upload-Limit`.
    static func maxAppend(_ head: TransportResponseHead) -> Int? {
        guard let limit = head.header("Upload-Limit") else { return nil }
        for member in limit.split(separator: ",") {
            let kv = member.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0] == "max-append-size", let v = Int(kv[1]), v > 0 { return v }
        }
        return nil
    }

    static func fatal(_ e: TransportError) -> UplinkClientError {
        if case .tls(let s) = e { return .tls(s) }
        return .protocolViolation(e.description)
    }
}
