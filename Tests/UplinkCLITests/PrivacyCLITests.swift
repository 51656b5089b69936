import Foundation
import Testing
import UplinkTestSupport

@Suite struct PrivacyCLITests {
    @Test func epsilonAndNoiseCommands() throws {
        let s = try Scratch()
        let e = try CLI.run(["privacy", "epsilon", "--noise-multiplier", "1.1", "--sampling-rate", "0.01", "--rounds", "1000", "--delta", "1e-5", "--json"], in: s.url)
        #expect(e.status == 0, "\(e.stderr)")
        let ej = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        // dp_accounting 0.6.0 gives 1.7117701662 (order 9.6) for these inputs.
        #expect(abs((ej["epsilon"] as! Double) - 1.7117701662) < 1e-6)
        #expect(ej["optimal_order"] as? Double == 9.6)
        let n = try CLI.run(["privacy", "noise", "--epsilon", "3", "--sampling-rate", "0.01", "--rounds", "1000", "--delta", "1e-5", "--json"], in: s.url)
        let nj = try JSONSerialization.jsonObject(with: Data(n.stdout.utf8)) as! [String: Any]
        #expect((nj["epsilon"] as! Double) <= 3 && (nj["epsilon"] as! Double) > 2.997)
        for bad in [["--noise-multiplier", "0"], ["--noise-multiplier", "-2"], ["--sampling-rate", "1.5"], ["--sampling-rate", "0"], ["--delta", "1"], ["--delta", "0"]] {
            var args = ["privacy", "epsilon", "--noise-multiplier=1", "--sampling-rate=0.1", "--rounds=10", "--delta=1e-5"]
            args[args.firstIndex { $0.hasPrefix(bad[0] + "=") }!] = bad[0] + "=" + bad[1]
            let r = try CLI.run(args, in: s.url)
            #expect(r.status == 1 && r.stderr.contains("error 707"), "\(bad): \(r.stderr)")
        }
    }

    @Test func trainReportsEpsilonAndStopsAtTheBudget() throws {
        let s = try Scratch()
        let data = Fixtures.url("digits/digits.csv.gz").path
        let r = try CLI.run(["train", "--clients", "50", "--fraction", "0.2", "--rounds", "20", "--width", "16", "--data", data,
                             "--dp-clip", "0.5", "--dp-noise", "0.8", "--dp-seed", "1", "--dp-adaptive-quantile", "0.5", "--dp-epsilon-budget", "6", "--json"], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        let d = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let eps = (d["rounds"] as! [[String: Any]]).map { $0["epsilon"] as! Double }
        #expect(eps == eps.sorted() && eps.last! <= 6 && eps.count < 20)
        let summary = d["summary"] as! [String: Any]
        #expect(summary["epsilon"] as? Double == eps.last)
        let halfway = try CLI.run(["train", "--rounds", "2", "--width", "8", "--data", data, "--dp-clip", "1"], in: s.url)
        #expect(halfway.status == 1 && halfway.stderr.contains("both"))
    }
}
