import Foundation
import UplinkCodec

/// Where the coordinator is, checked for transport security before anything is sent.
///
/// `https://` is the default: a URL without a scheme (`fl.example.org:8443`) means HTTPS. Plain
/// `http://` is accepted only for a loopback host (`127.0.0.0/8`, `::1`, `localhost`), where no
/// network sees the bearer token, or with `allowInsecureHTTP` (a TLS-terminating proxy on the
/// same host, a lab network), mirroring `uplink serve`'s own loopback default.
public struct ServerEndpoint: Sendable, CustomStringConvertible {
    /// The base URL, without a trailing slash; API paths (`/v1/checkin`) are appended.
    public let base: URL

    /// - Throws: ``UplinkClientError/invalidConfiguration(_:)`` for a URL that is not http(s),
    ///   has no host, has a query or fragment, or is plain HTTP to a non-loopback host without
    ///   `allowInsecureHTTP`.
    public init(_ text: String, allowInsecureHTTP: Bool = false) throws(UplinkClientError) {
        var t = text.trimmingCharacters(in: .whitespaces)
        if !t.contains("://") { t = "https://" + t }
        while t.hasSuffix("/") { t.removeLast() }
        guard let url = URL(string: t), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw .invalidConfiguration("\"\(text)\" is not a server URL (https://host[:port])")
        }
        guard scheme == "https" || scheme == "http" else {
            throw .invalidConfiguration("\"\(text)\": the scheme must be https (or http to loopback), not \(scheme)")
        }
        guard url.query == nil, url.fragment == nil, url.user == nil else {
            throw .invalidConfiguration("\"\(text)\": a server URL has no query, fragment or user")
        }
        if scheme == "http", !allowInsecureHTTP, !Self.isLoopback(host) {
            throw .invalidConfiguration(
                "\"\(text)\" is plain HTTP to \(host), which is not loopback: the bearer token would cross the network in clear; use https:// (or allow insecure HTTP explicitly)")
        }
        base = url
    }

    /// Whether `host` names this machine only.
    static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Whether requests go over TLS.
    public var isHTTPS: Bool { base.scheme?.lowercased() == "https" }

    /// `path` (absolute, `/v1/…`, or a full URL the server returned) resolved against the base.
    /// A `Location` on another origin is refused: uploads are not sent elsewhere.
    func url(_ path: String) throws(UplinkClientError) -> URL {
        if path.hasPrefix("/") {
            guard let u = URL(string: base.absoluteString + path) else { throw .protocolViolation("bad path \(path)") }
            return u
        }
        guard let u = URL(string: path), u.scheme?.lowercased() == base.scheme?.lowercased(),
              u.host?.lowercased() == base.host?.lowercased(), u.port == base.port else {
            throw .protocolViolation("the server named \(path.prefix(200)), which is not on \(base.absoluteString)")
        }
        return u
    }

    public var description: String { base.absoluteString }
}

/// What the client reads from its bearer token without verifying it (only the server can): the
/// subject and the expiry, so an expired token fails before anything is sent.
public struct TokenClaims: Sendable {
    public let subject: String?
    public let expiresAt: Date?

    /// Parses the JWT's payload; a token that is not a JWT gives no claims (the server decides).
    public init(token: String) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Self.base64URL(String(parts[1])),
              let json = (try? JSONSerialization.jsonObject(with: payload)) as? [String: Any] else {
            subject = nil
            expiresAt = nil
            return
        }
        subject = json["sub"] as? String
        expiresAt = (json["exp"] as? NSNumber).map { Date(timeIntervalSince1970: $0.doubleValue) }
    }

    static func base64URL(_ s: String) -> Data? {
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while t.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t)
    }
}
