import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import UplinkCodec

/// The request context: Hummingbird's core storage plus the connection, so a newer request
/// to an upload can end the connection of an older one that still holds it.
struct UplinkContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Field names of the resumable-upload draft.
enum UploadField {
    static let version = HTTPField.Name("Upload-Draft-Interop-Version")!
    static let offset = HTTPField.Name("Upload-Offset")!
    static let complete = HTTPField.Name("Upload-Complete")!
    static let length = HTTPField.Name("Upload-Length")!
    static let limit = HTTPField.Name("Upload-Limit")!
    static let retryAfter = HTTPField.Name("Retry-After")!
    static let contentRange = HTTPField.Name("Content-Range")!
    static let acceptRanges = HTTPField.Name("Accept-Ranges")!
    static let supported: Set<String> = ["8", "6"]
}

/// The HTTP API of `docs/server.md` over a ``Coordinator``.
struct HTTPAPI: Sendable {
    let coordinator: Coordinator
    let pool: NIOThreadPool
    let logger: Logger

    var config: ServerConfiguration { coordinator.config }

    /// Runs blocking coordinator work on the I/O threads, never on an event loop.
    func io<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive { try body() }
    }

    func router() -> Router<UplinkContext> {
        let router = Router(context: UplinkContext.self)
        router.get("/healthz") { _, _ in Self.json(200, #"{"status":"ok"}"#) }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: coordinator.metrics.text())))
        }
        router.post("/v1/checkin") { request, _ in await handle(request) { client in try await checkIn(client) } }
        router.get("/v1/models/:round") { request, context in
            await handle(request) { client in try await model(request, round: context.parameters.get("round") ?? "") }
        }
        router.head("/v1/models/:round") { request, context in
            await handle(request) { _ in
                var response = try await model(request, round: context.parameters.get("round") ?? "")
                let length = response.body.contentLength
                response.body = .init()
                if let length { response.headers[.contentLength] = String(length) }
                return response
            }
        }
        router.get("/v1/rounds/:round") { request, context in
            await handle(request) { _ in try await roundStatus(context.parameters.get("round") ?? "") }
        }
        router.post("/v1/rounds/:round/updates") { request, context in
            await handle(request, upload: true) { client in try await create(request, context: context, client: client, round: context.parameters.get("round") ?? "") }
        }
        router.on("/v1/rounds/:round/updates", method: .options) { request, context in
            await handle(request) { _ in
                _ = try Self.round(context.parameters.get("round") ?? "")
                return limitsResponse(request, status: 204)
            }
        }
        router.on("/v1/uploads/:id", method: .head) { request, context in
            await handle(request, upload: true) { client in try await head(request, id: context.parameters.get("id") ?? "", client: client) }
        }
        router.on("/v1/uploads/:id", method: .options) { request, context in
            await handle(request, upload: true) { client in
                _ = try await ownSlot(context.parameters.get("id") ?? "", client: client)
                var response = limitsResponse(request, status: 204)
                response.headers[.allow] = "HEAD, PATCH, DELETE, OPTIONS"
                return response
            }
        }
        router.patch("/v1/uploads/:id") { request, context in
            await handle(request, upload: true) { client in try await append(request, context: context, id: context.parameters.get("id") ?? "", client: client) }
        }
        router.delete("/v1/uploads/:id") { request, context in
            await handle(request, upload: true) { client in try await delete(request, id: context.parameters.get("id") ?? "", client: client) }
        }
        return router
    }

    // MARK: Plumbing

    /// Authenticates (every verb), checks the draft's interop version for upload requests,
    /// and turns a thrown ``Problem`` into its problem-details response.
    func handle(_ request: Request, upload: Bool = false, _ body: (String) async throws -> Response) async -> Response {
        do {
            let client = try authenticate(request)
            if upload {
                let version = request.headers[UploadField.version]
                guard let version, UploadField.supported.contains(version.trimmingCharacters(in: .whitespaces)) else { throw Problem.interopVersion(version) }
            }
            return try await body(client)
        } catch let problem as Problem {
            coordinator.metrics.refused(problem.name)
            return problemResponse(problem, request: request)
        } catch let error as UplinkError {
            // The details (paths) go to the log, not to the client.
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return problemResponse(.internalError("error \(error.code); the server's log has the details"), request: request)
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return problemResponse(.internalError("the server's log has the details"), request: request)
        }
    }

    func authenticate(_ request: Request) throws -> String {
        guard let value = request.headers[.authorization] else { throw Problem.unauthorized("send Authorization: Bearer <token> (uplink token mints one)") }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw Problem.unauthorized("the Authorization header must be Bearer <token>") }
        switch coordinator.authority.verify(String(parts[1]).trimmingCharacters(in: .whitespaces), now: coordinator.now) {
        case .success(let client): return client
        case .failure(.expired): throw Problem.unauthorized("the token has expired")
        case .failure(.invalid(let why)): throw Problem.unauthorized("invalid token: \(why)")
        }
    }

    static func json(_ status: Int, _ body: String, headers extra: HTTPFields = HTTPFields()) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func jsonObject(_ status: Int, _ object: [String: Any], headers: HTTPFields = HTTPFields()) -> Response {
        // Every value is a string, an integer or a finite number; should one not be, the client
        // gets a 500 rather than the process trapping.
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return json(500, #"{"type":"urn:uplink:problem:internal","title":"the server failed","status":500,"detail":"unencodable answer"}"#, headers: headers)
        }
        return json(status, String(decoding: data, as: UTF8.self), headers: headers)
    }

    func problemResponse(_ p: Problem, request: Request, extra: HTTPFields = HTTPFields()) -> Response {
        var headers = extra
        for (name, value) in p.headers { headers[HTTPField.Name(name)!] = value }
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        return Response(status: .init(code: p.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: p.json)))
    }

    /// `Upload-Limit` as this server applies it (`expires` is version 6's name for `max-age`).
    func uploadLimit(_ request: Request, maxAge: Int? = nil) -> String {
        let age = maxAge ?? config.limits.maxAgeSeconds
        let ageKey = request.headers[UploadField.version] == "6" ? "expires" : "max-age"
        return "max-size=\(coordinator.maxUploadBytes), max-append-size=\(config.limits.maxAppendBytes), \(ageKey)=\(max(0, age))"
    }

    func limitsResponse(_ request: Request, status: Int) -> Response {
        var headers = HTTPFields()
        headers[UploadField.limit] = uploadLimit(request)
        headers[.allow] = "POST, OPTIONS"
        return Response(status: .init(code: status), headers: headers)
    }

    /// A non-negative structured-field Integer (at most 15 digits, RFC 9651), or `nil`.
    static func sfInteger(_ text: String?) -> Int64? {
        guard let t = text?.trimmingCharacters(in: .whitespaces), !t.isEmpty, t.utf8.count <= 15, t.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int64(t)
    }

    /// A structured-field Boolean (`?0`, `?1`), or `nil`.
    static func sfBoolean(_ text: String?) -> Bool? {
        switch text?.trimmingCharacters(in: .whitespaces) {
        case "?1": true
        case "?0": false
        default: nil
        }
    }

    // MARK: Check-in, models, status

    func checkIn(_ client: String) async throws -> Response {
        let result = try await io { try coordinator.checkIn(client: client) }
        switch result {
        case .selected(let round, let deadline, let pipeline, let model):
            return Self.jsonObject(200, [
                "status": "selected", "round": round, "pipeline": pipeline,
                "model": ["url": "/v1/models/\(round)", "etag": model.etag, "bytes": model.bytes],
                "upload": ["url": "/v1/rounds/\(round)/updates", "maxBytes": coordinator.maxUploadBytes],
                "deadline": Coordinator.iso(deadline), "secondsLeft": max(0, deadline - coordinator.now),
            ])
        case .retry(let after, let reason):
            var headers = HTTPFields()
            headers[UploadField.retryAfter] = String(Int(after))
            return Self.jsonObject(200, ["status": "retry", "retryAfterSeconds": Int(after), "reason": reason], headers: headers)
        case .finished:
            return Self.jsonObject(200, ["status": "finished"])
        }
    }

    static func round(_ text: String) throws -> UInt64 {
        guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let r = UInt64(text) else {
            throw Problem.notFound("\(UplinkError.quoted(text)) is not a round number")
        }
        return r
    }

    func model(_ request: Request, round text: String) async throws -> Response {
        let round = try Self.round(text)
        guard let info = coordinator.model(round: round) else { throw Problem.notFound("no model for round \(round)") }
        var headers = HTTPFields()
        headers[.eTag] = info.etag
        headers[UploadField.acceptRanges] = "bytes"
        headers[.contentType] = "application/vnd.uplink.frame"
        headers[.cacheControl] = "private, max-age=31536000, immutable"
        if let none = request.headers[.ifNoneMatch], none.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == info.etag || $0.trimmingCharacters(in: .whitespaces) == "*" }) {
            return Response(status: .notModified, headers: headers)
        }
        var start = 0, end = info.bytes  // [start, end)
        var partial = false
        if let range = request.headers[.range], request.headers[.ifRange].map({ $0 == info.etag }) ?? true {
            guard let (a, b) = Self.byteRange(range, size: info.bytes) else {
                headers[UploadField.contentRange] = "bytes */\(info.bytes)"
                return problemResponse(Problem.uplink(416, "range-not-satisfiable", "the range is outside the model", "the model has \(info.bytes) bytes"), request: request, extra: headers)
            }
            (start, end, partial) = (a, b, true)
        }
        let path = info.path
        let (from, to) = (start, end)
        let pool = self.pool
        if partial { headers[UploadField.contentRange] = "bytes \(start)-\(end - 1)/\(info.bytes)" }
        // Streamed 1 MiB at a time: a download holds one chunk, not the model.
        let body = ResponseBody(contentLength: to - from) { writer in
            var at = from
            while at < to {
                let n = min(1 << 20, to - at)
                let offset = at
                let chunk = try await pool.runIfActive { try Durable.read(path, at: offset, count: n) }
                try await writer.write(ByteBuffer(bytes: chunk))
                at += n
            }
            try await writer.finish(nil)
        }
        return Response(status: partial ? .partialContent : .ok, headers: headers, body: body)
    }

    /// One `bytes=` range (`a-b`, `a-`, `-n`) of a `size`-byte body as [start, end), or `nil`
    /// when unsatisfiable or malformed.
    static func byteRange(_ header: String, size: Int) -> (Int, Int)? {
        guard header.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let first = String(spec[..<dash]), last = String(spec[spec.index(after: dash)...])
        func number(_ s: String) -> Int? { s.utf8.count <= 18 && !s.isEmpty && s.utf8.allSatisfy({ (0x30...0x39).contains($0) }) ? Int(s) : nil }
        if first.isEmpty {
            guard let n = number(last), n > 0 else { return nil }
            return (max(0, size - n), size)
        }
        guard let a = number(first), a < size else { return nil }
        if last.isEmpty { return (a, size) }
        guard let b = number(last), b >= a else { return nil }
        return (a, min(b, size - 1) + 1)
    }

    func roundStatus(_ text: String) async throws -> Response {
        let round = try Self.round(text)
        guard let status = try await io({ try coordinator.status(round: round).map { SendableBox($0) } }) else { throw Problem.notFound("round \(round) has not started") }
        return Self.jsonObject(200, status.value)
    }

    // MARK: Uploads

    /// Why a finished upload resource cannot be used: its round closed (409 `round-closed`, as
    /// a late upload is told), or it was cancelled or outlived `max-age` (404).
    func gone(_ slot: UploadSlot) -> Problem {
        let current = coordinator.round
        if slot.phase == "expired", current.finished || slot.round < current.number {
            return Problem.roundClosed(slot.round, "round \(slot.round) closed before upload \(slot.id) completed")
        }
        return Problem.notFound("upload \(slot.id) is \(slot.phase)")
    }

    func ownSlot(_ id: String, client: String) async throws -> UploadSlot {
        guard let slot = try await io({ try coordinator.slot(id) }) else { throw Problem.notFound("no upload \(UplinkError.quoted(id))") }
        guard slot.client == client else { throw Problem.forbidden("upload \(id) belongs to another client") }
        return slot
    }

    func uploadHeaders(_ slot: UploadSlot, _ request: Request, offset: Int64? = nil, complete: Bool? = nil) -> HTTPFields {
        var headers = HTTPFields()
        let phase = slot.phase
        headers[UploadField.offset] = String(offset ?? slot.durableOffset)
        headers[UploadField.complete] = (complete ?? (phase == "accepted" || phase == "rejected")) ? "?1" : "?0"
        headers[UploadField.length] = String(slot.length)
        headers[UploadField.limit] = uploadLimit(request, maxAge: Int(slot.expiresAt - coordinator.now))
        headers[.cacheControl] = "no-store"
        return headers
    }

    /// Takes the upload for this request, ending any request that holds it: in this process
    /// (``UploadSlot``), then in the ledger (another replica's append is asked to end, and a
    /// busy `503` answers when it does not within 3 s).
    func take(_ slot: UploadSlot, context: UplinkContext?, cancel: @escaping @Sendable () -> Void = {}) async throws -> Int {
        let channel = context?.channel
        guard let ticket = await slot.acquire(interrupt: {
            cancel()
            channel?.close(promise: nil)
        }) else { throw Problem.uplink(409, "superseded", "a newer request took over this upload", "only the newest request to an upload proceeds") }
        let claimed: Bool
        do {
            claimed = try await io { try coordinator.claim(slot, ticket: ticket) }
        } catch {
            slot.release(ticket)
            throw error
        }
        guard claimed else {
            slot.release(ticket)
            throw Problem.busy(retryAfter: 1)
        }
        return ticket
    }

    /// Ends this request's hold on the upload (the ledger lease is given back on the I/O pool,
    /// without waiting: a later request of this replica may take it meanwhile).
    func giveBack(_ slot: UploadSlot, _ ticket: Int) {
        let coordinator = self.coordinator
        slot.release(ticket)
        pool.submit { _ in coordinator.releaseLease(slot, ticket: ticket) }
    }

    func head(_ request: Request, id: String, client: String) async throws -> Response {
        let slot = try await ownSlot(id, client: client)
        if ["cancelled", "expired"].contains(slot.phase) { throw gone(slot) }
        // No context channel here: a HEAD does not need to be interruptible, only to interrupt.
        let ticket = try await take(slot, context: nil)
        defer { giveBack(slot, ticket) }
        if ["cancelled", "expired"].contains(slot.phase) { throw gone(slot) }
        return Response(status: .noContent, headers: uploadHeaders(slot, request))
    }

    func delete(_ request: Request, id: String, client: String) async throws -> Response {
        let slot = try await ownSlot(id, client: client)
        let ticket = try await take(slot, context: nil)
        defer { giveBack(slot, ticket) }
        switch slot.phase {
        case "open": try await io { try coordinator.cancel(slot) }
        case "cancelled", "expired": throw gone(slot)
        default: throw Problem.completedUpload()
        }
        return Response(status: .noContent)
    }

    func create(_ request: Request, context: UplinkContext, client: String, round text: String) async throws -> Response {
        let round = try Self.round(text)
        guard let complete = Self.sfBoolean(request.headers[UploadField.complete]) else { throw Problem.badRequest("Upload-Complete must be ?0 or ?1") }
        let declared = request.headers[UploadField.length].map { Self.sfInteger($0) }
        if declared == .some(nil) { throw Problem.badRequest("Upload-Length must be a non-negative integer") }
        let contentLength = request.headers[.contentLength].flatMap { Self.sfInteger($0) }
        let length: Int64
        switch (declared ?? nil, complete ? contentLength : nil) {
        case (let l?, let c?) where l != c: throw Problem.inconsistentLength("Upload-Length \(l) and Content-Length \(c) of a complete upload differ")
        case (let l?, _): length = l
        case (nil, let c?): length = c
        case (nil, nil): throw Problem.badRequest("Upload-Length is required (or Upload-Complete: ?1 with Content-Length)")
        }
        guard length > 0 else { throw Problem.badRequest("an update cannot be empty") }
        if let c = contentLength, c > length { throw Problem.inconsistentLength("Content-Length \(c) is more than Upload-Length \(length)") }
        if let c = contentLength, c > config.limits.maxAppendBytes { throw Problem.appendTooLarge(limit: config.limits.maxAppendBytes) }
        // Refuse a busy server before the resource exists, so no upload is left the client never heard of.
        if coordinator.inFlight.withLock({ $0 }) >= config.limits.maxConcurrentUploads, (contentLength ?? 1) > 0 {
            throw Problem.busy(retryAfter: 5)
        }
        let total = length
        let created = try await io { try coordinator.createUpload(client: client, round: round, length: total) }
        let slot: UploadSlot
        switch created {
        case .success(let s): slot = s
        case .failure(let p): throw p
        }
        let location = "/v1/uploads/\(slot.id)"
        var response: Response
        do {
            response = try await receive(request, context: context, slot: slot, client: client, from: 0, complete: complete, contentLength: contentLength)
        } catch var problem as Problem {
            // The resource exists: a problem after its creation still tells the client where it is.
            problem.headers.append(("Location", location))
            throw problem
        }
        response.headers[.location] = location
        if response.status == .noContent { response.status = .created }
        return response
    }

    func append(_ request: Request, context: UplinkContext, id: String, client: String) async throws -> Response {
        guard let type = request.headers[.contentType], type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() == "application/partial-upload" else {
            throw Problem.unsupportedMedia()
        }
        guard let offset = Self.sfInteger(request.headers[UploadField.offset]) else { throw Problem.badRequest("Upload-Offset must be a non-negative integer") }
        guard let complete = Self.sfBoolean(request.headers[UploadField.complete]) else { throw Problem.badRequest("Upload-Complete must be ?0 or ?1") }
        let contentLength = request.headers[.contentLength].flatMap { Self.sfInteger($0) }
        let slot = try await ownSlot(id, client: client)
        if let l = request.headers[UploadField.length].flatMap({ Self.sfInteger($0) }), l != slot.length {
            throw Problem.inconsistentLength("Upload-Length \(l) differs from the upload's \(slot.length)")
        }
        return try await receive(request, context: context, slot: slot, client: client, from: offset, complete: complete, contentLength: contentLength)
    }

    enum BodyEnd: Sendable {
        case finished, interrupted, overLength, overAppend, tooSlow(Double)
    }

    /// Stores the request body at `from` (after checking it is the upload's offset), durably,
    /// then answers: `204` with the new offset, or the frame's verdict when the upload is complete.
    func receive(_ request: Request, context: UplinkContext, slot: UploadSlot, client: String, from offset: Int64, complete: Bool, contentLength: Int64?) async throws -> Response {
        let work = Locked<Task<(Int64, BodyEnd), Never>?>(nil)
        let interrupted = Locked(false)
        let ticket = try await take(slot, context: context) {
            interrupted.withLock { $0 = true }
            work.withLock { $0?.cancel() }
        }
        defer { giveBack(slot, ticket) }
        switch slot.phase {
        case "open": break
        case "accepted", "rejected":
            // A client that lost the final response asks again: replay it.
            if offset == slot.length, (contentLength ?? 0) == 0, let stored = slot.state.withLock({ $0.response }) { return stored.response(uploadHeaders(slot, request, complete: true)) }
            throw Problem.completedUpload()
        default: throw gone(slot)
        }
        let durable = slot.durableOffset
        guard offset == durable else {
            var p = Problem.mismatchingOffset(expected: durable, provided: offset)
            p.headers = [("Upload-Offset", String(durable)), ("Upload-Complete", "?0")]
            throw p
        }
        if let c = contentLength {
            guard offset + c <= slot.length else { throw Problem.inconsistentLength("\(c) bytes at offset \(offset) go past the upload length \(slot.length)") }
            guard c <= config.limits.maxAppendBytes else { throw Problem.appendTooLarge(limit: config.limits.maxAppendBytes) }
            if complete, offset + c != slot.length { throw Problem.inconsistentLength("a completing append must end at \(slot.length), this one ends at \(offset + c)") }
        }
        let maxUploads = config.limits.maxConcurrentUploads
        let busy = coordinator.inFlight.withLock { count -> Bool in
            count += 1
            return count > maxUploads
        }
        defer { coordinator.inFlight.withLock { $0 -= 1 } }
        if busy { throw Problem.busy(retryAfter: 5) }
        coordinator.metrics.appendStarted()
        defer { coordinator.metrics.appendEnded() }

        let body = request.body
        let pool = self.pool, coordinator = self.coordinator, limits = config.limits
        let task = Task { () -> (Int64, BodyEnd) in
            await Self.store(body, slot: slot, from: offset, pool: pool, coordinator: coordinator, limits: limits, interrupted: interrupted)
        }
        work.withLock { $0 = task }
        if interrupted.withLock({ $0 }) { task.cancel() }
        let (reached, end) = await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
        switch end {
        case .interrupted:
            // The connection is gone (or a newer request took over): nothing to answer.
            var headers = uploadHeaders(slot, request, offset: reached, complete: false)
            headers[.connection] = "close"
            return Response(status: .noContent, headers: headers)
        case .overLength:
            throw Problem.inconsistentLength("the body goes past the upload length \(slot.length); the bytes up to \(reached) are kept")
        case .overAppend:
            throw Problem.appendTooLarge(limit: limits.maxAppendBytes)
        case .tooSlow(let rate):
            var p = Problem.tooSlow(rate, limits.minimumBytesPerSecond)
            p.headers = [("Upload-Offset", String(reached)), ("Connection", "close")]
            throw p
        case .finished:
            break
        }
        guard complete else { return Response(status: .noContent, headers: uploadHeaders(slot, request, offset: reached, complete: false)) }
        guard reached == slot.length else {
            throw Problem.inconsistentLength("Upload-Complete: ?1 but the upload holds \(reached) of its \(slot.length) bytes")
        }
        // The token is checked again now that the whole frame is here.
        _ = try authenticate(request)
        let verdict = try await io { try coordinator.complete(slot, client: client) }
        return verdict.response(uploadHeaders(slot, request, complete: true))
    }

    /// Streams `body` into the upload file, fsyncing and recording the offset every
    /// `syncEveryBytes` and at the end, however the body ends.
    static func store(_ body: RequestBody, slot: UploadSlot, from start: Int64, pool: NIOThreadPool, coordinator: Coordinator, limits: UploadLimits, interrupted: Locked<Bool>) async -> (Int64, BodyEnd) {
        var offset = start
        var unsynced = 0
        var received = 0
        var end = BodyEnd.finished
        var windowStart = ContinuousClock.now
        var windowBytes = 0
        let window = Duration.milliseconds(Int64(limits.rateWindowSeconds * 1000))
        func persist() async -> Bool {
            guard unsynced > 0 else { return true }
            let target = offset
            do {
                // Not cancellable: an interrupted append still makes what it received durable.
                try await Task.detached {
                    try await pool.runIfActive {
                        try slot.file.sync()
                        try coordinator.recordOffset(slot, target)
                    }
                }.value
                coordinator.metrics.stored(bytes: unsynced)
                unsynced = 0
                return true
            } catch {
                coordinator.logger.error("cannot make upload bytes durable", metadata: ["upload": "\(slot.id)", "error": "\(error)"])
                return false
            }
        }
        do {
            for try await chunk in body {
                let n = chunk.readableBytes
                guard offset + Int64(n) <= slot.length else { end = .overLength; break }
                guard received + n <= limits.maxAppendBytes else { end = .overAppend; break }
                let at = offset
                // Bytes that arrived are kept even when the request is being ended.
                try await Task.detached {
                    try await pool.runIfActive { try chunk.withUnsafeReadableBytes { (raw) throws in try slot.file.write(raw, at: at) } }
                }.value
                CrashPoint.reach("patch-written")
                offset += Int64(n)
                received += n
                unsynced += n
                windowBytes += n
                if interrupted.withLock({ $0 }) || Task.isCancelled { end = .interrupted; break }
                if unsynced >= limits.syncEveryBytes { guard await persist() else { end = .interrupted; break } }
                let elapsed = ContinuousClock.now - windowStart
                if elapsed >= window {
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                    let rate = Double(windowBytes) / seconds
                    if rate < limits.minimumBytesPerSecond { end = .tooSlow(rate); break }
                    windowStart = ContinuousClock.now
                    windowBytes = 0
                }
            }
        } catch {
            end = .interrupted
        }
        _ = await persist()
        return (slot.durableOffset, end)
    }
}

/// Wraps a non-Sendable JSON object crossing from the I/O pool.
struct SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

extension StoredResponse {
    func response(_ headers: HTTPFields) -> Response {
        var h = headers
        h[.contentType] = contentType
        return Response(status: .init(code: status), headers: h, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
