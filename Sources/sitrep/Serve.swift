import ArgumentParser
import AsyncHTTPClient
import Auth
import ERPClient
import Foundation
import Generated
import HTTPTracing
import Handlers
import Hummingbird
import Logging
import Metrics
import NIOPosix
import PostgresNIO
import Prometheus
import Redis
import ServiceLifecycle
import SitrepRuntime
import Storage
import Tracing

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTP API (graceful shutdown on SIGTERM/SIGINT).")

    func run() async throws {
        let config = loadConfiguration()
        bootstrapLogging(config)
        let logger = Logger(label: "sitrep")
        let tracing = bootstrapTracing(logger: logger)

        let database: DatabaseConfiguration
        var redisConfig: RedisConfiguration
        do {
            database = try DatabaseConfiguration(url: config.databaseURL)
            redisConfig = try RedisConfiguration(url: config.redisURL)
        } catch {
            die("\(error)")
        }
        if redisConfig.tls != nil { redisConfig.tls = RedisTLS(caFile: config.redisCAFile) }
        let pgConfig = database.clientConfiguration(
            poolSize: config.databasePoolSize, keepAlive: config.databaseKeepAliveSeconds > 0 ? .seconds(config.databaseKeepAliveSeconds) : nil)
        let postgres = PostgresClient(configuration: pgConfig, backgroundLogger: logger)
        // hiredis calls block: give them threads of their own, one per pooled connection.
        let redisThreads = NIOThreadPool(numberOfThreads: max(2, redisConfig.poolSize))
        redisThreads.start()
        let redis = RedisClient(configuration: redisConfig, logger: logger, threadPool: redisThreads)
        let migrations: [Migration]
        do {
            migrations = try MigrationSource.load(directory: URL(fileURLWithPath: config.migrationsDirectory))
        } catch {
            die("cannot read migrations from \(config.migrationsDirectory): \(error)")
        }
        let migrator = Migrator(client: postgres, migrations: migrations, logger: logger)

        let httpClient = makeHTTPClient(connectionsPerHost: config.dispatch.concurrency)
        let authenticator: JWTAuthenticator
        do {
            authenticator = try await makeAuthenticator(config, httpClient: httpClient, logger: logger)
        } catch {
            try? await httpClient.shutdown()
            die("cannot set up token validation: \(error)")
        }

        // Browser sessions (backend-for-frontend) when a client id is configured.
        var sessions: BrowserSessions?
        if let clientId = config.oidcClientId, let publicURL = config.publicURL {
            let issuer = await authenticator.configuration.issuer
            do {
                let oidc = try await OIDCClient.discover(
                    issuer: issuer, clientId: clientId, clientSecret: config.oidcClientSecret, httpClient: httpClient, logger: logger)
                var settings = SessionSettings(
                    redirectURI: publicURL + "/v1/auth/callback",
                    scope: config.oidcScope
                        ?? (config.claims.mfa == .acrs
                            ? "openid profile offline_access \(authenticator.configuration.audience)/access_as_user"
                            : "openid profile offline_access"))
                settings.stepUp = config.claims.mfa == .acrs ? .claims : .acrValues
                settings.idle = .seconds(config.sessionIdleMinutes * 60)
                settings.absolute = .seconds(config.sessionAbsoluteHours * 3600)
                sessions = BrowserSessions(redis: redis, oidc: oidc, verifier: authenticator, settings: settings, db: postgres, logger: logger)
            } catch {
                try? await httpClient.shutdown()
                die("cannot set up browser sign-in: \(error)")
            }
        }

        var policies: [String: RedisRateLimiter.Policy] = [:]
        for (name, p) in config.rateLimits {
            policies[name] = RedisRateLimiter.Policy(
                limit: p.limit, windowSeconds: p.windowSeconds, failClosed: config.rateLimitFailClosed.contains(name))
        }
        var runtime = APIRuntime(
            authenticator: SitrepAuthenticator(bearer: authenticator, sessions: sessions),
            rateLimiter: RedisRateLimiter(redis: redis, policies: policies),
            idempotencyStore: PostgresIdempotencyStore(
                db: postgres, retention: .seconds(config.idempotencyRetentionHours * 3600), logger: logger),
            maxBodyBytes: config.maxBodyBytes, validateResponses: config.validateResponses,
            stepUpContext: config.stepUpContext, securityEvents: SecurityAuditLog(db: postgres, logger: logger), logger: logger)
        runtime.allowedOrigins = Set(config.allowedOrigins)
        runtime.maxStreamedBodyBytes = config.maxUploadBytes
        runtime.stepUpChallenge = config.claims.mfa == .acrs ? .claims : .acrValues
        // The live stream: wake-ups over Redis pub/sub on a connection of its own.
        let signalHub = SignalStreamHub(
            db: postgres, redis: redis, subscriber: RedisSubscriber(configuration: redisConfig, channels: [SignalStreamHub.channel], logger: logger),
            logger: logger)
        // Prometheus at /metrics; libraries' swift-metrics go to the same registry.
        let registry = PrometheusCollectorRegistry()
        let queueDepth = registry.makeGauge(
            name: "sitrep_dispatch_queue_depth", help: "Deliveries queued or in progress (all workers), read at each scrape.")
        let streamClients = registry.makeGauge(
            name: "sitrep_signal_stream_clients", help: "Live signal streams open on this instance, read at each scrape.")
        let streamDropped = registry.makeGauge(
            name: "sitrep_signal_stream_dropped", help: "Live signal streams this instance ended as too slow since it started.")
        let metrics = APIMetrics(registry: registry) {
            let streams = signalHub.counts
            streamClients.set(Double(streams.connected))
            streamDropped.set(Double(streams.dropped))
            let depth = try? await postgres.query(
                "SELECT count(*)::int8 FROM deliveries WHERE status IN ('queued', 'in_progress')", logger: logger
            ).collect().first?.decode(Int64.self)
            if let depth { queueDepth.set(Double(depth)) }
        }
        metrics.register(SitrepOperations.all)
        MetricsSystem.bootstrap(metrics.factory)
        runtime.metrics = metrics
        do {
            try runtime.verify(operations: SitrepOperations.all)
        } catch {
            die("\(error)")
        }
        // The ERP's generated client: retries, timeouts and a circuit breaker in its transport.
        let erp = config.erpBaseURL.map { url in
            ERPClient(
                transport: HTTPTransport(
                    configuration: .init(
                        service: "ERP", baseURL: url, bearerToken: config.erpAPIKey, requestTimeout: .seconds(config.erpTimeoutSeconds)),
                    httpClient: httpClient, logger: logger))
        }
        let handlers = SitrepHandlers(
            db: postgres, redis: redis, stepUpContext: config.stepUpContext,
            dashboardTTL: .milliseconds(config.dashboardTTLMilliseconds), sessions: sessions, signalHub: signalHub,
            twilioWebhook: config.dispatch.webhook, listCacheMaxAge: .milliseconds(config.listCacheMilliseconds),
            maxConcurrentUploads: config.concurrentUploads, databaseDeadline: .milliseconds(config.databaseTimeoutMilliseconds), erp: erp,
            pendingMigrations: { try await migrator.pending().map(\.name) })
        runtime.tracer = tracing?.tracer
        let router = Router.sitrep()
        // The operations, then SitrepMiddleware for everything routed after them.
        router.registerSitrepAPI(handlers, runtime: runtime)
        router.registerContractDocuments()
        router.registerMetrics(metrics, token: config.metricsToken)

        let app = Application(
            // The contract's operations dispatched by generated code; the rest by the router.
            router: SitrepOperationRouter(handlers, runtime: runtime, router: router),
            // Idle connections and stalled requests (slowloris) are closed; answers being written
            // (the live stream) are not idle.
            server: .http1(configuration: .init(idleTimeout: .seconds(Int64(config.idleTimeoutSeconds)))),
            // No `Server` header: it tells a scanner what runs here (OWASP's advice is not to
            // announce it), and setting it was a field search and a write on every answer.
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil),
            onServerRunning: { channel in
                logger.info("sitrep listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
        let keyRefresh = KeyRefreshService(authenticator: authenticator)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // First, so it stops last and exports the spans the others end on their way out.
        if let tracing { services.append(.init(service: tracing.service)) }
        services += [
            .init(service: postgres), .init(service: keyRefresh),
            .init(service: app, successTerminationBehavior: .gracefullyShutdownGroup),
            // Listed after the app so it stops first (reverse order): open streams end, and the app can drain.
            .init(service: SignalHubService(hub: signalHub)),
            .init(service: MemoryTrimService()),
            .init(service: SignalCountsFoldService(folder: SignalCountsFolder(db: postgres, logger: logger))),
        ]
        if config.dispatch.inServe, let worker = config.dispatch.worker(db: postgres, httpClient: httpClient, logger: logger) {
            services.append(.init(service: DispatchWorkerService(worker: worker)))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("sitrep stopped with an error", metadata: ["error": "\(error)"])
        }
        await redis.shutdown()
        try? await redisThreads.shutdownGracefully()
        try? await httpClient.shutdown()
    }
}

/// Bootstraps OpenTelemetry tracing when the `OTEL_*` variables ask for it (see
/// ``OpenTelemetry``); one they set to something this build cannot do is a configuration error
/// (one line, exit code 2).
func bootstrapTracing(logger: Logger) -> (tracer: any Tracer, service: any Service)? {
    do {
        return try OpenTelemetry.bootstrapTracing(serviceName: "sitrep", logger: logger)
    } catch {
        FileHandle.standardError.write(Data("sitrep: \(error)\n".utf8))
        exit(2)
    }
}

/// The shared client for outbound calls. Its own tracing is off: `ClientSpans` makes one client
/// span per call, named after it, and injects the trace context itself. Over HTTP/1 it opens up
/// to `connectionsPerHost` connections to one host (async-http-client's default is 8), so the
/// dispatcher's concurrency is what reaches Twilio and SendGrid rather than a queue for 8.
func makeHTTPClient(connectionsPerHost: Int = 8) -> HTTPClient {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(8, connectionsPerHost)
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: ClientSpans.withoutClientOwnSpans(configuration))
}

/// Token validation: the configured OIDC issuer, or the local dev issuer outside production.
func makeAuthenticator(_ config: Configuration, httpClient: HTTPClient, logger: Logger) async throws -> JWTAuthenticator {
    if let issuer = config.oidcIssuer {
        let auth = AuthConfiguration(
            issuer: issuer, audience: config.oidcAudience ?? DevIssuer.audience, tenantId: config.oidcTenantId,
            jwksURL: config.oidcJWKSURL.flatMap(URL.init(string:)), claims: config.claims)
        return try await JWTAuthenticator(configuration: auth, httpClient: httpClient, logger: logger)
    }
    guard config.environment != .production, let keyPath = config.devIssuerKeyPath else {
        throw ValidationError("production needs SITREP_OIDC_ISSUER")
    }
    let pem = try DevIssuer.loadOrCreatePrivateKey(at: keyPath)
    let publicKey = try DevIssuer.publicKeyPEM(fromPrivateKeyPEM: pem)
    logger.warning("trusting the local development token issuer", metadata: ["key": .string(keyPath)])
    return try await JWTAuthenticator(configuration: DevIssuer.configuration, publicKeysPEM: [DevIssuer.keyId: publicKey], logger: logger)
}

/// Refreshes the issuer's JWKS in the background until shutdown.
struct KeyRefreshService: Service {
    let authenticator: JWTAuthenticator
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await authenticator.runRefreshLoop()
        }
    }
}

/// Folds the dashboard's signal count deltas into their totals until shutdown.
struct SignalCountsFoldService: Service {
    let folder: SignalCountsFolder
    func run() async throws {
        await cancelWhenGracefulShutdown { await folder.run() }
    }
}

/// Runs the live stream's hub until shutdown, then ends every open stream.
struct SignalHubService: Service {
    let hub: SignalStreamHub
    func run() async throws {
        await cancelWhenGracefulShutdown { await hub.run() }
    }
}
