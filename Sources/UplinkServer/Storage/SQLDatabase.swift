import UplinkCodec

/// A value bound to or read from a SQL statement (SQLite or PostgreSQL).
enum SQLValue: Sendable, Hashable {
    case int(Int64)
    case real(Double)
    case text(String)
    case null

    var int: Int64? { if case .int(let v) = self { return v } else { return nil } }
    var real: Double? {
        switch self {
        case .real(let v): return v
        case .int(let v): return Double(v)
        default: return nil
        }
    }
    var text: String? { if case .text(let v) = self { return v } else { return nil } }
}

/// What a statement returned: its rows and the rows it changed (insert, update, delete).
struct SQLResult: Sendable {
    var rows: [[SQLValue]]
    var changes: Int
}

/// One connection inside a transaction. Statements use `?` placeholders in both dialects
/// (rewritten to `$1…` for PostgreSQL) and quote the column `"offset"` (reserved in PostgreSQL).
protocol SQLSession {
    @discardableResult
    func execute(_ sql: String, _ bindings: [SQLValue]) throws(UplinkError) -> SQLResult
}

extension SQLSession {
    @discardableResult
    func rows(_ sql: String, _ bindings: [SQLValue] = []) throws(UplinkError) -> [[SQLValue]] { try execute(sql, bindings).rows }
}

/// The two ledger backends.
enum SQLDialect: String, Sendable {
    case sqlite, postgres
}

/// A database the ledger runs on: every use is one transaction, committed durably (SQLite
/// `synchronous=FULL`; PostgreSQL's commit, with its `fsync` and `synchronous_commit` on)
/// before `transaction` returns. Blocking: call it from I/O threads, never from an event loop.
protocol LedgerDatabase: Sendable {
    var dialect: SQLDialect { get }
    /// Where it is, for messages (a path, or the URL without its password).
    var location: String { get }
    /// Runs `body` in one transaction: all of it is committed or none.
    func transaction<T>(_ body: (any SQLSession) throws(UplinkError) -> T) throws(UplinkError) -> T
    /// Runs `body` while this process holds the cluster-wide lock `key` (a PostgreSQL
    /// session-level advisory lock, held on one connection; a process lock for SQLite, which
    /// serves one process). `nil` without running `body` when another holder has it.
    func withExclusiveLock<T>(_ key: Int64, _ body: () throws(UplinkError) -> T) throws(UplinkError) -> T?
    /// Takes the lock `key` for the rest of this process's life (released by the database when
    /// the process or its connection ends); `false` when another holder has it.
    func holdForever(_ key: Int64) throws(UplinkError) -> Bool
    /// Whether nobody holds the lock `key` now (for a replica's lock: whether it is down).
    func isLockFree(_ key: Int64) throws(UplinkError) -> Bool
}

extension LedgerDatabase {
    /// One statement in its own transaction.
    @discardableResult
    func execute(_ sql: String, _ bindings: [SQLValue] = []) throws(UplinkError) -> SQLResult {
        try transaction { (tx) throws(UplinkError) in try tx.execute(sql, bindings) }
    }

    func rows(_ sql: String, _ bindings: [SQLValue] = []) throws(UplinkError) -> [[SQLValue]] { try execute(sql, bindings).rows }
}

/// Opens the ledger database `spec`: a `postgres://` or `postgresql://` URL, or else a SQLite
/// file path.
func openLedgerDatabase(_ spec: String) throws(UplinkError) -> any LedgerDatabase {
    if spec.hasPrefix("postgres://") || spec.hasPrefix("postgresql://") { return try PostgresDatabase(url: spec) }
    return try SQLiteDatabase(path: spec)
}
