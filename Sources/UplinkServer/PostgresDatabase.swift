import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import UplinkCodec

/// A PostgreSQL connection pool used from blocking code (the coordinator's I/O threads, never
/// an event loop): each call runs the async query on the pool and waits for it.
/// WIP (issue 16): the PostgreSQL ledger backend builds on this.
final class PostgresDatabase: @unchecked Sendable {
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger = Logger(label: "uplink.postgres")

    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`).
    init(url: String) throws(UplinkError) {
        guard let u = URLComponents(string: url), u.scheme == "postgres" || u.scheme == "postgresql",
              let host = u.host, let user = u.user, !u.path.isEmpty else {
            throw UplinkError(.invalidArgument, "--database \(UplinkError.quoted(url)): expected postgres://user[:password]@host[:port]/database")
        }
        let config = PostgresClient.Configuration(host: host, port: u.port ?? 5432, username: user, password: u.password,
                                                  database: String(u.path.dropFirst()), tls: .disable)
        let client = PostgresClient(configuration: config)
        self.client = client
        runner = Task { await client.run() }
    }

    deinit { runner.cancel() }

    /// Runs `body` on the pool and waits for it (a bounded wait: `timeout` seconds).
    func blocking<T: Sendable>(timeout: Double = 30, _ body: @escaping @Sendable (PostgresClient) async throws -> T) throws(UplinkError) -> T {
        let done = DispatchSemaphore(value: 0)
        let box = Locked<Result<T, Error>?>(nil)
        let client = self.client
        Task {
            let r: Result<T, Error>
            do { r = .success(try await body(client)) } catch { r = .failure(error) }
            box.withLock { $0 = r }
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success else { throw UplinkError(.io, "PostgreSQL did not answer within \(Int(timeout)) s") }
        switch box.withLock({ $0 })! {
        case .success(let v): return v
        case .failure(let e): throw UplinkError(.io, "PostgreSQL: \(String(reflecting: e).prefix(500))")
        }
    }

    /// Executes `query`, returning its rows as arrays of optional strings (text format).
    func rows(_ query: PostgresQuery) throws(UplinkError) -> [[String?]] {
        let logger = self.logger
        return try blocking { client in
            var out: [[String?]] = []
            for try await row in try await client.query(query, logger: logger) {
                out.append(row.map { cell in cell.bytes.map { String(buffer: $0) } })
            }
            return out
        }
    }
}
