import Foundation
import UplinkCodec

/// Hugging Face `.safetensors` files: an 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
/// then the tensor data.
///
/// F32, F16, BF16 and F64 tensors are read as float32; other dtypes are rejected. The layout
/// orders tensors by name (UTF-8 byte order), so two files with the same tensors give the same
/// layout and fingerprint whatever order their writers used. Files are written with F32 tensors
/// in layout order. The header's rules and limits (the same in the Python interop decoder) are
/// in `docs/wire-format.md` §6.1 and ``SafetensorsHeaderParser``.
public enum Safetensors {
    /// The largest header accepted or written, as in the reference implementation (100 MB).
    public static let maxHeaderLength = 100_000_000
    /// The most tensors a file may hold: the frame reader's default limit (2^20), so every layout
    /// a default reader accepts can be written, and a header costs a bounded amount to parse.
    public static let maxTensors = 1 << 20
    /// The key the format reserves for its string-to-string metadata; never a tensor.
    static let metadataKey = "__metadata__"

    /// The non-float dtypes of the format with their sizes: a file may hold them (PyTorch's
    /// `num_batches_tracked` is I64, masks are BOOL), and ``NonFloatTensors`` says whether they
    /// are skipped or refused. Uplink never reads their values.
    static let nonFloatDtypes: [(name: String, size: Int)] = [
        ("BOOL", 1), ("U8", 1), ("I8", 1), ("F8_E5M2", 1), ("F8_E4M3", 1),
        ("I16", 2), ("U16", 2), ("I32", 4), ("U32", 4), ("I64", 8), ("U64", 8),
    ]

    struct Entry {
        var name: String
        /// The float type the values convert from, or nil for a non-float tensor.
        var dtype: TensorDType?
        var dtypeName: String
        var elementSize: Int
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    /// The tensors of the file `bytes`; a non-float tensor is refused or skipped by `nonFloat`.
    public static func read(_ bytes: [UInt8], nonFloat: NonFloatTensors = .refuse) throws(UplinkError) -> TensorSet {
        try readReporting(bytes, nonFloat: nonFloat).set
    }

    /// The tensors of the file `bytes`, with what was skipped and converted.
    static func readReporting(_ bytes: [UInt8], nonFloat: NonFloatTensors) throws(UplinkError) -> (set: TensorSet, report: TensorFileReport) {
        let (all, dataStart) = try parseHeader(bytes, fileLength: bytes.count)
        let (entries, skipped) = try floatEntries(all, nonFloat)
        let layout = try ModelLayout(entries.map { TensorSpec(name: $0.name, shape: $0.shape) })
        var values: [Float] = []
        values.reserveCapacity(layout.parameterCount)
        var converted: [TensorFileReport.Conversion] = []
        try typed { try bytes.withUnsafeBytes { raw in
            for (e, count) in zip(entries, layout.elementCounts) {
                let slice = UnsafeRawBufferPointer(rebasing: raw[(dataStart + e.begin)..<(dataStart + e.end)])
                let dtype = e.dtype!
                if dtype == .float32 {
                    dtype.appendFloats(slice, count: count, to: &values)
                } else {
                    converted.append(try TensorFileReport.Conversion.append(slice, dtype: dtype, count: count, name: e.name, shape: e.shape, to: &values))
                }
            }
        } }
        return (try TensorSet(layout: layout, values: values), TensorFileReport(skipped: skipped, converted: converted))
    }

    /// The float entries of `entries`; a non-float one is refused (naming it) or skipped.
    static func floatEntries(_ entries: [Entry], _ nonFloat: NonFloatTensors) throws(UplinkError) -> ([Entry], [TensorFileReport.Skipped]) {
        var kept: [Entry] = []
        var skipped: [TensorFileReport.Skipped] = []
        for e in entries {
            if e.dtype != nil { kept.append(e); continue }
            switch nonFloat {
            case .refuse:
                throw UplinkError(.unsupportedDtype, "tensor \(UplinkError.quoted(e.name)) has dtype \(e.dtypeName), not a float type; Uplink encodes float tensors only (F32, F16, BF16, F64). Leave such tensors out of the update with --skip-non-float (uplink compare does by default); the model layout is then the float tensors alone, on the server too")
            case .skip:
                skipped.append(TensorFileReport.Skipped(name: e.name, dtype: e.dtypeName, shape: e.shape))
            }
        }
        guard !kept.isEmpty else {
            throw UplinkError(.unsupportedDtype, "the file holds no float tensor (\(entries.count) tensor\(entries.count == 1 ? "" : "s") of \(Set(entries.map(\.dtypeName)).sorted().joined(separator: ", ")))")
        }
        return (kept, skipped)
    }

    /// The layout of the file at `path`, reading only its header.
    public static func readLayout(path: String, nonFloat: NonFloatTensors = .refuse) throws(UplinkError) -> ModelLayout {
        let (entries, _, _) = try readHeader(path: path)
        return try ModelLayout(floatEntries(entries, nonFloat).0.map { TensorSpec(name: $0.name, shape: $0.shape) })
    }

    /// The parsed header of the file at `path` (entries sorted by name), where its data starts,
    /// and the file's length; only the header's bytes are read.
    static func readHeader(path: String) throws(UplinkError) -> (entries: [Entry], dataStart: Int, fileLength: Int) {
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
            let n = try checkedHeaderLength(lengthBytes, available: fileLength - 8)
            prefix = lengthBytes + [UInt8](try handle.read(upToCount: n) ?? Data())
        } catch let e as UplinkError {
            throw e
        } catch {
            throw UplinkError(.io, "cannot read \(path): \(error.localizedDescription)")
        }
        let (entries, dataStart) = try parseHeader(prefix, fileLength: fileLength)
        return (entries, dataStart, fileLength)
    }

    /// A `.safetensors` file holding `set` as F32 tensors in layout order.
    /// - Throws: as ``headerBytes(layout:metadata:)``.
    public static func write(_ set: TensorSet, metadata: [String: String] = [:]) throws(UplinkError) -> [UInt8] {
        var out = try headerBytes(layout: set.layout, metadata: metadata)
        out.reserveCapacity(out.count + set.values.count * 4)
        out += float32Bytes(set.values)
        return out
    }

    /// The length prefix and JSON header of an F32 file of `layout`, data in layout order:
    /// `__metadata__` first (keys in UTF-8 byte order), then the tensors as the layout lists
    /// them, padded with spaces to a multiple of 8 bytes as the reference writer does. Linear in
    /// the number of tensors.
    ///
    /// - Throws: ``UplinkError/Code/invalidLayout`` for a tensor named `__metadata__`, which the
    ///   format reserves (every reader would take it for the metadata), and
    ///   ``UplinkError/Code/headerTooLarge`` for a header over ``maxHeaderLength`` bytes, which
    ///   no reader accepts; so every file written here can be read back.
    static func headerBytes(
        layout: ModelLayout, metadata: [String: String] = [:], maxLength: Int = maxHeaderLength
    ) throws(UplinkError) -> [UInt8] {
        var json: [UInt8] = [UInt8(ascii: "{")]
        json.reserveCapacity(64 + layout.tensors.count * 64)
        func string(_ s: String) {
            json.append(UInt8(ascii: "\""))
            for b in s.utf8 {
                switch b {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                    json.append(UInt8(ascii: "\\")); json.append(b)
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    json += Array("\\u00".utf8) + [hex[Int(b >> 4)], hex[Int(b & 15)]]
                default:
                    json.append(b)
                }
            }
            json.append(UInt8(ascii: "\""))
        }
        func number(_ v: Int) { json += Array(String(v).utf8) }
        if !metadata.isEmpty {
            string(metadataKey)
            json += Array(":{".utf8)
            for (i, (k, v)) in metadata.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }).enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                string(k)
                json.append(UInt8(ascii: ":"))
                string(v)
            }
            json.append(UInt8(ascii: "}"))
        }
        for (i, t) in layout.tensors.enumerated() {
            guard !t.name.utf8.elementsEqual(metadataKey.utf8) else {
                throw UplinkError(
                    .invalidLayout,
                    "a tensor is named \"\(metadataKey)\", which .safetensors reserves for its metadata; write .npy or rename the tensor")
            }
            if i > 0 || !metadata.isEmpty { json.append(UInt8(ascii: ",")) }
            string(t.name)
            json += Array(":{\"dtype\":\"F32\",\"shape\":[".utf8)
            for (j, d) in t.shape.enumerated() {
                if j > 0 { json.append(UInt8(ascii: ",")) }
                number(d)
            }
            let begin = layout.offsets[i] * 4
            json += Array("],\"data_offsets\":[".utf8)
            number(begin)
            json.append(UInt8(ascii: ","))
            number(begin + layout.elementCounts[i] * 4)
            json += Array("]}".utf8)
        }
        json.append(UInt8(ascii: "}"))
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
        guard json.count <= maxLength else {
            throw UplinkError(.headerTooLarge, "a .safetensors header of \(json.count) bytes for \(layout.tensors.count) tensors exceeds the format's \(maxLength)")
        }
        var out: [UInt8] = []
        out.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json
    }

    /// The header length in the first 8 bytes of `bytes`, checked against ``maxHeaderLength``
    /// [401] and the `available` bytes after it [703].
    private static func checkedHeaderLength(_ bytes: [UInt8], available: Int) throws(UplinkError) -> Int {
        let n = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n <= UInt64(maxHeaderLength) else {
            throw UplinkError(.headerTooLarge, "header length \(n) exceeds the format's limit of \(maxHeaderLength) bytes")
        }
        guard n >= 2, n <= UInt64(available) else {
            throw UplinkError(.malformedSafetensors, "header length \(n) is outside 2…\(max(available, 0)), what the file holds")
        }
        return Int(n)
    }

    /// Parses and validates the header in `bytes` (which holds at least the header) of a file of
    /// `fileLength` bytes; entries come back sorted by name (UTF-8 byte order).
    static func parseHeader(_ bytes: [UInt8], fileLength: Int) throws(UplinkError) -> ([Entry], Int) {
        guard bytes.count >= 8 else {
            throw UplinkError(.malformedSafetensors, "file is shorter than the 8-byte header length")
        }
        let n = try checkedHeaderLength(bytes, available: bytes.count - 8)
        let dataStart = 8 + n
        var entries = try typed {
            try bytes.withUnsafeBytes { try SafetensorsHeaderParser.entries(UnsafeRawBufferPointer(rebasing: $0[8..<dataStart])) }
        }
        guard !entries.isEmpty else { throw UplinkError(.malformedSafetensors, "file holds no tensors") }
        for e in entries {
            let count = try ModelLayout.elementCount(e.shape, name: e.name)
            let (need, overflow) = count.multipliedReportingOverflow(by: e.elementSize)
            guard !overflow, e.begin <= e.end, e.end - e.begin == need else {
                throw UplinkError(
                    .malformedSafetensors,
                    "tensor \(UplinkError.quoted(e.name)) spans bytes \(e.begin)..<\(e.end), its shape \(UplinkError.excerpt(list: e.shape)) of \(e.dtypeName) needs \(overflow ? "more than \(Int.max)" : String(need))")
            }
        }
        // Names are unique byte for byte (after JSON unescaping): sorted by bytes, equal names
        // are neighbours.
        entries.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        for (a, b) in zip(entries, entries.dropFirst()) where a.name.utf8.elementsEqual(b.name.utf8) {
            throw UplinkError(.malformedSafetensors, "tensor name \(UplinkError.quoted(a.name)) appears twice in the header")
        }
        // The data must be covered exactly: no gaps, no overlaps, nothing past the end.
        let byOffset = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for e in byOffset {
            guard e.begin == cursor else {
                throw UplinkError(.malformedSafetensors, "tensor \(UplinkError.quoted(e.name)) starts at byte \(e.begin), expected \(cursor) (gap or overlap)")
            }
            cursor = e.end
        }
        guard cursor == fileLength - dataStart else {
            throw UplinkError(.malformedSafetensors, "tensors cover \(cursor) data bytes, the file has \(fileLength - dataStart)")
        }
        return (entries, dataStart)
    }
}

extension TensorDType {
    /// The dtype's name in a `.safetensors` header.
    var safetensorsName: String {
        switch self {
        case .float16: "F16"
        case .bfloat16: "BF16"
        case .float32: "F32"
        case .float64: "F64"
        }
    }
}
