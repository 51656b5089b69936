import Foundation
import Testing
@testable import UplinkClient
import UplinkCodec
import UplinkTestSupport

/// A server on loopback that answers every request with whatever the test says: the client must
/// turn each broken or hostile answer into a typed error, never a crash, a hang or unbounded memory.
final class ScriptedServer: Sendable {
    let listener: LoopbackListener
    let requests = Locked<[HTTPTestRequest]>([])
    private let stopping = Locked(false)
    var port: Int { listener.port }

    /// `answer` returns the raw bytes to send for a request (the connection is closed after).
    init(_ answer: @escaping @Sendable (HTTPTestRequest, Int) -> [UInt8]) throws {
        listener = try LoopbackListener()
        let thread = Thread { [self] in
            while !stopping.withLock({ $0 }) {
                guard let connection = try? listener.accept(timeout: 0.05) else { continue }
                let worker = Thread { [self] in
                    defer { connection.close() }
                    guard let request = try? connection.readRequest(timeout: 5) else { return }
                    let n = requests.withLock { $0.append(request); return $0.count }
                    try? connection.send(answer(request, n), timeout: 5)
                }
                worker.start()
            }
            listener.close()
        }
        thread.start()
    }

    func stop() { stopping.withLock { $0 = true } }
    deinit { stop() }

    static func response(_ status: Int, _ headers: [(String, String)] = [], body: [UInt8] = []) -> [UInt8] {
        var text = "HTTP/1.1 \(status) X\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        if status != 204 && status != 304 { text += "Content-Length: \(body.count)\r\n" }
        text += "Connection: close\r\n\r\n"
        return Array(text.utf8) + body
    }
}

@Suite(.serialized) struct HostileServerTests {
    static let token = "t"

    static func upload(_ server: ScriptedServer, frame: [UInt8] = [UInt8](repeating: 7, count: 1000), options: ClientOptions = ClientTest.fast) async throws -> (UploadVerdict, UploadStatistics) {
        let s = try ScratchDirectory()
        try s.write("f.upl", frame)
        return try await uploadFrame(at: s.path("f.upl"), server: "http://127.0.0.1:\(server.port)", token: token, round: 1, options: options)
    }

    static func expectViolation(_ what: String, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("\(what): no error")
        } catch UplinkClientError.protocolViolation(let why) {
            #expect(!why.isEmpty)
        } catch {
            Issue.record("\(what): \(error)")
        }
    }

    @Test func brokenUploadAnswersAreProtocolViolations() async throws {
        let noLocation = try ScriptedServer { _, _ in ScriptedServer.response(201, [("Upload-Offset", "0")]) }
        await Self.expectViolation("201 without Location") { _ = try await Self.upload(noLocation) }
        let elsewhere = try ScriptedServer { _, _ in ScriptedServer.response(201, [("Location", "http://203.0.113.9/v1/uploads/x"), ("Upload-Offset", "0")]) }
        await Self.expectViolation("Location on another origin") { _ = try await Self.upload(elsewhere) }
        #expect(elsewhere.requests.withLock { $0.count } == 1, "the client followed the foreign Location")
        // An offset past the upload's length, then one that went backwards.
        let past = try ScriptedServer { r, _ in
            r.method == "POST" ? ScriptedServer.response(201, [("Location", "/v1/uploads/a"), ("Upload-Offset", "0")])
                : ScriptedServer.response(204, [("Upload-Offset", "5000")])
        }
        await Self.expectViolation("offset past the length") { _ = try await Self.upload(past) }
        let backwards = try ScriptedServer { r, n in
            if r.method == "POST" { return ScriptedServer.response(201, [("Location", "/v1/uploads/a"), ("Upload-Offset", "0")]) }
            return ScriptedServer.response(204, [("Upload-Offset", n == 2 ? "600" : "100")])
        }
        var o = ClientTest.fast
        o.maxAppendBytes = 600
        await Self.expectViolation("offset going backwards") { _ = try await Self.upload(backwards, options: o) }
        // A 200 to the completing append that is not an acceptance.
        let notAccepted = try ScriptedServer { r, _ in
            r.method == "POST" ? ScriptedServer.response(201, [("Location", "/v1/uploads/a"), ("Upload-Offset", "0")])
                : ScriptedServer.response(200, body: Array("{\"ok\":true}".utf8))
        }
        await Self.expectViolation("a 200 without acceptance") { _ = try await Self.upload(notAccepted) }
        for s in [noLocation, elsewhere, past, backwards, notAccepted] { s.stop() }
    }

    @Test func refusalsCarryTheProblemAndRetriesAreBounded() async throws {
        let tooLarge = try ScriptedServer { _, _ in
            ScriptedServer.response(413, [("Content-Type", "application/problem+json")],
                                    body: Array(#"{"type":"urn:uplink:problem:upload-too-large","title":"too large","status":413,"detail":"max 10"}"#.utf8))
        }
        do {
            _ = try await Self.upload(tooLarge)
            Issue.record("413 accepted")
        } catch UplinkClientError.refused(let p) {
            #expect(p.status == 413 && p.name == "upload-too-large" && p.detail == "max 10")
        }
        // Always 503 with a long Retry-After: the client pauses at most maxDelay, and gives up
        // after maxConsecutiveFailures.
        let busy = try ScriptedServer { _, _ in ScriptedServer.response(503, [("Retry-After", "3600")]) }
        var o = ClientTest.fast
        o.retry = RetryPolicy(initialDelay: 0.01, maxDelay: 0.05, maxConsecutiveFailures: 5, maxDuration: 30)
        let t0 = Date()
        do {
            _ = try await Self.upload(busy, options: o)
            Issue.record("503 forever accepted")
        } catch UplinkClientError.unreachable(let attempts, let last) {
            #expect(attempts == 6 && last.contains("503"), "\(attempts) \(last)")
        }
        // Far below one Retry-After of 3600 s; loose, because other suites load the machine.
        #expect(Date().timeIntervalSince(t0) < 20)
        #expect(busy.requests.withLock { $0.count } == 6)
        // Not HTTP at all.
        let garbage = try ScriptedServer { _, _ in Array("SSH-2.0-OpenSSH\r\n\u{0}\u{1}\u{2}".utf8) }
        do {
            _ = try await Self.upload(garbage, options: o)
            Issue.record("garbage accepted")
        } catch is UplinkClientError {
        }
        for s in [tooLarge, busy, garbage] { s.stop() }
    }

    @Test func hostileDownloadsAndCheckInsAreBounded() async throws {
        let s = try ScratchDirectory()
        // A check-in answer of 8 MiB: refused, not buffered whole.
        let huge = try ScriptedServer { _, _ in ScriptedServer.response(200, body: [UInt8](repeating: 0x20, count: 8 << 20)) }
        let p = try UplinkParticipant(server: "http://127.0.0.1:\(huge.port)", token: Self.token, stateDirectory: s.path("a"), options: ClientTest.fast)
        await Self.expectViolation("an 8 MiB check-in") { _ = try await p.checkIn() }
        await p.shutdown()
        huge.stop()
        // A model whose bytes do not match its ETag.
        let model = [UInt8](repeating: 1, count: 10_000)
        let wrongTag = "\"" + String(repeating: "0", count: 64) + "\""
        let liar = try ScriptedServer { _, _ in ScriptedServer.response(200, [("ETag", wrongTag)], body: model) }
        let q = try UplinkParticipant(server: "http://127.0.0.1:\(liar.port)", token: Self.token, stateDirectory: s.path("b"), options: ClientTest.fast)
        let a = Assignment(round: 1, pipeline: "fp32 | lz4", modelURL: "/v1/models/1", modelETag: wrongTag, modelBytes: model.count,
                           uploadURL: "/v1/rounds/1/updates", maxUploadBytes: nil, deadline: Date().addingTimeInterval(60))
        await Self.expectViolation("a model that does not match its ETag") { _ = try await q.downloadModel(for: a) }
        #expect(!FileManager.default.fileExists(atPath: s.path("b/models/model-1.upl.part")))
        #expect(!FileManager.default.fileExists(atPath: s.path("b/models/model-1.upl")))
        // A model larger than check-in announced.
        var small = a
        small.modelETag = nil
        small.modelBytes = 100
        await Self.expectViolation("a model over its announced size") { _ = try await q.downloadModel(for: small) }
        await q.shutdown()
        liar.stop()
        // A model over the client's limit is refused before any byte is read.
        var o = ClientTest.fast
        o.maxModelBytes = 1000
        let r = try UplinkParticipant(server: "http://127.0.0.1:1", token: Self.token, stateDirectory: s.path("c"), options: o)
        await Self.expectViolation("a model over maxModelBytes") { _ = try await r.downloadModel(for: a) }
        await r.shutdown()
    }

    /// The server keeps only recent models: a selection whose model is gone (404) is a retry
    /// of the check-in, not an error (scripts/e2e: a 3G download outlived three rounds).
    @Test func aModelGoneWithItsRoundMeansCheckInAgain() async throws {
        let selection = #"{"status":"selected","round":2,"pipeline":"fp32 | lz4","model":{"url":"/v1/models/2","etag":"\"x\"","bytes":10},"upload":{"url":"/v1/rounds/2/updates","maxBytes":100},"secondsLeft":30}"#
        let server = try ScriptedServer { r, _ in
            r.path == "/v1/checkin" ? ScriptedServer.response(200, [("Content-Type", "application/json")], body: Array(selection.utf8))
                : ScriptedServer.response(404, [("Content-Type", "application/problem+json")], body: Array(#"{"type":"urn:uplink:problem:not-found","status":404}"#.utf8))
        }
        let s = try ScratchDirectory()
        let p = try UplinkParticipant(server: "http://127.0.0.1:\(server.port)", token: Self.token, stateDirectory: s.path("a"), options: ClientTest.fast)
        let outcome = try await p.participate { _ in
            Issue.record("trained without a model")
            return LocalUpdate(values: [], samples: 1)
        }
        guard case .retry(_, let reason) = outcome else { Issue.record("\(outcome)"); return }
        #expect(reason == "model-gone")
        #expect(!(await p.hasPendingUpdate))
        await p.shutdown()
        server.stop()
    }
}
