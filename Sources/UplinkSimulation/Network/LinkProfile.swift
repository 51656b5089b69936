import Foundation
import UplinkCodec

/// A class of network (3G, LTE, Wi-Fi…) as distributions from which each client's link is drawn.
///
/// Bandwidths are log-normal around a median (`spread` is σ of the natural log), round-trip time
/// likewise; second-to-second variability multiplies the rate by a log-normal factor with σ
/// `variability`, fresh each second; outages arrive as a Poisson process (`outagesPerHour`) with
/// exponentially distributed lengths (`meanOutageSeconds`); packet loss `loss` lowers TCP goodput
/// to `min(rate·(1 − loss), Mathis: 1.22·MSS/(RTT·√loss))`. Sources for every default are in
/// `docs/simulation.md`.
public struct LinkProfile: Codable, Hashable, Sendable {
    /// The profile's name, as scenarios refer to it.
    public var name: String
    /// Median uplink in Mbit/s.
    public var uplinkMbps: Double
    /// Median downlink in Mbit/s.
    public var downlinkMbps: Double
    /// σ of ln(bandwidth) across clients.
    public var spread: Double
    /// Median round-trip time in milliseconds.
    public var rttMs: Double
    /// σ of the per-second ln(rate) factor.
    public var variability: Double
    /// Mean outages per hour.
    public var outagesPerHour: Double
    /// Mean outage length in seconds.
    public var meanOutageSeconds: Double
    /// Packet loss probability.
    public var loss: Double

    /// A profile with the given parameters.
    public init(name: String, uplinkMbps: Double, downlinkMbps: Double, spread: Double = 0.5, rttMs: Double, variability: Double = 0.2,
                outagesPerHour: Double = 0, meanOutageSeconds: Double = 5, loss: Double = 0) {
        self.name = name
        self.uplinkMbps = uplinkMbps
        self.downlinkMbps = downlinkMbps
        self.spread = spread
        self.rttMs = rttMs
        self.variability = variability
        self.outagesPerHour = outagesPerHour
        self.meanOutageSeconds = meanOutageSeconds
        self.loss = loss
    }

    /// A profile from a scenario file: `name`, `uplinkMbps`, `downlinkMbps` and `rttMs` are
    /// required; the rest default to a steady link (spread 0.5, variability 0.2, no outages, no loss).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try c.decode(String.self, forKey: .name), uplinkMbps: try c.decode(Double.self, forKey: .uplinkMbps),
            downlinkMbps: try c.decode(Double.self, forKey: .downlinkMbps), spread: try c.decodeIfPresent(Double.self, forKey: .spread) ?? 0.5,
            rttMs: try c.decode(Double.self, forKey: .rttMs), variability: try c.decodeIfPresent(Double.self, forKey: .variability) ?? 0.2,
            outagesPerHour: try c.decodeIfPresent(Double.self, forKey: .outagesPerHour) ?? 0,
            meanOutageSeconds: try c.decodeIfPresent(Double.self, forKey: .meanOutageSeconds) ?? 5,
            loss: try c.decodeIfPresent(Double.self, forKey: .loss) ?? 0)
    }

    /// The built-in profiles (medians from the sources in `docs/simulation.md`).
    public static let builtIn: [LinkProfile] = [
        LinkProfile(name: "2G", uplinkMbps: 0.1, downlinkMbps: 0.2, spread: 0.5, rttMs: 600, variability: 0.3, outagesPerHour: 12, meanOutageSeconds: 10, loss: 0.01),
        LinkProfile(name: "3G", uplinkMbps: 1, downlinkMbps: 3, spread: 0.6, rttMs: 200, variability: 0.3, outagesPerHour: 6, meanOutageSeconds: 6, loss: 0.003),
        LinkProfile(name: "LTE", uplinkMbps: 6, downlinkMbps: 25, spread: 0.7, rttMs: 60, variability: 0.25, outagesPerHour: 2, meanOutageSeconds: 4, loss: 0.001),
        LinkProfile(name: "5G", uplinkMbps: 21, downlinkMbps: 150, spread: 0.7, rttMs: 30, variability: 0.25, outagesPerHour: 2, meanOutageSeconds: 3, loss: 0.0005),
        LinkProfile(name: "WiFi", uplinkMbps: 35, downlinkMbps: 90, spread: 0.8, rttMs: 20, variability: 0.15, outagesPerHour: 0.5, meanOutageSeconds: 3, loss: 0.0005),
    ]

    /// A built-in profile by name (case-insensitive; `wi-fi` and `edge` accepted).
    public static func named(_ name: String) -> LinkProfile? {
        let key = name.lowercased().replacingOccurrences(of: "-", with: "")
        let alias = ["edge": "2g", "4g": "lte"][key] ?? key
        return builtIn.first { $0.name.lowercased() == alias }
    }
}
