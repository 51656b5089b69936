import Foundation
import Testing
@testable import UplinkSimulation
import UplinkCodec
import UplinkTestSupport

/// The Fashion-MNIST loader (the Debian package's files, and hostile ones), the shards
/// partition, the simple CNN's gradient, and short federated runs on a subset.
@Suite struct FashionMNISTTests {
    static let data: (train: Dataset, test: Dataset) = {
        do throws(UplinkError) { return try FashionMNIST.load() } catch { fatalError("Fashion-MNIST: \(error.message) (scripts/bootstrap installs dataset-fashion-mnist)") }
    }()

    /// The files as the package ships them: sizes, balanced classes, the first labels, and the
    /// exact pixel sum (so every byte went to the right place).
    @Test func theDebianFilesLoadWhole() {
        let (train, test) = Self.data
        #expect(train.count == 60_000 && test.count == 10_000)
        #expect(train.featureCount == 784 && train.classCount == 10)
        #expect(Array(train.labels.prefix(10)) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
        #expect(Array(test.labels.prefix(10)) == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
        for c in 0..<10 {
            #expect(train.labels.count { $0 == c } == 6000)
            #expect(test.labels.count { $0 == c } == 1000)
        }
        var sum = 0
        for v in train.features {
            #expect(v >= 0 && v <= 1)
            sum += Int((v * 255).rounded())
        }
        #expect(sum == 3_431_114_169)  // Σ of the training image bytes, from Python's gzip
        #expect(Int(test.features[0..<784].reduce(0) { $0 + Double($1) * 255 }.rounded()) == 33_456)
    }

    @Test func limitsKeepTheFirstExamples() throws {
        let (train, test) = try FashionMNIST.load(trainLimit: 100, testLimit: 7)
        #expect(train.count == 100 && test.count == 7)
        #expect(train.labels == Array(Self.data.train.labels.prefix(100)))
        #expect(train.features == Array(Self.data.train.features.prefix(100 * 784)))
    }

    /// Writes `bytes` gzipped (by the system's gzip) as `name` in `dir`.
    static func gzip(_ bytes: [UInt8], as name: String, in dir: URL) throws {
        let raw = dir.appendingPathComponent(name.replacingOccurrences(of: ".gz", with: ""))
        try Data(bytes).write(to: raw)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "gzip -f -n '\(raw.path)'"]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    static func header(_ magic: UInt32, _ dims: [Int]) -> [UInt8] {
        ([magic] + dims.map { UInt32($0) }).flatMap { v in [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
    }

    /// A folder holding real test files and a hostile training-images file.
    static func folder(trainImages: [UInt8]?, rawTrainImages: [UInt8]? = nil) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fmnist-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
            try FileManager.default.copyItem(atPath: FashionMNIST.defaultDirectory + "/" + name, toPath: dir.appendingPathComponent(name).path)
        }
        if let trainImages { try gzip(trainImages, as: "train-images-idx3-ubyte.gz", in: dir) }
        if let rawTrainImages { try Data(rawTrainImages).write(to: dir.appendingPathComponent("train-images-idx3-ubyte.gz")) }
        return dir
    }

    /// Every malformed file is a typed `.io` error naming the file and the problem; none traps,
    /// and a file that inflates past what the header allows is stopped early (a gzip bomb).
    @Test func hostileFilesAreTypedErrors() throws {
        let pixels = 60_000 * 784
        let good = Self.header(0x803, [60_000, 28, 28])
        let cases: [(String, [UInt8]?, [UInt8]?, String)] = [
            ("wrong magic", Self.header(0x801, [60_000, 28, 28]) + [UInt8](repeating: 0, count: pixels), nil, "magic"),
            ("wrong count", Self.header(0x803, [59_999, 28, 28]) + [UInt8](repeating: 0, count: pixels), nil, "dimension 0 is 59999"),
            ("wrong side", Self.header(0x803, [60_000, 28, 27]) + [UInt8](repeating: 0, count: pixels), nil, "dimension 2 is 27"),
            ("truncated body", good + [UInt8](repeating: 0, count: pixels - 1), nil, "bytes, expected"),
            ("too long", good + [UInt8](repeating: 0, count: pixels + 5_000_000), nil, "more than"),
            ("short header", [0, 0, 8], nil, "shorter than an IDX header"),
            ("not gzip", nil, Array("not a gzip file at all".utf8), "not a valid gzip file"),
            ("truncated gzip", nil, [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 0x63], "not a valid gzip file"),
        ]
        for (what, gz, raw, message) in cases {
            let dir = try Self.folder(trainImages: gz, rawTrainImages: raw)
            defer { try? FileManager.default.removeItem(at: dir) }
            #expect(throws: UplinkError.self, "\(what)") { try FashionMNIST.load(directory: dir.path) }
            do { _ = try FashionMNIST.load(directory: dir.path) } catch {
                #expect(error.code == .io, "\(what)")
                #expect(error.message.contains(message) && error.message.contains("train-images"), "\(what): \(error.message)")
            }
        }
        // A label outside 0–9.
        let dir = try Self.folder(trainImages: nil)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(atPath: FashionMNIST.defaultDirectory + "/train-images-idx3-ubyte.gz", toPath: dir.appendingPathComponent("train-images-idx3-ubyte.gz").path)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("train-labels-idx1-ubyte.gz"))
        try Self.gzip(Self.header(0x801, [60_000]) + [UInt8](repeating: 3, count: 59_999) + [10], as: "train-labels-idx1-ubyte.gz", in: dir)
        do { _ = try FashionMNIST.load(directory: dir.path); Issue.record("label 10 accepted") } catch {
            #expect(error.message.contains("label 10 of example 59999"), "\(error.message)")
        }
    }

    @Test func aMissingFolderNamesTheFix() {
        do { _ = try FashionMNIST.load(directory: "/nonexistent/fmnist"); Issue.record("loaded nothing") } catch {
            #expect(error.code == .io)
            #expect(error.message.contains("/nonexistent/fmnist/train-images-idx3-ubyte.gz") && error.message.contains("--data"), "\(error.message)")
        }
    }

    /// McMahan's split: 200 shards of 300 label-sorted examples, two per client.
    @Test func shardsGiveEachClientFewLabels() throws {
        let labels = Self.data.train.labels
        let shares = Partition.shards(2).split(labels: labels, classes: 10, clients: 100, seed: 4)
        #expect(shares.map(\.count).allSatisfy { $0 == 600 })
        let all = shares.flatMap { $0 }
        #expect(all.count == 60_000 && Set(all).count == 60_000)
        let classesPerClient = shares.map { Set($0.map { labels[$0] }).count }
        #expect(classesPerClient.allSatisfy { (1...4).contains($0) }, "\(classesPerClient)")  // a shard can straddle two labels
        #expect(Double(classesPerClient.reduce(0, +)) / 100 <= 2.3)
        #expect(shares == Partition.shards(2).split(labels: labels, classes: 10, clients: 100, seed: 4))
        #expect(shares != Partition.shards(2).split(labels: labels, classes: 10, clients: 100, seed: 5))
        #expect(try Partition(parsing: "shards:2") == .shards(2))
        #expect(Partition.shards(2).description == "shards:2")
        for bad in ["shards:0", "shards:x", "shards:", "shards:1001", "shards:-2"] {
            #expect(throws: UplinkError.self, "\(bad)") { try Partition(parsing: bad) }
        }
        #expect(throws: UplinkError.self) { try Partition.shards(3).check(examples: 100, clients: 34) }
        try Partition.shards(3).check(examples: 102, clients: 34)
        // Uneven: 1,436 examples into 3 × 7 shards still hands out every example once.
        let uneven = Partition.shards(3).split(labels: Array(LearningTests.digits.train.labels), classes: 10, clients: 7, seed: 1)
        #expect(uneven.flatMap { $0 }.sorted() == Array(0..<1436))
    }

    /// The CNN's layout is PyTorch's, 44,426 parameters.
    @Test func cnnLayoutIsNIIDBenchs() {
        let cnn = SimpleCNN()
        #expect(cnn.layout.parameterCount == 44_426)
        #expect(cnn.layout.tensors.map(\.name) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "fc3.bias", "fc3.weight"])
        #expect(cnn.layout.tensors.first { $0.name == "conv2.weight" }?.shape == [16, 6, 5, 5])
        #expect(MLP(sizes: [784, 200, 200, 10]).layout.parameterCount == 199_210)  // McMahan's 2NN
    }

    /// Backpropagation through both convolutions, both pools and the head agrees with central
    /// finite differences, for every convolution parameter and a sample of the head's.
    @Test func cnnGradientMatchesFiniteDifferences() {
        let cnn = SimpleCNN()
        var rng = SplitMix64(seed: 11)
        let rows = [3, 17, 29][...]
        var p = cnn.initialParameters(seed: 5)
        for i in p.indices { p[i] += (rng.unitFloat() - 0.5) * 0.05 }
        var grad = [Float](repeating: 0, count: p.count)
        let data = Self.data.train
        grad.withUnsafeMutableBufferPointer { _ = cnn.loss(p, data: data, rows: rows, gradient: $0) }
        var indices: [Int] = []
        for t in cnn.layout.tensors.indices {
            let (offset, count, name) = (cnn.layout.offsets[t], cnn.layout.elementCounts[t], cnn.layout.tensors[t].name)
            if name.hasPrefix("conv") || count <= 120 {
                indices.append(contentsOf: offset..<(offset + count))
            } else {
                indices += (0..<120).map { _ in offset + Int(rng.next() % UInt64(count)) }
            }
        }
        // A central difference that straddles a ReLU or max-pool switch measures neither side's
        // slope (at a kink right at the point, their mean). Such indices show up as one-sided
        // differences that disagree; they are set aside (and counted), every other index must
        // match backprop.
        let base = cnn.loss(p, data: data, rows: rows, gradient: nil)
        var bad: [String] = [], kinks = 0
        for i in indices {
            var plus = p, minus = p
            plus[i] += 1e-3
            minus[i] -= 1e-3
            let up = cnn.loss(plus, data: data, rows: rows, gradient: nil), down = cnn.loss(minus, data: data, rows: rows, gradient: nil)
            let forward = (up - base) / Double(plus[i] - p[i]), backward = (base - down) / Double(p[i] - minus[i])
            let central = (up - down) / Double(plus[i] - minus[i])
            if abs(forward - backward) > 2e-3 + 0.1 * abs(central) { kinks += 1; continue }
            if abs(central - Double(grad[i])) > 1e-3 + 0.03 * abs(central) { bad.append("\(i): numeric \(central), backprop \(grad[i])") }
        }
        #expect(indices.count > 3000)
        #expect(kinks * 50 < indices.count, "\(kinks) of \(indices.count) differences straddle a kink")
        #expect(bad.isEmpty, "\(bad.count) of \(indices.count): \(bad.prefix(10))")
        let norm = grad.reduce(0) { $0 + Double($1 * $1) }
        #expect(norm > 1e-6)
    }

    /// A few federated rounds on a subset learn well above chance (10%), for both networks, and
    /// a compressed pipeline does too.
    @Test(arguments: [(ModelKind.mlp(width: 200), "fp32 | stored"), (.simpleCNN, "fp32 | stored"), (.mlp(width: 200), "ef | topk 1% | int8 | lz4")])
    func aShortFederatedRunLearns(model: ModelKind, pipeline: String) throws {
        let train = Self.data.train.subset(Array(0..<3000)), test = Self.data.test.subset(Array(0..<1000))
        var config = FederatedConfig()
        config.model = model
        config.clients = 10
        config.fraction = 0.5
        config.rounds = 4
        config.partition = .iid
        // The CNN needs more steps than the MLP to leave chance: 5 epochs of batch 20 a round.
        config.local = model == .simpleCNN ? LocalTraining(epochs: 5, batchSize: 20, learningRate: 0.05, momentum: 0.9)
                                           : LocalTraining(epochs: 1, batchSize: 50, learningRate: 0.05, momentum: 0.9)
        config.pipeline = try Pipeline(parsing: pipeline)
        let run = try FederatedTraining(config: config, train: train, test: test)
        let (reports, _) = try run.run()
        #expect(reports.count == 4)
        #expect(reports.last!.accuracy > 0.6, "\(model) \(pipeline): \(reports.map(\.accuracy))")
    }

    /// A scenario asking for more shards than examples is refused, not trapped on.
    @Test func aScenarioWithTooManyShardsIsRefused() throws {
        var s = SimulatorTests.small()
        s.partition = "shards:100"
        do { _ = try Simulator(scenario: s, digits: SimulatorTests.digits); Issue.record("accepted") } catch {
            #expect(error.message.contains("shards"), "\(error.message)")
        }
        s.partition = "shards:2"
        _ = try Simulator(scenario: s, digits: SimulatorTests.digits)
    }

    @Test func theCNNRefusesDataThatAreNotImages() {
        var config = FederatedConfig()
        config.model = .simpleCNN
        #expect(throws: UplinkError.self) { try FederatedTraining(config: config, train: LearningTests.digits.train, test: LearningTests.digits.test) }
    }
}
