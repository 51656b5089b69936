import Foundation
import Testing
import UplinkCodec
import UplinkTestSupport

/// `uplink bench` as a user runs it: every figure it prints is consistent with the others and
/// with the frame it times.
@Suite struct BenchCLITests {
    static func bench(_ args: [String]) throws -> [String: Any] {
        let s = try Scratch()
        let r = try CLI.run(["bench"] + args + ["--json"], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        return try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    @Test(arguments: ["ef | topk 1% | int8 | lz4", "fp16 | lz4", "int8 | stored", "ef | sign | lz4", "ef | topk 0.1% | int4 | lz4"])
    func rooflineFiguresAreConsistent(pipeline: String) throws {
        let n = 200_000
        let j = try Self.bench(["--pipeline", pipeline, "--params", "\(n)", "--runs", "3", "--roofline"])
        let enc = try #require(j["encode_seconds"] as? Double), acc = try #require(j["accumulate_seconds"] as? Double)
        let ef = try #require(j["encode_floor_seconds"] as? Double), af = try #require(j["accumulate_floor_seconds"] as? Double)
        #expect(ef > 0 && af > 0 && enc > 0 && acc > 0)
        #expect(abs(try #require(j["encode_over_floor"] as? Double) - enc / ef) <= 1e-9 * enc / ef)
        #expect(abs(try #require(j["accumulate_over_floor"] as? Double) - acc / af) <= 1e-9 * acc / af)
        // The frame's size and ratio agree, and the median is one of the runs.
        let bytes = try #require(j["bytes"] as? Int)
        #expect(abs(try #require(j["ratio_to_float32"] as? Double) - Double(4 * n) / Double(bytes)) < 1e-9)
        #expect((j["encode_runs_seconds"] as? [Double])?.contains(enc) == true)
        #expect((j["accumulate_runs_seconds"] as? [Double])?.contains(acc) == true)
        #expect(try #require(j["crc32c_gb_per_s"] as? Double) > 0 && (j["crc32c_table_gb_per_s"] as? Double ?? 0) > 0)
    }

    @Test func badArgumentsAreTypedErrors() throws {
        let s = try Scratch()
        for args in [["--pipeline", "fp16 | lz4", "--params", "0"], ["--pipeline", "fp16 | lz4", "--runs", "0"], ["--pipeline", "nope"]] {
            let r = try CLI.run(["bench"] + args + ["--json"], in: s.url)
            #expect(r.status != 0 && !r.stdout.isEmpty, "\(args): \(r.stderr)")
        }
    }
}
