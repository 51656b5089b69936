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
