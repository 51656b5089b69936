/// The bytes `body` writes at the start of an uninitialized buffer of `capacity` bytes, given
/// back as the length it wrote (at most `capacity`), or `nil` when `body` returns `nil` or
/// `capacity` is 0. No zeroing pass: only the bytes `body` reports are kept. The array form of
/// the codecs' compress-into-a-buffer calls.
func uninitializedBytes<E: Error>(
    capacity: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> Int?
) throws(E) -> [UInt8]? {
    guard capacity > 0 else { return nil }
    var failure: E?
    var written: Int?
    let out = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
        do throws(E) {
            written = try body(UnsafeMutableRawBufferPointer(buffer)).map { min(max($0, 0), capacity) }
        } catch {
            failure = error
        }
        count = written ?? 0
    }
    if let failure { throw failure }
    return written == nil ? nil : out
}
