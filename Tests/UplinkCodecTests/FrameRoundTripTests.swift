import Testing
import UplinkCodec
import UplinkTestSupport

@Suite struct FrameRoundTripTests {
    static let lossless = ["fp32 | stored", "fp32 | lz4", "fp32 | lz4 level=9", "fp32 | zlib", "fp32 | zlib level=1", "fp32 | zlib level=9"]

    static func layout() throws -> ModelLayout {
        try ModelLayout([
            TensorSpec(name: "conv.weight", shape: [8, 3, 3, 3]), TensorSpec(name: "conv.bias", shape: [8]),
            TensorSpec(name: "fc.weight", shape: [10, 216]), TensorSpec(name: "fc.bias", shape: [10]),
            TensorSpec(name: "temperature", shape: []),
        ])
    }

    @Test(arguments: lossless, [1 << 20, 1000, 4])
    func losslessPipelinesGiveBackIdenticalBits(spec: String, sectionBytes: Int) throws {
        let layout = try Self.layout()
        for update in [TestData.heavyTailed(count: layout.parameterCount, seed: 1), TestData.uniform(count: layout.parameterCount, seed: 2)] {
            var encoder = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec), writer: FrameWriter(chunkLength: sectionBytes))
            let frame = try encoder.encode(update, round: 3, sampleCount: 42)
            let decoded = try FrameDecoder().decode(frame)
            #expect(decoded.values.map(\.bitPattern) == update.map(\.bitPattern))
            #expect(decoded.header.round == 3 && decoded.header.sampleCount == 42)
            #expect(decoded.layout == layout)
            #expect(decoded.header.sections.count == (layout.parameterCount * 4 + sectionBytes - 1) / sectionBytes)
        }
    }

    @Test(arguments: ["fp16 | stored", "fp16 | lz4", "fp16 | zlib level=9"])
    func fp16RoundsEachValueToNearestHalf(spec: String) throws {
        let layout = try Self.layout()
        let update = TestData.heavyTailed(count: layout.parameterCount, seed: 3, scale: 3)
        let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec)).encodeOnce(update)
        let decoded = try FrameDecoder().decode(frame).values
        for (x, y) in zip(update, decoded) {
            #expect(y == Float16Bits.toFloat(Float16Bits.fromFloat(x)))
            // Round to nearest: error at most half a binary16 ulp (relative 2^-11), or 2^-25 for subnormals.
            #expect(abs(x - y) <= max(abs(x) * 0x1p-11, 0x1p-25))
        }
    }

    /// Incompressible data stays stored, so a frame is never larger than raw plus its header.
    @Test func incompressibleSectionsAreStored() throws {
        let layout = try ModelLayout(name: "noise", count: 10_000)
        let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "fp32 | lz4"), writer: FrameWriter(chunkLength: 4096))
            .encodeOnce(TestData.uniform(count: 10_000, seed: 9))
        let header = try frame.withUnsafeBytes { try FrameReader.readHeader($0) }
        #expect(header.sections.allSatisfy { $0.codec == .stored })
        #expect(header.sections.allSatisfy { $0.storedLength == $0.rawLength })
        let zeros = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "fp32 | lz4")).encodeOnce([Float](repeating: 0, count: 10_000))
        let zh = try zeros.withUnsafeBytes { try FrameReader.readHeader($0) }
        #expect(zh.sections.allSatisfy { $0.codec == .lz4 && $0.storedLength < $0.rawLength })
    }

    @Test func frameWithoutTableNeedsTheLayout() throws {
        let layout = try Self.layout()
        let update = TestData.heavyTailed(count: layout.parameterCount, seed: 4)
        var encoder = FrameEncoder(layout: layout, pipeline: Pipeline(quantizer: .fp32, codec: .lz4), includeTensorTable: false)
        let frame = try encoder.encode(update)
        let withTable = try FrameEncoder(layout: layout, pipeline: Pipeline(quantizer: .fp32, codec: .lz4)).encodeOnce(update)
        #expect(frame.count < withTable.count)
        #expect { try FrameDecoder().decode(frame) } throws: { ($0 as? UplinkError)?.code == .layoutRequired }
        #expect(try FrameDecoder().decode(frame, layout: layout).values == update)
    }

    @Test func frameForAnotherModelIsRejected() throws {
        let layout = try Self.layout()
        let other = try ModelLayout(name: "w", count: layout.parameterCount)
        let frame = try FrameEncoder(layout: layout, pipeline: Pipeline()).encodeOnce(TestData.uniform(count: layout.parameterCount, seed: 5))
        #expect { try FrameDecoder().decode(frame, layout: other) } throws: { ($0 as? UplinkError)?.code == .fingerprintMismatch }
        let noTable = try FrameEncoder(layout: layout, pipeline: Pipeline(), includeTensorTable: false)
            .encodeOnce(TestData.uniform(count: layout.parameterCount, seed: 5))
        #expect { try FrameDecoder().decode(noTable, layout: other) } throws: { ($0 as? UplinkError)?.code == .fingerprintMismatch }
    }

    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func encoderRejectsNonFiniteValuesNamingTheTensor(bad: Float) throws {
        let layout = try Self.layout()
        var update = TestData.uniform(count: layout.parameterCount, seed: 6)
        update[layout.offsets[2] + 17] = bad
        #expect { try FrameEncoder(layout: layout, pipeline: Pipeline()).encodeOnce(update) } throws: { error in
            guard let e = error as? UplinkError else { return false }
            return e.code == .nonFiniteValue && e.message.contains("fc.weight") && e.message.contains("element 17")
        }
    }

    @Test func encoderRejectsWrongCountAndFp16Overflow() throws {
        let layout = try ModelLayout(name: "w", count: 4)
        #expect { try FrameEncoder(layout: layout, pipeline: Pipeline()).encodeOnce([1, 2, 3]) } throws: { ($0 as? UplinkError)?.code == .shapeMismatch }
        var fp16 = FrameEncoder(layout: layout, pipeline: Pipeline(quantizer: .fp16))
        #expect { try fp16.encode([1, 2, 65520, 4]) } throws: { ($0 as? UplinkError)?.code == .valueOutOfRange }
        #expect(try FrameDecoder().decode(try fp16.encode([1, 2, 65519, -65504])).values == [1, 2, 65504, -65504])
    }

    @Test(arguments: ["fp32 | zlib", "fp16 | lz4"])
    func accumulateEqualsDecodeThenAdd(spec: String) throws {
        let layout = try Self.layout()
        let update = TestData.heavyTailed(count: layout.parameterCount, seed: 7)
        let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec)).encodeOnce(update)
        let start = TestData.uniform(count: layout.parameterCount, seed: 8)
        let decoded = try FrameDecoder().decode(frame).values
        var sum = start
        try frame.withUnsafeBytes { raw in try sum.withUnsafeMutableBufferPointer { _ = try FrameDecoder().accumulate(raw, into: $0, weight: 0.25, layout: layout) } }
        for i in 0..<sum.count { #expect(sum[i] == start[i] + 0.25 * decoded[i]) }
    }

    /// A frame that fails anywhere leaves the destination exactly as it was.
    @Test func failedAccumulateLeavesDestinationUntouched() throws {
        let layout = try ModelLayout(name: "w", count: 5000)
        var frame = try FrameEncoder(layout: layout, pipeline: Pipeline(quantizer: .fp32, codec: .stored), writer: FrameWriter(chunkLength: 4000))
            .encodeOnce(TestData.uniform(count: 5000, seed: 10))
        frame[frame.count - 3] ^= 0x10  // corrupt the last section only: the first one is fine
        let start = TestData.uniform(count: 5000, seed: 11)
        var dest = start
        #expect(throws: UplinkError.self) {
            try frame.withUnsafeBytes { raw in try dest.withUnsafeMutableBufferPointer { try FrameDecoder().accumulate(raw, into: $0, weight: 1, layout: layout) } }
        }
        #expect(dest == start)
    }

    /// NaN smuggled in under valid checksums (a hostile client) is rejected, not accumulated.
    @Test func decoderRejectsNonFiniteValuesUnderValidChecksums() throws {
        var b = FrameBuilder(count: 3)
        let payload = [Float(1), .nan, 3].float32LE
        b.sections = [FrameBuilder.section(crc: CRC32C.checksum(payload), raw: 12, stored: 12)]
        b.payload = payload
        #expect { try FrameDecoder().decode(b.build()) } throws: { ($0 as? UplinkError)?.code == .nonFiniteValue }
    }
}
