import UplinkAggregation
import UplinkCodec

/// Limits on uploads and connections, each refused with a problem-details body (`docs/server.md`).
public struct UploadLimits: Sendable, Hashable {
    /// Largest upload (a frame) in bytes; `nil`: derived from the model and the allowed
    /// pipelines (the largest frame any of them makes for the model, ×1.5 + 64 KiB, at most
    /// ``ServerConfiguration/maxFrameBytes``).
    public var maxUploadBytes: Int? = nil
    /// Largest body of one append (`PATCH`) or creation request. Default 16 MiB.
    public var maxAppendBytes: Int = 16 << 20
    /// Seconds an upload resource lives after its creation. Default 1 hour.
    public var maxAgeSeconds: Int = 3600
    /// Appends (request bodies being received) at once, over all clients; beyond, `503` with
    /// `Retry-After`. Default 2,048.
    public var maxConcurrentUploads: Int = 2048
    /// Uploads one client may have open (created, not finished) at once; beyond, `429`. Default 2.
    public var maxOpenUploadsPerClient: Int = 2
    /// Slowest accepted body rate in bytes per second, averaged over ``rateWindowSeconds``;
    /// a slower append is ended (its bytes kept) with `408`. Default 512 B/s.
    public var minimumBytesPerSecond: Double = 512
    /// Window of the rate check, and the grace before it applies. Default 20 s.
    public var rateWindowSeconds: Double = 20
    /// A connection that sends nothing for this long is closed. Default 30 s.
    public var idleTimeoutSeconds: Double = 30
    /// A request head must arrive complete within this many seconds of the connection's
    /// start or of the previous request's end (slow headers, slowloris). Default 10 s.
    public var requestHeadTimeoutSeconds: Double = 10
    /// Open connections at once; beyond, new ones wait in the listen backlog. Default 4,096.
    public var maxConnections: Int = 4096
    /// Bytes received between two durable points (fsync and ledger offset) of one append:
    /// `Upload-Offset` advances in steps of at most this much while a body streams. Default 1 MiB.
    public var syncEveryBytes: Int = 1 << 20

    public init() {}
}

/// Everything `uplink serve` is configured with.
public struct ServerConfiguration: Sendable {
    /// Interface to bind. Default loopback.
    public var host: String = "127.0.0.1"
    /// TCP port; 0 picks a free one (printed on start).
    public var port: Int = 8080
    /// The data directory (ledger, uploads, accepted frames, models).
    public var dataDirectory: String
    /// The model every frame must match.
    public var layout: ModelLayout
    /// The starting global model (used when the data directory is new).
    public var initialModel: [Float]
    /// The aggregation strategy and server optimizer. Default FedAvg.
    public var strategy: Strategy = .fedAvg(lr: 1)
    /// Pipelines a frame may use; the first is the one check-in tells clients to use.
    public var pipelines: [Pipeline]
    /// How the global model is sent to clients. Default `fp32 | lz4` (lossless).
    public var downlink: Pipeline
    /// Target reports K, over-selection, deadline and minimum fraction.
    public var rules: RoundRules
    /// Rounds to run; after the last one closes the server shuts down. `nil`: no limit.
    public var rounds: Int? = nil
    /// Largest accepted update L2 norm; `nil` for none.
    public var normBound: Double? = nil
    /// Reject or clip beyond ``normBound``.
    public var normPolicy: NormPolicy = .reject
    /// Most samples one update may declare.
    public var maxSamples: UInt64 = RoundPolicy.defaultMaxSamples
    /// Upload and connection limits.
    public var limits = UploadLimits()
    /// The HMAC-SHA256 secret tokens are signed with.
    public var tokenSecret: [UInt8]
    /// PEM certificate chain and private key for HTTPS; `nil` serves plain HTTP.
    public var tls: (certificate: String, key: String)? = nil
    /// Serve plain HTTP on a non-loopback address (tokens then cross the network in clear).
    public var insecurePlaintext = false
    /// The ledger: `nil` for the embedded SQLite file in the data directory (one machine), or a
    /// `postgres://user[:password]@host[:port]/database` URL shared by several replicas, whose
    /// data directories must then be one shared directory (`docs/scaling.md`).
    public var database: String? = nil
    /// This replica's name, unique among the replicas of one ledger: letters, digits, `.` and
    /// `-`, at most 64. Default `main`.
    public var replica: String = "main"
    /// Seconds the replica closing a round waits for a running replica's partial sum before it
    /// decodes that replica's frames itself. Default 10.
    public var mergeWaitSeconds: Double = 10

    /// A configuration with the required parts; every other field has its documented default.
    public init(dataDirectory: String, layout: ModelLayout, initialModel: [Float], pipelines: [Pipeline], rules: RoundRules, tokenSecret: [UInt8]) throws(UplinkError) {
        self.dataDirectory = dataDirectory
        self.layout = layout
        self.initialModel = initialModel
        self.pipelines = pipelines
        self.rules = rules
        self.tokenSecret = tokenSecret
        self.downlink = try Pipeline(parsing: "fp32 | lz4")
    }

    /// The model's frame limit (twice the dense float32 size plus 1 MiB and the tensor table,
    /// `FrameLimits.forModel`), or ``UploadLimits/maxUploadBytes`` if set: no upload is larger.
    public var maxFrameBytes: Int { limits.maxUploadBytes ?? FrameLimits.forModel(layout).maxFrameBytes }

    /// Checks the combination; throws ``UplinkError/Code/invalidArgument`` with the reason.
    public func validate() throws(UplinkError) {
        guard !pipelines.isEmpty else { throw UplinkError(.invalidArgument, "at least one --pipeline is needed") }
        guard (0...65535).contains(port) else { throw UplinkError(.invalidArgument, "--port must be 0…65535") }
        guard initialModel.count == layout.parameterCount else {
            throw UplinkError(.invalidArgument, "the model has \(initialModel.count) values, its layout \(layout.parameterCount)")
        }
        guard initialModel.allSatisfy(\.isFinite) else { throw UplinkError(.nonFiniteValue, "the starting model has NaN or infinite values") }
        guard rules.deadline.isFinite else { throw UplinkError(.invalidArgument, "the server needs a finite --deadline") }
        if let rounds, rounds < 1 { throw UplinkError(.invalidArgument, "--rounds must be at least 1") }
        guard limits.maxAppendBytes >= 1, limits.maxAgeSeconds >= 1, limits.maxConcurrentUploads >= 1, limits.maxOpenUploadsPerClient >= 1,
              limits.minimumBytesPerSecond >= 0, limits.rateWindowSeconds > 0, limits.idleTimeoutSeconds > 0, limits.requestHeadTimeoutSeconds > 0,
              limits.maxConnections >= 1, limits.syncEveryBytes >= 1, (limits.maxUploadBytes ?? 1) >= 1
        else { throw UplinkError(.invalidArgument, "upload limits must be positive") }
        guard !replica.isEmpty, replica.utf8.count <= 64,
              replica.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2E || $0 == 0x2D })
        else { throw UplinkError(.invalidArgument, "--replica \(UplinkError.quoted(replica)): use 1–64 letters, digits, '.' or '-'") }
        guard mergeWaitSeconds >= 0, mergeWaitSeconds.isFinite else { throw UplinkError(.invalidArgument, "--merge-wait must be a finite number of seconds ≥ 0") }
        if tls == nil && !insecurePlaintext && !Self.isLoopback(host) {
            throw UplinkError(.invalidArgument, "refusing plain HTTP on \(host): bearer tokens would cross the network in clear; give --tls-cert and --tls-key, or --insecure-plaintext")
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
