import Foundation

/// A plot axis: its domain and its ticks at "nice numbers" (Heckbert, "Nice numbers for graph
/// labels", Graphics Gems, 1990): 1, 2 or 5 × 10^k, so labels read 0.05, 0.1, 0.15 or 20 kB,
/// 50 kB, 100 kB and never 8.25 rounds or 53.5M bytes.
///
/// The domain runs from the last tick at or below the data to the first tick at or above it, so
/// every point lies inside and both ends are labelled. A range of one value (a one-round run)
/// is padded to a sane width; `clamp` keeps the domain inside known bounds (accuracy in [0, 1]).
struct AxisScale: Equatable {
    /// The domain, in data units.
    var low: Double
    var high: Double
    /// Tick values, increasing, from `low` to `high`.
    var ticks: [Double]
    /// A logarithmic axis (base 10).
    var logarithmic: Bool

    /// Linear ticks at multiples of the smallest 1, 2 or 5 × 10^k step that gives at most
    /// `maxTicks` ticks; `integer` keeps the step ≥ 1 (rounds). Bounds must be finite.
    static func linear(_ lo: Double, _ hi: Double, maxTicks: Int = 8, integer: Bool = false, clamp: ClosedRange<Double>? = nil) -> AxisScale {
        var (lo, hi) = (min(lo, hi), max(lo, hi))
        if !(abs(lo) <= 1e300) || !(abs(hi) <= 1e300) { (lo, hi) = (0, 1) }
        if lo == hi {
            // One value: pad it by 10% of its size (±1 for whole numbers or zero) so it sits mid-axis.
            let pad = integer || lo == 0 ? 1 : abs(lo) * 0.1
            (lo, hi) = (lo - pad, hi + pad)
        }
        if let clamp { (lo, hi) = (max(lo, clamp.lowerBound), min(hi, clamp.upperBound)) }
        if lo >= hi { (lo, hi) = clamp.map { ($0.lowerBound, $0.upperBound) } ?? (lo, lo + 1) }
        var exponent = Int((log10((hi - lo) / Double(max(1, maxTicks - 1)))).rounded(.down))
        if integer { exponent = max(0, exponent) }
        while true {
            for m in [1, 2, 5] {
                let step = Self.decimal(m, exponent)
                // A hair of tolerance so 0.3 / 0.1 = 2.9999… still counts as tick 3.
                let first = ((lo / step) + 1e-9).rounded(.down), last = ((hi / step) - 1e-9).rounded(.up)
                guard last - first + 1 <= Double(maxTicks) else { continue }
                var ticks = stride(from: first, through: last, by: 1).map { Self.decimal(Int($0) * m, exponent) }
                if let clamp { ticks = ticks.filter { clamp.contains($0) } }
                let (firstTick, lastTick) = (Self.decimal(Int(first) * m, exponent), Self.decimal(Int(last) * m, exponent))
                let low = clamp.map { max(firstTick, $0.lowerBound) } ?? firstTick
                let high = clamp.map { min(lastTick, $0.upperBound) } ?? lastTick
                return AxisScale(low: low, high: high, ticks: ticks, logarithmic: false)
            }
            exponent += 1
        }
    }

    /// Logarithmic ticks: 1, 2, 5 in each decade when that gives at most `maxTicks`, else the
    /// powers of ten, else every 2nd, 5th, 10th… power. Bounds must be positive.
    static func log(_ lo: Double, _ hi: Double, maxTicks: Int = 8) -> AxisScale {
        var (lo, hi) = (min(lo, hi), max(lo, hi))
        if !(lo > 0) || !(hi <= 1e300) { (lo, hi) = (1, 10) }
        let candidates: [(mantissas: [Int], decades: Int)] = [([1, 2, 5], 1), ([1], 1), ([1], 2), ([1], 5), ([1], 10), ([1], 20), ([1], 50), ([1], 100)]
        for c in candidates {
            // All ticks of this pattern from a step below lo to a step above hi.
            let d = c.decades
            let a = (Int(log10(lo).rounded(.down)) - 1), b = Int(log10(hi).rounded(.up)) + 1
            let from = Int((Double(a) / Double(d)).rounded(.down)) * d, through = Int((Double(b) / Double(d)).rounded(.up)) * d
            let all = stride(from: from, through: through, by: d).flatMap { k in c.mantissas.map { Self.decimal($0, k) } }
            guard let first = all.last(where: { $0 <= lo * (1 + 1e-12) }), let last = all.first(where: { $0 >= hi * (1 - 1e-12) }) else { continue }
            var ticks = all.filter { $0 >= first && $0 <= last }
            if ticks.count == 1, let i = all.firstIndex(of: first), i > 0, i + 1 < all.count {
                // One value on a tick: one tick either side.
                ticks = [all[i - 1], first, all[i + 1]]
            }
            guard ticks.count <= maxTicks else { continue }
            return AxisScale(low: ticks[0], high: ticks[ticks.count - 1], ticks: ticks, logarithmic: true)
        }
        return AxisScale(low: lo, high: hi, ticks: [lo, hi], logarithmic: true)
    }

    /// Where `value` falls along the axis, 0 at `low` and 1 at `high`.
    func fraction(_ value: Double) -> Double {
        if logarithmic {
            let v = max(value, low * 1e-3)
            return (log10(v) - log10(low)) / (log10(high) - log10(low))
        }
        return (value - low) / (high - low)
    }

    /// m × 10^k as the nearest double to the decimal (0.3, not 0.30000000000000004): a whole
    /// number times or divided by an exact power of ten.
    static func decimal(_ m: Int, _ k: Int) -> Double {
        k >= 0 ? Double(m) * pow(10, Double(k)) : Double(m) / pow(10, Double(-k))
    }
}

/// How an axis's tick values read.
enum AxisUnit {
    /// Whole counts (rounds).
    case count
    /// Bytes with SI prefixes: 500 B, 20 kB, 1.5 MB, 5 GB.
    case bytes
    /// Seconds: 0.05 s, 2 s, 600 s.
    case seconds
    /// A fraction shown as a percentage (accuracy): 15%, 92.5%.
    case percent
    /// A plain number (a swept scenario field): 0.5, 30, 1000.
    case plain

    /// The label of each tick of `scale`, with as many decimals as the ticks need to differ.
    func labels(_ scale: AxisScale) -> [String] {
        let ticks = scale.ticks
        // The tick spacing sets the decimals (on a log axis, each tick's own size: 0.02, 0.05, 0.1).
        let step = ticks.count > 1 ? (ticks[ticks.count - 1] - ticks[0]) / Double(ticks.count - 1) : max(abs(ticks.first ?? 1), 1)
        return ticks.map { v in
            let gap = scale.logarithmic ? v : step
            switch self {
            case .count: return Self.number(v, gap: max(gap, 1))
            case .plain: return Self.number(v, gap: gap)
            case .seconds: return Self.number(v, gap: gap) + " s"
            case .percent: return Self.number(v * 100, gap: gap * 100) + "%"
            case .bytes:
                let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
                var p = 0
                while p < units.count - 1, abs(v) >= pow(1000, Double(p + 1)) * (1 - 1e-12) { p += 1 }
                let scale = pow(1000, Double(p))
                return Self.number(v / scale, gap: gap / scale) + " " + units[p]
            }
        }
    }

    /// One value as the tables and tooltips show it: bytes as 326 B, 733.7 kB, 4.51 MB, 5.37 GB
    /// (SI, any 64-bit count), seconds to the hundredth, percentages to the hundredth.
    func text(_ v: Double) -> String {
        switch self {
        case .count: return String(format: "%.0f", v)
        case .plain: return String(format: "%g", v)
        case .seconds: return String(format: "%.2f s", v)
        case .percent: return String(format: "%.2f%%", 100 * v)
        case .bytes:
            let a = abs(v)
            if a >= 1e15 { return String(format: "%.2f PB", v / 1e15) }
            if a >= 1e12 { return String(format: "%.2f TB", v / 1e12) }
            if a >= 1e9 { return String(format: "%.2f GB", v / 1e9) }
            if a >= 1e6 { return String(format: "%.2f MB", v / 1e6) }
            if a >= 1e3 { return String(format: "%.1f kB", v / 1e3) }
            return String(format: "%.0f B", v)
        }
    }

    /// `v` with the decimals that `gap` needs, trailing zeros dropped.
    static func number(_ v: Double, gap: Double) -> String {
        let decimals = gap > 0 && gap.isFinite ? max(0, min(12, Int((-log10(gap)).rounded(.up)))) : 0
        var s = String(format: "%.\(decimals)f", v)
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s == "-0" ? "0" : s
    }
}
