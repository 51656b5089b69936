import Foundation
import Testing
import UplinkCodec
import UplinkServer
import UplinkTensorIO
import UplinkTestSupport

/// Rounds on the real server: over-selection, the K-th report, the deadline, abandonment,
/// late uploads, the next round, and the published model equal to `uplink aggregate` offline.
@Suite(.serialized) struct ServerRoundTests {
    @Test(arguments: LedgerBackend.allCases) func overSelectionThenComeBackLater(_ backend: LedgerBackend) throws {
        // K = 2, 1.5×: three clients selected, the fourth told when to come back.
        let c = try TestCoordinator(["--over-selection", "1.5"], backend: backend)
        for client in ["a", "b", "c"] { #expect(try c.checkIn(client)["status"] as? String == "selected") }
        let fourth = try c.request("POST", "/v1/checkin", token: c.token("d"))
        let json = try #require(fourth.json())
        #expect(json["status"] as? String == "retry")
        let after = try #require(json["retryAfterSeconds"] as? Int)
        #expect(after >= 1 && after <= 751)  // the time left until the deadline, with up to 25% jitter
        #expect(fourth.header("Retry-After") == "\(after)")
        // Checking in again is idempotent.
        #expect(try c.checkIn("a")["status"] as? String == "selected")
        #expect(try c.status(round: 1)["state"] as? String == "reporting")
    }

    @Test(arguments: LedgerBackend.allCases) func theKthReportClosesTheRoundAndTheModelEqualsOfflineAggregation(_ backend: LedgerBackend) throws {
        let c = try TestCoordinator(["--reports", "3", "--over-selection", "2"], backend: backend)
        let clients = ["p1", "p2", "p3", "p4"]
        for client in clients { _ = try c.checkIn(client) }
        var files: [String] = []
        for (i, client) in clients.prefix(3).enumerated() {
            let frame = try TestCoordinator.frame(seed: UInt64(100 + i), round: 1, samples: UInt64(5 + i))
            let (outcome, _) = c.upload(frame, client: client, round: 1, options: .init(appendSize: 900))
            guard case .accepted(let r) = outcome else { Issue.record("\(client): \(outcome)"); return }
            #expect(r.json()?["sequence"] as? Int == i)
            files.append(try c.scratch.write("frame-\(i).upl", frame))
        }
        #expect(TestCoordinator.wait { (try? c.status(round: 1)["state"] as? String) == "closed" })
        #expect(try c.status(round: 1)["reason"] as? String == "target")
        // A late upload for the closed round: 409 round-closed.
        let late = try c.request("POST", "/v1/rounds/1/updates", token: c.token("p4"), headers: [
            HTTPHeader("Upload-Draft-Interop-Version", "8"), HTTPHeader("Upload-Complete", "?1"),
        ], body: try TestCoordinator.frame(seed: 200, round: 1))
        #expect(late.status == 409 && late.json()?["type"] as? String == "urn:uplink:problem:round-closed")
        // Round 2 is open with the new model, which is what `uplink aggregate` makes offline.
        let next = try c.checkIn("p1")
        #expect(next["round"] as? Int == 2)
        let served = try c.model(round: 2)
        let offline = try TestCoordinator.cli(["aggregate", "--strategy", "fedavg", "--model", c.scratch.path("model.safetensors"), "--out", c.scratch.path("offline.safetensors")] + files, in: c.scratch.url)
        #expect(offline.status == 0, "\(offline.stderr)")
        let expected = try Safetensors.read(try c.scratch.read("offline.safetensors")).values
        #expect(served.map(\.bitPattern) == expected.map(\.bitPattern))
    }

    @Test(arguments: LedgerBackend.allCases) func theDeadlineClosesWithWhatArrivedOrAbandons(_ backend: LedgerBackend) throws {
        // K = 3, at least 2 to close; a 3 s deadline.
        let c = try TestCoordinator(["--reports", "3", "--deadline", "3", "--min-fraction", "0.6"], backend: backend)
        _ = try c.checkIn("x1")
        let (one, _) = c.upload(try TestCoordinator.frame(seed: 300, round: 1), client: "x1", round: 1)
        guard case .accepted = one else { Issue.record("\(one)"); return }
        // One report of the two needed: round 1 is abandoned at its deadline, the model kept.
        #expect(TestCoordinator.wait(seconds: 8) { (try? c.status(round: 1)["state"] as? String) == "abandoned" })
        #expect(try c.model(round: 2).map(\.bitPattern) == (try c.model(round: 1)).map(\.bitPattern))
        // Round 2: two reports by the deadline close it with those two.
        for (i, client) in ["y1", "y2"].enumerated() {
            #expect(try c.checkIn(client)["round"] as? Int == 2)
            let (o, _) = c.upload(try TestCoordinator.frame(seed: UInt64(310 + i), round: 2), client: client, round: 2)
            guard case .accepted = o else { Issue.record("\(client): \(o)"); return }
        }
        #expect(TestCoordinator.wait(seconds: 8) { (try? c.status(round: 2)["state"] as? String) == "closed" })
        #expect(try c.status(round: 2)["reason"] as? String == "deadline")
        #expect(try c.model(round: 3).map(\.bitPattern) != (try c.model(round: 2)).map(\.bitPattern))
    }

    @Test(arguments: LedgerBackend.allCases) func anUploadStillOpenWhenTheRoundClosesIsRefused(_ backend: LedgerBackend) throws {
        let c = try TestCoordinator(["--reports", "1", "--over-selection", "2"], backend: backend)
        _ = try c.checkIn("slow")
        _ = try c.checkIn("fast")
        let slowFrame = try TestCoordinator.frame(seed: 400, round: 1)
        let created = try c.request("POST", "/v1/rounds/1/updates", token: c.token("slow"), headers: [
            HTTPHeader("Upload-Draft-Interop-Version", "8"), HTTPHeader("Upload-Complete", "?0"), HTTPHeader("Upload-Length", "\(slowFrame.count)"),
        ])
        let location = try #require(created.header("Location"))
        let (fast, _) = c.upload(try TestCoordinator.frame(seed: 401, round: 1), client: "fast", round: 1)
        guard case .accepted = fast else { Issue.record("\(fast)"); return }
        #expect(TestCoordinator.wait { (try? c.status(round: 1)["state"] as? String) == "closed" })
        let finish = try c.request("PATCH", location, token: c.token("slow"), headers: [
            HTTPHeader("Upload-Draft-Interop-Version", "8"), HTTPHeader("Content-Type", "application/partial-upload"),
            HTTPHeader("Upload-Offset", "0"), HTTPHeader("Upload-Complete", "?1"),
        ], body: slowFrame)
        #expect(finish.status == 409 && finish.json()?["type"] as? String == "urn:uplink:problem:round-closed", "\(finish.status) \(finish.text)")
        #expect(try c.status(round: 1)["accepted"] as? Int == 1)
    }

    @Test(arguments: LedgerBackend.allCases) func roundsLimitEndsTheRunWithExitZero(_ backend: LedgerBackend) throws {
        let c = try TestCoordinator(["--reports", "1", "--rounds", "2"], backend: backend)
        for round in 1...2 {
            #expect(try c.checkIn("r")["round"] as? Int == round)
            let (o, _) = c.upload(try TestCoordinator.frame(seed: UInt64(500 + round), round: UInt64(round)), client: "r", round: UInt64(round))
            guard case .accepted = o else { Issue.record("round \(round): \(o)"); return }
        }
        #expect(c.server.waitForExit(timeout: 15) == 0, "\(c.server.stderrText.suffix(4000))")
        #expect(FileManager.default.fileExists(atPath: c.data.appendingPathComponent("models/final.upl").path))
    }
}
