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
        #expect(summary["weight_decay"] as? Double == 0 && summary["prox_mu"] as? Double == 0)
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
        for (args, expected) in [(["--partition", "shards:x"], "partition"), (["--partition", "shards:20"], "needs 2000 shards"), (["--fraction", "0"], "fraction"),
                                 (["--clients", "5000"], "5000 clients cannot share 1436"), (["--data", "/nonexistent.csv.gz"], "cannot read"),
                                 (["--model", "cnn", "--width", "8"], "the CNN's layers are fixed"), (["--dataset", "mnist"], "--dataset must be digits or fmnist"),
                                 (["--model", "resnet"], "--model must be mlp or cnn"), (["--train-examples", "0"], "--train-examples"),
                                 (["--train-examples", "50", "--clients", "60"], "60 clients cannot share 50"),
                                 (["--weight-decay=-0.1"], "--weight-decay finite and ≥ 0"), (["--weight-decay", "nan"], "--weight-decay finite"),
                                 (["--weight-decay", "inf"], "--weight-decay finite"), (["--prox-mu", "inf"], "--prox-mu and --weight-decay finite"),
                                 (["--lr", "0"], "--lr must be finite and > 0"), (["--momentum", "1"], "--momentum in [0, 1)")] {
            let r = try CLI.run(["train", "--rounds", "1", "--width", "8", "--data", Fixtures.url("digits/digits.csv.gz").path] + args, in: s.url)
            #expect(r.status == 1 && r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
        let cnnOnDigits = try CLI.run(["train", "--rounds", "1", "--model", "cnn", "--data", Fixtures.url("digits/digits.csv.gz").path], in: s.url)
        #expect(cnnOnDigits.status == 1 && cnnOnDigits.stderr.contains("28×28"), "\(cnnOnDigits.stderr)")
        let missing = try CLI.run(["train", "--rounds", "1", "--dataset", "fmnist", "--data", "/nonexistent/fmnist"], in: s.url)
        #expect(missing.status == 1 && missing.stderr.contains("cannot read the Fashion-MNIST file"), "\(missing.stderr)")
    }

    /// The CNN trained on the AVX2 convolution kernels and on the Swift ones (`UPLINK_CONV=swift`)
    /// is the same run, bit for bit: every round's accuracy, bytes and update error agree.
    @Test func cnnRunIsTheSameOnBothConvolutionPaths() throws {
        let s = try Scratch()
        let args = ["train", "--dataset", "fmnist", "--model", "cnn", "--train-examples", "1200", "--test-examples", "300", "--clients", "4",
                    "--fraction", "1", "--rounds", "2", "--partition", "dirichlet:0.5", "--local-epochs", "2", "--batch-size", "16",
                    "--momentum", "0.9", "--lr", "0.05", "--pipeline", "ef | topk 10% | int8 | lz4", "--seed", "9", "--json"]
        let native = try CLI.run(args, in: s.url)
        let swift = try CLI.run(["-c", "UPLINK_CONV=swift exec \"$0\" \"$@\"", CLI.executable.path] + args, in: s.url, executable: URL(fileURLWithPath: "/bin/sh"))
        #expect(native.status == 0 && swift.status == 0, "\(native.stderr) \(swift.stderr)")
        func rounds(_ r: CLI.Result) throws -> [[String: Any]] {
            try (JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])["rounds"] as! [[String: Any]]
        }
        let a = try rounds(native), b = try rounds(swift)
        #expect(a.count == 2 && b.count == 2)
        for (x, y) in zip(a, b) {
            for key in ["accuracy", "uplink_bytes", "mean_relative_error"] {
                #expect("\(x[key] ?? "none")" == "\(y[key] ?? "none")", "\(key): \(x) vs \(y)")
            }
        }
        #expect((a.last?["accuracy"] as? Double ?? 0) > 0.2, "\(a)")
    }

    /// Fashion-MNIST on a subset, both networks: the summary says what ran, and it learned.
    @Test(arguments: [("mlp", 199_210), ("cnn", 44_426)])
    func fashionMNISTRunsOnASubset(model: String, parameters: Int) throws {
        let s = try Scratch()
        let r = try CLI.run(["train", "--dataset", "fmnist", "--model", model, "--train-examples", "2000", "--test-examples", "500", "--clients", "10",
                             "--fraction", "0.5", "--rounds", "3", "--partition", "dirichlet:1", "--local-epochs", "5", "--batch-size", "20",
                             "--pipeline", "int8 | lz4", "--json"], in: s.url)
        #expect(r.status == 0, "\(r.stderr)")
        let d = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let summary = d["summary"] as! [String: Any]
        #expect(summary["dataset"] as? String == "fmnist" && summary["model"] as? String == model)
        #expect(summary["parameters"] as? Int == parameters)
        #expect(summary["train_examples"] as? Int == 2000 && summary["test_examples"] as? Int == 500)
        #expect(summary["partition"] as? String == "dirichlet:1.0" && summary["lr"] as? Double == 0.05)
        #expect((summary["final_accuracy"] as? Double ?? 0) > 0.3, "\(summary)")
        #expect((summary["float32_uplink_bytes"] as? Int) == 3 * 5 * parameters * 4)
    }
}
