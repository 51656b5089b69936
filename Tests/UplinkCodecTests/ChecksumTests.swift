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

