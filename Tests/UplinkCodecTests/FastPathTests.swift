import Testing
@testable import UplinkCodec
import UplinkTestSupport

/// The vectorized kernels (issue 17) against plain reference implementations: same codes, same
/// residuals, same selections, same refusals.
@Suite struct FastPathTests {
    // MARK: Integer quantization

    /// The quantizer as it was written before the magic-constant round: round to nearest even,
    /// then clamp, code by code. Returns the codes and the errors `x − decoded`.
    static func reference(_ x: [Float], _ q: IntQuantizer) -> (codes: [Int], errors: [Float]) {
        var codes: [Int] = [], errors: [Float] = []
        var start = 0
        while start < x.count {
            let end = min(x.count, start + q.block)
            let block = x[start..<end]
            let lo: Float = q.symmetric ? 0 : block.min()!
            let hi: Float = block.max()!
            let scale: Float = q.symmetric ? block.map(abs).max()! / Float(q.qmax) : (hi - lo) / Float(q.maxCode)
            let inv: Float = scale > 0 ? 1 / scale : 0
            let offset: Float = q.symmetric ? Float(q.qmax) : 0
            for v in block {
                var t = inv.isFinite ? (v - lo) * inv + offset : (v - lo) / scale + offset
                t = min(max(t.rounded(.toNearestOrEven), 0), Float(q.maxCode))
                codes.append(Int(t))
                errors.append(v - (q.symmetric ? (t - offset) * scale : lo + t * scale))
            }
            start = end
        }
        return (codes, errors)
    }

    static func codes(_ frame: [UInt8], bits: Int, count: Int) throws -> [Int] {
        let prepared = try FrameDecoder().prepare(frame)
        return prepared.values.withUnsafeBytes { v in
            (0..<count).map { Int(Quantizer.fp32.code(v, $0, bits: bits)) }
        }
    }

    /// Values at exact half steps (ties), random values, zeros, and a constant block.
    static func awkward(count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var x = TestData.heavyTailed(count: count, seed: seed, zeroFraction: 0.1, scale: 1)
        // Block 0: max |x| = 127 (scale 1 in int8 sym), so k + 0.5 lands exactly on a tie.
        x[0] = 127
        for i in 1..<min(count, 256) { x[i] = Float(Int(rng.below(254)) - 127) + 0.5 }
        for i in 256..<min(count, 512) { x[i] = 0.25 }
        return x
    }

    @Test(arguments: [8, 4, 2], [true, false])
    func nearestCodesAndResidualsMatchTheReference(bits: Int, symmetric: Bool) throws {
        let x = Self.awkward(count: 5000, seed: UInt64(bits))
        let q = IntQuantizer(bits: bits, block: bits == 8 ? 256 : 100, symmetric: symmetric)
        let layout = try ModelLayout(name: "x", count: x.count)
        let spec = "int\(bits) block=\(q.block) \(symmetric ? "sym" : "asym") | stored"
        let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec)).encodeOnce(x)
        let ref = Self.reference(x, q)
        #expect(try Self.codes(frame, bits: bits, count: x.count) == ref.codes)
        // In place (error feedback): the residual is exactly the reference error.
        var ef = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "ef | " + spec))
        let efFrame = try ef.encode(x)
        #expect(try Self.codes(efFrame, bits: bits, count: x.count) == ref.codes)
        #expect(ef.errorFeedback!.residual.map(\.bitPattern) == ref.errors.map(\.bitPattern))
    }

    /// Blocks of magnitudes below about 1e−36: 1/scale overflows to infinity, where 0·∞ was NaN
    /// and the conversion to a code trapped (found while vectorizing). Now a typed, exact path.
    @Test(arguments: ["int8", "int4 asym", "int2", "ef | topk 50% | int8"])
    func tinyMagnitudesQuantizeWithoutTrapping(stage: String) throws {
        var x = [Float](repeating: 0, count: 600)
        for i in stride(from: 0, to: 600, by: 3) { x[i] = Float(i % 7) * 1e-40 - 2e-40 }
        x[5] = 1e-44
        let layout = try ModelLayout(name: "x", count: x.count)
        var encoder = FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: stage + " | lz4"))
        let decoded = try FrameDecoder().decode(try encoder.encode(x)).values
        let scale = x.map(abs).max()!
        for (a, b) in zip(x, decoded) { #expect(b.isFinite && abs(a - b) <= scale) }
        if !stage.contains("topk") {
            let q = try Pipeline(parsing: stage + " | stored").quantizer
            guard case .int(let iq) = q else { Issue.record("not an int quantizer"); return }
            let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: stage + " | stored")).encodeOnce(x)
            #expect(try Self.codes(frame, bits: iq.bits, count: x.count) == Self.reference(x, iq).codes)
        }
    }

    // MARK: Validation without decoding

    static func bytes(_ floats: [Float]) -> [UInt8] { floats.flatMap { f in (0..<4).map { UInt8(truncatingIfNeeded: f.bitPattern >> (8 * $0)) } } }

    static func validate(_ q: Quantizer, scales: [Float], codes: [UInt8], count: Int) throws(UplinkError) {
        let sc = bytes(scales)
        try typed {
            try sc.withUnsafeBytes { s in try codes.withUnsafeBytes { v in try q.validate(scales: s, values: v, count: count) } }
        }
    }

    /// A scale so large that a code times it overflows: refused, at the first such value's
    /// index; the same scale with codes that decode to 0 is a finite update and accepted.
    @Test func overflowingBlocksAreRefusedAtTheirFirstInfiniteValue() throws {
        let sym = Quantizer.int(IntQuantizer(bits: 8, block: 4))
        var codes: [UInt8] = [127, 127, 127, 127, 127, 127, 127, 127]
        try Self.validate(sym, scales: [1, 3e38], codes: codes, count: 8)
        codes[6] = 130  // (130 − 127) · 3e38 overflows
        #expect { try Self.validate(sym, scales: [1, 3e38], codes: codes, count: 8) } throws: {
            let e = $0 as? UplinkError
            return e?.code == .nonFiniteValue && e?.message.contains("transmitted index 6") == true
        }
        let asym = Quantizer.int(IntQuantizer(bits: 8, block: 4, symmetric: false))
        try Self.validate(asym, scales: [1, 0, 1e36, 1], codes: [0, 255, 3, 3, 255, 0, 0, 0], count: 8)
        #expect { try Self.validate(asym, scales: [1, 0, 2e36, 1e38], codes: [0, 255, 3, 3, 0, 0, 255, 0], count: 8) } throws: {
            let e = $0 as? UplinkError
            return e?.code == .nonFiniteValue && e?.message.contains("transmitted index 6") == true
        }
        // The all-ones code of a symmetric quantizer is refused wherever it is.
        #expect { try Self.validate(sym, scales: [1, 1], codes: [127, 127, 127, 127, 127, 127, 127, 255], count: 8) } throws: {
            ($0 as? UplinkError)?.code == .malformedStream
        }
        let int4 = Quantizer.int(IntQuantizer(bits: 4, block: 4))
        #expect { try Self.validate(int4, scales: [1, 1], codes: [0x77, 0x77, 0x77, 0xF7], count: 8) } throws: {
            ($0 as? UplinkError)?.message.contains("at 7") == true
        }
    }

    // MARK: Error feedback's add-and-select

    static func oracle(_ x: [Float], k: Int) -> [Int] {
        Array(x.indices.sorted { (abs(x[$0]), -$0) > (abs(x[$1]), -$1) }.prefix(k)).sorted()
    }

    static func check(acc start: [Float], update: [Float], k: Int, threads: Int, _ note: String) {
        var acc = start
        let result = update.withUnsafeBufferPointer { u in
            acc.withUnsafeMutableBufferPointer { TopKSelection.accumulateAndSelect(u, into: $0, k: k, threads: threads) }
        }
        let sum = zip(start, update).map { $0 + $1 }
        #expect(acc.map(\.bitPattern) == sum.map(\.bitPattern), "\(note): the sum")
        let expected = Self.oracle(sum, k: min(k, sum.count))
        #expect(result.indices == expected, "\(note): the selection")
        #expect(result.values.map(\.bitPattern) == expected.map { sum[$0].bitPattern }, "\(note): the values")
        let trueMax = sum.map { $0.bitPattern & 0x7FFF_FFFF }.max()!
        #expect(result.max == trueMax, "\(note): the largest magnitude")
    }

    @Test(arguments: [1, 2])
    func addAndSelectMatchesTheOracle(threads: Int) {
        let n = 200_003  // not a multiple of 16: the scalar tail runs
        let start = TestData.heavyTailed(count: n, seed: 21)
        let update = TestData.heavyTailed(count: n, seed: 22)
        for k in [1, 17, 2000, 20_000, 100_000] {
            Self.check(acc: start, update: update, k: k, threads: threads, "k \(k)")
        }
        // k ≥ n and k = 0.
        Self.check(acc: Array(start[0..<100]), update: Array(update[0..<100]), k: 100, threads: threads, "k = n")
        var acc = start
        let none = update.withUnsafeBufferPointer { u in acc.withUnsafeMutableBufferPointer { TopKSelection.accumulateAndSelect(u, into: $0, k: 0) } }
        #expect(none.indices.isEmpty && none.values.isEmpty)
    }

    /// The AVX2 add-and-select pass (where the CPU has it) against the Swift one: the same
    /// residual, candidates, count, overflow and largest key, over ranges that are not multiples
    /// of 16 or 32, thresholds from "none" to "all" and caps that overflow mid-range.
    @Test func avx2AddAndScanMatchesTheSwiftPass() {
        #if arch(x86_64)
        guard TopKSelection.nativeScanAvailable else { return }
        let n = 70_001
        let start = TestData.heavyTailed(count: n, seed: 31)
        var update = TestData.heavyTailed(count: n, seed: 32)
        update[5] = .infinity; update[777] = -.nan; update[n - 1] = -0.0
        let keys = zip(start, update).map { ($0 + $1).bitPattern & 0x7FFF_FFFF }.sorted()
        let thresholds: [UInt32] = [0, 1, keys[n / 2], keys[n - 500], keys[n - 20], keys[n - 1], keys[n - 1] &+ 1, 0x7FFF_FFFF]
        let ranges = [0..<n, 3..<n, 0..<15, 1..<17, 16..<48, 5..<70, 1000..<1031, n - 100..<n, 10..<10]
        for t in thresholds {
            for range in ranges {
                // Besides fixed caps, the count after the first, second and third groups of 16:
                // the count reaches cap exactly at a group boundary (then one more group is kept).
                var all = start
                let every = update.withUnsafeBufferPointer { u in
                    all.withUnsafeMutableBufferPointer { TopKSelection.addAndScanPortable(u.baseAddress!, $0.baseAddress!, range, threshold: t, cap: 2 * n) }
                }
                let atGroups = [16, 32, 48].map { g in every.indices.count { $0 < range.lowerBound + g } }
                for cap in [0, 7, 100, 2 * n] + atGroups {
                    var a = start, b = start
                    let (x, y) = update.withUnsafeBufferPointer { u in
                        (a.withUnsafeMutableBufferPointer { TopKSelection.addAndScanPortable(u.baseAddress!, $0.baseAddress!, range, threshold: t, cap: cap) },
                         b.withUnsafeMutableBufferPointer { TopKSelection.addAndScanAVX2(u.baseAddress!, $0.baseAddress!, range, threshold: t, cap: cap) })
                    }
                    let note = "t \(t), range \(range), cap \(cap)"
                    #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(note): residual")
                    #expect(x.indices == y.indices && x.bits == y.bits, "\(note): candidates \(x.indices.count) / \(y.indices.count)")
                    #expect(x.overflow == y.overflow, "\(note): overflow")
                    if !x.overflow { #expect(x.max == y.max, "\(note): largest") }
                }
            }
        }
        #endif
    }

    /// Inputs that defeat the sampled threshold both ways, so the exact fallback runs.
    @Test(arguments: [1, 2])
    func missedThresholdsFallBackToTheExactSelection(threads: Int) {
        let n = 1 << 18
        let zero = [Float](repeating: 0, count: n)
        // Too many candidates: a few levels, so every value ties with the threshold.
        var rng = SplitMix64(seed: 5)
        let levels: [Float] = [0, 0.5, -0.5, 1]
        let tied = (0..<n).map { _ in levels[Int(rng.below(4))] }
        Self.check(acc: zero, update: tied, k: 3000, threads: threads, "ties")
        // Too few: large values only where the sample looks (the first 32 of each of its 512
        // runs), small ones everywhere else, and k far above what the sample saw.
        var skewed = [Float](repeating: 1e-3, count: n)
        let blocks = 512, run = 32
        for b in 0..<blocks {
            let s = b * (n - run) / (blocks - 1)
            for j in 0..<run { skewed[s + j] = Float(1 + j) }
        }
        for i in stride(from: 7, to: n, by: 13) { skewed[i] = 2e-3 }
        Self.check(acc: zero, update: skewed, k: 30_000, threads: threads, "sample-only peaks")
        // Everything identical.
        Self.check(acc: zero, update: [Float](repeating: -2, count: n), k: 777, threads: threads, "constant")
    }

    // MARK: binary16

    /// The branchless software conversion equals the branchy one, and the CPU's F16C (when
    /// present) equals both, over every binary16 value, every rounding tie between neighbours
    /// and a sweep of all float bit patterns.
    @Test func halfConversionsAgreeEverywhere() {
        var probes: [Float] = []
        for h in 0..<65_536 {
            let f = Float16Bits.toFloat(UInt16(h))
            guard f.isFinite else { continue }
            probes.append(f)
            let next = Float16Bits.toFloat(UInt16(h) &+ 1)
            if next.isFinite, (h & 0x7FFF) != 0x7BFF {
                let mid = Float((Double(f) + Double(next)) / 2)  // exact: a tie
                probes += [mid, mid.nextUp, mid.nextDown]
            }
        }
        for bits in stride(from: UInt32(0), to: 0x7F80_0000, by: 4093) {
            probes += [Float(bitPattern: bits), -Float(bitPattern: bits)]
        }
        probes += [65504, 65519.99, 65520, 1e9, -65520, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        for x in probes {
            #expect(Float16Bits.fromFloatBranchless(x) == Float16Bits.fromFloat(x), "\(x)")
        }
        // The software bulk loop (what runs without F16C), separate and in place, against
        // the scalar conversion value by value.
        let finite = probes.filter { abs($0) < 65504 }
        var codes = [UInt8](repeating: 0, count: 2 * finite.count), errors = [Float](repeating: 0, count: finite.count)
        var inPlace = finite
        let flagged = finite.withUnsafeBufferPointer { x in
            halfWidthEncode(x.baseAddress!, count: x.count, into: &codes, error: &errors, exponent: 0x7C00,
                            code: Float16Bits.fromFloatBranchless, back: Float16Bits.toFloatBranchless)
        }
        _ = inPlace.withUnsafeMutableBufferPointer { x in
            halfWidthEncode(x.baseAddress!, count: x.count, into: &codes, error: x.baseAddress!, exponent: 0x7C00,
                            code: Float16Bits.fromFloatBranchless, back: Float16Bits.toFloatBranchless)
        }
        #expect(!flagged)
        for (i, x) in finite.enumerated() {
            let h = Float16Bits.fromFloat(x)
            #expect(UInt16(codes[2 * i]) | UInt16(codes[2 * i + 1]) << 8 == h)
            #expect(errors[i].bitPattern == (x - Float16Bits.toFloat(h)).bitPattern && inPlace[i].bitPattern == errors[i].bitPattern)
        }
        let (available, identical) = Float16Bits.hardwareAgrees(probes)
        #expect(identical, "F16C differs from the software conversion")
        // Every code decodes identically through the bulk path (hardware or software).
        let all = (0..<65_536).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        var out = [Float](repeating: 0, count: 65_536)
        all.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { Float16Bits.decode(src.baseAddress!, count: 65_536, into: $0.baseAddress!) } }
        for h in 0..<65_536 where !Float16Bits.toFloat(UInt16(h)).isNaN {
            #expect(out[h].bitPattern == Float16Bits.toFloat(UInt16(h)).bitPattern)
        }
        _ = available
    }

    // MARK: Non-finite values found by the fast checks

    /// A NaN or infinity at the start, inside a word, or in the tail of a float stream: refused
    /// with its transmitted index (the exponent test runs eight bytes at a time).
    @Test(arguments: ["fp32", "fp16", "bf16"])
    func nonFiniteFloatCodesAreFoundAtTheirIndex(name: String) throws {
        let q = try Pipeline(parsing: name).quantizer
        let width = q.bitsPerValue / 8
        for m in [1, 3, 4, 7, 1001] {
            for bad in Set([0, m / 2, m - 1]) {
                var codes = [UInt8](repeating: 0, count: m * width)
                let allOnes: [UInt8] = width == 4 ? [0x00, 0x00, 0x80, 0x7F] : (name == "fp16" ? [0x00, 0x7C] : [0x80, 0x7F])
                for (j, b) in allOnes.enumerated() { codes[bad * width + j] = b }
                #expect(throws: UplinkError.self) { try Self.validate(q, scales: [], codes: codes, count: m) }
                do { try Self.validate(q, scales: [], codes: codes, count: m) } catch {
                    #expect(error.code == .nonFiniteValue && error.message.contains("transmitted index \(bad)"), "\(name) m \(m) at \(bad): \(error)")
                }
                codes[bad * width + width - 1] &= 0x3F  // finite again
                try Self.validate(q, scales: [], codes: codes, count: m)
            }
        }
    }

    /// Without error feedback a dense integer quantizer checks finiteness itself (no separate
    /// pass): a NaN or infinity anywhere is still refused, naming tensor and element.
    @Test(arguments: ["int8 | stored", "int4 asym | lz4", "int2 stochastic seed=3 | zlib", "int8 block=7 | lz4"], [Float.nan, .infinity, -.infinity])
    func denseIntegerEncodersRefuseNonFiniteValues(spec: String, bad: Float) throws {
        let layout = try ModelLayout([TensorSpec(name: "a", shape: [300]), TensorSpec(name: "b", shape: [5000])])
        for at in [0, 299, 300 + 2499, 5299] {
            var update = TestData.uniform(count: 5300, seed: 4)
            update[at] = bad
            #expect { try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: spec)).encodeOnce(update) } throws: { error in
                guard let e = error as? UplinkError else { return false }
                let (tensor, element) = at < 300 ? ("a", at) : ("b", at - 300)
                return e.code == .nonFiniteValue && e.message.contains("\"\(tensor)\"") && e.message.contains("element \(element)")
            }
        }
    }

    // MARK: Sampled sections

    static func sectionCodecs(_ frame: [UInt8]) throws -> [SectionCodec] {
        try frame.withUnsafeBytes { try FrameReader.readHeader($0, limits: .default) }.sections.map(\.codec)
    }

    /// A large section whose sample does not shrink is stored without compressing it; one that
    /// compresses is compressed; below 256 KiB the whole section is always tried.
    @Test(arguments: ["lz4", "zlib"])
    func incompressibleSamplesStoreLargeSections(codec: String) throws {
        var rng = SplitMix64(seed: 9)
        // Uniform bytes (as floats: a pattern with an all-ones exponent loses one exponent bit).
        let noise = (0..<(1 << 18)).map { _ -> Float in
            let b = UInt32(truncatingIfNeeded: rng.next())
            return Float(bitPattern: b & 0x7F80_0000 == 0x7F80_0000 ? b ^ 0x0080_0000 : b)
        }
        let layout = try ModelLayout(name: "x", count: noise.count)
        let spec = try Pipeline(parsing: "fp32 | \(codec)")
        #expect(try Self.sectionCodecs(FrameEncoder(layout: layout, pipeline: spec).encodeOnce(noise)) == [.stored])
        let smooth = (0..<(1 << 18)).map { Float($0 % 64) }
        #expect(try Self.sectionCodecs(FrameEncoder(layout: layout, pipeline: spec).encodeOnce(smooth)) == [spec.codec.codec])
        // The rule itself, on bytes: noise with one compressible region outside the sample
        // pieces is stored; the same region under a piece makes the sample shrink.
        var bytes = noise.withUnsafeBytes { Array($0) }  // 1 MiB
        let piece = FrameWriter.samplePieceLength
        for i in (200_000)..<(200_000 + 100_000) { bytes[i] = 0 }
        #expect(try bytes.withUnsafeBytes { try FrameWriter.compressSection($0, codec: spec.codec.codec, level: spec.codec.level) } == nil)
        let second = (bytes.count - piece) / 3
        for i in second..<(second + piece) { bytes[i] = 0 }
        #expect(try bytes.withUnsafeBytes { try FrameWriter.compressSection($0, codec: spec.codec.codec, level: spec.codec.level) } != nil)
        // Just below the size that is sampled: the whole section is tried (and does not shrink).
        let small = Array(bytes[0..<(FrameWriter.sampledSectionLength - 1)]).map { $0 | 1 }
        let tried = try small.withUnsafeBytes { try spec.codec.codec.compress($0, level: spec.codec.level) }
        #expect(try small.withUnsafeBytes { try FrameWriter.compressSection($0, codec: spec.codec.codec, level: spec.codec.level) } == tried)
    }

    /// Compressing into a caller's buffer (how the frame writer compresses each section straight
    /// into the frame) gives the bytes of the array-returning call, fits exactly in the
    /// compressed length and refuses one byte less, for both codecs, at lengths around the
    /// sampled size and the "not smaller" edge.
    @Test(arguments: [SectionCodec.lz4, .zlib])
    func compressingIntoABufferMatchesTheArrayResult(codec: SectionCodec) throws {
        var rng = SplitMix64(seed: 21)
        for length in [2, 17, 4096, FrameWriter.sampledSectionLength - 1, FrameWriter.sampledSectionLength, 300_001] {
            // Half the bytes small (compressible), half random.
            let raw = (0..<length).map { i -> UInt8 in i % 2 == 0 ? UInt8(i % 7) : UInt8(truncatingIfNeeded: rng.next()) }
            let level = codec == .zlib ? 6 : 0
            let array = try raw.withUnsafeBytes { try codec.compress($0, level: level) }
            var out = [UInt8](repeating: 0xA5, count: length)
            let n = try raw.withUnsafeBytes { r in
                try out.withUnsafeMutableBytes { try codec.compress(r, level: level, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(length - 1)])) }
            }
            #expect(n == array?.count, "\(codec) at \(length)")
            guard let array, let n else { continue }
            #expect(Array(out[0..<n]) == array)
            let exact = try raw.withUnsafeBytes { r in
                try out.withUnsafeMutableBytes { try codec.compress(r, level: level, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
            }
            #expect(exact == n)
            let short = try raw.withUnsafeBytes { r in
                try out.withUnsafeMutableBytes { try codec.compress(r, level: level, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(n - 1)])) }
            }
            #expect(short == nil)
            let section = try raw.withUnsafeBytes { try FrameWriter.compressSection($0, codec: codec, level: level) }
            var into = [UInt8](repeating: 0, count: length)
            let m = try raw.withUnsafeBytes { r in
                try into.withUnsafeMutableBytes { try FrameWriter.compressSection(r, codec: codec, level: level, into: $0) }
            }
            #expect(m == section?.count)
            if let m, let section { #expect(Array(into[0..<m]) == section) }
        }
    }

    /// The frame is written into one buffer sized for every section stored; a frame that
    /// compressed to less than half of that does not keep the spare capacity.
    @Test func aWellCompressedFrameDoesNotHoldItsWorstCaseBuffer() throws {
        let n = 1 << 20
        let layout = try ModelLayout(name: "x", count: n)
        let zeros = [Float](repeating: 0, count: n)
        let frame = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "fp32 | lz4")).encodeOnce(zeros)
        #expect(frame.count < 4 * n / 200)  // under 0.5% of the float32 bytes
        #expect(frame.capacity < 2 * frame.count + 64)
        // The frame decodes (checksums and lengths of sections written in place).
        #expect(try FrameDecoder().decode(frame).values == zeros)
        // Sections that stay stored are copied in place, and decode.
        var rng = SplitMix64(seed: 3)
        let noise = (0..<n).map { _ -> Float in
            let b = UInt32(truncatingIfNeeded: rng.next())
            return Float(bitPattern: b & 0x7F80_0000 == 0x7F80_0000 ? b ^ 0x0080_0000 : b)
        }
        let mixed = try FrameEncoder(layout: layout, pipeline: try Pipeline(parsing: "fp32 | lz4")).encodeOnce(noise)
        #expect(try Self.sectionCodecs(mixed).contains(.stored))
        #expect(try FrameDecoder().decode(mixed).values.map(\.bitPattern) == noise.map(\.bitPattern))
    }
}
