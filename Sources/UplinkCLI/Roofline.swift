import Dispatch
import UplinkCodec

/// Streaming floors for a pipeline's unavoidable memory traffic, measured in the same process
/// and run as the pipeline itself, so "3× the floor" means the same on any machine.
///
/// - Encode with error feedback: read the update and the residual, write the residual
///   (`r += u`); a dense quantizer also writes its codes in the same pass.
/// - Encode without error feedback: read the update, write the codes.
/// - Dense decode-and-accumulate: read the codes, read and write the destination
///   (`d += g(code)` with the cheapest widening of that code width).
/// - Sparse decode-and-accumulate: read k codes and positions, read and write k scattered
///   destination values, at the frame's own positions.
///
/// Each kernel is a plain counted loop over raw pointers, which LLVM vectorizes; its result is
/// kept live so the loop cannot be removed.
enum Roofline {
    /// Bytes per value of a quantizer's codes, as a fraction (sign: 1/8).
    static func codeWidth(_ q: Quantizer) -> (numerator: Int, denominator: Int) {
        let bits = q.bitsPerValue
        return bits >= 8 ? (bits / 8, 1) : (1, 8 / bits)
    }

    /// The median seconds of `runs` calls of `body`.
    static func median(runs: Int, _ body: () -> Void) -> Double {
        var times: [Double] = []
        for _ in 0..<runs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }

    /// The encode floor for `n` values: `r += u` when `errorFeedback`, then (dense quantizers
    /// only) the codes written from the sum in the same pass.
    static func encodeFloor(n: Int, errorFeedback: Bool, dense: Quantizer?, runs: Int) -> Double {
        let u = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: n)
        let r = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: errorFeedback ? n : 1)
        defer { u.deallocate(); r.deallocate() }
        for i in 0..<n { u[i] = Float(i & 1023).bitPattern }
        for i in 0..<r.count { r[i] = 0 }
        let width: (numerator: Int, denominator: Int) = dense.map(codeWidth) ?? (0, 1)
        let codeBytes = dense == nil ? 0 : (n * width.numerator + width.denominator - 1) / width.denominator
        let codes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(codeBytes, 1), alignment: 64)
        defer { codes.deallocate() }
        codes.initializeMemory(as: UInt8.self, repeating: 0)
        var sink: UInt32 = 0
        let t = median(runs: runs) {
            let up = UnsafeMutableRawPointer(u.baseAddress!).assumingMemoryBound(to: Float.self)
            let rp = UnsafeMutableRawPointer(r.baseAddress!).assumingMemoryBound(to: Float.self)
            if errorFeedback {
                for i in 0..<n { rp[i] += up[i] }
            }
            let src = errorFeedback ? UnsafeMutableRawPointer(rp).assumingMemoryBound(to: UInt32.self) : u.baseAddress!
            guard dense != nil else { return }
            switch width {
            case (4, 1):
                let c = codes.baseAddress!.assumingMemoryBound(to: UInt32.self)
                for i in 0..<n { c[i] = src[i] }
            case (2, 1):
                let c = codes.baseAddress!.assumingMemoryBound(to: UInt16.self)
                for i in 0..<n { c[i] = UInt16(truncatingIfNeeded: src[i] >> 16) }
            case (1, 1):
                let c = codes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                for i in 0..<n { c[i] = UInt8(truncatingIfNeeded: src[i] >> 24) }
            default:
                // Packed codes: each output byte gathers the top bits of its values.
                let per = width.denominator, bits = 8 / per
                let c = codes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                for j in 0..<(n / per) {
                    var byte: UInt32 = 0
                    for b in 0..<per { byte |= (src[j * per + b] >> UInt32(32 - bits)) << UInt32(b * bits) }
                    c[j] = UInt8(truncatingIfNeeded: byte)
                }
            }
            sink ^= codes.load(as: UInt8.self) == 0 ? 0 : 1
        }
        sink ^= r[0] ^ u[n - 1]
        blackHole(sink)
        return t
    }

    /// The decode-and-accumulate floor: dense when `positions` is nil, else scattered at them.
    static func accumulateFloor(n: Int, quantizer: Quantizer, positions: [Int]?, runs: Int) -> Double {
        let dest = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
        defer { dest.deallocate() }
        for i in 0..<n { dest[i] = 0 }
        let m = positions?.count ?? n
        let width = codeWidth(quantizer)
        let codeBytes = max(1, (m * width.numerator + width.denominator - 1) / width.denominator)
        let codes = UnsafeMutableRawBufferPointer.allocate(byteCount: codeBytes + 8, alignment: 64)
        defer { codes.deallocate() }
        for i in 0..<codes.count { codes[i] = UInt8(truncatingIfNeeded: i &* 37) & 0x3F }
        let narrow = positions.map { p in p.map { UInt32(truncatingIfNeeded: $0) } }
        let t = median(runs: runs) {
            let d = dest.baseAddress!
            if let narrow {
                // Sparse: 8-bit codes (the common case) scattered at the frame's positions.
                narrow.withUnsafeBufferPointer { p in
                    let c = codes.baseAddress!.assumingMemoryBound(to: Int8.self)
                    for j in 0..<m { d[Int(p[j])] += Float(c[j]) }
                }
                return
            }
            switch width {
            case (4, 1):
                let c = codes.baseAddress!.assumingMemoryBound(to: UInt32.self)
                for i in 0..<n { d[i] += Float(bitPattern: c[i] & 0x3F7F_FFFF) }
            case (2, 1):
                let c = codes.baseAddress!.assumingMemoryBound(to: UInt16.self)
                for i in 0..<n { d[i] += Float(bitPattern: UInt32(c[i]) << 16) }
            case (1, 1):
                let c = codes.baseAddress!.assumingMemoryBound(to: Int8.self)
                for i in 0..<n { d[i] += Float(c[i]) }
            default:
                let per = width.denominator, bits = 8 / per, mask = UInt8((1 << bits) - 1)
                let c = codes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                for i in 0..<n { d[i] += Float((c[i / per] >> UInt8((i % per) * bits)) & mask) }
            }
        }
        blackHole(dest[n / 2])
        return t
    }

    @inline(never)
    static func blackHole<T>(_ x: T) { _ = x }
}
