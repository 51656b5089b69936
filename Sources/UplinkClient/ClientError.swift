import Foundation
import UplinkCodec

/// A refusal from the server: the RFC 9457 problem details of a 4xx (or a final 5xx).
public struct ServerProblem: Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status.
    public var status: Int
    /// The problem type URI (`urn:uplink:problem:round-closed`,
    /// `https://iana.org/assignments/http-problem-types#mismatching-upload-offset`, …); empty
    /// when the server sent no problem body.
    public var type: String
    public var title: String
    public var detail: String
    /// The Uplink error code (`code` member): 9xx round refusals, frame error codes for 422.
    public var code: Int?

    public init(status: Int, type: String, title: String = "", detail: String = "", code: Int? = nil) {
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.code = code
    }

    /// Parses a problem body; a body that is not problem JSON keeps the status with an empty type.
    init(status: Int, body: [UInt8]) {
        self.status = status
        let json = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        type = json?["type"] as? String ?? ""
        title = json?["title"] as? String ?? ""
        detail = json?["detail"] as? String ?? (json == nil ? String(decoding: body.prefix(300), as: UTF8.self) : "")
        code = (json?["code"] as? NSNumber)?.intValue
    }

    /// The part of `type` after `urn:uplink:problem:` or `#`: `round-closed`, `frame-rejected`, …
    public var name: String {
        if let r = type.range(of: "urn:uplink:problem:") { return String(type[r.upperBound...]) }
        if let i = type.lastIndex(of: "#") { return String(type[type.index(after: i)...]) }
        return type
    }

    /// The round is over (closed or abandoned): nothing more of this round's upload will count.
    public var roundIsOver: Bool { name == "round-closed" || code == 905 }

    public var description: String {
        var s = "\(status)"
        if !name.isEmpty { s += " \(name)" }
        if let code { s += " (code \(code))" }
        if !detail.isEmpty { s += ": \(detail)" } else if !title.isEmpty { s += ": \(title)" }
        return s
    }
}

/// Why a client call failed.
public enum UplinkClientError: Error, Sendable, CustomStringConvertible {
    /// The server URL, CA file or an option is not usable (plain HTTP to a non-loopback host
    /// without `allowInsecureHTTP`, a CA file without certificates, …). Nothing was sent.
    case invalidConfiguration(String)
    /// The bearer token's `exp` has passed (read locally from the token): nothing was sent.
    case tokenExpired(client: String?, expiredAt: Date)
    /// The server refused with this problem (a 4xx other than an offset mismatch, which is resumed).
    case refused(ServerProblem)
    /// Retries ran out (count or time) on transport errors or 5xx answers; `last` says the last failure.
    case unreachable(attempts: Int, last: String)
    /// The server broke the protocol (a 201 without `Location`, an offset past the length, a
    /// model whose bytes do not match its ETag, …).
    case protocolViolation(String)
    /// TLS failed (the server's certificate is not trusted): not retried.
    case tls(String)
    /// The state directory or a frame could not be read, written or encoded.
    case local(UplinkError)

    public var description: String {
        switch self {
        case .invalidConfiguration(let s): "invalid configuration: \(s)"
        case .tokenExpired(let client, let at):
            "the token\(client.map { " of \($0)" } ?? "") expired at \(ISO8601DateFormatter().string(from: at)); nothing was sent"
        case .refused(let p): "the server refused: \(p)"
        case .unreachable(let n, let last): "gave up after \(n) attempt\(n == 1 ? "" : "s"): \(last)"
        case .protocolViolation(let s): "the server broke the protocol: \(s)"
        case .tls(let s): "TLS: \(s)"
        case .local(let e): e.description
        }
    }

    /// The problem, for a refusal.
    public var problem: ServerProblem? {
        if case .refused(let p) = self { return p }
        return nil
    }
}
