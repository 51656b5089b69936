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
/// kept live so the loop cannot be removed. `uplink bench` runs a floor right after each timed
/// run of the pipeline and reports the median of the per-pair ratios: on a shared machine the
/// memory bandwidth drifts by tens of percent within seconds, and adjacent runs see the same.
enum Roofline {
    /// A floor kernel with its buffers, timed run by run.
    final class Kernel {
        private let body: () -> Void
        private let cleanup: () -> Void
        init(_ body: @escaping () -> Void, cleanup: @escaping () -> Void) {
            self.body = body
            self.cleanup = cleanup
        }
        deinit { cleanup() }

        /// Seconds one run takes.
        func time() -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
    }

    /// The median under the rule every `uplink bench` figure uses: the element at count/2 of
    /// the sorted values.
    static func median(_ a: [Double]) -> Double { a.sorted()[a.count / 2] }

    /// Bytes per value of a quantizer's codes, as a fraction (sign: 1/8).
    static func codeWidth(_ q: Quantizer) -> (numerator: Int, denominator: Int) {
        let bits = q.bitsPerValue
        return bits >= 8 ? (bits / 8, 1) : (1, 8 / bits)
    }

    /// The encode floor for `n` values: `r += u` when `errorFeedback`, then (dense quantizers
    /// only) the codes written from the sum in the same pass.
    static func encodeFloor(n: Int, errorFeedback: Bool, dense: Quantizer?) -> Kernel {
        let u = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: n)
        let r = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: errorFeedback ? n : 1)
        for i in 0..<n { u[i] = Float(i & 1023).bitPattern }
        for i in 0..<r.count { r[i] = 0 }
        let width: (numerator: Int, denominator: Int) = dense.map(codeWidth) ?? (0, 1)
        let codeBytes = dense == nil ? 0 : (n * width.numerator + width.denominator - 1) / width.denominator
        let codes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(codeBytes, 1), alignment: 64)
        codes.initializeMemory(as: UInt8.self, repeating: 0)
        return Kernel({
            let up = UnsafeMutableRawPointer(u.baseAddress!).assumingMemoryBound(to: Float.self)
            let rp = UnsafeMutableRawPointer(r.baseAddress!).assumingMemoryBound(to: Float.self)
            if errorFeedback {
                for i in 0..<n { rp[i] += up[i] }
            }
            let src = errorFeedback ? UnsafeMutableRawPointer(rp).assumingMemoryBound(to: UInt32.self) : u.baseAddress!
            guard dense != nil else { return blackHole(r[0] ^ u[n - 1]) }
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
                // Packed codes: each output byte gathers the top bits of its values, with the
                // width a constant so the loop vectorizes (a runtime width kept it scalar and
                // made the floor of `sign` 5× slower than its traffic).
                let c = codes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                @inline(__always) func pack<let P: Int>(_: InlineArray<P, UInt8>.Type) {
                    let bits = 8 / P
                    for j in 0..<(n / P) {
                        var byte: UInt32 = 0
                        for b in 0..<P { byte |= (src[j &* P &+ b] &>> UInt32(32 - bits)) &<< UInt32(b &* bits) }
                        c[j] = UInt8(truncatingIfNeeded: byte)
                    }
                }
                switch width.denominator {
                case 8: pack(InlineArray<8, UInt8>.self)
                case 4: pack(InlineArray<4, UInt8>.self)
                default: pack(InlineArray<2, UInt8>.self)
                }
            }
            blackHole(codes.load(as: UInt8.self) ^ UInt8(truncatingIfNeeded: r[0] ^ u[n - 1]))
        }, cleanup: { u.deallocate(); r.deallocate(); codes.deallocate() })
    }

    /// The decode-and-accumulate floor: dense when `positions` is nil, else scattered at them.
    static func accumulateFloor(n: Int, quantizer: Quantizer, positions: [Int]?) -> Kernel {
        let dest = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
        for i in 0..<n { dest[i] = 0 }
        let m = positions?.count ?? n
        let width = codeWidth(quantizer)
        let codeBytes = max(1, (m * width.numerator + width.denominator - 1) / width.denominator)
        let codes = UnsafeMutableRawBufferPointer.allocate(byteCount: codeBytes + 8, alignment: 64)
        for i in 0..<codes.count { codes[i] = UInt8(truncatingIfNeeded: i &* 37) & 0x3F }
        let narrow = positions.map { p in p.map { UInt32(truncatingIfNeeded: $0) } }
        return Kernel({
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
                // Per code byte, its values with a constant width (see the encode floor).
                let c = codes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                @inline(__always) func unpack<let P: Int>(_: InlineArray<P, UInt8>.Type) {
                    let bits = 8 / P, mask = UInt32((1 << bits) - 1)
                    for j in 0..<(n / P) {
                        let byte = UInt32(c[j])
                        for b in 0..<P { d[j &* P &+ b] += Float((byte &>> UInt32(b &* bits)) & mask) }
                    }
                }
                switch width.denominator {
                case 8: unpack(InlineArray<8, UInt8>.self)
                case 4: unpack(InlineArray<4, UInt8>.self)
                default: unpack(InlineArray<2, UInt8>.self)
                }
            }
            blackHole(d[n / 2])
        }, cleanup: { dest.deallocate(); codes.deallocate() })
    }

    @inline(never)
    static func blackHole<T>(_ x: T) { _ = x }
}
