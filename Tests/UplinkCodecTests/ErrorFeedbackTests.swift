import Testing
@testable import UplinkCodec
import UplinkTestSupport

@Suite struct ErrorFeedbackTests {
    static let layout = try! ModelLayout([TensorSpec(name: "a", shape: [50, 40]), TensorSpec(name: "b", shape: [500])])

    /// Σ sent + final residual = Σ inputs: error feedback delays what it drops, never loses it.
    @Test(arguments: ["ef | topk 1% | int8 | lz4", "ef | randk 2% seed=3 | int4 | zlib", "ef | sign block=64 | stored", "ef | topk 0.5% | ternary | stored", "ef | int2 | lz4", "ef | threshold 0.02 | bf16 | stored"])
    func sentPlusResidualEqualsInputs(spec: String) throws {
        var encoder = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: spec))
        let n = Self.layout.parameterCount
        var inputs = [Double](repeating: 0, count: n)
        var sent = [Double](repeating: 0, count: n)
        for round in 0..<100 {
            let u = TestData.heavyTailed(count: n, seed: UInt64(round) + 100)
            for i in 0..<n { inputs[i] += Double(u[i]) }
            let frame = try encoder.encode(u, round: UInt64(round))
            let decoded = try FrameDecoder().decode(frame).values
            for i in 0..<n { sent[i] += Double(decoded[i]) }
        }
        let residual = encoder.errorFeedback!.residual
        var worst = 0.0
        for i in 0..<n { worst = max(worst, abs(sent[i] + Double(residual[i]) - inputs[i])) }
        // Only float32 rounding of the running residual separates the two sides.
        #expect(worst < 1e-4, "max |Σ sent + e − Σ u| = \(worst)")
        #expect(encoder.errorFeedback!.roundsEncoded == 100)
    }

    @Test func decayShrinksTheResidual() throws {
        var withDecay = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "ef decay=0.5 | topk 1% | fp32 | stored"))
        var without = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "ef | topk 1% | fp32 | stored"))
        let u = TestData.heavyTailed(count: Self.layout.parameterCount, seed: 1)
        _ = try withDecay.encode(u)
        _ = try without.encode(u)
        for (a, b) in zip(withDecay.errorFeedback!.residual, without.errorFeedback!.residual) { #expect(a == b * 0.5) }
    }

    @Test func stateSavesAndRestoresExactly() throws {
        let pipeline = try Pipeline(parsing: "ef | topk 1% | int8 | lz4")
        var a = FrameEncoder(layout: Self.layout, pipeline: pipeline)
        for r in 0..<3 { _ = try a.encode(TestData.heavyTailed(count: Self.layout.parameterCount, seed: UInt64(r)), round: UInt64(r)) }
        let blob = a.errorFeedback!.serialized()
        var b = FrameEncoder(layout: Self.layout, pipeline: pipeline)
        try b.restoreState(blob)
        #expect(b.errorFeedback == a.errorFeedback)
        let next = TestData.heavyTailed(count: Self.layout.parameterCount, seed: 9)
        #expect(try a.encode(next, round: 3) == (try b.encode(next, round: 3)))
        // A different lossless codec keeps the state valid.
        var c = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "ef | topk 1% | int8 | zlib"))
        try c.restoreState(blob)
    }

    @Test func stateForAnotherModelOrPipelineIsRejected() throws {
        let pipeline = try Pipeline(parsing: "ef | topk 1% | int8 | lz4")
        let blob = FrameEncoder(layout: Self.layout, pipeline: pipeline).errorFeedback!.serialized()
        var otherModel = FrameEncoder(layout: try ModelLayout(name: "w", count: 2500), pipeline: pipeline)
        #expect { try otherModel.restoreState(blob) } throws: { ($0 as? UplinkError)?.code == .stateMismatch }
        var otherPipeline = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "ef | topk 2% | int8 | lz4"))
        #expect { try otherPipeline.restoreState(blob) } throws: { error in
            let e = error as? UplinkError
            return e?.code == .stateMismatch && e!.message.contains("topk 1%")
        }
        var noEF = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "topk 1% | int8 | lz4"))
        #expect { try noEF.restoreState(blob) } throws: { ($0 as? UplinkError)?.code == .stateMismatch }
    }

    @Test func damagedStatesAreRejected() throws {
        let pipeline = try Pipeline(parsing: "ef | int8")
        let blob = FrameEncoder(layout: Self.layout, pipeline: pipeline).errorFeedback!.serialized()
        var encoder = FrameEncoder(layout: Self.layout, pipeline: pipeline)
        var flipped = blob
        flipped[100] ^= 1
        var version = blob
        version[4] = 9
        for bad in [[], Array(blob.prefix(30)), Array(blob.dropLast()), flipped, version, Array("UPLK".utf8) + blob.dropFirst(4)] {
            #expect { try encoder.restoreState(Array(bad)) } throws: { ($0 as? UplinkError)?.code == .malformedState }
        }
    }

    /// An encode that fails leaves the residual exactly as it was.
    @Test func failedEncodeLeavesStateUnchanged() throws {
        var encoder = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "ef | topk 5% | fp16 | lz4"))
        _ = try encoder.encode(TestData.heavyTailed(count: Self.layout.parameterCount, seed: 1))
        let before = encoder.errorFeedback
        var huge = TestData.heavyTailed(count: Self.layout.parameterCount, seed: 2)
        huge[7] = 70_000
        #expect { try encoder.encode(huge) } throws: { ($0 as? UplinkError)?.code == .valueOutOfRange }
        huge[7] = .nan
        #expect { try encoder.encode(huge) } throws: { ($0 as? UplinkError)?.code == .nonFiniteValue }
        #expect(encoder.errorFeedback == before)
    }
}

/// Issue 11 §10, §12: error-feedback state cannot be made invalid through the public API, and
/// no value read from a state file traps.
@Suite struct ErrorFeedbackStateSafetyTests {
    static let layout = try! ModelLayout(name: "w", count: 100)
    static let pipeline = try! Pipeline(parsing: "ef | topk 10% | int8 | lz4")

    static func withCRC(_ blob: [UInt8]) -> [UInt8] {
        var b = blob
        let crc = CRC32C.checksum(b[0..<(b.count - 4)])
        for i in 0..<4 { b[b.count - 4 + i] = UInt8(truncatingIfNeeded: crc >> UInt32(8 * i)) }
        return b
    }

    /// A state whose round counter is 2^64 − 1 (valid CRC) trapped on the next encode.
    @Test func roundCounterAtTheMaximumIsATypedError() throws {
        var encoder = FrameEncoder(layout: Self.layout, pipeline: Self.pipeline)
        var blob = encoder.errorFeedback!.serialized()
        for i in 24..<32 { blob[i] = 0xFF }  // rounds: after magic, version, reserved, fingerprint, n
        try encoder.restoreState(Self.withCRC(blob))
        #expect(encoder.errorFeedback!.roundsEncoded == .max)
        let before = encoder.errorFeedback
        do { _ = try encoder.encode(TestData.uniform(count: 100, seed: 1)); Issue.record("counted past 2^64 − 1") } catch {
            #expect(error.code == .malformedState)
        }
        #expect(encoder.errorFeedback == before)
    }

    @Test func reservedFieldMustBeZero() throws {
        var blob = FrameEncoder(layout: Self.layout, pipeline: Self.pipeline).errorFeedback!.serialized()
        blob[6] = 1
        do { _ = try ErrorFeedbackState(serialized: Self.withCRC(blob), layout: Self.layout, pipeline: Self.pipeline); Issue.record("accepted") } catch {
            #expect(error.code == .malformedState)
        }
    }

    /// A residual of the wrong size or with NaN cannot be installed (it segfaulted in release
    /// when too long, and made undecodable frames when too short).
    @Test func restoreChecksTheResidual() throws {
        #expect(throws: UplinkError.self) { _ = try ErrorFeedbackState(residual: [Float](repeating: 0, count: 101), layout: Self.layout, pipeline: Self.pipeline) }
        #expect(throws: UplinkError.self) { _ = try ErrorFeedbackState(residual: [Float](repeating: 0, count: 99), layout: Self.layout, pipeline: Self.pipeline) }
        #expect(throws: UplinkError.self) { _ = try ErrorFeedbackState(residual: [.nan] + [Float](repeating: 0, count: 99), layout: Self.layout, pipeline: Self.pipeline) }
        let other = try ErrorFeedbackState(residual: [Float](repeating: 1, count: 50), layout: try ModelLayout(name: "w", count: 50), pipeline: Self.pipeline)
        var encoder = FrameEncoder(layout: Self.layout, pipeline: Self.pipeline)
        #expect(throws: UplinkError.self) { try encoder.restore(other) }
        let sign = try ErrorFeedbackState(residual: [Float](repeating: 1, count: 100), layout: Self.layout, pipeline: try Pipeline(parsing: "ef | sign"))
        #expect(throws: UplinkError.self) { try encoder.restore(sign) }
        let good = try ErrorFeedbackState(residual: [Float](repeating: 0.5, count: 100), layout: Self.layout, pipeline: Self.pipeline)
        try encoder.restore(good)
        #expect(encoder.errorFeedback == good)
        var stateless = FrameEncoder(layout: Self.layout, pipeline: try Pipeline(parsing: "int8"))
        #expect(throws: UplinkError.self) { try stateless.restore(good) }
    }
}
