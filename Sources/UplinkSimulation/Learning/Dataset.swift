import CUplinkZlib
import Foundation
import UplinkCodec

/// A labelled classification dataset held as dense float32 features.
public struct Dataset: Sendable {
    /// Features per example.
    public let featureCount: Int
    /// Number of classes.
    public let classCount: Int
    /// Row-major features, `count × featureCount`.
    public let features: [Float]
    /// Labels in `0..<classCount`.
    public let labels: [Int]

    /// Number of examples.
    public var count: Int { labels.count }

    /// A dataset; `features.count` must be `labels.count × featureCount`.
    public init(featureCount: Int, classCount: Int, features: [Float], labels: [Int]) {
        precondition(features.count == labels.count * featureCount)
        self.featureCount = featureCount
        self.classCount = classCount
        self.features = features
        self.labels = labels
    }

    /// The examples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Dataset {
        var f: [Float] = []
        f.reserveCapacity(indices.count * featureCount)
        for i in indices { f.append(contentsOf: features[(i * featureCount)..<((i + 1) * featureCount)]) }
        return Dataset(featureCount: featureCount, classCount: classCount, features: f, labels: indices.map { labels[$0] })
    }
}

/// The UCI handwritten digits (1,797 8×8 images, 10 classes) as scikit-learn ships them, from
/// `fixtures/digits/digits.csv.gz` (source, license and split in `fixtures/digits/README.md`).
public enum Digits {
    /// The train and test sets: the fixed hash split (1,436 / 361 rows), pixels scaled to [0, 1].
    public static func load(path: String) throws(UplinkError) -> (train: Dataset, test: Dataset) {
        guard let gz = FileManager.default.contents(atPath: path) else {
            throw UplinkError(.io, "\(path): cannot read the digits data (pass --data PATH to fixtures/digits/digits.csv.gz)")
        }
        let text = try Gzip.decompress([UInt8](gz), what: path, limit: 1 << 20)
        var train: ([Float], [Int]) = ([], [])
        var test: ([Float], [Int]) = ([], [])
        var row = 0
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: ",")
            guard fields.count == 65 else { continue }
            let values = fields.compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard values.count == 65, let label = Int(exactly: values[64]), (0..<10).contains(label) else {
                throw UplinkError(.io, "\(path): row \(row) is not 64 pixels and a label 0–9")
            }
            let pixels = values[0..<64].map { Float($0 / 16) }
            if isTestRow(row) {
                test.0 += pixels; test.1.append(label)
            } else {
                train.0 += pixels; train.1.append(label)
            }
            row += 1
        }
        guard row == 1797 else { throw UplinkError(.io, "\(path): expected 1,797 rows, found \(row)") }
        return (Dataset(featureCount: 64, classCount: 10, features: train.0, labels: train.1),
                Dataset(featureCount: 64, classCount: 10, features: test.0, labels: test.1))
    }

    /// Row `i` is a test row iff `((i · 2654435761) mod 2³²) mod 5 == 0`.
    public static func isTestRow(_ i: Int) -> Bool {
        UInt32(truncatingIfNeeded: UInt64(i) &* 2_654_435_761) % 5 == 0
    }

    /// Finds the bundled data: `fixtures/digits/digits.csv.gz` under the working directory or
    /// above the executable (a checkout's `.build/<config>/uplink`).
    public static func defaultPath() -> String {
        let relative = "fixtures/digits/digits.csv.gz"
        var candidates = [FileManager.default.currentDirectoryPath + "/" + relative]
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent(relative).path)
            dir.deleteLastPathComponent()
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? relative
    }
}

/// gzip (RFC 1952) decompression through zlib.
enum Gzip {
    /// The decompressed bytes of `input`; more than `limit` bytes is an error (a gzip bomb, or
    /// not the file expected), found out after at most `limit` + 64 KiB of output.
    static func decompress(_ input: [UInt8], what: String, limit: Int) throws(UplinkError) -> [UInt8] {
        // z_stream points back at itself from its state, so it lives at a fixed heap address.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deinitialize(count: 1); stream.deallocate() }
        guard cuplink_inflateInit2(stream, 16 + 15) == Z_OK else { throw UplinkError(.zlibFailed, "\(what): inflateInit2 failed") }
        defer { inflateEnd(stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var status: Int32 = Z_OK
        input.withUnsafeBytes { src in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: src.bindMemory(to: Bytef.self).baseAddress)
            stream.pointee.avail_in = uInt(src.count)
            repeat {
                chunk.withUnsafeMutableBytes { dst in
                    stream.pointee.next_out = dst.bindMemory(to: Bytef.self).baseAddress
                    stream.pointee.avail_out = uInt(dst.count)
                    status = inflate(stream, Z_NO_FLUSH)
                }
                output.append(contentsOf: chunk[0..<(chunk.count - Int(stream.pointee.avail_out))])
            } while status == Z_OK && output.count <= limit
        }
        guard output.count <= limit else { throw UplinkError(.io, "\(what): decompresses to more than \(limit) bytes, more than the file can hold") }
        guard status == Z_STREAM_END else { throw UplinkError(.io, "\(what): not a valid gzip file") }
        return output
    }
}
