/// Dense value coding for the quantizers: float32 in, stream bytes out, and back.
extension Quantizer {
    /// The values stream for `values`.
    /// - Throws: ``UplinkError/Code/valueOutOfRange`` when a value cannot be represented
    ///   (fp16 magnitudes of 65520 and above), naming the first such index.
    func encodeValues(_ values: UnsafeBufferPointer<Float>) throws(UplinkError) -> [UInt8] {
        let n = values.count
        switch self {
        case .fp32:
            var out = [UInt8](repeating: 0, count: n * 4)
            out.withUnsafeMutableBytes { dst in
                for i in 0..<n { dst.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
            }
            return out
        case .fp16:
            var out = [UInt8](repeating: 0, count: n * 2)
            var overflow = false
            out.withUnsafeMutableBytes { raw in
                let dst = raw.bindMemory(to: UInt16.self)
                var infs: UInt16 = 0
                for i in 0..<n {
                    let h = Float16Bits.fromFloat(values[i])
                    dst[i] = h.littleEndian
                    infs |= (h & 0x7C00) == 0x7C00 ? 1 : 0
                }
                overflow = infs != 0
            }
            if overflow {
                let i = (0..<n).first { (Float16Bits.fromFloat(values[$0]) & 0x7C00) == 0x7C00 }!
                throw UplinkError(.valueOutOfRange, "value \(values[i]) at index \(i) is outside the fp16 range (|x| < 65520)")
            }
            return out
        }
    }

    /// Checks that the values in a decoded `stream` are all finite, before anything is written.
    func checkFinite(_ stream: UnsafeRawBufferPointer) throws(UplinkError) {
        var bad = -1
        switch self {
        case .fp32:
            let n = stream.count / 4
            var any: UInt32 = 0
            for i in 0..<n {
                let bits = UInt32(littleEndian: stream.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                any |= (bits & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0
            }
            if any != 0 {
                bad = (0..<n).first {
                    (UInt32(littleEndian: stream.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) & 0x7F80_0000) == 0x7F80_0000
                }!
            }
        case .fp16:
            let n = stream.count / 2
            var any: UInt16 = 0
            for i in 0..<n {
                let bits = UInt16(littleEndian: stream.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
                any |= (bits & 0x7C00) == 0x7C00 ? 1 : 0
            }
            if any != 0 {
                bad = (0..<n).first {
                    (UInt16(littleEndian: stream.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) & 0x7C00) == 0x7C00
                }!
            }
        }
        if bad >= 0 {
            throw UplinkError(.nonFiniteValue, "frame holds a NaN or infinite value at parameter \(bad)")
        }
    }

    /// Writes the values of `stream` into `out` (`accumulate == false`) or adds `weight ×` them
    /// to `out` (`accumulate == true`). `stream` must hold exactly `out.count` values.
    func decodeValues(
        _ stream: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>, weight: Float, accumulate: Bool
    ) {
        let n = out.count
        switch self {
        case .fp32:
            if accumulate {
                for i in 0..<n {
                    let v = Float(bitPattern: UInt32(littleEndian: stream.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                    out[i] += weight * v
                }
            } else {
                for i in 0..<n {
                    out[i] = Float(bitPattern: UInt32(littleEndian: stream.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                }
            }
        case .fp16:
            if accumulate {
                for i in 0..<n {
                    out[i] += weight * Float16Bits.toFloat(UInt16(littleEndian: stream.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                }
            } else {
                for i in 0..<n {
                    out[i] = Float16Bits.toFloat(UInt16(littleEndian: stream.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                }
            }
        }
    }
}
