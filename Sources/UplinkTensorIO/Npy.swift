import UplinkCodec

/// NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): little-endian float16, float32 or
/// float64 arrays in C order are read (as float32); float32 arrays are written (version 1.0).
public enum Npy {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
    /// The longest header (the dictionary text, padding included) any reader of Uplink accepts:
    /// 65,535 bytes, the most a version 1.0 file can declare. NumPy moves to version 2.0 only
    /// for longer headers, which no float array of rank ≤ 64 needs (NumPy's own `np.load`
    /// refuses headers over 10,000 bytes by default). Every path that reads a `.npy` file,
    /// whole (``read(_:)``) or header first (``readHeader(_:fileLength:)``), applies this limit.
    public static let maxHeaderLength = 65_535
    /// The bytes that always hold a complete acceptable header: the 12-byte version 2.0/3.0
    /// preamble and ``maxHeaderLength``.
    static let maxPrefixLength = 12 + maxHeaderLength

    /// The shape, element type and data offset of a `.npy` file of `fileLength` bytes, from
    /// its first bytes (`prefix`: the whole file, or at least its first 12 + ``maxHeaderLength``), with
    /// the same checks and limits as ``read(_:)``.
    public static func readHeader(_ prefix: [UInt8], fileLength: Int) throws(UplinkError) -> (shape: [Int], dtype: TensorDType, dataOffset: Int) {
        try typed {
            try prefix.withUnsafeBytes { raw in
                let (header, offset) = try parseHeader(raw)
                let dtype = try header.dtype()
                guard !header.fortranOrder else {
                    throw UplinkError(.fortranOrder, ".npy array is in Fortran order; save it with np.ascontiguousarray(a) first")
                }
                let count = try ModelLayout.elementCount(header.shape, name: "array")
                guard count * dtype.size == fileLength - offset else {
                    throw UplinkError(.malformedNpy, ".npy data has \(fileLength - offset) bytes, shape \(UplinkError.excerpt(list: header.shape)) of \(dtype.rawValue) needs \(count * dtype.size)")
                }
                return (header.shape, dtype, offset)
            }
        }
    }

    static func parseHeader(_ raw: UnsafeRawBufferPointer) throws(UplinkError) -> (NpyHeader, Int) {
        guard raw.count >= 10, Array(raw[0..<6]) == magic else {
            throw UplinkError(.malformedNpy, "not a .npy file: missing the \\x93NUMPY magic")
        }
        let major = raw[6]
        var r = ByteReader(raw, offset: 8, what: ".npy file", overrun: .malformedNpy)
        let headerLength: Int
        switch major {
        case 1: headerLength = Int(try r.read(UInt16.self, "header length"))
        case 2, 3: headerLength = Int(try r.read(UInt32.self, "header length"))
        default: throw UplinkError(.malformedNpy, ".npy format version \(major).\(raw[7]) is not supported (1.0, 2.0, 3.0 are)")
        }
        guard headerLength <= maxHeaderLength else {
            throw UplinkError(.headerTooLarge, ".npy header of \(headerLength) bytes exceeds the limit of \(maxHeaderLength)")
        }
        let headerBytes = try r.bytes(headerLength, "header")
        guard let text = String(validatingUTF8Bytes: headerBytes) else {
            throw UplinkError(.malformedNpy, ".npy header \(UplinkError.quoted(bytes: headerBytes)) is not valid UTF-8")
        }
        return (try NpyHeader(parsing: text), r.offset)
    }

    /// The shape and float32 values of the array in `bytes`.
    /// - Throws: ``UplinkError/Code/malformedNpy``, ``UplinkError/Code/unsupportedDtype``
    ///   or ``UplinkError/Code/fortranOrder``, each naming the problem.
    public static func read(_ bytes: [UInt8]) throws(UplinkError) -> (shape: [Int], values: [Float]) {
        let (shape, values, _) = try readReporting(bytes)
        return (shape, values)
    }

    /// ``read(_:)`` with the conversion to float32 of an `<f2` or `<f8` array (nil for `<f4`).
    static func readReporting(_ bytes: [UInt8]) throws(UplinkError) -> (shape: [Int], values: [Float], conversion: TensorFileReport.Conversion?) {
        try typed { try bytes.withUnsafeBytes { raw in
            let (header, offset) = try parseHeader(raw)
            var r = ByteReader(raw, offset: offset, what: ".npy file", overrun: .malformedNpy)
            let dtype = try header.dtype()
            guard !header.fortranOrder else {
                throw UplinkError(.fortranOrder, ".npy array is in Fortran order; save it with np.ascontiguousarray(a) first")
            }
            let count = try ModelLayout.elementCount(header.shape, name: "array")
            let (need, overflow) = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, need == r.remaining else {
                throw UplinkError(
                    .malformedNpy,
                    ".npy data has \(r.remaining) bytes, shape \(UplinkError.excerpt(list: header.shape)) of \(dtype.rawValue) needs \(overflow ? "more than 2^63" : String(need))")
            }
            var values: [Float] = []
            values.reserveCapacity(count)
            let data = try r.bytes(need, "data")
            if dtype == .float32 {
                dtype.appendFloats(data, count: count, to: &values)
                return (header.shape, values, nil)
            }
            let conversion = try TensorFileReport.Conversion.append(data, dtype: dtype, count: count, name: TensorFiles.npyTensorName, shape: header.shape, to: &values)
            return (header.shape, values, conversion)
        } }
    }

    /// A version 1.0 `.npy` file holding `values` as little-endian float32 with `shape`.
    public static func write(shape: [Int], values: some Collection<Float>) -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ")
        let shapeText = shape.count == 1 ? "(\(dims),)" : "(\(dims))"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad with spaces so that the data starts at a multiple of 64 bytes, ending in '\n'.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = magic + [1, 0]
        withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header.utf8)
        out.append(contentsOf: float32Bytes(values))
        return out
    }
}

/// The dictionary of a `.npy` header: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
struct NpyHeader {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    init(parsing text: String) throws(UplinkError) {
        var p = PyLiteralScanner(Array(text.utf8))
        var descr: String?
        var fortran: Bool?
        var shape: [Int]?
        try p.expect(UInt8(ascii: "{"))
        while true {
            p.skipSpace()
            if p.peek == UInt8(ascii: "}") { p.index += 1; break }
            let key = try p.string()
            try p.expect(UInt8(ascii: ":"))
            switch key {
            case "descr": descr = try p.string()
            case "fortran_order": fortran = try p.bool()
            case "shape": shape = try p.intTuple()
            default: throw UplinkError(.malformedNpy, ".npy header has unexpected key \(UplinkError.quoted(key))")
            }
            p.skipSpace()
            if p.peek == UInt8(ascii: ",") { p.index += 1; continue }
            try p.expect(UInt8(ascii: "}"))
            break
        }
        guard let descr, let fortran, let shape else {
            throw UplinkError(.malformedNpy, ".npy header lacks one of 'descr', 'fortran_order', 'shape'")
        }
        self.descr = descr
        self.fortranOrder = fortran
        self.shape = shape
    }

    func dtype() throws(UplinkError) -> TensorDType {
        switch descr {
        case "<f4": return .float32
        case "<f2": return .float16
        case "<f8": return .float64
        case ">f2", ">f4", ">f8":
            throw UplinkError(.unsupportedDtype, ".npy dtype \(UplinkError.quoted(descr)) is big-endian; save it with a.astype('<f4')")
        default:
            throw UplinkError(.unsupportedDtype, ".npy dtype \(UplinkError.quoted(descr)) is not supported; Uplink reads '<f2', '<f4' and '<f8'")
        }
    }
}

/// Scans the small subset of Python literals a `.npy` header uses.
struct PyLiteralScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x09 || c == 0x0D { index += 1 }
    }

    mutating func expect(_ c: UInt8) throws(UplinkError) {
        skipSpace()
        guard peek == c else {
            throw UplinkError(.malformedNpy, ".npy header: expected '\(Character(Unicode.Scalar(c)))' at position \(index)")
        }
        index += 1
    }

    mutating func string() throws(UplinkError) -> String {
        skipSpace()
        guard let q = peek, q == UInt8(ascii: "'") || q == UInt8(ascii: "\"") else {
            throw UplinkError(.malformedNpy, ".npy header: expected a quoted string at position \(index)")
        }
        index += 1
        let start = index
        while let c = peek, c != q { index += 1 }
        guard peek == q else { throw UplinkError(.malformedNpy, ".npy header: unterminated string") }
        let s = String(decoding: bytes[start..<index], as: UTF8.self)
        index += 1
        return s
    }

    mutating func bool() throws(UplinkError) -> Bool {
        skipSpace()
        for (word, value) in [("True", true), ("False", false)] where bytes[index...].starts(with: word.utf8) {
            index += word.utf8.count
            return value
        }
        throw UplinkError(.malformedNpy, ".npy header: expected True or False at position \(index)")
    }

    mutating func intTuple() throws(UplinkError) -> [Int] {
        try expect(UInt8(ascii: "("))
        var out: [Int] = []
        while true {
            skipSpace()
            if peek == UInt8(ascii: ")") { index += 1; return out }
            let start = index
            while let c = peek, c >= 0x30 && c <= 0x39 { index += 1 }
            // NumPy writes Python ints, sometimes with an 'L' suffix (Python 2 files).
            guard index > start, index - start <= 18, let v = Int(String(decoding: bytes[start..<index], as: UTF8.self)) else {
                throw UplinkError(.malformedNpy, ".npy header: expected a dimension at position \(start)")
            }
            if peek == UInt8(ascii: "L") { index += 1 }
            out.append(v)
            guard out.count <= ModelLayout.maxRank else {
                throw UplinkError(.fieldTooLong, ".npy header: the shape has more than \(ModelLayout.maxRank) dimensions")
            }
            skipSpace()
            if peek == UInt8(ascii: ",") { index += 1; continue }
            try expect(UInt8(ascii: ")"))
            return out
        }
    }
}
