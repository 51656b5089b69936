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
        // Seeded: the output says that ε assumes a secrecy this run did not have.
        let privacy = summary["privacy"] as! [String: Any]
        #expect(privacy["randomness"] as? String == "seeded" && privacy["max_sampling_rate"] as? Double == 0.2 && privacy["rounds"] as? Int == eps.count)
        #expect((privacy["randomness_note"] as! String).hasPrefix("ε assumes a secret client sample"))
        let text = try CLI.run(["train", "--clients", "50", "--fraction", "0.2", "--rounds", "2", "--width", "8", "--data", data,
                                "--dp-clip", "0.5", "--dp-noise", "0.8", "--dp-seed", "1"], in: s.url)
        #expect(text.status == 0 && text.stdout.contains("q = 0.2 (m/N)") && text.stdout.contains("ε assumes a secret client sample"), "\(text.stdout)")
        let secret = try CLI.run(["train", "--clients", "50", "--fraction", "0.2", "--rounds", "1", "--width", "8", "--data", data,
                                  "--dp-clip", "0.5", "--dp-noise", "0.8", "--json"], in: s.url)
        let secretSummary = (try JSONSerialization.jsonObject(with: Data(secret.stdout.utf8)) as! [String: Any])["summary"] as! [String: Any]
        #expect((secretSummary["privacy"] as! [String: Any])["randomness"] as? String == "secret")
        let halfway = try CLI.run(["train", "--rounds", "2", "--width", "8", "--data", data, "--dp-clip", "1"], in: s.url)
        #expect(halfway.status == 1 && halfway.stderr.contains("both"))
    }

    /// `uplink simulate` with central DP: each round accounted at selected/online, ε and the
    /// randomness in the JSON and the text; a budget spent before the first round is an error.
    @Test func simulateReportsTheAccountedRateAndTheRandomness() throws {
        let s = try Scratch()
        let data = Fixtures.url("digits/digits.csv.gz").path
        try s.write("dp.json", Array("""
            {"clients": 20, "rounds": 3, "reportsPerRound": 4, "width": 8, "pipelines": ["fp32 | stored"],
             "population": [{"profile": "WiFi", "share": 1, "availability": 0.5}], "dpClip": 0.5, "dpNoise": 0.3, "dpAdaptiveQuantile": 0.5}
            """.utf8))
        let j = try CLI.run(["simulate", "--scenario", "dp.json", "--report", "out", "--data", data, "--json", "--dp-seed", "3"], in: s.url)
        #expect(j.status == 0, "\(j.stderr)")
        let run = ((try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any])["pipelines"] as! [[String: Any]])[0]
        let rows = run["rounds"] as! [[String: Any]]
        for row in rows {
            let online = (row["selected"] as! Int) == 0 ? 0.0 : Double(row["selected"] as! Int) / (row["sampling_rate"] as! Double)
            #expect(online >= Double(row["selected"] as! Int) && online <= 20 && online == online.rounded(), "\(row)")
        }
        let privacy = (run["summary"] as! [String: Any])["privacy"] as! [String: Any]
        #expect(privacy["randomness"] as? String == "seeded" && privacy["epsilon"] as? Double == rows.last!["epsilon"] as? Double)
        #expect(privacy["max_sampling_rate"] as? Double == rows.map { $0["sampling_rate"] as! Double }.max())
        let text = try CLI.run(["simulate", "--scenario", "dp.json", "--report", "out", "--data", data, "--dp-seed", "3"], in: s.url)
        #expect(text.status == 0 && text.stdout.contains("q = selected/online") && text.stdout.contains("ε assumes a secret client sample"), "\(text.stdout)")
        let secret = try CLI.run(["simulate", "--scenario", "dp.json", "--report", "out", "--data", data, "--rounds", "1"], in: s.url)
        #expect(secret.status == 0 && secret.stdout.contains("secure generator, as the accountant assumes"), "\(secret.stdout)")
        try s.write("spent.json", Array(#"{"clients": 20, "reportsPerRound": 4, "width": 8, "pipelines": ["fp32 | stored"], "dpClip": 1, "dpNoise": 0.3, "dpEpsilonBudget": 0.01}"#.utf8))
        let spent = try CLI.run(["simulate", "--scenario", "spent.json", "--report", "out", "--data", data], in: s.url)
        #expect(spent.status == 1 && spent.stderr.contains("exhausted before the first round"), "\(spent.stderr)")
    }
}
