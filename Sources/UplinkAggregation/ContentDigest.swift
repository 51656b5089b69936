import CUplinkCrypto

/// SHA-256 of a frame, through the system's libcrypto (OpenSSL; SHA extensions where the CPU
/// has them, about 1.2 GB/s here, ten times a portable Swift loop): the aggregator counts
/// byte-identical frames once, and no one can make a different frame look like a copy of
/// another client's without a SHA-256 collision.
enum ContentDigest {
    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { o in
                EVP_Digest(raw.baseAddress, raw.count, o.baseAddress, &length, EVP_sha256(), nil)
            }
        }
        // EVP_Digest fails only on allocation failure inside OpenSSL.
        precondition(ok == 1 && length == 32, "libcrypto SHA-256 failed")
        return out
    }
}

/// HMAC-SHA256 and constant-time comparison through libcrypto, for the coordinator's tokens.
package enum MessageAuthentication {
    /// HMAC-SHA256 of `message` under `key`.
    package static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                out.withUnsafeMutableBufferPointer { o in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count, o.baseAddress, &length)
                }
            }
        }
        // HMAC fails only on allocation failure inside OpenSSL.
        precondition(result != nil && length == 32, "libcrypto HMAC-SHA256 failed")
        return out
    }

    /// Whether `a == b`, in time that depends only on the lengths.
    package static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }

    /// `count` bytes from the system CSPRNG (OpenSSL's RAND_bytes, seeded from getrandom).
    package static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "libcrypto RAND_bytes failed")
        return out
    }
}

extension MessageAuthentication {
    /// SHA-256 of `bytes` (ETags of published models).
    package static func sha256(_ bytes: [UInt8]) -> [UInt8] { ContentDigest.sha256(bytes) }
}
