import Testing
import UplinkCodec
import UplinkTestSupport

/// Frames with valid checksums but hostile contents: each must fail with the right code and
/// without allocating what it declares (a 2^62-byte allocation would crash the test process).
@Suite struct HostileFrameTests {
    static func code(_ frame: [UInt8], limits: FrameLimits = .default) -> UplinkError.Code? {
        FrameDecoder(limits: limits).errorCode(frame)
    }

    static func valid(count: Int = 3) -> FrameBuilder {
        var b = FrameBuilder(count: count)
        let payload = [Float](repeating: 1, count: count).float32LE
        b.sections = [FrameBuilder.section(crc: CRC32C.checksum(payload), raw: UInt64(payload.count), stored: UInt64(payload.count))]
        b.payload = payload
        return b
    }

    @Test func builderMakesAValidFrame() throws {
        #expect(try FrameDecoder().decode(Self.valid().build()).values == [1, 1, 1])
    }

    @Test func declaredLengthsNear2To62() {
        for huge: UInt64 in [1 << 62, (1 << 62) + 12, UInt64.max, UInt64.max - 3, 1 << 27] {
            var b = Self.valid()
            b.sections = [FrameBuilder.section(crc: 0, raw: huge, stored: huge)]
            #expect(Self.code(b.build()) == .sectionTooLarge, "raw \(huge)")
            b.sections = [FrameBuilder.section(codec: 1, crc: 0, raw: 12, stored: huge)]
            #expect(Self.code(b.build()) == .malformedHeader, "stored \(huge)")
        }
    }

    /// A 1-byte LZ4 section may not claim 64 MiB: no codec expands that much, and the claim is
    /// refused before any allocation (found by the fuzzer's author: 901 bytes asked for 2 GiB).
    @Test func expansionBeyondTheCodecsLimitIsRejected() {
        for (codec, ratio) in [(UInt8(1), UInt64(256)), (2, 1032)] {
            var b = Self.valid(count: 1 << 24)
            b.sections = [FrameBuilder.section(codec: codec, crc: 0, raw: ratio * 10 + 1, stored: 10)]
            b.payload = [UInt8](repeating: 0, count: 10)
            #expect(Self.code(b.build()) == .malformedHeader)
            b.sections = [FrameBuilder.section(codec: codec, crc: 0, raw: 1 << 26, stored: 1)]
            b.payload = [0]
            #expect(Self.code(b.build()) == .malformedHeader)
        }
    }

    /// Checksums are verified before any stream is allocated or decompressed.
    @Test func corruptedSectionsFailBeforeDecompression() {
        var b = Self.valid(count: 1 << 20)
        b.sections = [FrameBuilder.section(codec: 1, crc: 0xDEAD_BEEF, raw: 4 << 20, stored: 20_000)]
        b.payload = [UInt8](repeating: 0, count: 20_000)
        #expect(Self.code(b.build()) == .sectionChecksum)
    }

    @Test func parameterCountsBeyondFormatAndLimits() {
        for n: UInt64 in [0, 1 << 62, UInt64.max, (1 << 48) + 1] {
            var b = Self.valid()
            b.parameterCount = n
            #expect(Self.code(b.build()) == .malformedHeader, "n \(n)")
        }
        var b = Self.valid()
        b.parameterCount = 1 << 40
        #expect(Self.code(b.build()) == .tooManyParameters)
        #expect(Self.code(Self.valid(count: 3).build(), limits: FrameLimits(maxParameters: 2)) == .tooManyParameters)
    }

    @Test func tensorCountsNear2To31() {
        for t: UInt32 in [1 << 31, UInt32.max, (1 << 31) - 1] {
            var b = Self.valid()
            b.tensorCount = t
            #expect(Self.code(b.build()) == .tooManyTensors, "T \(t)")
            // Within the caller's limit, the table runs into the section table and out of the
            // header long before T entries: a malformed header, not a truncated frame.
            #expect(Self.code(b.build(), limits: FrameLimits(maxTensors: Int(UInt32.max))) == .malformedHeader)
        }
        var zero = Self.valid()
        zero.tensorCount = 0
        #expect(Self.code(zero.build()) == .malformedHeader)
    }

    @Test func sectionCountsBeyondLimitsOrHeader() {
        var b = Self.valid()
        b.sectionCountOverride = UInt32.max
        #expect(Self.code(b.build()) == .tooManySections)
        b.sectionCountOverride = 1000
        #expect(Self.code(b.build()) == .malformedHeader)
    }

    @Test func shapesWhoseProductOverflows() {
        for dims: [UInt64] in [[1 << 32, 1 << 32, 1 << 32], [UInt64.max, 2], [1 << 48 + 1], [1 << 30, 1 << 30]] {
            var b = Self.valid()
            var t = ByteWriter()
            t.write(UInt16(1)); t.write(bytes: Array("w".utf8)); t.write(UInt8(dims.count))
            for d in dims { t.write(d) }
            b.table = t.bytes
            #expect(Self.code(b.build()) == .shapeOverflow, "dims \(dims)")
        }
    }

    @Test func duplicateTensorNamesInTheTable() {
        var b = Self.valid()
        var t = ByteWriter()
        for n in [1, 2] { t.write(UInt16(1)); t.write(bytes: Array("w".utf8)); t.write(UInt8(1)); t.write(UInt64(n)) }
        b.table = t.bytes
        b.tensorCount = 2
        #expect(Self.code(b.build()) == .malformedHeader)
    }

    @Test func headerLengthNear2To32() {
        var frame = Self.valid().build()
        for h: UInt32 in [UInt32.max, 1 << 31, 16 << 20 + 1] {
            withUnsafeBytes(of: h.littleEndian) { for i in 0..<4 { frame[8 + i] = $0[i] } }
            #expect(Self.code(frame) == .headerTooLarge)
        }
        withUnsafeBytes(of: UInt32(1 << 20).littleEndian) { for i in 0..<4 { frame[8 + i] = $0[i] } }
        #expect(Self.code(frame) == .truncated)
        withUnsafeBytes(of: UInt32(10).littleEndian) { for i in 0..<4 { frame[8 + i] = $0[i] } }
        #expect(Self.code(frame) == .malformedHeader)
    }

    @Test func structuralErrorsHaveTheirCodes() {
        var b = Self.valid()
        b.version = 2
        #expect(Self.code(b.build()) == .unsupportedVersion)
        b = Self.valid(); b.flags = 0x8001
        #expect(Self.code(b.build()) == .unknownFlags)
        b = Self.valid(); b.fingerprint = 42
        #expect(Self.code(b.build()) == .fingerprintInconsistent)
        b = Self.valid(); b.descriptor = [2, 0x20, 0, 0x7F, 0]
        #expect(Self.code(b.build()) == .unknownStage)
        b = Self.valid(); b.descriptor = [2, 0x60, 0, 0x20, 0]
        #expect(Self.code(b.build()) == .malformedHeader)
        b = Self.valid(); b.descriptor = [2, 0x20, 0, 0x62, 1, 10]
        #expect(Self.code(b.build()) == .malformedHeader)
        b = Self.valid(); b.descriptor = [1, 0x20, 0]
        #expect(Self.code(b.build()) == .malformedHeader)
        b = Self.valid(); b.payload.append(0)
        #expect(Self.code(b.build()) == .trailingBytes)
        b = Self.valid(); b.sections = [FrameBuilder.section(codec: 9, crc: 0, raw: 12, stored: 12)]
        #expect(Self.code(b.build()) == .unknownCodec)
        b = Self.valid(); b.sections = [FrameBuilder.section(reserved: 1, crc: 0, raw: 12, stored: 12)]
        #expect(Self.code(b.build()) == .reservedNotZero)
        b = Self.valid(); b.sections = [FrameBuilder.section(kind: 2, crc: 0, raw: 12, stored: 12)]
        #expect(Self.code(b.build()) == .unexpectedStream)
        b = Self.valid(); b.sections = []; b.payload = []
        #expect(Self.code(b.build()) == .malformedStream)
        b = Self.valid(); b.sections = [FrameBuilder.section(crc: 0, raw: 8, stored: 8)]; b.payload = Array(b.payload[0..<8])
        #expect(Self.code(b.build()) == .malformedStream)
        b = Self.valid(); b.payload[0] ^= 1
        #expect(Self.code(b.build()) == .sectionChecksum)
        #expect(Self.code([0x50, 0x4B, 3, 4]) == .badMagic)
        #expect(Self.code([0x55, 0x50]) == .truncated)
        #expect(Self.code([]) == .truncated)
    }

    /// LZ4 and zlib payloads that lie about their length, under a valid CRC.
    @Test func codecPayloadsThatLie() throws {
        let twelve = [Float](repeating: 0, count: 3).float32LE
        for codec in [SectionCodec.lz4, .zlib] {
            // A valid stream of 24 zero bytes, declared as 12 raw bytes: too long.
            let long = try [UInt8](repeating: 0, count: 24).withUnsafeBytes { try codec.compress($0, level: 1)! }
            var b = Self.valid()
            b.sections = [FrameBuilder.section(codec: codec.rawValue, crc: CRC32C.checksum(long), raw: 12, stored: UInt64(long.count))]
            b.payload = long
            let c = Self.code(b.build())
            #expect(c == .lengthMismatch || c == .lz4Failed, "\(codec) long: \(String(describing: c))")
            // Garbage bytes.
            let junk: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x13]
            b.sections = [FrameBuilder.section(codec: codec.rawValue, crc: CRC32C.checksum(junk), raw: 12, stored: UInt64(junk.count))]
            b.payload = junk
            #expect(Self.code(b.build()) == (codec == .lz4 ? .lz4Failed : .zlibFailed))
            _ = twelve
        }
    }
}
