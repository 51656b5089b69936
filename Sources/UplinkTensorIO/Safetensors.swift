import Foundation
import UplinkCodec

/// Hugging Face `.safetensors` files: an 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
/// then the tensor data.
///
/// F32, F16, BF16 and F64 tensors are read as float32; other dtypes are rejected. The layout
/// orders tensors by name (UTF-8 byte order), so two files with the same tensors give the same
/// layout and fingerprint whatever order their writers used. Files are written with F32 tensors
/// in that order.
public enum Safetensors {
    /// The largest header accepted, as in the reference implementation (100 MB).
    public static let maxHeaderLength = 100_000_000

    struct Entry {
        var name: String
        var dtype: TensorDType
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    /// The tensors of the file `bytes`.
    public static func read(_ bytes: [UInt8]) throws(UplinkError) -> TensorSet {
        let (entries, dataStart) = try parseHeader(bytes, fileLength: bytes.count)
        let layout = try ModelLayout(entries.map { TensorSpec(name: $0.name, shape: $0.shape) })
        var values: [Float] = []
        values.reserveCapacity(layout.parameterCount)
        bytes.withUnsafeBytes { raw in
            for (e, count) in zip(entries, layout.elementCounts) {
                let slice = UnsafeRawBufferPointer(rebasing: raw[(dataStart + e.begin)..<(dataStart + e.end)])
                e.dtype.appendFloats(slice, count: count, to: &values)
            }
        }
        return try TensorSet(layout: layout, values: values)
    }

    /// The layout of the file at `path`, reading only its header.
    public static func readLayout(path: String) throws(UplinkError) -> ModelLayout {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw UplinkError(.io, "cannot open \(path)")
        }
        defer { try? handle.close() }
        let fileLength: Int
        let prefix: [UInt8]
        do {
            fileLength = Int(try handle.seekToEnd())
            try handle.seek(toOffset: 0)
            let lengthBytes = [UInt8](try handle.read(upToCount: 8) ?? Data())
            guard lengthBytes.count == 8 else {
                throw UplinkError(.malformedSafetensors, "\(path): file is shorter than the 8-byte header length")
            }
            let n = lengthBytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            guard n <= UInt64(min(maxHeaderLength, fileLength - 8)) else {
                throw UplinkError(.malformedSafetensors, "\(path): header length \(n) exceeds the file or the 100 MB limit")
            }
            prefix = lengthBytes + [UInt8](try handle.read(upToCount: Int(n)) ?? Data())
        } catch let e as UplinkError {
            throw e
        } catch {
            throw UplinkError(.io, "cannot read \(path): \(error.localizedDescription)")
        }
        let (entries, _) = try parseHeader(prefix, fileLength: fileLength)
        return try ModelLayout(entries.map { TensorSpec(name: $0.name, shape: $0.shape) })
    }

    /// A `.safetensors` file holding `set` as F32 tensors in layout order.
    public static func write(_ set: TensorSet, metadata: [String: String] = [:]) -> [UInt8] {
        var out = headerBytes(layout: set.layout, metadata: metadata)
        out.reserveCapacity(out.count + set.values.count * 4)
        out += float32Bytes(set.values)
        return out
    }

    /// The length prefix and JSON header of an F32 file of `layout`, data in layout order.
    static func headerBytes(layout: ModelLayout, metadata: [String: String] = [:]) -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        for (i, t) in layout.tensors.enumerated() {
            let begin = layout.offsets[i] * 4
            header[t.name] = [
                "dtype": "F32", "shape": t.shape,
                "data_offsets": [begin, begin + layout.elementCounts[i] * 4],
            ] as [String: Any]
        }
        var json = [UInt8]((try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8))
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json
    }

    /// Parses and validates the header in `bytes` (which holds at least the header) of a file of
    /// `fileLength` bytes; entries come back sorted by name.
    static func parseHeader(_ bytes: [UInt8], fileLength: Int) throws(UplinkError) -> ([Entry], Int) {
        guard bytes.count >= 8 else {
            throw UplinkError(.malformedSafetensors, "file is shorter than the 8-byte header length")
        }
        let n = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n >= 2, n <= UInt64(maxHeaderLength), n <= UInt64(bytes.count - 8) else {
            throw UplinkError(.malformedSafetensors, "header length \(n) is outside 2…\(min(maxHeaderLength, bytes.count - 8))")
        }
        let dataStart = 8 + Int(n)
        let json = Data(bytes[8..<dataStart])
        guard json.first == UInt8(ascii: "{") else {
            throw UplinkError(.malformedSafetensors, "header does not start with '{'")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: json)
        } catch {
            throw UplinkError(.malformedSafetensors, "header is not valid JSON")
        }
        guard let dict = object as? [String: Any] else {
            throw UplinkError(.malformedSafetensors, "header is not a JSON object")
        }
        var entries: [Entry] = []
        for (name, value) in dict where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtypeName = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any], let offsetsAny = info["data_offsets"] as? [Any],
                  offsetsAny.count == 2
            else {
                throw UplinkError(.malformedSafetensors, "tensor \"\(name)\" lacks dtype, shape or data_offsets")
            }
            let dtype: TensorDType
            switch dtypeName {
            case "F32": dtype = .float32
            case "F16": dtype = .float16
            case "BF16": dtype = .bfloat16
            case "F64": dtype = .float64
            default:
                throw UplinkError(.unsupportedDtype, "tensor \"\(name)\" has dtype \(dtypeName); Uplink reads F32, F16, BF16 and F64")
            }
            let shape = try shapeAny.map { (d) throws(UplinkError) -> Int in try nonNegativeInt(d, "shape of \"\(name)\"") }
            let begin = try nonNegativeInt(offsetsAny[0], "data_offsets of \"\(name)\"")
            let end = try nonNegativeInt(offsetsAny[1], "data_offsets of \"\(name)\"")
            let count = try ModelLayout.elementCount(shape, name: name)
            guard begin <= end, end - begin == count * dtype.size else {
                throw UplinkError(
                    .malformedSafetensors,
                    "tensor \"\(name)\" spans bytes \(begin)..<\(end), its shape \(shape) of \(dtypeName) needs \(count * dtype.size)")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        guard !entries.isEmpty else { throw UplinkError(.malformedSafetensors, "file holds no tensors") }
        // The data must be covered exactly: no gaps, no overlaps, nothing past the end.
        let byOffset = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for e in byOffset {
            guard e.begin == cursor else {
                throw UplinkError(.malformedSafetensors, "tensor \"\(e.name)\" starts at byte \(e.begin), expected \(cursor) (gap or overlap)")
            }
            cursor = e.end
        }
        guard cursor == fileLength - dataStart else {
            throw UplinkError(.malformedSafetensors, "tensors cover \(cursor) data bytes, the file has \(fileLength - dataStart)")
        }
        entries.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        return (entries, dataStart)
    }

    private static func nonNegativeInt(_ v: Any, _ what: String) throws(UplinkError) -> Int {
        // JSON true/false arrive as a boolean NSNumber subclass; integers as plain NSNumber.
        if let n = v as? NSNumber, !String(describing: type(of: n)).contains("Boolean") {
            let d = n.doubleValue
            if d == d.rounded(), d >= 0, d <= Double(ModelLayout.maxParameters) * 8 { return Int(d) }
        }
        throw UplinkError(.malformedSafetensors, "\(what) holds \(v), not a non-negative integer")
    }
}
