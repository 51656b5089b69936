import ArgumentParser
import Foundation
import Logging
import UplinkAggregation
import UplinkCodec
import UplinkServer
import UplinkTensorIO

extension UplinkCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the coordinator: rounds, authenticated resumable uploads, aggregation on arrival.",
            discussion: """
                Clients check in (POST /v1/checkin), download the global model, and upload one \
                frame per round with the IETF resumable-upload protocol (interop version 8, or 6). \
                Every accepted frame is fsynced and recorded in the ledger under --data before it is \
                acknowledged; after a crash, `uplink serve` on the same --data rebuilds the round. \
                See docs/server.md.
                """)

        @Option(help: "The starting global model (.safetensors or .npy); its layout is the model every frame must match.")
        var model: String

        @Flag(help: "Leave tensors that are not floating point (int64 counters, bool masks) out of --model instead of refusing it; clients then encode the float tensors alone.")
        var skipNonFloat = false

        @Option(help: "Data directory: ledger, uploads, accepted frames, published models. Reuse it to resume after a restart.")
        var data: String

        @Option(help: "The ledger: a postgres://user[:password]@host[:port]/database URL shared by several replicas (each then needs the same --data on shared storage and its own --replica). Default: SQLite in --data, one machine.")
        var database: String?

        @Option(help: "This replica's name, unique among the replicas of one --database (letters, digits, '.', '-').")
        var replica = "main"

        @Option(name: .customLong("merge-wait"), help: "Seconds the replica closing a round waits for another running replica's partial sum before decoding that replica's frames itself.")
        var mergeWait = 10.0

        @Option(name: .customLong("token-secret"), help: "File holding the HMAC-SHA256 secret for bearer tokens (at least 32 bytes; head -c 32 /dev/urandom > FILE).")
        var tokenSecret: String

        @Option(help: "Interface to listen on.")
        var host = "127.0.0.1"

        @Option(help: "TCP port (0: any free port; the URL is printed).")
        var port = 8080

        @Option(parsing: .upToNextOption, help: "Aggregation strategy and parameters, e.g. fedavg, \"fedadam lr=0.01\".")
        var strategy: [String] = ["fedavg"]

        @Option(help: "A pipeline frames may use (repeat for several; the first is the one clients are told to use).")
        var pipeline: [String] = []

        @Option(help: "How the global model is sent to clients.")
        var downlink = "fp32 | lz4"

        @Option(help: "Target reports per round (K): the round closes at the K-th accepted update.")
        var reports = 10

        @Option(name: .customLong("over-selection"), help: "Clients selected per round = ceil(K × this).")
        var overSelection = 1.3

        @Option(help: "Seconds from a round's opening to its deadline.")
        var deadline = 60.0

        @Option(name: .customLong("min-fraction"), help: "At the deadline the round closes with at least max(1, ceil(this × K)) reports, else it is abandoned.")
        var minFraction = 0.0

        @Option(help: "Rounds to run, then exit 0 (default: until stopped).")
        var rounds: Int?

        @Option(name: .customLong("norm-bound"), help: "Largest accepted update L2 norm.")
        var normBound: Double?

        @Option(name: .customLong("max-samples"), help: "Most samples one update may declare.")
        var maxSamples: UInt64 = RoundPolicy.defaultMaxSamples

        @Option(name: .customLong("max-upload-bytes"), help: "Largest upload (default: the largest frame the model allows).")
        var maxUploadBytes: Int?

        @Option(name: .customLong("max-append-bytes"), help: "Largest body of one upload request.")
        var maxAppendBytes = 16 << 20

        @Option(name: .customLong("max-concurrent-uploads"), help: "Upload bodies received at once; beyond, 503 with Retry-After.")
        var maxConcurrentUploads = 2048

        @Option(name: .customLong("max-open-uploads"), help: "Open uploads one client may have.")
        var maxOpenUploads = 2

        @Option(name: .customLong("min-rate"), help: "Slowest accepted upload rate, bytes per second over --rate-window.")
        var minRate = 512.0

        @Option(name: .customLong("rate-window"), help: "Seconds over which --min-rate is measured.")
        var rateWindow = 20.0

        @Option(name: .customLong("idle-timeout"), help: "Seconds a silent connection is kept.")
        var idleTimeout = 30.0

        @Option(name: .customLong("head-timeout"), help: "Seconds a request head may take to arrive.")
        var headTimeout = 10.0

        @Option(name: .customLong("upload-max-age"), help: "Seconds an upload resource lives.")
        var uploadMaxAge = 3600

        @Option(name: .customLong("tls-cert"), help: "PEM certificate chain: serve HTTPS.")
        var tlsCert: String?

        @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.")
        var tlsKey: String?

        @Flag(name: .customLong("insecure-plaintext"), help: "Allow plain HTTP on a non-loopback --host (tokens cross the network in clear).")
        var insecurePlaintext = false

        @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
        var logLevel = "info"

        func run() async throws {
            let config: ServerConfiguration
            do {
                config = try makeConfiguration()
            } catch {
                FileHandle.standardError.write(Data("uplink: \(error)\n".utf8))
                throw ExitCode(1)
            }
            guard let level = Logger.Level(rawValue: logLevel) else {
                FileHandle.standardError.write(Data("uplink: --log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical\n".utf8))
                throw ExitCode(1)
            }
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "uplink.serve")
            do {
                try await UplinkServer.run(config, logger: logger) { url in
                    FileHandle.standardOutput.write(Data("uplink serve: listening on \(url)\n".utf8))
                }
            } catch let error as UplinkError {
                FileHandle.standardError.write(Data("uplink: \(error)\n".utf8))
                throw ExitCode(1)
            } catch {
                FileHandle.standardError.write(Data("uplink: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }

        func makeConfiguration() throws(UplinkError) -> ServerConfiguration {
            let (set, report) = try TensorFiles.loadReporting(path: model, nonFloat: skipNonFloat ? .skip : .refuse)
            for line in report.lines { FileHandle.standardError.write(Data("uplink serve: note: \(model): \(line)\n".utf8)) }
            let pipelines = try (pipeline.isEmpty ? ["ef | topk 1% | int8 | lz4"] : pipeline).map { (p) throws(UplinkError) in try Pipeline(parsing: p) }
            let rules = try RoundRules(targetReports: reports, overSelection: overSelection, deadline: deadline, minimumReportFraction: minFraction)
            guard deadline.isFinite else { throw UplinkError(.invalidArgument, "--deadline must be a finite number of seconds") }
            let secret = try TokenAuthority.readSecret(tokenSecret)
            var config = try ServerConfiguration(dataDirectory: data, layout: set.layout, initialModel: set.values, pipelines: pipelines, rules: rules, tokenSecret: secret)
            config.host = host
            config.port = port
            config.strategy = try Strategy(parsing: strategy.joined(separator: " "))
            config.downlink = try Pipeline(parsing: downlink)
            guard config.downlink.errorFeedback == nil, config.downlink.sparsifier == nil else {
                throw UplinkError(.invalidArgument, "--downlink must be dense and without error feedback (every client decodes the whole model)")
            }
            config.rounds = rounds
            config.normBound = normBound
            config.maxSamples = maxSamples
            config.limits.maxUploadBytes = maxUploadBytes
            config.limits.maxAppendBytes = maxAppendBytes
            config.limits.maxConcurrentUploads = maxConcurrentUploads
            config.limits.maxOpenUploadsPerClient = maxOpenUploads
            config.limits.minimumBytesPerSecond = minRate
            config.limits.rateWindowSeconds = rateWindow
            config.limits.idleTimeoutSeconds = idleTimeout
            config.limits.requestHeadTimeoutSeconds = headTimeout
            config.limits.maxAgeSeconds = uploadMaxAge
            switch (tlsCert, tlsKey) {
            case let (cert?, key?): config.tls = (cert, key)
            case (nil, nil): break
            default: throw UplinkError(.invalidArgument, "--tls-cert and --tls-key go together")
            }
            config.insecurePlaintext = insecurePlaintext
            config.database = database
            config.replica = replica
            config.mergeWaitSeconds = mergeWait
            try config.validate()
            return config
        }
    }

    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint a bearer token for one client (a JWT signed with HMAC-SHA256).",
            discussion: "The token carries the client id and an expiry; `uplink serve --token-secret` with the same secret accepts it.")

        @Option(help: "File holding the HMAC-SHA256 secret (the one given to uplink serve --token-secret).")
        var secret: String

        @Option(help: "The client id (1–128 letters, digits, . _ - @ :).")
        var client: String

        @Option(help: "Lifetime: seconds, or with a unit s, m, h, d (default 24h).")
        var ttl = "24h"

        func run() throws {
            try reportingErrors(json: false) {
                let authority = try TokenAuthority(secret: try TokenAuthority.readSecret(secret))
                print(try authority.mint(client: client, ttl: try Self.seconds(ttl)))
            }
        }

        static func seconds(_ text: String) throws(UplinkError) -> Double {
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
            var number = Substring(text)
            var scale = 1.0
            if let last = text.last, let u = units[last] {
                number = number.dropLast()
                scale = u
            }
            guard let value = Double(number), value > 0, value.isFinite else {
                throw UplinkError(.invalidArgument, "--ttl \(UplinkError.quoted(text)) must be a positive duration such as 3600, 90m, 24h or 7d")
            }
            return value * scale
        }
    }
}
