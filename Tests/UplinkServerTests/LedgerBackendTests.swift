import Foundation
import Testing
@testable import UplinkAggregation
import UplinkCodec
@testable import UplinkServer
import UplinkTestSupport

/// The ledger's two backends on one suite: schema migrations, the statements the coordinator
/// relies on (leases, the close race, digests), and the errors a bad `--database` gets.
@Suite struct LedgerBackendTests {
    static func open(_ backend: LedgerBackend, _ scratch: ScratchDirectory) throws -> any LedgerDatabase {
        switch backend {
        case .sqlite: return try SQLiteDatabase(path: scratch.path("ledger.sqlite"))
        case .postgres: return try PostgresDatabase(url: try TestPostgres.newDatabase())
        }
    }

    @Test(arguments: LedgerBackend.allCases) func aSchemaOneLedgerIsMigratedKeepingItsRows(_ backend: LedgerBackend) throws {
        let s = try ScratchDirectory()
        let db = try Self.open(backend, s)
        // A ledger as the schema-1 server left it.
        try Ledger.migrate(db, to: 1)
        try db.execute("INSERT INTO meta VALUES ('model', 'abc:10')")
        try db.execute("INSERT INTO rounds VALUES (1, 5.0, 'open', NULL, NULL)")
        try db.execute(#"INSERT INTO uploads (id, round, client, length, "offset", created_at, expires_at, state) VALUES ('u1', 1, 'c', 100, 40, 1, 2, 'open')"#)
        try db.execute("INSERT INTO accepted VALUES (1, 0, 'c0', 'u0', '/x', 3, 99, 7.5)")
        #expect(try db.rows("SELECT value FROM meta WHERE key = 'schema'").first?.first?.text == "1")

        let ledger = try Ledger(database: db, fingerprint: 0xabc, parameterCount: 10)
        #expect(try ledger.version() == Ledger.schemaVersion)
        let a = try ledger.accepted(round: 1)
        #expect(a.count == 1 && a[0].client == "c0" && a[0].samples == 3 && a[0].replica == "" && a[0].digest == "")
        let u = try #require(try ledger.upload("u1"))
        #expect(u.offset == 40 && u.owner == nil && !u.interrupt)
        // Opening again changes nothing; another model is refused.
        _ = try Ledger(database: db, fingerprint: 0xabc, parameterCount: 10)
        #expect(throws: UplinkError.self) { try Ledger(database: db, fingerprint: 0xdef, parameterCount: 10) }
    }

    @Test(arguments: LedgerBackend.allCases) func aNewerSchemaIsRefused(_ backend: LedgerBackend) throws {
        let s = try ScratchDirectory()
        let db = try Self.open(backend, s)
        try Ledger.migrate(db, to: Ledger.schemaVersion)
        try db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
        do {
            _ = try Ledger(database: db, fingerprint: 1, parameterCount: 1)
            Issue.record("a schema-99 ledger was opened")
        } catch {
            #expect(error.code == .stateMismatch && error.message.contains("schema 99"), "\(error)")
        }
    }

    @Test(arguments: LedgerBackend.allCases) func leasesOffsetsAndTheCloseRace(_ backend: LedgerBackend) throws {
        let s = try ScratchDirectory()
        let ledger = try Ledger(database: try Self.open(backend, s), fingerprint: 1, parameterCount: 4)
        try ledger.openRound(1, at: 0)
        try ledger.transaction { (tx) throws(UplinkError) in
            try tx.createUpload(Ledger.UploadRow(id: "u", round: 1, client: "c", length: 1 << 40, offset: 0, createdAt: 0, expiresAt: 100, state: "open"))
        }
        // r1 takes it; r2 cannot and asks r1 to let go; r1's renewal hears the request.
        let a = try ledger.transaction { (tx) throws(UplinkError) in try tx.claim("u", owner: "r1/1", replica: "r1", now: 1, leaseUntil: 11) }
        #expect(a.owned && a.row?.owner == "r1/1")
        let b = try ledger.transaction { (tx) throws(UplinkError) in try tx.claim("u", owner: "r2/1", replica: "r2", now: 2, leaseUntil: 12) }
        #expect(!b.owned && b.row?.interrupt == true)
        #expect(try ledger.transaction { (tx) throws(UplinkError) in try tx.renewLeases(replica: "r1", leaseUntil: 13) } == ["u"])
        // Offsets past 2^32 are recorded by the holder only, and never go back.
        #expect(try ledger.transaction { (tx) throws(UplinkError) in try tx.setOffset("u", 5_000_000_000, owner: "r1/1", leaseUntil: 14) })
        #expect(try !ledger.transaction { (tx) throws(UplinkError) in try tx.setOffset("u", 6_000_000_000, owner: "r2/1", leaseUntil: 14) })
        #expect(try ledger.transaction { (tx) throws(UplinkError) in try tx.setOffset("u", 7, owner: "r1/1", leaseUntil: 14) })
        #expect(try ledger.upload("u")?.offset == 5_000_000_000)
        // A stale release (another request's token) leaves the lease alone; after it ran out, r2 takes it.
        try ledger.transaction { (tx) throws(UplinkError) in try tx.release("u", owner: "r1/0") }
        #expect(try ledger.upload("u")?.owner == "r1/1")
        let c = try ledger.transaction { (tx) throws(UplinkError) in try tx.claim("u", owner: "r2/2", replica: "r2", now: 15, leaseUntil: 25) }
        #expect(c.owned && c.row?.interrupt == false)
        #expect(try !ledger.transaction { (tx) throws(UplinkError) in try tx.setOffset("u", 5_000_000_001, owner: "r1/1", leaseUntil: 26) })
        // Only the first of two replicas finishing a round records it.
        let first = try ledger.locked(round: 1) { (tx) throws(UplinkError) in try tx.finishRound(1, state: "closed", at: 20, reason: "target", next: 2, nextOpensAt: 20) }
        let second = try ledger.locked(round: 1) { (tx) throws(UplinkError) in try tx.finishRound(1, state: "abandoned", at: 21, reason: "deadline", next: 2, nextOpensAt: 21) }
        #expect(first && !second)
        #expect(try ledger.round(1)?.state == "closed" && ledger.lastRound()?.round == 2)
        #expect(try ledger.upload("u")?.state == "expired")
    }

    @Test(arguments: LedgerBackend.allCases) func aDigestCountsOncePerRound(_ backend: LedgerBackend) throws {
        let s = try ScratchDirectory()
        let ledger = try Ledger(database: try Self.open(backend, s), fingerprint: 1, parameterCount: 4)
        let row = Ledger.AcceptedRow(round: 1, sequence: 0, client: "a", upload: "u0", file: "/f", samples: 1 << 40, bytes: 10, at: 1, replica: "r1", digest: "ab")
        try ledger.transaction { (tx) throws(UplinkError) in try tx.accept(row, response: "200 application/json\n{}") }
        #expect(try ledger.transaction { (tx) throws(UplinkError) in try tx.hasDigest(round: 1, digest: "ab") })
        #expect(try !ledger.transaction { (tx) throws(UplinkError) in try tx.hasDigest(round: 2, digest: "ab") })
        var copy = row
        copy.sequence = 1
        copy.client = "b"
        #expect(throws: UplinkError.self) { try ledger.transaction { (tx) throws(UplinkError) in try tx.accept(copy, response: "") } }
        #expect(try ledger.accepted(round: 1).map(\.samples) == [1 << 40])
    }

    @Test func badDatabaseURLsAndUnreachableServersAreTypedErrors() throws {
        for bad in ["mysql://u@h/d", "postgres://h/d", "postgres://u@/d", "postgres://u@h", "postgres://u@h:99999/d"] {
            #expect(throws: UplinkError.self, "\(bad)") { try PostgresDatabase(url: bad) }
        }
        // Nothing listens on port 9 of loopback: refused at once, with the reason.
        do {
            _ = try PostgresDatabase(url: "postgres://u:secret@127.0.0.1:9/d")
            Issue.record("connected to nothing")
        } catch {
            #expect(error.code == .io && !error.message.contains("secret") && error.message.contains("***"), "\(error)")
        }
        // A server that refuses the role.
        var u = try #require(URLComponents(string: try TestPostgres.url()))
        u.user = "nobody-here"
        do {
            _ = try PostgresDatabase(url: u.string!)
            Issue.record("an unknown role connected")
        } catch {
            #expect(error.code == .io && error.message.contains("nobody-here"), "\(error)")
        }
    }

    @Test func aPartialAggregateRoundTripsAndHostileBytesAreRefused() throws {
        let p = PartialAggregate(round: 1 << 33, fingerprint: 0xfeed, replica: "r-1.eu", weight: 12.5, entries: [(0, 2), (5_000_000_000, 10.5)], sum: [1, -2.5, 0x1p-1000, 3])
        let bytes = p.serialized()
        #expect(bytes.count == 50 + 6 + 32 + 32 + 4)
        let back = try PartialAggregate(serialized: bytes, fingerprint: 0xfeed, parameterCount: 4)
        #expect(back == p)
        #expect(throws: UplinkError.self) { try PartialAggregate(serialized: bytes, fingerprint: 0xbeef, parameterCount: 4) }
        #expect(throws: UplinkError.self) { try PartialAggregate(serialized: bytes, fingerprint: 0xfeed, parameterCount: 5) }
        // Every truncation and every single-byte change is refused, never trapping.
        for n in 0..<bytes.count {
            #expect(throws: UplinkError.self) { try PartialAggregate(serialized: Array(bytes[0..<n]), fingerprint: 0xfeed, parameterCount: 4) }
        }
        for i in bytes.indices {
            var b = bytes
            b[i] ^= 0x41
            #expect(throws: UplinkError.self) { try PartialAggregate(serialized: b, fingerprint: 0xfeed, parameterCount: 4) }
        }
        // A huge declared entry count with a valid checksum is refused before allocating.
        var huge = bytes
        huge.replaceSubrange(40..<48, with: withUnsafeBytes(of: UInt64.max.littleEndian) { Array($0) })
        huge.removeLast(4)
        huge += withUnsafeBytes(of: CRC32C.checksum(huge).littleEndian) { Array($0) }
        #expect(throws: UplinkError.self) { try PartialAggregate(serialized: huge, fingerprint: 0xfeed, parameterCount: 4) }
    }

    @Test func partialSumsMergeToTheWholeRound() throws {
        let layout = try ModelLayout([TensorSpec(name: "w", shape: [300])])
        let policy = RoundPolicy(round: 3)
        let whole = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: policy)
        let left = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: policy)
        let right = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: policy)
        for i in 0..<10 {
            var e = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: i % 2 == 0 ? "fp32 | lz4" : "topk 10% | int8 | lz4"))
            let frame = try e.encode(TestData.heavyTailed(count: 300, seed: UInt64(i), scale: 0.1), round: 3, sampleCount: UInt64(1 + i))
            try whole.submit(frame, clientID: "c\(i)")
            try (i < 4 ? left : right).submit(frame, clientID: "c\(i)")
        }
        let merged = try RoundAggregator(layout: layout, strategy: .fedAvg(lr: 1), policy: policy)
        for part in [left, right] {
            let snap = try part.snapshot()
            try merged.absorb(PartialAggregate(round: 3, fingerprint: layout.fingerprint, replica: "x", weight: snap.weight, entries: [], sum: snap.sum), updates: snap.accepted)
        }
        // The same clients cannot come in twice through another partial.
        let snap = try left.snapshot()
        #expect(throws: UplinkError.self) { try merged.absorb(PartialAggregate(round: 3, fingerprint: layout.fingerprint, replica: "x", weight: snap.weight, entries: [], sum: snap.sum), updates: snap.accepted) }
        let a = try whole.close(), b = try merged.close()
        #expect(a.totalWeight == b.totalWeight && b.accepted.count == 10)
        var da = [Float](repeating: 0, count: 300), db = da
        da.withUnsafeMutableBufferPointer { a.delta(0..<300, into: $0) }
        db.withUnsafeMutableBufferPointer { b.delta(0..<300, into: $0) }
        #expect(ClusterTests.expectSameModel(da, db, "merged") <= 3)
        // Robust strategies keep no sum to share.
        let median = try RoundAggregator(layout: layout, strategy: .median, policy: policy)
        #expect(throws: UplinkError.self) { try median.snapshot() }
    }
}
