import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTPTypes
import NIOPosix
import NIOSSL
import ServiceLifecycle
import UplinkCodec

/// The coordinator server (`uplink serve`): rounds, authenticated resumable uploads (IETF
/// draft interop versions 8 and 6), decode-and-accumulate on arrival, and a ledger that loses
/// no acknowledged update on a crash. The HTTP API is `docs/server.md` and `docs/openapi.yaml`.
public enum UplinkServer {
    /// Runs the server until SIGTERM or SIGINT (graceful: stops accepting, lets in-flight
    /// requests finish for up to 30 s, exits) or until the last of ``ServerConfiguration/rounds``
    /// has closed. `onListening` gets the URL once connections are accepted.
    public static func run(_ config: ServerConfiguration, logger: Logger, onListening: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        do {
            try await serve(config, logger: logger, pool: pool, onListening: onListening)
        } catch {
            try? await pool.shutdownGracefully()
            throw error
        }
        // Work handed to the pool without waiting (lease releases) finishes before the ledger closes.
        try? await pool.shutdownGracefully()
    }

    static func serve(_ config: ServerConfiguration, logger: Logger, pool: NIOThreadPool, onListening: @escaping @Sendable (String) -> Void) async throws {
        let done = AsyncStream<Void>.makeStream()
        let metrics = ServerMetrics()
        let coordinator = try Coordinator(config: config, logger: logger, metrics: metrics) { done.continuation.yield() }
        let api = HTTPAPI(coordinator: coordinator, pool: pool, logger: logger)
        let limits = config.limits
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [RequestHeadTimeout(seconds: limits.requestHeadTimeoutSeconds)],
            idleTimeout: .milliseconds(Int64(limits.idleTimeoutSeconds * 1000)))
        let server: HTTPServerBuilder
        let scheme: String
        if let tls = config.tls {
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tls.key, format: .pem)
            server = try .tls(.http1(configuration: http1), tlsConfiguration: TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
            scheme = "https"
        } else {
            server = .http1(configuration: http1)
            scheme = "http"
        }
        let host = config.host
        let app = Application(
            router: api.router(),
            server: server,
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: config.port), serverName: "uplink", backlog: 1024,
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? config.port
                let shown = host.contains(":") ? "[\(host)]" : host
                onListening("\(scheme)://\(shown):\(port)")
            },
            logger: logger)
        let clock = RoundClock(coordinator: coordinator, pool: pool)
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: app), .init(service: clock)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // In-flight appends get 30 s to finish; each stores what it received either way.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(30)
        let group = ServiceGroup(configuration: groupConfiguration)
        let finisher = Task {
            for await _ in done.stream {
                logger.info("the last round closed; shutting down")
                await group.triggerGracefulShutdown()
                return
            }
        }
        defer { finisher.cancel() }
        try await group.run()
        logger.info("stopped", metadata: ["round": "\(coordinator.round.number)"])
    }
}

/// Drives the round clock: applies deadlines (closing or abandoning rounds) and expires
/// uploads past their `max-age`.
struct RoundClock: Service {
    let coordinator: Coordinator
    let pool: NIOThreadPool

    func run() async throws {
        var ticks = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            let expire = ticks % 240 == 0
            let renew = ticks % 4 == 0
            ticks += 1
            do {
                try await pool.runIfActive {
                    try coordinator.advance()
                    if renew { try coordinator.renewLeases() }
                    if expire { try coordinator.expireUploads() }
                }
            } catch {
                coordinator.logger.error("round clock", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Closes a connection whose next request head does not arrive complete within the limit
/// (counted from the connection's start or the previous request's end): slow headers
/// (slowloris) cannot hold a connection. Bodies are bounded by the rate and idle checks.
final class RequestHeadTimeout: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(seconds: Double) { timeout = .milliseconds(Int64(seconds * 1000)) }

    private func arm(_ context: ChannelHandlerContext) {
        timer?.cancel()
        let loop = context.eventLoop
        let channel = context.channel
        timer = loop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerAdded(context: ChannelHandlerContext) { if context.channel.isActive { arm(context) } }
    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }
    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }
    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            timer?.cancel()
            timer = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The response's end starts the wait for the next request head.
        if case .end = unwrapOutboundIn(data) { arm(context) }
        context.write(data, promise: promise)
    }
}
