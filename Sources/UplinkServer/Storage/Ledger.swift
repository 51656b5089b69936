import UplinkCodec

/// The round ledger: rounds, check-ins, uploads with their durable offsets and owners, and the
/// accepted frames in acceptance order, in SQLite (one machine) or PostgreSQL (several
/// replicas, `docs/scaling.md`). Every write is one transaction, committed durably before the
/// caller answers the client. Blocking: call it from the coordinator's I/O threads, never from
/// an event loop.
///
/// The schema is versioned (`meta.schema`); ``migrations`` bring an older ledger up to
/// ``schemaVersion`` at start, each step in one transaction, and a newer one is refused.
final class Ledger: Sendable {
    /// The schema this build writes.
    static let schemaVersion: Int64 = 2
    let db: any LedgerDatabase

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
        /// The replica appending to it now, until `leaseUntil`.
        var owner: String? = nil
        var leaseUntil: Double? = nil
        /// Another replica asked the owner to end its append.
        var interrupt: Bool = false
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
        /// The replica that accepted it (and holds it in its partial sum).
        var replica: String = ""
        /// Hex SHA-256 of the frame when duplicate frames are refused, else empty.
        var digest: String = ""
    }

    struct CheckInRow: Sendable {
        var client: String
        var at: Double
        var sequence: Int
    }

    /// Opens (creating and migrating) the ledger in `db` for the model `fingerprint`.
    init(database db: any LedgerDatabase, fingerprint: UInt64, parameterCount: Int) throws(UplinkError) {
        self.db = db
        try Self.migrate(db, to: Self.schemaVersion)
        try db.transaction { (tx) throws(UplinkError) in
            let model = try tx.rows("SELECT value FROM meta WHERE key = 'model'").first?.first?.text
            let mine = "\(String(fingerprint, radix: 16)):\(parameterCount)"
            if let model, model != mine {
                throw UplinkError(.stateMismatch, "the ledger \(db.location) belongs to model \(model) (fingerprint:parameters), not \(mine): use another --data or --database")
            }
            try tx.execute("INSERT INTO meta VALUES ('model', ?) ON CONFLICT DO NOTHING", [.text(mine)])
        }
    }

    // MARK: Schema

    /// The statements that take a ledger from version `n - 1` to `n`, per dialect.
    static func migration(_ n: Int64, _ dialect: SQLDialect) -> [String] {
        let int = dialect == .postgres ? "BIGINT" : "INTEGER"
        let real = dialect == .postgres ? "DOUBLE PRECISION" : "REAL"
        switch n {
        case 1:
            return [
                "CREATE TABLE IF NOT EXISTS rounds (round \(int) PRIMARY KEY, opened_at \(real) NOT NULL, state TEXT NOT NULL, closed_at \(real), reason TEXT)",
                "CREATE TABLE IF NOT EXISTS checkins (round \(int) NOT NULL, client TEXT NOT NULL, at \(real) NOT NULL, seq \(int) NOT NULL, PRIMARY KEY (round, client))",
                """
                CREATE TABLE IF NOT EXISTS uploads (
                  id TEXT PRIMARY KEY, round \(int) NOT NULL, client TEXT NOT NULL, length \(int) NOT NULL,
                  "offset" \(int) NOT NULL, created_at \(real) NOT NULL, expires_at \(real) NOT NULL, state TEXT NOT NULL,
                  code \(int), message TEXT, response TEXT)
                """,
                "CREATE INDEX IF NOT EXISTS uploads_by_client ON uploads (client, state)",
                """
                CREATE TABLE IF NOT EXISTS accepted (
                  round \(int) NOT NULL, seq \(int) NOT NULL, client TEXT NOT NULL, upload TEXT NOT NULL,
                  file TEXT NOT NULL, samples \(int) NOT NULL, bytes \(int) NOT NULL, at \(real) NOT NULL,
                  PRIMARY KEY (round, seq), UNIQUE (round, client))
                """,
            ]
        case 2:
            // Replicas: who accepted a frame (its partial sum holds it), the frame's digest (a
            // copy counts once across replicas), and who appends to an upload now (a lease).
            return [
                "ALTER TABLE accepted ADD COLUMN replica TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE accepted ADD COLUMN digest TEXT NOT NULL DEFAULT ''",
                "CREATE UNIQUE INDEX IF NOT EXISTS accepted_digest ON accepted (round, digest) WHERE digest <> ''",
                "ALTER TABLE uploads ADD COLUMN owner TEXT",
                "ALTER TABLE uploads ADD COLUMN lease_until \(real)",
                "ALTER TABLE uploads ADD COLUMN interrupt \(int) NOT NULL DEFAULT 0",
                "CREATE INDEX IF NOT EXISTS uploads_by_state ON uploads (state, round)",
                "CREATE INDEX IF NOT EXISTS checkins_by_seq ON checkins (round, seq)",
            ]
        default:
            return []
        }
    }

    /// Applies the migrations from the ledger's version up to `target`, one transaction each
    /// (replicas starting at once take turns: PostgreSQL advisory lock 0x55504C4B).
    static func migrate(_ db: any LedgerDatabase, to target: Int64) throws(UplinkError) {
        while true {
            let done = try db.transaction { (tx) throws(UplinkError) -> Bool in
                if db.dialect == .postgres { try tx.execute("SELECT pg_advisory_xact_lock(1431326795)", []) }
                try tx.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", [])
                let version = try tx.rows("SELECT value FROM meta WHERE key = 'schema'").first?.first?.text.flatMap { Int64($0) } ?? 0
                if version > Self.schemaVersion {
                    throw UplinkError(.stateMismatch, "the ledger \(db.location) has schema \(version); this uplink understands up to \(Self.schemaVersion): upgrade uplink")
                }
                guard version < target else { return true }
                for statement in migration(version + 1, db.dialect) { try tx.execute(statement, []) }
                try tx.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [.text(String(version + 1))])
                return false
            }
            if done { return }
        }
    }

    /// The schema version recorded in the ledger.
    func version() throws(UplinkError) -> Int64 {
        try db.rows("SELECT value FROM meta WHERE key = 'schema'").first?.first?.text.flatMap { Int64($0) } ?? 0
    }

    /// Runs `body` in one transaction of the ledger.
    func transaction<T>(_ body: (LedgerSession) throws(UplinkError) -> T) throws(UplinkError) -> T {
        try db.transaction { (tx) throws(UplinkError) -> T in try body(LedgerSession(tx: tx, dialect: db.dialect)) }
    }

    /// Runs `body` in one transaction that holds round `round`'s lock until it commits: every
    /// replica's check-ins, acceptances and round changes for that round take turns through it
    /// (PostgreSQL `pg_advisory_xact_lock`; SQLite's single writer already does).
    func locked<T>(round: UInt64, _ body: (LedgerSession) throws(UplinkError) -> T) throws(UplinkError) -> T {
        try transaction { (tx) throws(UplinkError) -> T in
            if db.dialect == .postgres { try tx.tx.execute("SELECT pg_advisory_xact_lock(?)", [.int(LockKey.round(round))]) }
            return try body(tx)
        }
    }

    // Single-statement conveniences.
    func lastRound() throws(UplinkError) -> RoundRow? { try transaction { (t) throws(UplinkError) in try t.lastRound() } }
    func round(_ round: UInt64) throws(UplinkError) -> RoundRow? { try transaction { (t) throws(UplinkError) in try t.round(round) } }
    func openRound(_ round: UInt64, at time: Double) throws(UplinkError) { try transaction { (t) throws(UplinkError) in try t.openRound(round, at: time) } }
    func checkIns(round: UInt64) throws(UplinkError) -> [CheckInRow] { try transaction { (t) throws(UplinkError) in try t.checkIns(round: round, from: 0) } }
    func upload(_ id: String) throws(UplinkError) -> UploadRow? { try transaction { (t) throws(UplinkError) in try t.upload(id) } }
    func uploads(state: String) throws(UplinkError) -> [UploadRow] { try transaction { (t) throws(UplinkError) in try t.uploads(state: state) } }
    func uploads(round: UInt64) throws(UplinkError) -> [UploadRow] { try transaction { (t) throws(UplinkError) in try t.uploads(round: round) } }
    func accepted(round: UInt64) throws(UplinkError) -> [AcceptedRow] { try transaction { (t) throws(UplinkError) in try t.accepted(round: round, from: 0) } }
    func finishUpload(_ id: String, state: String, code: Int?, message: String?, response: String?) throws(UplinkError) {
        try transaction { (t) throws(UplinkError) in try t.finishUpload(id, state: state, code: code, message: message, response: response) }
    }
    func expireIfOpen(_ id: String) throws(UplinkError) -> Bool { try transaction { (t) throws(UplinkError) in try t.expireIfOpen(id) } }
    func pruneUploads(before time: Double) throws(UplinkError) { try transaction { (t) throws(UplinkError) in try t.pruneUploads(before: time) } }
}

/// The advisory-lock keys replicas share (PostgreSQL's 64-bit key space; the top 16 bits name
/// the kind).
enum LockKey {
    /// One round's check-ins, acceptances and state changes.
    static func round(_ round: UInt64) -> Int64 { Int64(bitPattern: 0x5550_0000_0000_0000 | (round & 0xFFFF_FFFF_FFFF)) }
    /// The right to close (merge and publish) one round.
    static func close(_ round: UInt64) -> Int64 { Int64(bitPattern: 0x5551_0000_0000_0000 | (round & 0xFFFF_FFFF_FFFF)) }
    /// Held by a running replica for its lifetime: free means that replica is not running.
    static func replica(_ name: String) -> Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int64(bitPattern: 0x5552_0000_0000_0000 | (h & 0xFFFF_FFFF_FFFF))
    }
}

/// The ledger's statements inside one transaction (``Ledger/transaction(_:)``).
struct LedgerSession {
    let tx: any SQLSession
    let dialect: SQLDialect

    private static func i(_ v: UInt64) -> SQLValue { .int(Int64(bitPattern: v)) }

    // MARK: Rounds

    private static func roundRow(_ r: [SQLValue]) -> Ledger.RoundRow {
        Ledger.RoundRow(round: UInt64(bitPattern: r[0].int ?? 0), openedAt: r[1].real ?? 0, state: r[2].text ?? "", closedAt: r[3].real, reason: r[4].text)
    }

    /// The newest round (the one in progress, or the last of a finished run).
    func lastRound() throws(UplinkError) -> Ledger.RoundRow? {
        try tx.rows("SELECT round, opened_at, state, closed_at, reason FROM rounds ORDER BY round DESC LIMIT 1").first.map(Self.roundRow)
    }

    func round(_ round: UInt64) throws(UplinkError) -> Ledger.RoundRow? {
        try tx.rows("SELECT round, opened_at, state, closed_at, reason FROM rounds WHERE round = ?", [Self.i(round)]).first.map(Self.roundRow)
    }

    func openRound(_ round: UInt64, at time: Double) throws(UplinkError) {
        try tx.execute("INSERT INTO rounds VALUES (?, ?, 'open', NULL, NULL) ON CONFLICT DO NOTHING", [Self.i(round), .real(time)])
    }

    /// Records the end of `round` (closed or abandoned) and opens `next`, if the round is still
    /// open; whether it was (a replica that lost the race to close it changes nothing).
    @discardableResult
    func finishRound(_ round: UInt64, state: String, at time: Double, reason: String, next: UInt64?, nextOpensAt: Double) throws(UplinkError) -> Bool {
        let changed = try tx.execute("UPDATE rounds SET state = ?, closed_at = ?, reason = ? WHERE round = ? AND state = 'open'", [.text(state), .real(time), .text(reason), Self.i(round)]).changes
        guard changed == 1 else { return false }
        if let next { try openRound(next, at: nextOpensAt) }
        // Uploads still open for a finished round will never be accepted.
        try tx.execute("UPDATE uploads SET state = 'expired', code = 905, message = 'the round closed' WHERE round = ? AND state = 'open'", [Self.i(round)])
        return true
    }

    // MARK: Check-ins

    /// The check-ins of `round` from sequence number `from` on, in order.
    func checkIns(round: UInt64, from: Int) throws(UplinkError) -> [Ledger.CheckInRow] {
        try tx.rows("SELECT client, at, seq FROM checkins WHERE round = ? AND seq >= ? ORDER BY seq", [Self.i(round), .int(Int64(from))]).map {
            Ledger.CheckInRow(client: $0[0].text ?? "", at: $0[1].real ?? 0, sequence: Int($0[2].int ?? 0))
        }
    }

    func recordCheckIn(round: UInt64, client: String, at time: Double, sequence: Int) throws(UplinkError) {
        try tx.execute("INSERT INTO checkins VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", [Self.i(round), .text(client), .real(time), .int(Int64(sequence))])
    }

    // MARK: Uploads

    private static func uploadRow(_ r: [SQLValue]) -> Ledger.UploadRow {
        Ledger.UploadRow(
            id: r[0].text ?? "", round: UInt64(bitPattern: r[1].int ?? 0), client: r[2].text ?? "", length: r[3].int ?? 0, offset: r[4].int ?? 0,
            createdAt: r[5].real ?? 0, expiresAt: r[6].real ?? 0, state: r[7].text ?? "", code: r[8].int.map { Int($0) }, message: r[9].text, response: r[10].text,
            owner: r[11].text, leaseUntil: r[12].real, interrupt: (r[13].int ?? 0) != 0)
    }

    private static let uploadColumns = #"id, round, client, length, "offset", created_at, expires_at, state, code, message, response, owner, lease_until, interrupt"#

    func upload(_ id: String) throws(UplinkError) -> Ledger.UploadRow? {
        try tx.rows("SELECT \(Self.uploadColumns) FROM uploads WHERE id = ?", [.text(id)]).first.map(Self.uploadRow)
    }

    func uploads(state: String) throws(UplinkError) -> [Ledger.UploadRow] {
        try tx.rows("SELECT \(Self.uploadColumns) FROM uploads WHERE state = ?", [.text(state)]).map(Self.uploadRow)
    }

    func uploads(round: UInt64) throws(UplinkError) -> [Ledger.UploadRow] {
        try tx.rows("SELECT \(Self.uploadColumns) FROM uploads WHERE round = ? ORDER BY created_at", [Self.i(round)]).map(Self.uploadRow)
    }

    func openUploads(client: String) throws(UplinkError) -> Int {
        Int(try tx.rows("SELECT COUNT(*) FROM uploads WHERE client = ? AND state = 'open'", [.text(client)]).first?.first?.int ?? 0)
    }

    func openUploads(client: String, round: UInt64) throws(UplinkError) -> [String] {
        try tx.rows("SELECT id FROM uploads WHERE client = ? AND round = ? AND state = 'open'", [.text(client), Self.i(round)]).compactMap { $0[0].text }
    }

    func createUpload(_ row: Ledger.UploadRow) throws(UplinkError) {
        try tx.execute(#"INSERT INTO uploads (id, round, client, length, "offset", created_at, expires_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"#, [
            .text(row.id), Self.i(row.round), .text(row.client), .int(row.length), .int(row.offset), .real(row.createdAt), .real(row.expiresAt), .text(row.state),
        ])
    }

    /// Records a new durable offset (the bytes up to it are fsynced) if `owner` still holds the
    /// upload (or nobody does), renewing the lease to `leaseUntil`; it never decreases. Whether
    /// it was recorded: `false` when another replica took the upload over.
    func setOffset(_ id: String, _ offset: Int64, owner: String, leaseUntil: Double) throws(UplinkError) -> Bool {
        try tx.execute(
            #"UPDATE uploads SET "offset" = CASE WHEN "offset" < ? THEN ? ELSE "offset" END, lease_until = ? WHERE id = ? AND state = 'open' AND owner = ?"#,
            [.int(offset), .int(offset), .real(leaseUntil), .text(id), .text(owner)]
        ).changes == 1
    }

    /// Takes the upload for `owner` (`<replica>/<n>`) until `leaseUntil` when nobody holds it,
    /// the same replica does (its own requests take turns in memory), or the holder's lease ran
    /// out at `now`; otherwise asks the holder to end its append (`interrupt`). Returns the row
    /// after the attempt and whether `owner` holds it.
    func claim(_ id: String, owner: String, replica: String, now: Double, leaseUntil: Double) throws(UplinkError) -> (row: Ledger.UploadRow?, owned: Bool) {
        let took = try tx.execute(
            "UPDATE uploads SET owner = ?, lease_until = ?, interrupt = 0 WHERE id = ? AND state = 'open' AND (owner IS NULL OR owner LIKE ? OR lease_until < ?)",
            [.text(owner), .real(leaseUntil), .text(id), .text(replica + "/%"), .real(now)]
        ).changes == 1
        if !took { try tx.execute("UPDATE uploads SET interrupt = 1 WHERE id = ? AND state = 'open'", [.text(id)]) }
        return (try upload(id), took)
    }

    /// Takes the upload from `holder` (a replica that is not running) for `owner`; whether it did.
    func takeOver(_ id: String, from holder: String, owner: String, leaseUntil: Double) throws(UplinkError) -> Bool {
        try tx.execute("UPDATE uploads SET owner = ?, lease_until = ?, interrupt = 0 WHERE id = ? AND state = 'open' AND owner = ?", [.text(owner), .real(leaseUntil), .text(id), .text(holder)]).changes == 1
    }

    /// Gives the upload up (its append ended), if `owner` holds it.
    func release(_ id: String, owner: String) throws(UplinkError) {
        try tx.execute("UPDATE uploads SET owner = NULL, lease_until = NULL WHERE id = ? AND owner = ?", [.text(id), .text(owner)])
    }

    /// Renews every lease of replica `replica` (owners `<replica>/<n>`) to `leaseUntil`,
    /// returning the uploads another replica asked it to let go of.
    func renewLeases(replica: String, leaseUntil: Double) throws(UplinkError) -> [String] {
        let mine = replica + "/%"
        try tx.execute("UPDATE uploads SET lease_until = ? WHERE state = 'open' AND owner LIKE ?", [.real(leaseUntil), .text(mine)])
        return try tx.rows("SELECT id FROM uploads WHERE state = 'open' AND owner LIKE ? AND interrupt <> 0", [.text(mine)]).compactMap { $0[0].text }
    }

    func finishUpload(_ id: String, state: String, code: Int?, message: String?, response: String?) throws(UplinkError) {
        try tx.execute("UPDATE uploads SET state = ?, code = ?, message = ?, response = ?, owner = NULL, lease_until = NULL WHERE id = ?", [
            .text(state), code.map { .int(Int64($0)) } ?? .null, message.map { .text($0) } ?? .null, response.map { .text($0) } ?? .null, .text(id),
        ])
    }

    /// Marks an upload expired only if it is still open; whether it was.
    func expireIfOpen(_ id: String) throws(UplinkError) -> Bool {
        try tx.execute("UPDATE uploads SET state = 'expired', message = 'max-age reached' WHERE id = ? AND state = 'open'", [.text(id)]).changes == 1
    }

    /// Deletes finished upload rows older than `before` (their part files are already gone).
    func pruneUploads(before time: Double) throws(UplinkError) {
        try tx.execute("DELETE FROM uploads WHERE state IN ('cancelled', 'expired') AND expires_at < ?", [.real(time)])
    }

    // MARK: Accepted frames

    /// Records an accepted frame and marks its upload accepted.
    func accept(_ row: Ledger.AcceptedRow, response: String) throws(UplinkError) {
        try tx.execute("INSERT INTO accepted (round, seq, client, upload, file, samples, bytes, at, replica, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            Self.i(row.round), .int(Int64(row.sequence)), .text(row.client), .text(row.upload), .text(row.file),
            Self.i(row.samples), .int(Int64(row.bytes)), .real(row.at), .text(row.replica), .text(row.digest),
        ])
        try tx.execute(#"UPDATE uploads SET state = 'accepted', "offset" = length, response = ?, owner = NULL, lease_until = NULL WHERE id = ?"#, [.text(response), .text(row.upload)])
    }

    /// Whether a frame with this digest is already accepted in `round`.
    func hasDigest(round: UInt64, digest: String) throws(UplinkError) -> Bool {
        guard !digest.isEmpty else { return false }
        return !(try tx.rows("SELECT 1 FROM accepted WHERE round = ? AND digest = ?", [Self.i(round), .text(digest)])).isEmpty
    }

    /// The accepted frames of `round` from sequence number `from` on, in acceptance order.
    func accepted(round: UInt64, from: Int) throws(UplinkError) -> [Ledger.AcceptedRow] {
        try tx.rows("SELECT round, seq, client, upload, file, samples, bytes, at, replica, digest FROM accepted WHERE round = ? AND seq >= ? ORDER BY seq", [Self.i(round), .int(Int64(from))]).map {
            Ledger.AcceptedRow(
                round: UInt64(bitPattern: $0[0].int ?? 0), sequence: Int($0[1].int ?? 0), client: $0[2].text ?? "", upload: $0[3].text ?? "", file: $0[4].text ?? "",
                samples: UInt64(bitPattern: $0[5].int ?? 0), bytes: Int($0[6].int ?? 0), at: $0[7].real ?? 0, replica: $0[8].text ?? "", digest: $0[9].text ?? "")
        }
    }
}
