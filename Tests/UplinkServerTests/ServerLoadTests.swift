import Foundation
import Testing
import UplinkCodec
import UplinkTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// 1,000 clients at once, each on its own thread: check-in, creation, one append of a real
/// frame. Timings and memory figures are measured by `scripts/measure-server`
/// (`docs/server-measurements.md`); this test states the exact outcome.
@Suite(.serialized) struct ServerLoadTests {
    static let clients = 1000

    /// Raises the open-file limit to what 1,000 connections on each side need (the server
    /// inherits it), within the hard limit.
    static func ensureDescriptors(_ needed: rlim_t) -> Bool {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return false }
        if limit.rlim_cur >= needed { return true }
        guard limit.rlim_max >= needed else { return false }
        limit.rlim_cur = needed
        return setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0
    }

    @Test func aThousandConcurrentUploadsAreAllAcceptedAndAggregatedExactly() throws {
        try #require(Self.ensureDescriptors(4096), "RLIMIT_NOFILE below 4096 and cannot be raised")
        let k = Self.clients
        // All 1,000 are selected, and the 1,000th acceptance closes the round.
        let c = try TestCoordinator(["--reports", "\(k)", "--over-selection", "1"])
        let port = c.port
        let clients = (0..<k).map { "load-" + String(format: "%04d", $0) }
        let tokens = clients.map { c.token($0) }
        let frames = try (0..<k).map { try TestCoordinator.frame(seed: 10_000 + UInt64($0), round: 1, samples: UInt64(1 + $0 % 5)) }

        let report = ConcurrentRunner.run(k, timeout: 50) { i -> ResumableUpload in
            let checkIn = try httpRequest(port: port, method: "POST", path: "/v1/checkin", headers: [("Authorization", "Bearer \(tokens[i])")], timeout: 30)
            guard checkIn.status == 200, checkIn.json()?["status"] as? String == "selected" else { throw HTTPTestError.timedOut("check-in \(i): \(checkIn.status) \(checkIn.text)") }
            var upload = ResumableUpload(body: frames[i], creationPath: "/v1/rounds/1/updates", token: tokens[i], port: port, options: .init(requestTimeout: 30, retryDuration: 45))
            _ = upload.run()
            return upload
        }
        #expect(report.startedTogether)
        #expect(report.failures.isEmpty, "\(report.failures.prefix(5))")
        #expect(report.unfinished.isEmpty, "\(report.unfinished.count) unfinished")
        let uploads = report.values
        try #require(uploads.count == k)
        // No error of any kind: each upload is exactly its creation and one append, answered 201 then 200.
        let clean = uploads.filter { $0.exchanges.map(\.status) == [201, 200] }
        #expect(clean.count == k, "\(uploads.filter { $0.exchanges.map(\.status) != [201, 200] }.prefix(3).map { $0.exchanges.map { "\($0.method) → \($0.status.map(String.init) ?? String(describing: $0.error))" } })")
        let acknowledgements = uploads.compactMap { u -> [String: Any]? in
            if case .accepted(let r)? = u.outcome { return r.json() }
            return nil
        }
        #expect(acknowledgements.count == k)
        #expect(Set(acknowledgements.compactMap { $0["client"] as? String }) == Set(clients))
        #expect(Set(acknowledgements.compactMap { $0["sequence"] as? Int }) == Set(0..<k))
        try c.expectRoundHoldsExactly(uploads, acknowledgements: acknowledgements, round: 1, context: "load")
        #expect(c.server.isRunning)
    }
}
