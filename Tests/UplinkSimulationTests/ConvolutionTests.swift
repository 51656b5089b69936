#if arch(x86_64)
import CUplinkCRC
#endif
import Testing
@testable import UplinkSimulation
import UplinkCodec

/// The CNN's convolution kernels: the register-blocked Swift kernels against the one-tap-at-a-time
/// loops they replaced, and the AVX2 kernels against the Swift ones, bit for bit, on shapes that
/// exercise every block size and tail (output counts 1–17, runs that are not a multiple of 4 or 8).
@Suite struct ConvolutionTests {
    /// A convolution problem: `channels` planes of `side × side`, `outputs` filters of `k × k`,
    /// output grid `(side − k + 1)` rows on the input's row stride.
    struct Problem {
        let channels: Int, outputs: Int, side: Int, k: Int
        var rowStride: Int { side }
        var plane: Int { side * side }
        var valid: Int { side - k + 1 }
        var count: Int { (valid - 1) * side + valid }
        var taps: Int { channels * k * k }
        var span: Int { (k - 1) * side + k }
        var offsets: [Int] { Convolution.offsets(channels: channels, channelStride: plane, rowStride: side, kernel: k) }
    }

    static let problems = [
        Problem(channels: 1, outputs: 6, side: 28, k: 5),   // conv1
        Problem(channels: 6, outputs: 16, side: 12, k: 5),  // conv2
        Problem(channels: 3, outputs: 1, side: 7, k: 3), Problem(channels: 2, outputs: 5, side: 9, k: 2),
        Problem(channels: 9, outputs: 17, side: 6, k: 3), Problem(channels: 4, outputs: 3, side: 11, k: 4),
        Problem(channels: 1, outputs: 9, side: 3, k: 3),    // a one-element grid
    ]

    static func random(_ n: Int, _ rng: inout SplitMix64, zeros: Bool = false) -> [Float] {
        (0..<n).map { _ in
            let v = (rng.unitFloat() - 0.5) * 4
            return zeros && rng.next() % 3 == 0 ? 0 : v
        }
    }

    static func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    /// One `Kernels.axpy` per tap for the outputs and the input gradient, one `Kernels.dot` per
    /// tap for the weight gradient: what SimpleCNN computed before the blocked kernels.
    static func reference(_ q: Problem, input: [Float], weights: [Float], bias: [Float], delta: [Float]) -> (out: [Float], grad: [Float], back: [Float]) {
        var out = [Float](repeating: 0, count: q.outputs * q.count)
        var grad = [Float](repeating: 0, count: q.outputs * q.taps)
        var back = [Float](repeating: 0, count: q.channels * q.plane)
        let off = q.offsets
        input.withUnsafeBufferPointer { x in
            delta.withUnsafeBufferPointer { d in
                out.withUnsafeMutableBufferPointer { o in
                    back.withUnsafeMutableBufferPointer { b in
                        for co in 0..<q.outputs {
                            for j in 0..<q.count { o[co * q.count + j] = bias[co] }
                            for r in 0..<q.taps {
                                Kernels.axpy(weights[co * q.taps + r], x.baseAddress! + off[r], o.baseAddress! + co * q.count, q.count)
                                grad[co * q.taps + r] += Kernels.dot(d.baseAddress! + co * q.count, x.baseAddress! + off[r], q.count)
                                Kernels.axpy(weights[co * q.taps + r], d.baseAddress! + co * q.count, b.baseAddress! + off[r], q.count)
                            }
                        }
                    }
                }
            }
        }
        return (out, grad, back)
    }

    enum Path { case portable, native }

    static func blocked(_ q: Problem, _ path: Path, input: [Float], weights: [Float], bias: [Float], delta: [Float]) -> (out: [Float], grad: [Float], back: [Float]) {
        var out = [Float](repeating: 0, count: q.outputs * q.count)
        var grad = [Float](repeating: 0, count: q.outputs * q.taps)
        var back = [Float](repeating: 0, count: q.channels * q.plane)
        var padded = [Float](repeating: .nan, count: Convolution.paddedLength(outputs: q.outputs, count: q.count, backLength: q.plane, span: q.span))
        let off = q.offsets
        input.withUnsafeBufferPointer { x in
            delta.withUnsafeBufferPointer { d in
                weights.withUnsafeBufferPointer { w in
                    bias.withUnsafeBufferPointer { b in
                        off.withUnsafeBufferPointer { o in
                            let (x, d, w, b, o) = (x.baseAddress!, d.baseAddress!, w.baseAddress!, b.baseAddress!, o.baseAddress!)
                            out.withUnsafeMutableBufferPointer { out in
                                grad.withUnsafeMutableBufferPointer { g in
                                    back.withUnsafeMutableBufferPointer { bk in
                                        padded.withUnsafeMutableBufferPointer { pad in
                                            switch path {
                                            case .portable:
                                                Convolution.forwardPortable(input: x, offsets: o, taps: q.taps, weights: w, bias: b, outputs: q.outputs,
                                                                            out: out.baseAddress!, outStride: q.count, count: q.count)
                                                Convolution.weightGradientPortable(delta: d, deltaStride: q.count, outputs: q.outputs, input: x, offsets: o,
                                                                                   taps: q.taps, count: q.count, gradient: g.baseAddress!)
                                                Convolution.inputGradientPortable(delta: d, deltaStride: q.count, outputs: q.outputs, weights: w, channels: q.channels,
                                                                                  kernelArea: q.k * q.k, offsets: o, back: bk.baseAddress!, backStride: q.plane,
                                                                                  backLength: q.plane, count: q.count, span: q.span, padded: pad.baseAddress!)
                                            case .native:
                                                #if arch(x86_64)
                                                cuplink_conv_forward(x, o, q.taps, w, b, q.outputs, out.baseAddress!, q.count, q.count)
                                                cuplink_conv_weight_gradient(d, q.count, q.outputs, x, o, q.taps, q.count, g.baseAddress!)
                                                cuplink_conv_input_gradient(d, q.count, q.outputs, w, q.channels, q.k * q.k, o, bk.baseAddress!, q.plane,
                                                                            q.plane, q.count, q.span, pad.baseAddress!)
                                                #endif
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (out, grad, back)
    }

    @Test(arguments: problems.indices)
    func blockedKernelsAreBitIdenticalToOneTapLoops(index: Int) {
        let q = Self.problems[index]
        var rng = SplitMix64(seed: UInt64(100 + index))
        let input = Self.random(q.channels * q.plane, &rng)
        let weights = Self.random(q.outputs * q.taps, &rng)
        let bias = Self.random(q.outputs, &rng)
        // Zeros in delta (the pools route gradient to one pixel in four) and −0 products.
        let delta = Self.random(q.outputs * q.count, &rng, zeros: true)
        let want = Self.reference(q, input: input, weights: weights, bias: bias, delta: delta)
        #expect(want.out.contains { $0 != 0 } && want.grad.contains { $0 != 0 } && want.back.contains { $0 != 0 })
        let portable = Self.blocked(q, .portable, input: input, weights: weights, bias: bias, delta: delta)
        #expect(Self.bits(portable.out) == Self.bits(want.out), "forward, \(q)")
        #expect(Self.bits(portable.grad) == Self.bits(want.grad), "weight gradient, \(q)")
        #expect(Self.bits(portable.back) == Self.bits(want.back), "input gradient, \(q)")
        #if arch(x86_64)
        if cuplink_conv_avx2() == 1 {
            let native = Self.blocked(q, .native, input: input, weights: weights, bias: bias, delta: delta)
            #expect(Self.bits(native.out) == Self.bits(want.out), "AVX2 forward, \(q)")
            #expect(Self.bits(native.grad) == Self.bits(want.grad), "AVX2 weight gradient, \(q)")
            #expect(Self.bits(native.back) == Self.bits(want.back), "AVX2 input gradient, \(q)")
        }
        #endif
    }

    /// The machine CI runs on has AVX2, so the native path is the one trained with; say so
    /// rather than pass silently when it is not.
    @Test func theNativePathRunsWhereTheCPUHasAVX2() {
        #if arch(x86_64)
        let cpu = cuplink_conv_avx2() == 1
        #expect(Convolution.native == cpu)
        #endif
    }
}
