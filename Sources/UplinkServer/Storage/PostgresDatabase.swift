import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import UplinkCodec

/// The ledger in PostgreSQL, for several coordinator replicas sharing one round (issue 16,
/// `docs/scaling.md`): a small pool of connections on an event loop of its own, used from
/// blocking code (the coordinator's I/O threads) by waiting on each query's future. Never call
/// it from an event loop or rely on Swift concurrency's cooperative pool for the wait: the
/// queries run on this pool's own NIO thread, so a blocked caller cannot starve them.
///
/// Every connection sets `statement_timeout` and `lock_timeout` (30 s), so a stuck server or
/// lock ends in an error rather than a hung thread.
final class PostgresDatabase: LedgerDatabase, @unchecked Sendable {
    let dialect = SQLDialect.postgres
    let location: String
    private let configuration: PostgresConnection.Configuration
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let size: Int
    private let idle = Locked<[PostgresConnection]>([])
    /// Connections that may still be opened or taken (at most `size` in use at once).
    private let free: NSCondition = NSCondition()
    private nonisolated(unsafe) var available: Int
    private let nextID = Locked(0)
    private let closed = Locked(false)
    /// Connections holding a lock for the process's life.
    private let held = Locked<[PostgresConnection]>([])

    /// Parses `postgres://user[:password]@host[:port]/database` (or `postgresql://`) and checks
    /// that the server answers. `connections` bounds the pool (blocked callers wait for one).
    init(url: String, connections: Int = 16, logger: Logger = Logger(label: "uplink.postgres")) throws(UplinkError) {
        guard let u = URLComponents(string: url), u.scheme == "postgres" || u.scheme == "postgresql",
              let host = u.host, !host.isEmpty, let user = u.user, !user.isEmpty, u.path.count > 1 else {
            throw UplinkError(.invalidArgument, "--database \(UplinkError.quoted(Self.redacted(url))): expected postgres://user[:password]@host[:port]/database")
        }
        if let port = u.port, !(1...65535).contains(port) {
            throw UplinkError(.invalidArgument, "--database: port \(port) is not 1…65535")
        }
        var config = PostgresConnection.Configuration(
            host: host, port: u.port ?? 5432, username: user, password: u.password, database: String(u.path.dropFirst()), tls: .disable)
        config.options.connectTimeout = .seconds(10)
        configuration = config
        location = Self.redacted(url)
        self.logger = logger
        size = max(1, connections)
        available = max(1, connections)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Fail at start, with the server's reason, rather than at the first request.
        _ = try transaction { (tx) throws(UplinkError) in try tx.execute("SELECT 1", []) }
    }

    deinit {
        closed.withLock { $0 = true }
        let connections = idle.withLock({ all -> [PostgresConnection] in defer { all = [] }; return all }) + held.withLock({ $0 })
        if MultiThreadedEventLoopGroup.currentEventLoop == nil {
            // PostgresConnection must be closed before it is freed.
            for c in connections { let f: EventLoopFuture<Void> = c.close(); _ = try? f.wait() }
            try? group.syncShutdownGracefully()
        } else {
            // On an event loop nothing may wait: the connections are closed and kept alive
            // until they are (their own deinit insists), and the group is left to the process's end.
            for c in connections { Self.close(c) }
        }
    }

    /// The URL with its password replaced by `***`.
    static func redacted(_ url: String) -> String {
        guard var u = URLComponents(string: url), u.password != nil else { return url }
        u.password = "***"
        return u.string ?? "postgres://…"
    }

    // MARK: Connections

    private func checkout() throws(UplinkError) -> PostgresConnection {
        free.lock()
        let deadline = Date().addingTimeInterval(60)
        while available == 0 {
            guard free.wait(until: deadline) else {
                free.unlock()
                throw UplinkError(.io, "PostgreSQL \(location): all \(size) connections stayed busy for 60 s")
            }
        }
        available -= 1
        free.unlock()
        if let c = idle.withLock({ $0.popLast() }), !c.isClosed { return c }
        do {
            let id = nextID.withLock { n -> Int in n += 1; return n }
            let c = try PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger).wait()
            _ = try c.query("SET statement_timeout = '30s'", logger: logger).wait()
            _ = try c.query("SET lock_timeout = '30s'", logger: logger).wait()
            return c
        } catch {
            giveSlot()
            throw Self.error(error, location: location, doing: "connect")
        }
    }

    private func giveSlot() {
        free.lock()
        available += 1
        free.signal()
        free.unlock()
    }

    /// Returns a connection to the pool; a broken one (or any after an error inside a
    /// transaction, whose state is unknown) is closed instead.
    private func checkin(_ c: PostgresConnection, healthy: Bool) {
        if healthy && !c.isClosed && !closed.withLock({ $0 }) {
            idle.withLock { $0.append(c) }
        } else {
            Self.close(c)
        }
        giveSlot()
    }

    /// Closes `c` without waiting; the close callback keeps it alive until it is closed
    /// (PostgresConnection must not be freed open).
    static func close(_ c: PostgresConnection) {
        let f: EventLoopFuture<Void> = c.close()
        f.whenComplete { _ in withExtendedLifetime(c) {} }
    }

    static func error(_ error: any Error, location: String, doing: String) -> UplinkError {
        if let u = error as? UplinkError { return u }
        if let p = error as? PSQLError {
            let message = p.serverInfo?[.message] ?? "\(p.code)"
            let state = p.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return UplinkError(.io, "PostgreSQL \(location): \(doing): \(message)\(state)")
        }
        return UplinkError(.io, "PostgreSQL \(location): \(doing): \(String(describing: error).prefix(300))")
    }

    // MARK: Statements

    /// `?` placeholders to `$1…` (no statement of the ledger has a `?` inside a literal).
    static func numbered(_ sql: String) -> String {
        var out = ""
        var n = 0
        for ch in sql {
            if ch == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(ch)
            }
        }
        return out
    }

    struct Session: SQLSession {
        let connection: PostgresConnection
        let logger: Logger
        let location: String

        func execute(_ sql: String, _ bindings: [SQLValue]) throws(UplinkError) -> SQLResult {
            var binds = PostgresBindings(capacity: bindings.count)
            for b in bindings {
                switch b {
                case .int(let v): binds.append(v)
                case .real(let v): binds.append(v)
                case .text(let v): binds.append(v)
                case .null: binds.appendNull()
                }
            }
            let query = PostgresQuery(unsafeSQL: PostgresDatabase.numbered(sql), binds: binds)
            let result: PostgresQueryResult
            do {
                result = try connection.query(query, logger: logger).wait()
            } catch {
                throw PostgresDatabase.error(error, location: location, doing: String(sql.prefix(60)))
            }
            var rows: [[SQLValue]] = []
            rows.reserveCapacity(result.rows.count)
            for row in result.rows {
                var out: [SQLValue] = []
                for cell in row {
                    out.append(try Self.value(cell, location: location))
                }
                rows.append(out)
            }
            return SQLResult(rows: rows, changes: result.metadata.rows ?? 0)
        }

        static func value(_ cell: PostgresCell, location: String) throws(UplinkError) -> SQLValue {
            guard cell.bytes != nil else { return .null }
            do {
                switch cell.dataType {
                case .int2, .int4, .int8: return .int(try cell.decode(Int64.self))
                case .float4, .float8: return .real(try cell.decode(Double.self))
                case .bool: return .int(try cell.decode(Bool.self) ? 1 : 0)
                default: return .text(try cell.decode(String.self))
                }
            } catch {
                throw PostgresDatabase.error(error, location: location, doing: "decode column \(cell.columnName) of type \(cell.dataType)")
            }
        }
    }

    func transaction<T>(_ body: (any SQLSession) throws(UplinkError) -> T) throws(UplinkError) -> T {
        let c = try checkout()
        let session = Session(connection: c, logger: logger, location: location)
        do {
            try session.execute("BEGIN", [])
            let value = try body(session)
            try session.execute("COMMIT", [])
            checkin(c, healthy: true)
            return value
        } catch {
            // A statement that failed leaves the connection usable once rolled back.
            let rolledBack = (try? session.execute("ROLLBACK", [])) != nil
            checkin(c, healthy: rolledBack)
            throw error
        }
    }

    func holdForever(_ key: Int64) throws(UplinkError) -> Bool {
        let c = try checkout()
        let session = Session(connection: c, logger: logger, location: location)
        do {
            let got = try session.execute("SELECT pg_try_advisory_lock(?)", [.int(key)]).rows.first?.first?.int == 1
            if got {
                // This connection stays out of the pool for the process's life.
                held.withLock { $0.append(c) }
            } else {
                checkin(c, healthy: true)
            }
            return got
        } catch {
            checkin(c, healthy: false)
            throw error
        }
    }

    func isLockFree(_ key: Int64) throws(UplinkError) -> Bool {
        try transaction { (tx) throws(UplinkError) -> Bool in
            let free = try tx.execute("SELECT pg_try_advisory_xact_lock(?)", [.int(key)]).rows.first?.first?.int == 1
            return free
        }
    }

    func withExclusiveLock<T>(_ key: Int64, _ body: () throws(UplinkError) -> T) throws(UplinkError) -> T? {
        let c = try checkout()
        let session = Session(connection: c, logger: logger, location: location)
        let got: Bool
        do {
            got = try session.execute("SELECT pg_try_advisory_lock(?)", [.int(key)]).rows.first?.first?.int == 1
        } catch {
            checkin(c, healthy: false)
            throw error
        }
        guard got else {
            checkin(c, healthy: true)
            return nil
        }
        do {
            let value = try body()
            _ = try session.execute("SELECT pg_advisory_unlock(?)", [.int(key)])
            checkin(c, healthy: true)
            return value
        } catch {
            // Closing the session releases the lock.
            checkin(c, healthy: false)
            throw error
        }
    }
}
