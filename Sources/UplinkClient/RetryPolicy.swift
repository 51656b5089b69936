import Foundation

/// How failed exchanges (transport errors, 5xx, 408) are retried: capped exponential backoff
/// with full jitter (each pause uniform in `0 … min(maxDelay, initialDelay × 2^failures)`, so
/// clients cut by one outage do not return in lockstep), a bound on consecutive failures and
/// one on the total time. A request that makes progress (the server's offset advanced) resets
/// the exponent.
public struct RetryPolicy: Sendable, Equatable {
    /// The first pause's upper bound, in seconds.
    public var initialDelay: Double
    /// The largest pause, in seconds.
    public var maxDelay: Double
    /// Failures in a row before giving up (``UplinkClientError/unreachable(attempts:last:)``).
    public var maxConsecutiveFailures: Int
    /// Seconds from the start of an operation after which no retry is started.
    public var maxDuration: Double

    public init(initialDelay: Double = 0.5, maxDelay: Double = 30, maxConsecutiveFailures: Int = 12, maxDuration: Double = 900) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.maxConsecutiveFailures = maxConsecutiveFailures
        self.maxDuration = maxDuration
    }

    /// The pause before retry number `failures` (1 for the first), with the server's
    /// `Retry-After` as a floor when it sent one (capped at `maxDelay`).
    func delay(failures: Int, retryAfter: Double?) -> Double {
        let cap = min(maxDelay, initialDelay * Double(1 << UInt64(min(max(failures - 1, 0), 30))))
        let jittered = Double.random(in: 0...max(cap, 0))
        if let retryAfter, retryAfter.isFinite, retryAfter > 0 { return min(maxDelay, max(jittered, retryAfter)) }
        return jittered
    }
}

/// Counts failures of one operation against a ``RetryPolicy``.
struct RetryBudget {
    let policy: RetryPolicy
    let started = Date()
    /// Failures since the last progress.
    private(set) var consecutive = 0
    /// All failures (the report's `retries`).
    private(set) var total = 0
    /// When the operation must stop retrying, if earlier than the policy's duration (the round's deadline).
    var deadline: Date?

    init(policy: RetryPolicy, deadline: Date? = nil) {
        self.policy = policy
        self.deadline = deadline
    }

    mutating func progressed() { consecutive = 0 }

    /// Records a failure and sleeps before the retry, or throws when the budget is spent.
    mutating func failed(_ why: String, retryAfter: Double? = nil) async throws {
        consecutive += 1
        total += 1
        let end = min(started.addingTimeInterval(policy.maxDuration), deadline ?? .distantFuture)
        let pause = policy.delay(failures: consecutive, retryAfter: retryAfter)
        guard consecutive <= policy.maxConsecutiveFailures, Date().addingTimeInterval(pause) < end else {
            throw UplinkClientError.unreachable(attempts: total, last: why)
        }
        try await Task.sleep(nanoseconds: UInt64(pause * 1e9))
    }
}

extension RetryBudget {
    /// Sends `request` once: its response, or nil after a transient transport failure was
    /// counted and paused for (the caller retries). A failure a retry cannot cure (TLS, a
    /// malformed response) throws.
    mutating func exchange(_ request: TransportRequest, over transport: any UplinkTransport, _ what: @autoclosure () -> String) async throws -> TransportResponse? {
        do {
            return try await transport.send(request)
        } catch let e as TransportError where e.isTransient {
            try await failed("\(what()): \(e)")
            return nil
        } catch let e as TransportError {
            throw ResumableUploader.fatal(e)
        }
    }
}
