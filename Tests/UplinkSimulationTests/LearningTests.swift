import Foundation
import Testing
@testable import UplinkSimulation
import UplinkCodec
import UplinkTestSupport

@Suite struct LearningTests {
    static let digits = try! Digits.load(path: Fixtures.url("digits/digits.csv.gz").path)

    @Test func digitsSplitIsTheDocumentedOne() {
        #expect(Self.digits.train.count == 1436 && Self.digits.test.count == 361)
        let testRows = (0..<1797).filter(Digits.isTestRow)
        #expect(Array(testRows.prefix(10)) == [0, 11, 12, 13, 24, 25, 26, 37, 38, 39])
        #expect(testRows.reduce(0, +) == 324_703)
        #expect(Self.digits.train.features.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(Set(Self.digits.test.labels) == Set(0..<10))
    }

    /// Backpropagation agrees with central finite differences.
    @Test func gradientMatchesFiniteDifferences() {
        let model = MLP(sizes: [6, 5, 4, 3])
        var rng = SplitMix64(seed: 7)
        let data = Dataset(featureCount: 6, classCount: 3, features: (0..<24).map { _ in rng.unitFloat() }, labels: [0, 2, 1, 2])
        var p = model.initialParameters(seed: 3)
        for i in p.indices { p[i] += (rng.unitFloat() - 0.5) * 0.2 }  // non-zero biases too
        let rows = [0, 1, 2, 3][...]
        var grad = [Float](repeating: 0, count: p.count)
        grad.withUnsafeMutableBufferPointer { _ = model.loss(p, data: data, rows: rows, gradient: $0) }
        var checked = 0
        for i in p.indices {
            var plus = p, minus = p
            let h: Float = 1e-2
            plus[i] += h
            minus[i] -= h
            let numeric = (model.loss(plus, data: data, rows: rows, gradient: nil) - model.loss(minus, data: data, rows: rows, gradient: nil)) / Double(2 * h)
            #expect(abs(numeric - Double(grad[i])) <= 2e-3 + 0.02 * abs(numeric), "parameter \(i): numeric \(numeric), backprop \(grad[i])")
            checked += 1
        }
        #expect(checked == model.layout.parameterCount)
    }

    /// Centralized training on the digits reaches 95% test accuracy (a narrower network than the
    /// default, so the debug-build test stays fast; the default one is in docs/results.md).
    @Test func centralizedTrainingReaches95Percent() {
        let model = MLP.digits(width: 64)
        let p = FederatedTraining.centralized(model: model, train: Self.digits.train, epochs: 15, local: LocalTraining(batchSize: 32, learningRate: 0.05, momentum: 0.9), seed: 1)
        let accuracy = model.accuracy(p, data: Self.digits.test)
        #expect(accuracy >= 0.95, "test accuracy \(accuracy)")
    }

    @Test(arguments: [Partition.iid, .dirichlet(0.5), .dirichlet(0.1), .quantity(1.0)])
    func everySampleGoesToExactlyOneClient(partition: Partition) {
        let shares = partition.split(labels: Self.digits.train.labels, classes: 10, clients: 100, seed: 1)
        let all = shares.flatMap { $0 }
        #expect(all.count == Self.digits.train.count)
        #expect(Set(all).count == all.count)
        #expect(shares.allSatisfy { !$0.isEmpty })
        #expect(shares == partition.split(labels: Self.digits.train.labels, classes: 10, clients: 100, seed: 1))
    }

    /// Smaller α concentrates each client on fewer labels.
    @Test func dirichletSkewRespondsToAlpha() {
        func meanEntropy(_ alpha: Double) -> Double {
            let shares = Partition.dirichlet(alpha).split(labels: Self.digits.train.labels, classes: 10, clients: 50, seed: 2)
            return shares.map { share in
                var counts = [Double](repeating: 0, count: 10)
                for i in share { counts[Self.digits.train.labels[i]] += 1 }
                return counts.filter { $0 > 0 }.reduce(0.0) { $0 - ($1 / Double(share.count)) * log2($1 / Double(share.count)) }
            }.reduce(0, +) / 50
        }
        let (low, mid, high) = (meanEntropy(0.1), meanEntropy(1), meanEntropy(100))
        #expect(low < mid && mid < high, "\(low) \(mid) \(high)")
        #expect(high > 2.8)  // near log₂10 = 3.32: close to IID
        #expect(low < 1.5)
        let iid = Partition.iid.split(labels: Self.digits.train.labels, classes: 10, clients: 50, seed: 2).map(\.count)
        let quantity = Partition.quantity(0.5).split(labels: Self.digits.train.labels, classes: 10, clients: 50, seed: 2).map(\.count)
        #expect(iid.max()! - iid.min()! <= 1)
        #expect(quantity.max()! > 3 * quantity.min()!)
    }

    /// A short federated run is reproducible for a seed, through the real encoder and aggregator.
    @Test func federatedRunIsDeterministic() throws {
        var config = FederatedConfig()
        config.clients = 20
        config.rounds = 5
        config.fraction = 0.25
        config.model = .mlp(width: 16)
        config.local.epochs = 5
        config.partition = .dirichlet(0.5)
        config.pipeline = try Pipeline(parsing: "ef | topk 10% | int8 | lz4")
        let a = try FederatedTraining(config: config, train: Self.digits.train, test: Self.digits.test).run()
        let b = try FederatedTraining(config: config, train: Self.digits.train, test: Self.digits.test).run()
        #expect(a.parameters == b.parameters)
        #expect(a.reports.map(\.accuracy) == b.reports.map(\.accuracy))
        #expect(a.reports.map(\.cumulativeUplinkBytes) == b.reports.map(\.cumulativeUplinkBytes))
        #expect(a.reports.allSatisfy { $0.reported == 5 })
        #expect(a.reports.last!.accuracy > 0.3)
        config.seed = 2
        let c = try FederatedTraining(config: config, train: Self.digits.train, test: Self.digits.test).run()
        #expect(c.parameters != a.parameters)
    }

    @Test func partitionTextParses() throws {
        #expect(try Partition(parsing: "iid") == .iid)
        #expect(try Partition(parsing: "dirichlet:0.5") == .dirichlet(0.5))
        #expect(try Partition(parsing: "quantity:2") == .quantity(2))
        #expect(try Partition(parsing: "shards:2") == .shards(2))
        for bad in ["", "dirichlet", "dirichlet:-1", "dirichlet:x", "iid:3", "shards:0", "shards:x", "shards", "pathological:2"] {
            #expect(throws: UplinkError.self) { try Partition(parsing: bad) }
        }
    }

    /// Weight decay as PyTorch's SGD(weight_decay=λ): one full-batch step without momentum moves
    /// the weights by exactly −lr·λ·w more than the same step without it (to float rounding),
    /// and λ = 0 is the run from before the option existed, bit for bit.
    @Test func weightDecayAddsLambdaTimesTheWeightsToTheGradient() {
        let model = MLP.digits(width: 16)
        let data = Self.digits.train
        let start = model.initialParameters(seed: 3)
        let lr: Float = 0.05, decay: Float = 0.01
        let step = { (wd: Float) in
            LocalTraining(epochs: 1, batchSize: data.count, learningRate: lr, momentum: 0, weightDecay: wd).train(model, from: start, data: data, seed: 1)
        }
        let plain = step(0), decayed = step(decay)
        var gradient = [Float](repeating: 0, count: start.count)
        var rng = SplitMix64(seed: 1)  // the batch order train(…, seed: 1) draws
        let order = Array(0..<data.count).shuffled(using: &rng)
        gradient.withUnsafeMutableBufferPointer { g in _ = model.loss(start, data: data, rows: order[...], gradient: g) }
        let reference = zip(start, gradient).map { $0 - lr * $1 }
        #expect(plain.map(\.bitPattern) == reference.map(\.bitPattern), "λ = 0 changed the update")
        var worst: Float = 0
        for i in start.indices {
            let expected = -lr * decay * start[i]
            let got = decayed[i] - plain[i]
            worst = max(worst, abs(got - expected) / max(abs(expected), 1e-6))
        }
        #expect(worst < 0.05, "worst relative deviation \(worst)")
        // Over many steps the decayed weights end smaller.
        let long = { (wd: Float) in
            LocalTraining(epochs: 3, batchSize: 32, learningRate: lr, momentum: 0.9, weightDecay: wd).train(model, from: start, data: data, seed: 1)
        }
        let norm = { (w: [Float]) in w.reduce(0) { $0 + Double($1 * $1) } }
        #expect(norm(long(0.05)) < norm(long(0)))
    }
}
