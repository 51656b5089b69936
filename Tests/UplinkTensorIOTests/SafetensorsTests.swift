import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

@Suite struct SafetensorsTests {
    static func file(_ json: String, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { out += $0 }
        return out + Array(json.utf8) + data
    }

    @Test func writeThenReadKeepsEverything() throws {
        let layout = try ModelLayout([TensorSpec(name: "a.weight", shape: [2, 3]), TensorSpec(name: "b", shape: [4]), TensorSpec(name: "c", shape: [])])
        let set = try TensorSet(layout: layout, values: TestData.uniform(count: 11, seed: 2))
        let back = try Safetensors.read(Safetensors.write(set))
        #expect(back.layout == layout)
        #expect(back.values == set.values)
    }

    /// Tensors are ordered by name whatever the file order, so layouts from different writers agree.
    @Test func layoutIsSortedByNameNotByOffset() throws {
        let json = #"{"z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"__metadata__":{"format":"pt"}}"#
        let set = try Safetensors.read(Self.file(json, data: [Float(9), 1, 2].float32LE))
        #expect(set.layout.tensors.map(\.name) == ["a", "z"])
        #expect(set.values == [1, 2, 9])
    }

    @Test func convertsF16BF16AndF64() throws {
        var f64: [UInt8] = []
        withUnsafeBytes(of: (2.5).bitPattern.littleEndian) { f64 += $0 }
        let json = #"{"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[2,4]},"d":{"dtype":"F64","shape":[1],"data_offsets":[4,12]}}"#
        let set = try Safetensors.read(Self.file(json, data: [0x00, 0x3C, 0x80, 0xBF] + f64))
        #expect(set.layout.tensors.map(\.name) == ["b", "d", "h"])
        #expect(set.values == [-1, 2.5, 1])
    }

    @Test(arguments: [
        (#"{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, 8, UplinkError.Code.unsupportedDtype),
        (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, 4, .malformedSafetensors),
        (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, .malformedSafetensors),
        (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 8, .malformedSafetensors),
        (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 4, .malformedSafetensors),
        (#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, 4, .malformedSafetensors),
        (#"{"w":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, 4, .malformedSafetensors),
        (#"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, 4, .malformedSafetensors),
        (#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, 4, .shapeOverflow),
        (#"{"w":{"dtype":"F32","shape":[1]}}"#, 4, .malformedSafetensors),
        (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#, 4, .malformedSafetensors),
        (#"["w"]"#, 0, .malformedSafetensors),
        (#"{}"#, 0, .malformedSafetensors),
        (#"{"__metadata__":{}}"#, 0, .malformedSafetensors),
    ])
    func rejectsMalformedHeaders(json: String, dataBytes: Int, code: UplinkError.Code) {
        #expect { try Safetensors.read(Self.file(json, data: [UInt8](repeating: 0, count: dataBytes))) } throws: {
            ($0 as? UplinkError)?.code == code
        }
    }

    /// Over the format's 100 MB: a limit [401]; within it but beyond the file: malformed [703].
    @Test func rejectsHeaderLengthsBeyondTheFile() {
        for n: UInt64 in [UInt64.max, 1 << 62, 200_000_000, 100] {
            var bytes: [UInt8] = []
            withUnsafeBytes(of: n.littleEndian) { bytes += $0 }
            bytes += Array("{}".utf8)
            #expect { try Safetensors.read(bytes) } throws: {
                ($0 as? UplinkError)?.code == (n > 100_000_000 ? .headerTooLarge : .malformedSafetensors)
            }
        }
        #expect { try Safetensors.read([1, 2, 3]) } throws: { ($0 as? UplinkError)?.code == .malformedSafetensors }
    }

    @Test func layoutCanBeReadFromTheHeaderAlone() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-layout-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let layout = try ModelLayout([TensorSpec(name: "x", shape: [3, 3])])
        try Data(Safetensors.write(try TensorSet(layout: layout, values: .init(repeating: 1, count: 9)))).write(to: url)
        #expect(try Safetensors.readLayout(path: url.path) == layout)
        #expect(try TensorFiles.loadLayout(path: url.path) == layout)
    }

    @Test func goldenInputReads() throws {
        let set = try TensorFiles.load(path: Fixtures.url("frames/golden-update.safetensors").path)
        #expect(set.layout.tensors.map(\.name) == ["dense.bias", "dense.weight", "embed"])
        #expect(set.layout.parameterCount == 32 + 512 + 64)
    }
}
