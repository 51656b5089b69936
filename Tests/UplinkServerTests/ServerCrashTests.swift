import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

/// The server killed between any two durable steps (`UPLINK_CRASH_AT`, the process ends as
/// `kill -9` would) or by a real `kill -9` at a seeded point of a concurrent burst, then
/// restarted on the same data directory: every client finishes its upload by resuming from
/// `HEAD`; every upload that got a final `2xx` is in the round exactly once; the round closes
/// once; and the published model equals `uplink aggregate` run offline on the accepted frames.
@Suite(.serialized) struct ServerCrashTests {
    /// K: the round closes at the K-th accepted update.
    static let reports = 4
    static let appendSize = 1000

    /// Every crash point of the server, and which time it is reached: mid-upload for the
    /// append points, the second acceptance for the accept points, the round's close for the
    /// close points.
    static let crashes = [
        "patch-written:5", "patch-synced:3", "offset-recorded:4",
        "accept-summed:2", "accept-renamed:2", "accept-recorded:2",
        "close-published:1", "close-recorded:1",
    ]

    @Test(arguments: crashes, LedgerBackend.allCases) func nothingAcknowledgedIsLostOrCountedTwice(_ crash: String, _ backend: LedgerBackend) throws {
        let c = try TestCoordinator(
            ["--reports", "\(Self.reports)", "--over-selection", "1", "--max-append-bytes", "1024"],
            environment: ["UPLINK_CRASH_AT": crash], backend: backend)
        let port = Locked(c.port)
        let clients = (0..<Self.reports).map { "crash-\($0)" }
        for client in clients { _ = try c.checkIn(client) }
        let frames = try clients.indices.map { try TestCoordinator.frame(seed: UInt64(700 + $0), round: 1, samples: UInt64(3 + $0)) }
        let options = ResumableUpload.Options(appendSize: Self.appendSize, requestTimeout: 10, maxRequests: 60, retryDuration: 20, backoff: 0.02)
        var uploads = clients.indices.map {
            ResumableUpload(body: frames[$0], creationPath: "/v1/rounds/1/updates", token: c.token(clients[$0]), port: { port.withLock { $0 } }, options: options)
        }

        // One request per upload in turn, so the crash finds several uploads part-way.
        var crashed = false
        steps: for _ in 0..<200 {
            for i in uploads.indices where uploads[i].outcome == nil {
                _ = uploads[i].step()
                if uploads[i].exchanges.last?.error != nil {
                    crashed = c.server.waitForExit(timeout: 5) == 137
                    break steps
                }
            }
            if uploads.allSatisfy({ $0.outcome != nil }) { break }
        }
        try #require(crashed, "the server never reached \(crash): \(uploads.map { String(describing: $0.outcome) })")
        let acknowledgedBefore = uploads.compactMap { u -> [String: Any]? in
            if case .accepted(let r)? = u.outcome { return r.json() }
            return nil
        }
        let crashedLog = c.server.stderrText

        try c.restart()
        port.withLock { $0 = c.port }
        for i in uploads.indices where uploads[i].outcome == nil { _ = uploads[i].run() }
        let acknowledged = uploads.map { c.acknowledgement(of: $0)?.json() }
        for (i, a) in acknowledged.enumerated() {
            #expect(a?["status"] as? String == "accepted" && a?["client"] as? String == clients[i], "\(crash): \(clients[i]): \(String(describing: uploads[i].outcome))")
            #expect(uploads[i].offsetsNeverDecreased, "\(crash): \(clients[i]) offsets \(uploads[i].reportedOffsets)")
        }
        try c.expectRoundHoldsExactly(uploads, acknowledgements: acknowledgedBefore + acknowledged.compactMap { $0 }, round: 1, context: crash)
        // The round closed once, in one of the two processes (at close-recorded the ledger has
        // it closed, but the process died before logging it).
        let closings = (crashedLog + c.server.stderrText).split(separator: "\n").filter { $0.contains("round finished") && $0.contains("round=1 ") }
        #expect(closings.count == (crash.hasPrefix("close-recorded") ? 0 : 1), "\(crash): \(closings)")
        // The ledger records a frame before it moves it out of its upload file: a stop in
        // between leaves it there, and the restart moves it.
        if crash.hasPrefix("accept-recorded") { #expect(c.server.stderrText.contains("moved a recorded frame out of its upload file"), "\(crash)") }
    }

    /// A real `kill -9` at a seeded random point of a burst of eight uploads running at once,
    /// each on its own thread: after a seeded number of the burst's requests have been
    /// answered (each upload holds at its next request until the kill is sent, so the kill
    /// cannot miss the burst), while requests already sent are in flight. The uploads retry
    /// (connection refused) until
    /// the server is back on the same data directory.
    @Test(arguments: [1, 2, 3] as [UInt64], LedgerBackend.allCases) func killNineDuringAConcurrentBurst(_ seed: UInt64, _ backend: LedgerBackend) throws {
        let k = 8
        let c = try TestCoordinator(["--reports", "\(k)", "--over-selection", "1", "--max-append-bytes", "1024"], backend: backend)
        let port = Locked(c.port)
        let clients = (0..<k).map { "burst-\(seed)-\($0)" }
        for client in clients { _ = try c.checkIn(client) }
        let frames = try clients.indices.map { try TestCoordinator.frame(seed: seed * 100 + UInt64($0), round: 1, samples: UInt64(1 + $0)) }
        let tokens = clients.map { c.token($0) }
        let appendSize = 500
        // Each upload is a creation and ⌈frame / 500⌉ appends when nothing fails; the kill
        // comes after `threshold` of them, at least 12 before the last.
        let requests = frames.reduce(0) { $0 + 1 + ($1.count + appendSize - 1) / appendSize }
        var rng = SplitMix64(seed: seed)
        let threshold = k + Int(rng.below(UInt64(requests - 12 - k)))
        let answered = Locked(0)
        // Once `threshold` requests are answered, each upload waits at its next request boundary
        // until the kill has been sent: on a fast machine the burst would otherwise finish in the
        // time the test thread takes to notice the count (the kill then missed the burst).
        let killed = Locked(false)

        let finished = Locked<ConcurrentRunner.Report<ResumableUpload>?>(nil)
        let burst = Thread {
            let report = ConcurrentRunner.run(k, timeout: 50) { i -> ResumableUpload in
                var u = ResumableUpload(body: frames[i], creationPath: "/v1/rounds/1/updates", token: tokens[i], port: { port.withLock { $0 } },
                                        options: .init(appendSize: appendSize, requestTimeout: 10))
                let deadline = Date().addingTimeInterval(40)
                while u.step() == nil, u.exchanges.count < 400, Date() < deadline {
                    if answered.withLock({ $0 += 1; return $0 >= threshold }) {
                        while !killed.withLock({ $0 }), Date() < deadline { usleep(1_000) }
                    }
                    if let last = u.exchanges.last, last.error != nil || (last.status ?? 0) >= 500 { usleep(50_000) }
                }
                return u
            }
            finished.withLock { $0 = report }
        }
        burst.start()
        #expect(TestCoordinator.wait(seconds: 30) { answered.withLock { $0 } >= threshold })
        c.server.kill9()
        let killedAfter = answered.withLock { $0 }
        killed.withLock { $0 = true }
        let killedLog = c.server.stderrText
        try c.restart()
        port.withLock { $0 = c.port }
        #expect(TestCoordinator.wait(seconds: 55) { finished.withLock { $0 != nil } })
        let report = try #require(finished.withLock { $0 })
        #expect(report.allSucceeded)
        let uploads = report.values
        try #require(uploads.count == k)
        // The kill fell inside the burst: some request failed.
        #expect(uploads.contains { $0.exchanges.contains { $0.error != nil } }, "seed \(seed): the kill after \(killedAfter) of \(requests) requests missed the burst")
        let acknowledged = uploads.map { c.acknowledgement(of: $0)?.json() }
        for (i, a) in acknowledged.enumerated() {
            #expect(a?["status"] as? String == "accepted" && a?["client"] as? String == clients[i], "seed \(seed): \(clients[i]): \(String(describing: uploads[i].outcome))")
            #expect(uploads[i].offsetsNeverDecreased, "seed \(seed): \(clients[i]) offsets \(uploads[i].reportedOffsets)")
        }
        try c.expectRoundHoldsExactly(uploads, acknowledgements: acknowledged.compactMap { $0 }, round: 1, context: "seed \(seed)")
        let closings = (killedLog + c.server.stderrText).split(separator: "\n").filter { $0.contains("round finished") && $0.contains("round=1 ") }
        #expect(closings.count == 1, "seed \(seed): \(closings)")
    }
}

extension TestCoordinator {
    /// The names of the accepted frames of `round` (`<sequence>-<upload>.upl`), in sequence order.
    func acceptedFiles(round: UInt64) throws -> [String] {
        let dir = data.appendingPathComponent("rounds/\(round)").path
        guard FileManager.default.fileExists(atPath: dir) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".upl") }.sorted()
    }

    func acceptedFrame(round: UInt64, name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: data.appendingPathComponent("rounds/\(round)/\(name)")))
    }

    /// The server's final answer to `upload`: the response that completed it, or, when that
    /// answer was lost (a `HEAD` found the upload complete), the one the server replays to an
    /// empty completing append.
    func acknowledgement(of upload: ResumableUpload) -> HTTPResponse? {
        switch upload.outcome {
        case .accepted(let r)?: return r
        case .completeUnacknowledged?:
            guard let location = upload.location else { return nil }
            return try? request("PATCH", location, token: upload.token, headers: [
                HTTPHeader("Upload-Draft-Interop-Version", "8"), HTTPHeader("Content-Type", "application/partial-upload"),
                HTTPHeader("Upload-Offset", "\(upload.body.count)"), HTTPHeader("Upload-Complete", "?1"),
            ], body: [])
        default: return nil
        }
    }

    /// `uplink aggregate --strategy fedavg` run offline from the starting model on `frames`
    /// (paths, in this order).
    func offlineAggregate(_ frames: [String]) throws -> [Float] {
        let out = scratch.path("offline-\(UUID().uuidString.prefix(8)).safetensors")
        let r = try Self.cli(["aggregate", "--strategy", "fedavg", "--model", scratch.path("model.safetensors"), "--out", out] + frames, in: scratch.url)
        guard r.status == 0 else { throw UplinkError(.io, "uplink aggregate failed: \(r.stderr)") }
        return try Safetensors.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))).values
    }

    /// The files of `round`: exactly the frames of `uploads`, byte for byte, one each, numbered
    /// 0..<n, and every acknowledgement names one of them. Returns the file names in order.
    func expectAcceptedFilesAre(_ uploads: [ResumableUpload], acknowledgements: [[String: Any]], round: UInt64, context: String) throws -> [String] {
        let names = try acceptedFiles(round: round)
        let ids = uploads.map { $0.location.map { String($0.split(separator: "/").last!) } ?? "?" }
        #expect(names.count == uploads.count, "\(context): \(names)")
        for (i, name) in names.enumerated() {
            let parts = name.dropLast(4).split(separator: "-")
            #expect(parts.first.flatMap { Int($0) } == i, "\(context): \(name) out of sequence")
            let id = parts.last.map(String.init) ?? ""
            guard let owner = ids.firstIndex(of: id) else { Issue.record("\(context): \(name) is no client's upload"); continue }
            #expect(try acceptedFrame(round: round, name: name) == uploads[owner].body, "\(context): \(name) differs from the frame sent")
        }
        #expect(Set(names.compactMap { $0.dropLast(4).split(separator: "-").last.map(String.init) }) == Set(ids), "\(context): \(names) vs \(ids)")
        for a in acknowledgements {
            let sequence = a["sequence"] as? Int ?? -1, upload = a["upload"] as? String ?? "?"
            let file = String(format: "%06d-%@.upl", sequence, upload)
            #expect(names.contains(file), "\(context): acknowledged \(file) is not in round \(round)")
        }
        return names
    }

    /// After `round` closed with `uploads` (one per client): its directory holds exactly their
    /// frames, byte for byte, one each, numbered 0..<n; every acknowledgement names its file;
    /// the ledger counts n; the next round is open and empty; and the model published for it
    /// is, bit for bit, `uplink aggregate` of those files in sequence order.
    func expectRoundHoldsExactly(_ uploads: [ResumableUpload], acknowledgements: [[String: Any]], round: UInt64, context: String) throws {
        #expect(Self.wait(seconds: 10) { (try? status(round: round)["state"] as? String) == "closed" }, "\(context): round \(round) did not close")
        let names = try expectAcceptedFilesAre(uploads, acknowledgements: acknowledgements, round: round, context: context)
        let closed = try status(round: round)
        #expect(closed["accepted"] as? Int == uploads.count, "\(context): \(closed)")
        let next = try self.status(round: round + 1)
        #expect(next["accepted"] as? Int == 0 && next["state"] as? String == "selecting", "\(context): \(next)")
        #expect(try request("GET", "/v1/rounds/\(round + 2)", token: token("reader")).status == 404)
        let models = try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("models").path)
        #expect(models.contains("global-\(round + 1).upl") && !models.contains("global-\(round + 2).upl"), "\(context): \(models.sorted())")
        let offline = try offlineAggregate(names.map { data.appendingPathComponent("rounds/\(round)/\($0)").path })
        #expect(try model(round: round + 1).map(\.bitPattern) == offline.map(\.bitPattern), "\(context): the published model is not the offline aggregate")
    }
}
