import Testing
import UplinkCodec
import UplinkTestSupport

/// The rules of `docs/wire-format.md` that a decoder written from the document alone had to
/// guess or find by experiment; each test pins the documented answer (the Python interop
/// decoder checks the same frames in `scripts/interop/check_golden.py`).
@Suite struct WireFormatRulesTests {
    static func code(_ frame: [UInt8], limits: FrameLimits = .default) -> UplinkError.Code? {
        FrameDecoder(limits: limits).errorCode(frame)
    }

    static func encode(_ values: [Float], _ spec: String, round: UInt64 = 0) throws -> [UInt8] {
        let layout = try ModelLayout(name: "w", count: values.count)
        return try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec)).encodeOnce(values, round: round)
    }

    /// `frame` with the stored bytes of section `index` replaced (same length), its CRC in the
    /// section table and the header CRC recomputed.
    static func replacingSection(_ frame: [UInt8], _ index: Int, with bytes: [UInt8]) throws -> [UInt8] {
        let h = try frame.withUnsafeBytes { try FrameReader.readHeader($0) }
        let s = h.sections[index]
        precondition(bytes.count == s.storedLength)
        var out = frame
        out.replaceSubrange(s.offset..<(s.offset + s.storedLength), with: bytes)
        let entry = 12 + h.headerLength - (h.sections.count - index) * 24
        patch(&out, CRC32C.checksum(bytes), at: entry + 4)
        return fixingHeaderCRC(out)
    }

    static func patch<T: FixedWidthInteger>(_ frame: inout [UInt8], _ value: T, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { for i in 0..<$0.count { frame[offset + i] = $0[i] } }
    }

    static func fixingHeaderCRC(_ frame: [UInt8]) -> [UInt8] {
        var out = frame
        let h = Int(frame[8]) | Int(frame[9]) << 8 | Int(frame[10]) << 16 | Int(frame[11]) << 24
        patch(&out, CRC32C.checksum(Array(frame[0..<(12 + h)])), at: 12 + h)
        return out
    }

    static func floats(_ values: [Float]) -> [UInt8] { values.float32LE }

    // MARK: 103 or 105

    /// A descriptor length P that runs past H is a malformed header [105], not a truncation
    /// [103]: H is declared and checksummed, so the fault is inside the header.
    @Test func descriptorRunningPastTheHeaderIs105() throws {
        let frame = try Self.encode([1, 2, 3], "fp32 | stored")
        let p = Int(frame[52]) | Int(frame[53]) << 8
        for declared in [p + 1, p + 24, 0xFFFF] {
            var bad = frame
            Self.patch(&bad, UInt16(declared), at: 52)
            #expect(Self.code(Self.fixingHeaderCRC(bad)) == .malformedHeader, "P = \(declared)")
        }
    }

    /// A tensor table with more entries than fit before H is [105], whatever T says.
    @Test func tensorTableRunningPastTheHeaderIs105() {
        for t: UInt32 in [2, 1000, UInt32.max] {
            // One entry, then H ends (no section table): entry 2 runs past H.
            var b = FrameBuilder(count: 3)
            b.tensorCount = t
            #expect(Self.code(b.build(), limits: FrameLimits(maxTensors: Int(UInt32.max))) == .malformedHeader, "T = \(t)")
            // An entry cut inside its dimensions.
            b.table.removeLast(3)
            #expect(Self.code(b.build(), limits: FrameLimits(maxTensors: Int(UInt32.max))) == .malformedHeader, "T = \(t), cut")
        }
    }

    /// [103] stays for the frame itself ending early: before 12 + H + 4 bytes, or inside a section.
    @Test func aShortFrameIs103() throws {
        let frame = try Self.encode([1, 2, 3], "fp32 | stored")
        #expect(Self.code(Array(frame.dropLast())) == .truncated)
        #expect(Self.code(Array(frame.prefix(20))) == .truncated)
    }

    // MARK: zlib and LZ4 lengths

    static let zeros = [UInt8](repeating: 0, count: 400)

    /// A dense fp32 frame of `n` parameters whose one values section is `stored` (codec `codec`)
    /// declaring raw length 4n.
    static func frame(n: Int, codec: SectionCodec, stored: [UInt8]) -> [UInt8] {
        var b = FrameBuilder(count: n)
        b.descriptor = Pipeline(codec: CodecStage(codec, level: 1)).descriptor
        b.sections = [FrameBuilder.section(codec: codec.rawValue, crc: CRC32C.checksum(stored), raw: UInt64(4 * n), stored: UInt64(stored.count))]
        b.payload = stored
        return b.build()
    }

    @Test func zlibStreamWithoutItsAdlerTrailerIs501() throws {
        let z = try Self.zeros.withUnsafeBytes { try SectionCodec.zlib.compress($0, level: 6)! }
        #expect(Self.code(Self.frame(n: 100, codec: .zlib, stored: z)) == nil)
        // All 400 bytes come out, but the stream does not end: 501 (zlibFailed), not 502.
        #expect(Self.code(Self.frame(n: 100, codec: .zlib, stored: Array(z.dropLast(4)))) == .zlibFailed)
        #expect(Self.code(Self.frame(n: 100, codec: .zlib, stored: Array(z.dropLast(2)))) == .zlibFailed)
        var wrongAdler = z
        wrongAdler[z.count - 1] ^= 1
        #expect(Self.code(Self.frame(n: 100, codec: .zlib, stored: wrongAdler)) == .zlibFailed)
        // A complete stream of the wrong length: 502 (lengthMismatch), shorter or longer.
        #expect(Self.code(Self.frame(n: 101, codec: .zlib, stored: z)) == .lengthMismatch)
        #expect(Self.code(Self.frame(n: 99, codec: .zlib, stored: z)) == .lengthMismatch)
    }

    /// An LZ4 block that decodes to fewer bytes than the raw length is [502] (the length is
    /// checked after decompression: the size given to the decompressor is only a capacity);
    /// one that would write more is corrupt for that capacity [500].
    @Test func lz4LengthIsCheckedAfterDecompression() throws {
        let block = try Self.zeros.withUnsafeBytes { try SectionCodec.lz4.compress($0, level: 0)! }
        #expect(Self.code(Self.frame(n: 100, codec: .lz4, stored: block)) == nil)
        #expect(Self.code(Self.frame(n: 101, codec: .lz4, stored: block)) == .lengthMismatch)
        #expect(Self.code(Self.frame(n: 99, codec: .lz4, stored: block)) == .lz4Failed)
    }

    // MARK: Quantizer values

    /// A bit of 0 decodes to the stored scale unchanged, a bit of 1 to its sign flipped: a
    /// scale of −0.0 gives −0.0 and +0.0 (not +|scale| and −|scale|).
    @Test func signAndTernaryKeepTheScalesSignBit() throws {
        let minusZero = Float(-0.0).bitPattern.littleEndian
        let sign = try Self.replacingSection(
            try Self.encode([1, -1, 2], "sign block=0 | stored"), 0, with: withUnsafeBytes(of: minusZero) { Array($0) })
        #expect(try FrameDecoder().decode(sign).values.map(\.bitPattern) == [0x8000_0000, 0, 0x8000_0000])
        let ternary = try Self.encode([1, 0, -1], "threshold 0.5 | ternary | stored")
        let h = try ternary.withUnsafeBytes { try FrameReader.readHeader($0) }
        let scales = try #require(h.sections.firstIndex { $0.stream == .scales })
        let t = try Self.replacingSection(ternary, scales, with: withUnsafeBytes(of: minusZero) { Array($0) })
        // Entry 1 is not transmitted: +0.0.
        #expect(try FrameDecoder().decode(t).values.map(\.bitPattern) == [0x8000_0000, 0, 0])
    }

    /// Asymmetric int scales and offsets are interleaved per block: scale₀, offset₀, scale₁, …
    @Test func asymmetricScalesAndOffsetsAreInterleavedPerBlock() throws {
        var frame = try Self.encode([0, 1, 2, 3, 10, 20, 30, 40], "int8 block=4 asym | stored")
        frame = try Self.replacingSection(frame, 0, with: Self.floats([1, 100, 2, -50]))
        frame = try Self.replacingSection(frame, 1, with: [0, 1, 2, 3, 0, 1, 2, 3])
        #expect(try FrameDecoder().decode(frame).values == [100, 101, 102, 103, -50, -48, -46, -44])
    }

    /// Any `int` seed is accepted whether rounding is stochastic or not; the encoder writes 0
    /// when it is not.
    @Test func intSeedWithoutStochasticRounding() throws {
        let values: [Float] = [0.5, -1, 0.25]
        let frame = try Self.encode(values, "int8 | stored")
        // The seed is the last 8 bytes of the int stage's 14 parameter bytes.
        let d = Pipeline(quantizer: .int(IntQuantizer(bits: 8))).descriptor
        let seedAt = 12 + 42 + 1 + 2 + 6
        #expect(d[1] == 0x23 && Array(frame[seedAt..<(seedAt + 8)]) == [UInt8](repeating: 0, count: 8))
        var seeded = frame
        Self.patch(&seeded, UInt64(0xDEAD_BEEF_1234), at: seedAt)
        seeded = Self.fixingHeaderCRC(seeded)
        #expect(try FrameDecoder().decode(seeded).values == FrameDecoder().decode(frame).values)
        // The parsed pipeline holds no seed, so it round-trips through its own descriptor.
        let parsed = try FrameDecoder().decode(seeded).header.pipeline
        #expect(try parsed.descriptor.withUnsafeBytes { try Pipeline(descriptor: $0) } == parsed)
        // A seed set through the API without stochastic rounding is not written.
        let api = Pipeline(quantizer: .int(IntQuantizer(bits: 8, stochastic: false, seed: 99)))
        #expect(api.descriptor == Pipeline(quantizer: .int(IntQuantizer(bits: 8))).descriptor)
        #expect(try Pipeline(parsing: api.description).descriptor == api.descriptor)
        #expect(api == Pipeline(quantizer: .int(IntQuantizer(bits: 8))))
    }

    // MARK: Names

    /// Names compare by UTF-8 bytes: NFC "é" and NFD "é" are two tensors of one table.
    @Test func canonicallyEquivalentNamesAreDifferentNames() throws {
        let nfc = "\u{E9}", nfd = "e\u{301}"
        let layout = try ModelLayout([TensorSpec(name: nfc, shape: [1]), TensorSpec(name: nfd, shape: [2])])
        #expect(layout.tensors.count == 2)
        #expect(layout.index(of: nfd) == 1 && layout.index(of: nfc) == 0)
        #expect(TensorSpec(name: nfc, shape: [1]) != TensorSpec(name: nfd, shape: [1]))
        #expect(Set([TensorSpec(name: nfc, shape: [1]), TensorSpec(name: nfd, shape: [1])]).count == 2)
        let frame = try FrameEncoder(layout: layout, pipeline: Pipeline()).encodeOnce([1, 2, 3])
        let decoded = try FrameDecoder().decode(frame)
        #expect(decoded.layout.tensors.map { Array($0.name.utf8) } == [[0xC3, 0xA9], [0x65, 0xCC, 0x81]])
        #expect(decoded.values == [1, 2, 3])
        #expect { try ModelLayout([TensorSpec(name: nfc, shape: [1]), TensorSpec(name: "\u{E9}", shape: [2])]) } throws: {
            ($0 as? UplinkError)?.code == .invalidLayout
        }
    }
}

/// The limits a reader sized for one model applies (`FrameLimits.forModel`, used by `uplink
/// encode` to check its own frame and by the aggregator) leave room for the model's own tensor
/// table: a model of many small tensors used to make frames its own encoder refused [400].
@Suite struct ModelLimitsTests {
    @Test func aFrameWithTheTableOfManySmallTensorsFitsItsModelsLimits() throws {
        let layout = try ModelLayout((0..<(1 << 16)).map { TensorSpec(name: "encoder.layer.\($0).attention.output.bias", shape: []) })
        #expect(layout.tensorTableLength == (1 << 16) * 3 + layout.tensors.reduce(0) { $0 + $1.name.utf8.count })
        let frame = try FrameEncoder(layout: layout, pipeline: Pipeline()).encodeOnce([Float](repeating: 1, count: 1 << 16))
        // Above twice the dense size plus 1 MiB, the old limit, because of the table.
        #expect(frame.count > 2 * 4 * layout.parameterCount + (1 << 20))
        #expect(try FrameDecoder(limits: .forModel(layout)).decode(frame, layout: layout).values.count == 1 << 16)
    }

    /// Small sections cost 24 header bytes each: the frame `--section-bytes` makes must still fit
    /// the model's limits (`uplink encode` decodes its frame with them before writing it), or it
    /// is refused with the limit's code: 1-byte sections make 24 header bytes per value byte.
    @Test func sectionsBeyondTheModelsLimitsAreRefused() throws {
        let layout = try ModelLayout(name: "w", count: 100_000)
        let values = [Float](repeating: 0.5, count: 100_000)
        func code(chunk: Int) throws -> UplinkError.Code? {
            let frame = try FrameEncoder(layout: layout, pipeline: Pipeline(), writer: FrameWriter(chunkLength: chunk)).encodeOnce(values)
            do { _ = try FrameDecoder(limits: .forModel(layout)).decode(frame, layout: layout); return nil } catch { return error.code }
        }
        #expect(try code(chunk: 1) == .frameTooLarge)
        #expect(try code(chunk: 24) == nil)
    }
}
