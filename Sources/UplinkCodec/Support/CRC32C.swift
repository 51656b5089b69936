internal import CUplinkCRC

/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), as in iSCSI, ext4 and
/// Python's `crc32c` package: initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF.
///
/// With the CPU's CRC-32C instructions when it has them (x86-64 SSE 4.2, ARMv8 CRC; detected at
/// run time, three interleaved streams on x86-64), otherwise software slicing-by-8: eight
/// 256-entry tables let the loop consume eight bytes per step with independent lookups. Both
/// give the same value. `CRC32C.checksum(of: "123456789")` is `0xE3069283`, the standard check
/// value.
public enum CRC32C {
    /// Whether this CPU computes CRC-32C in hardware.
    package static let hardware: Bool = cuplink_crc32c_hardware() != 0

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        update(0, bytes)
    }

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ update(0, UnsafeRawBufferPointer($0)) }) {
            return crc
        }
        return Array(bytes).withUnsafeBytes { update(0, $0) }
    }

    /// Extends a checksum `crc` (of earlier bytes) with `bytes`: `update(checksum(a), b)` equals
    /// the checksum of `a` followed by `b`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard hardware, let base = bytes.baseAddress, bytes.count > 0 else { return softwareUpdate(crc, bytes) }
        return ~cuplink_crc32c_extend(~crc, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// ``update(_:_:)`` with the table, whatever the CPU has (the reference the hardware path
    /// is tested against).
    package static func softwareUpdate(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        tables.withUnsafeBufferPointer { t in
            var c = ~crc
            var i = 0
            let n = bytes.count
            while n - i >= 8 {
                let lo = bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ c
                let hi = bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                c = t[7 &* 256 &+ Int(lo & 0xFF)]
                    ^ t[6 &* 256 &+ Int((lo >> 8) & 0xFF)]
                    ^ t[5 &* 256 &+ Int((lo >> 16) & 0xFF)]
                    ^ t[4 &* 256 &+ Int(lo >> 24)]
                    ^ t[3 &* 256 &+ Int(hi & 0xFF)]
                    ^ t[2 &* 256 &+ Int((hi >> 8) & 0xFF)]
                    ^ t[1 &* 256 &+ Int((hi >> 16) & 0xFF)]
                    ^ t[Int(hi >> 24)]
                i &+= 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
                i &+= 1
            }
            return ~c
        }
    }

    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for slice in 1..<8 {
            for i in 0..<256 {
                let prev = t[(slice - 1) * 256 + i]
                t[slice * 256 + i] = t[Int(prev & 0xFF)] ^ (prev >> 8)
            }
        }
        return t
    }()
}
