import Foundation
import UplinkCodec

/// Fashion-MNIST (Xiao et al. 2017: 60,000 training and 10,000 test images, 28×28 grey, 10
/// classes of clothing), read from the four gzip IDX files the Debian package
/// `dataset-fashion-mnist` installs in `/usr/share/datasets/fashion-mnist` (`scripts/bootstrap`
/// installs it).
public enum FashionMNIST {
    /// Where the Debian package puts the files.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    /// Image side, in pixels.
    public static let side = 28
    /// The class names, by label.
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    /// The training and test sets from `directory`, pixels scaled to [0, 1] (no other
    /// normalization), in file order. `trainLimit` / `testLimit` keep only the first so many
    /// examples of each (a fast subset for tests); `nil` keeps all.
    /// - Throws: ``UplinkError/Code/io`` when a file is missing (naming the Debian package), is
    ///   not gzip, or its IDX header or length is not the expected one.
    public static func load(directory: String = defaultDirectory, trainLimit: Int? = nil, testLimit: Int? = nil) throws(UplinkError) -> (train: Dataset, test: Dataset) {
        let train = try set(directory: directory, prefix: "train", expected: 60_000, limit: trainLimit)
        let test = try set(directory: directory, prefix: "t10k", expected: 10_000, limit: testLimit)
        return (train, test)
    }

    static func set(directory: String, prefix: String, expected: Int, limit: Int?) throws(UplinkError) -> Dataset {
        let imagesPath = directory + "/\(prefix)-images-idx3-ubyte.gz"
        let labelsPath = directory + "/\(prefix)-labels-idx1-ubyte.gz"
        let pixels = side * side
        let images = try IDX.read(path: imagesPath, magic: 0x0000_0803, dimensions: [expected, side, side])
        let labels = try IDX.read(path: labelsPath, magic: 0x0000_0801, dimensions: [expected])
        let count = min(expected, max(0, limit ?? expected))
        var features = [Float](repeating: 0, count: count * pixels)
        images.body.withUnsafeBufferPointer { src in
            features.withUnsafeMutableBufferPointer { dst in
                for i in 0..<(count * pixels) { dst[i] = Float(src[images.start + i]) * (1 / 255) }
            }
        }
        var classes: [Int] = []
        classes.reserveCapacity(count)
        for i in 0..<count {
            let label = Int(labels.body[labels.start + i])
            guard label < 10 else { throw UplinkError(.io, "\(labelsPath): label \(label) of example \(i) is not a class 0–9") }
            classes.append(label)
        }
        return Dataset(featureCount: pixels, classCount: 10, features: features, labels: classes)
    }
}

/// The IDX format of the MNIST files: a big-endian header (two zero bytes, a type byte — 0x08
/// for unsigned bytes — the number of dimensions, then each dimension as a 32-bit count) and
/// the values, row-major.
enum IDX {
    /// The decompressed file and where its values start, once the header is checked to be
    /// unsigned bytes of exactly `dimensions` and the length to match them.
    static func read(path: String, magic: UInt32, dimensions: [Int]) throws(UplinkError) -> (body: [UInt8], start: Int) {
        guard let gz = FileManager.default.contents(atPath: path) else {
            let hint = path.hasPrefix(FashionMNIST.defaultDirectory)
                ? "install the Debian package dataset-fashion-mnist (scripts/bootstrap does) or pass --data DIR"
                : "pass --data DIR, the folder holding the four *-ubyte.gz files"
            throw UplinkError(.io, "\(path): cannot read the Fashion-MNIST file; \(hint)")
        }
        let headerSize = 4 + 4 * dimensions.count
        let expectedSize = headerSize + dimensions.reduce(1, *)
        let body = try Gzip.decompress([UInt8](gz), what: path, limit: expectedSize)
        guard body.count >= headerSize else { throw UplinkError(.io, "\(path): \(body.count) bytes is shorter than an IDX header") }
        let found = UInt32(body[0]) << 24 | UInt32(body[1]) << 16 | UInt32(body[2]) << 8 | UInt32(body[3])
        guard found == magic else {
            throw UplinkError(.io, "\(path): IDX magic 0x\(String(found, radix: 16)) is not 0x\(String(magic, radix: 16)) (unsigned bytes, \(dimensions.count) dimensions)")
        }
        for (i, d) in dimensions.enumerated() {
            let o = 4 + 4 * i
            let n = Int(UInt32(body[o]) << 24 | UInt32(body[o + 1]) << 16 | UInt32(body[o + 2]) << 8 | UInt32(body[o + 3]))
            guard n == d else { throw UplinkError(.io, "\(path): IDX dimension \(i) is \(n), expected \(d)") }
        }
        guard body.count == expectedSize else {
            throw UplinkError(.io, "\(path): \(body.count) bytes, expected \(expectedSize) for dimensions \(dimensions)")
        }
        return (body, headerSize)
    }
}
