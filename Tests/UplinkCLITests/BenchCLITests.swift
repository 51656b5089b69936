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
        // Each multiple is the median of the ratios of adjacent (run, floor run) pairs.
        func median(_ a: [Double]) -> Double { a.sorted()[a.count / 2] }
        for stage in ["encode", "accumulate"] {
            let times = try #require(j["\(stage)_runs_seconds"] as? [Double])
            let floors = try #require(j["\(stage)_floor_runs_seconds"] as? [Double])
            #expect(times.count == 3 && floors.count == 3 && floors.allSatisfy { $0 > 0 })
            #expect(j["\(stage)_floor_seconds"] as? Double == median(floors))
            let ratio = median(zip(times, floors).map { $0 / $1 })
            #expect(abs(try #require(j["\(stage)_over_floor"] as? Double) - ratio) <= 1e-12 * ratio)
        }
        // The frame's size and ratio agree, and the median is one of the runs.
        let bytes = try #require(j["bytes"] as? Int)
        #expect(abs(try #require(j["ratio_to_float32"] as? Double) - Double(4 * n) / Double(bytes)) < 1e-9)
        #expect((j["encode_runs_seconds"] as? [Double])?.contains(enc) == true)
        #expect((j["accumulate_runs_seconds"] as? [Double])?.contains(acc) == true)
        // The codec alone, and the multiples without it.
        let codecEncode = try #require(j["codec_encode_seconds"] as? Double), codecDecode = try #require(j["codec_decode_seconds"] as? Double)
        #expect(pipeline.hasSuffix("stored") ? codecEncode == 0 && codecDecode == 0 : codecEncode > 0)
        for (stage, codecStage, codec) in [("encode", "encode", codecEncode), ("accumulate", "decode", codecDecode)] {
            let times = try #require(j["\(stage)_runs_seconds"] as? [Double])
            let floors = try #require(j["\(stage)_floor_runs_seconds"] as? [Double])
            // The codec ran once after each timed run: its median is one of its runs, and each
            // run's multiple subtracts that run's codec time.
            let codecRuns = try #require(j["codec_\(codecStage)_runs_seconds"] as? [Double])
            #expect(codecRuns.count == times.count && codecRuns.contains(codec))
            let ratio = median((0..<times.count).map { (times[$0] - codecRuns[$0]) / floors[$0] })
            #expect(abs(try #require(j["\(stage)_without_codec_over_floor"] as? Double) - ratio) <= 1e-12 * abs(ratio))
        }
        #expect(try #require(j["crc32c_gb_per_s"] as? Double) > 0 && (j["crc32c_table_gb_per_s"] as? Double ?? 0) > 0)
    }

    /// `--aggregate`: frames per second through a real FedAvg round, one thread and two.
    @Test func aggregateRatesAreConsistent() throws {
        let j = try Self.bench(["--pipeline", "ef | topk 1% | int8 | lz4", "--params", "100000", "--runs", "3", "--aggregate", "12", "--threads", "2"])
        let one = try #require(j["aggregate_frames_per_second_one_thread"] as? Double), many = try #require(j["aggregate_frames_per_second"] as? Double)
        #expect(one > 0 && many > 0 && j["aggregate_clients"] as? Int == 12 && j["aggregate_threads"] as? Int == 2)
        #expect(abs(try #require(j["aggregate_speedup"] as? Double) - many / one) <= 1e-12 * many / one)
        #expect(try #require(j["aggregate_close_seconds"] as? Double) >= 0)
        let s = try Scratch()
        let r = try CLI.run(["bench", "--pipeline", "fp16 | lz4", "--params", "1000", "--aggregate", "1", "--json"], in: s.url)
        #expect(r.status != 0 && r.stdout.contains("--aggregate"), "\(r.stdout)")
    }

    @Test func badArgumentsAreTypedErrors() throws {
        let s = try Scratch()
        for args in [["--pipeline", "fp16 | lz4", "--params", "0"], ["--pipeline", "fp16 | lz4", "--runs", "0"], ["--pipeline", "nope"]] {
            let r = try CLI.run(["bench"] + args + ["--json"], in: s.url)
            #expect(r.status != 0 && !r.stdout.isEmpty, "\(args): \(r.stderr)")
        }
    }
}
