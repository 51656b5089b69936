import CUplinkSQLite
import UplinkCodec

/// One SQLite connection to the system library (WAL journal, `synchronous=FULL`: a committed
/// transaction is on disk, WAL and directory fsynced, before `execute` returns). Not
/// thread-safe by itself: ``SQLiteDatabase`` serializes every use behind one lock.
final class SQLiteConnection {
    private var db: OpaquePointer?
    let path: String

    init(path: String) throws(UplinkError) {
        self.path = path
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            throw UplinkError(.io, "cannot open the round ledger \(path): \(message)")
        }
        db = handle
        sqlite3_busy_timeout(handle, 5000)
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit { sqlite3_close(db) }

    private func error(_ what: String) -> UplinkError {
        UplinkError(.io, "round ledger \(path): \(what): \(String(cString: sqlite3_errmsg(db)))")
    }

    /// Runs `sql` with `bindings`, returning every row.
    @discardableResult
    func execute(_ sql: String, _ bindings: [SQLValue] = []) throws(UplinkError) -> [[SQLValue]] { try run(sql, bindings).rows }

    /// Runs `sql` with `bindings`: its rows and the rows it changed.
    func run(_ sql: String, _ bindings: [SQLValue]) throws(UplinkError) -> SQLResult {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else { throw error("prepare \(sql.prefix(60))") }
        defer { sqlite3_finalize(statement) }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (i, value) in bindings.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch value {
            case .int(let v): rc = sqlite3_bind_int64(statement, index, v)
            case .real(let v): rc = sqlite3_bind_double(statement, index, v)
            case .text(let v): rc = sqlite3_bind_text(statement, index, v, -1, transient)
            case .null: rc = sqlite3_bind_null(statement, index)
            }
            guard rc == SQLITE_OK else { throw error("bind") }
        }
        var rows: [[SQLValue]] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error("step \(sql.prefix(60))") }
            var row: [SQLValue] = []
            for c in 0..<sqlite3_column_count(statement) {
                switch sqlite3_column_type(statement, c) {
                case SQLITE_INTEGER: row.append(.int(sqlite3_column_int64(statement, c)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(statement, c)))
                case SQLITE_TEXT: row.append(.text(String(cString: sqlite3_column_text(statement, c))))
                default: row.append(.null)
                }
            }
            rows.append(row)
        }
        return SQLResult(rows: rows, changes: Int(sqlite3_changes(db)))
    }

    /// Runs `body` inside one transaction: all of it is committed (durably) or none.
    func transaction<T>(_ body: () throws(UplinkError) -> T) throws(UplinkError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            _ = try? execute("ROLLBACK")
            throw error
        }
    }
}

extension SQLiteConnection: SQLSession {
    func execute(_ sql: String, _ bindings: [SQLValue]) throws(UplinkError) -> SQLResult { try run(sql, bindings) }
}

/// The embedded ledger database: one SQLite file, one connection, every transaction behind one
/// process lock (`BEGIN IMMEDIATE`).
final class SQLiteDatabase: LedgerDatabase {
    let dialect = SQLDialect.sqlite
    let location: String
    private let lock = Locked(())
    private let exclusive = Locked(Set<Int64>())
    // Only touched under `lock`.
    private nonisolated(unsafe) let connection: SQLiteConnection

    init(path: String) throws(UplinkError) {
        location = path
        connection = try SQLiteConnection(path: path)
    }

    func transaction<T>(_ body: (any SQLSession) throws(UplinkError) -> T) throws(UplinkError) -> T {
        try lock.withLock { (_) throws(UplinkError) -> T in
            try connection.transaction { () throws(UplinkError) -> T in try body(connection) }
        }
    }

    func holdForever(_ key: Int64) throws(UplinkError) -> Bool { exclusive.withLock { $0.insert(key).inserted } }

    func isLockFree(_ key: Int64) throws(UplinkError) -> Bool { !exclusive.withLock { $0.contains(key) } }

    func withExclusiveLock<T>(_ key: Int64, _ body: () throws(UplinkError) -> T) throws(UplinkError) -> T? {
        guard exclusive.withLock({ $0.insert(key).inserted }) else { return nil }
        defer { _ = exclusive.withLock { $0.remove(key) } }
        return try body()
    }
}
