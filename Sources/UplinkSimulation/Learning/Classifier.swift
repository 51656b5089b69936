import UplinkCodec

/// A classifier that ``LocalTraining`` can train: its parameters are one flat float32 vector
/// in the order of ``layout``, so a model is an update-shaped vector and a client's update is
/// `local − global`.
public protocol Classifier: Sendable {
    /// The parameter layout (tensors sorted by name, PyTorch shapes).
    var layout: ModelLayout { get }
    /// The starting parameters for `seed`.
    func initialParameters(seed: UInt64) -> [Float]
    /// Mean cross-entropy of the batch `rows` of `data`; when `gradient` is given, adds the
    /// gradient of that mean loss to it.
    @discardableResult
    func loss(_ parameters: [Float], data: Dataset, rows: ArraySlice<Int>, gradient: UnsafeMutableBufferPointer<Float>?) -> Double
    /// Fraction of `data` classified correctly.
    func accuracy(_ parameters: [Float], data: Dataset) -> Double
}

/// Which network a federated run trains.
public enum ModelKind: Hashable, Sendable, CustomStringConvertible {
    /// Two ReLU hidden layers of `width` (features → w → w → classes): on the digits the
    /// default network (w = 1024), on Fashion-MNIST with w = 200 the "2NN" of McMahan et al.
    /// 2017 (199,210 parameters).
    case mlp(width: Int)
    /// The "simple CNN" of NIID-Bench (Li et al. 2022) for 28×28 grey images: ``SimpleCNN``.
    case simpleCNN

    public var description: String {
        switch self {
        case .mlp(let w): "mlp (width \(w))"
        case .simpleCNN: "simple CNN"
        }
    }

    /// The network for `data`'s features and classes.
    /// - Throws: ``UplinkError/Code/invalidArgument`` when the widths are out of range or the
    ///   CNN is asked for data that are not 28×28 images.
    public func model(for data: Dataset) throws(UplinkError) -> any Classifier {
        switch self {
        case .mlp(let width):
            let sizes = [data.featureCount, width, width, data.classCount]
            try MLP.checkSizes(sizes)
            return MLP(sizes: sizes)
        case .simpleCNN:
            guard data.featureCount == SimpleCNN.inputSide * SimpleCNN.inputSide else {
                throw UplinkError(.invalidArgument, "the simple CNN takes 28×28 images (784 features); this dataset has \(data.featureCount) (use --dataset fmnist, or --model mlp)")
            }
            return SimpleCNN(classes: data.classCount)
        }
    }
}
