#if arch(x86_64)
import CUplinkCRC
#endif
import Foundation

/// Register-blocked direct convolution on row-padded grids, the inner loops of ``SimpleCNN``.
///
/// A convolution's input is `channels` planes; tap `r = (ci·k + ky)·k + kx` reads the plane of
/// channel `ci` shifted by `ky·rowStride + kx`, so with `offsets[r]` the start of that shifted run
/// the layer is `out[co][j] = bias[co] + Σ_r W[co][r] · input[offsets[r] + j]`, a matrix product
/// whose right-hand rows are never copied (no im2col).
///
/// Each kernel adds its terms in the same order, with the same multiply-then-add, as the
/// one-tap-at-a-time loops it replaced (`Kernels.axpy` per tap for the outputs and the input
/// gradient, `Kernels.dot` per tap for the weight gradient), so the results are bit-identical to
/// them; only the loads and stores are shared. `SimpleCNNTests` checks that against the plain
/// loops, and the gradient check checks the arithmetic.
///
/// On x86-64 with AVX2 (detected at run time) the same kernels run in C compiled for AVX2
/// (`cuplink_conv.h`): eight lanes per instruction where the package's baseline target has
/// SSE2's four, and more registers for wider blocks. They add the same terms in the same order,
/// so training gives bit-identical results on either path (tested); `UPLINK_CONV=swift` selects
/// the Swift kernels.
enum Convolution {
    /// Whether the AVX2 kernels run: the CPU has AVX2 and `UPLINK_CONV` is not `swift`.
    static let native: Bool = {
        #if arch(x86_64)
        if ProcessInfo.processInfo.environment["UPLINK_CONV"] == "swift" { return false }
        return cuplink_conv_avx2() == 1
        #else
        return false
        #endif
    }()

    /// ``forwardPortable(input:offsets:taps:weights:bias:outputs:out:outStride:count:)`` on the
    /// fastest path this CPU has.
    @inline(__always)
    static func forward(input: UnsafePointer<Float>, offsets: UnsafePointer<Int>, taps: Int,
                        weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, outputs: Int,
                        out: UnsafeMutablePointer<Float>, outStride: Int, count n: Int) {
        #if arch(x86_64)
        if native { return cuplink_conv_forward(input, offsets, taps, weights, bias, outputs, out, outStride, n) }
        #endif
        forwardPortable(input: input, offsets: offsets, taps: taps, weights: weights, bias: bias, outputs: outputs, out: out, outStride: outStride, count: n)
    }

    /// ``weightGradientPortable(delta:deltaStride:outputs:input:offsets:taps:count:gradient:)`` on
    /// the fastest path this CPU has.
    @inline(__always)
    static func weightGradient(delta: UnsafePointer<Float>, deltaStride: Int, outputs: Int,
                               input: UnsafePointer<Float>, offsets: UnsafePointer<Int>, taps: Int,
                               count n: Int, gradient g: UnsafeMutablePointer<Float>) {
        #if arch(x86_64)
        if native { return cuplink_conv_weight_gradient(delta, deltaStride, outputs, input, offsets, taps, n, g) }
        #endif
        weightGradientPortable(delta: delta, deltaStride: deltaStride, outputs: outputs, input: input, offsets: offsets, taps: taps, count: n, gradient: g)
    }

    /// ``inputGradientPortable(delta:deltaStride:outputs:weights:channels:kernelArea:offsets:back:backStride:backLength:count:span:padded:)``
    /// on the fastest path this CPU has.
    @inline(__always)
    static func inputGradient(delta: UnsafePointer<Float>, deltaStride: Int, outputs: Int,
                              weights: UnsafePointer<Float>, channels: Int, kernelArea: Int, offsets: UnsafePointer<Int>,
                              back: UnsafeMutablePointer<Float>, backStride: Int, backLength: Int,
                              count n: Int, span: Int, padded: UnsafeMutablePointer<Float>) {
        #if arch(x86_64)
        if native {
            return cuplink_conv_input_gradient(delta, deltaStride, outputs, weights, channels, kernelArea, offsets, back, backStride,
                                               backLength, n, span, padded)
        }
        #endif
        inputGradientPortable(delta: delta, deltaStride: deltaStride, outputs: outputs, weights: weights, channels: channels,
                              kernelArea: kernelArea, offsets: offsets, back: back, backStride: backStride, backLength: backLength,
                              count: n, span: span, padded: padded)
    }

    /// The shifted run start of every tap: `(ci·k + ky)·k + kx ↦ ci·channelStride + ky·rowStride + kx`.
    static func offsets(channels: Int, channelStride: Int, rowStride: Int, kernel k: Int) -> [Int] {
        var o = [Int]()
        o.reserveCapacity(channels * k * k)
        for ci in 0..<channels {
            for ky in 0..<k {
                for kx in 0..<k { o.append(ci * channelStride + ky * rowStride + kx) }
            }
        }
        return o
    }

    /// `out[co·outStride + j] = bias[co] + Σ_r W[co·taps + r] · input[offsets[r] + j]` for
    /// `j < count`, the taps added in order. Four output channels share each input load.
    static func forwardPortable(input: UnsafePointer<Float>, offsets: UnsafePointer<Int>, taps: Int,
                                weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, outputs: Int,
                                out: UnsafeMutablePointer<Float>, outStride: Int, count n: Int) {
        let raw = UnsafeRawPointer(input)
        var co = 0
        while co < outputs {
            let rows = min(4, outputs - co)
            // Channels past the last full block of four repeat the block's last row (their
            // results are not stored), so one kernel serves every count.
            let w0 = weights + co * taps
            let w1 = weights + (co + min(1, rows - 1)) * taps
            let w2 = weights + (co + min(2, rows - 1)) * taps
            let w3 = weights + (co + min(3, rows - 1)) * taps
            let b0 = bias[co], b1 = bias[co + min(1, rows - 1)], b2 = bias[co + min(2, rows - 1)], b3 = bias[co + min(3, rows - 1)]
            let o0 = out + co * outStride
            var j = 0
            while j + 8 <= n {
                var a0 = SIMD8<Float>(repeating: b0), a1 = SIMD8<Float>(repeating: b1)
                var a2 = SIMD8<Float>(repeating: b2), a3 = SIMD8<Float>(repeating: b3)
                for r in 0..<taps {
                    let x = raw.loadUnaligned(fromByteOffset: 4 * (offsets[r] + j), as: SIMD8<Float>.self)
                    a0 += SIMD8(repeating: w0[r]) * x
                    a1 += SIMD8(repeating: w1[r]) * x
                    a2 += SIMD8(repeating: w2[r]) * x
                    a3 += SIMD8(repeating: w3[r]) * x
                }
                let ro = UnsafeMutableRawPointer(o0 + j)
                ro.storeBytes(of: a0, as: SIMD8<Float>.self)
                if rows > 1 { ro.storeBytes(of: a1, toByteOffset: 4 * outStride, as: SIMD8<Float>.self) }
                if rows > 2 { ro.storeBytes(of: a2, toByteOffset: 8 * outStride, as: SIMD8<Float>.self) }
                if rows > 3 { ro.storeBytes(of: a3, toByteOffset: 12 * outStride, as: SIMD8<Float>.self) }
                j += 8
            }
            // Both grids of the CNN end on four: a four-lane block, not four scalar columns.
            if j + 4 <= n {
                var a0 = SIMD4<Float>(repeating: b0), a1 = SIMD4<Float>(repeating: b1)
                var a2 = SIMD4<Float>(repeating: b2), a3 = SIMD4<Float>(repeating: b3)
                for r in 0..<taps {
                    let x = raw.loadUnaligned(fromByteOffset: 4 * (offsets[r] + j), as: SIMD4<Float>.self)
                    a0 += SIMD4(repeating: w0[r]) * x
                    a1 += SIMD4(repeating: w1[r]) * x
                    a2 += SIMD4(repeating: w2[r]) * x
                    a3 += SIMD4(repeating: w3[r]) * x
                }
                let ro = UnsafeMutableRawPointer(o0 + j)
                ro.storeBytes(of: a0, as: SIMD4<Float>.self)
                if rows > 1 { ro.storeBytes(of: a1, toByteOffset: 4 * outStride, as: SIMD4<Float>.self) }
                if rows > 2 { ro.storeBytes(of: a2, toByteOffset: 8 * outStride, as: SIMD4<Float>.self) }
                if rows > 3 { ro.storeBytes(of: a3, toByteOffset: 12 * outStride, as: SIMD4<Float>.self) }
                j += 4
            }
            while j < n {
                for c in 0..<rows {
                    let w = weights + (co + c) * taps
                    var s = bias[co + c]
                    for r in 0..<taps { s += w[r] * input[offsets[r] + j] }
                    o0[c * outStride + j] = s
                }
                j += 1
            }
            co += rows
        }
    }

    /// `gradient[co·taps + r] += dot(delta[co·deltaStride ..< +count], input[offsets[r] ..< +count])`,
    /// each dot summed exactly as `Kernels.dot` sums it (eight lanes, then the tail). Four taps
    /// share each load of `delta`.
    static func weightGradientPortable(delta: UnsafePointer<Float>, deltaStride: Int, outputs: Int,
                                       input: UnsafePointer<Float>, offsets: UnsafePointer<Int>, taps: Int,
                                       count n: Int, gradient g: UnsafeMutablePointer<Float>) {
        let raw = UnsafeRawPointer(input)
        for co in 0..<outputs {
            let d = delta + co * deltaStride, rd = UnsafeRawPointer(d)
            let gc = g + co * taps
            var r = 0
            while r + 4 <= taps {
                let s0 = 4 * offsets[r], s1 = 4 * offsets[r + 1], s2 = 4 * offsets[r + 2], s3 = 4 * offsets[r + 3]
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                var i = 0
                while i + 8 <= n {
                    let dv = rd.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
                    a0 += dv * raw.loadUnaligned(fromByteOffset: s0 + 4 * i, as: SIMD8<Float>.self)
                    a1 += dv * raw.loadUnaligned(fromByteOffset: s1 + 4 * i, as: SIMD8<Float>.self)
                    a2 += dv * raw.loadUnaligned(fromByteOffset: s2 + 4 * i, as: SIMD8<Float>.self)
                    a3 += dv * raw.loadUnaligned(fromByteOffset: s3 + 4 * i, as: SIMD8<Float>.self)
                    i += 8
                }
                var t0 = a0.sum(), t1 = a1.sum(), t2 = a2.sum(), t3 = a3.sum()
                let x0 = input + offsets[r], x1 = input + offsets[r + 1], x2 = input + offsets[r + 2], x3 = input + offsets[r + 3]
                while i < n {
                    t0 += d[i] * x0[i]; t1 += d[i] * x1[i]; t2 += d[i] * x2[i]; t3 += d[i] * x3[i]
                    i += 1
                }
                gc[r] += t0; gc[r + 1] += t1; gc[r + 2] += t2; gc[r + 3] += t3
                r += 4
            }
            while r < taps {
                gc[r] += Kernels.dot(d, input + offsets[r], n)
                r += 1
            }
        }
    }

    /// The gradient at the input: for each output channel `co` in turn, then each input channel,
    /// then each tap, `back[offsets[r] + j] += W[co·taps + r] · delta[co·deltaStride + j]`
    /// (`j < count`), the order of one axpy per tap. `padded` is scratch for
    /// `paddedLength(outputs:count:backLength:span:)` floats: the delta row with `span` zeros before and after, so
    /// one output run of eight reads all its taps without bounds checks; the zero terms add
    /// ±0, which leaves every sum as it was.
    ///
    /// `back` is `channels` planes of `backLength` floats at `backStride`; `span` is the
    /// largest in-plane tap offset plus one.
    static func inputGradientPortable(delta: UnsafePointer<Float>, deltaStride: Int, outputs: Int,
                                      weights: UnsafePointer<Float>, channels: Int, kernelArea: Int, offsets: UnsafePointer<Int>,
                                      back: UnsafeMutablePointer<Float>, backStride: Int, backLength: Int,
                                      count n: Int, span: Int, padded: UnsafeMutablePointer<Float>) {
        let length = span + max(n, backLength) + 8
        let taps = channels * kernelArea
        for co in 0..<outputs {
            for i in 0..<length { padded[i] = 0 }
            let d = delta + co * deltaStride
            for j in 0..<n { padded[span + j] = d[j] }
            let rp = UnsafeRawPointer(padded + span)
            for ci in 0..<channels {
                let w = weights + co * taps + ci * kernelArea
                let shifts = offsets + ci * kernelArea
                let plane = back + ci * backStride
                let base = ci * backStride
                var p = 0
                while p + 8 <= backLength {
                    var v = UnsafeRawPointer(plane + p).loadUnaligned(as: SIMD8<Float>.self)
                    for t in 0..<kernelArea {
                        let q = p - (shifts[t] - base)
                        v += SIMD8(repeating: w[t]) * rp.loadUnaligned(fromByteOffset: 4 * q, as: SIMD8<Float>.self)
                    }
                    UnsafeMutableRawPointer(plane + p).storeBytes(of: v, as: SIMD8<Float>.self)
                    p += 8
                }
                while p < backLength {
                    var v = plane[p]
                    for t in 0..<kernelArea {
                        let q = p - (shifts[t] - base)
                        v += w[t] * padded[span + q]
                    }
                    plane[p] = v
                    p += 1
                }
            }
        }
    }

    /// Scratch floats the input gradient needs: per output channel (the AVX2 kernel pads them
    /// all at once, the Swift one reuses the first), `span` zeros, the delta row, and zeros up
    /// to the end of the furthest read.
    static func paddedLength(outputs: Int, count n: Int, backLength: Int, span: Int) -> Int {
        outputs * (span + max(n, backLength) + 8)
    }
}
