import Foundation
import PostgresNIO
import Testing
import UplinkCodec
@testable import UplinkServer
import UplinkTestSupport

/// WIP (issue 16): the blocking bridge to a real PostgreSQL started by scripts/postgres.
@Suite(.serialized) struct PostgresProbeTests {
    @Test func connectsAndQueries() throws {
        let dir = "/tmp/uplink-pg-probe-\(getpid())"
        let script = Fixtures.root.deletingLastPathComponent().appendingPathComponent("scripts/postgres").path
        let start = try runTool(URL(fileURLWithPath: script), ["start", dir, "55433"], in: URL(fileURLWithPath: "/tmp"))
        defer { _ = try? runTool(URL(fileURLWithPath: script), ["stop", dir], in: URL(fileURLWithPath: "/tmp")) }
        #expect(start.status == 0, "\(start.stderr)")
        let db = try PostgresDatabase(url: start.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let n: Int = try db.blocking { client in
            var v = 0
            for try await x in try await client.query("SELECT 40 + \(2)").decode(Int.self) { v = x }
            return v
        }
        #expect(n == 42)
        #expect(throws: UplinkError.self) { try PostgresDatabase(url: "mysql://x@y/z") }
    }
}
