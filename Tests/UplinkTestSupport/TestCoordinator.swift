import Foundation
import Testing
import UplinkCodec
import UplinkServer
import UplinkTensorIO

/// A real `uplink serve` on loopback over a scratch data directory, with its model, secret and
/// helpers to mint tokens and encode frames, as a user would drive it.
public final class TestCoordinator {
    public static let layout = try! ModelLayout([TensorSpec(name: "a", shape: [40, 25]), TensorSpec(name: "b", shape: [24])])
    public static let secret = [UInt8](repeating: 0x5A, count: 32)

    public let scratch: ScratchDirectory
    public let data: URL
    public let arguments: [String]
    public let environment: [String: String]
    public private(set) var server: ServerProcess
    public let authority = try! TokenAuthority(secret: TestCoordinator.secret)

    public var port: Int { server.port }

    /// Starts a server; `arguments` come after the required ones (defaults: K = 2, fp32 | lz4 and
    /// the sparse pipeline allowed, a 600 s deadline).
    /// On `backend` (SQLite in the data directory, or a fresh PostgreSQL database).
    public init(_ arguments: [String] = [], environment: [String: String] = [:], scratch: ScratchDirectory? = nil, backend: LedgerBackend = .sqlite) throws {
        let s = try scratch ?? ScratchDirectory()
        self.scratch = s
        data = s.url.appendingPathComponent("data")
        try s.write("secret", Self.secret)
        if !FileManager.default.fileExists(atPath: s.path("model.safetensors")) {
            let model = TestData.uniform(count: Self.layout.parameterCount, seed: 3).map { $0 * 0.1 }
            try s.write("model.safetensors", try Safetensors.write(TensorSet(layout: Self.layout, values: model)))
        }
        var args = ["--model", s.path("model.safetensors"), "--token-secret", s.path("secret")]
        if !arguments.contains("--pipeline") { args += ["--pipeline", "fp32 | lz4", "--pipeline", "ef | topk 10% | int8 | lz4"] }
        if !arguments.contains("--reports") { args += ["--reports", "2"] }
        if !arguments.contains("--deadline") { args += ["--deadline", "600"] }
        self.arguments = args + arguments + (try backend.serveArguments())
        self.environment = environment
        server = try ServerProcess(arguments: self.arguments, environment: environment, dataDirectory: data)
    }

    /// Restarts on the same data directory (after `kill9()` or `terminate()`), with `environment`.
    public func restart(environment: [String: String] = [:]) throws {
        server = try ServerProcess(arguments: arguments, environment: environment, dataDirectory: data)
    }

    public func token(_ client: String, ttl: Double = 3600) -> String { try! authority.mint(client: client, ttl: ttl) }

    public func request(_ method: String, _ path: String, token: String?, headers: [HTTPHeader] = [], body: [UInt8]? = nil, timeout: Double = 10) throws -> HTTPResponse {
        var h = headers
        if let token { h.append(HTTPHeader("Authorization", "Bearer \(token)")) }
        return try httpRequest(port: port, method: method, path: path, headers: h.map { ($0.name, $0.value) }, body: body, timeout: timeout)
    }

    /// `POST /v1/checkin`, its JSON.
    public func checkIn(_ client: String) throws -> [String: Any] {
        let r = try request("POST", "/v1/checkin", token: token(client))
        guard r.status == 200, let json = r.json() else { throw UplinkError(.io, "check-in answered \(r.status): \(r.text)") }
        return json
    }

    /// A real frame of a heavy-tailed update for `round`.
    public static func frame(seed: UInt64, round: UInt64, samples: UInt64 = 10, pipeline: String = "fp32 | lz4") throws -> [UInt8] {
        var encoder = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: pipeline))
        return try encoder.encode(TestData.heavyTailed(count: layout.parameterCount, seed: seed, scale: 0.02), round: round, sampleCount: samples)
    }

    /// Uploads `frame` for `client` in `round` with the resumable protocol, to completion.
    public func upload(_ frame: [UInt8], client: String, round: UInt64, options: ResumableUpload.Options = .init(), port: Int? = nil) -> (ResumableUpload.Outcome, ResumableUpload) {
        var u = ResumableUpload(body: frame, creationPath: "/v1/rounds/\(round)/updates", token: token(client), port: port ?? self.port, options: options)
        let outcome = u.run()
        return (outcome, u)
    }

    /// The current global model the server publishes for `round`, decoded.
    public func model(round: UInt64) throws -> [Float] {
        let r = try request("GET", "/v1/models/\(round)", token: token("reader"))
        guard r.status == 200 else { throw UplinkError(.io, "model \(round): \(r.status)") }
        return try FrameDecoder().decode(r.body, layout: Self.layout).values
    }

    public func status(round: UInt64) throws -> [String: Any] {
        let r = try request("GET", "/v1/rounds/\(round)", token: token("reader"))
        guard r.status == 200, let j = r.json() else { throw UplinkError(.io, "status \(round): \(r.status) \(r.text)") }
        return j
    }

    /// Waits (bounded) until `condition` holds.
    @discardableResult
    public static func wait(seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }

    /// Runs `uplink` (another subcommand) and returns status and output.
    public static func cli(_ arguments: [String], in directory: URL) throws -> ToolResult {
        try runTool(UplinkExecutable.url, arguments, in: directory)
    }
}

/// The ledger backend a server test runs on: the same tests pass on both (issue 16).
public enum LedgerBackend: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgres
    public var testDescription: String { rawValue }
    /// The `uplink serve` arguments that select it (a fresh PostgreSQL database each time).
    public func serveArguments() throws -> [String] {
        switch self {
        case .sqlite: return []
        case .postgres: return ["--database", try TestPostgres.newDatabase()]
        }
    }
}

/// A real PostgreSQL server for the tests: `UPLINK_TEST_POSTGRES` (a URL, as `scripts/test`
/// exports after `scripts/postgres start`), or else one this process starts with
/// `scripts/postgres` and stops when it exits.
public enum TestPostgres {
    static let started = Locked<String?>(nil)
    nonisolated(unsafe) static var ownDirectory: String?

    /// The server's URL (its `uplink` database).
    public static func url() throws -> String {
        try started.withLock { (u) throws -> String in
            if let u { return u }
            if let env = ProcessInfo.processInfo.environment["UPLINK_TEST_POSTGRES"], !env.isEmpty {
                u = env
                return env
            }
            let dir = "/tmp/uplink-test-pg-\(getpid())"
            let port = 56000 + Int(getpid() % 900)
            // Not runTool: the server daemon would keep its pipes open. The URL is the script's.
            let status = try runDetached(script, ["start", dir, String(port)])
            guard status == 0 else { throw UplinkError(.io, "scripts/postgres start exited \(status)") }
            ownDirectory = dir
            atexit {
                if let d = TestPostgres.ownDirectory { _ = try? runTool(TestPostgres.script, ["stop", d], in: URL(fileURLWithPath: "/tmp")) }
            }
            let url = "postgres://uplink@127.0.0.1:\(port)/uplink"
            u = url
            return url
        }
    }

    static var script: URL { Fixtures.root.deletingLastPathComponent().appendingPathComponent("scripts/postgres") }

    /// A new, empty database on the server; its URL.
    public static func newDatabase() throws -> String {
        let base = try url()
        guard var u = URLComponents(string: base) else { throw UplinkError(.io, "bad test PostgreSQL URL \(base)") }
        let name = "t\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        let r = try runTool(script, ["createdb", base, name], in: URL(fileURLWithPath: "/tmp"))
        guard r.status == 0 else { throw UplinkError(.io, "scripts/postgres createdb: \(r.stderr)") }
        u.path = "/" + name
        return u.string!
    }

    /// Runs `sql` on the database `url` with psql; its output.
    public static func psql(_ url: String, _ sql: String) throws -> String {
        let r = try runTool(script, ["psql", url, sql], in: URL(fileURLWithPath: "/tmp"))
        guard r.status == 0 else { throw UplinkError(.io, "psql: \(r.stderr)") }
        return r.stdout
    }
}

/// A TCP port on 127.0.0.1 nothing listens on now (bound, read, released).
public func unusedLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw UplinkError(.io, "socket: \(errno)") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0 else { throw UplinkError(.io, "bind: \(errno)") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// nginx (Debian's) in front of replicas, with `scripts/cluster`'s configuration.
public final class TestNginx {
    public let port: Int
    let directory: String
    static var script: URL { Fixtures.root.deletingLastPathComponent().appendingPathComponent("scripts/cluster") }

    public init(replicaPorts: [Int], in scratch: ScratchDirectory) throws {
        port = try unusedLoopbackPort()
        directory = scratch.path("nginx")
        try FileManager.default.createDirectory(atPath: directory + "/nginx-tmp", withIntermediateDirectories: true)
        chmod(directory + "/nginx-tmp", 0o777)
        let conf = try runTool(Self.script, ["nginx-conf", directory, String(port)] + replicaPorts.map(String.init), in: scratch.url)
        guard conf.status == 0 else { throw UplinkError(.io, "nginx-conf: \(conf.stderr)") }
        try conf.stdout.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        let bin = FileManager.default.fileExists(atPath: "/usr/sbin/nginx") ? "/usr/sbin/nginx" : "/usr/bin/nginx"
        // Not runTool: a daemon would inherit its pipes and runTool would wait for them forever.
        let status = try runDetached(URL(fileURLWithPath: bin), ["-p", directory, "-c", directory + "/nginx.conf", "-g", "daemon on;"])
        guard status == 0 else { throw UplinkError(.io, "nginx exited \(status): \((try? String(contentsOfFile: directory + "/nginx-error.log", encoding: .utf8)) ?? "")") }
        guard TestCoordinator.wait(seconds: 10, { (try? httpRequest(port: self.port, method: "GET", path: "/healthz", headers: [], body: nil, timeout: 2))?.status == 200 }) else {
            stop()
            throw UplinkError(.io, "nginx did not answer on \(port)")
        }
    }

    public func stop() {
        let bin = FileManager.default.fileExists(atPath: "/usr/sbin/nginx") ? "/usr/sbin/nginx" : "/usr/bin/nginx"
        _ = try? runDetached(URL(fileURLWithPath: bin), ["-p", directory, "-c", directory + "/nginx.conf", "-s", "stop"])
    }

    deinit { stop() }
}

/// Runs `executable` with no pipes (standard input, output and error on /dev/null) and waits
/// for it: for commands that leave a daemon behind, which would hold a pipe open.
public func runDetached(_ executable: URL, _ arguments: [String], timeout: Double = 120) throws -> Int32 {
    // SpawnedProcess: reaped by waitpid here and started without the test process's other
    // descriptors (Foundation's Process left the daemon's first process unreaped).
    let child = try SpawnedProcess(executable: executable.path, arguments: arguments, environment: ProcessInfo.processInfo.environment, stdout: "/dev/null", stderr: "/dev/null")
    guard let status = child.waitForExit(deadline: Deadline(seconds: timeout)) else {
        child.kill9()
        throw UplinkError(.io, "\(executable.lastPathComponent) did not finish within \(Int(timeout)) s")
    }
    return status
}
