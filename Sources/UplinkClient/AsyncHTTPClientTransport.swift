#if canImport(AsyncHTTPClient)
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// ``UplinkTransport`` over async-http-client (SwiftNIO): the default on Linux.
///
/// HTTP/1.1 with a connection pool, TLS by swift-nio-ssl (BoringSSL) verifying the server
/// against the system trust store or the given certificates, redirects not followed (an upload
/// must not be sent elsewhere), no response decompression. A connection idle for
/// `readTimeout` seconds in the middle of a response is a ``TransportError/timedOut``.
public final class AsyncHTTPClientTransport: UplinkTransport, @unchecked Sendable {
    private let client: HTTPClient

    /// - Parameters:
    ///   - trustedCertificatesPEM: PEM certificates to trust instead of the system store (a
    ///     private CA, a self-signed server); nil for the system store.
    ///   - connectTimeout: seconds to establish a connection (TCP and TLS).
    ///   - readTimeout: seconds a response may go silent.
    /// - Throws: ``UplinkClientError/invalidConfiguration(_:)`` for certificates that do not parse.
    public init(trustedCertificatesPEM: [UInt8]? = nil, connectTimeout: Double = 10, readTimeout: Double = 30) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let pem = trustedCertificatesPEM {
            do {
                let certificates = try NIOSSLCertificate.fromPEMBytes(pem)
                guard !certificates.isEmpty else { throw UplinkClientError.invalidConfiguration("the CA file holds no PEM certificate") }
                tls.trustRoots = .certificates(certificates)
            } catch let e as UplinkClientError {
                throw e
            } catch {
                throw UplinkClientError.invalidConfiguration("the CA file is not PEM certificates: \(error)")
            }
        }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: .milliseconds(Int64(connectTimeout * 1000)), read: .milliseconds(Int64(readTimeout * 1000))),
            decompression: .disabled)
        configuration.httpVersion = .http1Only
        // A failed connection attempt is reported at once: the client's RetryPolicy owns
        // retries (the pool would otherwise retry until the connect timeout, TLS failures too).
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func send(
        _ request: TransportRequest,
        onHead: (TransportResponseHead) throws -> Void,
        onBody: (UnsafeRawBufferPointer) throws -> Void
    ) async throws {
        var r = HTTPClientRequest(url: request.url.absoluteString)
        r.method = HTTPMethod(rawValue: request.method)
        for h in request.headers { r.headers.add(name: h.name, value: h.value) }
        if !request.body.isEmpty || request.method == "POST" || request.method == "PATCH" {
            r.body = .bytes(ByteBuffer(bytes: request.body))
        }
        do {
            let response = try await client.execute(r, timeout: .milliseconds(Int64(request.timeout * 1000)))
            try onHead(TransportResponseHead(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }))
            if request.method == "HEAD" { return }
            for try await piece in response.body {
                try piece.withUnsafeReadableBytes { try onBody($0) }
            }
        } catch let e as TransportError {
            throw e
        } catch let e as UplinkClientError {
            throw e
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw Self.classify(error)
        }
    }

    /// Maps async-http-client's and NIO's errors onto what a retry can or cannot cure.
    static func classify(_ error: any Error) -> TransportError {
        let text = String(describing: error)
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout, .readTimeout, .writeTimeout, .deadlineExceeded:
                return .timedOut(text)
            case .remoteConnectionClosed, .cancelled, .bodyLengthMismatch:
                return .connectionLost(text)
            case .invalidURL, .emptyHost, .redirectLimitReached, .redirectCycleDetected:
                return .invalidResponse(text)
            default:
                return .connectionLost(text)
            }
        }
        if let e = error as? NIOSSLError {
            if case .uncleanShutdown = e { return .connectionLost(text) }
            return .tls(text)
        }
        if error is NIOSSLExtraError || error is BoringSSLError { return .tls(text) }
        if let e = error as? HTTPParserError {
            // The connection ended mid-message: a cut, not a broken server.
            return e == .invalidEOFState ? .connectionLost(text) : .invalidResponse(text)
        }
        if let e = error as? IOError {
            switch e.errnoCode {
            case ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL: return .connectFailed(text)
            default: return .connectionLost(text)
            }
        }
        if error is ChannelError { return .connectionLost(text) }
        return .connectionLost(text)
    }

    public func shutdown() async {
        guard takeShutdown() else { return }
        try? await client.shutdown()
    }

    private let lock = NSLock()
    private var isShutDown = false

    /// True the first time: the caller shuts the client down.
    private func takeShutdown() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if isShutDown { return false }
        isShutDown = true
        return true
    }

    deinit {
        // An app that forgot ``shutdown()``: close in the background instead of the HTTP
        // client's debug-build trap.
        if takeShutdown() { client.shutdown { _ in } }
    }
}
#endif
