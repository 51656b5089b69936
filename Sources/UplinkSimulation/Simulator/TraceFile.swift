import Foundation
import UplinkCodec

/// Reads a (seconds, kbit/s) CSV trace into a per-second rate array.
public enum TraceFile {
    /// The largest trace file read.
    public static let maximumFileBytes = 64 << 20
    /// The last row's time may be at most this many seconds (the rates are held per second).
    public static let maximumSeconds = 1_000_000.0
    /// The largest rate accepted, in kbit/s (1 Tbit/s).
    public static let maximumKbps = 1e9

    /// The rate of each second from 0 to the last row's time: piecewise constant, each row's
    /// rate holding until the next row's time.
    public static func load(path: String) throws(UplinkError) -> [Double] {
        let bytes = try InputFile.read(path, what: "the trace", limit: maximumFileBytes)
        guard let text = String(validatingUTF8Bytes: bytes) else { throw UplinkError(.invalidArgument, "\(path): the trace is not UTF-8 text") }
        var points: [(Double, Double)] = []
        var lines: [Int] = []  // each point's line number
        for (i, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count == 2, let s = Double(f[0]), let k = Double(f[1]) else {
                if i == 0 { continue }  // a header row
                throw UplinkError(.invalidArgument, "\(path): line \(i + 1) is not \"seconds,kbit/s\" (two numbers)")
            }
            guard s >= 0, s <= maximumSeconds else {
                throw UplinkError(.invalidArgument, "\(path): line \(i + 1): seconds must be in [0, \(Int(maximumSeconds))], got \(f[0].prefix(40))")
            }
            guard k >= 0, k <= maximumKbps else {
                throw UplinkError(.invalidArgument, "\(path): line \(i + 1): kbit/s must be in [0, \(Int(maximumKbps))], got \(f[1].prefix(40))")
            }
            points.append((s, k))
            lines.append(i + 1)
        }
        guard let last = points.last else { throw UplinkError(.invalidArgument, "\(path): empty trace") }
        if let i = points.indices.dropFirst().first(where: { !(points[$0 - 1].0 < points[$0].0) }) {
            throw UplinkError(.invalidArgument, "\(path): line \(lines[i]): seconds must increase (\(points[i].0) is not after \(points[i - 1].0))")
        }
        // Piecewise constant: each row's rate holds until the next row's time.
        let seconds = max(1, Int(last.0.rounded(.up)) + 1)  // last.0 ≤ maximumSeconds: no trap, bounded memory
        var rates = [Double](repeating: points[0].1, count: seconds)
        var j = 0
        for s in 0..<seconds {
            while j + 1 < points.count, points[j + 1].0 <= Double(s) { j += 1 }
            rates[s] = points[j].1
        }
        return rates
    }
}
