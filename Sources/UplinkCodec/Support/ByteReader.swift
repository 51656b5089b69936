/// Reads little-endian integers and byte ranges from a buffer, throwing ``UplinkError`` (code
/// ``UplinkError/Code/truncated`` unless the reader was made with another) instead of reading
/// past the end.
///
/// The reader never allocates; `bytes(_:)` returns a slice of the underlying buffer, so a
/// declared length is always checked against what is actually there before anything is copied.
public struct ByteReader {
    @usableFromInline let base: UnsafeRawBufferPointer
    /// The offset of the next byte to read.
    public private(set) var offset: Int
    @usableFromInline let what: String
    @usableFromInline let overrun: UplinkError.Code

    /// A reader over `base`, starting at `offset`; `what` names the structure in error messages,
    /// and `overrun` is the code of the error for reading past the end: ``UplinkError/Code/truncated``
    /// when the input itself ended, another code when `base` is a structure with a declared
    /// length (a frame header's H: running past it is ``UplinkError/Code/malformedHeader``).
    public init(_ base: UnsafeRawBufferPointer, offset: Int = 0, what: String, overrun: UplinkError.Code = .truncated) {
        self.base = base
        self.offset = offset
        self.what = what
        self.overrun = overrun
    }

    /// Bytes left to read.
    public var remaining: Int { base.count - offset }

    /// Throws the reader's overrun error unless `count` more bytes are available.
    public func require(_ count: Int, for field: String) throws(UplinkError) {
        if count < 0 || count > remaining {
            throw UplinkError(
                overrun,
                "\(what) ends early: \(field) needs \(count) bytes at offset \(offset), only \(remaining) remain")
        }
    }

    /// Reads a little-endian integer.
    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(UplinkError) -> T {
        let size = MemoryLayout<T>.size
        try require(size, for: field)
        let v = T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += size
        return v
    }

    /// Reads `count` bytes as a view into the underlying buffer.
    public mutating func bytes(_ count: Int, _ field: String) throws(UplinkError) -> UnsafeRawBufferPointer {
        try require(count, for: field)
        let slice = UnsafeRawBufferPointer(rebasing: base[offset..<(offset + count)])
        offset += count
        return slice
    }
}
