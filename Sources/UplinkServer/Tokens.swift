import Foundation
import UplinkAggregation
import UplinkCodec

/// Bearer tokens: JSON Web Tokens (RFC 7519) signed with HMAC-SHA256 (`alg: HS256`), carrying
/// the client id (`sub`), the expiry (`exp`) and the issue time (`iat`), in seconds since 1970.
/// Any JWT library verifies them with the same secret (PyJWT: `jwt.decode(t, key,
/// algorithms=["HS256"])`).
public struct TokenAuthority: Sendable {
    /// The smallest secret accepted: 32 bytes, the HMAC-SHA256 block-strength floor.
    public static let minimumSecretBytes = 32
    private let secret: [UInt8]

    /// An authority for `secret` (at least ``minimumSecretBytes`` bytes).
    public init(secret: [UInt8]) throws(UplinkError) {
        guard secret.count >= Self.minimumSecretBytes else {
            throw UplinkError(.invalidArgument, "the token secret has \(secret.count) bytes; it needs at least \(Self.minimumSecretBytes) (head -c 32 /dev/urandom > secret)")
        }
        self.secret = secret
    }

    /// Reads a secret file (its bytes as they are) of at most 64 KiB.
    public static func readSecret(_ path: String) throws(UplinkError) -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= 65536, let data = FileManager.default.contents(atPath: path) else {
            throw UplinkError(.io, "cannot read the token secret \(path) (a regular file of at most 64 KiB)")
        }
        return [UInt8](data)
    }

    /// A token for `client`, valid `ttl` seconds from `now`.
    public func mint(client: String, ttl: Double, now: Double = Date().timeIntervalSince1970) throws(UplinkError) -> String {
        try ClientID.validate(client)
        guard ttl > 0, ttl.isFinite, ttl <= 10 * 365 * 86400 else { throw UplinkError(.invalidArgument, "the token lifetime must be between 1 second and 10 years") }
        let header = Self.base64url(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let iat = Int64(now.rounded(.down))
        let exp = Int64((now + ttl).rounded(.down))
        let payload: [String: Any] = ["sub": client, "iat": iat, "exp": exp]
        let json = try! JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])
        let signingInput = header + "." + Self.base64url([UInt8](json))
        let signature = MessageAuthentication.hmacSHA256(key: secret, message: Array(signingInput.utf8))
        return signingInput + "." + Self.base64url(signature)
    }

    /// Why a token was refused.
    public enum Refusal: Error, Sendable, Equatable {
        /// Malformed, wrongly signed, or not HS256.
        case invalid(String)
        /// Past its `exp`.
        case expired
    }

    /// The client id of a valid, unexpired `token`. Checks the signature first, in constant
    /// time, before reading any claim; at most 4 KiB of token is looked at.
    public func verify(_ token: String, now: Double = Date().timeIntervalSince1970) -> Result<String, Refusal> {
        guard token.utf8.count <= 4096 else { return .failure(.invalid("token longer than 4096 bytes")) }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(.invalid("not a JWT (three dot-separated parts)")) }
        guard let signature = Self.unbase64url(parts[2]) else { return .failure(.invalid("signature is not base64url")) }
        let expected = MessageAuthentication.hmacSHA256(key: secret, message: Array((parts[0] + "." + parts[1]).utf8))
        guard MessageAuthentication.constantTimeEqual(signature, expected) else { return .failure(.invalid("bad signature")) }
        guard let headerBytes = Self.unbase64url(parts[0]),
              let header = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any],
              header["alg"] as? String == "HS256"
        else { return .failure(.invalid("header must say alg HS256")) }
        guard let payloadBytes = Self.unbase64url(parts[1]),
              let claims = try? JSONSerialization.jsonObject(with: Data(payloadBytes)) as? [String: Any],
              let subject = claims["sub"] as? String, (try? ClientID.validate(subject)) != nil,
              let exp = (claims["exp"] as? NSNumber)?.doubleValue, exp.isFinite
        else { return .failure(.invalid("claims must carry sub (a client id) and exp")) }
        guard now < exp else { return .failure(.expired) }
        return .success(subject)
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: Substring) -> [UInt8]? {
        guard text.utf8.allSatisfy({ $0 == 0x2D || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.utf8.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map { [UInt8]($0) }
    }
}

/// Client ids: 1–128 bytes of letters, digits and `. _ - @ :` (they name files and appear in
/// logs and metrics, so nothing else is allowed in them).
public enum ClientID {
    /// Throws ``UplinkError/Code/invalidArgument`` for an id outside the allowed alphabet or length.
    public static func validate(_ id: String) throws(UplinkError) {
        let bytes = Array(id.utf8)
        guard (1...128).contains(bytes.count), bytes.allSatisfy({ b in
            (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || [0x2E, 0x5F, 0x2D, 0x40, 0x3A].contains(b)
        }) else {
            throw UplinkError(.invalidArgument, "client id \(UplinkError.quoted(id)) must be 1 to 128 characters of letters, digits and . _ - @ :")
        }
    }
}

/// HMAC-SHA256 as lowercase hex (tests check it against RFC 4231).
enum UplinkServerHMAC {
    static func hex(key: [UInt8], message: [UInt8]) -> String {
        MessageAuthentication.hmacSHA256(key: key, message: message).map { String(format: "%02x", $0) }.joined()
    }
}
