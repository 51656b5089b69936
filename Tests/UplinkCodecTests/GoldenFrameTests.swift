import Foundation
import Testing
import UplinkCodec
import UplinkTestSupport

/// The golden frames in fixtures/frames/ pin the wire format: re-encoding the golden input must
/// give the same bytes, and every corruption of them must be caught.
@Suite struct GoldenFrameTests {
    struct Manifest: Decodable {
        struct Frame: Decodable { var pipeline: String; var options: [String]; var bytes: Int; var decoded: String }
        var input: String
        var round: UInt64
        var samples: UInt64
        var frames: [String: Frame]
    }

    static let manifest: Manifest = {
        try! JSONDecoder().decode(Manifest.self, from: Data(contentsOf: Fixtures.url("frames/manifest.json")))
    }()

    static var frameNames: [String] { manifest.frames.keys.sorted() }

    /// The golden input.
    static let input: (layout: ModelLayout, values: [Float]) = try! Fixtures.safetensors("frames/golden-update.safetensors")

    static func encoder(for frame: Manifest.Frame) throws -> FrameEncoder {
        var encoder = FrameEncoder(layout: input.layout, pipeline: try Pipeline(parsing: frame.pipeline))
        var options = frame.options[...]
        while let option = options.popFirst() {
            switch option {
            case "--omit-layout": encoder.includeTensorTable = false
            case "--section-bytes": encoder.writer = FrameWriter(chunkLength: Int(options.popFirst()!)!)
            default: Issue.record("unknown option \(option) in manifest")
            }
        }
        return encoder
    }

    @Test(arguments: frameNames)
    func reencodingGivesIdenticalBytes(name: String) throws {
        let entry = Self.manifest.frames[name]!
        let golden = try Fixtures.bytes("frames/\(name)")
        #expect(golden.count == entry.bytes)
        let frame = try Self.encoder(for: entry).encodeOnce(Self.input.values, round: Self.manifest.round, sampleCount: Self.manifest.samples)
        let codec = try Pipeline(parsing: entry.pipeline).codec
        if LZ4Implementation.active == .swift && codec.codec == .lz4 && codec.level > 0 {
            // The Swift HC encoder is not LZ4_compress_HC (docs/pipeline.md): its frame differs
            // only in the LZ4 bytes, so it must decode to exactly what the golden frame decodes to.
            let mine = try FrameDecoder().decode(frame, layout: Self.input.layout)
            let theirs = try FrameDecoder().decode(golden, layout: Self.input.layout)
            #expect(mine.values.map(\.bitPattern) == theirs.values.map(\.bitPattern))
            #expect(mine.header.pipeline == theirs.header.pipeline)
        } else {
            #expect(frame == golden, "the encoder's output for \(name) changed: a wire-format change needs a new version")
        }
    }

    /// Lossless frames give back the input; every frame decodes to its pinned output.
    @Test(arguments: frameNames)
    func decodesToThePinnedOutput(name: String) throws {
        let entry = Self.manifest.frames[name]!
        let decoded = try FrameDecoder().decode(try Fixtures.bytes("frames/\(name)"), layout: Self.input.layout)
        #expect(decoded.header.pipeline.description == entry.pipeline)
        #expect(decoded.header.round == 7 && decoded.header.sampleCount == 600)
        let pinned = try Fixtures.npyFloats("frames/\(entry.decoded)")
        #expect(decoded.values.map(\.bitPattern) == pinned.map(\.bitPattern))
        if decoded.header.pipeline.isLossless {
            #expect(decoded.values.map(\.bitPattern) == Self.input.values.map(\.bitPattern))
        }
        if decoded.header.pipeline.description == "fp16 | lz4" {
            #expect(decoded.values == Self.input.values.map { Float16Bits.toFloat(Float16Bits.fromFloat($0)) })
        }
    }

    /// CRC-32C catches every single-bit error; structure checks catch the rest. No flip may
    /// yield an update.
    @Test(arguments: frameNames)
    func everySingleBitFlipIsDetected(name: String) throws {
        var frame = try Fixtures.bytes("frames/\(name)")
        let decoder = FrameDecoder()
        var undetected: [Int] = []
        for bit in 0..<(frame.count * 8) {
            frame[bit / 8] ^= 1 << (bit % 8)
            if (try? decoder.decode(frame, layout: Self.input.layout)) != nil { undetected.append(bit) }
            frame[bit / 8] ^= 1 << (bit % 8)
        }
        #expect(undetected.isEmpty, "bits \(undetected.prefix(10)) flipped undetected")
    }

    @Test(arguments: frameNames)
    func everyTruncationIsDetected(name: String) throws {
        let frame = try Fixtures.bytes("frames/\(name)")
        for length in 0..<frame.count {
            #expect(throws: UplinkError.self) { try FrameDecoder().decode(Array(frame[0..<length]), layout: Self.input.layout) }
        }
    }
}
