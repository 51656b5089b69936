import ArgumentParser
import Foundation
import UplinkClient
import UplinkCodec
import UplinkSimulation
import UplinkTensorIO

/// Options every client command shares: where the server is and how to trust it.
struct ClientConnectionOptions: ParsableArguments {
    @Option(help: "The coordinator's URL: https://host:port (plain http:// only to loopback, or with --insecure-http).")
    var server: String

    @Option(help: "Bearer token (uplink token). --token-file keeps it out of the process list.")
    var token: String?

    @Option(name: .customLong("token-file"), help: "File holding the bearer token.")
    var tokenFile: String?

    @Option(help: "PEM file of the CA (or self-signed certificate) to trust instead of the system store.")
    var ca: String?

    @Flag(name: .customLong("insecure-http"), help: "Allow plain http:// to a host that is not loopback (the token crosses the network in clear).")
    var insecureHTTP = false

    @Option(name: .customLong("max-append-bytes"), help: "Largest body of one upload request (the server's max-append-size lowers it).")
    var maxAppendBytes = 1 << 20

    @Flag(help: "Send the whole frame in the creation request (one round trip when nothing fails).")
    var optimistic = false

    @Option(name: .customLong("retry-max-delay"), help: "Longest pause between retries, seconds (capped exponential backoff with jitter).")
    var retryMaxDelay = 30.0

    @Option(name: .customLong("retry-initial-delay"), help: "First pause between retries, seconds.")
    var retryInitialDelay = 0.5

    @Option(name: .customLong("max-failures"), help: "Failures in a row before an operation gives up.")
    var maxFailures = 12

    func resolvedToken() throws(UplinkError) -> String {
        switch (token, tokenFile) {
        case (let t?, nil): return t
        case (nil, let f?):
            let bytes = try TensorFiles.readFile(f, maxBytes: 16 << 10, overLimit: .invalidArgument)
            return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        case (nil, nil): throw UplinkError(.invalidArgument, "give --token or --token-file")
        default: throw UplinkError(.invalidArgument, "give --token or --token-file, not both")
        }
    }

    func options() throws(UplinkError) -> ClientOptions {
        var o = ClientOptions()
        o.allowInsecureHTTP = insecureHTTP
        if let ca { o.trustedCertificatesPEM = try TensorFiles.readFile(ca, maxBytes: 1 << 20, overLimit: .invalidArgument) }
        guard maxAppendBytes >= 1 else { throw UplinkError(.invalidArgument, "--max-append-bytes must be at least 1") }
        o.maxAppendBytes = maxAppendBytes
        o.optimisticUpload = optimistic
        guard retryMaxDelay.isFinite, retryMaxDelay >= 0, retryInitialDelay.isFinite, retryInitialDelay >= 0, maxFailures >= 0 else {
            throw UplinkError(.invalidArgument, "retry delays must be finite and ≥ 0, --max-failures ≥ 0")
        }
        o.retry = RetryPolicy(initialDelay: retryInitialDelay, maxDelay: retryMaxDelay, maxConsecutiveFailures: maxFailures)
        return o
    }
}

/// Client errors as the CLI reports them: one line, and a JSON object with `--json`.
func reportClientError(_ error: any Error, json: Bool) -> ExitCode {
    var object: [String: Any] = ["message": "\(error)"]
    switch error {
    case let e as UplinkClientError:
        switch e {
        case .refused(let p):
            object["kind"] = "refused"
            object["status"] = p.status
            object["type"] = p.type
            if let c = p.code { object["code"] = c }
        case .tokenExpired: object["kind"] = "token-expired"
        case .unreachable: object["kind"] = "unreachable"
        case .invalidConfiguration: object["kind"] = "invalid-configuration"
        case .protocolViolation: object["kind"] = "protocol-violation"
        case .tls: object["kind"] = "tls"
        case .local(let u):
            object["kind"] = "local"
            object["code"] = Int(u.code.rawValue)
        }
    case let u as UplinkError:
        object["kind"] = "local"
        object["code"] = Int(u.code.rawValue)
    default: object["kind"] = "other"
    }
    FileHandle.standardError.write(Data("uplink: \(error)\n".utf8))
    if json { printJSONLine(["error": object]) }
    return ExitCode(1)
}

/// One compact JSON object per line (for `--json` streams of rounds).
func printJSONLine(_ object: Any) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

extension UplinkCommand {
    struct Participate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take part in federated rounds against `uplink serve`: check in, download, train, upload resumably.",
            discussion: """
                Each round: check in; when selected, download the global model (a cut download \
                resumes), train (--train digits: the bundled digits task on this client's shard) or \
                take a fixed update (--in), encode it with the round's pipeline and the error-feedback \
                residual kept in --state, and upload it with the resumable-upload protocol. The \
                residual is committed only when the server accepts; a killed run started again on the \
                same --state resumes the same upload. See docs/client.md.
                """)

        @OptionGroup var connection: ClientConnectionOptions

        @Option(help: "State directory: residual, pending update, upload session, model (created if missing).")
        var state: String

        @Option(help: "A fixed update (.npy or .safetensors, the model's layout) to send every round.")
        var `in`: String?

        @Flag(help: "Leave tensors that are not floating point out of the --in update (as the server did with serve --skip-non-float).")
        var skipNonFloat = false

        @Option(help: "Train locally: digits (the bundled task).")
        var train: String?

        @Option(help: "Samples the --in update stands for (its FedAvg weight).")
        var samples: UInt64 = 1

        @Option(help: "Rounds to report in, then exit (0: until the server finishes).")
        var rounds = 1

        @Option(name: .customLong("client-index"), help: "This client's shard (0 ..< --clients) of the digits training set.")
        var clientIndex = 0

        @Option(help: "Clients the digits training set is split over.")
        var clients = 100

        @Option(help: "iid, dirichlet:α or quantity:β (the same split `uplink train` and `simulate` use).")
        var partition = "dirichlet:0.5"

        @Option(help: "Seed of the partition and of local training.")
        var seed: UInt64 = 1

        @Option(name: .customLong("local-epochs"), help: "Local epochs per round (E).")
        var localEpochs = 1

        @Option(name: .customLong("batch-size"), help: "Local minibatch size (B).")
        var batchSize = 32

        @Option(help: "Local SGD learning rate.")
        var lr: Float = 0.05

        @Option(help: "Local SGD momentum.")
        var momentum: Float = 0.9

        @Option(name: .customLong("weight-decay"), help: "Local SGD L2 weight decay λ, as PyTorch's weight_decay (0 = none).")
        var weightDecay: Float = 0

        @Option(help: "The digits data (default fixtures/digits/digits.csv.gz).")
        var data: String?

        @Flag(help: "Evaluate each downloaded global model on the digits test set and report its accuracy.")
        var evaluate = false

        @Option(name: .customLong("max-wait"), help: "Longest pause when the server says to come back later, seconds.")
        var maxWait = 600.0

        @Option(name: .customLong("max-seconds"), help: "Give up after this many seconds in all (0: no limit).")
        var maxSeconds = 0.0

        @Flag(help: "One JSON object per round on standard output.")
        var json = false

        func validate() throws {
            guard (self.in == nil) != (train == nil) else { throw ValidationError("give exactly one of --in FILE or --train digits") }
            if let t = train, t != "digits" { throw ValidationError("--train \(t): only digits is bundled") }
            guard rounds >= 0 else { throw ValidationError("--rounds must be ≥ 0") }
            guard clients >= 1, clientIndex >= 0, clientIndex < clients else { throw ValidationError("--client-index must be in 0..<--clients") }
            guard localEpochs >= 1, batchSize >= 1, lr.isFinite, lr > 0, momentum >= 0, momentum < 1, weightDecay.isFinite, weightDecay >= 0 else {
                throw ValidationError("--local-epochs and --batch-size ≥ 1, --lr finite and > 0, --momentum in [0, 1), --weight-decay finite and ≥ 0")
            }
            guard maxWait.isFinite, maxWait >= 0, maxSeconds.isFinite, maxSeconds >= 0 else { throw ValidationError("--max-wait and --max-seconds must be finite and ≥ 0") }
        }

        func run() async throws {
            let participant: UplinkParticipant
            let trainer: Trainer
            do {
                trainer = try makeTrainer()
                participant = try UplinkParticipant(server: connection.server, token: try connection.resolvedToken(),
                                                    stateDirectory: state, options: try connection.options())
            } catch {
                throw reportClientError(error, json: json)
            }
            let started = Date()
            var reported = 0
            var failure: (any Error)?
            while rounds == 0 || reported < rounds {
                if maxSeconds > 0, Date().timeIntervalSince(started) > maxSeconds {
                    failure = UplinkError(.io, "gave up after --max-seconds \(maxSeconds) with \(reported) of \(rounds) rounds reported")
                    break
                }
                do {
                    var accuracy: Double?
                    let outcome = try await participant.participate { model in
                        if evaluate { accuracy = trainer.evaluate(model) }
                        return try trainer.update(model)
                    }
                    switch outcome {
                    case .finished:
                        if !json { say("the server runs no more rounds") } else { printJSONLine(["status": "finished"]) }
                        await participant.shutdown()
                        return
                    case .retry(let after, let reason):
                        let pause = min(maxWait, max(0.2, after))
                        if !json { say("not selected (\(reason)); checking in again in \(String(format: "%.1f", pause)) s") }
                        try await Task.sleep(nanoseconds: UInt64(pause * 1e9))
                    case .reported(let report):
                        reported += 1
                        show(report, accuracy: accuracy)
                    }
                } catch {
                    failure = error
                    break
                }
            }
            await participant.shutdown()
            if let failure { throw reportClientError(failure, json: json) }
        }

        func show(_ r: ClientRoundReport, accuracy: Double?) {
            let verdict: String
            var object: [String: Any] = [
                "round": r.round, "frameBytes": r.frameBytes, "pipeline": r.pipeline, "requests": r.upload.requests,
                "retries": r.upload.retries, "bodyBytesSent": r.upload.bodyBytesSent, "uploadSeconds": r.upload.seconds,
                "residual": "\(r.residual)", "resumed": r.resumed, "seconds": r.seconds, "trainSeconds": r.trainSeconds,
                "encodeSeconds": r.encodeSeconds,
            ]
            if let at = r.upload.resumedAt { object["resumedAt"] = at }
            switch r.verdict {
            case .accepted(let receipt):
                verdict = "accepted (sequence \(receipt.sequence))"
                object["status"] = "accepted"
                object["sequence"] = receipt.sequence
            case .alreadyAccepted:
                verdict = "accepted (the server already held it)"
                object["status"] = "accepted"
            case .refused(let p):
                verdict = "not counted: \(p)"
                object["status"] = "refused"
                object["problem"] = p.type
                if let c = p.code { object["code"] = c }
            }
            if let d = r.download {
                object["download"] = ["requests": d.requests, "retries": d.retries, "bytesReceived": d.bytesReceived,
                                      "resumedFrom": d.resumedFrom, "cached": d.cached, "seconds": d.seconds]
            }
            if let accuracy { object["accuracy"] = accuracy }
            if json {
                printJSONLine(object)
                return
            }
            var line = "round \(r.round): \(verdict); frame \(r.frameBytes) B, \(r.upload.requests) request\(r.upload.requests == 1 ? "" : "s"), "
                + "\(r.upload.retries) retr\(r.upload.retries == 1 ? "y" : "ies"), upload \(String(format: "%.2f", r.upload.seconds)) s"
            if let at = r.upload.resumedAt, at > 0 { line += " (resumed at byte \(at))" }
            if r.resumed { line += "; finished an upload an earlier run left pending" }
            if let d = r.download {
                line += d.cached ? "; model cached" : "; model \(d.bytesReceived) B in \(String(format: "%.2f", d.seconds)) s"
                if !d.cached, d.resumedFrom > 0 { line += " (resumed at byte \(d.resumedFrom))" }
            }
            if let accuracy { line += String(format: "; global model accuracy %.4f", accuracy) }
            switch r.residual {
            case .committed: line += "; residual committed"
            case .rolledBack: line += "; residual rolled back"
            case .none: break
            }
            say(line)
        }

        /// Where updates come from.
        struct Trainer: @unchecked Sendable {
            /// A fixed update (`--in`, with its sample count), or local training on a digits shard.
            enum Source {
                case fixed(TensorSet, samples: UInt64)
                case digits(LocalTraining, shard: Dataset, seed: UInt64)
            }
            var source: Source
            var test: Dataset?

            func update(_ model: GlobalModel) throws -> LocalUpdate {
                switch source {
                case .fixed(let fixed, let samples):
                    guard fixed.layout == model.layout else {
                        throw UplinkError(.shapeMismatch, "the --in update's layout (\(fixed.layout.parameterCount) values) is not the server's model (\(model.layout.parameterCount) values in \(model.layout.tensors.count) tensors)")
                    }
                    return LocalUpdate(values: fixed.values, samples: samples)
                case .digits(let local, let shard, let seed):
                    let mlp = try Self.mlp(for: model.layout)
                    var delta = local.train(mlp, from: model.values, data: shard, seed: seed ^ model.round &* 0x9E37_79B9_7F4A_7C15)
                    for i in 0..<delta.count { delta[i] -= model.values[i] }
                    return LocalUpdate(values: delta, samples: UInt64(shard.count))
                }
            }

            func evaluate(_ model: GlobalModel) -> Double? {
                guard let test, let mlp = try? Self.mlp(for: model.layout) else { return nil }
                return mlp.accuracy(model.values, data: test)
            }

            /// The digits MLP whose layout is `layout` (64 → w₁ → … → 10), or a clear refusal.
            static func mlp(for layout: ModelLayout) throws -> MLP {
                var sizes = [Int]()
                var l = 1
                while let i = layout.index(of: "fc\(l).weight") {
                    let shape = layout.tensors[i].shape
                    guard shape.count == 2 else { break }
                    if sizes.isEmpty { sizes.append(shape[1]) }
                    sizes.append(shape[0])
                    l += 1
                }
                guard sizes.count >= 2, sizes.first == 64, sizes.last == 10, (try? MLP.checkSizes(sizes)) != nil, MLP(sizes: sizes).layout == layout else {
                    throw UplinkError(.shapeMismatch, "the server's model is not a digits MLP (64 → … → 10 with fcN.weight/fcN.bias tensors); --train digits cannot train it")
                }
                return MLP(sizes: sizes)
            }
        }

        func makeTrainer() throws -> Trainer {
            if let path = self.in {
                return Trainer(source: .fixed(try TensorFiles.load(path: path, nonFloat: skipNonFloat ? .skip : .refuse), samples: samples))
            }
            let (trainSet, testSet) = try Digits.load(path: data ?? Digits.defaultPath())
            let parsed = try Partition(parsing: partition)
            try parsed.check(examples: trainSet.count, clients: clients)
            let shares = parsed.split(labels: trainSet.labels, classes: trainSet.classCount, clients: clients, seed: seed)
            let shard = trainSet.subset(shares[clientIndex])
            guard shard.count > 0 else { throw UplinkError(.invalidArgument, "client \(clientIndex)'s shard of \(partition) over \(clients) clients is empty") }
            let local = LocalTraining(epochs: localEpochs, batchSize: batchSize, learningRate: lr, momentum: momentum, weightDecay: weightDecay)
            return Trainer(source: .digits(local, shard: shard, seed: seed ^ UInt64(clientIndex) &* 0x9E37_79B9), test: evaluate ? testSet : nil)
        }
    }

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload one frame to a round of `uplink serve`, resumably.",
            discussion: """
                Creates an upload resource for the round and appends the frame from the server's \
                offset, retrying cuts with backoff. The session is saved beside the frame \
                (FRAME.upload.json): run the same command again after a kill and it resumes the \
                same upload. Exit status 0 when the server accepts, 1 otherwise. See docs/client.md.
                """)

        @OptionGroup var connection: ClientConnectionOptions

        @Option(help: "The round the frame is for.")
        var round: UInt64

        @Option(help: "The frame (.upl).")
        var `in`: String

        @Flag(help: "Print the verdict as JSON.")
        var json = false

        func run() async throws {
            do {
                let token = try connection.resolvedToken()
                let options = try connection.options()
                let json = self.json
                let (verdict, stats) = try await uploadFrame(at: self.in, server: connection.server, token: token, round: round, options: options) { p in
                    if !json { FileHandle.standardError.write(Data("uplink: \(p.acknowledged) of \(p.total) bytes stored\n".utf8)) }
                }
                var object: [String: Any] = ["round": round, "requests": stats.requests, "retries": stats.retries,
                                             "bodyBytesSent": stats.bodyBytesSent, "seconds": stats.seconds]
                if let at = stats.resumedAt { object["resumedAt"] = at }
                switch verdict {
                case .accepted(let r):
                    object["status"] = "accepted"
                    object["sequence"] = r.sequence
                    object["bytes"] = r.bytes
                    if json { printJSON(object) } else { say("accepted: round \(r.round), sequence \(r.sequence), \(r.bytes) bytes, \(stats.requests) requests, \(stats.retries) retries") }
                case .alreadyAccepted(let round):
                    object["status"] = "accepted"
                    if json { printJSON(object) } else { say("accepted: the server already holds this client's update for round \(round)") }
                case .refused(let p):
                    object["status"] = "refused"
                    object["type"] = p.type
                    if let c = p.code { object["code"] = c }
                    if json { printJSON(object) } else { say("refused: \(p)") }
                    throw ExitCode(1)
                }
            } catch let e as ExitCode {
                throw e
            } catch {
                throw reportClientError(error, json: json)
            }
        }
    }
}

/// A line on standard output, written at once (a long-running participant's log is read live).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
