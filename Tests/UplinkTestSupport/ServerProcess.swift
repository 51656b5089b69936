import Foundation
import UplinkCodec
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `uplink` executable the tests run.
public enum UplinkExecutable {
    /// `swift test` runs from the build directory that also holds the `uplink` executable (or
    /// from a bundle one level below it).
    public static let url: URL = {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("uplink")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return dir.appendingPathComponent("uplink")
    }()
}

/// Why a ``ServerProcess`` did not start.
public enum ServerProcessError: Error, CustomStringConvertible {
    /// The process could not be launched.
    case launchFailed(String)
    /// It exited (with the shell-style status: 128 + signal when killed) before printing its
    /// listening line.
    case exitedBeforeListening(status: Int32, stderr: String)
    /// No listening line within the startup timeout; the process was killed.
    case noListeningLine(seconds: Double, stdout: String, stderr: String)

    public var description: String {
        switch self {
        case .launchFailed(let why): "could not launch the server: \(why)"
        case .exitedBeforeListening(let status, let stderr): "server exited with status \(status) before listening; stderr:\n\(stderr)"
        case .noListeningLine(let s, let stdout, let stderr): "server printed no listening line in \(s) s; stdout:\n\(stdout)\nstderr:\n\(stderr)"
        }
    }
}

/// The real `uplink serve` as a child process, for tests that cut, kill and restart it.
/// stdout and stderr go to files next to the data directory (a pipe nobody reads could fill
/// and block the server). A server still running when this value goes away is killed.
public final class ServerProcess: Sendable {
    /// The line the server prints once it accepts connections: `<prefix>http://127.0.0.1:PORT`
    /// (or `https://`).
    public static let listeningPrefix = "uplink serve: listening on "

    private let child: SpawnedProcess
    public var pid: Int32 { child.pid }
    /// The port from the listening line.
    public let port: Int
    /// `http` or `https`, from the listening line.
    public let scheme: String
    public let stdoutURL: URL
    public let stderrURL: URL

    /// Runs `uplink serve --data DIR --port 0 <arguments>` and waits (at most
    /// `startupTimeout` seconds) for its listening line. `environment` is added to this
    /// process's environment.
    public convenience init(arguments: [String], environment: [String: String] = [:], dataDirectory: URL, startupTimeout: Double = 30) throws {
        try self.init(
            executable: UplinkExecutable.url,
            arguments: ["serve", "--data", dataDirectory.path, "--port", "0"] + arguments,
            environment: environment, dataDirectory: dataDirectory, startupTimeout: startupTimeout)
    }

    /// Runs `executable` with exactly `arguments` (for a stand-in server) and waits for the
    /// listening line; output files go next to `dataDirectory`.
    public init(executable: URL, arguments: [String], environment: [String: String] = [:], dataDirectory: URL, startupTimeout: Double = 30) throws {
        let parent = dataDirectory.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        let stem = "\(dataDirectory.lastPathComponent).serve-\(UUID().uuidString.prefix(8))"
        stdoutURL = parent.appendingPathComponent("\(stem).stdout")
        stderrURL = parent.appendingPathComponent("\(stem).stderr")
        child = try SpawnedProcess(
            executable: executable.path, arguments: arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
            stdout: stdoutURL.path, stderr: stderrURL.path)

        let deadline = Deadline(seconds: startupTimeout)
        var found: (scheme: String, port: Int)?
        while true {
            found = Self.listeningAddress(in: Self.read(stdoutURL))
            if found != nil { break }
            if let status = child.exitStatus() {
                throw ServerProcessError.exitedBeforeListening(status: status, stderr: Self.read(stderrURL))
            }
            if deadline.hasPassed {
                child.kill9()
                throw ServerProcessError.noListeningLine(seconds: startupTimeout, stdout: Self.read(stdoutURL), stderr: Self.read(stderrURL))
            }
            usleep(10_000)
        }
        scheme = found!.scheme
        port = found!.port
    }

    deinit {
        child.kill9()
    }

    /// The scheme and port of the first complete listening line in `output`.
    static func listeningAddress(in output: String) -> (scheme: String, port: Int)? {
        for line in output.split(separator: "\n", omittingEmptySubsequences: false).dropLast() where line.hasPrefix(listeningPrefix) {
            let url = line.dropFirst(listeningPrefix.count).trimmingCharacters(in: .whitespaces)
            for scheme in ["http", "https"] where url.hasPrefix("\(scheme)://127.0.0.1:") {
                if let port = Int(url.dropFirst("\(scheme)://127.0.0.1:".count)), (1...65535).contains(port) { return (scheme, port) }
            }
        }
        return nil
    }

    public var isRunning: Bool { child.exitStatus() == nil }

    /// Kills the server with SIGKILL (as a crash would) and waits (at most 5 s) until it is gone.
    public func kill9() {
        child.kill9()
    }

    /// Sends SIGTERM and waits at most `timeout` seconds for a graceful exit; if the server is
    /// still running then, kills it. Returns the shell-style exit status: the exit code, or
    /// 128 + the signal (137 after the SIGKILL).
    @discardableResult public func terminate(timeout: Double = 15) -> Int32 {
        child.signal(SIGTERM)
        if let status = waitForExit(timeout: timeout) { return status }
        child.kill9()
        return waitForExit(timeout: 5) ?? -1
    }

    /// The shell-style exit status once the server has exited, nil if it still runs after
    /// `timeout` seconds.
    public func waitForExit(timeout: Double) -> Int32? {
        child.waitForExit(deadline: Deadline(seconds: timeout))
    }

    public var stdoutText: String { Self.read(stdoutURL) }
    public var stderrText: String { Self.read(stderrURL) }

    /// Peak resident set size (VmHWM in /proc/PID/status), in KiB, while the server runs.
    public func rssPeakKiB() -> Int? { statusField("VmHWM") }

    /// Current resident set size (VmRSS), in KiB, while the server runs.
    public var currentRSSKiB: Int? { statusField("VmRSS") }

    private func statusField(_ name: String) -> Int? {
        guard isRunning, let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("\(name):") {
            return Int(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        }
        return nil
    }

    private static func read(_ url: URL) -> String {
        (try? Data(contentsOf: url)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}

/// A child started with `posix_spawn` and reaped by us. Unlike Foundation's `Process`, the
/// child starts with an empty signal mask and default SIGTERM/SIGINT/SIGHUP/SIGPIPE handling
/// (a test runner's threads block signals, and a blocked SIGTERM would never reach the
/// server's graceful shutdown), and without the test process's other file descriptors (a
/// leaked pipe or socket would keep another test's stream open). Since we reap it, its pid
/// cannot be reused while we may still signal it.
final class SpawnedProcess: Sendable {
    let pid: pid_t
    /// The shell-style status once reaped.
    private let status = Locked<Int32?>(nil)

    init(executable: String, arguments: [String], environment: [String: String], stdout: String, stderr: String) throws {
        #if os(Linux)
        var attributes = posix_spawnattr_t()
        var actions = posix_spawn_file_actions_t()
        #else
        var attributes: posix_spawnattr_t? = nil
        var actions: posix_spawn_file_actions_t? = nil
        #endif
        posix_spawnattr_init(&attributes)
        posix_spawn_file_actions_init(&actions)
        defer {
            posix_spawnattr_destroy(&attributes)
            posix_spawn_file_actions_destroy(&actions)
        }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        #if canImport(Darwin)
        flags |= Int32(POSIX_SPAWN_CLOEXEC_DEFAULT)
        #endif
        posix_spawnattr_setflags(&attributes, Int16(flags))
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #if os(Linux)
        // glibc ≥ 2.34 has it, but Swift's Glibc module does not declare it.
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
            _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, 3)
        }
        #endif
        let argv = ([executable] + arguments).map { strdup($0) }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") }
        defer { for p in argv + envp { free(p) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv + [nil], envp + [nil])
        guard rc == 0 else { throw ServerProcessError.launchFailed("\(executable): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    deinit { kill9() }

    /// The shell-style exit status (the code, or 128 + the signal) once the child has exited.
    func exitStatus() -> Int32? {
        status.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            var r: pid_t
            repeat { r = waitpid(pid, &raw, WNOHANG) } while r < 0 && errno == EINTR
            guard r == pid else { return nil }
            let signal = raw & 0x7F
            status = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
            return status
        }
    }

    func waitForExit(deadline: Deadline) -> Int32? {
        while true {
            if let s = exitStatus() { return s }
            if deadline.hasPassed { return nil }
            usleep(2_000)
        }
    }

    /// Sends `signal` unless the child has been reaped.
    func signal(_ signal: Int32) {
        status.withLock { if $0 == nil { _ = kill(pid, signal) } }
    }

    /// SIGKILL, then waits (at most 5 s) to reap it.
    func kill9() {
        signal(SIGKILL)
        _ = waitForExit(deadline: Deadline(seconds: 5))
    }
}

/// Any `uplink` subcommand as a child process in the background (a participant, an upload),
/// output to files, so a test can watch it, kill it and start it again.
public final class ToolProcess: Sendable {
    private let child: SpawnedProcess
    public let stdoutURL: URL
    public let stderrURL: URL
    public var pid: Int32 { child.pid }

    /// Starts `uplink <arguments>`; output goes to `<directory>/<name>.stdout|stderr`.
    public init(_ arguments: [String], in directory: URL, name: String, environment: [String: String] = [:]) throws {
        stdoutURL = directory.appendingPathComponent("\(name).stdout")
        stderrURL = directory.appendingPathComponent("\(name).stderr")
        child = try SpawnedProcess(executable: UplinkExecutable.url.path, arguments: arguments,
                                   environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                                   stdout: stdoutURL.path, stderr: stderrURL.path)
    }

    public var stdoutText: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    public var stderrText: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
    public func kill9() { child.kill9() }
    /// The shell-style exit status, nil if still running after `timeout` seconds.
    public func waitForExit(timeout: Double) -> Int32? { child.waitForExit(deadline: Deadline(seconds: timeout)) }
}
