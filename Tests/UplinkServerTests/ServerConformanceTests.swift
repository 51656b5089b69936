import Foundation
import Testing
import UplinkCodec
import UplinkServer
import UplinkTensorIO
import UplinkTestSupport

/// The resumable-upload exchange against the real server, status by status and header by
/// header (draft-ietf-httpbis-resumable-upload, interop version 8; and 6).
@Suite(.serialized) struct ServerConformanceTests {
    static let v8 = HTTPHeader("Upload-Draft-Interop-Version", "8")

    func create(_ c: TestCoordinator, client: String, length: Int, round: UInt64 = 1, version: String = "8") throws -> HTTPResponse {
        try c.request("POST", "/v1/rounds/\(round)/updates", token: c.token(client), headers: [
            HTTPHeader("Upload-Draft-Interop-Version", version), HTTPHeader("Upload-Complete", "?0"), HTTPHeader("Upload-Length", "\(length)"),
        ])
    }

    func patch(_ c: TestCoordinator, _ location: String, client: String, offset: Int, complete: Bool, body: [UInt8], version: String = "8") throws -> HTTPResponse {
        try c.request("PATCH", location, token: c.token(client), headers: [
            HTTPHeader("Upload-Draft-Interop-Version", version), HTTPHeader("Content-Type", "application/partial-upload"),
            HTTPHeader("Upload-Offset", "\(offset)"), HTTPHeader("Upload-Complete", complete ? "?1" : "?0"),
        ], body: body)
    }

    @Test func theWholeExchangeStatusByStatus() throws {
        let c = try TestCoordinator()
        let checkIn = try c.checkIn("alice")
        #expect(checkIn["status"] as? String == "selected")
        #expect(checkIn["round"] as? Int == 1)
        #expect(checkIn["pipeline"] as? String == "fp32 | lz4")
        let frame = try TestCoordinator.frame(seed: 1, round: 1)

        // OPTIONS announces the limits.
        let options = try c.request("OPTIONS", "/v1/rounds/1/updates", token: c.token("alice"), headers: [Self.v8])
        #expect(options.status == 204)
        #expect(options.header("Upload-Limit")?.contains("max-size=") == true)

        // Creation.
        let created = try create(c, client: "alice", length: frame.count)
        #expect(created.status == 201)
        let location = try #require(created.header("Location"))
        #expect(location.hasPrefix("/v1/uploads/") && location.count == "/v1/uploads/".count + 32)
        #expect(created.header("Upload-Offset") == "0")
        let limit = try #require(created.header("Upload-Limit"))
        #expect(limit.contains("max-size=") && limit.contains("max-append-size=") && limit.contains("max-age="))

        // A first append, then HEAD.
        let first = try patch(c, location, client: "alice", offset: 0, complete: false, body: Array(frame[0..<700]))
        #expect(first.status == 204)
        #expect(first.header("Upload-Offset") == "700")
        #expect(first.header("Upload-Complete") == "?0")
        let head = try c.request("HEAD", location, token: c.token("alice"), headers: [Self.v8])
        #expect(head.status == 204)
        #expect(head.header("Upload-Offset") == "700")
        #expect(head.header("Upload-Complete") == "?0")
        #expect(head.header("Upload-Length") == "\(frame.count)")
        #expect(head.header("Upload-Limit") != nil)
        #expect(head.header("Cache-Control") == "no-store")

        // A wrong offset: 409 with the right one and the draft's problem type.
        let wrong = try patch(c, location, client: "alice", offset: 0, complete: true, body: Array(frame[700...]))
        #expect(wrong.status == 409)
        #expect(wrong.header("Upload-Offset") == "700")
        #expect(wrong.header("Content-Type") == "application/problem+json")
        let problem = try #require(wrong.json())
        #expect((problem["type"] as? String)?.hasSuffix("#mismatching-upload-offset") == true)
        #expect(problem["expected-offset"] as? Int == 700 && problem["provided-offset"] as? Int == 0)

        // The rest completes it: the server's acceptance, Upload-Complete ?1.
        let done = try patch(c, location, client: "alice", offset: 700, complete: true, body: Array(frame[700...]))
        #expect(done.status == 200, "\(done.text)")
        #expect(done.header("Upload-Complete") == "?1")
        let accepted = try #require(done.json())
        #expect(accepted["status"] as? String == "accepted" && accepted["client"] as? String == "alice" && accepted["samples"] as? Int == 10)

        // The final answer is replayed to a client that lost it; appending more is refused.
        let replay = try patch(c, location, client: "alice", offset: frame.count, complete: true, body: [])
        #expect(replay.status == 200 && replay.json()?["sequence"] as? Int == 0)
        let more = try patch(c, location, client: "alice", offset: frame.count, complete: false, body: [1, 2, 3])
        #expect(more.status == 400 || more.status == 409)
        let headDone = try c.request("HEAD", location, token: c.token("alice"), headers: [Self.v8])
        #expect(headDone.header("Upload-Complete") == "?1" && headDone.header("Upload-Offset") == "\(frame.count)")

        // Round status counts it.
        let status = try c.status(round: 1)
        #expect(status["accepted"] as? Int == 1 && status["bytesReceived"] as? Int == frame.count)

        // DELETE of an open upload, then it is gone.
        _ = try c.checkIn("bob")
        let other = try create(c, client: "bob", length: 100)
        let otherLocation = try #require(other.header("Location"))
        #expect(try c.request("DELETE", otherLocation, token: c.token("bob"), headers: [Self.v8]).status == 204)
        #expect(try c.request("HEAD", otherLocation, token: c.token("bob"), headers: [Self.v8]).status == 404)
    }

    @Test func aNewerRequestEndsAnOlderAppendThatStalled() throws {
        let c = try TestCoordinator()
        _ = try c.checkIn("stall")
        let frame = try TestCoordinator.frame(seed: 9, round: 1)
        let location = try #require(try create(c, client: "stall", length: frame.count).header("Location"))
        // An append that sends 1,500 of its bytes and then goes silent (a half-open connection).
        let old = try RawConnection(port: c.port)
        try old.send("PATCH \(location) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(c.token("stall"))\r\nUpload-Draft-Interop-Version: 8\r\nContent-Type: application/partial-upload\r\nUpload-Offset: 0\r\nUpload-Complete: ?1\r\nContent-Length: \(frame.count)\r\n\r\n")
        try old.send(Array(frame[0..<1500]))
        usleep(300_000)
        // HEAD does not wait for the stalled request: it ends it, and reports what it stored.
        let started = Date()
        let head = try c.request("HEAD", location, token: c.token("stall"), headers: [Self.v8], timeout: 5)
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(head.header("Upload-Offset") == "1500")
        // The older connection was closed by the server.
        #expect((try? old.readToEnd(timeout: 5))?.isEmpty ?? true)
        // The client resumes from the offset it was given.
        let done = try patch(c, location, client: "stall", offset: 1500, complete: true, body: Array(frame[1500...]))
        #expect(done.status == 200, "\(done.text)")
    }

    @Test func optimisticCreationAndVersionSix() throws {
        let c = try TestCoordinator()
        _ = try c.checkIn("carol")
        let frame = try TestCoordinator.frame(seed: 2, round: 1)
        let r = try c.request("POST", "/v1/rounds/1/updates", token: c.token("carol"), headers: [
            HTTPHeader("Upload-Draft-Interop-Version", "6"), HTTPHeader("Upload-Complete", "?1"),
        ], body: frame)
        #expect(r.status == 200, "\(r.text)")
        #expect(r.header("Upload-Complete") == "?1")
        #expect(r.header("Location")?.hasPrefix("/v1/uploads/") == true)
        // Version 6 names the lifetime `expires`.
        #expect(r.header("Upload-Limit")?.contains("expires=") == true)
    }

    @Test func interopVersionsOtherThanEightAndSixAreRefused() throws {
        let c = try TestCoordinator()
        _ = try c.checkIn("dave")
        for version in ["7", "5", "9", "", "eight"] {
            let r = try create(c, client: "dave", length: 100, version: version)
            #expect(r.status == 400, "version \(version)")
            #expect(r.json()?["type"] as? String == "urn:uplink:problem:unsupported-interop-version")
        }
        let missing = try c.request("POST", "/v1/rounds/1/updates", token: c.token("dave"), headers: [HTTPHeader("Upload-Complete", "?0"), HTTPHeader("Upload-Length", "10")])
        #expect(missing.status == 400)
    }

    @Test func everyVerbNeedsAValidTokenOfTheOwner() throws {
        let c = try TestCoordinator()
        _ = try c.checkIn("erin")
        let created = try create(c, client: "erin", length: 100)
        let location = try #require(created.header("Location"))
        let expired = try c.authority.mint(client: "erin", ttl: 1, now: Date().timeIntervalSince1970 - 10)
        let forged = try TokenAuthorityForTests.other.mint(client: "erin", ttl: 60)
        let routes: [(String, String)] = [
            ("POST", "/v1/checkin"), ("GET", "/v1/models/1"), ("GET", "/v1/rounds/1"), ("POST", "/v1/rounds/1/updates"),
            ("OPTIONS", "/v1/rounds/1/updates"), ("HEAD", location), ("PATCH", location), ("DELETE", location), ("OPTIONS", location),
        ]
        for (method, path) in routes {
            for token in [nil, "garbage", expired, forged] as [String?] {
                let r = try c.request(method, path, token: token, headers: [Self.v8, HTTPHeader("Content-Type", "application/partial-upload"), HTTPHeader("Upload-Offset", "0"), HTTPHeader("Upload-Complete", "?0")], body: method == "PATCH" ? [1] : nil)
                #expect(r.status == 401, "\(method) \(path) with \(token?.prefix(8) ?? "no token"): \(r.status)")
            }
            // Another client's valid token: 403 on her upload resource.
            if path == location {
                let r = try c.request(method, path, token: c.token("mallory"), headers: [Self.v8, HTTPHeader("Content-Type", "application/partial-upload"), HTTPHeader("Upload-Offset", "0"), HTTPHeader("Upload-Complete", "?0")], body: method == "PATCH" ? [1] : nil)
                #expect(r.status == 403, "\(method) by another client: \(r.status)")
            }
        }
        // The upload survived all of it.
        let head = try c.request("HEAD", location, token: c.token("erin"), headers: [Self.v8])
        #expect(head.status == 204 && head.header("Upload-Offset") == "0")
    }

    @Test func guessedAndMalformedUploadIdsAre404() throws {
        let c = try TestCoordinator()
        for id in [String(repeating: "0", count: 32), "abc", "../../etc/passwd", String(repeating: "f", count: 33), "ABCDEF0123456789ABCDEF0123456789"] {
            let r = try c.request("HEAD", "/v1/uploads/\(id)", token: c.token("x"), headers: [Self.v8])
            #expect(r.status == 404, "\(id): \(r.status)")
        }
        // Round numbers up to 2^64 − 1 are looked up, not trapped on (above 2^63 they do not fit
        // SQLite's signed integers as they are).
        for round in ["9223372036854775808", "18446744073709551615", "0", "18446744073709551616", "-1"] {
            for path in ["/v1/rounds/\(round)", "/v1/models/\(round)"] {
                let r = try c.request("GET", path, token: c.token("x"))
                #expect(r.status == 404, "\(path): \(r.status)")
            }
            let create = try c.request("POST", "/v1/rounds/\(round)/updates", token: c.token("x"), headers: [Self.v8, HTTPHeader("Upload-Complete", "?0"), HTTPHeader("Upload-Length", "10")])
            #expect([404, 409].contains(create.status), "create in round \(round): \(create.status)")
        }
        #expect(try c.request("GET", "/healthz", token: nil).status == 200)
    }

    @Test func badFramesAreRefusedWithTheirCodeAndNeverCount() throws {
        let c = try TestCoordinator(["--over-selection", "10"])
        func send(_ client: String, _ bytes: [UInt8]) throws -> HTTPResponse {
            _ = try c.checkIn(client)
            return try c.request("POST", "/v1/rounds/1/updates", token: c.token(client), headers: [Self.v8, HTTPHeader("Upload-Complete", "?1")], body: bytes)
        }
        var truncated = try TestCoordinator.frame(seed: 3, round: 1)
        truncated.removeLast(10)
        var flipped = try TestCoordinator.frame(seed: 3, round: 1)
        flipped[flipped.count - 5] ^= 0x40
        let cases: [(String, [UInt8], Int)] = [
            ("t", truncated, 103), ("c", flipped, 201),
            ("r", try TestCoordinator.frame(seed: 4, round: 7), 901),
            ("p", try TestCoordinator.frame(seed: 5, round: 1, pipeline: "fp16 | lz4"), 909),
            ("z", try TestCoordinator.frame(seed: 6, round: 1, samples: 0), 903),
            ("junk", Array("not a frame at all, just text".utf8), 100),
        ]
        for (client, bytes, code) in cases {
            let r = try send(client, bytes)
            #expect(r.status == 422, "\(client): \(r.status) \(r.text)")
            #expect(r.json()?["code"] as? Int == code, "\(client): \(r.text)")
            #expect(r.header("Upload-Complete") == "?1")
        }
        // A different model's frame.
        var other = FrameEncoder(layout: try ModelLayout([TensorSpec(name: "x", shape: [1024])]), pipeline: try Pipeline(parsing: "fp32 | lz4"))
        let foreign = try send("f", try other.encode([Float](repeating: 0.1, count: 1024), round: 1))
        #expect(foreign.status == 422 && [300, 301].contains(foreign.json()?["code"] as? Int ?? 0))
        let status = try c.status(round: 1)
        #expect(status["accepted"] as? Int == 0)
        let rejected = status["rejected"] as? [[String: Any]] ?? []
        #expect(rejected.reduce(0) { $0 + ($1["count"] as? Int ?? 0) } == cases.count + 1)
        // The round still works: two good frames close it.
        for (i, client) in ["g1", "g2"].enumerated() {
            let r = try send(client, try TestCoordinator.frame(seed: UInt64(10 + i), round: 1))
            #expect(r.status == 200, "\(r.text)")
        }
        #expect(TestCoordinator.wait { (try? c.status(round: 1)["state"] as? String) == "closed" })
    }

    @Test func aSecondUpdateFromOneClientIsRefused() throws {
        let c = try TestCoordinator(["--reports", "5"])
        _ = try c.checkIn("h")
        let (first, _) = c.upload(try TestCoordinator.frame(seed: 20, round: 1), client: "h", round: 1)
        guard case .accepted = first else { Issue.record("first: \(first)"); return }
        let again = try c.request("POST", "/v1/rounds/1/updates", token: c.token("h"), headers: [Self.v8, HTTPHeader("Upload-Complete", "?1")], body: try TestCoordinator.frame(seed: 21, round: 1))
        #expect(again.status == 409)
        #expect(again.json()?["code"] as? Int == 900)
        #expect(try c.status(round: 1)["accepted"] as? Int == 1)
    }

    @Test func limitsAreEnforcedWithProblemBodies() throws {
        let c = try TestCoordinator(["--max-upload-bytes", "5000", "--max-append-bytes", "1000", "--max-open-uploads", "1"])
        _ = try c.checkIn("i")
        let big = try create(c, client: "i", length: 5001)
        #expect(big.status == 413 && big.json()?["type"] as? String == "urn:uplink:problem:upload-too-large")
        let first = try create(c, client: "i", length: 4000)
        #expect(first.status == 201)
        // A second creation in the round replaces the first (one whose 201 a cut lost would
        // otherwise be an orphan counting against --max-open-uploads).
        let ok = try create(c, client: "i", length: 4000)
        #expect(ok.status == 201)
        let replaced = try #require(first.header("Location"))
        #expect(try c.request("HEAD", replaced, token: c.token("i"), headers: [Self.v8]).status == 404)
        let location = try #require(ok.header("Location"))
        let tooMuch = try patch(c, location, client: "i", offset: 0, complete: false, body: [UInt8](repeating: 1, count: 1001))
        #expect(tooMuch.status == 413)
        let past = try patch(c, location, client: "i", offset: 0, complete: false, body: [UInt8](repeating: 1, count: 900))
        #expect(past.status == 204)
        let notPartial = try c.request("PATCH", location, token: c.token("i"), headers: [Self.v8, HTTPHeader("Content-Type", "application/octet-stream"), HTTPHeader("Upload-Offset", "900"), HTTPHeader("Upload-Complete", "?0")], body: [1])
        #expect(notPartial.status == 415)
        // A client not selected cannot create an upload.
        let stranger = try create(c, client: "never-checked-in", length: 100)
        #expect(stranger.status == 403 && stranger.json()?["code"] as? Int == 910)
    }

    @Test func slowHeadersAndStalledConnectionsAreCut() throws {
        let c = try TestCoordinator(["--head-timeout", "1", "--idle-timeout", "2"])
        let slow = try RawConnection(port: c.port)
        try slow.send("POST /v1/checkin HTTP/1.1\r\nHost: x\r\n")
        let start = Date()
        // The server closes the connection: reading ends without a full response.
        let bytes = (try? slow.readToEnd(timeout: 8)) ?? []
        #expect(Date().timeIntervalSince(start) < 6)
        #expect(bytes.isEmpty || !String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        // The server still answers others.
        #expect(try c.request("GET", "/healthz", token: nil).status == 200)
    }

    @Test func modelsDownloadWithETagAndRange() throws {
        let c = try TestCoordinator()
        let full = try c.request("GET", "/v1/models/1", token: c.token("m"))
        #expect(full.status == 200)
        let etag = try #require(full.header("ETag"))
        let decoded = try FrameDecoder().decode(full.body, layout: TestCoordinator.layout)
        #expect(decoded.values.count == TestCoordinator.layout.parameterCount)
        let tail = try c.request("GET", "/v1/models/1", token: c.token("m"), headers: [HTTPHeader("Range", "bytes=100-"), HTTPHeader("If-Range", etag)])
        #expect(tail.status == 206)
        #expect(tail.header("Content-Range") == "bytes 100-\(full.body.count - 1)/\(full.body.count)")
        #expect(Array(full.body[100...]) == tail.body)
        let notModified = try c.request("GET", "/v1/models/1", token: c.token("m"), headers: [HTTPHeader("If-None-Match", etag)])
        #expect(notModified.status == 304)
        let stale = try c.request("GET", "/v1/models/1", token: c.token("m"), headers: [HTTPHeader("Range", "bytes=100-"), HTTPHeader("If-Range", "\"other\"")])
        #expect(stale.status == 200 && stale.body == full.body)
        #expect(try c.request("GET", "/v1/models/1", token: c.token("m"), headers: [HTTPHeader("Range", "bytes=999999-")]).status == 416)
        #expect(try c.request("GET", "/v1/models/2", token: c.token("m")).status == 404)
        #expect(try c.request("GET", "/v1/models/x", token: c.token("m")).status == 404)
    }

    @Test func metricsAndHealth() throws {
        let c = try TestCoordinator()
        _ = try c.checkIn("n")
        let (outcome, _) = c.upload(try TestCoordinator.frame(seed: 30, round: 1), client: "n", round: 1)
        guard case .accepted = outcome else { Issue.record("\(outcome)"); return }
        let m = try c.request("GET", "/metrics", token: nil)
        #expect(m.status == 200)
        for name in ["uplink_frames_accepted_total 1", "uplink_uploads_in_flight 0", "uplink_upload_bytes_received_total", "uplink_round 1", "uplink_checkins_total"] {
            #expect(m.text.contains(name), "\(name)")
        }
        #expect(try c.request("GET", "/healthz", token: nil).status == 200)
    }

    @Test func sigtermStopsGracefullyAndARestartResumes() throws {
        let c = try TestCoordinator()
        _ = try c.checkIn("o")
        let frame = try TestCoordinator.frame(seed: 40, round: 1)
        let created = try create(c, client: "o", length: frame.count)
        let location = try #require(created.header("Location"))
        #expect(try patch(c, location, client: "o", offset: 0, complete: false, body: Array(frame[0..<1000])).status == 204)
        #expect(c.server.terminate() == 0)
        try c.restart()
        let head = try c.request("HEAD", location, token: c.token("o"), headers: [Self.v8])
        #expect(head.header("Upload-Offset") == "1000")
        let done = try patch(c, location, client: "o", offset: 1000, complete: true, body: Array(frame[1000...]))
        #expect(done.status == 200, "\(done.text)")
    }

    @Test func plainHTTPOffLoopbackIsRefused() throws {
        let s = try ScratchDirectory()
        try s.write("secret", TestCoordinator.secret)
        try s.write("m.npy", Npy.write(shape: [10], values: [Float](repeating: 0, count: 10)))
        let r = try TestCoordinator.cli(["serve", "--model", "m.npy", "--data", "d", "--token-secret", "secret", "--host", "0.0.0.0", "--port", "0"], in: s.url)
        #expect(r.status == 1)
        #expect(r.stderr.contains("--insecure-plaintext"))
        let short = try s.write("short", [UInt8](repeating: 1, count: 8))
        let t = try TestCoordinator.cli(["token", "--secret", short, "--client", "a"], in: s.url)
        #expect(t.status == 1 && t.stderr.contains("at least 32"))
    }
}

enum TokenAuthorityForTests {
    static let other = try! TokenAuthority(secret: [UInt8](repeating: 0x11, count: 32))
}
