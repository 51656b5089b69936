import ArgumentParser
import Foundation
import UplinkAggregation
import UplinkCodec
import UplinkPrivacy
import UplinkSimulation

extension UplinkCommand {
    /// `uplink train`: federated training of the digits MLP through a pipeline.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Federated training on the bundled digits data or Fashion-MNIST, every update through the real encoder and aggregator.",
            discussion: """
                Example: uplink train --clients 100 --partition dirichlet:0.5 --rounds 50 --local-epochs 1 --fraction 0.1 \\
                  --pipeline "ef | topk 1% | int8 | lz4" --seed 1
                Fashion-MNIST with McMahan's 2NN: uplink train --dataset fmnist --partition shards:2 --local-epochs 5 --batch-size 50
                (the Debian package dataset-fashion-mnist; scripts/bootstrap installs it). With --model cnn, NIID-Bench's simple CNN.
                Prints test accuracy and cumulative uplink bytes per round (docs/results.md).
                """)

        @Option(help: "Number of clients.") var clients = 100
        @Option(help: "digits (the bundled 8×8 digits) or fmnist (Fashion-MNIST, 28×28).") var dataset = "digits"
        @Option(help: "mlp (two hidden layers of --width) or cnn (NIID-Bench's simple CNN, fmnist only).") var model = "mlp"
        @Option(help: "Keep only the first N training examples (a fast subset).") var trainExamples: Int?
        @Option(help: "Keep only the first N test examples.") var testExamples: Int?
        @Option(help: "iid, dirichlet:α (label skew), quantity:β (size skew) or shards:s (s label-sorted shards per client).") var partition = "dirichlet:0.5"
        @Option(help: "Rounds.") var rounds = 50
        @Option(help: "Local epochs per round (E).") var localEpochs = 1
        @Option(help: "Fraction of clients per round (C).") var fraction = 0.1
        @Option(help: "Local minibatch size (B).") var batchSize = 32
        @Option(help: "Local SGD learning rate.") var lr: Float = 0.05
        @Option(help: "Local SGD momentum.") var momentum: Float = 0.9
        @Option(help: "FedProx proximal term μ (0 = FedAvg).") var proxMu: Float = 0
        @Option(help: "Local SGD L2 weight decay λ, as PyTorch's weight_decay (NIID-Bench: 1e-5; 0 = none).") var weightDecay: Float = 0
        @Option(help: "Uplink pipeline.") var pipeline = "fp32 | stored"
        @Option(parsing: .upToNextOption, help: "Server strategy, e.g. fedavg or \"fedadam lr=0.01\".") var strategy: [String] = ["fedavg"]
        @Option(help: "Hidden width of the features → w → w → classes MLP (default 1024 on digits, 200 on fmnist: the 2NN).") var width: Int?
        @Option(help: "Seed (initialization, partition, selection, local training; with central DP the selection only with --dp-seed).") var seed: UInt64 = 1
        @Option(help: "Clients trained in parallel.") var threads = 2
        @Option(help: "The digits file (fixtures/digits/digits.csv.gz) or the Fashion-MNIST folder (/usr/share/datasets/fashion-mnist).") var data: String?
        @Option(help: "Central DP: clip each update to this L2 norm (DP-FedAvg; docs/privacy.md).") var dpClip: Double?
        @Option(help: "Central DP noise multiplier z.") var dpNoise: Double?
        @Option(help: "Adaptive clipping toward this quantile of update norms (Andrew et al. 2021).") var dpAdaptiveQuantile: Double?
        @Option(help: "δ for the reported ε.") var dpDelta: Double = 1e-5
        @Option(help: "Stop before ε would exceed this budget.") var dpEpsilonBudget: Double?
        @Option(help: "Seed for the DP client selection and noise, for a reproducible run (default: the system's secure generator, which the reported ε assumes).") var dpSeed: UInt64?
        @Flag(help: "Print JSON: per-round rows and a summary.") var json = false

        func run() throws {
            try reportingErrors(json: json) {
                var config = FederatedConfig()
                guard clients >= 1, rounds >= 1, localEpochs >= 1, batchSize >= 1, width ?? 1 >= 1, (1...64).contains(threads) else {
                    throw UplinkError(.invalidArgument, "clients, rounds, local epochs, batch size and width must be ≥ 1; threads 1…64")
                }
                guard trainExamples ?? 1 >= 1, testExamples ?? 1 >= 1 else { throw UplinkError(.invalidArgument, "--train-examples and --test-examples must be ≥ 1") }
                guard fraction > 0, fraction <= 1 else { throw UplinkError(.invalidArgument, "--fraction must be in (0, 1]") }
                guard ["digits", "fmnist"].contains(dataset) else { throw UplinkError(.invalidArgument, "--dataset must be digits or fmnist, not \"\(dataset)\"") }
                let width = width ?? (dataset == "fmnist" ? 200 : 1024)
                switch model {
                case "mlp": config.model = .mlp(width: width)
                case "cnn":
                    guard self.width == nil else { throw UplinkError(.invalidArgument, "--width is the MLP's; the CNN's layers are fixed") }
                    config.model = .simpleCNN
                default: throw UplinkError(.invalidArgument, "--model must be mlp or cnn, not \"\(model)\"")
                }
                try MLP.checkSizes([dataset == "fmnist" ? 784 : 64, width, width, 10])
                guard lr > 0, lr.isFinite, momentum >= 0, momentum < 1, proxMu >= 0, proxMu.isFinite, weightDecay >= 0, weightDecay.isFinite else {
                    throw UplinkError(.invalidArgument, "--lr must be finite and > 0, --momentum in [0, 1), --prox-mu and --weight-decay finite and ≥ 0")
                }
                config.clients = clients
                config.partition = try Partition(parsing: partition)
                config.rounds = rounds
                config.fraction = fraction
                config.local = LocalTraining(epochs: localEpochs, batchSize: batchSize, learningRate: lr, momentum: momentum, proximalMu: proxMu,
                                             weightDecay: weightDecay)
                config.pipeline = try Pipeline(parsing: pipeline)
                config.strategy = try Strategy(parsing: strategy.joined(separator: " "))
                config.seed = seed
                config.threads = threads
                switch (dpClip, dpNoise) {
                case (nil, nil):
                    guard dpAdaptiveQuantile == nil, dpEpsilonBudget == nil else { throw UplinkError(.invalidArgument, "--dp-adaptive-quantile and --dp-epsilon-budget need --dp-clip and --dp-noise") }
                case let (c?, z?):
                    guard c > 0, z > 0, c.isFinite, z.isFinite, dpDelta > 0, dpDelta < 1 else { throw UplinkError(.invalidArgument, "--dp-clip and --dp-noise must be finite and > 0, --dp-delta in (0, 1)") }
                    guard !config.strategy.needsAllUpdates else {
                        throw UplinkError(.invalidArgument, "central DP bounds each client's influence on a mean; \(config.strategy) is not a mean (use fedavg, fedavgm, fedadam, fedyogi, fedadagrad or norm-bounded)")
                    }
                    if let q = dpAdaptiveQuantile, !(q > 0 && q < 1) { throw UplinkError(.invalidArgument, "--dp-adaptive-quantile must be in (0, 1)") }
                    config.dp = DPSettings(clip: c, noiseMultiplier: z, adaptiveQuantile: dpAdaptiveQuantile, delta: dpDelta, epsilonBudget: dpEpsilonBudget, seed: dpSeed)
                default:
                    throw UplinkError(.invalidArgument, "central DP needs both --dp-clip and --dp-noise")
                }
                var (train, test) = dataset == "fmnist"
                    ? try FashionMNIST.load(directory: data ?? FashionMNIST.defaultDirectory, trainLimit: trainExamples, testLimit: testExamples)
                    : try Digits.load(path: data ?? Digits.defaultPath())
                if dataset == "digits" {
                    if let n = trainExamples, n < train.count { train = train.subset(Array(0..<n)) }
                    if let n = testExamples, n < test.count { test = test.subset(Array(0..<n)) }
                }
                let run = try FederatedTraining(config: config, train: train, test: test)
                let started = Date()
                if !json {
                    print("federated training on \(dataset) (\(train.count) training, \(test.count) test examples), \(config.model): \(clients) clients, \(partition), \(rounds) rounds, C=\(fraction), E=\(localEpochs), B=\(batchSize); \(run.model.layout.parameterCount) parameters")
                    print("pipeline \(config.pipeline); strategy \(config.strategy)")
                    print("round  accuracy  uplink bytes  cumulative  ratio to fp32  rel. error" + (config.dp == nil ? "" : "        ε   clip"))
                }
                let (reports, _) = try run.run { r in
                    guard !json else { return }
                    print(Self.roundLine(r))
                }
                guard let last = reports.last else {
                    throw UplinkError(.invalidArgument, "the ε budget \(dpEpsilonBudget ?? 0) is exhausted before the first round")
                }
                let summary: [String: Any] = [
                    "pipeline": config.pipeline.description, "strategy": config.strategy.description,
                    "dataset": dataset, "model": model, "width": model == "mlp" ? width : 0,
                    "train_examples": train.count, "test_examples": test.count, "lr": shortestDouble(lr), "momentum": shortestDouble(momentum),
                    "partition": config.partition.description, "clients": clients, "rounds": rounds, "fraction": fraction,
                    "local_epochs": localEpochs, "batch_size": batchSize, "seed": seed, "parameters": run.model.layout.parameterCount,
                    "final_accuracy": last.accuracy, "best_accuracy": reports.map(\.accuracy).max()!,
                    "total_uplink_bytes": last.cumulativeUplinkBytes, "float32_uplink_bytes": last.cumulativeFloat32Bytes,
                    "ratio_to_float32": Double(last.cumulativeFloat32Bytes) / Double(max(1, last.cumulativeUplinkBytes)),
                    "seconds": Date().timeIntervalSince(started), "rounds_run": reports.count,
                    "prox_mu": shortestDouble(proxMu), "weight_decay": shortestDouble(weightDecay),
                ].merging(last.privacy.map { ["epsilon": $0.epsilon, "delta": dpDelta, "dp_noise_multiplier": dpNoise ?? 0, "privacy": $0.jsonObject] } ?? [:]) { a, _ in a }
                if json {
                    printJSON([
                        "rounds": reports.map {
                            ["round": $0.round, "accuracy": $0.accuracy, "reported": $0.reported, "uplink_bytes": $0.uplinkBytes,
                             "cumulative_uplink_bytes": $0.cumulativeUplinkBytes, "cumulative_float32_bytes": $0.cumulativeFloat32Bytes,
                             "mean_relative_error": $0.meanRelativeError].merging($0.epsilon.map { ["epsilon": $0] } ?? [:]) { a, _ in a } as [String: Any]
                        },
                        "summary": summary,
                    ])
                } else {
                    print(Self.finalLine(
                        accuracy: last.accuracy, uplinkBytes: last.cumulativeUplinkBytes, ratio: summary["ratio_to_float32"] as! Double,
                        seconds: summary["seconds"] as! Double, epsilon: last.epsilon, delta: dpDelta, rounds: reports.count))
                    if let p = last.privacy {
                        print(String(format: "privacy: accounted as Poisson sampling at q = %g (m/N) with z = %g; ", p.maxSamplingRate, p.noiseMultiplier) + p.randomnessNote)
                    }
                }
            }
        }

        /// One row of the per-round table; `%ld` because the byte counts pass 2^31 (`%d` is 32-bit).
        static func roundLine(_ r: RoundReport) -> String {
            String(format: "%5ld  %7.2f%%  %12ld  %10ld  %12.1f×  %10.3f", r.round, 100 * r.accuracy, r.uplinkBytes, r.cumulativeUplinkBytes,
                   Double(r.cumulativeFloat32Bytes) / Double(max(1, r.cumulativeUplinkBytes)), r.meanRelativeError)
                + (r.epsilon.map { String(format: "  %7.3f  %5.3g", $0, r.clip ?? 0) } ?? "")
        }

        /// The last line of the text output; counts are printed in full whatever their size.
        static func finalLine(accuracy: Double, uplinkBytes: Int, ratio: Double, seconds: Double, epsilon: Double?, delta: Double, rounds: Int) -> String {
            String(format: "final accuracy %.2f%%, ", 100 * accuracy) + "\(uplinkBytes) uplink bytes ("
                + String(format: "%.1f× fewer than float32), %.1f s", ratio, seconds)
                + (epsilon.map { String(format: "; ε = %.3f at δ = %g", $0, delta) + " after \(rounds) rounds" } ?? "")
        }
    }
}

/// `x` as the Double its shortest decimal spells (0.01, not 0.009999999776), for JSON.
private func shortestDouble(_ x: Float) -> Double {
    Double("\(x)") ?? Double(x)
}
