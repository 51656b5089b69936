import Foundation
import UplinkCodec

/// One HTTP request as the client sends it.
public struct TransportRequest: Sendable {
    /// `GET`, `HEAD`, `POST`, `PATCH`, `DELETE`, `OPTIONS`.
    public var method: String
    /// The absolute URL.
    public var url: URL
    /// Header fields in order (names are case-insensitive).
    public var headers: [(name: String, value: String)]
    /// The body; empty for none (`Content-Length: 0` is sent for `POST` and `PATCH`).
    public var body: [UInt8]
    /// The whole exchange must end within this many seconds, or it fails with
    /// ``TransportError/timedOut``.
    public var timeout: Double

    public init(method: String, url: URL, headers: [(name: String, value: String)] = [], body: [UInt8] = [], timeout: Double = 60) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// The status line and header fields of a response.
public struct TransportResponseHead: Sendable {
    /// The status code.
    public var status: Int
    /// Header fields in order.
    public var headers: [(name: String, value: String)]

    public init(status: Int, headers: [(name: String, value: String)]) {
        self.status = status
        self.headers = headers
    }

    /// The first field named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// A response with its whole body.
public struct TransportResponse: Sendable {
    public var head: TransportResponseHead
    public var body: [UInt8]

    public var status: Int { head.status }
    public func header(_ name: String) -> String? { head.header(name) }
}

/// Why an exchange failed without a complete response: what a retry can cure.
public enum TransportError: Error, Sendable, CustomStringConvertible, Equatable {
    /// No connection could be made (refused, unreachable, DNS).
    case connectFailed(String)
    /// The connection broke before the response was complete (reset, closed, cut).
    case connectionLost(String)
    /// The exchange did not finish within its timeout.
    case timedOut(String)
    /// TLS failed (certificate not trusted, handshake error): not retried.
    case tls(String)
    /// The response was not valid HTTP, or a body exceeded the caller's limit: not retried.
    case invalidResponse(String)

    public var description: String {
        switch self {
        case .connectFailed(let s): "cannot connect: \(s)"
        case .connectionLost(let s): "connection lost: \(s)"
        case .timedOut(let s): "timed out: \(s)"
        case .tls(let s): "TLS failed: \(s)"
        case .invalidResponse(let s): "invalid response: \(s)"
        }
    }

    /// Whether retrying the exchange may succeed.
    public var isTransient: Bool {
        switch self {
        case .connectFailed, .connectionLost, .timedOut: true
        case .tls, .invalidResponse: false
        }
    }
}

/// How ``UplinkClient`` talks HTTP: one request, its response head, its body streamed in pieces.
///
/// Two implementations ship: ``AsyncHTTPClientTransport`` (async-http-client, the default on
/// Linux) and ``URLSessionTransport`` (Foundation's `URLSession`, the default on Apple platforms).
/// An app may bring its own (a proxy, a custom TLS stack): everything above this protocol (the
/// resumable upload, the resumed download, retries) is the same.
public protocol UplinkTransport: Sendable {
    /// Sends `request`. `onHead` is called once with the response's status and fields, then
    /// `onBody` with each piece of the body as it arrives; either may throw to stop the exchange
    /// (the error is rethrown). Returns when the body is complete.
    ///
    /// - Throws: ``TransportError`` when the exchange fails; body pieces already delivered stay
    ///   delivered (a cut download keeps what arrived). `CancellationError` when the task is cancelled.
    func send(
        _ request: TransportRequest,
        onHead: (TransportResponseHead) throws -> Void,
        onBody: (UnsafeRawBufferPointer) throws -> Void
    ) async throws

    /// Releases connections and threads. The transport is not used afterwards.
    func shutdown() async
}

extension UplinkTransport {
    /// Sends `request` and collects the response body, refusing one over `maxBody` bytes.
    public func send(_ request: TransportRequest, maxBody: Int = 1 << 20) async throws -> TransportResponse {
        var head: TransportResponseHead?
        var body: [UInt8] = []
        try await send(request, onHead: { head = $0 }, onBody: { piece in
            guard body.count + piece.count <= maxBody else {
                throw TransportError.invalidResponse("the response body exceeds \(maxBody) bytes")
            }
            body.append(contentsOf: piece)
        })
        guard let head else { throw TransportError.invalidResponse("no response head") }
        return TransportResponse(head: head, body: body)
    }
}

/// The transport this platform uses by default: async-http-client on Linux, URLSession elsewhere.
/// `trustedCertificates` (PEM) replaces the system trust store when given.
package func makeDefaultTransport(trustedCertificatesPEM: [UInt8]?) throws -> any UplinkTransport {
    #if canImport(AsyncHTTPClient)
    return try AsyncHTTPClientTransport(trustedCertificatesPEM: trustedCertificatesPEM)
    #else
    return try URLSessionTransport(trustedCertificatesPEM: trustedCertificatesPEM)
    #endif
}
