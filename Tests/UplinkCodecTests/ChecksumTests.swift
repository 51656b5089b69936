import Testing
import UplinkCodec
import UplinkTestSupport

@Suite struct CRC32CTests {
    @Test func standardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func emptyInputIsZero() {
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    /// The slicing-by-8 loop and the byte tail must agree with the bitwise definition.
    @Test(arguments: [1, 7, 8, 9, 63, 64, 65, 1000])
    func matchesBitwiseReference(length: Int) {
        var rng = SplitMix64(seed: UInt64(length))
        let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        #expect(CRC32C.checksum(bytes) == ~crc)
    }

    /// The CPU path (three interleaved streams from 12 KiB on x86-64) and the table give the
    /// same checksum at every length and alignment, and a chained update equals the whole.
    @Test(arguments: [0, 1, 5, 8, 15, 4095, 4096, 12_287, 12_288, 12_289, 24_577, 40_000, 1 << 20])
    func hardwareMatchesTheTable(length: Int) {
        var rng = SplitMix64(seed: UInt64(length) &+ 99)
        let bytes = (0..<(length + 8)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.withUnsafeBytes { all in
            for skew in [0, 1, 3, 7] {
                let view = UnsafeRawBufferPointer(rebasing: all[skew..<(skew + length)])
                #expect(CRC32C.update(0, view) == CRC32C.softwareUpdate(0, view), "length \(length), offset \(skew)")
                #expect(CRC32C.update(0x1234_5678, view) == CRC32C.softwareUpdate(0x1234_5678, view))
                let cut = length / 3
                let chained = CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: view[0..<cut])), UnsafeRawBufferPointer(rebasing: view[cut...]))
                #expect(chained == CRC32C.softwareUpdate(0, view))
            }
        }
    }

    /// A long input against the bitwise definition, so the table is not only checked against itself.
    @Test func longInputMatchesBitwiseReference() {
        var rng = SplitMix64(seed: 7)
        let bytes = (0..<50_001).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        #expect(CRC32C.checksum(bytes) == ~crc)
    }

    @Test func updateComposes() {
        let a = Array("hello, ".utf8), b = Array("uplink".utf8)
        let whole = CRC32C.checksum(a + b)
        let composed = b.withUnsafeBytes { CRC32C.update(CRC32C.checksum(a), $0) }
        #expect(composed == whole)
    }
}

@Suite struct FNVTests {
    @Test func knownVectors() {
        // Published FNV-1a 64 test vectors.
        #expect(FNV1a64.hash([UInt8]()) == 0xCBF2_9CE4_8422_2325)
        #expect(FNV1a64.hash(Array("a".utf8)) == 0xAF63_DC4C_8601_EC8C)
        #expect(FNV1a64.hash(Array("foobar".utf8)) == 0x8594_4171_F739_67E8)
    }
}

