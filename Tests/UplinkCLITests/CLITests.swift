import Foundation
import Testing
import UplinkCodec
import UplinkTensorIO
import UplinkTestSupport

/// Runs the real `uplink` executable, as a user would.
struct CLI {
    static let executable: URL = UplinkExecutable.url

    typealias Result = ToolResult

    /// Runs `uplink` with its address space capped at `memoryLimit` bytes (`ulimit -v`), so a
    /// test can state "this costs less than X" as a hard failure rather than a measurement.
    static func run(_ arguments: [String], in directory: URL, memoryLimit: Int) throws -> Result {
        try run(["-c", "ulimit -v \(memoryLimit / 1024) && exec \"$0\" \"$@\"", executable.path] + arguments, in: directory, executable: URL(fileURLWithPath: "/bin/sh"))
    }

    static func run(_ arguments: [String], in directory: URL, executable: URL = CLI.executable) throws -> Result {
        try runTool(executable, arguments, in: directory)
    }
}

/// A scratch directory per test.
typealias Scratch = ScratchDirectory

@Suite struct CLITests {
    static let pipelines = ["fp32 | stored", "fp32 | lz4", "fp32 | zlib", "fp32 | zlib level=9", "fp16 | lz4"]

    @Test func executableIsBuilt() {
        #expect(FileManager.default.isExecutableFile(atPath: CLI.executable.path), "build the uplink product first: swift build")
    }

    @Test(arguments: pipelines)
    func encodeThenDecodeNpy(pipeline: String) throws {
        let s = try Scratch()
        let values = TestData.heavyTailed(count: 3000, seed: 1)
        try s.write("update.npy", Npy.write(shape: [30, 100], values: values))
        let enc = try CLI.run(["encode", "--pipeline", pipeline, "--in", "update.npy", "--out", "frame.upl", "--round", "3", "--samples", "50", "--json"], in: s.url)
        #expect(enc.status == 0, "\(enc.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(enc.stdout.utf8)) as! [String: Any]
        let frameBytes = try s.read("frame.upl").count
        #expect(summary["bytes"] as? Int == frameBytes)
        #expect(summary["parameters"] as? Int == 3000)
        let dec = try CLI.run(["decode", "--in", "frame.upl", "--out", "back.npy"], in: s.url)
        #expect(dec.status == 0, "\(dec.stderr)")
        let (shape, back) = try Npy.read(try s.read("back.npy"))
        #expect(shape == [30, 100])
        if pipeline.hasPrefix("fp32") {
            #expect(back.map(\.bitPattern) == values.map(\.bitPattern))
            #expect(summary["relative_l2_error"] as? Double == 0)
        } else {
            #expect((summary["relative_l2_error"] as? Double ?? 1) < 1e-3)
        }
    }

    @Test func inspectJsonReportsHeaderAndSections() throws {
        let s = try Scratch()
        try s.write("u.npy", Npy.write(shape: [5000], values: TestData.heavyTailed(count: 5000, seed: 2)))
        #expect(try CLI.run(["encode", "--pipeline", "fp32 | zlib level=9", "--in", "u.npy", "--out", "f.upl", "--section-bytes", "8000", "--round", "12"], in: s.url).status == 0)
        let r = try CLI.run(["inspect", "f.upl", "--json"], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        let info = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(info["pipeline"] as? String == "fp32 | zlib level=9")
        #expect(info["round"] as? Int == 12)
        #expect(info["parameters"] as? Int == 5000)
        let frameBytes = try s.read("f.upl").count
        #expect(info["bytes"] as? Int == frameBytes)
        let sections = info["sections"] as? [[String: Any]] ?? []
        #expect(sections.count == 3)
        #expect(sections.map { $0["raw_bytes"] as? Int } == [8000, 8000, 4000])
        #expect((info["tensors"] as? [[String: Any]])?.first?["name"] as? String == "arr_0")
        let text = try CLI.run(["inspect", "f.upl"], in: s.url)
        #expect(text.status == 0 && text.stdout.contains("fp32 | zlib level=9") && text.stdout.contains("checksums verified"))
    }

    @Test func safetensorsKeepNamesAndShapes() throws {
        let s = try Scratch()
        try s.write("m.safetensors", try Fixtures.bytes("frames/golden-update.safetensors"))
        #expect(try CLI.run(["encode", "--pipeline", "fp32 | lz4", "--in", "m.safetensors", "--out", "f.upl"], in: s.url).status == 0)
        #expect(try CLI.run(["decode", "--in", "f.upl", "--out", "back.safetensors"], in: s.url).status == 0)
        let original = try Safetensors.read(try s.read("m.safetensors"))
        let back = try Safetensors.read(try s.read("back.safetensors"))
        #expect(back.layout == original.layout && back.values == original.values)
    }

    @Test func omittedLayoutNeedsLayoutOption() throws {
        let s = try Scratch()
        try s.write("m.safetensors", try Fixtures.bytes("frames/golden-update.safetensors"))
        #expect(try CLI.run(["encode", "--pipeline", "fp16 | lz4", "--in", "m.safetensors", "--out", "f.upl", "--omit-layout"], in: s.url).status == 0)
        let without = try CLI.run(["decode", "--in", "f.upl", "--out", "b.safetensors"], in: s.url)
        #expect(without.status != 0 && without.stderr.contains("error 302"))
        let with = try CLI.run(["decode", "--in", "f.upl", "--out", "b.safetensors", "--layout", "m.safetensors"], in: s.url)
        #expect(with.status == 0, "\(with.stderr)")
        try s.write("other.npy", Npy.write(shape: [608], values: [Float](repeating: 0, count: 608)))
        let wrong = try CLI.run(["decode", "--in", "f.upl", "--out", "b.npy", "--layout", "other.npy"], in: s.url)
        #expect(wrong.status != 0 && wrong.stderr.contains("error 300"))
    }

    /// Corrupted and truncated frames: non-zero exit, one line naming the problem, no crash.
    @Test func corruptAndTruncatedFramesFailWithOneLine() throws {
        let s = try Scratch()
        let golden = try Fixtures.bytes("frames/fp32-lz4.upl")
        var flipped = golden
        flipped[flipped.count - 10] ^= 0x04
        var headerFlip = golden
        headerFlip[30] ^= 0x01
        let cases: [(String, [UInt8], String)] = [
            ("payload.upl", flipped, "error 201"), ("header.upl", headerFlip, "error 200"),
            ("short.upl", Array(golden[0..<(golden.count / 2)]), "error 103"), ("empty.upl", [], "error 103"),
            ("text.upl", Array("hello world".utf8), "error 100"),
        ]
        for (name, bytes, expected) in cases {
            try s.write(name, bytes)
            for args in [["decode", "--in", name, "--out", "x.npy"], ["inspect", name]] {
                let r = try CLI.run(args, in: s.url)
                #expect(r.status == 1, "\(args) exited \(r.status)")
                let lines = r.stderr.split(separator: "\n")
                #expect(lines.count == 1 && lines[0].contains(expected) && lines[0].contains(name), "\(args): \(r.stderr)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: s.path("x.npy")))
    }

    @Test func badInputsGetClearErrors() throws {
        let s = try Scratch()
        try s.write("u.npy", Npy.write(shape: [4], values: [1, 2, 3, 4]))
        var ints = Npy.write(shape: [4], values: [1, 2, 3, 4])
        if let r = ints.firstRange(of: Array("<f4".utf8)) { ints.replaceSubrange(r, with: Array("<i4".utf8)) }
        try s.write("ints.npy", ints)
        var nan = Npy.write(shape: [2], values: [1, .nan])
        try s.write("nan.npy", nan)
        nan = []
        let cases: [([String], String)] = [
            (["encode", "--pipeline", "fp32 | brotli", "--in", "u.npy", "--out", "f.upl"], "error 601"),
            (["encode", "--pipeline", "fp32 | zlib level=12", "--in", "u.npy", "--out", "f.upl"], "error 602"),
            (["encode", "--pipeline", "lz4 | fp32", "--in", "u.npy", "--out", "f.upl"], "error 603"),
            (["encode", "--pipeline", "fp32", "--in", "ints.npy", "--out", "f.upl"], "error 701"),
            (["encode", "--pipeline", "fp32", "--in", "nan.npy", "--out", "f.upl"], "error 704"),
            (["encode", "--pipeline", "fp32", "--in", "missing.npy", "--out", "f.upl"], "error 706"),
            (["encode", "--pipeline", "fp32", "--in", "u.txt", "--out", "f.upl"], "error 70"),
        ]
        for (args, expected) in cases {
            let r = try CLI.run(args, in: s.url)
            #expect(r.status == 1 && r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: s.path("f.upl")))
        let json = try CLI.run(["encode", "--pipeline", "nope", "--in", "u.npy", "--out", "f.upl", "--json"], in: s.url)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: [String: Any]]
        #expect(object?["error"]?["code"] as? Int == 601)
    }

    @Test func acceptsFloat64AndFloat16Npy() throws {
        let s = try Scratch()
        var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8)
        for d in [0.5, -1.25, 3.0] { withUnsafeBytes(of: d.bitPattern.littleEndian) { bytes += $0 } }
        try s.write("d.npy", bytes)
        #expect(try CLI.run(["encode", "--pipeline", "fp32 | lz4", "--in", "d.npy", "--out", "f.upl"], in: s.url).status == 0)
        #expect(try CLI.run(["decode", "--in", "f.upl", "--out", "b.npy"], in: s.url).status == 0)
        #expect(try Npy.read(try s.read("b.npy")).values == [0.5, -1.25, 3])
    }
}
