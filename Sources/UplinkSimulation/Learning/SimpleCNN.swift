import UplinkCodec

/// The "simple CNN" NIID-Bench (Li et al., ICDE 2022) trains on MNIST and Fashion-MNIST:
/// conv 6@5×5 → ReLU → max-pool 2×2 → conv 16@5×5 → ReLU → max-pool 2×2 → FC 256→120 → ReLU →
/// FC 120→84 → ReLU → FC 84→10, 44,426 parameters, softmax cross-entropy.
///
/// Tensors as PyTorch names them (`conv1.weight` `[6, 1, 5, 5]`, …, `fc3.bias` `[10]`), sorted by
/// name in the flat vector; the flatten after the second pool is channel-major (`[16, 4, 4]`), as
/// `x.view(-1, 16*4*4)` does.
///
/// The convolutions are computed on a row-padded grid: output pixel (y, x) sits at `y·W + x` with
/// W the *input* width, so the input under filter tap (ky, kx) is the same contiguous run shifted
/// by `ky·W + kx`, and each tap is one long multiply-add over the whole image that the compiler
/// vectorizes. The grid's columns past the valid width hold values that are never read (pooling
/// reads only valid pixels) and get zero gradient.
public struct SimpleCNN: Classifier {
    public let layout: ModelLayout
    /// Number of classes (10 for Fashion-MNIST).
    public let classes: Int

    static let inputSide = 28
    static let kernel = 5
    static let channels1 = 6, channels2 = 16
    static let side1 = 24, pooled1 = 12  // conv1 output and its pool
    static let side2 = 8, pooled2 = 4    // conv2 output and its pool
    static let flat = channels2 * pooled2 * pooled2  // 256
    static let hidden1 = 120, hidden2 = 84
    /// Grid lengths: the last valid output pixel's index plus one.
    static let grid1 = (side1 - 1) * inputSide + side1      // 668
    static let grid2 = (side2 - 1) * pooled1 + side2        // 92
    /// The largest in-plane tap offset of conv2 plus one, the zero padding of its input gradient.
    static let span2 = (kernel - 1) * pooled1 + kernel      // 53
    /// Scratch floats ``backward(_:image:trace:dFlat:gradient:scratch:)`` needs.
    static let scratchCount = channels1 * grid1 + channels2 * grid2 + channels1 * pooled1 * pooled1
        + Convolution.paddedLength(outputs: channels2, count: grid2, backLength: pooled1 * pooled1, span: span2)

    let conv1W: Int, conv1B: Int, conv2W: Int, conv2B: Int
    /// The fully connected head, 256 → 120 → 84 → classes, as its own MLP-shaped offsets.
    let fcW: [Int], fcB: [Int]
    let fcSizes: [Int]
    /// Tap offsets into the image (conv1) and into the pooled planes (conv2).
    let offsets1: [Int], offsets2: [Int]

    /// The network for `classes` classes.
    public init(classes: Int = 10) {
        self.classes = classes
        let k = Self.kernel
        let specs = [
            TensorSpec(name: "conv1.weight", shape: [Self.channels1, 1, k, k]), TensorSpec(name: "conv1.bias", shape: [Self.channels1]),
            TensorSpec(name: "conv2.weight", shape: [Self.channels2, Self.channels1, k, k]), TensorSpec(name: "conv2.bias", shape: [Self.channels2]),
            TensorSpec(name: "fc1.weight", shape: [Self.hidden1, Self.flat]), TensorSpec(name: "fc1.bias", shape: [Self.hidden1]),
            TensorSpec(name: "fc2.weight", shape: [Self.hidden2, Self.hidden1]), TensorSpec(name: "fc2.bias", shape: [Self.hidden2]),
            TensorSpec(name: "fc3.weight", shape: [classes, Self.hidden2]), TensorSpec(name: "fc3.bias", shape: [classes]),
        ].sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let layout: ModelLayout
        do throws(UplinkError) { layout = try ModelLayout(specs) } catch { preconditionFailure(error.message) }
        self.layout = layout
        func offset(_ name: String) -> Int { layout.offsets[layout.index(of: name)!] }
        conv1W = offset("conv1.weight"); conv1B = offset("conv1.bias")
        conv2W = offset("conv2.weight"); conv2B = offset("conv2.bias")
        fcW = (1...3).map { offset("fc\($0).weight") }
        fcB = (1...3).map { offset("fc\($0).bias") }
        fcSizes = [Self.flat, Self.hidden1, Self.hidden2, classes]
        offsets1 = Convolution.offsets(channels: 1, channelStride: 0, rowStride: Self.inputSide, kernel: k)
        offsets2 = Convolution.offsets(channels: Self.channels1, channelStride: Self.pooled1 * Self.pooled1, rowStride: Self.pooled1, kernel: k)
    }

    /// PyTorch's default initialization (Kaiming-uniform with a = √5 for weights, which is
    /// uniform ±1/√fan-in, and biases uniform ±1/√fan-in), from `seed`.
    public func initialParameters(seed: UInt64) -> [Float] {
        var p = [Float](repeating: 0, count: layout.parameterCount)
        var rng = SplitMix64(seed: seed)
        let k = Self.kernel
        let tensors: [(weight: Int, weights: Int, bias: Int, biases: Int, fanIn: Int)] = [
            (conv1W, Self.channels1 * k * k, conv1B, Self.channels1, k * k),
            (conv2W, Self.channels2 * Self.channels1 * k * k, conv2B, Self.channels2, Self.channels1 * k * k),
        ] + (0..<3).map { (fcW[$0], fcSizes[$0 + 1] * fcSizes[$0], fcB[$0], fcSizes[$0 + 1], fcSizes[$0]) }
        for t in tensors {
            let bound = 1 / Float(t.fanIn).squareRoot()
            for i in 0..<t.weights { p[t.weight + i] = (rng.unitFloat() * 2 - 1) * bound }
            for i in 0..<t.biases { p[t.bias + i] = (rng.unitFloat() * 2 - 1) * bound }
        }
        return p
    }

    /// One example's convolutional activations, kept for the backward pass: views into the
    /// batch's two buffers (``floats`` and ``indices`` per example), which need no zeroing,
    /// because the forward pass writes every element before anything reads it.
    struct Trace {
        static let pooledCount: Int = SimpleCNN.channels1 * SimpleCNN.pooled1 * SimpleCNN.pooled1
        static let floats: Int = SimpleCNN.channels1 * SimpleCNN.grid1 + pooledCount + SimpleCNN.channels2 * SimpleCNN.grid2
        static let indices: Int = pooledCount + SimpleCNN.flat
        let grid1: UnsafeMutablePointer<Float>   // conv1 + ReLU on the 24×28 grid, per channel
        let pool1: UnsafeMutablePointer<Float>   // 6 × 12 × 12
        let grid2: UnsafeMutablePointer<Float>   // conv2 + ReLU on the 8×12 grid, per channel
        let arg1: UnsafeMutablePointer<Int32>    // grid1 index of each pool1 maximum
        let arg2: UnsafeMutablePointer<Int32>    // grid2 index of each flattened maximum
        /// Example `example`'s trace in buffers of `floats · batch` and `indices · batch` elements.
        init(example: Int, floats f: UnsafeMutablePointer<Float>, indices i: UnsafeMutablePointer<Int32>) {
            grid1 = f + example * Self.floats
            pool1 = grid1 + SimpleCNN.channels1 * SimpleCNN.grid1
            grid2 = pool1 + Self.pooledCount
            arg1 = i + example * Self.indices
            arg2 = arg1 + Self.pooledCount
        }
    }

    /// Runs `body` with uninitialized trace buffers for `batch` examples.
    static func withTraces<R>(batch: Int, _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Int32>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: batch * Trace.floats) { f in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: batch * Trace.indices) { i in body(f.baseAddress!, i.baseAddress!) }
        }
    }

    /// The convolutional part for one image: fills `trace` and writes the 256 flattened
    /// features to `out`.
    func features(_ p: UnsafePointer<Float>, image x: UnsafePointer<Float>, trace t: Trace, out: UnsafeMutablePointer<Float>) {
        let k = Self.kernel, w0 = Self.inputSide, w1 = Self.pooled1
        let n1 = Self.channels1 * Self.grid1, n2 = Self.channels2 * Self.grid2
        offsets1.withUnsafeBufferPointer { off in
            Convolution.forward(input: x, offsets: off.baseAddress!, taps: k * k, weights: p + conv1W, bias: p + conv1B, outputs: Self.channels1,
                                out: t.grid1, outStride: Self.grid1, count: Self.grid1)
        }
        Self.relu(t.grid1, n1)
        Self.maxPool(UnsafePointer(t.grid1), rowStride: w0, channelStride: Self.grid1, channels: Self.channels1, pooled: Self.pooled1,
                     out: t.pool1, outRowStride: w1, outChannelStride: w1 * w1, arg: t.arg1)
        offsets2.withUnsafeBufferPointer { off in
            Convolution.forward(input: t.pool1, offsets: off.baseAddress!, taps: Self.channels1 * k * k, weights: p + conv2W, bias: p + conv2B,
                                outputs: Self.channels2, out: t.grid2, outStride: Self.grid2, count: Self.grid2)
        }
        Self.relu(t.grid2, n2)
        Self.maxPool(UnsafePointer(t.grid2), rowStride: w1, channelStride: Self.grid2, channels: Self.channels2, pooled: Self.pooled2,
                     out: out, outRowStride: Self.pooled2, outChannelStride: Self.pooled2 * Self.pooled2, arg: t.arg2)
    }

    /// ReLU in place: a negative value becomes +0, anything else (−0, NaN) stays, written as a
    /// select so that it vectorizes instead of branching on the sign.
    @inline(__always)
    static func relu(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { x[i] = x[i] < 0 ? 0 : x[i] }
    }

    /// 2×2 max pooling with stride 2; `arg` gets the input index (within the channel) of each
    /// maximum, the first one on ties.
    static func maxPool(_ input: UnsafePointer<Float>, rowStride: Int, channelStride: Int, channels: Int, pooled: Int,
                        out: UnsafeMutablePointer<Float>, outRowStride: Int, outChannelStride: Int, arg: UnsafeMutablePointer<Int32>) {
        for c in 0..<channels {
            let plane = input + c * channelStride
            for py in 0..<pooled {
                for px in 0..<pooled {
                    // Selects, not branches: which of the four wins is data, and mispredicted
                    // branches on it cost more than the comparisons.
                    let first = 2 * py * rowStride + 2 * px
                    var best = first, value = plane[first]
                    for candidate in [first + 1, first + rowStride, first + rowStride + 1] {
                        let v = plane[candidate]
                        let wins = v > value
                        best = wins ? candidate : best
                        value = wins ? v : value
                    }
                    let o = c * outChannelStride + py * outRowStride + px
                    out[o] = value
                    arg[o] = Int32(best)
                }
            }
        }
    }

    /// The backward pass of ``features(_:image:trace:out:)`` for one image: `dFlat` is the loss
    /// gradient at the 256 features; adds the convolution gradients to `g`. `scratch` holds at
    /// least ``scratchCount`` floats.
    func backward(_ p: UnsafePointer<Float>, image x: UnsafePointer<Float>, trace t: Trace, dFlat: UnsafePointer<Float>,
                  gradient g: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let k = Self.kernel, w1 = Self.pooled1
        let d1 = scratch, d2 = scratch + Self.channels1 * Self.grid1, dp1 = d2 + Self.channels2 * Self.grid2
        let n1 = Self.channels1 * Self.grid1, n2 = Self.channels2 * Self.grid2, np1 = Self.channels1 * w1 * w1
        for i in 0..<(n1 + n2 + np1) { scratch[i] = 0 }
        // Through the second pool and ReLU: the gradient goes to the maximum, if it was positive.
        for i in 0..<Self.flat {
            let c = i / (Self.pooled2 * Self.pooled2), j = c * Self.grid2 + Int(t.arg2[i])
            if t.grid2[j] > 0 { d2[j] += dFlat[i] }
        }
        // conv2: weight and bias gradients, and the gradient at its input (pool1).
        for co in 0..<Self.channels2 {
            let d = d2 + co * Self.grid2
            var sum: Float = 0
            for i in 0..<Self.grid2 { sum += d[i] }
            g[conv2B + co] += sum
        }
        offsets2.withUnsafeBufferPointer { off in
            Convolution.weightGradient(delta: d2, deltaStride: Self.grid2, outputs: Self.channels2, input: t.pool1, offsets: off.baseAddress!,
                                       taps: Self.channels1 * k * k, count: Self.grid2, gradient: g + conv2W)
            Convolution.inputGradient(delta: d2, deltaStride: Self.grid2, outputs: Self.channels2, weights: p + conv2W, channels: Self.channels1,
                                      kernelArea: k * k, offsets: off.baseAddress!, back: dp1, backStride: w1 * w1, backLength: w1 * w1,
                                      count: Self.grid2, span: Self.span2, padded: dp1 + np1)
        }
        // Through the first pool and ReLU.
        for i in 0..<np1 {
            let c = i / (w1 * w1), j = c * Self.grid1 + Int(t.arg1[i])
            if t.grid1[j] > 0 { d1[j] += dp1[i] }
        }
        // conv1: weight and bias gradients (the image needs none).
        for c in 0..<Self.channels1 {
            let d = d1 + c * Self.grid1
            var sum: Float = 0
            for i in 0..<Self.grid1 { sum += d[i] }
            g[conv1B + c] += sum
        }
        offsets1.withUnsafeBufferPointer { off in
            Convolution.weightGradient(delta: d1, deltaStride: Self.grid1, outputs: Self.channels1, input: x, offsets: off.baseAddress!,
                                       taps: k * k, count: Self.grid1, gradient: g + conv1W)
        }
    }

    public func loss(_ parameters: [Float], data: Dataset, rows: ArraySlice<Int>, gradient: UnsafeMutableBufferPointer<Float>?) -> Double {
        let batch = rows.count
        guard batch > 0 else { return 0 }
        return Self.withTraces(batch: batch) { tf, ti in
            var flat = [Float](repeating: 0, count: batch * Self.flat)
            parameters.withUnsafeBufferPointer { p in
                data.features.withUnsafeBufferPointer { f in
                    flat.withUnsafeMutableBufferPointer { out in
                        for (b, r) in rows.enumerated() {
                            features(p.baseAddress!, image: f.baseAddress! + r * data.featureCount, trace: Trace(example: b, floats: tf, indices: ti),
                                     out: out.baseAddress! + b * Self.flat)
                        }
                    }
                }
            }
            let labels = rows.map { data.labels[$0] }
            let (total, back) = Dense.head(parameters, weights: fcW, biases: fcB, sizes: fcSizes, input: flat, batch: batch, labels: labels,
                                           gradient: gradient, wantsInputGradient: true)
            guard let gradient, let dFlat = back else { return total }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.scratchCount) { s in
                parameters.withUnsafeBufferPointer { p in
                    data.features.withUnsafeBufferPointer { f in
                        dFlat.withUnsafeBufferPointer { d in
                            for (b, r) in rows.enumerated() {
                                backward(p.baseAddress!, image: f.baseAddress! + r * data.featureCount, trace: Trace(example: b, floats: tf, indices: ti),
                                         dFlat: d.baseAddress! + b * Self.flat, gradient: gradient.baseAddress!, scratch: s.baseAddress!)
                            }
                        }
                    }
                }
            }
            return total
        }
    }

    public func accuracy(_ parameters: [Float], data: Dataset) -> Double {
        var correct = 0
        let chunk = 128
        var start = 0
        while start < data.count {
            let end = min(data.count, start + chunk), batch = end - start
            var flat = [Float](repeating: 0, count: batch * Self.flat)
            Self.withTraces(batch: 1) { tf, ti in
                parameters.withUnsafeBufferPointer { p in
                    data.features.withUnsafeBufferPointer { f in
                        flat.withUnsafeMutableBufferPointer { out in
                            for b in 0..<batch {
                                features(p.baseAddress!, image: f.baseAddress! + (start + b) * data.featureCount, trace: Trace(example: 0, floats: tf, indices: ti),
                                         out: out.baseAddress! + b * Self.flat)
                            }
                        }
                    }
                }
            }
            let logits = Dense.forward(parameters, weights: fcW, biases: fcB, sizes: fcSizes, input: flat, batch: batch).last!
            for b in 0..<batch where Dense.argmax(logits[(b * classes)..<((b + 1) * classes)]) == data.labels[start + b] { correct += 1 }
            start = end
        }
        return Double(correct) / Double(max(1, data.count))
    }
}
