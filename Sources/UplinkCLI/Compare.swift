import ArgumentParser
import Foundation
import UplinkCodec
import UplinkSimulation
import UplinkTensorIO

extension UplinkCommand {
    /// `uplink compare`: every pipeline's bytes, error, speed and upload time on one real update.
    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare pipelines on one real update: frame bytes, ratio to float32, error, encode/decode time, upload time per network.",
            discussion: """
                Example: uplink compare --in update.safetensors --profile 3G --profile LTE --deadline 45

                Without --pipeline compares \(PipelineComparison.defaultPipelines.count) pipelines from fp32 to top-k 0.1%. \
                Upload times are the median and 95th percentile over --clients links drawn from each profile \
                (docs/simulation.md), the same links for every pipeline. Non-float tensors (int64 counters, \
                bool masks) are skipped unless --refuse-non-float. Build with -c release for meaningful times. \
                See docs/simulation.md, "Your own model".
                """)

        @Option(name: .customLong("in"), help: "The update: a .safetensors file (PyTorch state_dict, Keras, Flower) or a float .npy array.")
        var input: String

        @Option(parsing: .singleValue, help: "A pipeline to compare (repeat the option); default: \(PipelineComparison.defaultPipelines.count) pipelines from fp32 to top-k 0.1%.")
        var pipeline: [String] = []

        @Option(parsing: .singleValue, help: "A network profile for upload times (repeat; 2G, 3G, LTE, 5G, WiFi, or all); default: 3G and LTE.")
        var profile: [String] = []

        @Option(help: "Also show the share of clients whose upload finishes within this many seconds.")
        var deadline: Double?

        @Flag(help: "Show which tensors cost the bytes, per pipeline.")
        var perTensor = false

        @Option(help: "With --per-tensor, the tensors shown per pipeline (all of them in --json).")
        var top: Int = 15

        @Option(help: "Links drawn per profile.")
        var clients: Int = 1000

        @Option(help: "Timed encode and decode runs per pipeline (the median is shown).")
        var runs: Int = 3

        @Option(help: "Seed of the drawn links.")
        var seed: UInt64 = 1

        @Flag(help: "Skip tensors that are not floating point (the default here).")
        var skipNonFloat = false

        @Flag(help: "Refuse a file with a non-float tensor instead of skipping it.")
        var refuseNonFloat = false

        @Flag(help: "Print JSON instead of the table.")
        var json = false

        func run() throws {
            try reportingErrors(json: json) {
                guard !(skipNonFloat && refuseNonFloat) else { throw UplinkError(.invalidArgument, "--skip-non-float and --refuse-non-float contradict each other") }
                guard (1...100_000).contains(top) else { throw UplinkError(.invalidArgument, "--top must be in 1…100000, got \(top)") }
                var specs: [Pipeline] = []
                for text in pipeline.isEmpty ? PipelineComparison.defaultPipelines : pipeline {
                    do throws(UplinkError) { specs.append(try Pipeline(parsing: text)) } catch { throw UplinkError(error.code, "--pipeline \"\(text)\": \(error.message)") }
                }
                let profiles = try Self.profiles(profile.isEmpty ? PipelineComparison.defaultProfiles : profile)
                let (update, report) = try TensorFiles.loadReporting(path: input, nonFloat: refuseNonFloat ? .refuse : .skip)
                for line in report.lines { note(line) }
                guard update.layout.parameterCount > 0 else { throw UplinkError(.invalidArgument, "\(input): the float tensors hold no values") }
                var options = PipelineComparison.Options(profiles: profiles)
                options.clients = clients
                options.runs = runs
                options.seed = seed
                options.deadline = deadline
                options.perTensor = perTensor
                let n = update.layout.parameterCount
                FileHandle.standardError.write(Data("uplink compare: \(input): \(n) parameters in \(update.layout.tensors.count) tensors (\(humanBytes(4 * n)) as float32), \(specs.count) pipelines\n".utf8))
                let result = try PipelineComparison(update: update.values, layout: update.layout, pipelines: specs, options: options) { p in
                    FileHandle.standardError.write(Data("  \(p)\n".utf8))
                }
                if json {
                    var out = result.jsonObject(input: input)
                    out["skipped_tensors"] = report.skipped.map { ["name": $0.name, "dtype": $0.dtype, "shape": $0.shape] as [String: Any] }
                    out["converted_tensors"] = report.converted.map {
                        ["name": $0.name, "dtype": $0.dtype, "count": $0.count, "max_abs_error": $0.maxAbsoluteError, "relative_l2_error": $0.relativeError] as [String: Any]
                    }
                    printJSON(out)
                } else {
                    print("\(input): \(n) parameters, \(update.layout.tensors.count) tensors, \(humanBytes(4 * n)) as float32")
                    print(result.table())
                    print("\nerror: of the decoded update against the update, one round (error feedback sends the rest later); encode and decode:")
                    print("median of \(runs) runs on this machine (decode adds the frame into a float32 sum); upload: p50 and p95 over \(clients) links")
                    print("per profile from the link model (round trips, variability, outages resumed, loss).")
                    if perTensor {
                        print("\nper tensor (bytes: the frame's section bytes attributed in proportion to the values each tensor sends):\n")
                        print(result.tensorTables(top: top))
                    }
                }
            }
        }

        /// Built-in profiles by name; `all` is every one.
        static func profiles(_ names: [String]) throws(UplinkError) -> [LinkProfile] {
            var out: [LinkProfile] = []
            for name in names {
                if name.lowercased() == "all" { out += LinkProfile.builtIn; continue }
                guard let p = LinkProfile.named(name) else {
                    throw UplinkError(.invalidArgument, "--profile \"\(name)\" is not a network profile; known: \(LinkProfile.builtIn.map(\.name).joined(separator: ", ")), all")
                }
                out.append(p)
            }
            var seen = Set<String>()
            return out.filter { seen.insert($0.name).inserted }
        }
    }
}
