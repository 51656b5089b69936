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
