import Foundation
import Testing
import UplinkTestSupport

@Suite struct TrainCLITests {
    @Test func trainPrintsRoundsAndSummaryAsJSON() throws {
        let s = try Scratch()
        let data = Fixtures.url("digits/digits.csv.gz").path
        let args = ["train", "--clients", "10", "--partition", "dirichlet:0.5", "--rounds", "3", "--local-epochs", "1", "--fraction", "0.3",
                    "--pipeline", "ef | topk 5% | int8 | lz4", "--seed", "4", "--width", "16", "--data", data, "--json"]
        let r = try CLI.run(args, in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        let d = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let rounds = d["rounds"] as! [[String: Any]]
        #expect(rounds.count == 3)
        #expect(rounds.allSatisfy { ($0["reported"] as? Int) == 3 })
        let bytes = rounds.map { $0["cumulative_uplink_bytes"] as! Int }
        #expect(bytes == bytes.sorted() && bytes[0] > 0)
        let summary = d["summary"] as! [String: Any]
        #expect(summary["pipeline"] as? String == "ef | topk 5% scope=global | int8 block=256 sym | lz4")
        #expect((summary["ratio_to_float32"] as? Double ?? 0) > 5)
        // The same command again gives the same run.
        let again = try CLI.run(args, in: s.url)
        let d2 = try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as! [String: Any]
        #expect((d2["rounds"] as! [[String: Any]]).map { $0["accuracy"] as! Double } == rounds.map { $0["accuracy"] as! Double })
        let text = try CLI.run(Array(args.dropLast()), in: s.url)
        #expect(text.status == 0 && text.stdout.contains("final accuracy"))
    }

    @Test func badTrainingArgumentsAreRefused() throws {
        let s = try Scratch()
        for (args, expected) in [(["--partition", "shards:2"], "partition"), (["--fraction", "0"], "fraction"), (["--clients", "5000"], "exceeds"), (["--data", "/nonexistent.csv.gz"], "cannot read")] {
            let r = try CLI.run(["train", "--rounds", "1", "--width", "8", "--data", Fixtures.url("digits/digits.csv.gz").path] + args, in: s.url)
            #expect(r.status == 1 && r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
    }
}
