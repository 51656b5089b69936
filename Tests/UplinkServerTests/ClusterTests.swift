import Foundation
import Testing
import UplinkCodec
import UplinkTestSupport

/// Several `uplink serve` replicas on one PostgreSQL ledger and one data directory (issue 16,
/// docs/scaling.md): any replica serves any request of any upload, each sums what it accepted,
/// one merges at round close, and a replica killed mid-round loses nothing.
@Suite(.serialized) struct ClusterTests {
    /// Replicas `r1…rN` sharing a scratch directory (so one `--data`) and a fresh database.
    final class Cluster {
        let scratch: ScratchDirectory
        let database: String
        var replicas: [TestCoordinator]
        let live = Locked<[Int]>([])

        init(_ count: Int, _ arguments: [String]) throws {
            scratch = try ScratchDirectory()
            database = try TestPostgres.newDatabase()
            replicas = []
            for i in 1...count {
                replicas.append(try TestCoordinator(arguments + ["--database", database, "--replica", "r\(i)"], scratch: scratch))
            }
            live.withLock { $0 = replicas.map(\.port) }
        }

        /// Replicas started elsewhere, for the checks and logs.
        init(adopting replicas: [TestCoordinator], scratch: ScratchDirectory, database: String) throws {
            self.scratch = scratch
            self.database = database
            self.replicas = replicas
            live.withLock { $0 = replicas.map(\.port) }
        }

        var first: TestCoordinator { replicas[0] }

        /// A port of a running replica, chosen at random per request (a load balancer that
        /// spreads every request, the worst case for an upload's requests).
        func anyPort() -> @Sendable () -> Int {
            let live = self.live
            return { live.withLock { $0.randomElement()! } }
        }

        func kill(_ i: Int) {
            let port = replicas[i].port
            replicas[i].server.kill9()
            _ = replicas[i].server.waitForExit(timeout: 10)
            live.withLock { $0.removeAll { $0 == port } }
        }

        func restart(_ i: Int) throws {
            try replicas[i].restart()
            let port = replicas[i].port
            live.withLock { $0.append(port) }
        }

        var logs: String { replicas.map { $0.server.stderrText }.joined(separator: "\n") }
    }

    /// Float32 models equal to the last bit, or within one unit in the last place where the
    /// double-precision sums, added in another grouping, round differently (RoundAggregator's
    /// documented order bound). Returns how many values differ at all.
    static func expectSameModel(_ a: [Float], _ b: [Float], _ context: String) -> Int {
        #expect(a.count == b.count, "\(context)")
        var differ = 0
        for (x, y) in zip(a, b) where x.bitPattern != y.bitPattern {
            differ += 1
            #expect(x.nextUp == y || x.nextDown == y, "\(context): \(x) vs \(y)")
        }
        return differ
    }

    @Test func aRoundAcrossThreeReplicasCountsEveryFrameOnce() throws {
        let k = 30
        let cluster = try Cluster(3, ["--reports", "\(k)", "--over-selection", "1", "--max-append-bytes", "1024"])
        let clients = (0..<k).map { "c\($0)" }
        for (i, client) in clients.enumerated() {
            let r = try cluster.replicas[i % 3].checkIn(client)
            #expect(r["round"] as? Int == 1, "\(r)")
        }
        // Every replica sees the whole selection.
        for replica in cluster.replicas {
            let status = try replica.status(round: 1)
            #expect(status["selected"] as? Int == k, "\(status)")
        }
        let frames = try clients.indices.map { try TestCoordinator.frame(seed: UInt64(900 + $0), round: 1, samples: UInt64(2 + $0 % 5)) }
        let options = ResumableUpload.Options(appendSize: 700, requestTimeout: 10, maxRequests: 80, retryDuration: 30, backoff: 0.02)
        let port = cluster.anyPort()
        var uploads = clients.indices.map {
            ResumableUpload(body: frames[$0], creationPath: "/v1/rounds/1/updates", token: cluster.first.token(clients[$0]), port: port, options: options)
        }
        // Interleaved: one request per upload in turn, each to a random replica.
        for _ in 0..<400 {
            for i in uploads.indices where uploads[i].outcome == nil { _ = uploads[i].step() }
            if uploads.allSatisfy({ $0.outcome != nil }) { break }
        }
        var acknowledgements: [[String: Any]] = []
        for (i, u) in uploads.enumerated() {
            guard case .accepted(let r)? = u.outcome, let json = r.json() else { Issue.record("\(clients[i]): \(String(describing: u.outcome))"); continue }
            #expect(json["client"] as? String == clients[i])
            acknowledgements.append(json)
        }
        try cluster.first.expectRoundHoldsAcrossReplicas(uploads, acknowledgements: acknowledgements, round: 1, cluster: cluster, context: "3 replicas")
        // The round was closed once, by one replica, which merged the others' partial sums.
        let closings = cluster.logs.split(separator: "\n").filter { $0.contains("round finished") && $0.contains("round=1 ") }
        #expect(closings.count == 1, "\(closings)")
        // Each replica accepted some of the frames; the closer took the other two's partials.
        for r in 1...3 {
            #expect(cluster.logs.contains("frame accepted") && cluster.logs.split(separator: "\n").contains { $0.contains("frame accepted") && $0.contains("replica=r\(r)") }, "r\(r) accepted nothing")
        }
        #expect(closings.first?.contains("partials=2 ") == true && closings.first?.contains("rebuilt=0 ") == true, "\(closings)")
        // Every replica moves on to round 2 and hands out the same model.
        let models = try cluster.replicas.map { r -> [Float] in
            #expect(TestCoordinator.wait(seconds: 5) { (try? r.status(round: 2)["state"] as? String) == "selecting" })
            return try r.model(round: 2)
        }
        #expect(models.allSatisfy { $0.map(\.bitPattern) == models[0].map(\.bitPattern) })
    }

    @Test func aReplicaKilledMidRoundLosesNothing() throws {
        let k = 24
        let cluster = try Cluster(3, ["--reports", "\(k)", "--over-selection", "1", "--max-append-bytes", "1024", "--merge-wait", "5"])
        let clients = (0..<k).map { "k\($0)" }
        for (i, client) in clients.enumerated() { _ = try cluster.replicas[i % 3].checkIn(client) }
        let frames = try clients.indices.map { try TestCoordinator.frame(seed: UInt64(1300 + $0), round: 1, samples: UInt64(1 + $0 % 7)) }
        let options = ResumableUpload.Options(appendSize: 700, requestTimeout: 10, maxRequests: 120, retryDuration: 40, backoff: 0.02)
        let port = cluster.anyPort()
        var uploads = clients.indices.map {
            ResumableUpload(body: frames[$0], creationPath: "/v1/rounds/1/updates", token: cluster.first.token(clients[$0]), port: port, options: options)
        }
        // Half the uploads finish, then replica r2 is killed with uploads part-way.
        for i in 0..<(k / 2) { _ = uploads[i].run() }
        for i in (k / 2)..<k { _ = uploads[i].step() }
        cluster.kill(1)
        let killedAccepted = cluster.replicas[1].server.stderrText.split(separator: "\n").filter { $0.contains("frame accepted") }.count
        #expect(killedAccepted > 0, "r2 accepted nothing before it was killed")
        for _ in 0..<400 {
            for i in uploads.indices where uploads[i].outcome == nil { _ = uploads[i].step() }
            if uploads.allSatisfy({ $0.outcome != nil }) { break }
        }
        let survivor = cluster.replicas[0]
        let acknowledged = uploads.map { survivor.acknowledgement(of: $0)?.json() }
        for (i, a) in acknowledged.enumerated() {
            #expect(a?["status"] as? String == "accepted" && a?["client"] as? String == clients[i], "\(clients[i]): \(String(describing: uploads[i].outcome))")
        }
        try survivor.expectRoundHoldsAcrossReplicas(uploads, acknowledgements: acknowledged.compactMap { $0 }, round: 1, cluster: cluster, context: "r2 killed")
        // r2's frames were decoded again by the replica that closed the round.
        let finished = cluster.logs.split(separator: "\n").first { $0.contains("round finished") && $0.contains("round=1 ") }.map(String.init) ?? ""
        #expect(finished.contains("outcome=closed") && finished.contains("rebuilt=\(killedAccepted) "), "r2 had \(killedAccepted): \(finished)")
        // r2 comes back and serves round 2.
        try cluster.restart(1)
        #expect(try cluster.replicas[1].checkIn("after-restart")["round"] as? Int == 2)
    }

    /// The deadline closes the round on every replica alike: with fewer than K reports, each
    /// replica's frames reach the merged model once, and the abandoned case keeps the model.
    @Test func theDeadlineClosesTheRoundAcrossReplicas() throws {
        let cluster = try Cluster(3, ["--reports", "50", "--over-selection", "1", "--deadline", "4", "--min-fraction", "0.1"])
        let clients = (0..<9).map { "d\($0)" }
        for (i, client) in clients.enumerated() { _ = try cluster.replicas[i % 3].checkIn(client) }
        var uploads: [ResumableUpload] = []
        var acknowledgements: [[String: Any]] = []
        for (i, client) in clients.enumerated() {
            let frame = try TestCoordinator.frame(seed: UInt64(2100 + i), round: 1, samples: UInt64(1 + i))
            // Each client's whole upload on one replica, so every replica holds three frames.
            var u = ResumableUpload(body: frame, creationPath: "/v1/rounds/1/updates", token: cluster.first.token(client), port: cluster.replicas[i % 3].port)
            guard case .accepted(let r) = u.run(), let json = r.json() else { Issue.record("\(client): \(String(describing: u.outcome))"); continue }
            acknowledgements.append(json)
            uploads.append(u)
        }
        try cluster.first.expectRoundHoldsAcrossReplicas(uploads, acknowledgements: acknowledgements, round: 1, cluster: cluster, context: "deadline")
        let closing = cluster.logs.split(separator: "\n").filter { $0.contains("round finished") && $0.contains("round=1 ") }
        #expect(closing.count == 1 && closing[0].contains("reason=deadline") && closing[0].contains("partials=2 "), "\(closing)")
        // Round 2 gets no report: abandoned at its deadline, on every replica, model unchanged.
        #expect(TestCoordinator.wait(seconds: 15) { (try? cluster.replicas[2].status(round: 2)["state"] as? String) == "abandoned" })
        #expect(try cluster.replicas[1].model(round: 3).map(\.bitPattern) == cluster.first.model(round: 2).map(\.bitPattern))
    }

    @Test func aSecondProcessWithTheSameReplicaNameIsRefused() throws {
        let cluster = try Cluster(1, [])
        let again = try TestCoordinator.cli(
            ["serve"] + cluster.first.arguments + ["--data", cluster.first.data.path, "--port", "0"], in: cluster.scratch.url)
        #expect(again.status != 0)
        #expect(again.stderr.contains("replica \"r1\" is already running"), "\(again.stderr)")
    }
}

extension TestCoordinator {
    /// ``expectRoundHoldsExactly`` for a round served by several replicas: the same files,
    /// acknowledgements and counts, and the published model equal to `uplink aggregate` of the
    /// files in sequence order within one unit in the last place (the partial sums add in
    /// another grouping).
    func expectRoundHoldsAcrossReplicas(_ uploads: [ResumableUpload], acknowledgements: [[String: Any]], round: UInt64, cluster: ClusterTests.Cluster, context: String) throws {
        #expect(Self.wait(seconds: 20) { (try? status(round: round)["state"] as? String) == "closed" }, "\(context): round \(round) did not close: \(cluster.logs.suffix(3000))")
        let names = try expectAcceptedFilesAre(uploads, acknowledgements: acknowledgements, round: round, context: context)
        #expect(try status(round: round)["accepted"] as? Int == uploads.count)
        let offline = try offlineAggregate(names.map { data.appendingPathComponent("rounds/\(round)/\($0)").path })
        let differ = ClusterTests.expectSameModel(try model(round: round + 1), offline, context)
        #expect(differ <= offline.count / 100, "\(context): \(differ) of \(offline.count) values differ by one ulp")
    }
}
