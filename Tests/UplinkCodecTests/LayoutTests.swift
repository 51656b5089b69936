import Testing
import UplinkCodec

@Suite struct ModelLayoutTests {
    @Test func countsOffsetsAndParameters() throws {
        let layout = try ModelLayout([
            TensorSpec(name: "a", shape: [2, 3]), TensorSpec(name: "b", shape: []), TensorSpec(name: "c", shape: [0, 5]),
            TensorSpec(name: "d", shape: [4]),
        ])
        #expect(layout.elementCounts == [6, 1, 0, 4])
        #expect(layout.offsets == [0, 6, 7, 7])
        #expect(layout.parameterCount == 11)
    }

    /// The fingerprint is part of the wire contract: pinned here, documented in wire-format.md.
    @Test func fingerprintIsFNVOfCanonicalTable() throws {
        let layout = try ModelLayout([TensorSpec(name: "w", shape: [3])])
        // u32 T=1, u16 len=1, "w", u8 rank=1, u64 3
        let canonical: [UInt8] = [1, 0, 0, 0, 1, 0, 0x77, 1, 3, 0, 0, 0, 0, 0, 0, 0]
        #expect(layout.fingerprint == FNV1a64.hash(canonical))
    }

    @Test func fingerprintDependsOnNamesShapesAndOrder() throws {
        let base = try ModelLayout([TensorSpec(name: "a", shape: [2, 3]), TensorSpec(name: "b", shape: [4])])
        let others = [
            try ModelLayout([TensorSpec(name: "a", shape: [3, 2]), TensorSpec(name: "b", shape: [4])]),
            try ModelLayout([TensorSpec(name: "a", shape: [6]), TensorSpec(name: "b", shape: [4])]),
            try ModelLayout([TensorSpec(name: "b", shape: [4]), TensorSpec(name: "a", shape: [2, 3])]),
            try ModelLayout([TensorSpec(name: "a2", shape: [2, 3]), TensorSpec(name: "b", shape: [4])]),
        ]
        for o in others { #expect(o.fingerprint != base.fingerprint) }
    }

    /// A zero dimension makes an empty tensor, whatever the other dimensions are.
    @Test func zeroDimensionMeansNoElements() throws {
        let layout = try ModelLayout([TensorSpec(name: "e", shape: [1 << 48, 1 << 48, 0]), TensorSpec(name: "w", shape: [2])])
        #expect(layout.elementCounts == [0, 2])
        #expect { try ModelLayout([TensorSpec(name: "e", shape: [(1 << 48) + 1, 0])]) } throws: { ($0 as? UplinkError)?.code == .shapeOverflow }
    }

    @Test func rejectsInvalidLayouts() {
        #expect(throws: UplinkError.self) { try ModelLayout([]) }
        let cases: [([TensorSpec], UplinkError.Code)] = [
            ([TensorSpec(name: "", shape: [1])], .invalidLayout),
            ([TensorSpec(name: "a", shape: [1]), TensorSpec(name: "a", shape: [2])], .invalidLayout),
            ([TensorSpec(name: "a", shape: [-1])], .invalidLayout),
            ([TensorSpec(name: "a", shape: [1 << 40, 1 << 40])], .shapeOverflow),
            ([TensorSpec(name: "a", shape: [Int.max, 2])], .shapeOverflow),
            ([TensorSpec(name: "a", shape: [1 << 47]), TensorSpec(name: "b", shape: [1 << 47]), TensorSpec(name: "c", shape: [1 << 47])], .shapeOverflow),
            ([TensorSpec(name: String(repeating: "x", count: 1025), shape: [1])], .fieldTooLong),
            ([TensorSpec(name: "a", shape: Array(repeating: 1, count: 65))], .fieldTooLong),
        ]
        for (tensors, code) in cases {
            #expect { try ModelLayout(tensors) } throws: { ($0 as? UplinkError)?.code == code }
        }
    }
}

/// Error 300 says why a frame is for another model: only the order, a missing tensor, a shape.
@Suite struct LayoutMismatchHintTests {
    static func message(frame: [TensorSpec], includeTable: Bool = true, layout: [TensorSpec]) throws -> String {
        let frameLayout = try ModelLayout(frame)
        var e = FrameEncoder(layout: frameLayout, pipeline: try Pipeline(parsing: "fp32 | stored"), includeTensorTable: includeTable)
        let bytes = try e.encode([Float](repeating: 0.5, count: frameLayout.parameterCount))
        do {
            _ = try FrameDecoder().decode(bytes, layout: try ModelLayout(layout))
            return "decoded"
        } catch {
            #expect(error.code == .fingerprintMismatch)
            return error.message
        }
    }

    let a = TensorSpec(name: "a.weight", shape: [2, 3]), b = TensorSpec(name: "b.bias", shape: [3])

    @Test func onlyTheOrderDiffers() throws {
        let m = try Self.message(frame: [b, a], layout: [a, b])
        #expect(m.contains("the frame holds the same tensors in another order: tensor 0 is \"b.bias\" in the frame but \"a.weight\" in the layout"), "\(m)")
        #expect(m.contains("sorted by name (UTF-8 bytes)"))
    }

    @Test func aTensorIsMissingOrReshaped() throws {
        let c = TensorSpec(name: "c", shape: [1])
        #expect(try Self.message(frame: [a, c], layout: [a, b]).contains("the layout has no tensor \"c\""))
        #expect(try Self.message(frame: [a], layout: [a, b]).contains("the frame has no tensor \"b.bias\""))
        let m = try Self.message(frame: [a, TensorSpec(name: "b.bias", shape: [1, 3])], layout: [a, b])
        #expect(m.contains("tensor \"b.bias\" has shape [1, 3] in the frame but [3] in the layout"), "\(m)")
    }

    /// NFC and NFD spellings are different names to the fingerprint, and to the hint.
    @Test func namesCompareByBytes() throws {
        let nfc = TensorSpec(name: "caf\u{E9}", shape: [1]), nfd = TensorSpec(name: "cafe\u{301}", shape: [1])
        #expect(try Self.message(frame: [nfc], layout: [nfd]).contains("the layout has no tensor"))
    }

    @Test func withoutATableTheCountsGiveAHint() throws {
        let m = try Self.message(frame: [b, a], includeTable: false, layout: [a, b])
        #expect(m.contains("the same tensor and parameter counts, so it may be the same model with its tensors in another order"), "\(m)")
        let other = try Self.message(frame: [a], includeTable: false, layout: [a, b])
        #expect(other.contains("the frame has 1 tensors and 6 parameters"), "\(other)")
    }
}
