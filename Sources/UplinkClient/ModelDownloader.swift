import Foundation
import UplinkCodec
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Figures of one model download.
public struct DownloadStatistics: Sendable, Equatable {
    /// Requests sent.
    public var requests = 0
    /// Failed exchanges retried.
    public var retries = 0
    /// Body bytes received (all attempts).
    public var bytesReceived = 0
    /// Bytes already on disk when this download started (resumed from a cut one), or the whole
    /// model when it was cached.
    public var resumedFrom = 0
    /// Whether the model was already on disk, complete and verified.
    public var cached = false
    public var seconds = 0.0
}

/// Downloads a model into a file, resuming a cut download with `Range` + `If-Range`, and checks
/// the result against its `ETag` (the server's quoted SHA-256 of the frame) and size.
struct ModelDownloader {
    let transport: any UplinkTransport
    let endpoint: ServerEndpoint
    let token: String
    let retry: RetryPolicy
    var requestTimeoutBase = 30.0
    var minimumRate = 4096.0

    /// The model at `path` (`/v1/models/<round>`) into `file`; `etag` and `bytes` as check-in
    /// announced them (nil: taken from the first response). At most `maxBytes` are accepted.
    func download(_ path: String, etag: String?, bytes: Int?, to file: String, maxBytes: Int, deadline: Date?) async throws -> ([UInt8], DownloadStatistics) {
        let started = Date()
        var stats = DownloadStatistics()
        if let bytes, bytes > maxBytes {
            throw UplinkClientError.protocolViolation("the model has \(bytes) bytes, more than the \(maxBytes) this client accepts")
        }
        // A complete, verified copy from an earlier run.
        if let etag, let data = FileManager.default.contents(atPath: file), Self.matches([UInt8](data), etag: etag, bytes: bytes) {
            stats.cached = true
            stats.resumedFrom = data.count
            return ([UInt8](data), stats)
        }
        let part = file + ".part", tagFile = file + ".etag"
        var known = etag
        var total = bytes
        // What is on disk counts only if it belongs to the same entity.
        var have = 0
        if let saved = FileManager.default.contents(atPath: tagFile).map({ String(decoding: $0, as: UTF8.self) }),
           known == nil || saved == known, let size = Self.size(part) {
            have = size
            known = saved
        } else {
            unlink(part)
        }
        stats.resumedFrom = have
        var budget = RetryBudget(policy: retry, deadline: deadline)
        while true {
            try Task.checkCancellation()
            if let total, have >= total { break }
            var headers: [(name: String, value: String)] = [("Authorization", "Bearer \(token)")]
            if have > 0, let known {
                headers.append(("Range", "bytes=\(have)-"))
                headers.append(("If-Range", known))
            }
            let expectedRest = Double(max(0, (total ?? maxBytes) - have))
            let request = TransportRequest(method: "GET", url: try endpoint.url(path), headers: headers,
                                           timeout: requestTimeoutBase + min(expectedRest, 1e9) / minimumRate)
            let writer = PartWriter(path: part)
            var status = 0
            do {
                stats.requests += 1
                try await transport.send(request, onHead: { head in
                    status = head.status
                    guard head.status == 200 || head.status == 206 else { return }
                    let tag = head.header("ETag")
                    if let known, head.status == 206, tag != known {
                        throw UplinkClientError.protocolViolation("a resumed range came with ETag \(tag ?? "none"), not \(known)")
                    }
                    if head.status == 200 {
                        // The whole entity: start over (the server ignored the range or the model changed).
                        have = 0
                        known = tag ?? known
                        try writer.open(truncate: true)
                        if let tag { FileManager.default.createFile(atPath: tagFile, contents: Data(tag.utf8)) } else { unlink(tagFile) }
                        let length = head.header("Content-Length").flatMap(Int.init)
                        if let length {
                            if let announced = bytes, length != announced {
                                throw UplinkClientError.protocolViolation("the model is \(length) bytes, check-in said \(announced)")
                            }
                            total = length
                        }
                    } else {
                        guard let range = head.header("Content-Range"), let (start, size) = Self.contentRange(range), start == have else {
                            throw UplinkClientError.protocolViolation("206 with Content-Range \(head.header("Content-Range") ?? "none") for a range from \(have)")
                        }
                        if let t = total, size != t {
                            throw UplinkClientError.protocolViolation("the model is \(size) bytes, expected \(t)")
                        }
                        total = size
                        try writer.open(truncate: false)
                    }
                    if let t = total, t > maxBytes {
                        throw UplinkClientError.protocolViolation("the model has \(t) bytes, more than the \(maxBytes) this client accepts")
                    }
                }, onBody: { piece in
                    guard status == 200 || status == 206 else { return }
                    guard have + piece.count <= (total ?? maxBytes) else {
                        throw UplinkClientError.protocolViolation("the model body runs past its \(total ?? maxBytes) bytes")
                    }
                    try writer.write(piece)
                    have += piece.count
                    stats.bytesReceived += piece.count
                })
                writer.close()
            } catch let e as TransportError where e.isTransient {
                writer.close()
                try await budget.failed("downloading \(path): \(e)")
                continue
            } catch let e as TransportError {
                writer.close()
                throw ResumableUploader.fatal(e)
            } catch {
                // A check of the response above (a protocol violation), a local write, a cancellation.
                writer.close()
                throw error
            }
            switch status {
            case 200, 206:
                budget.progressed()
                if total == nil { total = have }
                if have < total! { continue }
            case 416:
                // The part is not a prefix of this model (or is complete and the size unknown): start over.
                have = 0
                unlink(part)
                continue
            case 500...599:
                try await budget.failed("downloading \(path): the server answered \(status)")
                continue
            default:
                throw UplinkClientError.refused(ServerProblem(status: status, type: "", detail: "GET \(path) answered \(status)"))
            }
            break
        }
        guard let data = FileManager.default.contents(atPath: part) else {
            throw UplinkClientError.local(UplinkError(.io, "cannot read \(part)"))
        }
        let body = [UInt8](data)
        guard Self.matches(body, etag: known ?? "", bytes: total) else {
            unlink(part)
            unlink(tagFile)
            throw UplinkClientError.protocolViolation("the model's bytes do not match its ETag \(known ?? "")")
        }
        do { try DurableFile.replace(file, with: body) } catch { throw UplinkClientError.local(error) }
        unlink(part)
        unlink(tagFile)
        stats.retries = budget.total
        stats.seconds = Date().timeIntervalSince(started)
        return (body, stats)
    }

    /// The hex digest in a quoted SHA-256 ETag (`"<64 hex>"`), nil for any other ETag.
    static func sha256Tag(_ etag: String) -> String? {
        var t = etag
        if t.hasPrefix("W/") { return nil }
        if t.hasPrefix("\"") && t.hasSuffix("\"") && t.count >= 2 { t = String(t.dropFirst().dropLast()) }
        guard t.utf8.count == 64, t.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return t
    }

    /// Whether `body` has the size and (for a SHA-256 ETag) the digest announced.
    static func matches(_ body: [UInt8], etag: String, bytes: Int?) -> Bool {
        if let bytes, body.count != bytes { return false }
        guard let hex = sha256Tag(etag) else { return bytes != nil }
        return SHA256.hex(SHA256.hash(body)) == hex
    }

    /// `bytes a-b/size` → (a, size).
    static func contentRange(_ text: String) -> (Int, Int)? {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard t.hasPrefix("bytes ") else { return nil }
        let rest = t.dropFirst(6).split(separator: "/")
        guard rest.count == 2, let size = Int(rest[1]) else { return nil }
        let ab = rest[0].split(separator: "-")
        guard ab.count == 2, let a = Int(ab[0]), let b = Int(ab[1]), a <= b, b < size else { return nil }
        return (a, size)
    }

    static func size(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_size)
    }
}

/// Appends body pieces to a part file with POSIX writes.
final class PartWriter: @unchecked Sendable {
    let path: String
    private var fd: Int32 = -1

    init(path: String) { self.path = path }

    func open(truncate: Bool) throws {
        close()
        fd = Glibc_open(path, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND), 0o644)
        guard fd >= 0 else { throw UplinkClientError.local(UplinkError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else { throw UplinkClientError.local(UplinkError(.io, "\(path) is not open")) }
        var done = 0
        while done < bytes.count {
            let n = Glibc_write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw UplinkClientError.local(UplinkError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")) }
            done += n
        }
    }

    func close() {
        if fd >= 0 { _ = Glibc_close(fd) }
        fd = -1
    }

    deinit { close() }
}

#if canImport(Glibc)
private func Glibc_open(_ p: UnsafePointer<CChar>, _ f: Int32, _ m: mode_t) -> Int32 { Glibc.open(p, f, m) }
private func Glibc_write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { Glibc.write(fd, p, n) }
private func Glibc_close(_ fd: Int32) -> Int32 { Glibc.close(fd) }
#else
private func Glibc_open(_ p: UnsafePointer<CChar>, _ f: Int32, _ m: mode_t) -> Int32 { Darwin.open(p, f, m) }
private func Glibc_write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { Darwin.write(fd, p, n) }
private func Glibc_close(_ fd: Int32) -> Int32 { Darwin.close(fd) }
#endif
