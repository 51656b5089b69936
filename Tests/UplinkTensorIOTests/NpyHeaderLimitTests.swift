import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

/// Every path that reads a `.npy` file applies the same header rules and limit
/// (``Npy/maxHeaderLength``): `encode` (``TensorFiles/load(path:)``) and `aggregate --model`
/// (``TensorFileReader``) used to disagree on a 70 KB header.
@Suite struct NpyHeaderLimitTests {
    /// A float32 `.npy` of shape `[2]` whose header is padded to exactly `headerLength` bytes.
    static func npy(version: UInt8, headerLength: Int) -> [UInt8] {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
        header += String(repeating: " ", count: headerLength - header.utf8.count - 1) + "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        if version == 1 {
            withUnsafeBytes(of: UInt16(headerLength).littleEndian) { out += $0 }
        } else {
            withUnsafeBytes(of: UInt32(headerLength).littleEndian) { out += $0 }
        }
        return out + Array(header.utf8) + [Float(1.5), -2].float32LE
    }

    /// The outcome of each reading path for `bytes`: the values, or the error code.
    static func outcomes(_ bytes: [UInt8]) throws -> [String: Result<[Float], UplinkError>] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-npy-\(UUID()).npy").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        func run(_ body: () throws(UplinkError) -> [Float]) -> Result<[Float], UplinkError> {
            do throws(UplinkError) { return .success(try body()) } catch { return .failure(error) }
        }
        return [
            "Npy.read": run { () throws(UplinkError) in try Npy.read(bytes).values },
            "TensorFiles.load": run { () throws(UplinkError) in try TensorFiles.load(path: path).values },
            "TensorFileReader": run { () throws(UplinkError) in
                let reader = try TensorFileReader(path: path)
                var out = [Float](repeating: 0, count: reader.layout.parameterCount)
                try out.withUnsafeMutableBufferPointer { (b) throws(UplinkError) in try reader.read(0..<2, into: b) }
                return out
            },
        ]
    }

    @Test(arguments: [(UInt8(1), 64), (1, 65_535), (2, 65_535), (3, 65_535)])
    func headersUpToTheLimitAreReadByEveryPath(version: UInt8, headerLength: Int) throws {
        for (path, outcome) in try Self.outcomes(Self.npy(version: version, headerLength: headerLength)) {
            #expect(try outcome.get() == [1.5, -2], "\(path)")
        }
    }

    @Test(arguments: [65_536, 70_000, 1 << 20])
    func longerHeadersAreRefusedByEveryPathAsALimit(headerLength: Int) throws {
        #expect(Npy.maxHeaderLength == 65_535)
        for (path, outcome) in try Self.outcomes(Self.npy(version: 2, headerLength: headerLength)) {
            #expect(throws: UplinkError.self, "\(path)") { try outcome.get() }
            if case .failure(let e) = outcome { #expect(e.code == .headerTooLarge, "\(path): \(e)") }
        }
    }

    /// Rank is checked while the shape is parsed [407, as for frames and .safetensors], and a
    /// header that ends before its declared length is a malformed .npy [700], not a frame error.
    @Test func rankAndShortHeadersHaveTheirCodes() throws {
        let dims = Array(repeating: "1", count: 65).joined(separator: ", ")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        header += String(repeating: " ", count: 63 - (header.utf8.count + 10) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8) + [Float(0)].float32LE
        for (path, outcome) in try Self.outcomes(bytes) {
            if case .failure(let e) = outcome { #expect(e.code == .fieldTooLong, "\(path): \(e)") } else { Issue.record("\(path) accepted rank 65") }
        }
        let short = Array(Self.npy(version: 1, headerLength: 128).prefix(60))
        for (path, outcome) in try Self.outcomes(short) {
            if case .failure(let e) = outcome { #expect(e.code == .malformedNpy, "\(path): \(e)") } else { Issue.record("\(path) accepted it") }
        }
    }

    /// A dtype or key from the file is quoted in the message, cut to about 200 characters.
    @Test func quotedHeaderTextIsCut() {
        let long = String(repeating: "z", count: 3000)
        for header in ["{'descr': '\(long)', 'fortran_order': False, 'shape': (2,), }", "{'\(long)': 1}"] {
            var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
            withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { bytes += $0 }
            bytes += Array(header.utf8) + [UInt8](repeating: 0, count: 8)
            #expect { try Npy.read(bytes) } throws: { ($0 as! UplinkError).message.count < 2 * UplinkError.maxQuotedLength + 100 }
        }
    }
}
