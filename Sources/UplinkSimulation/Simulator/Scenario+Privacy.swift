import UplinkPrivacy

extension Scenario {
    /// The scenario's central DP settings, `nil` without `dpClip`/`dpNoise`.
    public var dpSettings: DPSettings? {
        guard let clip = dpClip, let z = dpNoise else { return nil }
        return DPSettings(clip: clip, noiseMultiplier: z, adaptiveQuantile: dpAdaptiveQuantile, delta: dpDelta, epsilonBudget: dpEpsilonBudget, seed: dpSeed)
    }
}
