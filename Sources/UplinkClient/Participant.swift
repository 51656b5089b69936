import Foundation
import UplinkCodec

/// Options of an ``UplinkParticipant``.
public struct ClientOptions: Sendable {
    /// Allow plain `http://` to a host that is not loopback (behind a TLS-terminating proxy on
    /// the same host). Off: such a URL is refused before anything is sent.
    public var allowInsecureHTTP = false
    /// PEM certificates to trust instead of the system store (`uplink participate --ca`).
    public var trustedCertificatesPEM: [UInt8]? = nil
    /// Retries of failed exchanges.
    public var retry = RetryPolicy()
    /// Largest body of one append; the server's `max-append-size` lowers it further.
    public var maxAppendBytes = 1 << 20
    /// Send the whole frame in the creation request (one round trip when nothing fails; a cut
    /// creation is sent again whole).
    public var optimisticUpload = false
    /// Largest model download accepted.
    public var maxModelBytes = 1 << 31
    /// `Upload-Draft-Interop-Version`.
    public var interopVersion = 8
    /// Requests time out after `base + bytes / minimumRate` seconds.
    public var requestTimeoutBase = 30.0
    public var minimumRate = 4096.0
    /// Seconds past the round's deadline that retries of its upload may still go on (clocks differ).
    public var deadlineGrace = 30.0

    public init() {}
}

/// What check-in answered.
public enum CheckIn: Sendable, Equatable {
    /// Selected for a round: train and upload.
    case selected(Assignment)
    /// Not now: come back after `after` seconds (`round-full`, `round-closed`, or
    /// `already-reported` when this client's update for the open round is in).
    case retry(after: Double, reason: String)
    /// The server runs no more rounds.
    case finished
}

/// A round the client was selected for, as check-in described it.
public struct Assignment: Sendable, Equatable {
    public var round: UInt64
    /// The pipeline to encode with (canonical text).
    public var pipeline: String
    public var modelURL: String
    public var modelETag: String?
    public var modelBytes: Int?
    /// The creation URL path for the update.
    public var uploadURL: String
    public var maxUploadBytes: Int?
    public var deadline: Date
}

/// The global model a round starts from.
public struct GlobalModel: Sendable {
    public var round: UInt64
    public var layout: ModelLayout
    /// The flat float32 parameters, tensors in layout order.
    public var values: [Float]
    public var etag: String?
}

/// What local training produced: the update (new parameters − the global model's) and the
/// number of examples it was computed on (the FedAvg weight).
public struct LocalUpdate: Sendable {
    public var values: [Float]
    public var samples: UInt64

    public init(values: [Float], samples: UInt64) {
        self.values = values
        self.samples = samples
    }
}

/// What happened to the error-feedback residual when a round ended.
public enum ResidualAction: Sendable, Equatable {
    /// The pipeline has no error feedback.
    case none
    /// The server accepted the frame: the residual after encoding is the client's memory now.
    case committed
    /// The server never took the frame: the residual is the one before encoding plus this
    /// round's whole update, so nothing the server did not receive is forgotten.
    case rolledBack
}

/// One round as the client saw it.
public struct ClientRoundReport: Sendable {
    public var round: UInt64
    public var verdict: UploadVerdict
    public var pipeline: String
    /// The frame's size.
    public var frameBytes: Int
    public var upload: UploadStatistics
    /// Nil when the round resumed an update pending from an earlier run.
    public var download: DownloadStatistics?
    public var residual: ResidualAction
    /// The update was encoded by an earlier run (restart) and this one finished its upload.
    public var resumed: Bool
    /// The committed residual did not fit this round's model or pipeline and was started afresh.
    public var residualReset: Bool
    public var trainSeconds = 0.0
    public var encodeSeconds = 0.0
    /// Check-in to verdict.
    public var seconds = 0.0
}

/// What one call of ``UplinkParticipant/participate(progress:train:)`` did.
public enum Participation: Sendable {
    case reported(ClientRoundReport)
    case retry(after: Double, reason: String)
    case finished
}

/// Progress of a round, for a UI or a log.
public enum ClientEvent: Sendable, Equatable {
    case checkedIn(round: UInt64)
    case downloading(received: Int, total: Int?)
    case training(round: UInt64)
    case encoded(round: UInt64, frameBytes: Int)
    case uploading(UploadProgress)
}

/// A federated client of an `uplink serve` coordinator (`docs/client.md`).
///
/// ``participate(progress:train:)`` is one whole round: resume an update a killed run left
/// pending, or check in, download the global model (resuming a cut download, checked against its
/// ETag), hand it to `train`, encode the update with the round's pipeline and the error-feedback
/// residual kept in the state directory, upload it resumably, and commit the residual only when
/// the server accepts. The steps are public for apps that train elsewhere: ``checkIn()``,
/// ``downloadModel(for:)``, ``prepare(_:for:layout:)``, ``uploadPending(progress:)``.
///
/// Cancelling the calling task stops at the next request; the pending update stays on disk and
/// the next call resumes its upload where the server's offset is.
public actor UplinkParticipant {
    public let endpoint: ServerEndpoint
    private let token: String
    private let options: ClientOptions
    private let transport: any UplinkTransport
    private let ownsTransport: Bool
    private let state: ClientState

    /// - Parameters:
    ///   - server: the coordinator's URL (`https://host:port`; `http://` only to loopback unless allowed).
    ///   - token: the bearer token (`uplink token`). An expired one fails every call before anything is sent.
    ///   - stateDirectory: where the residual, the pending update and the model live (created if missing).
    ///   - transport: nil for the platform's default (async-http-client on Linux, URLSession elsewhere).
    public init(server: String, token: String, stateDirectory: String, options: ClientOptions = ClientOptions(), transport: (any UplinkTransport)? = nil) throws {
        endpoint = try ServerEndpoint(server, allowInsecureHTTP: options.allowInsecureHTTP)
        self.token = token
        self.options = options
        state = try ClientState(root: stateDirectory)
        if let transport {
            self.transport = transport
            ownsTransport = false
        } else {
            self.transport = try makeDefaultTransport(trustedCertificatesPEM: options.trustedCertificatesPEM)
            ownsTransport = true
        }
    }

    /// Closes the default transport's connections. Call once, at the end.
    public func shutdown() async {
        if ownsTransport { await transport.shutdown() }
    }

    /// Whether an update is waiting for its upload (a killed run's, or one ``prepare(_:for:layout:)`` made).
    public var hasPendingUpdate: Bool { (try? state.pending) != nil }

    /// The round of the pending update, if any.
    public func pendingRound() throws -> UInt64? { try state.pending?.round }

    private func checkToken() throws(UplinkClientError) {
        let claims = TokenClaims(token: token)
        if let exp = claims.expiresAt, exp <= Date() { throw .tokenExpired(client: claims.subject, expiredAt: exp) }
    }

    private var uploader: ResumableUploader {
        ResumableUploader(transport: transport, endpoint: endpoint, token: token, options: .init(options))
    }

    /// `POST /v1/checkin`, retried on transport errors and 5xx.
    public func checkIn() async throws -> CheckIn {
        try checkToken()
        var budget = RetryBudget(policy: options.retry)
        while true {
            let request = TransportRequest(method: "POST", url: try endpoint.url("/v1/checkin"),
                                           headers: [("Authorization", "Bearer \(token)")], timeout: options.requestTimeoutBase)
            guard let r = try await budget.exchange(request, over: transport, "checking in") else { continue }
            if r.status >= 500 {
                try await budget.failed("checking in: the server answered \(r.status)", retryAfter: r.header("Retry-After").flatMap(Double.init))
                continue
            }
            guard r.status == 200 else { throw UplinkClientError.refused(ServerProblem(status: r.status, body: r.body)) }
            guard let j = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any], let status = j["status"] as? String else {
                throw UplinkClientError.protocolViolation("check-in answered \(String(decoding: r.body.prefix(200), as: UTF8.self))")
            }
            switch status {
            case "finished":
                return .finished
            case "retry":
                let after = (j["retryAfterSeconds"] as? NSNumber)?.doubleValue ?? r.header("Retry-After").flatMap(Double.init) ?? 5
                return .retry(after: max(0, after), reason: j["reason"] as? String ?? "retry")
            case "selected":
                guard let round = (j["round"] as? NSNumber)?.uint64Value, let pipeline = j["pipeline"] as? String,
                      let model = j["model"] as? [String: Any], let modelURL = model["url"] as? String,
                      let upload = j["upload"] as? [String: Any], let uploadURL = upload["url"] as? String else {
                    throw UplinkClientError.protocolViolation("a selection without round, pipeline, model or upload")
                }
                let left = (j["secondsLeft"] as? NSNumber)?.doubleValue ?? 60
                let a = Assignment(round: round, pipeline: pipeline, modelURL: modelURL, modelETag: model["etag"] as? String,
                                   modelBytes: (model["bytes"] as? NSNumber)?.intValue, uploadURL: uploadURL,
                                   maxUploadBytes: (upload["maxBytes"] as? NSNumber)?.intValue, deadline: Date().addingTimeInterval(left))
                if let last = state.lastReportedRound, round <= last {
                    return .retry(after: max(1, min(10, left)), reason: "already-reported")
                }
                return .selected(a)
            default:
                throw UplinkClientError.protocolViolation("check-in status \(status)")
            }
        }
    }

    /// Downloads and decodes the round's global model (cached in the state directory; a cut
    /// download resumes with `Range`, and the bytes are checked against the ETag).
    public func downloadModel(for a: Assignment, progress: @Sendable (ClientEvent) -> Void = { _ in }) async throws -> (GlobalModel, DownloadStatistics) {
        try checkToken()
        let d = ModelDownloader(transport: transport, endpoint: endpoint, token: token, retry: options.retry,
                                requestTimeoutBase: options.requestTimeoutBase, minimumRate: options.minimumRate)
        progress(.downloading(received: 0, total: a.modelBytes))
        let (bytes, stats) = try await d.download(a.modelURL, etag: a.modelETag, bytes: a.modelBytes, to: state.modelPath(round: a.round),
                                                  maxBytes: options.maxModelBytes, deadline: a.deadline)
        progress(.downloading(received: bytes.count, total: a.modelBytes))
        state.pruneModels(keep: a.round)
        let decoded: DecodedFrame
        do { decoded = try FrameDecoder().decode(bytes) } catch {
            throw UplinkClientError.protocolViolation("the global model of round \(a.round) is not a valid frame: \(error)")
        }
        return (GlobalModel(round: a.round, layout: decoded.layout, values: decoded.values, etag: a.modelETag), stats)
    }

    /// Encodes `update` for the round with its pipeline and the committed residual, and saves it
    /// as the pending update (frame, the residual to commit on acceptance, the one to restore
    /// otherwise), durably, before anything is uploaded. Returns the frame's size and whether the
    /// committed residual had to be started afresh.
    public func prepare(_ update: LocalUpdate, for a: Assignment, layout: ModelLayout) throws -> (frameBytes: Int, residualReset: Bool) {
        if let p = try state.pending {
            throw UplinkClientError.local(UplinkError(.io, "the update of round \(p.round) is still pending; upload it first"))
        }
        let pipeline: Pipeline
        do { pipeline = try Pipeline(parsing: a.pipeline) } catch { throw UplinkClientError.local(error) }
        var encoder = FrameEncoder(layout: layout, pipeline: pipeline)
        var reset = false
        var carry: ErrorFeedbackState?
        if pipeline.errorFeedback != nil {
            var committed = ErrorFeedbackState(layout: layout, pipeline: pipeline)
            if let data = FileManager.default.contents(atPath: state.residualPath) {
                do { committed = try ErrorFeedbackState(serialized: [UInt8](data), layout: layout, pipeline: pipeline) } catch { reset = true }
            }
            do { try encoder.restore(committed) } catch { throw UplinkClientError.local(error) }
            guard update.values.count == layout.parameterCount else {
                throw UplinkClientError.local(UplinkError(.shapeMismatch, "the update has \(update.values.count) values, the model \(layout.parameterCount)"))
            }
            if pipeline.localDP == nil {
                // What the encoder adds before it selects: the residual plus the whole update.
                var acc = committed.residual
                update.values.withUnsafeBufferPointer { u in
                    acc.withUnsafeMutableBufferPointer { r in for i in 0..<r.count { r[i] += u[i] } }
                }
                do { carry = try ErrorFeedbackState(residual: acc, roundsEncoded: committed.roundsEncoded, layout: layout, pipeline: pipeline) } catch {
                    throw UplinkClientError.local(error)
                }
            } else {
                // With local DP the raw update must not stay behind unnoised: an abandoned round drops it.
                carry = committed
            }
        }
        let frame: [UInt8]
        do { frame = try encoder.encode(update.values, round: a.round, sampleCount: update.samples) } catch { throw UplinkClientError.local(error) }
        if let max = a.maxUploadBytes, frame.count > max {
            throw UplinkClientError.local(UplinkError(.io, "the frame has \(frame.count) bytes, more than the \(max) the server accepts"))
        }
        try state.createPending(
            .init(round: a.round, pipeline: a.pipeline, samples: update.samples, creation: a.uploadURL, deadline: a.deadline, errorFeedback: carry != nil),
            frame: frame, residual: encoder.errorFeedback?.serialized(), carry: carry?.serialized())
        return (frame.count, reset)
    }

    /// Uploads the pending update (resuming its session), then commits or rolls back the
    /// residual by the verdict. Nil when nothing is pending. A transport failure that outlasts
    /// the retries, a cancellation or a refusal that is not the frame's (an expired token, `401`)
    /// throws and leaves the update pending.
    public func uploadPending(progress: @Sendable (ClientEvent) -> Void = { _ in }) async throws -> ClientRoundReport? {
        guard let meta = try state.pending else { return nil }
        guard let data = FileManager.default.contents(atPath: state.framePath) else {
            throw UplinkClientError.local(UplinkError(.malformedState, "\(state.framePath) is missing"))
        }
        let frame = [UInt8](data)
        var stats = UploadStatistics()
        let verdict: UploadVerdict
        if let known = try state.readJSON(state.pendingPath + "/verdict.json", as: ClientState.Verdict.self) {
            verdict = known.accepted ? .alreadyAccepted(round: meta.round) : .refused(ServerProblem(status: 0, type: "", detail: known.detail))
        } else {
            try checkToken()
            (verdict, stats) = try await uploader.upload(
                frame: frame, framePath: state.framePath, creation: meta.creation, round: meta.round,
                deadline: meta.deadline.addingTimeInterval(options.deadlineGrace), progress: { progress(.uploading($0)) })
            try state.writeJSON(ClientState.Verdict(accepted: verdict.isAccepted, detail: "\(verdict)"), to: state.pendingPath + "/verdict.json")
        }
        let action: ResidualAction
        if verdict.isAccepted {
            try state.setLastReported(meta.round)
            try state.resolvePending(committing: meta.errorFeedback ? "residual.upls" : nil)
            action = meta.errorFeedback ? .committed : .none
        } else {
            try state.resolvePending(committing: meta.errorFeedback ? "carry.upls" : nil)
            action = meta.errorFeedback ? .rolledBack : .none
        }
        return ClientRoundReport(round: meta.round, verdict: verdict, pipeline: meta.pipeline, frameBytes: frame.count, upload: stats,
                           download: nil, residual: action, resumed: true, residualReset: false)
    }

    /// One round (see the type's description). `train` gets the global model and returns the update.
    public func participate(
        progress: @Sendable (ClientEvent) -> Void = { _ in },
        train: (GlobalModel) async throws -> LocalUpdate
    ) async throws -> Participation {
        if let report = try await uploadPending(progress: progress) { return .reported(report) }
        let started = Date()
        let a: Assignment
        switch try await checkIn() {
        case .finished: return .finished
        case .retry(let after, let reason): return .retry(after: after, reason: reason)
        case .selected(let s): a = s
        }
        progress(.checkedIn(round: a.round))
        let model: GlobalModel, download: DownloadStatistics
        do {
            (model, download) = try await downloadModel(for: a, progress: progress)
        } catch UplinkClientError.refused(let p) where p.status == 404 {
            // The server keeps only recent models: a download slower than the rounds finds the
            // round's model gone, and with it the round. Check in again for the current one.
            return .retry(after: 0, reason: "model-gone")
        }
        progress(.training(round: a.round))
        let t0 = Date()
        let update = try await train(model)
        let t1 = Date()
        let (frameBytes, reset) = try prepare(update, for: a, layout: model.layout)
        let t2 = Date()
        progress(.encoded(round: a.round, frameBytes: frameBytes))
        guard var report = try await uploadPending(progress: progress) else {
            throw UplinkClientError.local(UplinkError(.io, "the pending update vanished"))
        }
        report.download = download
        report.resumed = false
        report.residualReset = reset
        report.trainSeconds = t1.timeIntervalSince(t0)
        report.encodeSeconds = t2.timeIntervalSince(t1)
        report.seconds = Date().timeIntervalSince(started)
        return .reported(report)
    }
}

/// Uploads one frame resumably, outside any round bookkeeping (`uplink upload`): the session is
/// saved beside the frame (`<frame>.upload.json`), so a killed upload resumes when run again.
public func uploadFrame(
    at framePath: String, server: String, token: String, round: UInt64, options: ClientOptions = ClientOptions(),
    transport: (any UplinkTransport)? = nil, progress: @Sendable (UploadProgress) -> Void = { _ in }
) async throws -> (UploadVerdict, UploadStatistics) {
    let endpoint = try ServerEndpoint(server, allowInsecureHTTP: options.allowInsecureHTTP)
    let claims = TokenClaims(token: token)
    if let exp = claims.expiresAt, exp <= Date() { throw UplinkClientError.tokenExpired(client: claims.subject, expiredAt: exp) }
    guard let data = FileManager.default.contents(atPath: framePath) else {
        throw UplinkClientError.local(UplinkError(.io, "cannot read \(framePath)"))
    }
    let t = try transport ?? makeDefaultTransport(trustedCertificatesPEM: options.trustedCertificatesPEM)
    let uploader = ResumableUploader(transport: t, endpoint: endpoint, token: token, options: .init(options))
    do {
        let result = try await uploader.upload(frame: [UInt8](data), framePath: framePath, creation: "/v1/rounds/\(round)/updates",
                                               round: round, deadline: nil, progress: progress)
        if transport == nil { await t.shutdown() }
        return result
    } catch {
        if transport == nil { await t.shutdown() }
        throw error
    }
}
