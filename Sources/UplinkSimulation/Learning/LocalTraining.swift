import UplinkCodec

/// How a client trains locally each round.
public struct LocalTraining: Hashable, Sendable {
    /// Passes over the client's data (E).
    public var epochs: Int
    /// Minibatch size (B).
    public var batchSize: Int
    /// SGD learning rate.
    public var learningRate: Float
    /// SGD momentum (the buffer starts at zero each round).
    public var momentum: Float
    /// FedProx proximal term μ (Li et al. 2020): adds μ(w − w_global) to the gradient; 0 is FedAvg.
    public var proximalMu: Float
    /// L2 weight decay λ, as PyTorch's `SGD(weight_decay=λ)`: adds λ·w to the gradient before
    /// the momentum buffer (NIID-Bench trains with 1e-5); 0 is none.
    public var weightDecay: Float

    /// Local training settings.
    public init(epochs: Int = 1, batchSize: Int = 32, learningRate: Float = 0.05, momentum: Float = 0.9, proximalMu: Float = 0,
                weightDecay: Float = 0) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.momentum = momentum
        self.proximalMu = proximalMu
        self.weightDecay = weightDecay
    }

    /// Trains `model` from `start` on `data` (the client's examples) and returns the new
    /// parameters. Batches follow a shuffle seeded by `seed`.
    public func train(_ model: some Classifier, from start: [Float], data: Dataset, seed: UInt64) -> [Float] {
        var w = start
        var velocity = [Float](repeating: 0, count: w.count)
        var gradient = [Float](repeating: 0, count: w.count)
        var rng = SplitMix64(seed: seed)
        for _ in 0..<epochs {
            let order = Array(0..<data.count).shuffled(using: &rng)
            var i = 0
            while i < order.count {
                let rows = order[i..<min(order.count, i + batchSize)]
                for j in 0..<gradient.count { gradient[j] = 0 }
                gradient.withUnsafeMutableBufferPointer { g in _ = model.loss(w, data: data, rows: rows, gradient: g) }
                let lr = learningRate, mu = momentum, prox = proximalMu, decay = weightDecay
                w.withUnsafeMutableBufferPointer { w in
                    velocity.withUnsafeMutableBufferPointer { v in
                        gradient.withUnsafeBufferPointer { g in
                            start.withUnsafeBufferPointer { s in
                                for j in 0..<w.count {
                                    // Each term only when it is on, so runs without it are
                                    // bit-identical to before it existed (x + 0·w can flip a zero's sign).
                                    var grad = prox == 0 ? g[j] : g[j] + prox * (w[j] - s[j])
                                    if decay != 0 { grad += decay * w[j] }
                                    v[j] = mu * v[j] + grad
                                    w[j] -= lr * v[j]
                                }
                            }
                        }
                    }
                }
                i += batchSize
            }
        }
        return w
    }
}
