import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

/// Real checkpoints hold non-float tensors (PyTorch's int64 `num_batches_tracked`, bool masks)
/// and other float types: skipped or refused by option, converted with the error reported.
@Suite struct NonFloatTensorTests {
    static func f64Bytes(_ xs: [Double]) -> [UInt8] {
        var out: [UInt8] = []
        for x in xs { withUnsafeBytes(of: x.bitPattern.littleEndian) { out += $0 } }
        return out
    }

    /// A BatchNorm-like file: F32 weight, I64 counter scalar, BOOL mask, in state_dict order.
    static let checkpoint: [UInt8] = {
        let json = #"{"bn.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[8,16]},"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[16,19]},"a":{"dtype":"F32","shape":[1],"data_offsets":[19,23]}}"#
        var data = [Float(0.5), -0.25].float32LE
        withUnsafeBytes(of: Int64(7).littleEndian) { data += $0 }
        data += [1, 0, 1]
        data += [Float(3)].float32LE
        return SafetensorsTests.file(json, data: data)
    }()

    @Test func nonFloatTensorsAreRefusedByDefaultNamingTheTensor() {
        do {
            _ = try Safetensors.read(Self.checkpoint)
            Issue.record("read a file with an I64 tensor")
        } catch let e as UplinkError {
            #expect(e.code == .unsupportedDtype)
            #expect(e.message.contains("bn.num_batches_tracked") && e.message.contains("I64") && e.message.contains("--skip-non-float"))
        } catch { Issue.record("\(error)") }
    }

    @Test func skippingLeavesTheFloatTensorsInNameOrder() throws {
        let set = try Safetensors.read(Self.checkpoint, nonFloat: .skip)
        #expect(set.layout.tensors.map(\.name) == ["a", "bn.weight"])
        #expect(set.values == [3, 0.5, -0.25])
    }

    @Test func theReportNamesWhatWasSkipped() throws {
        let dir = try ScratchDirectory()
        let path = try dir.write("ckpt.safetensors", Self.checkpoint)
        let (set, report) = try TensorFiles.loadReporting(path: path, nonFloat: .skip)
        #expect(set.layout.parameterCount == 3)
        #expect(report.skipped.map(\.name) == ["bn.num_batches_tracked", "mask"])
        #expect(report.skipped.map(\.dtype) == ["I64", "BOOL"])
        #expect(report.skipped.map(\.shape) == [[], [3]])
        #expect(report.lines == ["skipped 2 non-float tensors: bn.num_batches_tracked (I64), mask (BOOL)"])
        // The header-only layout agrees with the full read, for a server decoding these frames.
        #expect(try TensorFiles.loadLayout(path: path, nonFloat: .skip) == set.layout)
        #expect(throws: UplinkError.self) { try TensorFiles.loadLayout(path: path) }
    }

    /// A non-float tensor's bytes are still checked: a BOOL[3] spanning 4 bytes is malformed.
    @Test func nonFloatSizesAreChecked() {
        let json = #"{"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect { try Safetensors.read(SafetensorsTests.file(json, data: [UInt8](repeating: 0, count: 8)), nonFloat: .skip) } throws: {
            ($0 as? UplinkError)?.code == .malformedSafetensors && ($0 as! UplinkError).message.contains("BOOL")
        }
    }

    @Test func anUnknownDtypeIsRefusedEvenWhenSkipping() {
        let json = #"{"q":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]},"w":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#
        #expect { try Safetensors.read(SafetensorsTests.file(json, data: [UInt8](repeating: 0, count: 6)), nonFloat: .skip) } throws: {
            ($0 as? UplinkError)?.code == .unsupportedDtype && ($0 as! UplinkError).message.contains("Q4_K")
        }
    }

    @Test func aFileOfOnlyNonFloatTensorsIsRefused() {
        let json = #"{"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}"#
        #expect { try Safetensors.read(SafetensorsTests.file(json, data: [UInt8](repeating: 0, count: 8)), nonFloat: .skip) } throws: {
            ($0 as? UplinkError)?.code == .unsupportedDtype && ($0 as! UplinkError).message.contains("no float tensor")
        }
    }

    @Test func f64IsConvertedWithItsErrorReported() throws {
        let xs = [0.1, 1.0 / 3, -2.0, 0]
        let json = #"{"d":{"dtype":"F64","shape":[4],"data_offsets":[0,32]}}"#
        let dir = try ScratchDirectory()
        let path = try dir.write("d.safetensors", SafetensorsTests.file(json, data: Self.f64Bytes(xs)))
        let (set, report) = try TensorFiles.loadReporting(path: path)
        #expect(set.values == xs.map { Float($0) })
        let c = try #require(report.converted.first)
        let errors = xs.map { abs($0 - Double(Float($0))) }
        #expect(c.dtype == "F64" && c.count == 4)
        #expect(c.maxAbsoluteError == errors.max()!)
        let rel = (errors.reduce(0) { $0 + $1 * $1 } / xs.reduce(0) { $0 + $1 * $1 }).squareRoot()
        #expect(abs(c.relativeError - rel) <= 1e-12 * rel)
        #expect(c.maxAbsoluteError > 0 && c.relativeError < 1e-7)
        #expect(report.lines.count == 1 && report.lines[0].hasPrefix("converted 1 F64 tensor (4 values) to float32: largest error"))
    }

    @Test func f64BeyondFloat32IsRefusedNamingTheElement() {
        let json = #"{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#
        #expect { try Safetensors.read(SafetensorsTests.file(json, data: Self.f64Bytes([1, 1e300]))) } throws: {
            guard let e = $0 as? UplinkError else { return false }
            return e.code == .valueOutOfRange && e.message.contains("\"d\"") && e.message.contains("element 1")
        }
    }

    @Test func f64NaNAndInfinityAreRefusedBeforeAnyReport() {
        let json = #"{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#
        for x in [Double.nan, .infinity, -.infinity] {
            #expect { try Safetensors.read(SafetensorsTests.file(json, data: Self.f64Bytes([1, x]))) } throws: {
                ($0 as? UplinkError)?.code == .nonFiniteValue && ($0 as! UplinkError).message.contains("element 1")
            }
        }
    }

    @Test func f16AndBF16AreReportedExact() throws {
        let json = #"{"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[2,4]}}"#
        let dir = try ScratchDirectory()
        let path = try dir.write("h.safetensors", SafetensorsTests.file(json, data: [0x00, 0x3C, 0x80, 0xBF]))
        let (_, report) = try TensorFiles.loadReporting(path: path)
        #expect(report.converted.map(\.maxAbsoluteError) == [0, 0])
        #expect(report.lines == ["converted 1 BF16 tensor (1 values) to float32 exactly", "converted 1 F16 tensor (1 values) to float32 exactly"])
    }

    @Test func npyF64IsReportedToo() throws {
        let dir = try ScratchDirectory()
        var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8) + Self.f64Bytes([0.1, 0.2])
        let path = try dir.write("d.npy", bytes)
        let (set, report) = try TensorFiles.loadReporting(path: path)
        #expect(set.values == [Float(0.1), Float(0.2)])
        #expect(report.converted.first?.name == "arr_0" && report.converted.first!.maxAbsoluteError > 0)
    }

    /// The bundled CNN update is a real PyTorch-layout state_dict with I64 counters.
    @Test func theBundledCNNUpdateNeedsSkipping() throws {
        let path = Fixtures.url("updates/cnn-digits-update.safetensors").path
        #expect(throws: UplinkError.self) { try TensorFiles.load(path: path) }
        let (set, report) = try TensorFiles.loadReporting(path: path, nonFloat: .skip)
        #expect(set.layout.parameterCount == 13_898)
        #expect(report.skipped.map(\.name) == ["bn1.num_batches_tracked", "bn2.num_batches_tracked"])
        let finite = set.values.allSatisfy { $0.isFinite }
        #expect(finite)
    }
}
