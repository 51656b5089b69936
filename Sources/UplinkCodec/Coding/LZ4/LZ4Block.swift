#if canImport(CUplinkLZ4)
import CUplinkLZ4
#endif

/// Which LZ4 implementation compresses and decompresses sections.
///
/// Builds that link liblz4 (Linux, Android, Windows, OpenBSD) use it; Apple platforms, which have
/// no system liblz4, use the Swift codec in this module, which every build compiles. The fast
/// encoders of both give identical bytes; HC levels (`lz4 level=1…12`) give valid but different
/// blocks (see ``LZ4ChainEncoder``). Setting the environment variable `UPLINK_LZ4=swift` makes a
/// liblz4 build use the Swift codec too, so tests and golden frames can run through it on Linux.
package enum LZ4Implementation: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The system liblz4.
    case system
    /// ``LZ4FastEncoder``, ``LZ4ChainEncoder`` and ``LZ4BlockDecoder``.
    case swift

    package var description: String { rawValue }

    /// Whether this build links liblz4.
    package static var systemAvailable: Bool {
        #if canImport(CUplinkLZ4)
        true
        #else
        false
        #endif
    }

    /// The implementations this build can use.
    package static var available: [LZ4Implementation] { systemAvailable ? [.system, .swift] : [.swift] }

    /// The implementation sections use, decided once per process from `UPLINK_LZ4`: `swift` picks
    /// the Swift codec, `system` (or unset, or empty) liblz4 where it is linked; the value's case
    /// is ignored. Another value is reported once on standard error and the default is used.
    package static let active: LZ4Implementation = {
        let fallback: LZ4Implementation = systemAvailable ? .system : .swift
        guard let raw = ProcessEnvironment.value("UPLINK_LZ4") else { return fallback }
        let value = raw.lowercased()
        switch value {
        case "": return fallback
        case "swift": return .swift
        case "system": return fallback
        default:
            ProcessEnvironment.writeStandardError("uplink: UPLINK_LZ4=\(value) is neither swift nor system; using \(fallback)\n")
            return fallback
        }
    }()
}

/// One LZ4 block per section (the raw block format, no LZ4 frame header), through liblz4 or the
/// Swift codec (``LZ4Implementation``).
package enum LZ4Block {
    /// The largest input one LZ4 block can hold (LZ4_MAX_INPUT_SIZE).
    package static let maxInput = LZ4FastEncoder.maxInput

    /// Compresses `raw` into `destination` if the block fits in its `destination.count` bytes:
    /// the length written, else `nil` (the encoders' 0).
    package static func compress(
        _ raw: UnsafeRawBufferPointer, level: Int, into destination: UnsafeMutableRawBufferPointer,
        using implementation: LZ4Implementation = .active
    ) throws(UplinkError) -> Int? {
        guard raw.count <= maxInput else {
            throw UplinkError(.compressionFailed, "LZ4 block input of \(raw.count) bytes exceeds \(maxInput)")
        }
        return compressBlock(raw, into: destination, level: level, using: implementation)
    }

    /// The block for `raw` if it fits in `capacity` bytes, else `nil` (the encoders' 0); callers
    /// check `raw.count ≤ maxInput`.
    package static func compressBlock(
        _ raw: UnsafeRawBufferPointer, capacity: Int, level: Int, using implementation: LZ4Implementation = .active
    ) -> [UInt8]? {
        // Uninitialized: the encoder writes what it returns, and a zeroing pass over a
        // section-sized buffer was a tenth of an fp16 encode.
        uninitializedBytes(capacity: capacity) { compressBlock(raw, into: $0, level: level, using: implementation) }
    }

    /// The block for `raw` written into `dst` if it fits there, its length; else `nil`.
    package static func compressBlock(
        _ raw: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, level: Int, using implementation: LZ4Implementation = .active
    ) -> Int? {
        let capacity = dst.count
        guard capacity > 0, let base = dst.baseAddress else { return nil }
        let written: Int = {
            #if canImport(CUplinkLZ4)
            if implementation == .system {
                let src = raw.baseAddress?.assumingMemoryBound(to: CChar.self)
                let d = base.assumingMemoryBound(to: CChar.self)
                let n = Int32(raw.count), c = Int32(clamping: capacity)
                return Int(level == 0 ? LZ4_compress_default(src, d, n, c) : LZ4_compress_HC(src, d, n, c, Int32(clamping: level)))
            }
            #endif
            if level == 0 { return LZ4FastEncoder.compress(raw, into: dst) }
            return LZ4ChainEncoder.compress(raw, into: dst, level: level)
        }()
        guard written > 0 else { return nil }
        return min(written, capacity)
    }

    /// Decompresses `stored` into `destination`, which it must fill exactly.
    ///
    /// Throws `.lz4Failed` for a block that is not valid LZ4 or does not fit `destination`, and
    /// `.lengthMismatch` for a valid block that decodes to fewer bytes. Neither implementation
    /// reads or writes outside the two buffers, for any input.
    package static func decompress(
        _ stored: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer,
        using implementation: LZ4Implementation = .active
    ) throws(UplinkError) {
        guard stored.count > 0, stored.count <= maxInput, destination.count <= maxInput else {
            throw UplinkError(.lz4Failed, "LZ4 section of \(stored.count) bytes cannot decode to \(destination.count) bytes")
        }
        let n: Int
        #if canImport(CUplinkLZ4)
        if implementation == .system {
            let r = LZ4_decompress_safe(
                stored.baseAddress!.assumingMemoryBound(to: CChar.self),
                destination.baseAddress?.assumingMemoryBound(to: CChar.self),
                Int32(stored.count), Int32(destination.count))
            guard r >= 0 else {
                throw UplinkError(.lz4Failed, "LZ4 data is corrupt (liblz4 error \(r))")
            }
            n = Int(r)
        } else {
            n = try swiftDecode(stored, into: destination)
        }
        #else
        n = try swiftDecode(stored, into: destination)
        #endif
        guard n == destination.count else {
            throw UplinkError(.lengthMismatch, "LZ4 section decoded to \(n) bytes, declared \(destination.count)")
        }
    }

    private static func swiftDecode(
        _ stored: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) throws(UplinkError) -> Int {
        switch LZ4BlockDecoder.decode(stored, into: destination) {
        case .decoded(let n):
            return n
        case .corrupt(let reason, let at):
            throw UplinkError(.lz4Failed, "LZ4 data is corrupt (\(reason) at byte \(at))")
        }
    }
}
