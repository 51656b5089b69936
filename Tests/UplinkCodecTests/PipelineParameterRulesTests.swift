import Testing
import UplinkCodec

/// Parameter rules of `docs/pipeline.md` that were unstated: which numbers are counts, which
/// fractions, and how the local DP stages take theirs.
@Suite struct PipelineParameterRulesTests {
    static func code(_ spec: String) -> UplinkError.Code? {
        do { _ = try Pipeline(parsing: spec); return nil } catch { return error.code }
    }

    /// An amount written with digits only is a count; with a point, an exponent or `%` it is a
    /// fraction: `topk 1` keeps one entry, `topk 1.0` keeps all of them.
    @Test func anIntegerAmountIsACount() throws {
        #expect(try Pipeline(parsing: "topk 1").sparsifier == .topK(.count(1), scope: .global))
        #expect(try Pipeline(parsing: "topk 1.0").sparsifier == .topK(.fraction(1), scope: .global))
        #expect(try Pipeline(parsing: "topk 100%").sparsifier == .topK(.fraction(1), scope: .global))
        #expect(try Pipeline(parsing: "randk 1e-2").sparsifier == .randomK(.fraction(0.01), seed: 0))
        #expect(Self.code("topk 2.0") == .pipelineBadParameter)
        #expect(Self.code("topk 0") == .pipelineBadParameter)
    }

    /// `sample` is a fraction or a percentage, never a count: `sample=1` is the whole update, as
    /// `sample=1.0` is (it used to be refused as "a count").
    @Test func sampleIsAlwaysAFraction() throws {
        for text in ["1", "1.0", "100%"] {
            #expect(try Pipeline(parsing: "topk-sampled 1% sample=\(text)").sparsifier == .sampledTopK(.fraction(0.01), scope: .global, sample: 1), "\(text)")
        }
        #expect(try Pipeline(parsing: "topk-sampled 1% sample=0.5%").sparsifier == .sampledTopK(.fraction(0.01), scope: .global, sample: 0.005))
        for text in ["2", "0", "-0.5", "101%", "nan", "x"] {
            #expect(Self.code("topk-sampled 1% sample=\(text)") == .pipelineBadParameter, "\(text)")
        }
    }

    /// `clip` takes its bound and `noise` its multiplier by position or key; a `noise` seed
    /// that is not an integer is refused (it used to become seed 0).
    @Test func clipAndNoiseParameters() throws {
        let p = try Pipeline(parsing: "clip 1.5 | noise z=0.8 seed=7 | fp32")
        #expect(p.localDP == LocalDP(clip: 1.5, noiseMultiplier: 0.8, seed: 7))
        #expect(try Pipeline(parsing: "clip c=2 | noise 1.1").localDP == LocalDP(clip: 2, noiseMultiplier: 1.1, seed: nil))
        #expect(try Pipeline(parsing: p.description) == p)
        for spec in ["clip 1 | noise z=1 seed=abc", "clip 1 | noise z=1 seed=-1", "clip 0", "clip 1 | noise z=0", "clip", "clip 1 | noise"] {
            #expect(Self.code(spec) == .pipelineBadParameter, "\(spec)")
        }
        #expect(Self.code("noise z=1") == .pipelineBadOrder)
    }
}
