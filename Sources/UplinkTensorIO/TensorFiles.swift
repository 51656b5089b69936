import Foundation
import UplinkCodec

/// Reads and writes tensor files by extension: `.npy` (one tensor, named ``npyTensorName``) and
/// `.safetensors` (several named tensors).
public enum TensorFiles {
    /// The tensors in the file at `path`; a non-float tensor is refused or skipped by `nonFloat`.
    public static func load(path: String, nonFloat: NonFloatTensors = .refuse) throws(UplinkError) -> TensorSet {
        try loadReporting(path: path, nonFloat: nonFloat).set
    }

    /// The tensors in the file at `path`, with the tensors skipped and converted on the way
    /// (``TensorFileReport/lines`` says so in words).
    public static func loadReporting(path: String, nonFloat: NonFloatTensors = .refuse) throws(UplinkError) -> (set: TensorSet, report: TensorFileReport) {
        let bytes = try readFile(path)
        switch fileExtension(path) {
        case "npy":
            let (shape, values, conversion) = try wrap(path) { () throws(UplinkError) in try Npy.readReporting(bytes) }
            let set = try TensorSet(layout: try ModelLayout([TensorSpec(name: npyTensorName, shape: shape)]), values: values)
            return (set, TensorFileReport(converted: conversion.map { [$0] } ?? []))
        case "safetensors":
            return try wrap(path) { () throws(UplinkError) in try Safetensors.readReporting(bytes, nonFloat: nonFloat) }
        default:
            throw UplinkError(.invalidArgument, "\(path): unknown file type; use .npy or .safetensors")
        }
    }

    /// The layout of the tensor file at `path` (a `.safetensors` file is read header-only).
    public static func loadLayout(path: String, nonFloat: NonFloatTensors = .refuse) throws(UplinkError) -> ModelLayout {
        if fileExtension(path) == "safetensors" {
            return try wrap(path) { () throws(UplinkError) in try Safetensors.readLayout(path: path, nonFloat: nonFloat) }
        }
        return try load(path: path).layout
    }

    /// Writes `set` to `path`: `.safetensors` keeps every tensor; `.npy` holds one tensor with its
    /// shape or, for several tensors, the flat concatenation (reported through `note`).
    public static func save(_ set: TensorSet, path: String, note: (String) -> Void = { _ in }) throws(UplinkError) {
        let bytes: [UInt8]
        switch fileExtension(path) {
        case "npy":
            if set.layout.tensors.count == 1 {
                bytes = Npy.write(shape: set.layout.tensors[0].shape, values: set.values)
            } else {
                note("\(set.layout.tensors.count) tensors written to \(path) as one flat vector of \(set.values.count) values; use .safetensors to keep names and shapes")
                bytes = Npy.write(shape: [set.values.count], values: set.values)
            }
        case "safetensors":
            bytes = try Safetensors.write(set)
        default:
            throw UplinkError(.invalidArgument, "\(path): unknown file type; use .npy or .safetensors")
        }
        try writeFile(path, bytes)
    }

    /// The name of the one tensor of a `.npy` file: `arr_0`, as NumPy names unnamed arrays
    /// (`np.savez`). A `.npy` file carries no name, and one taken from the file name would give
    /// `update.npy` and `global.npy` different fingerprints although they hold the same model.
    public static let npyTensorName = "arr_0"

    /// The whole file at `path`, read straight into one array (no intermediate `Data`).
    ///
    /// The size is checked (`fstat`) before anything is allocated: a file over `maxBytes` costs
    /// nothing and fails with `overLimit` (for frames: ``UplinkError/Code/frameTooLarge``). A
    /// file that grows while it is read is refused rather than read past the limit.
    public static func readFile(_ path: String, maxBytes: Int = .max, overLimit: UplinkError.Code = .frameTooLarge) throws(UplinkError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let why = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
            throw UplinkError(.io, "\(path): \(why)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw UplinkError(.io, "\(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw UplinkError(.io, "\(path): \((st.st_mode & S_IFMT) == S_IFDIR ? "is a directory" : "is not a regular file")")
        }
        let size = Int(st.st_size)
        guard size <= maxBytes else {
            throw UplinkError(overLimit, "\(path) is \(size) bytes, over the limit of \(maxBytes)")
        }
        var failed = false
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var done = 0
            while done < size {
                let n = read(fd, buffer.baseAddress! + done, size - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failed = n < 0; break }
                done += n
            }
            count = done
        }
        guard !failed, bytes.count == size else { throw UplinkError(.io, "\(path): read failed or the file shrank while it was read") }
        var extra: UInt8 = 0
        guard read(fd, &extra, 1) == 0 else { throw UplinkError(.io, "\(path) grew while it was read") }
        return bytes
    }

    /// Replaces the file at `path` with `bytes` durably and atomically (``DurableFile/replace(_:with:)``):
    /// a crash leaves the old file or the new one, never a mix, and no temporary file behind.
    public static func writeFile(_ path: String, _ bytes: [UInt8]) throws(UplinkError) {
        try DurableFile.replace(path, with: bytes)
    }

    package static func fileExtension(_ path: String) -> String {
        (path as NSString).pathExtension.lowercased()
    }

    private static func wrap<T>(_ path: String, _ body: () throws(UplinkError) -> T) throws(UplinkError) -> T {
        do {
            return try body()
        } catch {
            throw UplinkError(error.code, "\(path): \(error.message)")
        }
    }
}
