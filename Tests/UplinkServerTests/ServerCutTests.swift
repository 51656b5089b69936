import Foundation
import Testing
import UplinkCodec
import UplinkTestSupport

/// Resumable uploads through a TCP proxy that cuts connections: 200 seeded trials, each
/// cutting one exchange of one upload (the creation, an append, or the `HEAD` that follows a
/// cut) in either direction at a random byte offset, by RST or FIN. The uploader resumes
/// through the proxy from the offset the server reports.
@Suite(.serialized) struct ServerCutTests {
    static let trials = 200
    static let seed: UInt64 = 0x5EED_C075
    /// Fixed-size frames (`fp32 | stored`), so the byte counts of every exchange are known
    /// from one calibration upload and each planned cut falls inside its exchange.
    static let pipeline = "fp32 | stored"
    static let appendSize = 1000

    /// Per exchange (0: the creation, i: the i-th append), the bytes each way of an uncut upload.
    struct Calibration {
        var clientBytes: [Int]
        var serverBytes: [Int]
        /// A `HEAD`'s request and response.
        var headClientBytes: Int
        var headServerBytes: Int
    }

    /// A response's size varies by a few bytes (offset and `max-age` digits, the acceptance's
    /// JSON): server→client cuts stay this far inside the calibrated size.
    static let responseSlack = 40

    static func direction(_ cut: Cut) -> String {
        switch cut {
        case .clientToServer: "client→server"
        case .serverToClient: "server→client"
        }
    }

    @Test(arguments: LedgerBackend.allCases) func everyUploadArrivesIdenticalAndCountsOnceWhateverTheCut(_ backend: LedgerBackend) throws {
        // The round stays open for every trial: K = 1,000, all of them selected.
        let c = try TestCoordinator([
            "--pipeline", Self.pipeline, "--reports", "1000", "--over-selection", "1",
            "--max-append-bytes", "1024", "--max-open-uploads", "4",
        ], backend: backend)
        let proxy = try CuttingProxy(targetPort: c.port)
        defer { proxy.close() }
        let options = ResumableUpload.Options(appendSize: Self.appendSize, requestTimeout: 10, maxRequests: 60, retryDuration: 20, backoff: 0.01)

        // Calibration: one uncut upload and one HEAD through the proxy.
        _ = try c.checkIn("cut-cal")
        let calibrationFrame = try TestCoordinator.frame(seed: 9999, round: 1, pipeline: Self.pipeline)
        var calibration = ResumableUpload(body: calibrationFrame, creationPath: "/v1/rounds/1/updates", token: c.token("cut-cal"), port: proxy.port, options: options)
        guard case .accepted = calibration.run() else { Issue.record("calibration: \(String(describing: calibration.outcome))"); return }
        let calibrationLocation = try #require(calibration.location)
        let head = try httpRequest(port: proxy.port, method: "HEAD", path: calibrationLocation, headers: [
            ("Upload-Draft-Interop-Version", "8"), ("Authorization", "Bearer \(c.token("cut-cal"))"),
        ])
        #expect(head.status == 204)
        #expect(proxy.waitUntilIdle())
        let seen = proxy.connections
        let exchanges = calibration.exchanges.count
        #expect(exchanges == 1 + (calibrationFrame.count + Self.appendSize - 1) / Self.appendSize)
        let cal = Calibration(
            clientBytes: seen.prefix(exchanges).map(\.clientToServerBytes), serverBytes: seen.prefix(exchanges).map(\.serverToClientBytes),
            headClientBytes: seen[exchanges].clientToServerBytes, headServerBytes: seen[exchanges].serverToClientBytes)

        var rng = SplitMix64(seed: Self.seed)
        var clients = ["cut-cal": calibrationLocation]
        var frames = [calibrationLocation: calibrationFrame]
        var covered: Set<String> = []
        for trial in 0..<Self.trials {
            let client = "cut-" + String(format: "%03d", trial)
            _ = try c.checkIn(client)
            let frame = try TestCoordinator.frame(seed: UInt64(trial), round: 1, samples: UInt64(1 + trial % 7), pipeline: Self.pipeline)
            #expect(frame.count == calibrationFrame.count)

            // Cut exchange `target` (connections before it pass through); a quarter of the
            // trials also cut the next connection: the HEAD (or new creation) after the cut.
            let target = Int(rng.below(UInt64(exchanges)))
            let first = Cut.random(clientBytes: cal.clientBytes[target], serverBytes: cal.serverBytes[target] - Self.responseSlack, using: &rng)
            let second: Cut? = rng.below(4) == 0
                ? Cut.random(clientBytes: min(cal.headClientBytes, cal.clientBytes[0]), serverBytes: min(cal.headServerBytes, cal.serverBytes[0]) - Self.responseSlack, using: &rng)
                : nil
            let base = proxy.connections.count
            for _ in 0..<target { proxy.plan(nil) }
            proxy.plan(first)
            if let second { proxy.plan(second) }

            var upload = ResumableUpload(body: frame, creationPath: "/v1/rounds/1/updates", token: c.token(client), port: proxy.port, options: options)
            let outcome = upload.run()
            #expect(proxy.waitUntilIdle(timeout: 5), "trial \(trial)")
            // Plans not consumed (an upload that needed fewer connections) must not leak into the next trial.
            let used = proxy.connections.count - base
            #expect(used > target + (second == nil ? 0 : 1), "trial \(trial): \(used) connections for a cut at exchange \(target)")

            let answer = c.acknowledgement(of: upload)
            let accepted = answer?.json()
            #expect(accepted?["status"] as? String == "accepted", "trial \(trial) (\(first), then \(second.map { "\($0)" } ?? "no second cut")): \(outcome)")
            #expect(accepted?["client"] as? String == client, "trial \(trial)")
            #expect(upload.offsetsNeverDecreased, "trial \(trial): offsets \(upload.reportedOffsets)")
            let planned = proxy.connections[(base + target)...].prefix(second == nil ? 1 : 2)
            #expect(planned.allSatisfy { $0.end == .cut }, "trial \(trial): \(planned.map { String(describing: $0.end) })")

            let location = try #require(upload.location, "trial \(trial)")
            #expect(accepted?["upload"] as? String == location.split(separator: "/").last.map(String.init), "trial \(trial)")
            clients[client] = location
            frames[location] = frame
            covered.insert("\(target == 0 ? "creation" : "append")/\(Self.direction(first))/\(first.style)")
            if second != nil, upload.exchanges.count > target + 1 { covered.insert("second:\(upload.exchanges[target + 1].method)") }
            if case .completeUnacknowledged = outcome { covered.insert("replayed") }
        }
        // The fixed seed reaches every kind of cut.
        for kind in ["creation", "append"] {
            for direction in ["client→server", "server→client"] {
                for style in ["reset", "fin"] { #expect(covered.contains("\(kind)/\(direction)/\(style)"), "no \(kind) cut \(direction) by \(style)") }
            }
        }
        // …cuts the HEAD after a cut, and loses final answers, which the server then replays.
        #expect(covered.contains("second:HEAD") && covered.contains("replayed"))

        // The server stored each frame byte for byte, once per client, in round 1.
        let stored = try c.acceptedFiles(round: 1)
        #expect(stored.count == clients.count)
        var storedUploads: Set<String> = []
        for name in stored {
            let upload = try #require(name.dropLast(4).split(separator: "-").last.map(String.init))
            storedUploads.insert(upload)
            let bytes = try c.acceptedFrame(round: 1, name: name)
            let sent = frames["/v1/uploads/\(upload)"]
            #expect(sent != nil && bytes == sent!, "\(name) differs from the frame sent")
        }
        #expect(storedUploads == Set(clients.values.map { String($0.split(separator: "/").last!) }))
        let status = try c.status(round: 1)
        #expect(status["accepted"] as? Int == clients.count)
        #expect(status["state"] as? String == "selecting")  // 201 of the 1,000 it selects

        // A second upload by any of them is refused as a duplicate (900), and adds nothing.
        for client in clients.keys.sorted() {
            let again = try c.request("POST", "/v1/rounds/1/updates", token: c.token(client), headers: [
                HTTPHeader("Upload-Draft-Interop-Version", "8"), HTTPHeader("Upload-Complete", "?0"), HTTPHeader("Upload-Length", "\(calibrationFrame.count)"),
            ])
            #expect(again.status == 409 && again.json()?["code"] as? Int == 900, "\(client): \(again.status) \(again.text)")
        }
        #expect(try c.status(round: 1)["accepted"] as? Int == clients.count)
        #expect(proxy.totals.cuts >= Self.trials)
    }
}

