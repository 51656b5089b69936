import UplinkCodec

/// A multilayer perceptron with ReLU hidden layers and a softmax cross-entropy loss, trained
/// with minibatch SGD: the learning task every pipeline is judged on.
///
/// Parameters live in one flat float32 vector in the order of ``layout`` (tensors sorted by
/// name: `fc1.bias`, `fc1.weight`, `fc2.bias`, …; weights are `[out, in]`, as in PyTorch), so a
/// model *is* an update-shaped vector and a client's update is `local − global`. The kernels
/// are plain loops over contiguous rows that the compiler vectorizes: dot products with eight
/// independent SIMD accumulators for the forward pass, axpy rows for the backward pass.
public struct MLP: Sendable {
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

    /// Mean cross-entropy of the batch `rows` of `data`; when `gradient` is given, adds the
    /// gradient of that mean loss to it.
    @discardableResult
    public func loss(_ parameters: [Float], data: Dataset, rows: ArraySlice<Int>, gradient: UnsafeMutableBufferPointer<Float>?) -> Double {
        let batch = rows.count
        guard batch > 0 else { return 0 }
        let layers = sizes.count - 1
        var input = [Float](repeating: 0, count: batch * sizes[0])
        for (b, r) in rows.enumerated() {
            for i in 0..<sizes[0] { input[b * sizes[0] + i] = data.features[r * sizes[0] + i] }
        }
        let acts = forward(parameters, input: input, batch: batch)
        // Softmax cross-entropy; delta = (softmax − onehot) / batch.
        let classes = sizes[layers]
        var delta = [Float](repeating: 0, count: batch * classes)
        var total = 0.0
        for (b, r) in rows.enumerated() {
            let logits = acts[layers][(b * classes)..<((b + 1) * classes)]
            let m = logits.max()!
            var z = 0.0
            for v in logits { z += Double((v - m)).exp() }
            let label = data.labels[r]
            total += -(Double(logits[logits.startIndex + label] - m) - z.log())
            for c in 0..<classes {
                let pr = Double(logits[logits.startIndex + c] - m).exp() / z
                delta[b * classes + c] = Float((pr - (c == label ? 1 : 0)) / Double(batch))
            }
        }
        guard let gradient else { return total / Double(batch) }
        parameters.withUnsafeBufferPointer { p in
            for l in stride(from: layers - 1, through: 0, by: -1) {
                let inW = sizes[l], outW = sizes[l + 1]
                let gw = gradient.baseAddress! + weightOffset[l], gb = gradient.baseAddress! + biasOffset[l]
                Kernels.accumulateWeightGradient(delta: delta, input: acts[l], batch: batch, inWidth: inW, outWidth: outW, gradW: gw, gradB: gb)
                guard l > 0 else { break }
                var back = [Float](repeating: 0, count: batch * inW)
                Kernels.backpropagate(delta: delta, batch: batch, inWidth: inW, outWidth: outW, weights: p.baseAddress! + weightOffset[l], output: &back)
                // ReLU: no gradient where the activation was clipped to 0.
                for i in 0..<back.count where acts[l][i] <= 0 { back[i] = 0 }
                delta = back
            }
        }
        return total / Double(batch)
    }

    /// The activations of every layer for `batch` inputs (row-major): the input, each ReLU
    /// hidden layer, and the logits.
    func forward(_ parameters: [Float], input: [Float], batch: Int) -> [[Float]] {
        let layers = sizes.count - 1
        var acts = [input]
        parameters.withUnsafeBufferPointer { p in
            for l in 0..<layers {
                var out = [Float](repeating: 0, count: batch * sizes[l + 1])
                Kernels.affine(input: acts[l], batch: batch, inWidth: sizes[l], outWidth: sizes[l + 1],
                               weights: p.baseAddress! + weightOffset[l], bias: p.baseAddress! + biasOffset[l], output: &out)
                if l < layers - 1 { for i in 0..<out.count where out[i] < 0 { out[i] = 0 } }
                acts.append(out)
            }
        }
        return acts
    }

    /// Fraction of `data` classified correctly.
    public func accuracy(_ parameters: [Float], data: Dataset) -> Double {
        var correct = 0
        let layers = sizes.count - 1
        let chunk = 128
        var start = 0
        let classes = sizes[layers]
        while start < data.count {
            let end = min(data.count, start + chunk)
            let batch = end - start
            let logits = forward(parameters, input: Array(data.features[(start * sizes[0])..<(end * sizes[0])]), batch: batch).last!
            for b in 0..<batch {
                let row = logits[(b * classes)..<((b + 1) * classes)]
                if row.firstIndex(of: row.max()!)! - row.startIndex == data.labels[start + b] { correct += 1 }
            }
            start = end
        }
        return Double(correct) / Double(max(1, data.count))
    }
}

/// The dense kernels.
enum Kernels {
    /// `output[b][o] = bias[o] + Σᵢ input[b][i]·W[o][i]`, W row-major `[out × in]`.
    static func affine(input: [Float], batch: Int, inWidth: Int, outWidth: Int, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, output: inout [Float]) {
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                for o in 0..<outWidth {
                    let w = weights + o * inWidth
                    for b in 0..<batch {
                        y[b * outWidth + o] = bias[o] + dot(x.baseAddress! + b * inWidth, w, inWidth)
                    }
                }
            }
        }
    }

    /// `gradW[o][i] += Σ_b delta[b][o]·input[b][i]`, `gradB[o] += Σ_b delta[b][o]`.
    static func accumulateWeightGradient(delta: [Float], input: [Float], batch: Int, inWidth: Int, outWidth: Int, gradW: UnsafeMutablePointer<Float>, gradB: UnsafeMutablePointer<Float>) {
        input.withUnsafeBufferPointer { x in
            for o in 0..<outWidth {
                let g = gradW + o * inWidth
                for b in 0..<batch {
                    let d = delta[b * outWidth + o]
                    if d == 0 { continue }
                    gradB[o] += d
                    axpy(d, x.baseAddress! + b * inWidth, g, inWidth)
                }
            }
        }
    }

    /// `output[b][i] = Σ_o delta[b][o]·W[o][i]`.
    static func backpropagate(delta: [Float], batch: Int, inWidth: Int, outWidth: Int, weights: UnsafePointer<Float>, output: inout [Float]) {
        output.withUnsafeMutableBufferPointer { y in
            for o in 0..<outWidth {
                let w = weights + o * inWidth
                for b in 0..<batch {
                    let d = delta[b * outWidth + o]
                    if d == 0 { continue }
                    axpy(d, w, y.baseAddress! + b * inWidth, inWidth)
                }
            }
        }
    }

    /// Σ aᵢbᵢ with eight independent SIMD accumulators, so the reduction vectorizes.
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
