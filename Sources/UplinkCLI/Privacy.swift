import ArgumentParser
import Foundation
import UplinkCodec
import UplinkPrivacy

extension UplinkCommand {
    /// `uplink privacy`: the privacy budget of a DP-FedAvg deployment.
    struct Privacy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Privacy budget: ε for a noise level, or the noise for an ε (RDP accountant, docs/privacy.md).",
            subcommands: [Epsilon.self, Noise.self])

        struct Epsilon: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "ε spent by Poisson-sampled Gaussian rounds.",
                discussion: "Example: uplink privacy epsilon --noise-multiplier 1.1 --sampling-rate 0.01 --rounds 1000 --delta 1e-5")
            @Option(help: "Noise standard deviation over the clipping norm (z).") var noiseMultiplier: Double
            @Option(help: "Probability that a client takes part in a round (q).") var samplingRate: Double
            @Option(help: "Rounds.") var rounds: Int
            @Option(help: "δ.") var delta: Double = 1e-5
            @Flag(help: "Print JSON.") var json = false

            func run() throws {
                try reportingErrors(json: json) {
                    let r = try RDPAccountant.epsilon(noiseMultiplier: noiseMultiplier, samplingRate: samplingRate, steps: rounds, delta: delta)
                    if r.atEdge { note("the optimal RDP order \(r.order) is at the edge of the order grid; ε may be loose") }
                    if json {
                        printJSON(["epsilon": r.epsilon, "delta": delta, "optimal_order": r.order, "order_at_grid_edge": r.atEdge,
                                   "noise_multiplier": noiseMultiplier, "sampling_rate": samplingRate, "rounds": rounds])
                    } else {
                        print(String(format: "ε = %.4f at δ = %g (optimal RDP order %g) for z = %g, q = %g, ", r.epsilon, delta, r.order, noiseMultiplier, samplingRate) + "\(rounds) rounds")
                    }
                }
            }
        }

        struct Noise: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "The smallest noise multiplier that keeps ε within a target.",
                discussion: "Example: uplink privacy noise --epsilon 3 --sampling-rate 0.01 --rounds 1000 --delta 1e-5")
            @Option(help: "Target ε.") var epsilon: Double
            @Option(help: "Probability that a client takes part in a round (q).") var samplingRate: Double
            @Option(help: "Rounds.") var rounds: Int
            @Option(help: "δ.") var delta: Double = 1e-5
            @Flag(help: "Print JSON.") var json = false

            func run() throws {
                try reportingErrors(json: json) {
                    let z = try RDPAccountant.noiseMultiplier(forEpsilon: epsilon, samplingRate: samplingRate, steps: rounds, delta: delta)
                    let r = try RDPAccountant.epsilon(noiseMultiplier: z, samplingRate: samplingRate, steps: rounds, delta: delta)
                    if json {
                        printJSON(["noise_multiplier": z, "epsilon": r.epsilon, "target_epsilon": epsilon, "delta": delta,
                                   "optimal_order": r.order, "sampling_rate": samplingRate, "rounds": rounds])
                    } else {
                        print(String(format: "noise multiplier z = %.4f gives ε = %.4f ≤ %g at δ = %g (q = %g, ", z, r.epsilon, epsilon, delta, samplingRate) + "\(rounds) rounds)")
                    }
                }
            }
        }
    }
}
