import UplinkCodec

/// Named float32 tensors read from or written to a file: a ``ModelLayout`` and the flat
/// values in layout order.
public struct TensorSet: Sendable {
    /// The tensors' names and shapes, in the order of ``values``.
    public var layout: ModelLayout
    /// The concatenated elements, each tensor in C order.
    public var values: [Float]

    /// A tensor set; `values.count` must equal `layout.parameterCount`.
    public init(layout: ModelLayout, values: [Float]) throws(UplinkError) {
        guard values.count == layout.parameterCount else {
            throw UplinkError(.shapeMismatch, "\(values.count) values for a layout of \(layout.parameterCount) parameters")
        }
        self.layout = layout
        self.values = values
    }

    /// The values of tensor `index`.
    public func values(ofTensor index: Int) -> ArraySlice<Float> {
        let start = layout.offsets[index]
        return values[start..<(start + layout.elementCounts[index])]
    }
}

/// The element types Uplink reads from tensor files; every one is converted to float32.
public enum TensorDType: String, Sendable {
    case float16, bfloat16, float32, float64

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float16, .bfloat16: 2
        case .float32: 4
        case .float64: 8
        }
    }

    /// Converts `count` little-endian elements from `bytes` to float32, appending to `out`.
    func appendFloats(_ bytes: UnsafeRawBufferPointer, count: Int, to out: inout [Float]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        out.withUnsafeMutableBufferPointer { dst in
            switch self {
            case .float32:
                for i in 0..<count {
                    dst[start + i] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
            case .float16:
                for i in 0..<count {
                    dst[start + i] = Float16Bits.toFloat(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            case .bfloat16:
                for i in 0..<count {
                    let b = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    dst[start + i] = Float(bitPattern: UInt32(b) << 16)
                }
            case .float64:
                for i in 0..<count {
                    dst[start + i] = Float(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                }
            }
        }
    }
}

/// Little-endian float32 bytes of `values`.
func float32Bytes(_ values: some Collection<Float>) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(values.count * 4)
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
    return out
}

/// What a tensor-file reader does with a tensor that is not floating point (PyTorch's int64
/// `num_batches_tracked`, a bool mask).
public enum NonFloatTensors: Sendable {
    /// Refuse the file, naming the tensor (``UplinkError/Code/unsupportedDtype``): the default,
    /// so that nothing is dropped without the caller asking.
    case refuse
    /// Leave the tensor out: the layout is the file's float tensors alone. A server decoding the
    /// frames must read its layout with the same option.
    case skip
}

/// What reading a tensor file did besides reading float32: the non-float tensors it skipped
/// and the tensors it converted to float32 with the error of the conversion.
public struct TensorFileReport: Sendable, Hashable {
    /// A tensor left out (``NonFloatTensors/skip``).
    public struct Skipped: Sendable, Hashable {
        public var name: String
        /// The safetensors dtype (`I64`, `BOOL`, …).
        public var dtype: String
        public var shape: [Int]
    }

    /// A tensor converted to float32 from another float type.
    public struct Conversion: Sendable, Hashable {
        public var name: String
        /// The safetensors dtype converted from (`F64`, `F16`, `BF16`).
        public var dtype: String
        public var count: Int
        /// The largest |x − float32(x)| over the tensor; 0 for F16 and BF16, which float32 holds exactly.
        public var maxAbsoluteError: Double
        /// ‖x − float32(x)‖ / ‖x‖ over the tensor (0 when x is all zeros).
        public var relativeError: Double

        /// Converts `count` elements of `dtype` from `bytes`, appending them to `out`. A value
        /// too large for float32 is refused, naming the tensor and the element.
        static func append(_ bytes: UnsafeRawBufferPointer, dtype: TensorDType, count: Int, name: String, shape: [Int],
                           to out: inout [Float]) throws(UplinkError) -> Conversion {
            let start = out.count
            dtype.appendFloats(bytes, count: count, to: &out)
            var maxError = 0.0, errorSquares = 0.0, squares = 0.0
            if dtype == .float64 {
                for i in 0..<count {
                    let x = Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                    let f = out[start + i]
                    guard x.isFinite else {
                        out.removeSubrange(start...)
                        throw UplinkError(.nonFiniteValue, "tensor \(UplinkError.quoted(name)) (F64): element \(i) is \(x), not finite")
                    }
                    if !f.isFinite {
                        out.removeSubrange(start...)
                        throw UplinkError(.valueOutOfRange, "tensor \(UplinkError.quoted(name)) (F64): element \(i) is \(x), beyond float32's range (±\(Float.greatestFiniteMagnitude))")
                    }
                    let e = abs(x - Double(f))
                    maxError = max(maxError, e)
                    errorSquares += e * e
                    squares += x * x
                }
            }
            let relative = squares > 0 ? (errorSquares / squares).squareRoot() : 0
            return Conversion(name: name, dtype: dtype.safetensorsName, count: count, maxAbsoluteError: maxError, relativeError: relative)
        }
    }

    public var skipped: [Skipped] = []
    public var converted: [Conversion] = []

    static func shown(_ name: String) -> String { UplinkError.shown(name) }

    /// One line per skipped group and conversion, for a command's standard error; empty when
    /// the file was all float32.
    public var lines: [String] {
        var out: [String] = []
        if !skipped.isEmpty {
            let names = skipped.prefix(4).map { "\(Self.shown($0.name)) (\($0.dtype))" }.joined(separator: ", ")
            let more = skipped.count > 4 ? " and \(skipped.count - 4) more" : ""
            out.append("skipped \(skipped.count) non-float tensor\(skipped.count == 1 ? "" : "s"): \(names)\(more)")
        }
        for (dtype, group) in Dictionary(grouping: converted, by: \.dtype).sorted(by: { $0.key < $1.key }) {
            let n = group.reduce(0) { $0 + $1.count }
            if dtype == "F64" {
                let worst = group.max { $0.relativeError < $1.relativeError }!
                out.append("converted \(group.count) F64 tensor\(group.count == 1 ? "" : "s") (\(n) values) to float32: "
                           + String(format: "largest error %.3g, worst relative L2 error %.3g", group.map(\.maxAbsoluteError).max()!, worst.relativeError)
                           + " (\(Self.shown(worst.name)))")
            } else {
                out.append("converted \(group.count) \(dtype) tensor\(group.count == 1 ? "" : "s") (\(n) values) to float32 exactly")
            }
        }
        return out
    }
}
