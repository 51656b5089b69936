extension String {
    /// The string whose UTF-8 encoding is exactly `bytes`, or `nil` when `bytes` is not valid
    /// UTF-8 (a truncated or overlong sequence, a surrogate, a byte that never occurs in UTF-8).
    ///
    /// The standard library's `String(validating:as:)` does this from macOS 15 and iOS 18; this
    /// works wherever the package does. Decoding replaces each invalid sequence with U+FFFD
    /// (which is not made of invalid bytes), so the result re-encodes to `bytes` exactly when
    /// nothing was replaced.
    package init?(validatingUTF8Bytes bytes: some Collection<UInt8>) {
        let decoded = String(decoding: bytes, as: UTF8.self)
        guard decoded.utf8.elementsEqual(bytes) else { return nil }
        self = decoded
    }
}
