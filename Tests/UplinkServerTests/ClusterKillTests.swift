import Foundation
import Testing
import UplinkCodec
import UplinkTestSupport

/// The issue-16 acceptance test: 3 replicas behind nginx (scripts/cluster's configuration), one
/// PostgreSQL, 500 clients uploading real frames through a proxy that cuts connections at
/// random, and one replica `kill -9`ed mid-round and restarted. The model published for the
/// next round equals `uplink aggregate` of the accepted frames, and every client that got a
/// `2xx` is counted once.
@Suite(.serialized) struct ClusterKillTests {
    static let clients = 500
    static let seed: UInt64 = 0x16

    @Test func fiveHundredClientsThroughNginxWithCutsAndAReplicaKilledMidRound() throws {
        let k = Self.clients
        let ports = try (0..<3).map { _ in try unusedLoopbackPort() }
        let scratch = try ScratchDirectory()
        let database = try TestPostgres.newDatabase()
        let base = ["--reports", "\(k)", "--over-selection", "1", "--max-append-bytes", "2048", "--max-open-uploads", "4", "--database", database]
        var replicas = try (0..<3).map { i in try TestCoordinator(base + ["--replica", "r\(i + 1)", "--port", "\(ports[i])"], scratch: scratch) }
        #expect(replicas.map(\.port) == ports)
        let nginx = try TestNginx(replicaPorts: ports, in: scratch)
        defer { nginx.stop() }
        let proxy = try CuttingProxy(targetPort: nginx.port)
        defer { proxy.close() }
        let first = replicas[0]

        let names = (0..<k).map { String(format: "fleet-%03d", $0) }
        for name in names {
            let r = try httpRequest(port: nginx.port, method: "POST", path: "/v1/checkin", headers: [("Authorization", "Bearer \(first.token(name))")])
            #expect(r.status == 200 && r.json()?["status"] as? String == "selected", "\(name): \(r.status) \(r.text)")
        }
        let tokens = names.map { first.token($0) }
        let frames = try (0..<k).map { try TestCoordinator.frame(seed: Self.seed &+ UInt64($0), round: 1, samples: UInt64(1 + $0 % 9)) }

        // About one connection in twelve is cut at a seeded random byte, either way.
        var rng = SplitMix64(seed: Self.seed)
        for _ in 0..<4000 {
            proxy.plan(rng.below(12) == 0 ? Cut.random(clientBytes: 1800, serverBytes: 300, using: &rng) : nil)
        }
        let options = ResumableUpload.Options(appendSize: 1024, requestTimeout: 15, maxRequests: 200, retryDuration: 90, backoff: 0.05)
        let port = proxy.port
        let outcomes = Locked<[Int: ResumableUpload]>([:])
        let done = Locked(0)
        let runner = Thread {
            let report = ConcurrentRunner.run(k, timeout: 240) { i -> Int in
                var u = ResumableUpload(body: frames[i], creationPath: "/v1/rounds/1/updates", token: tokens[i], port: port, options: options)
                _ = u.run()
                outcomes.withLock { $0[i] = u }
                return i
            }
            _ = report
            done.withLock { $0 = 1 }
        }
        runner.stackSize = 1 << 20
        runner.start()

        // Mid-round: once a third of the frames are in, r2 dies without warning, and comes back.
        let status = { () -> Int in (try? first.status(round: 1)["accepted"] as? Int) ?? 0 }
        #expect(TestCoordinator.wait(seconds: 120) { status() >= k / 3 }, "a third never arrived: \(status())")
        let beforeKill = status()
        replicas[1].server.kill9()
        _ = replicas[1].server.waitForExit(timeout: 10)
        usleep(1_500_000)
        try replicas[1].restart()
        #expect(replicas[1].port == ports[1])

        #expect(TestCoordinator.wait(seconds: 240) { done.withLock { $0 } == 1 }, "uploads did not finish")
        let uploads = outcomes.withLock { m in (0..<k).map { m[$0] } }
        var acknowledgements: [[String: Any]] = []
        var unacknowledged: [String] = []
        for (i, u) in uploads.enumerated() {
            guard let u else { unacknowledged.append(names[i]); continue }
            // A final answer lost to a cut is asked for again, as a client would.
            guard let json = first.acknowledgement(of: u)?.json(), json["status"] as? String == "accepted" else {
                unacknowledged.append("\(names[i]): \(String(describing: u.outcome))")
                continue
            }
            #expect(json["client"] as? String == names[i])
            acknowledgements.append(json)
        }
        #expect(unacknowledged.isEmpty, "\(unacknowledged.count) not accepted: \(unacknowledged.prefix(5))")
        let cluster = try ClusterTests.Cluster(adopting: replicas, scratch: scratch, database: database)
        try first.expectRoundHoldsAcrossReplicas(uploads.compactMap { $0 }, acknowledgements: acknowledgements, round: 1, cluster: cluster, context: "500 via nginx")
        // Every 2xx names a distinct client and a distinct sequence number.
        #expect(Set(acknowledgements.compactMap { $0["client"] as? String }).count == acknowledgements.count)
        #expect(Set(acknowledgements.compactMap { $0["sequence"] as? Int }).count == acknowledgements.count)
        let closing = cluster.logs.split(separator: "\n").filter { $0.contains("round finished") && $0.contains("round=1 ") }
        #expect(closing.count == 1, "\(closing)")
        let cuts = proxy.totals.cuts
        #expect(cuts >= 50, "only \(cuts) cuts")
        print("cluster kill test: \(k) accepted, \(beforeKill) before the kill, \(cuts) cuts over \(proxy.totals.connections) connections; \(closing.first ?? "")")
        replicas.removeAll()
    }
}
