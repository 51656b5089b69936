import Foundation
import UplinkCodec

/// Reads the flat float32 values of a tensor file in ranges, without loading it whole: for a
/// server applying an aggregate to a large model block by block.
public final class TensorFileReader {
    /// The file's layout.
    public let layout: ModelLayout
    private let handle: FileHandle
    private let path: String
    /// Per tensor: where its data starts in the file, and its element type.
    private let tensorData: [(offset: UInt64, dtype: TensorDType)]

    /// Opens `path` (`.npy` or `.safetensors`), reading only its header; a non-float tensor
    /// is refused or left out by `nonFloat`.
    public init(path: String, nonFloat: NonFloatTensors = .refuse) throws(UplinkError) {
        self.path = path
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw UplinkError(.io, "\(path): cannot open")
        }
        self.handle = handle
        switch TensorFiles.fileExtension(path) {
        case "safetensors":
            let (all, dataStart, _) = try Safetensors.readHeader(path: path)
            let entries: [Safetensors.Entry]
            do throws(UplinkError) { entries = try Safetensors.floatEntries(all, nonFloat).0 } catch { throw UplinkError(error.code, "\(path): \(error.message)") }
            self.layout = try ModelLayout(entries.map { TensorSpec(name: $0.name, shape: $0.shape) })
            self.tensorData = entries.map { (UInt64(dataStart + $0.begin), $0.dtype!) }
        case "npy":
            // Read as much as the longest header the full reader accepts, and parse it with the
            // same rules and limit (Npy.maxHeaderLength), so both accept the same files.
            let fileLength = Int((try? handle.seekToEnd()) ?? 0)
            let prefix = try Self.read(handle, path, at: 0, count: min(fileLength, Npy.maxPrefixLength))
            let (shape, dtype, dataOffset) = try Npy.readHeader(prefix, fileLength: fileLength)
            self.layout = try ModelLayout([TensorSpec(name: TensorFiles.npyTensorName, shape: shape)])
            self.tensorData = [(UInt64(dataOffset), dtype)]
        default:
            throw UplinkError(.invalidArgument, "\(path): unknown file type; use .npy or .safetensors")
        }
    }

    deinit { try? handle.close() }

    /// Reads the flat values `range` (layout order) into `out`, converting to float32.
    public func read(_ range: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) throws(UplinkError) {
        precondition(out.count == range.count)
        var written = 0
        for (t, count) in layout.elementCounts.enumerated() where count > 0 {
            let start = layout.offsets[t]
            let lo = max(range.lowerBound, start), hi = min(range.upperBound, start + count)
            guard lo < hi else { continue }
            let (offset, dtype) = tensorData[t]
            let bytes = try Self.read(handle, path, at: offset + UInt64((lo - start) * dtype.size), count: (hi - lo) * dtype.size)
            var values: [Float] = []
            values.reserveCapacity(hi - lo)
            bytes.withUnsafeBytes { dtype.appendFloats($0, count: hi - lo, to: &values) }
            for (i, v) in values.enumerated() { out[written + i] = v }
            written += hi - lo
        }
    }

    static func read(_ handle: FileHandle, _ path: String, at offset: UInt64, count: Int) throws(UplinkError) -> [UInt8] {
        do {
            try handle.seek(toOffset: offset)
            let data = try handle.read(upToCount: count) ?? Data()
            guard data.count == count else { throw UplinkError(.io, "\(path): file ends early") }
            return [UInt8](data)
        } catch let e as UplinkError {
            throw e
        } catch {
            throw UplinkError(.io, "cannot read \(path): \(error.localizedDescription)")
        }
    }
}

/// Writes a float32 tensor file block by block (`.npy` or `.safetensors`), through a temporary
/// file renamed into place by ``finish()``, so a reader never sees a half-written model.
public final class TensorFileWriter {
    /// The layout being written.
    public let layout: ModelLayout
    private let path: String
    private let file: DurableFile.Writer
    private var written = 0

    /// Starts writing `layout`'s values to `path` (into a temporary file until ``finish()``). A
    /// `.npy` file holds one tensor with its shape, or the flat vector of several.
    public init(path: String, layout: ModelLayout) throws(UplinkError) {
        self.layout = layout
        self.path = path
        let header: [UInt8]
        switch TensorFiles.fileExtension(path) {
        case "npy":
            let shape = layout.tensors.count == 1 ? layout.tensors[0].shape : [layout.parameterCount]
            header = Npy.write(shape: shape, values: [Float]())
        case "safetensors":
            header = try Safetensors.headerBytes(layout: layout)
        default:
            throw UplinkError(.invalidArgument, "\(path): unknown file type; use .npy or .safetensors")
        }
        file = try DurableFile.Writer(path: path)
        try file.write(header)
    }

    /// Appends the next `values` (layout order).
    public func write(_ values: UnsafeBufferPointer<Float>) throws(UplinkError) {
        guard written + values.count <= layout.parameterCount else {
            throw UplinkError(.io, "\(path): \(written + values.count) values written for a layout of \(layout.parameterCount)")
        }
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        try file.write(bytes)
        written += values.count
    }

    /// Checks every value was written and moves the file into place durably (fsync, rename,
    /// fsync the directory).
    public func finish() throws(UplinkError) {
        try staged().commit()
    }

    /// Checks every value was written and returns the file, not yet in place, for a
    /// ``DurableCommit`` with other files.
    public func staged() throws(UplinkError) -> DurableFile.Writer {
        guard written == layout.parameterCount else {
            throw UplinkError(.io, "\(path): \(written) of \(layout.parameterCount) values written")
        }
        return file
    }
}
