import UplinkCodec

/// A multilayer perceptron with ReLU hidden layers and a softmax cross-entropy loss, trained
/// with minibatch SGD: the learning task every pipeline is judged on.
///
/// Parameters live in one flat float32 vector in the order of ``layout`` (tensors sorted by
/// name: `fc1.bias`, `fc1.weight`, `fc2.bias`, …; weights are `[out, in]`, as in PyTorch), so a
/// model *is* an update-shaped vector and a client's update is `local − global`. The kernels
/// (``Kernels``, shared with the CNN's head) are loops over contiguous rows that the compiler
/// vectorizes, four rows at a time.
public struct MLP: Classifier {
    /// Layer widths, input first: `[64, 1024, 1024, 10]` by default.
    public let sizes: [Int]
    /// The parameter layout.
    public let layout: ModelLayout
    /// Where each layer's weight and bias start in the flat vector.
    let weightOffset: [Int]
    let biasOffset: [Int]

    /// The most parameters a network may have: training keeps several copies of the model and
    /// one gradient per thread in memory (2^27 float32 values are 512 MiB a copy).
    public static let maxParameters = 1 << 27

    /// Checks that `sizes` describe a network ``init(sizes:)`` accepts: at least two layers, each
    /// at least 1 wide, at most ``maxParameters`` parameters (computed without overflow).
    /// - Throws: ``UplinkError/Code/invalidArgument`` naming the problem.
    public static func checkSizes(_ sizes: [Int]) throws(UplinkError) {
        guard sizes.count >= 2, sizes.allSatisfy({ $0 >= 1 }) else {
            throw UplinkError(.invalidArgument, "a network needs at least two layers, each at least 1 wide, not \(sizes)")
        }
        var total = 0
        for l in 1..<sizes.count {
            let (w, o1) = sizes[l].multipliedReportingOverflow(by: sizes[l - 1])
            let (t, o2) = total.addingReportingOverflow(w)
            let (b, o3) = t.addingReportingOverflow(sizes[l])
            guard !o1, !o2, !o3, b <= maxParameters else {
                throw UplinkError(.invalidArgument, "layer widths \(sizes) give more than \(maxParameters) parameters; a smaller width is needed")
            }
            total = b
        }
    }

    /// A network with the given layer widths.
    ///
    /// - Precondition: `sizes` passes ``checkSizes(_:)`` (callers with untrusted widths check
    ///   first; a trap here is a programming error, pinned by an exit test).
    public init(sizes: [Int]) {
        do throws(UplinkError) { try Self.checkSizes(sizes) } catch { preconditionFailure(error.message) }
        self.sizes = sizes
        var tensors: [TensorSpec] = []
        for l in 1..<sizes.count {
            tensors.append(TensorSpec(name: "fc\(l).bias", shape: [sizes[l]]))
            tensors.append(TensorSpec(name: "fc\(l).weight", shape: [sizes[l], sizes[l - 1]]))
        }
        tensors.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let layout: ModelLayout
        do throws(UplinkError) { layout = try ModelLayout(tensors) } catch { preconditionFailure(error.message) }
        self.layout = layout
        weightOffset = (1..<sizes.count).map { layout.offsets[layout.index(of: "fc\($0).weight")!] }
        biasOffset = (1..<sizes.count).map { layout.offsets[layout.index(of: "fc\($0).bias")!] }
    }

    /// The digits network: 64 → width → width → 10 (width 1024: 1,126,410 parameters).
    public static func digits(width: Int = 1024) -> MLP { MLP(sizes: [64, width, width, 10]) }

    /// He-uniform weights (bound √(6/fan-in)) and zero biases, from `seed`.
    public func initialParameters(seed: UInt64) -> [Float] {
        var p = [Float](repeating: 0, count: layout.parameterCount)
        var rng = SplitMix64(seed: seed)
        for l in 1..<sizes.count {
            let bound = (6 / Float(sizes[l - 1])).squareRoot()
            for i in 0..<(sizes[l] * sizes[l - 1]) {
                p[weightOffset[l - 1] + i] = (rng.unitFloat() * 2 - 1) * bound
            }
        }
        return p
    }

    @discardableResult
    public func loss(_ parameters: [Float], data: Dataset, rows: ArraySlice<Int>, gradient: UnsafeMutableBufferPointer<Float>?) -> Double {
        let batch = rows.count
        guard batch > 0 else { return 0 }
        var input = [Float](repeating: 0, count: batch * sizes[0])
        for (b, r) in rows.enumerated() {
            for i in 0..<sizes[0] { input[b * sizes[0] + i] = data.features[r * sizes[0] + i] }
        }
        return Dense.head(parameters, weights: weightOffset, biases: biasOffset, sizes: sizes, input: input, batch: batch,
                          labels: rows.map { data.labels[$0] }, gradient: gradient).loss
    }

    /// Fraction of `data` classified correctly.
    public func accuracy(_ parameters: [Float], data: Dataset) -> Double {
        var correct = 0
        let chunk = 128
        var start = 0
        let classes = sizes[sizes.count - 1]
        while start < data.count {
            let end = min(data.count, start + chunk)
            let batch = end - start
            let input = Array(data.features[(start * sizes[0])..<(end * sizes[0])])
            let logits = Dense.forward(parameters, weights: weightOffset, biases: biasOffset, sizes: sizes, input: input, batch: batch).last!
            for b in 0..<batch where Dense.argmax(logits[(b * classes)..<((b + 1) * classes)]) == data.labels[start + b] { correct += 1 }
            start = end
        }
        return Double(correct) / Double(max(1, data.count))
    }
}

/// A stack of fully connected layers with ReLU between them and softmax cross-entropy on top:
/// the MLP, and the head of the CNN. Layer `l` maps `sizes[l]` to `sizes[l + 1]` with its
/// weight (`[out, in]`) at `weights[l]` and bias at `biases[l]` in the flat parameter vector.
enum Dense {
    /// The activations of every layer for `batch` inputs (row-major): the input, each ReLU
    /// hidden layer, and the logits.
    static func forward(_ parameters: [Float], weights: [Int], biases: [Int], sizes: [Int], input: [Float], batch: Int) -> [[Float]] {
        let layers = sizes.count - 1
        var acts = [input]
        parameters.withUnsafeBufferPointer { p in
            for l in 0..<layers {
                var out = [Float](repeating: 0, count: batch * sizes[l + 1])
                Kernels.affine(input: acts[l], batch: batch, inWidth: sizes[l], outWidth: sizes[l + 1],
                               weights: p.baseAddress! + weights[l], bias: p.baseAddress! + biases[l], output: &out)
                if l < layers - 1 { for i in 0..<out.count where out[i] < 0 { out[i] = 0 } }
                acts.append(out)
            }
        }
        return acts
    }

    /// Mean softmax cross-entropy of the batch against `labels`. With `gradient`, adds the
    /// gradient of the mean loss for every layer to it, and with `wantsInputGradient` also
    /// returns the gradient at the input (batch × sizes[0]).
    static func head(_ parameters: [Float], weights: [Int], biases: [Int], sizes: [Int], input: [Float], batch: Int, labels: [Int],
                     gradient: UnsafeMutableBufferPointer<Float>?, wantsInputGradient: Bool = false) -> (loss: Double, inputGradient: [Float]?) {
        let layers = sizes.count - 1
        let acts = forward(parameters, weights: weights, biases: biases, sizes: sizes, input: input, batch: batch)
        // Softmax cross-entropy; delta = (softmax − onehot) / batch.
        let classes = sizes[layers]
        var delta = [Float](repeating: 0, count: batch * classes)
        var total = 0.0
        for b in 0..<batch {
            let logits = acts[layers][(b * classes)..<((b + 1) * classes)]
            let m = logits.max()!
            var z = 0.0
            for v in logits { z += Double((v - m)).exp() }
            let label = labels[b]
            total += -(Double(logits[logits.startIndex + label] - m) - z.log())
            for c in 0..<classes {
                let pr = Double(logits[logits.startIndex + c] - m).exp() / z
                delta[b * classes + c] = Float((pr - (c == label ? 1 : 0)) / Double(batch))
            }
        }
        guard let gradient else { return (total / Double(batch), nil) }
        var inputGradient: [Float]?
        parameters.withUnsafeBufferPointer { p in
            for l in stride(from: layers - 1, through: 0, by: -1) {
                let inW = sizes[l], outW = sizes[l + 1]
                let gw = gradient.baseAddress! + weights[l], gb = gradient.baseAddress! + biases[l]
                Kernels.accumulateWeightGradient(delta: delta, input: acts[l], batch: batch, inWidth: inW, outWidth: outW, gradW: gw, gradB: gb)
                guard l > 0 || wantsInputGradient else { break }
                var back = [Float](repeating: 0, count: batch * inW)
                Kernels.backpropagate(delta: delta, batch: batch, inWidth: inW, outWidth: outW, weights: p.baseAddress! + weights[l], output: &back)
                if l == 0 {
                    inputGradient = back
                    break
                }
                // ReLU: no gradient where the activation was clipped to 0.
                for i in 0..<back.count where acts[l][i] <= 0 { back[i] = 0 }
                delta = back
            }
        }
        return (total / Double(batch), inputGradient)
    }

    /// The index of the largest value (the first on ties), from 0.
    static func argmax(_ row: ArraySlice<Float>) -> Int {
        var best = row.startIndex
        for i in row.indices where row[i] > row[best] { best = i }
        return best - row.startIndex
    }
}

/// The dense kernels. Each works on four rows at a time so that one load of a weight (or
/// gradient) row serves four multiply-adds and four independent accumulators hide the
/// multiply-add latency; the plain loops over contiguous rows are what LLVM vectorizes.
enum Kernels {
    /// `output[b][o] = bias[o] + Σᵢ input[b][i]·W[o][i]`, W row-major `[out × in]`.
    static func affine(input: [Float], batch: Int, inWidth: Int, outWidth: Int, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, output: inout [Float]) {
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                let x0 = x.baseAddress!
                for o in 0..<outWidth {
                    let w = weights + o * inWidth
                    var b = 0
                    while b + 4 <= batch {
                        let d = dot4(w, x0 + b * inWidth, inWidth)
                        y[b * outWidth + o] = bias[o] + d.0
                        y[(b + 1) * outWidth + o] = bias[o] + d.1
                        y[(b + 2) * outWidth + o] = bias[o] + d.2
                        y[(b + 3) * outWidth + o] = bias[o] + d.3
                        b += 4
                    }
                    while b < batch {
                        y[b * outWidth + o] = bias[o] + dot(x0 + b * inWidth, w, inWidth)
                        b += 1
                    }
                }
            }
        }
    }

    /// `gradW[o][i] += Σ_b delta[b][o]·input[b][i]`, `gradB[o] += Σ_b delta[b][o]`.
    static func accumulateWeightGradient(delta: [Float], input: [Float], batch: Int, inWidth: Int, outWidth: Int, gradW: UnsafeMutablePointer<Float>, gradB: UnsafeMutablePointer<Float>) {
        input.withUnsafeBufferPointer { x in
            let x0 = x.baseAddress!
            for o in 0..<outWidth {
                let g = gradW + o * inWidth
                var b = 0
                while b + 4 <= batch {
                    let d0 = delta[b * outWidth + o], d1 = delta[(b + 1) * outWidth + o]
                    let d2 = delta[(b + 2) * outWidth + o], d3 = delta[(b + 3) * outWidth + o]
                    gradB[o] += (d0 + d1) + (d2 + d3)
                    if d0 != 0 || d1 != 0 || d2 != 0 || d3 != 0 {
                        axpy4(d0, d1, d2, d3, x0 + b * inWidth, inWidth, g, inWidth)
                    }
                    b += 4
                }
                while b < batch {
                    let d = delta[b * outWidth + o]
                    gradB[o] += d
                    if d != 0 { axpy(d, x0 + b * inWidth, g, inWidth) }
                    b += 1
                }
            }
        }
    }

    /// `output[b][i] = Σ_o delta[b][o]·W[o][i]`.
    static func backpropagate(delta: [Float], batch: Int, inWidth: Int, outWidth: Int, weights: UnsafePointer<Float>, output: inout [Float]) {
        output.withUnsafeMutableBufferPointer { y in
            for b in 0..<batch {
                let row = y.baseAddress! + b * inWidth, d = b * outWidth
                var o = 0
                while o + 4 <= outWidth {
                    axpy4(delta[d + o], delta[d + o + 1], delta[d + o + 2], delta[d + o + 3], weights + o * inWidth, inWidth, row, inWidth)
                    o += 4
                }
                while o < outWidth {
                    axpy(delta[d + o], weights + o * inWidth, row, inWidth)
                    o += 1
                }
            }
        }
    }

    /// The dot products of `w` with the four rows `x`, `x + stride`, `x + 2·stride`,
    /// `x + 3·stride` (stride = n): one load of `w` per four multiply-adds. Multiply then
    /// add, not `addingProduct`: without FMA in the baseline x86-64 target that is a call to
    /// `fmaf` per lane.
    @inline(__always)
    static func dot4(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> (Float, Float, Float, Float) {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        let rw = UnsafeRawPointer(w), rx = UnsafeRawPointer(x), s = 4 * n
        var i = 0
        while i + 16 <= n {
            let wv = rw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            a0 += rx.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) * wv
            a1 += rx.loadUnaligned(fromByteOffset: s + 4 * i, as: SIMD16<Float>.self) * wv
            a2 += rx.loadUnaligned(fromByteOffset: 2 * s + 4 * i, as: SIMD16<Float>.self) * wv
            a3 += rx.loadUnaligned(fromByteOffset: 3 * s + 4 * i, as: SIMD16<Float>.self) * wv
            i += 16
        }
        var r = (a0.sum(), a1.sum(), a2.sum(), a3.sum())
        while i < n {
            r.0 += x[i] * w[i]
            r.1 += x[n + i] * w[i]
            r.2 += x[2 * n + i] * w[i]
            r.3 += x[3 * n + i] * w[i]
            i += 1
        }
        return r
    }

    /// `y += a0·x + a1·(x + stride) + a2·(x + 2·stride) + a3·(x + 3·stride)` over `n` elements.
    @inline(__always)
    static func axpy4(_ a0: Float, _ a1: Float, _ a2: Float, _ a3: Float, _ x: UnsafePointer<Float>, _ stride: Int, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let x1 = x + stride, x2 = x + 2 * stride, x3 = x + 3 * stride
        for i in 0..<n { y[i] += (a0 * x[i] + a1 * x1[i]) + (a2 * x2[i] + a3 * x3[i]) }
    }

    /// Σ aᵢbᵢ with an eight-lane SIMD accumulator, so the reduction vectorizes.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 8 <= n {
            acc += ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// `y += alpha·x` over `n` elements.
    @inline(__always)
    static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += alpha * x[i] }
    }
}

extension Double {
    func exp() -> Double { LibM.exp(self) }
    func log() -> Double { LibM.log(self) }
}
