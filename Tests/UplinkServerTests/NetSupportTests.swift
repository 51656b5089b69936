import Foundation
import Testing
import UplinkCodec
@testable import UplinkTestSupport

/// Self-tests of the network test tools in UplinkTestSupport (HTTP client, cutting proxy,
/// server process, resumable upload client, concurrent runner), against python3's
/// http.server, scripted loopback servers and an in-memory stand-in of the upload contract.

/// Runs `script` on the server side of one connection to a fresh listener, on its own thread.
func scripted(_ script: @escaping @Sendable (RawConnection) throws -> Void) throws -> LoopbackListener {
    let listener = try LoopbackListener()
    Thread {
        guard let c = try? listener.accept(timeout: 5) else { return }
        try? script(c)
        c.close()
    }.start()
    return listener
}

/// `count` bytes of a seeded pattern.
func pattern(_ count: Int, seed: UInt64 = 7) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

@Suite struct HTTPTestClientTests {
    @Test func getHeadAnd404AgainstPythonHTTPServer() throws {
        let s = try ScratchDirectory()
        let file = pattern(70_000)
        try s.write("site/blob.bin", file)
        let port = try LoopbackListener().port
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", s.path("site"), "\(port)"]
        python.standardOutput = FileHandle.nullDevice
        python.standardError = FileHandle.nullDevice
        try python.run()
        // SIGKILL: Foundation's Process passes on the runner's blocked signal mask, so python
        // would never see a SIGTERM (ServerProcess spawns with a clean mask).
        defer { kill(python.processIdentifier, SIGKILL); python.waitUntilExit() }
        // Up to 10 s for python to listen.
        var ready = false
        for _ in 0..<500 where !ready {
            if (try? RawConnection(port: port, timeout: 1)) != nil { ready = true } else { usleep(20_000) }
        }
        try #require(ready, "python3 -m http.server did not listen on \(port)")

        let get = try httpRequest(port: port, method: "GET", path: "/blob.bin")
        #expect(get.status == 200)
        let same = get.body == file
        #expect(same, "body differs")
        #expect(get.header("content-length") == "70000")

        let head = try httpRequest(port: port, method: "HEAD", path: "/blob.bin")
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(head.header("Content-Length") == "70000")

        let missing = try httpRequest(port: port, method: "GET", path: "/nothing-here")
        #expect(missing.status == 404)
    }

    @Test func closedPortIsConnectionRefused() throws {
        let port = try LoopbackListener().port
        #expect(throws: HTTPTestError.connectionRefused(port: port)) { try httpRequest(port: port, method: "GET", path: "/") }
    }

    @Test func requestCarriesHostLengthAndCloseUnlessGiven() throws {
        let got = Locked<HTTPTestRequest?>(nil)
        let server = try scripted { c in
            let r = try c.readRequest()
            got.withLock { $0 = r }
            try c.send("HTTP/1.1 204 No Content\r\n\r\n")
        }
        let body = pattern(1000)
        let r = try httpRequest(port: server.port, method: "PUT", path: "/a?b=1", headers: [("X-Test", "yes")], body: body)
        #expect(r.status == 204 && r.body.isEmpty)
        let request = try #require(got.withLock { $0 })
        #expect(request.method == "PUT" && request.path == "/a?b=1")
        #expect(request.header("host") == "127.0.0.1:\(server.port)")
        #expect(request.header("Content-Length") == "1000")
        #expect(request.header("Connection") == "close")
        #expect(request.header("X-Test") == "yes")
        #expect(request.body == body)

        let hostile = String(decoding: HTTPTestRequest(method: "POST", path: "/", headers: [("Content-Length", "99")], body: [1, 2]).serialized(port: 80), as: UTF8.self)
        #expect(hostile.components(separatedBy: "Content-Length").count == 2)
        #expect(hostile.contains("Content-Length: 99\r\n"))
    }

    @Test func interimResponsesAreRecordedAndChunkedBodiesDecoded() throws {
        let server = try scripted { c in
            _ = try c.readRequest()
            try c.send("HTTP/1.1 104 Upload Resumption Supported\r\nLocation: /v1/uploads/abc\r\n\r\n")
            try c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a\r\nset-cookie: b\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        }
        let r = try httpRequest(port: server.port, method: "POST", path: "/", body: [])
        #expect(r.status == 200)
        #expect(r.text == "hello world")
        #expect(r.headers("Set-Cookie") == ["a", "b"])
        #expect(r.interim.map(\.status) == [104])
        #expect(r.interim.first?.header("Location") == "/v1/uploads/abc")
    }

    @Test func headAnd204HaveNoBodyWhateverTheirHeadersSay() throws {
        let server = try scripted { c in
            _ = try c.readRequest()
            try c.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n")
            _ = try c.readToEnd(timeout: 5)
        }
        let c = try RawConnection(port: server.port)
        try c.send(HTTPTestRequest(method: "HEAD", path: "/", headers: [("Connection", "keep-alive")]).serialized(port: server.port))
        let head = try c.readResponse(for: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty && head.header("Content-Length") == "5")
        let noContent = try c.readResponse()
        #expect(noContent.status == 204 && noContent.body.isEmpty)
    }

    @Test func truncatedBodyIsClosedNotAResponse() throws {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
        let server = try scripted { c in
            _ = try c.readRequest()
            try c.send(head + "abc")
            c.shutdownWrite()
            _ = try c.readToEnd(timeout: 5)
        }
        #expect(throws: HTTPTestError.closed(receivedBytes: head.utf8.count + 3)) { try httpRequest(port: server.port, method: "GET", path: "/") }
    }

    @Test func hangUpWithoutAnswerIsClosedAfterZeroBytes() throws {
        let server = try scripted { c in _ = try c.readRequest() }
        #expect(throws: HTTPTestError.closed(receivedBytes: 0)) { try httpRequest(port: server.port, method: "GET", path: "/") }
    }

    @Test func resetIsReset() throws {
        let server = try scripted { c in
            _ = try c.readRequest()
            c.reset()
        }
        #expect(throws: HTTPTestError.reset) { try httpRequest(port: server.port, method: "GET", path: "/") }
    }

    @Test func malformedStatusLineIsMalformed() throws {
        let server = try scripted { c in
            _ = try c.readRequest()
            try c.send("HTTP/1.1 2000 OK\r\n\r\n")
        }
        #expect {
            try httpRequest(port: server.port, method: "GET", path: "/")
        } throws: { ($0 as? HTTPTestError).map { !$0.isTransport } ?? false }
    }

    @Test func silentServerTimesOut() throws {
        let server = try scripted { c in _ = try c.readToEnd(timeout: 5) }
        #expect(throws: HTTPTestError.timedOut("response")) { try httpRequest(port: server.port, method: "GET", path: "/", timeout: 0.3) }
    }

    @Test func slowSendArrivesWhole() throws {
        let got = Locked<HTTPTestRequest?>(nil)
        let server = try scripted { c in
            let r = try c.readRequest()
            got.withLock { $0 = r }
            try c.send("HTTP/1.1 204 No Content\r\n\r\n")
        }
        let body = pattern(300)
        let c = try RawConnection(port: server.port)
        try c.sendSlowly(HTTPTestRequest(method: "POST", path: "/slow", body: body).serialized(port: server.port), chunk: 37, interval: 0.001)
        #expect(try c.readFinalResponse().status == 204)
        #expect(got.withLock { $0?.body } == body)
    }
}

/// A loopback server that reads each connection to its end (recording the bytes and whether it
/// ended with a FIN or a reset), optionally sending `reply` first, one connection at a time.
final class RecordingServer: Sendable {
    struct Seen: Sendable {
        var bytes: [UInt8]
        var reset: Bool
    }

    let listener: LoopbackListener
    let seen = Locked<[Seen]>([])

    init(reply: [UInt8] = [], echo: Bool = false) throws {
        listener = try LoopbackListener()
        Thread { [self] in
            while let c = try? listener.accept(timeout: 10) {
                try? c.send(reply)
                var bytes: [UInt8] = []
                var reset = false
                while true {
                    do throws(HTTPTestError) {
                        let chunk = try c.receive(timeout: 5)
                        if chunk.isEmpty { break }
                        bytes += chunk
                    } catch {
                        reset = error == .reset
                        break
                    }
                }
                if echo { try? c.send(bytes) }
                c.close()
                seen.withLock { $0.append(Seen(bytes: bytes, reset: reset)) }
            }
        }.start()
    }

    var port: Int { listener.port }

    /// The record of the `index`-th connection, waiting up to 5 s for it to end.
    func connection(_ index: Int) -> Seen? {
        for _ in 0..<2500 {
            if let s = seen.withLock({ $0.count > index ? $0[index] : nil }) { return s }
            usleep(2_000)
        }
        return nil
    }
}

/// Connects to `port`, sends `bytes` (ignoring a failure: the cut may come first), reads
/// until end of stream or error, and closes: what was read and whether it ended with a reset.
/// A reset right after the connection was accepted (a cut at 0 bytes) can already fail the
/// connect.
func exchangeThroughCut(port: Int, sending bytes: [UInt8] = []) throws -> (bytes: [UInt8], reset: Bool) {
    let connected = Result { () throws(HTTPTestError) in try RawConnection(port: port) }
    if case .failure(.reset) = connected { return ([], true) }
    let c = try connected.get()
    defer { c.close() }
    // The reset may reach the send (which then consumes it) rather than the read.
    let sent = bytes.isEmpty ? .success(()) : Result { () throws(HTTPTestError) in try c.send(bytes, timeout: 5) }
    let read = drain(c)
    if case .failure(.reset) = sent { return (read.bytes, true) }
    return read
}

/// Reads `c` until end of stream or error: the bytes and whether it ended with a reset.
func drain(_ c: RawConnection) -> (bytes: [UInt8], reset: Bool) {
    var bytes: [UInt8] = []
    while true {
        do throws(HTTPTestError) {
            let chunk = try c.receive(timeout: 5)
            if chunk.isEmpty { return (bytes, false) }
            bytes += chunk
        } catch {
            return (bytes, error == .reset)
        }
    }
}

@Suite struct CuttingProxyTests {
    static let styles: [CutStyle] = [.reset, .fin]

    @Test func passThroughForwardsBothWaysAndCounts() throws {
        let echo = try RecordingServer(echo: true)
        let proxy = try CuttingProxy(targetPort: echo.port)
        defer { proxy.close() }
        let data = pattern(300_000)
        let c = try RawConnection(port: proxy.port)
        try c.send(data)
        c.shutdownWrite()
        let echoed = try c.readToEnd()
        #expect(echoed.count == data.count)
        let same = echoed == data
        #expect(same, "echo differs")
        #expect(proxy.waitUntilIdle())
        let record = try #require(proxy.connections.first)
        #expect(record.plan == nil && record.end == .closed)
        #expect(record.clientToServerBytes == data.count && record.serverToClientBytes == data.count)
        #expect(proxy.totals.connections == 1 && proxy.totals.cuts == 0)
    }

    /// The server reads exactly the first N bytes the client sent, then end of stream (FIN)
    /// or a reset (RST); the client sees its side cut the same way.
    @Test(arguments: styles)
    func clientToServerCutDeliversExactlyNBytes(style: CutStyle) throws {
        let sink = try RecordingServer()
        let proxy = try CuttingProxy(targetPort: sink.port)
        defer { proxy.close() }
        let data = pattern(200_000)
        var rng = SplitMix64(seed: 12)
        let offsets = [0, 1, 65_536, 199_999] + (0..<8).map { _ in Int(rng.below(200_000)) }
        for (i, n) in offsets.enumerated() {
            proxy.plan(.clientToServer(afterBytes: n, style: style))
            let client = try exchangeThroughCut(port: proxy.port, sending: data)
            let seen = try #require(sink.connection(i), "cut at \(n)")
            let exact = seen.bytes == Array(data[0..<n])
            #expect(seen.bytes.count == n, "cut at \(n) (\(style))")
            #expect(exact, "cut at \(n) (\(style))")
            #expect(seen.reset == (style == .reset), "cut at \(n) (\(style))")
            #expect(client.bytes.isEmpty && client.reset == (style == .reset), "cut at \(n) (\(style))")
            #expect(proxy.waitUntilIdle())
            #expect(proxy.connections[i].end == .cut && proxy.connections[i].clientToServerBytes == n)
        }
    }

    /// The client reads exactly the first N bytes the server sent, then end of stream or a reset.
    @Test(arguments: styles)
    func serverToClientCutDeliversExactlyNBytes(style: CutStyle) throws {
        let data = pattern(200_000)
        let source = try RecordingServer(reply: data)
        let proxy = try CuttingProxy(targetPort: source.port)
        defer { proxy.close() }
        var rng = SplitMix64(seed: 13)
        let offsets = [0, 1, 65_536, 199_999] + (0..<8).map { _ in Int(rng.below(200_000)) }
        for (i, n) in offsets.enumerated() {
            proxy.plan(.serverToClient(afterBytes: n, style: style))
            let client = try exchangeThroughCut(port: proxy.port)
            let exact = client.bytes == Array(data[0..<n])
            #expect(client.bytes.count == n, "cut at \(n) (\(style))")
            #expect(exact, "cut at \(n) (\(style))")
            #expect(client.reset == (style == .reset), "cut at \(n) (\(style))")
            #expect(source.connection(i) != nil)
            #expect(proxy.waitUntilIdle())
            #expect(proxy.connections[i].end == .cut && proxy.connections[i].serverToClientBytes == n)
        }
    }

    /// A peer that accepts, sends and resets before the client's thread finishes its connect
    /// (the cut proxy at 1 byte on a loaded machine): the client still reads the bytes, then the
    /// reset; with no bytes sent the connect itself reports the reset. Deterministic: the reset
    /// has landed before the connect is finished.
    @Test(arguments: [0, 1, 200])
    func connectFinishedAfterThePeerResetKeepsItsBytes(sending count: Int) throws {
        let sent = pattern(count)
        let listener = try LoopbackListener()
        defer { listener.close() }
        let (fd, connectErrno) = try LoopbackSocket.startConnection(port: listener.port)
        let server = try listener.accept(timeout: 5)
        if !sent.isEmpty { try server.send(sent) }
        usleep(20_000)
        server.reset()
        usleep(50_000)
        let finished = Result { () throws(HTTPTestError) in
            try LoopbackSocket.finishConnection(fd, port: listener.port, connectErrno: connectErrno, deadline: Deadline(seconds: 5))
        }
        switch finished {
        case .success(let connected):
            let c = RawConnection(fd: connected)
            defer { c.close() }
            let got = drain(c)
            #expect(got.bytes == sent)
            #expect(got.reset)
        case .failure(let error):
            #expect(sent.isEmpty && error == .reset, "connect failed with \(error) after \(sent.count) bytes were sent")
        }
    }

    @Test func plansApplyToTheNextConnectionsInOrderThenPassThrough() throws {
        let echo = try RecordingServer(echo: true)
        let proxy = try CuttingProxy(targetPort: echo.port)
        defer { proxy.close() }
        proxy.plan(.serverToClient(afterBytes: 3, style: .fin))
        proxy.plan(nil)
        var got: [[UInt8]] = []
        for _ in 0..<3 {
            let c = try RawConnection(port: proxy.port)
            try c.send(Array("0123456789".utf8))
            c.shutdownWrite()
            got.append(drain(c).bytes)
            #expect(proxy.waitUntilIdle())
        }
        #expect(got == [Array("012".utf8), Array("0123456789".utf8), Array("0123456789".utf8)])
        #expect(proxy.connections.map(\.plan) == [.serverToClient(afterBytes: 3, style: .fin), nil, nil])
        #expect(proxy.connections.map(\.end) == [.cut, .closed, .closed])
    }

    @Test func unreachableTargetResetsTheClient() throws {
        let gone = try LoopbackListener().port
        let proxy = try CuttingProxy(targetPort: gone)
        defer { proxy.close() }
        let client = try exchangeThroughCut(port: proxy.port)
        #expect(client.bytes.isEmpty && client.reset)
        #expect(proxy.waitUntilIdle())
        #expect(proxy.connections.map(\.end) == [.targetUnreachable])
    }

    @Test func randomCutsAreSeededAndInRange() {
        var a = SplitMix64(seed: 99), b = SplitMix64(seed: 99)
        let cuts = (0..<200).map { _ in Cut.random(clientBytes: 5000, serverBytes: 300, using: &a) }
        #expect(cuts == (0..<200).map { _ in Cut.random(clientBytes: 5000, serverBytes: 300, using: &b) })
        for cut in cuts {
            switch cut {
            case .clientToServer(let n, _): #expect((0...5000).contains(n))
            case .serverToClient(let n, _): #expect((0...300).contains(n))
            }
        }
        #expect(Set(cuts.map { "\($0.style)" }).count == 2)
        #expect(cuts.contains { if case .clientToServer = $0 { true } else { false } })
        #expect(cuts.contains { if case .serverToClient = $0 { true } else { false } })
    }
}

@Suite struct ServerProcessTests {
    static func standIn(_ script: String, in s: ScratchDirectory, timeout: Double = 10) throws -> ServerProcess {
        try ServerProcess(executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", script], dataDirectory: s.url.appendingPathComponent("data"), startupTimeout: timeout)
    }

    @Test func listeningLineGivesThePortAndTerminateReturnsTheExitStatus() throws {
        let s = try ScratchDirectory()
        let server = try Self.standIn("""
            trap 'echo stopping >&2; exit 3' TERM
            echo "log: starting"
            echo "uplink serve: listening on http://127.0.0.1:4321"
            while :; do sleep 0.05; done
            """, in: s)
        #expect(server.port == 4321 && server.scheme == "http")
        #expect(server.isRunning)
        #expect((server.rssPeakKiB() ?? 0) > 0)
        #expect((server.currentRSSKiB ?? 0) > 0)
        #expect(server.stdoutText.hasPrefix("log: starting\n"))
        #expect(server.stdoutURL.deletingLastPathComponent().path == s.url.path)
        #expect(server.terminate() == 3)
        #expect(server.stderrText == "stopping\n")
        #expect(server.rssPeakKiB() == nil)
    }

    @Test func kill9IsReportedAs137() throws {
        let s = try ScratchDirectory()
        let server = try Self.standIn("echo 'uplink serve: listening on https://127.0.0.1:65535'; exec sleep 30", in: s)
        #expect(server.port == 65535 && server.scheme == "https")
        server.kill9()
        #expect(server.waitForExit(timeout: 5) == 137)
        #expect(!server.isRunning)
    }

    @Test func exitBeforeListeningThrowsWithStderr() throws {
        let s = try ScratchDirectory()
        #expect {
            _ = try Self.standIn("echo 'uplink serve: listening on http://127.0.0.1:' ; echo 'bad --port' >&2; exit 7", in: s)
        } throws: { error in
            guard case .exitedBeforeListening(let status, let stderr)? = error as? ServerProcessError else { return false }
            return status == 7 && stderr == "bad --port\n"
        }
    }

    @Test func noListeningLineTimesOutAndKills() throws {
        let s = try ScratchDirectory()
        #expect {
            _ = try Self.standIn("echo 'uplink serve: starting'; exec sleep 30", in: s, timeout: 0.3)
        } throws: { error in
            if case .noListeningLine? = error as? ServerProcessError { return true }
            return false
        }
    }
}

@Suite struct StructuredFieldTests {
    @Test func booleans() {
        #expect(StructuredField.boolean("?1") == true)
        #expect(StructuredField.boolean("?0") == false)
        #expect(StructuredField.boolean(" ?1") == true)
        #expect(StructuredField.boolean("?1;a=2") == true)
        for bad in ["", "?", "?2", "1", "true", "?1, ?0", "?01", "? 1"] {
            #expect(StructuredField.boolean(bad) == nil, "\(bad)")
        }
    }

    @Test func uploadLimit() {
        #expect(UploadLimit(headerValue: "max-size=1000000, max-append-size=65536, max-age=3600")
            == UploadLimit(maxSize: 1_000_000, maxAppendSize: 65_536, maxAge: 3600))
        #expect(UploadLimit(headerValue: "min-size=1,min-append-size=2") == UploadLimit(minSize: 1, minAppendSize: 2))
        #expect(UploadLimit(headerValue: "max-size=5;unit=b, foo=?1, bar=\"x,y\", baz=(1 2), max-age=9")
            == UploadLimit(maxSize: 5, maxAge: 9))
        #expect(UploadLimit(headerValue: "") == UploadLimit())
        #expect(UploadLimit(headerValue: "max-size=1, max-size=2") == UploadLimit(maxSize: 2))
        for bad in ["max-size=-1", "max-size=1.5", "max-size", "max-size=\"1\"", "max-size=1,,", "max-size=1,", "Max-Size=1",
                    "max-size=1234567890123456", "max-size=1 max-age=2"] {
            #expect(UploadLimit(headerValue: bad) == nil, "\(bad)")
        }
    }
}

@Suite struct ResumableUploadTests {
    static let creation = "/v1/rounds/1/updates"

    @Test func uploadsInAppendsOfTheServersMaximum() throws {
        let server = try FakeUploadServer()
        defer { server.stop() }
        let body = pattern(30_000)
        var upload = ResumableUpload(body: body, creationPath: Self.creation, token: FakeUploadServer.token, port: server.port)
        let outcome = upload.run()
        guard case .accepted(let r) = outcome else { Issue.record("\(outcome)"); return }
        #expect(r.json()?["accepted"] as? Bool == true)
        let id = try #require(upload.location?.split(separator: "/").last.map(String.init))
        #expect(upload.location == "/v1/uploads/\(id)")
        let stored = server.upload(id)?.bytes == body
        #expect(stored && server.upload(id)?.accepted == 1)
        #expect(upload.limit == UploadLimit(maxSize: 1_000_000, maxAppendSize: 8192, maxAge: 3600))
        #expect(upload.exchanges.map(\.method) == ["POST", "PATCH", "PATCH", "PATCH", "PATCH"])
        #expect(upload.exchanges.compactMap(\.sentOffset) == [0, 8192, 16384, 24576])
        #expect(upload.exchanges.map(\.sentComplete) == [false, false, false, false, true])
        #expect(upload.reportedOffsets == [0, 8192, 16384, 24576])
    }

    @Test func optimisticCreationIsOneRequest() throws {
        let server = try FakeUploadServer()
        defer { server.stop() }
        let body = pattern(5000)
        var upload = ResumableUpload(body: body, creationPath: Self.creation, token: FakeUploadServer.token, port: server.port, options: .init(optimistic: true))
        guard case .accepted = upload.run() else { Issue.record("\(String(describing: upload.outcome))"); return }
        #expect(upload.exchanges.count == 1)
        #expect(upload.location?.hasPrefix("/v1/uploads/") == true)
        let stored = server.uploads.values.map(\.bytes) == [body]
        #expect(stored)
    }

    @Test func mismatchingOffsetIsAdopted() throws {
        let server = try FakeUploadServer()
        defer { server.stop() }
        let body = pattern(20_000)
        var upload = ResumableUpload(body: body, creationPath: Self.creation, token: FakeUploadServer.token, port: server.port)
        #expect(upload.step() == nil)
        let id = try #require(upload.location.map { String($0.dropFirst("/v1/uploads/".count)) })
        // Another append landed first: the server holds 5,000 bytes the client does not know of.
        server.store.uploads.withLock { $0[id]!.bytes = Array(body[0..<5000]) }
        guard case .accepted = upload.run() else { Issue.record("\(String(describing: upload.outcome))"); return }
        #expect(upload.exchanges[1].status == 409 && upload.exchanges[1].reportedOffset == 5000)
        #expect(upload.exchanges.compactMap(\.sentOffset) == [0, 5000, 13192])
        let stored = server.upload(id)?.bytes == body
        #expect(stored && server.upload(id)?.accepted == 1)
    }

    @Test func refusalEndsTheUpload() throws {
        let server = try FakeUploadServer()
        defer { server.stop() }
        var upload = ResumableUpload(body: pattern(10), creationPath: Self.creation, token: "wrong", port: server.port)
        guard case .refused(let r) = upload.run() else { Issue.record("\(String(describing: upload.outcome))"); return }
        #expect(r.status == 401 && upload.exchanges.count == 1)
    }

    @Test func givesUpAfterTheRequestBudget() throws {
        let gone = try LoopbackListener().port
        var upload = ResumableUpload(body: pattern(10), creationPath: Self.creation, token: nil, port: gone, options: .init(maxRequests: 3, backoff: 0.001))
        guard case .gaveUp = upload.run() else { Issue.record("\(String(describing: upload.outcome))"); return }
        #expect(upload.exchanges.map(\.error) == Array(repeating: .connectionRefused(port: gone), count: 3))
    }

    /// Stepping by hand across a "restart": the store survives, the port changes, and the
    /// upload resumes from the offset a HEAD reports.
    @Test func resumesAcrossARestartOnANewPort() throws {
        let store = FakeUploadServer.Store(maxAppendSize: 4096)
        var server = try FakeUploadServer(store: store)
        let port = Locked(server.port)
        let body = pattern(10_000)
        var upload = ResumableUpload(body: body, creationPath: Self.creation, token: FakeUploadServer.token, port: { port.withLock { $0 } })
        #expect(upload.step() == nil)  // POST
        #expect(upload.step() == nil)  // PATCH 0..<4096
        server.stop()
        #expect(upload.step() == nil)  // PATCH 4096..<8192: refused connection
        #expect(upload.exchanges.last?.error == .connectionRefused(port: port.withLock { $0 }))
        server = try FakeUploadServer(store: store)
        defer { server.stop() }
        port.withLock { $0 = server.port }
        guard case .accepted = upload.run() else { Issue.record("\(String(describing: upload.outcome))"); return }
        #expect(upload.exchanges.map(\.method) == ["POST", "PATCH", "PATCH", "HEAD", "PATCH", "PATCH"])
        #expect(upload.reportedOffsets == [0, 4096, 4096, 8192])
        let stored = store.uploads.withLock { $0.values.map(\.bytes) } == [body]
        #expect(stored)
    }

    /// Seeded random cuts in either direction, by reset or FIN, on the first connections of
    /// each upload: every upload ends with the server holding exactly its bytes, accepted once,
    /// and the reported offsets never decrease.
    @Test func survivesRandomCuts() throws {
        let server = try FakeUploadServer()
        defer { server.stop() }
        let proxy = try CuttingProxy(targetPort: server.port)
        defer { proxy.close() }
        var rng = SplitMix64(seed: 2024)
        for trial in 0..<40 {
            let body = pattern(20_000 + Int(rng.below(10_000)), seed: UInt64(trial))
            for _ in 0..<3 { proxy.plan(Cut.random(clientBytes: 9000, serverBytes: 300, using: &rng)) }
            var upload = ResumableUpload(body: body, creationPath: Self.creation, token: FakeUploadServer.token, port: proxy.port,
                                         options: .init(optimistic: trial % 4 == 0, backoff: 0.001))
            let outcome = upload.run()
            switch outcome {
            case .accepted, .completeUnacknowledged: break
            default: Issue.record("trial \(trial): \(outcome)")
            }
            #expect(upload.offsetsNeverDecreased, "trial \(trial): \(upload.reportedOffsets)")
            let id = try #require(upload.location.map { String($0.dropFirst("/v1/uploads/".count)) }, "trial \(trial)")
            let stored = server.upload(id)?.bytes == body
            #expect(stored, "trial \(trial)")
            #expect(server.upload(id)?.accepted == 1, "trial \(trial)")
            #expect(proxy.waitUntilIdle())
        }
        #expect(proxy.totals.cuts > 0)
    }
}

@Suite struct ConcurrentRunnerTests {
    /// Each closure waits until all are inside at once: it can only succeed if all really run
    /// concurrently.
    @Test func runsAllClosuresAtOnce() {
        let n = 200
        let inside = Locked(0)
        let report = ConcurrentRunner.run(n, timeout: 30) { i -> Int in
            inside.withLock { $0 += 1 }
            for _ in 0..<10_000 where inside.withLock({ $0 }) < n { usleep(1_000) }
            guard inside.withLock({ $0 }) == n else { throw HTTPTestError.timedOut("barrier") }
            return i
        }
        #expect(report.allSucceeded)
        #expect(report.values == Array(0..<n))
    }

    @Test func reportsFailuresAndUnfinished() {
        let report = ConcurrentRunner.run(3, timeout: 0.5) { i -> Int in
            if i == 1 { throw HTTPTestError.reset }
            if i == 2 { sleep(2) }
            return i
        }
        #expect(report.startedTogether)
        #expect(report.values == [0])
        #expect(report.failures.map(\.index) == [1])
        #expect(report.unfinished == [2])
        #expect(!report.allSucceeded)
    }

    @Test func concurrentUploadsThroughTheFake() throws {
        let server = try FakeUploadServer()
        defer { server.stop() }
        let port = server.port
        let report = ConcurrentRunner.run(100, timeout: 60) { i -> Bool in
            var upload = ResumableUpload(body: pattern(12_000, seed: UInt64(i)), creationPath: Self.creation, token: FakeUploadServer.token, port: port)
            if case .accepted = upload.run() { return true }
            return false
        }
        #expect(report.allSucceeded)
        #expect(report.values == Array(repeating: true, count: 100))
        let stored = Set(server.uploads.values.map(\.bytes)) == Set((0..<100).map { pattern(12_000, seed: UInt64($0)) })
        #expect(stored)
    }

    static let creation = ResumableUploadTests.creation
}
