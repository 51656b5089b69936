import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

@Suite struct NpyTests {
    /// A `.npy` file as NumPy writes it, with a chosen version, descr and data.
    static func npy(version: UInt8 = 1, descr: String = "<f4", fortran: Bool = false, shape: String, data: [UInt8]) -> [UInt8] {
        var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
        let prefix = version == 1 ? 10 : 12
        header += String(repeating: " ", count: (64 - (prefix + header.utf8.count + 1) % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        if version == 1 {
            withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { out += $0 }
        } else {
            withUnsafeBytes(of: UInt32(header.utf8.count).littleEndian) { out += $0 }
        }
        return out + Array(header.utf8) + data
    }

    @Test func writeThenReadKeepsShapeAndBits() throws {
        let values = TestData.uniform(count: 24, seed: 1)
        for shape in [[24], [2, 3, 4], [24, 1]] {
            let (s, v) = try Npy.read(Npy.write(shape: shape, values: values))
            #expect(s == shape)
            #expect(v.map(\.bitPattern) == values.map(\.bitPattern))
        }
        let (s, v) = try Npy.read(Npy.write(shape: [], values: [Float(2.5)]))
        #expect(s == [] && v == [2.5])
    }

    @Test func headerIsAlignedTo64Bytes() {
        let bytes = Npy.write(shape: [3], values: [1, 2, 3])
        #expect((bytes.count - 12) % 64 == 0)
        #expect(bytes[bytes.count - 13] == 0x0A)
    }

    @Test(arguments: [UInt8(1), 2, 3])
    func readsEveryFormatVersion(version: UInt8) throws {
        let (shape, values) = try Npy.read(Self.npy(version: version, shape: "(2,)", data: [Float(1), -2].float32LE))
        #expect(shape == [2] && values == [1, -2])
    }

    @Test func convertsFloat16AndFloat64() throws {
        let half: [UInt8] = [0x00, 0x3C, 0x00, 0xC0]  // 1.0, -2.0
        #expect(try Npy.read(Self.npy(descr: "<f2", shape: "(2,)", data: half)).values == [1, -2])
        var double: [UInt8] = []
        for d in [0.1, -3.0] { withUnsafeBytes(of: d.bitPattern.littleEndian) { double += $0 } }
        #expect(try Npy.read(Self.npy(descr: "<f8", shape: "(1, 2)", data: double)).values == [Float(0.1), -3])
    }

    @Test(arguments: [
        ("<i4", UplinkError.Code.unsupportedDtype), ("|u1", .unsupportedDtype), (">f4", .unsupportedDtype),
        ("<c8", .unsupportedDtype), ("|b1", .unsupportedDtype), ("|O", .unsupportedDtype),
    ])
    func rejectsOtherDtypes(descr: String, code: UplinkError.Code) {
        #expect { try Npy.read(Self.npy(descr: descr, shape: "(2,)", data: [UInt8](repeating: 0, count: 8))) } throws: { error in
            let e = error as? UplinkError
            return e?.code == code && e!.message.contains(descr)
        }
    }

    @Test func rejectsFortranOrder() {
        #expect { try Npy.read(Self.npy(fortran: true, shape: "(2, 2)", data: [UInt8](repeating: 0, count: 16))) } throws: {
            ($0 as? UplinkError)?.code == .fortranOrder
        }
    }

    @Test(arguments: [
        ("(3,)", 8), ("(3,)", 16), ("(2, 2)", 12), ("(4611686018427387904, 4)", 16), ("(-1,)", 4), ("(2", 8), ("(a,)", 8),
    ])
    func rejectsDataThatDoesNotMatchTheShape(shape: String, dataBytes: Int) {
        #expect(throws: UplinkError.self) {
            try Npy.read(Self.npy(shape: shape, data: [UInt8](repeating: 0, count: dataBytes)))
        }
    }

    @Test func rejectsMalformedFiles() {
        let good = Self.npy(shape: "(1,)", data: [0, 0, 0, 0])
        var cases: [[UInt8]] = [[], Array(good[0..<5]), Array(good[0..<9]), Array("NUMPY".utf8)]
        var badVersion = good; badVersion[6] = 9; cases.append(badVersion)
        var hugeHeader = good; hugeHeader[8] = 0xFF; hugeHeader[9] = 0xFF; cases.append(hugeHeader)
        cases.append(Self.npy(shape: "(1,)", data: [0, 0, 0, 0]).map { $0 == UInt8(ascii: "{") ? UInt8(ascii: "[") : $0 })
        let noShape = [0x93] + Array("NUMPY".utf8) + [1, 0, 40, 0] + Array("{'descr': '<f4', 'fortran_order': False}".utf8)
        cases.append(noShape)
        for (i, bytes) in cases.enumerated() {
            #expect(throws: UplinkError.self, "case \(i)") { try Npy.read(bytes) }
        }
    }
}
