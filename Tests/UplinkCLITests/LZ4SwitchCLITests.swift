import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

/// `UPLINK_LZ4` chooses the LZ4 implementation of a whole process: the real `uplink` run with
/// the Swift codec writes the same frames as with liblz4 (fast level) and reads liblz4's frames.
@Suite struct LZ4SwitchCLITests {
    static func uplink(_ lz4: String, _ arguments: [String], in directory: URL) throws -> ToolResult {
        try runTool(URL(fileURLWithPath: "/usr/bin/env"), ["UPLINK_LZ4=\(lz4)", CLI.executable.path] + arguments, in: directory)
    }

    @Test(.enabled(if: LZ4Implementation.systemAvailable),
          arguments: ["fp32 | lz4", "fp16 | lz4", "ef | topk 10% | int8 | lz4", "int4 block=64 | lz4"])
    func swiftAndLiblz4ProcessesWriteTheSameFrames(pipeline: String) throws {
        let s = try Scratch()
        try s.write("u.npy", Npy.write(shape: [40_000], values: TestData.heavyTailed(count: 40_000, seed: 9)))
        var frames: [String: [UInt8]] = [:]
        for lz4 in ["system", "swift"] {
            let r = try Self.uplink(lz4, ["encode", "--pipeline", pipeline, "--in", "u.npy", "--out", "\(lz4).upl", "--section-bytes", "20000"], in: s.url)
            #expect(r.status == 0, "\(r.stderr)")
            frames[lz4] = try s.read("\(lz4).upl")
        }
        #expect(frames["swift"] == frames["system"])
        // And each reads the other's HC frame (whose bytes differ) to the same values.
        for (writer, reader) in [("system", "swift"), ("swift", "system")] {
            let enc = try Self.uplink(writer, ["encode", "--pipeline", "fp32 | lz4 level=9", "--in", "u.npy", "--out", "hc-\(writer).upl"], in: s.url)
            #expect(enc.status == 0, "\(enc.stderr)")
            let dec = try Self.uplink(reader, ["decode", "--in", "hc-\(writer).upl", "--out", "back-\(writer).npy"], in: s.url)
            #expect(dec.status == 0, "\(dec.stderr)")
            #expect(try s.read("back-\(writer).npy") == s.read("u.npy"))
        }
    }

    @Test func anUnknownValueIsReportedAndTheDefaultUsed() throws {
        let s = try Scratch()
        try s.write("u.npy", Npy.write(shape: [5000], values: TestData.heavyTailed(count: 5000, seed: 10)))
        let r = try Self.uplink("fast", ["encode", "--pipeline", "fp32 | lz4", "--in", "u.npy", "--out", "f.upl"], in: s.url)
        #expect(r.status == 0)
        let fallback = LZ4Implementation.systemAvailable ? "system" : "swift"
        #expect(r.stderr.contains("UPLINK_LZ4=fast is neither swift nor system; using \(fallback)"), "\(r.stderr)")
    }
}
