import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Security)
import Security
#endif

/// ``UplinkTransport`` over Foundation's `URLSession`: the default on Apple platforms, and
/// available on Linux (FoundationNetworking) too, where the tests run it against the server.
///
/// A data task per request with a delegate that streams the body as it arrives; redirects are
/// not followed. `trustedCertificatesPEM` (a private CA) is honoured on Apple platforms through
/// the server-trust challenge (the certificates become the only anchors); FoundationNetworking
/// on Linux has no such hook, so there it is refused at construction: use
/// ``AsyncHTTPClientTransport``.
public final class URLSessionTransport: NSObject, UplinkTransport, @unchecked Sendable {
    private enum Event: Sendable {
        case head(TransportResponseHead)
        case body(Data)
    }

    private var session: URLSession!
    private let lock = NSLock()
    private var streams: [Int: AsyncThrowingStream<Event, any Error>.Continuation] = [:]
    #if canImport(Security)
    private let anchors: [SecCertificate]?
    #endif

    /// - Throws: ``UplinkClientError/invalidConfiguration(_:)`` for certificates that do not
    ///   parse, or any certificates on a platform without the trust hook (Linux).
    public init(trustedCertificatesPEM: [UInt8]? = nil, connectTimeout: Double = 10) throws {
        #if canImport(Security)
        if let pem = trustedCertificatesPEM {
            let ders = Self.pemBlocks(pem)
            let certificates = ders.compactMap { SecCertificateCreateWithData(nil, Data($0) as CFData) }
            guard !certificates.isEmpty, certificates.count == ders.count else {
                throw UplinkClientError.invalidConfiguration("the CA file holds no usable PEM certificate")
            }
            anchors = certificates
        } else {
            anchors = nil
        }
        #else
        if trustedCertificatesPEM != nil {
            throw UplinkClientError.invalidConfiguration(
                "URLSession on this platform cannot trust a given CA; use AsyncHTTPClientTransport (the Linux default)")
        }
        #endif
        super.init()
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = max(connectTimeout, 30)
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpShouldSetCookies = false
        session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
    }

    /// The DER bytes of each `-----BEGIN CERTIFICATE-----` block.
    static func pemBlocks(_ pem: [UInt8]) -> [[UInt8]] {
        let text = String(decoding: pem, as: UTF8.self)
        var out = [[UInt8]]()
        var rest = Substring(text)
        while let begin = rest.range(of: "-----BEGIN CERTIFICATE-----"), let end = rest.range(of: "-----END CERTIFICATE-----", range: begin.upperBound..<rest.endIndex) {
            let body = rest[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
            if let der = Data(base64Encoded: String(body)) { out.append([UInt8](der)) }
            rest = rest[end.upperBound...]
        }
        return out
    }

    public func send(
        _ request: TransportRequest,
        onHead: (TransportResponseHead) throws -> Void,
        onBody: (UnsafeRawBufferPointer) throws -> Void
    ) async throws {
        var r = URLRequest(url: request.url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: request.timeout)
        r.httpMethod = request.method
        for h in request.headers { r.addValue(h.value, forHTTPHeaderField: h.name) }
        if !request.body.isEmpty || request.method == "POST" || request.method == "PATCH" { r.httpBody = Data(request.body) }
        let (stream, continuation) = AsyncThrowingStream<Event, any Error>.makeStream()
        let task = session.dataTask(with: r)
        locked { streams[task.taskIdentifier] = continuation }
        defer { _ = locked { streams.removeValue(forKey: task.taskIdentifier) } }
        try await withTaskCancellationHandler {
            task.resume()
            do {
                for try await event in stream {
                    switch event {
                    case .head(let head): try onHead(head)
                    case .body(let data): try data.withUnsafeBytes { try onBody($0) }
                    }
                }
            } catch {
                task.cancel()
                throw error
            }
        } onCancel: {
            task.cancel()
        }
        try Task.checkCancellation()
    }

    public func shutdown() async {
        session.invalidateAndCancel()
    }

    private func stream(_ task: URLSessionTask) -> AsyncThrowingStream<Event, any Error>.Continuation? {
        locked { streams[task.taskIdentifier] }
    }

    /// `NSLocking.withLock` needs macOS 14 / iOS 17; this module's floor is lower.
    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    static func classify(_ error: any Error) -> any Error {
        guard let e = error as? URLError else { return TransportError.connectionLost(String(describing: error)) }
        let text = "\(e.code.rawValue) \(e.localizedDescription)"
        switch e.code {
        case .cancelled: return CancellationError()
        case .timedOut: return TransportError.timedOut(text)
        case .cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .notConnectedToInternet: return TransportError.connectFailed(text)
        case .serverCertificateUntrusted, .serverCertificateHasBadDate, .serverCertificateHasUnknownRoot,
             .serverCertificateNotYetValid, .secureConnectionFailed, .clientCertificateRejected, .clientCertificateRequired:
            return TransportError.tls(text)
        case .badServerResponse, .cannotParseResponse: return TransportError.invalidResponse(text)
        default: return TransportError.connectionLost(text)
        }
    }
}

extension URLSessionTransport: URLSessionDataDelegate {
    public func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                           completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        if let http = response as? HTTPURLResponse {
            let headers = http.allHeaderFields.compactMap { k, v -> (name: String, value: String)? in
                guard let k = k as? String else { return nil }
                return (k, "\(v)")
            }
            stream(dataTask)?.yield(.head(TransportResponseHead(status: http.statusCode, headers: headers)))
        }
        completionHandler(.allow)
    }

    public func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        stream(dataTask)?.yield(.body(data))
    }

    public func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        if let error { stream(task)?.finish(throwing: Self.classify(error)) } else { stream(task)?.finish() }
    }

    public func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                           newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)
    }

    #if canImport(Security)
    public func urlSession(_ session: URLSession, didReceive challenge: URLAuthenticationChallenge,
                           completionHandler: @escaping (URLSession.AuthChallengeDisposition, URLCredential?) -> Void) {
        guard let anchors, challenge.protectionSpace.authenticationMethod == NSURLAuthenticationMethodServerTrust,
              let trust = challenge.protectionSpace.serverTrust else {
            completionHandler(.performDefaultHandling, nil)
            return
        }
        SecTrustSetAnchorCertificates(trust, anchors as CFArray)
        SecTrustSetAnchorCertificatesOnly(trust, true)
        var error: CFError?
        if SecTrustEvaluateWithError(trust, &error) {
            completionHandler(.useCredential, URLCredential(trust: trust))
        } else {
            completionHandler(.cancelAuthenticationChallenge, nil)
        }
    }
    #endif
}
