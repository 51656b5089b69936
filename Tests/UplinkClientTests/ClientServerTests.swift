import Foundation
import Testing
@testable import UplinkClient
import UplinkCodec
import UplinkServer
import UplinkTensorIO
import UplinkTestSupport

/// Shared pieces: a participant of a ``TestCoordinator``, fast retries, reading back state.
enum ClientTest {
    /// Retries fast enough for tests (the defaults pause up to 30 s).
    static var fast: ClientOptions {
        var o = ClientOptions()
        o.retry = RetryPolicy(initialDelay: 0.005, maxDelay: 0.05, maxConsecutiveFailures: 40, maxDuration: 120)
        o.requestTimeoutBase = 10
        return o
    }

    static func participant(_ c: TestCoordinator, _ client: String, state: String, port: Int? = nil, options: ClientOptions = fast,
                            transport: (any UplinkTransport)? = nil, token: String? = nil) throws -> UplinkParticipant {
        try UplinkParticipant(server: "http://127.0.0.1:\(port ?? c.port)", token: token ?? c.token(client), stateDirectory: state,
                              options: options, transport: transport)
    }

    /// The committed residual in `state` (zeros when none).
    static func residual(_ state: String, pipeline: String, layout: ModelLayout = TestCoordinator.layout) throws -> [Float] {
        guard let data = FileManager.default.contents(atPath: state + "/residual.upls") else {
            return [Float](repeating: 0, count: layout.parameterCount)
        }
        return try ErrorFeedbackState(serialized: [UInt8](data), layout: layout, pipeline: try Pipeline(parsing: pipeline)).residual
    }

    /// The accepted frame of upload `id` in the server's data directory.
    static func acceptedFrame(_ c: TestCoordinator, round: UInt64, upload id: String) throws -> [UInt8] {
        let dir = c.data.appendingPathComponent("rounds/\(round)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix("-\(id).upl") }
        try #require(names.count == 1, "accepted frame of \(id) in round \(round): \(names)")
        return [UInt8](try Data(contentsOf: dir.appendingPathComponent(names[0])))
    }

    static func update(seed: UInt64) -> [Float] {
        TestData.heavyTailed(count: TestCoordinator.layout.parameterCount, seed: seed, scale: 0.02)
    }

    static func maxAbsDifference(_ a: [Float], _ b: [Double]) -> Double {
        zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
    }
}

@Suite(.serialized) struct ClientServerTests {
    static let ef = "ef | topk 10% | int8 | lz4"

    @Test func aRoundEndToEndWithTheDefaultTransport() async throws {
        let c = try TestCoordinator(["--reports", "1", "--over-selection", "1"])
        let s = try ScratchDirectory()
        let p = try ClientTest.participant(c, "alice", state: s.path("alice"))
        let events = Locked<[ClientEvent]>([])
        let u = ClientTest.update(seed: 1)
        let global = try c.model(round: 1)
        let result = try await p.participate(progress: { e in events.withLock { $0.append(e) } }) { model in
            #expect(model.layout == TestCoordinator.layout)
            #expect(model.values == global)
            return LocalUpdate(values: u, samples: 12)
        }
        await p.shutdown()
        guard case .reported(let r) = result, case .accepted(let receipt) = r.verdict else { Issue.record("\(result)"); return }
        #expect(receipt.round == 1 && receipt.client == "alice" && receipt.samples == 12)
        #expect(r.residual == .none && !r.resumed && r.frameBytes == receipt.bytes)
        #expect(r.upload.requests == 2 && r.upload.retries == 0)  // careful creation, one append
        #expect(try ClientTest.acceptedFrame(c, round: 1, upload: receipt.upload) == (try FrameEncoder(layout: TestCoordinator.layout, pipeline: Pipeline(parsing: "fp32 | lz4")).encodeOnce(u, round: 1, sampleCount: 12)))
        // Progress: acknowledged bytes only grow, and end at the frame's size.
        let acks = events.withLock { $0 }.compactMap { e -> Int? in if case .uploading(let p) = e { return p.acknowledged } else { return nil } }
        #expect(acks == acks.sorted() && acks.last == r.frameBytes)
        // The next check-in in the same round is told to wait: this client's update is in.
        #expect(FileManager.default.fileExists(atPath: s.path("alice/reported.json")))
        #expect(!FileManager.default.fileExists(atPath: s.path("alice/pending")))
    }

    /// Item 5: Σ accepted frames + residual = Σ updates, across accepted rounds, a round that
    /// closed before the upload (rolled back) and a refused frame (rolled back).
    @Test func errorFeedbackIsCommittedOnlyWhenTheServerAccepts() async throws {
        // K = 1 with two selected per round: bob can close a round before alice's upload.
        let c = try TestCoordinator(["--pipeline", Self.ef, "--reports", "1", "--over-selection", "2"])
        let s = try ScratchDirectory()
        let alice = try ClientTest.participant(c, "alice", state: s.path("alice"))
        var sumOfUpdates = [Double](repeating: 0, count: TestCoordinator.layout.parameterCount)
        var accepted: [(UInt64, String)] = []
        for round in UInt64(1)...4 {
            guard case .selected(let a) = try await alice.checkIn() else { Issue.record("alice not selected in \(round)"); return }
            #expect(a.round == round)
            let (model, _) = try await alice.downloadModel(for: a)
            let u = ClientTest.update(seed: 100 + round)
            for i in u.indices { sumOfUpdates[i] += Double(u[i]) }
            let before = try ClientTest.residual(s.path("alice"), pipeline: Self.ef)
            _ = try await alice.prepare(LocalUpdate(values: u, samples: 5), for: a, layout: model.layout)
            if round == 2 {
                // Bob reports first and closes round 2.
                _ = try c.checkIn("bob")
                let (o, _) = c.upload(try TestCoordinator.frame(seed: 9, round: 2, pipeline: Self.ef), client: "bob", round: 2)
                guard case .accepted = o else { Issue.record("bob: \(o)"); return }
            }
            guard let r = try await alice.uploadPending() else { Issue.record("nothing pending"); return }
            let after = try ClientTest.residual(s.path("alice"), pipeline: Self.ef)
            if round == 2 {
                guard case .refused(let p) = r.verdict else { Issue.record("round 2: \(r.verdict)"); return }
                #expect(p.roundIsOver, "\(p)")
                #expect(r.residual == .rolledBack)
                // Rolled back exactly: the residual before plus the whole update.
                #expect(after == zip(before, u).map { $0 + $1 })
            } else {
                guard case .accepted(let receipt) = r.verdict else { Issue.record("round \(round): \(r.verdict)"); return }
                #expect(r.residual == .committed)
                accepted.append((round, receipt.upload))
            }
        }
        // The server holds alice's accepted frames; what it never got is in her residual.
        var held = try ClientTest.residual(s.path("alice"), pipeline: Self.ef).map(Double.init)
        for (round, id) in accepted {
            let decoded = try FrameDecoder().decode(try ClientTest.acceptedFrame(c, round: round, upload: id)).values
            for i in decoded.indices { held[i] += Double(decoded[i]) }
        }
        let scale = sumOfUpdates.map(abs).max()!
        let worst = zip(held, sumOfUpdates).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-5 * scale, "Σ accepted + residual is \(worst) from Σ updates (scale \(scale))")
        await alice.shutdown()
    }

    @Test func aRefusedFrameRollsBackAndSaysWhy() async throws {
        let c = try TestCoordinator(["--pipeline", Self.ef, "--reports", "1", "--norm-bound", "1e-9"])
        let s = try ScratchDirectory()
        let p = try ClientTest.participant(c, "alice", state: s.path("a"))
        let u = ClientTest.update(seed: 5)
        let result = try await p.participate { _ in LocalUpdate(values: u, samples: 1) }
        await p.shutdown()
        guard case .reported(let r) = result, case .refused(let problem) = r.verdict else { Issue.record("\(result)"); return }
        #expect(problem.status == 422 && problem.name == "frame-rejected" && problem.code == 902, "\(problem)")
        #expect(r.residual == .rolledBack)
        #expect(try ClientTest.residual(s.path("a"), pipeline: Self.ef) == u)
        #expect(!FileManager.default.fileExists(atPath: s.path("a/pending")))
    }

    @Test func anExpiredTokenFailsBeforeAnythingIsSent() async throws {
        let c = try TestCoordinator()
        let proxy = try CuttingProxy(targetPort: c.port)
        let s = try ScratchDirectory()
        let expired = try c.authority.mint(client: "alice", ttl: 60, now: Date().timeIntervalSince1970 - 3600)
        let p = try ClientTest.participant(c, "alice", state: s.path("a"), port: proxy.port, token: expired)
        do {
            _ = try await p.participate { _ in LocalUpdate(values: ClientTest.update(seed: 1), samples: 1) }
            Issue.record("an expired token was used")
        } catch UplinkClientError.tokenExpired(let client, let at) {
            #expect(client == "alice" && at < Date())
        }
        await p.shutdown()
        try s.write("f.upl", try TestCoordinator.frame(seed: 1, round: 1))
        await #expect(throws: UplinkClientError.self) {
            try await uploadFrame(at: s.path("f.upl"), server: "http://127.0.0.1:\(proxy.port)", token: expired, round: 1, options: ClientTest.fast)
        }
        #expect(proxy.totals.connections == 0, "the proxy saw \(proxy.totals.connections) connections")
        // A token the server refuses (wrong secret) is a typed refusal with the problem type.
        let forged = try TokenAuthority(secret: [UInt8](repeating: 1, count: 32)).mint(client: "alice", ttl: 60)
        let q = try ClientTest.participant(c, "alice", state: s.path("b"), token: forged)
        do {
            _ = try await q.checkIn()
            Issue.record("a forged token was accepted")
        } catch UplinkClientError.refused(let problem) {
            #expect(problem.status == 401 && problem.name == "unauthorized")
        }
        await q.shutdown()
    }

    /// Item 10: cuts at random offsets in both directions, ≥ 200 seeded trials; the server's
    /// aggregate equals the aggregate of the same uploads without cuts, bit for bit.
    @Test func randomCutsLeaveTheAggregateUnchanged() async throws {
        let trials = Int(ProcessInfo.processInfo.environment["UPLINK_CUT_TRIALS"] ?? "") ?? 220
        let seed = UInt64(ProcessInfo.processInfo.environment["UPLINK_CUT_SEED"] ?? "") ?? 20261202
        print("randomCutsLeaveTheAggregateUnchanged: \(trials) trials, seed \(seed) (UPLINK_CUT_TRIALS, UPLINK_CUT_SEED)")
        let frames = try (0..<trials).map { try TestCoordinator.frame(seed: UInt64($0) + 1, round: 1, samples: UInt64($0 % 7) + 1) }
        func run(cuts: Bool) async throws -> (model: [Float], proxy: (connections: Int, clientToServerBytes: Int, serverToClientBytes: Int, cuts: Int), requests: [Int], retries: [Int]) {
            let c = try TestCoordinator(["--reports", "\(trials)", "--over-selection", "1", "--rounds", "1"])
            let proxy = try CuttingProxy(targetPort: c.port)
            let s = try ScratchDirectory()
            var rng = SplitMix64(seed: seed)
            var requests: [Int] = [], retries: [Int] = []
            for (i, frame) in frames.enumerated() {
                _ = try c.checkIn("c\(i)")
                try s.write("f\(i).upl", frame)
                if cuts {
                    let style: CutStyle = rng.below(2) == 0 ? .reset : .fin
                    // Offsets every first connection surely reaches: into the creation and the
                    // append (client → server), into the 201's head (server → client).
                    proxy.plan(rng.below(2) == 0
                        ? .clientToServer(afterBytes: Int(rng.below(UInt64(frame.count + 300))), style: style)
                        : .serverToClient(afterBytes: Int(rng.below(250)), style: style))
                }
                let transport = try AsyncHTTPClientTransport()
                let (verdict, stats) = try await uploadFrame(at: s.path("f\(i).upl"), server: "http://127.0.0.1:\(proxy.port)", token: c.token("c\(i)"),
                                                             round: 1, options: ClientTest.fast, transport: transport)
                await transport.shutdown()
                guard verdict.isAccepted else { Issue.record("trial \(i): \(verdict)"); break }
                requests.append(stats.requests)
                retries.append(stats.retries)
            }
            #expect(c.server.waitForExit(timeout: 30) == 0)
            let model = try FrameDecoder().decode([UInt8](try Data(contentsOf: c.data.appendingPathComponent("models/final.upl")))).values
            // Every frame the server accepted is one of ours, each exactly once.
            let held = try FileManager.default.contentsOfDirectory(atPath: c.data.appendingPathComponent("rounds/1").path).sorted()
            #expect(held.count == trials)
            let bytes = try Set(held.map { [UInt8](try Data(contentsOf: c.data.appendingPathComponent("rounds/1/\($0)"))) })
            #expect(bytes == Set(frames))
            proxy.close()
            return (model, proxy.totals, requests, retries)
        }
        let cut = try await run(cuts: true)
        let clean = try await run(cuts: false)
        #expect(cut.proxy.cuts == trials, "every planned cut happened: \(cut.proxy.cuts) of \(trials)")
        #expect(clean.proxy.cuts == 0)
        #expect(cut.model == clean.model, "the aggregate with cuts differs from the one without")
        let extra = Double(cut.proxy.clientToServerBytes) / Double(clean.proxy.clientToServerBytes)
        print("randomCutsLeaveTheAggregateUnchanged: \(cut.proxy.cuts) cuts; requests per upload \(Double(cut.requests.reduce(0, +)) / Double(trials)) (no cuts \(Double(clean.requests.reduce(0, +)) / Double(trials))); retries per upload \(Double(cut.retries.reduce(0, +)) / Double(trials)), max \(cut.retries.max() ?? 0); client→server bytes ×\(String(format: "%.3f", extra)) the no-cut run")
        #expect(cut.retries.allSatisfy { $0 >= 1 }, "a cut upload records its retry")
    }

    @Test func aCutDownloadResumesWithRange() async throws {
        // A model big enough to cut in the middle: 400,000 parameters (1.6 MB).
        let s = try ScratchDirectory()
        let layout = try ModelLayout([TensorSpec(name: "w", shape: [400_000])])
        try s.write("model.safetensors", try Safetensors.write(TensorSet(layout: layout, values: TestData.uniform(count: 400_000, seed: 2))))
        let c = try TestCoordinator(["--pipeline", "fp32 | lz4", "--reports", "1"], scratch: s)
        let proxy = try CuttingProxy(targetPort: c.port)
        // The download's connection is cut 700 kB into the response (check-in goes direct).
        proxy.plan(.serverToClient(afterBytes: 700_000, style: .reset))
        let checkin = try ClientTest.participant(c, "alice", state: s.path("checkin"))
        guard case .selected(let a) = try await checkin.checkIn() else { Issue.record("not selected"); return }
        await checkin.shutdown()
        let transport = try AsyncHTTPClientTransport()
        let p = try ClientTest.participant(c, "alice", state: s.path("state"), port: proxy.port, transport: transport)
        let (model, stats) = try await p.downloadModel(for: a)
        let direct = try c.request("GET", "/v1/models/1", token: c.token("reader"))
        #expect(model.values == (try FrameDecoder().decode(direct.body).values))
        #expect(stats.requests == 2 && stats.retries == 1, "\(stats)")
        #expect(stats.bytesReceived < a.modelBytes! + 700_000)
        #expect(proxy.totals.cuts == 1)
        // A second call uses the verified copy on disk.
        let (_, again) = try await p.downloadModel(for: a)
        #expect(again.cached && again.requests == 0)
        await p.shutdown()
        await transport.shutdown()
    }

    /// Item 10: the server is killed mid-upload and restarted; the client's retries find it and
    /// resume from the durable offset.
    @Test func aServerRestartMidUploadIsResumed() async throws {
        let s = try ScratchDirectory()
        let layout = try ModelLayout([TensorSpec(name: "w", shape: [300_000])])
        try s.write("model.safetensors", try Safetensors.write(TensorSet(layout: layout, values: TestData.uniform(count: 300_000, seed: 2))))
        let c = try TestCoordinator(["--pipeline", "fp32 | stored", "--reports", "1"], scratch: s)
        let proxy = try CuttingProxy(targetPort: c.port)
        _ = try c.checkIn("alice")
        var enc = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "fp32 | stored"))
        let frame = try enc.encode(TestData.heavyTailed(count: 300_000, seed: 4), round: 1, sampleCount: 3)
        try s.write("f.upl", frame)
        var o = ClientTest.fast
        o.maxAppendBytes = 16 << 10
        o.retry = RetryPolicy(initialDelay: 0.05, maxDelay: 0.5, maxConsecutiveFailures: 200, maxDuration: 120)
        let killed = Locked(false)
        let server = c.server
        let (path, url, token, size) = (s.path("f.upl"), "http://127.0.0.1:\(proxy.port)", c.token("alice"), frame.count)
        let task = Task {
            try await uploadFrame(at: path, server: url, token: token, round: 1, options: o) { p in
                if p.acknowledged > size / 3, killed.withLock({ k in defer { k = true }; return !k }) {
                    server.kill9()
                }
            }
        }
        // Restart once the kill happened (the client is retrying meanwhile).
        while !killed.withLock({ $0 }) { try await Task.sleep(nanoseconds: 5_000_000) }
        _ = c.server.waitForExit(timeout: 10)
        try c.restart()
        proxy.retarget(c.port)
        let (verdict, stats) = try await task.value
        guard case .accepted = verdict else { Issue.record("\(verdict)"); return }
        #expect(stats.retries >= 1)
        // Resumed, not restarted: the bytes sent are about the frame once.
        #expect(Double(stats.bodyBytesSent) < 1.1 * Double(frame.count), "\(stats.bodyBytesSent) body bytes for a \(frame.count)-byte frame")
        let names = try FileManager.default.contentsOfDirectory(atPath: c.data.appendingPathComponent("rounds/1").path)
        #expect(names.count == 1)
        #expect([UInt8](try Data(contentsOf: c.data.appendingPathComponent("rounds/1/\(names[0])"))) == frame)
    }

    @Test func cancellationLeavesTheUploadResumable() async throws {
        let s = try ScratchDirectory()
        let layout = try ModelLayout([TensorSpec(name: "w", shape: [200_000])])
        try s.write("model.safetensors", try Safetensors.write(TensorSet(layout: layout, values: TestData.uniform(count: 200_000, seed: 2))))
        let c = try TestCoordinator(["--pipeline", "ef | fp32 | stored", "--reports", "1"], scratch: s)
        var o = ClientTest.fast
        o.maxAppendBytes = 8 << 10
        let p = try ClientTest.participant(c, "alice", state: s.path("state"), options: o)
        let u = TestData.heavyTailed(count: 200_000, seed: 8)
        let started = Locked(false)
        let task = Task {
            try await p.participate(progress: { e in
                if case .uploading(let q) = e, q.acknowledged > 100_000 { started.withLock { $0 = true } }
            }) { _ in LocalUpdate(values: u, samples: 2) }
        }
        while !started.withLock({ $0 }) { try await Task.sleep(nanoseconds: 1_000_000) }
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("the cancelled round completed")
        } catch is CancellationError {
        } catch {
            Issue.record("cancellation threw \(error)")
        }
        #expect(await p.hasPendingUpdate)
        // The next call finishes the same upload from the server's offset.
        let events = Locked<[UploadProgress]>([])
        guard let r = try await p.uploadPending(progress: { e in if case .uploading(let q) = e { events.withLock { $0.append(q) } } }) else {
            Issue.record("nothing pending"); return
        }
        guard case .accepted = r.verdict else { Issue.record("\(r.verdict)"); return }
        #expect(r.resumed && (r.upload.resumedAt ?? 0) > 100_000, "\(r.upload)")
        #expect(r.residual == .committed)
        await p.shutdown()
    }

    @Test func urlSessionTransportRunsARound() async throws {
        let c = try TestCoordinator(["--pipeline", Self.ef, "--reports", "1"])
        let s = try ScratchDirectory()
        let transport = try URLSessionTransport()
        let p = try ClientTest.participant(c, "alice", state: s.path("a"), transport: transport)
        let result = try await p.participate { _ in LocalUpdate(values: ClientTest.update(seed: 3), samples: 4) }
        guard case .reported(let r) = result, case .accepted = r.verdict else { Issue.record("\(result)"); return }
        #expect(r.residual == .committed)
        await transport.shutdown()
    }

    @Test func httpsWithAGivenCAAndRefusalOfAnUntrustedServer() async throws {
        let s = try ScratchDirectory()
        let made = try runTool(URL(fileURLWithPath: "/usr/bin/env"), [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "key.pem", "-out", "cert.pem",
        ], in: s.url)
        try #require(made.status == 0, "openssl: \(made.stderr)")
        let c = try TestCoordinator(["--tls-cert", s.path("cert.pem"), "--tls-key", s.path("key.pem"), "--reports", "1"], scratch: s)
        var o = ClientTest.fast
        o.trustedCertificatesPEM = try s.read("cert.pem")
        let p = try UplinkParticipant(server: "https://127.0.0.1:\(c.port)", token: c.token("alice"), stateDirectory: s.path("a"), options: o)
        let result = try await p.participate { _ in LocalUpdate(values: ClientTest.update(seed: 3), samples: 4) }
        guard case .reported(let r) = result, case .accepted = r.verdict else { Issue.record("\(result)"); return }
        await p.shutdown()
        // The system store does not know this certificate: a TLS error at once, no retries.
        let q = try UplinkParticipant(server: "https://127.0.0.1:\(c.port)", token: c.token("bob"), stateDirectory: s.path("b"), options: ClientTest.fast)
        let t0 = Date()
        do {
            _ = try await q.checkIn()
            Issue.record("an untrusted server was accepted")
        } catch UplinkClientError.tls(let why) {
            #expect(!why.isEmpty)
        }
        #expect(Date().timeIntervalSince(t0) < 5, "a TLS failure is not retried")
        await q.shutdown()
        // A CA file that holds no certificate is refused before anything is sent.
        o.trustedCertificatesPEM = Array("not a certificate".utf8)
        #expect(throws: UplinkClientError.self) {
            try UplinkParticipant(server: "https://127.0.0.1:\(c.port)", token: c.token("carol"), stateDirectory: s.path("c"), options: o)
        }
    }

    /// A cut upload whose round closes meanwhile: the HEAD on return is `409` without a body,
    /// the client creates again, and the creation's `409 round-closed` is the verdict (found by
    /// scripts/e2e: the participant used to fail on that HEAD at every restart).
    @Test func anUploadWhoseRoundClosedWhileCutIsRefusedNotStuck() async throws {
        let s = try ScratchDirectory()
        let layout = try ModelLayout([TensorSpec(name: "w", shape: [300_000])])
        try s.write("model.safetensors", try Safetensors.write(TensorSet(layout: layout, values: TestData.uniform(count: 300_000, seed: 2))))
        let c = try TestCoordinator(["--pipeline", "fp32 | stored", "--reports", "1", "--over-selection", "2"], scratch: s)
        _ = try c.checkIn("alice")
        _ = try c.checkIn("bob")
        var enc = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "fp32 | stored"))
        try s.write("f.upl", try enc.encode(TestData.heavyTailed(count: 300_000, seed: 4), round: 1, sampleCount: 3))
        var o = ClientTest.fast
        o.maxAppendBytes = 4096
        let (path, url, token) = (s.path("f.upl"), "http://127.0.0.1:\(c.port)", c.token("alice"))
        let started = Locked(false)
        let task = Task {
            try await uploadFrame(at: path, server: url, token: token, round: 1, options: o) { p in
                if p.acknowledged > 20_000 { started.withLock { $0 = true } }
            }
        }
        while !started.withLock({ $0 }) { try await Task.sleep(nanoseconds: 1_000_000) }
        task.cancel()
        _ = try? await task.value
        // Bob closes the round; alice's open upload is dropped with it.
        var bobEncoder = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "fp32 | stored"))
        let (bob, _) = c.upload(try bobEncoder.encode(TestData.heavyTailed(count: 300_000, seed: 5), round: 1), client: "bob", round: 1)
        guard case .accepted = bob else { Issue.record("bob: \(bob)"); return }
        let (verdict, stats) = try await uploadFrame(at: path, server: url, token: token, round: 1, options: o)
        guard case .refused(let p) = verdict else { Issue.record("\(verdict)"); return }
        #expect(p.roundIsOver, "\(p)")
        #expect(stats.requests <= 3, "HEAD, creation: \(stats)")
    }
}
