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
