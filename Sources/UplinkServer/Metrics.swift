import Prometheus

/// The coordinator's Prometheus metrics (`GET /metrics`, text exposition format).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let uploadsInFlight: Gauge
    private let bytesReceived: Counter
    private let accepted: Counter
    private let round: Gauge
    private let roundSeconds: ValueHistogram
    private let created: Counter

    init() {
        uploadsInFlight = registry.makeGauge(name: "uplink_uploads_in_flight", help: "Upload appends whose body is being received")
        bytesReceived = registry.makeCounter(name: "uplink_upload_bytes_received_total", help: "Upload bytes stored durably")
        accepted = registry.makeCounter(name: "uplink_frames_accepted_total", help: "Frames accepted into a round")
        round = registry.makeGauge(name: "uplink_round", help: "The round in progress")
        roundSeconds = registry.makeValueHistogram(name: "uplink_round_duration_seconds", buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600], help: "Time from a round's opening to its close")
        created = registry.makeCounter(name: "uplink_uploads_created_total", help: "Upload resources created")
    }

    func appendStarted() { uploadsInFlight.increment(by: 1) }
    func appendEnded() { uploadsInFlight.decrement(by: 1) }
    func stored(bytes: Int) { if bytes > 0 { bytesReceived.increment(by: Int64(bytes)) } }
    func uploadCreated() { created.increment() }
    func frameAccepted(bytes: Int) { accepted.increment() }
    func frameRejected(code: Int) {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "uplink", metricName: "frames_rejected", unitName: "total", helpText: "Frames refused, by Uplink error code"), labels: [("code", String(code))]).increment()
    }
    func uploadFinished(_ outcome: String) {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "uplink", metricName: "uploads_finished", unitName: "total", helpText: "Upload resources finished, by outcome"), labels: [("outcome", outcome)]).increment()
    }
    func checkIn(_ outcome: String) {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "uplink", metricName: "checkins", unitName: "total", helpText: "Check-ins, by answer"), labels: [("outcome", outcome)]).increment()
    }
    func refused(_ problem: String) {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "uplink", metricName: "requests_refused", unitName: "total", helpText: "Requests refused, by problem type"), labels: [("problem", problem)]).increment()
    }
    func roundFinished(outcome: String, seconds: Double, reports: Int) {
        roundSeconds.record(max(0, seconds))
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "uplink", metricName: "rounds", unitName: "total", helpText: "Rounds finished, by outcome"), labels: [("outcome", outcome)]).increment()
    }
    func setRound(_ r: UInt64) { round.set(Double(r)) }
    func text() -> [UInt8] { registry.emitToBuffer() }
}
