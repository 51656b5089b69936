import Foundation
import UplinkCodec
import UplinkTestSupport

/// A stand-in for the server side of the resumable upload contract (`docs/server.md`), only to
/// self-test ``ResumableUpload`` and the proxy before the real server exists: in memory, one
/// thread per connection, an append stored only once its whole body has arrived. Its store
/// outlives a listener, so a test can "restart" it on a new port.
final class FakeUploadServer: Sendable {
    struct Upload: Sendable {
        var length: Int
        var bytes: [UInt8] = []
        var accepted = 0
    }

    final class Store: Sendable {
        let uploads = Locked<[String: Upload]>([:])
        let maxAppendSize: Int
        init(maxAppendSize: Int) { self.maxAppendSize = maxAppendSize }
    }

    static let token = "test-token"
    let store: Store
    let listener: LoopbackListener
    private let stopping = Locked(false)
    private let stopped = Locked(false)

    var port: Int { listener.port }

    init(store: Store = Store(maxAppendSize: 8 << 10)) throws {
        self.store = store
        listener = try LoopbackListener()
        let thread = Thread { [self] in
            while !stopping.withLock({ $0 }) {
                guard let connection = try? listener.accept(timeout: 0.05) else { continue }
                let worker = Thread { [self] in serve(connection) }
                worker.start()
            }
            listener.close()
            stopped.withLock { $0 = true }
        }
        thread.start()
    }

    /// Stops accepting (at most 1 s); connections in progress finish on their own.
    func stop() {
        stopping.withLock { $0 = true }
        for _ in 0..<500 where !stopped.withLock({ $0 }) { usleep(2_000) }
    }

    func upload(_ id: String) -> Upload? { store.uploads.withLock { $0[id] } }

    var uploads: [String: Upload] { store.uploads.withLock { $0 } }

    private func serve(_ connection: RawConnection) {
        defer { connection.close() }
        guard let request = try? connection.readRequest(timeout: 5) else { return }
        var interim: [UInt8] = []
        let response = answer(request, interim: &interim)
        try? connection.send(interim + Self.serialize(response), timeout: 5)
    }

    static func serialize(_ r: HTTPResponse) -> [UInt8] {
        var text = "HTTP/1.1 \(r.status) \(r.reason)\r\n"
        for h in r.headers { text += "\(h.name): \(h.value)\r\n" }
        if r.status != 204 && !(100..<200).contains(r.status) { text += "Content-Length: \(r.body.count)\r\n" }
        text += "Connection: close\r\n\r\n"
        return Array(text.utf8) + r.body
    }

    private func problem(_ status: Int, _ type: String, offset: Int? = nil) -> HTTPResponse {
        var headers = [HTTPHeader("Content-Type", "application/problem+json")]
        if let offset { headers.append(HTTPHeader("Upload-Offset", "\(offset)")) }
        return HTTPResponse(status: status, reason: "Problem", headers: headers, body: Array("{\"type\":\"https://uplink.test/problems/\(type)\"}".utf8))
    }

    private var limit: HTTPHeader { HTTPHeader("Upload-Limit", "max-size=1000000, max-append-size=\(store.maxAppendSize), max-age=3600") }

    private func answer(_ request: HTTPTestRequest, interim: inout [UInt8]) -> HTTPResponse {
        guard request.header("Upload-Draft-Interop-Version") == "8" else { return problem(400, "unsupported-interop-version") }
        guard request.header("Authorization") == "Bearer \(Self.token)" else { return problem(401, "unauthorized") }
        let body = request.body ?? []
        let complete = request.header("Upload-Complete").flatMap(StructuredField.boolean)
        if request.method == "POST" && request.path == "/v1/rounds/1/updates" {
            guard let length = request.header("Upload-Length").flatMap(Int.init), let complete, body.count <= length else {
                return problem(400, "bad-creation")
            }
            let id = UUID().uuidString.lowercased()
            interim = Self.serialize(HTTPResponse(status: 104, reason: "Upload Resumption Supported", headers: [HTTPHeader("Location", "/v1/uploads/\(id)")]))
            return store.uploads.withLock { uploads in
                uploads[id] = Upload(length: length, bytes: body)
                if complete && body.count == length {
                    uploads[id]!.accepted += 1
                    return HTTPResponse(status: 200, reason: "OK", body: Array("{\"accepted\":true}".utf8))
                }
                return HTTPResponse(status: 201, reason: "Created", headers: [
                    HTTPHeader("Location", "http://127.0.0.1:\(port)/v1/uploads/\(id)"), HTTPHeader("Upload-Offset", "\(body.count)"), limit,
                ])
            }
        }
        guard request.path.hasPrefix("/v1/uploads/") else { return problem(404, "not-found") }
        let id = String(request.path.dropFirst("/v1/uploads/".count))
        return store.uploads.withLock { uploads in
            guard var upload = uploads[id] else { return problem(404, "not-found") }
            switch request.method {
            case "HEAD":
                return HTTPResponse(status: 204, reason: "No Content", headers: [
                    HTTPHeader("Upload-Offset", "\(upload.bytes.count)"),
                    HTTPHeader("Upload-Complete", upload.bytes.count == upload.length ? "?1" : "?0"),
                    HTTPHeader("Upload-Length", "\(upload.length)"), limit, HTTPHeader("Cache-Control", "no-store"),
                ])
            case "PATCH":
                guard request.header("Content-Type") == "application/partial-upload", let complete,
                      let offset = request.header("Upload-Offset").flatMap(Int.init)
                else { return problem(400, "bad-append") }
                guard offset == upload.bytes.count else { return problem(409, "mismatching-upload-offset", offset: upload.bytes.count) }
                guard body.count <= store.maxAppendSize, offset + body.count <= upload.length else { return problem(413, "too-large") }
                upload.bytes += body
                defer { uploads[id] = upload }
                if complete {
                    guard upload.bytes.count == upload.length else { return problem(400, "incomplete") }
                    upload.accepted += 1
                    return HTTPResponse(status: 200, reason: "OK", body: Array("{\"accepted\":true}".utf8))
                }
                return HTTPResponse(status: 204, reason: "No Content", headers: [HTTPHeader("Upload-Offset", "\(upload.bytes.count)")])
            default:
                return problem(405, "method-not-allowed")
            }
        }
    }
}
