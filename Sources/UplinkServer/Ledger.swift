import UplinkCodec

/// The round ledger in SQLite: rounds, check-ins, uploads with their durable offsets, and the
/// accepted frames in acceptance order. Every write is one transaction, committed with
/// `synchronous=FULL` before the caller answers the client. Blocking: call it from the
/// coordinator's I/O threads, never from an event loop.
final class Ledger: Sendable {
    /// The schema this build writes; older ones are migrated at start, newer ones refused.
    static let schemaVersion: Int64 = 1
    private let lock = Locked(())
    // Only touched under `lock`.
    private nonisolated(unsafe) let db: SQLiteConnection

    struct RoundRow: Sendable {
        var round: UInt64
        var openedAt: Double
        var state: String
        var closedAt: Double?
        var reason: String?
    }

    struct UploadRow: Sendable {
        var id: String
        var round: UInt64
        var client: String
        var length: Int64
        var offset: Int64
        var createdAt: Double
        var expiresAt: Double
        /// open, accepted, rejected, cancelled, expired
        var state: String
        var code: Int?
        var message: String?
        var response: String?
    }

    struct AcceptedRow: Sendable {
        var round: UInt64
        var sequence: Int
        var client: String
        var upload: String
        var file: String
        var samples: UInt64
        var bytes: Int
        var at: Double
    }

    init(path: String, fingerprint: UInt64, parameterCount: Int) throws(UplinkError) {
        let db = try SQLiteConnection(path: path)
        try db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        let version = try db.execute("SELECT value FROM meta WHERE key = 'schema'").first?.first?.text.flatMap { Int64($0) }
        if let version, version > Self.schemaVersion {
            throw UplinkError(.stateMismatch, "the data directory's ledger has schema \(version); this uplink understands up to \(Self.schemaVersion): upgrade uplink")
        }
        try db.transaction { () throws(UplinkError) in
            try db.execute("""
                CREATE TABLE IF NOT EXISTS rounds (
                  round INTEGER PRIMARY KEY, opened_at REAL NOT NULL, state TEXT NOT NULL,
                  closed_at REAL, reason TEXT)
                """)
            try db.execute("""
                CREATE TABLE IF NOT EXISTS checkins (
                  round INTEGER NOT NULL, client TEXT NOT NULL, at REAL NOT NULL, seq INTEGER NOT NULL,
                  PRIMARY KEY (round, client))
                """)
            try db.execute("""
                CREATE TABLE IF NOT EXISTS uploads (
                  id TEXT PRIMARY KEY, round INTEGER NOT NULL, client TEXT NOT NULL, length INTEGER NOT NULL,
                  offset INTEGER NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL, state TEXT NOT NULL,
                  code INTEGER, message TEXT, response TEXT)
                """)
            try db.execute("CREATE INDEX IF NOT EXISTS uploads_by_client ON uploads (client, state)")
            try db.execute("""
                CREATE TABLE IF NOT EXISTS accepted (
                  round INTEGER NOT NULL, seq INTEGER NOT NULL, client TEXT NOT NULL, upload TEXT NOT NULL,
                  file TEXT NOT NULL, samples INTEGER NOT NULL, bytes INTEGER NOT NULL, at REAL NOT NULL,
                  PRIMARY KEY (round, seq), UNIQUE (round, client))
                """)
            try db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", [.text(String(Self.schemaVersion))])
            let model = try db.execute("SELECT value FROM meta WHERE key = 'model'").first?.first?.text
            let mine = "\(String(fingerprint, radix: 16)):\(parameterCount)"
            if let model, model != mine {
                throw UplinkError(.stateMismatch, "the data directory belongs to model \(model) (fingerprint:parameters), not \(mine): use another --data")
            }
            try db.execute("INSERT OR IGNORE INTO meta VALUES ('model', ?)", [.text(mine)])
        }
        self.db = db
    }

    private func with<T>(_ body: (SQLiteConnection) throws(UplinkError) -> T) throws(UplinkError) -> T {
        try lock.withLock { (_) throws(UplinkError) -> T in try body(db) }
    }

    // MARK: Rounds

    private static func roundRow(_ r: [SQLValue]) -> RoundRow {
        RoundRow(round: UInt64(bitPattern: r[0].int ?? 0), openedAt: r[1].real ?? 0, state: r[2].text ?? "", closedAt: r[3].real, reason: r[4].text)
    }

    /// The newest round (the one in progress, or the last of a finished run).
    func lastRound() throws(UplinkError) -> RoundRow? {
        try with { (db) throws(UplinkError) in
            try db.execute("SELECT round, opened_at, state, closed_at, reason FROM rounds ORDER BY round DESC LIMIT 1").first.map(Self.roundRow)
        }
    }

    func round(_ round: UInt64) throws(UplinkError) -> RoundRow? {
        try with { (db) throws(UplinkError) in
            try db.execute("SELECT round, opened_at, state, closed_at, reason FROM rounds WHERE round = ?", [.int(Int64(bitPattern: round))]).first.map(Self.roundRow)
        }
    }

    func openRound(_ round: UInt64, at time: Double) throws(UplinkError) {
        try with { (db) throws(UplinkError) in
            try db.execute("INSERT OR IGNORE INTO rounds VALUES (?, ?, 'open', NULL, NULL)", [.int(Int64(bitPattern: round)), .real(time)])
        }
    }

    /// Records the end of `round` (closed or abandoned) and opens `next` in the same transaction.
    func finishRound(_ round: UInt64, state: String, at time: Double, reason: String, next: UInt64?, nextOpensAt: Double) throws(UplinkError) {
        try with { (db) throws(UplinkError) in
            try db.transaction { () throws(UplinkError) in
                try db.execute("UPDATE rounds SET state = ?, closed_at = ?, reason = ? WHERE round = ?", [.text(state), .real(time), .text(reason), .int(Int64(bitPattern: round))])
                if let next { try db.execute("INSERT OR IGNORE INTO rounds VALUES (?, ?, 'open', NULL, NULL)", [.int(Int64(bitPattern: next)), .real(nextOpensAt)]) }
                // Uploads still open for a finished round will never be accepted.
                try db.execute("UPDATE uploads SET state = 'expired', code = 905, message = 'the round closed' WHERE round = ? AND state = 'open'", [.int(Int64(bitPattern: round))])
            }
        }
    }

    // MARK: Check-ins

    func checkIns(round: UInt64) throws(UplinkError) -> [(client: String, at: Double)] {
        try with { (db) throws(UplinkError) in
            try db.execute("SELECT client, at FROM checkins WHERE round = ? ORDER BY seq", [.int(Int64(bitPattern: round))]).map { ($0[0].text ?? "", $0[1].real ?? 0) }
        }
    }

    func recordCheckIn(round: UInt64, client: String, at time: Double, sequence: Int) throws(UplinkError) {
        try with { (db) throws(UplinkError) in
            try db.execute("INSERT OR IGNORE INTO checkins VALUES (?, ?, ?, ?)", [.int(Int64(bitPattern: round)), .text(client), .real(time), .int(Int64(sequence))])
        }
    }

    // MARK: Uploads

    private static func uploadRow(_ r: [SQLValue]) -> UploadRow {
        UploadRow(
            id: r[0].text ?? "", round: UInt64(bitPattern: r[1].int ?? 0), client: r[2].text ?? "", length: r[3].int ?? 0, offset: r[4].int ?? 0,
            createdAt: r[5].real ?? 0, expiresAt: r[6].real ?? 0, state: r[7].text ?? "", code: r[8].int.map { Int($0) }, message: r[9].text, response: r[10].text)
    }

    private static let uploadColumns = "id, round, client, length, offset, created_at, expires_at, state, code, message, response"

    func upload(_ id: String) throws(UplinkError) -> UploadRow? {
        try with { (db) throws(UplinkError) in
            try db.execute("SELECT \(Self.uploadColumns) FROM uploads WHERE id = ?", [.text(id)]).first.map(Self.uploadRow)
        }
    }

    func uploads(state: String) throws(UplinkError) -> [UploadRow] {
        try with { (db) throws(UplinkError) in
            try db.execute("SELECT \(Self.uploadColumns) FROM uploads WHERE state = ?", [.text(state)]).map(Self.uploadRow)
        }
    }

    func uploads(round: UInt64) throws(UplinkError) -> [UploadRow] {
        try with { (db) throws(UplinkError) in
            try db.execute("SELECT \(Self.uploadColumns) FROM uploads WHERE round = ? ORDER BY created_at", [.int(Int64(bitPattern: round))]).map(Self.uploadRow)
        }
    }

    func openUploads(client: String) throws(UplinkError) -> Int {
        try with { (db) throws(UplinkError) in
            Int(try db.execute("SELECT COUNT(*) FROM uploads WHERE client = ? AND state = 'open'", [.text(client)]).first?.first?.int ?? 0)
        }
    }

    func openUploads(client: String, round: UInt64) throws(UplinkError) -> [String] {
        try with { (db) throws(UplinkError) in
            try db.execute("SELECT id FROM uploads WHERE client = ? AND round = ? AND state = 'open'", [.text(client), .int(Int64(bitPattern: round))]).compactMap { $0[0].text }
        }
    }

    func createUpload(_ row: UploadRow) throws(UplinkError) {
        try with { (db) throws(UplinkError) in
            try db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)", [
                .text(row.id), .int(Int64(bitPattern: row.round)), .text(row.client), .int(row.length), .int(row.offset), .real(row.createdAt), .real(row.expiresAt), .text(row.state),
            ])
        }
    }

    /// Records a new durable offset (the bytes up to it are fsynced); it never decreases.
    func setOffset(_ id: String, _ offset: Int64) throws(UplinkError) {
        try with { (db) throws(UplinkError) in
            try db.execute("UPDATE uploads SET offset = ? WHERE id = ? AND offset <= ? AND state = 'open'", [.int(offset), .text(id), .int(offset)])
        }
    }

    func finishUpload(_ id: String, state: String, code: Int?, message: String?, response: String?) throws(UplinkError) {
        try with { (db) throws(UplinkError) in
            try db.execute("UPDATE uploads SET state = ?, code = ?, message = ?, response = ? WHERE id = ?", [
                .text(state), code.map { .int(Int64($0)) } ?? .null, message.map { .text($0) } ?? .null, response.map { .text($0) } ?? .null, .text(id),
            ])
        }
    }

    /// Marks an upload expired only if it is still open; whether it was.
    func expireIfOpen(_ id: String) throws(UplinkError) -> Bool {
        try with { (db) throws(UplinkError) in
            try db.execute("UPDATE uploads SET state = 'expired', message = 'max-age reached' WHERE id = ? AND state = 'open'", [.text(id)])
            return Int(try db.execute("SELECT changes()").first?.first?.int ?? 0) == 1
        }
    }

    /// Deletes finished upload rows older than `before` (their part files are already gone).
    func pruneUploads(before time: Double) throws(UplinkError) {
        try with { (db) throws(UplinkError) in
            try db.execute("DELETE FROM uploads WHERE state IN ('cancelled', 'expired') AND expires_at < ?", [.real(time)])
        }
    }

    // MARK: Accepted frames

    /// Records an accepted frame and marks its upload accepted, as one transaction.
    func accept(_ row: AcceptedRow, response: String) throws(UplinkError) {
        try with { (db) throws(UplinkError) in
            try db.transaction { () throws(UplinkError) in
                try db.execute("INSERT INTO accepted VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
                    .int(Int64(bitPattern: row.round)), .int(Int64(row.sequence)), .text(row.client), .text(row.upload), .text(row.file),
                    .int(Int64(bitPattern: row.samples)), .int(Int64(row.bytes)), .real(row.at),
                ])
                try db.execute("UPDATE uploads SET state = 'accepted', offset = length, response = ? WHERE id = ?", [.text(response), .text(row.upload)])
            }
        }
    }

    func accepted(round: UInt64) throws(UplinkError) -> [AcceptedRow] {
        try with { (db) throws(UplinkError) in
            try db.execute("SELECT round, seq, client, upload, file, samples, bytes, at FROM accepted WHERE round = ? ORDER BY seq", [.int(Int64(bitPattern: round))]).map {
                AcceptedRow(
                    round: UInt64(bitPattern: $0[0].int ?? 0), sequence: Int($0[1].int ?? 0), client: $0[2].text ?? "", upload: $0[3].text ?? "", file: $0[4].text ?? "",
                    samples: UInt64(bitPattern: $0[5].int ?? 0), bytes: Int($0[6].int ?? 0), at: $0[7].real ?? 0)
            }
        }
    }
}
