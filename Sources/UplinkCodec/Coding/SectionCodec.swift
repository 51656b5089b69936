import CUplinkZlib

/// How one section's bytes are stored on the wire: the codec id of the section table.
public enum SectionCodec: UInt8, Hashable, Sendable, CustomStringConvertible {
    /// The raw bytes, as they are.
    case stored = 0
    /// One LZ4 block (the raw block format, no LZ4 frame header).
    case lz4 = 1
    /// A zlib stream (RFC 1950: 2-byte header, deflate data, Adler-32).
    case zlib = 2

    public var description: String {
        switch self {
        case .stored: "stored"
        case .lz4: "lz4"
        case .zlib: "zlib"
        }
    }

    /// Compresses `raw` with this codec at `level`, or returns `nil` when the result would not be
    /// smaller than `raw` (the caller then stores the section raw).
    ///
    /// `level` is ignored for stored; for LZ4 0 means the fast compressor and 1…12 the HC
    /// compressor at that level; for zlib it is 1…9.
    public func compress(_ raw: UnsafeRawBufferPointer, level: Int) throws(UplinkError) -> [UInt8]? {
        guard self != .stored, raw.count > 1 else { return nil }
        return try uninitializedBytes(capacity: raw.count - 1) { (out) throws(UplinkError) in try compress(raw, level: level, into: out) }
    }

    /// Compresses `raw` into `destination` when the result fits in its `destination.count`
    /// bytes, returning the length written, or `nil` when it does not fit (or for stored). With a
    /// destination of `raw.count − 1` bytes this is ``compress(_:level:)`` without its array:
    /// the same bytes. The frame writer compresses every section straight into the frame.
    package func compress(_ raw: UnsafeRawBufferPointer, level: Int, into destination: UnsafeMutableRawBufferPointer) throws(UplinkError) -> Int? {
        guard raw.count > 0, destination.count > 0 else { return nil }
        switch self {
        case .stored:
            return nil
        case .lz4:
            return try LZ4Block.compress(raw, level: level, into: destination)
        case .zlib:
            return try ZlibStream.compress(raw, level: level, into: destination)
        }
    }

    /// Decompresses `stored` into `destination`, which must be exactly the section's raw length;
    /// throws unless the output fills `destination` exactly and every input byte is used.
    public func decompress(
        _ stored: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) throws(UplinkError) {
        switch self {
        case .stored:
            guard stored.count == destination.count else {
                throw UplinkError(.lengthMismatch, "stored section has \(stored.count) bytes, declared \(destination.count)")
            }
            if stored.count > 0 { destination.copyMemory(from: stored) }
        case .lz4:
            try LZ4Block.decompress(stored, into: destination)
        case .zlib:
            try ZlibStream.decompress(stored, into: destination)
        }
    }
}

/// zlib (RFC 1950) compression through the system zlib, one `z_stream` per call.
enum ZlibStream {
    static func compress(_ raw: UnsafeRawBufferPointer, level: Int, into destination: UnsafeMutableRawBufferPointer) throws(UplinkError) -> Int? {
        guard raw.count <= Int(UInt32.max) else {
            throw UplinkError(.compressionFailed, "zlib input of \(raw.count) bytes exceeds 4 GiB")
        }
        guard destination.count > 0 else { return nil }
        // z_stream holds a pointer into its own internal state, so it lives in a stable heap
        // allocation for the whole call (the compress-nio pattern).
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deinitialize(count: 1); stream.deallocate() }
        guard cuplink_deflateInit2(stream, Int32(level), Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY) == Z_OK else {
            throw UplinkError(.compressionFailed, "zlib deflateInit2 failed at level \(level)")
        }
        defer { deflateEnd(stream) }
        let capacity = min(destination.count, Int(UInt32.max))
        stream.pointee.next_in = UnsafeMutablePointer(mutating: raw.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(raw.count)
        stream.pointee.next_out = destination.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(capacity)
        let status = deflate(stream, Z_FINISH)
        // Z_OK or Z_BUF_ERROR here means the output did not fit in the destination.
        guard status == Z_STREAM_END else {
            if status == Z_OK || status == Z_BUF_ERROR { return nil }
            throw UplinkError(.compressionFailed, "zlib deflate failed (status \(status))")
        }
        return min(capacity, Int(stream.pointee.total_out))
    }

    static func decompress(
        _ stored: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) throws(UplinkError) {
        guard stored.count > 0, stored.count <= Int(UInt32.max), destination.count <= Int(UInt32.max) else {
            throw UplinkError(.zlibFailed, "zlib section of \(stored.count) bytes cannot decode to \(destination.count) bytes")
        }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deinitialize(count: 1); stream.deallocate() }
        guard cuplink_inflateInit2(stream, 15) == Z_OK else {
            throw UplinkError(.zlibFailed, "zlib inflateInit2 failed")
        }
        defer { inflateEnd(stream) }
        // A one-byte spare at the end tells "exactly filled" apart from "more output pending".
        var spare: UInt8 = 0
        stream.pointee.next_in = UnsafeMutablePointer(mutating: stored.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(stored.count)
        stream.pointee.next_out = destination.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(destination.count)
        var status = inflate(stream, Z_FINISH)
        if status != Z_STREAM_END, status == Z_BUF_ERROR || status == Z_OK, stream.pointee.avail_out == 0 {
            status = withUnsafeMutablePointer(to: &spare) { p in
                stream.pointee.next_out = p
                stream.pointee.avail_out = 1
                return inflate(stream, Z_FINISH)
            }
            if stream.pointee.avail_out == 0 {
                throw UplinkError(.lengthMismatch, "zlib section decodes to more than the declared \(destination.count) bytes")
            }
        }
        guard status == Z_STREAM_END else {
            let reason = status == Z_DATA_ERROR ? "corrupt data" : status == Z_BUF_ERROR ? "data ends early" : "status \(status)"
            throw UplinkError(.zlibFailed, "zlib data is invalid (\(reason))")
        }
        guard Int(stream.pointee.total_out) == destination.count else {
            throw UplinkError(.lengthMismatch, "zlib section decoded to \(stream.pointee.total_out) bytes, declared \(destination.count)")
        }
        guard stream.pointee.avail_in == 0 else {
            throw UplinkError(.zlibFailed, "zlib section has \(stream.pointee.avail_in) bytes after the end of its stream")
        }
    }
}
