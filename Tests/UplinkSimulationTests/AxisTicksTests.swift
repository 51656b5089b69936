import Testing
@testable import UplinkSimulation

/// Exact tick sets: 1, 2 or 5 × 10^k, the domain from the last tick at or below the data to the
/// first at or above it, one value padded, accuracy clamped to [0, 1].
@Suite struct AxisTicksTests {
    @Test(arguments: [
        // (low, high, max ticks, integer, ticks)
        (1.0, 12.0, 10, true, [0.0, 2, 4, 6, 8, 10, 12]),  // rounds: not 1, 3.75, 6.5, 9.25, 12
        (1.0, 30.0, 10, true, [0.0, 5, 10, 15, 20, 25, 30]),
        (1.0, 1.0, 10, true, [0.0, 1, 2]),  // one round: the point mid-axis
        (1.0, 3.0, 10, true, [1.0, 2, 3]),  // integer ticks never 1.5
        (0.139, 0.391, 7, false, [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4]),
        (1.0, 1.12, 10, false, [1.0, 1.02, 1.04, 1.06, 1.08, 1.1, 1.12]),
        (0.0, 53.5e6, 8, false, [0.0, 1e7, 2e7, 3e7, 4e7, 5e7, 6e7]),
        (-3.0, 7.0, 6, false, [-5.0, 0, 5, 10]),
        (5e9, 5e9, 8, false, [4.4e9, 4.6e9, 4.8e9, 5e9, 5.2e9, 5.4e9, 5.6e9]),  // one value past 2³², ±10%
    ] as [(Double, Double, Int, Bool, [Double])])
    func linearTicks(low: Double, high: Double, maxTicks: Int, integer: Bool, ticks: [Double]) {
        let scale = AxisScale.linear(low, high, maxTicks: maxTicks, integer: integer)
        #expect(scale.ticks == ticks)
        #expect(scale.low == ticks.first && scale.high == ticks.last)
        #expect(scale.low <= min(low, high) && scale.high >= max(low, high))
    }

    /// Accuracy: a range of one value is padded by 10% and clamped to [0, 1], never −0.87…1.13.
    @Test(arguments: [
        (0.13, 0.13, [0.115, 0.12, 0.125, 0.13, 0.135, 0.14, 0.145]),
        (0.152, 0.152, [0.13, 0.14, 0.15, 0.16, 0.17]),
        (1.0, 1.0, [0.9, 0.92, 0.94, 0.96, 0.98, 1.0]),
        (0.0, 0.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.9, 1.0, [0.9, 0.92, 0.94, 0.96, 0.98, 1.0]),
        (0.05, 0.97, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ] as [(Double, Double, [Double])])
    func accuracyTicksAreClampedToTheUnitInterval(low: Double, high: Double, ticks: [Double]) {
        let scale = AxisScale.linear(low, high, maxTicks: 7, clamp: 0...1)
        #expect(scale.ticks == ticks)
        #expect(scale.low >= 0 && scale.high <= 1 && scale.low <= low && scale.high >= high)
    }

    @Test(arguments: [
        (1960.0, 97_900.0, 8, [1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5]),
        (1.0, 1e9, 8, [1.0, 1e2, 1e4, 1e6, 1e8, 1e10]),
        (0.0123, 0.473, 10, [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]),
        (89_100.0, 89_100.0, 8, [5e4, 1e5]),  // one value between ticks
        (100.0, 100.0, 8, [50.0, 100, 200]),  // one value on a tick
        (2e9, 6e9, 8, [2e9, 5e9, 1e10]),  // past 2³²
        (3.0, 3e5, 8, [1.0, 10, 100, 1e3, 1e4, 1e5, 1e6]),  // 1-2-5 would need 17 ticks
    ] as [(Double, Double, Int, [Double])])
    func logTicks(low: Double, high: Double, maxTicks: Int, ticks: [Double]) {
        let scale = AxisScale.log(low, high, maxTicks: maxTicks)
        #expect(scale.ticks == ticks)
        #expect(scale.low <= low && scale.high >= high)
    }

    @Test func labelsReadAsTheirUnits() {
        #expect(AxisUnit.percent.labels(AxisScale.linear(0.13, 0.13, maxTicks: 7, clamp: 0...1)) == ["11.5%", "12%", "12.5%", "13%", "13.5%", "14%", "14.5%"])
        #expect(AxisUnit.bytes.labels(AxisScale.log(1960, 97_900)) == ["1 kB", "2 kB", "5 kB", "10 kB", "20 kB", "50 kB", "100 kB"])
        #expect(AxisUnit.bytes.labels(AxisScale.log(2e9, 6e9)) == ["2 GB", "5 GB", "10 GB"])
        #expect(AxisUnit.bytes.labels(AxisScale.linear(0, 53.5e6, maxTicks: 8)) == ["0 B", "10 MB", "20 MB", "30 MB", "40 MB", "50 MB", "60 MB"])
        #expect(AxisUnit.seconds.labels(AxisScale.linear(1, 1.12, maxTicks: 10)) == ["1 s", "1.02 s", "1.04 s", "1.06 s", "1.08 s", "1.1 s", "1.12 s"])
        #expect(AxisUnit.seconds.labels(AxisScale.log(0.0123, 0.473, maxTicks: 10)) == ["0.01 s", "0.02 s", "0.05 s", "0.1 s", "0.2 s", "0.5 s"])
        #expect(AxisUnit.count.labels(AxisScale.linear(1, 12, maxTicks: 10, integer: true)) == ["0", "2", "4", "6", "8", "10", "12"])
        #expect(AxisUnit.bytes.text(5_000_000_000) == "5.00 GB" && AxisUnit.bytes.text(Double(Int64(1) << 42)) == "4.40 TB")
    }

    /// Whatever the input (huge, infinite, reversed), a scale is finite and increasing.
    @Test func degenerateInputsGiveAFiniteScale() {
        for (lo, hi) in [(Double.infinity, 1), (-1e308, 1e308), (5, 2), (.nan, 3)] {
            let s = AxisScale.linear(lo, hi)
            #expect(s.low < s.high && s.ticks.allSatisfy(\.isFinite) && !s.ticks.isEmpty, "\(lo)…\(hi): \(s)")
        }
        for (lo, hi) in [(0.0, 10), (-1, 5), (1, .infinity)] {
            let s = AxisScale.log(lo, hi)
            #expect(s.low > 0 && s.low < s.high, "\(lo)…\(hi): \(s)")
        }
    }
}
