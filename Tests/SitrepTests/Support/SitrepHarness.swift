import AsyncHTTPClient
import Auth
import ERPClient
import Foundation
import Generated
import HTTPTypes
import Handlers
import Hummingbird
import HummingbirdTesting
import LocalIssuer
import Logging
import NIOCore
import PostgresNIO
import Redis
import SitrepRuntime
import Storage

/// The real service wired as `sitrep serve` wires it — generated router, JWT authentication with
/// the dev issuer, Redis rate limits, handlers over PostgreSQL — on a fresh database.
struct SitrepHarness: Sendable {
    let db: TestDatabase
    let redis: RedisClient
    let tokens: Tokens
    /// Each instance's live-stream hub, in instance order.
    var hubs: [SignalStreamHub] = []

    struct Tokens: Sendable {
        let viewer: String
        let admin: String
        let executive: String
        let executiveMFA: String
        let ingest: String
        let nobody: String
    }

    static var redisURL: String? {
        ProcessInfo.processInfo.environment["SITREP_TEST_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    static var isConfigured: Bool {
        TestDatabase.isConfigured && (redisURL != nil || ProcessInfo.processInfo.environment["CI"] != nil)
    }

    struct RedisNotConfigured: Error, CustomStringConvertible {
        var description: String { "SITREP_TEST_REDIS_URL is not set; run the tests through Tools/test" }
    }

    /// What Prometheus sends to read `/metrics` in the tests.
    static let metricsToken = "metrics-scrape-token"

    /// The origin the tests pretend the frontend is served from.
    static let publicURL = "https://sitrep.test"
    /// The streamed-upload limit the test servers use (small, so the 413 test is cheap).
    static let maxUploadBytes = 16 << 20

    static let keyPath = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-harness-dev-key.pem").path

    static func makeTokens() async throws -> Tokens {
        let pem = try DevIssuer.loadOrCreatePrivateKey(at: keyPath)
        func t(_ roles: [String], _ user: String, mfa: Bool = false, app: Bool = false) async throws -> String {
            try await DevIssuer.token(privateKeyPEM: pem, roles: roles, user: user, name: user.capitalized, mfa: mfa, app: app)
        }
        return Tokens(
            viewer: try await t(["Sitrep.Viewer"], "viewer"), admin: try await t(["Sitrep.Admin"], "admin"),
            executive: try await t(["Sitrep.Executive"], "exec"), executiveMFA: try await t(["Sitrep.Executive"], "exec2", mfa: true),
            ingest: try await t(["Sitrep.Ingest"], "pipeline", app: true), nobody: try await t([], "nobody"))
    }

    /// Runs `body` against a fresh database and the shared test Redis.
    static func with(
        rateLimits: [String: RedisRateLimiter.Policy]? = nil, redisURL overrideRedis: String? = nil,
        dashboardTTL: Duration = .zero, issuer: LocalIssuer? = nil, sessionIdle: Duration = .seconds(900),
        claims: ClaimMapping = .entra, erp: ERPClient? = nil, _ body: @Sendable (any TestClientProtocol, SitrepHarness) async throws -> Void
    ) async throws {
        try await instances(
            1, rateLimits: rateLimits, redisURL: overrideRedis, dashboardTTL: dashboardTTL, issuer: issuer, sessionIdle: sessionIdle,
            claims: claims, erp: erp
        ) { clients, h in try await body(clients[0], h) }
    }

    /// Runs `body` against `count` instances of the service — each with its own router, Redis
    /// client, connection pool and handlers, as separate `sitrep serve` processes would be — over
    /// one fresh database and the shared test Redis. `setup: .live` serves each on a loopback port.
    /// The instances numbered in `routerOnly` are served by Hummingbird's router alone, without
    /// the generated operation router in front of it (to compare the two).
    static func instances(
        _ count: Int, setup: TestingSetup = .router,
        rateLimits: [String: RedisRateLimiter.Policy]? = nil, redisURL overrideRedis: String? = nil,
        dashboardTTL: Duration = .zero, issuer: LocalIssuer? = nil, sessionIdle: Duration = .seconds(900),
        stream: SignalStreamHub.Settings = SignalStreamHub.Settings(), twilioWebhook: TwilioWebhookSettings? = nil, port: Int = 0,
        listCache: Duration = .zero, claims: ClaimMapping = .entra, idleTimeout: Duration = .seconds(30),
        databaseDeadline: Duration = DatabaseDeadline.standard, erp: ERPClient? = nil, routerOnly: Set<Int> = [],
        _ body: @Sendable ([any TestClientProtocol], SitrepHarness) async throws -> Void
    ) async throws {
        try await TestDatabase.with { db in
            var apps: [any ApplicationProtocol] = []
            var hubs: [SignalStreamHub] = []
            var extraPools: [PostgresClient] = []
            var extraRedis: [RedisClient] = []
            let harnessRedis = try await makeApplication(
                db: db, client: db.client, rateLimits: rateLimits, redisURL: overrideRedis, dashboardTTL: dashboardTTL, issuer: issuer,
                sessionIdle: sessionIdle, stream: stream, twilioWebhook: twilioWebhook, listCache: listCache, claims: claims,
                idleTimeout: idleTimeout, databaseDeadline: databaseDeadline, erp: erp, operationRouter: !routerOnly.contains(0), into: &apps,
                hubs: &hubs
            )
            // The test frameworks pick their own port; a server that must be reachable at a known
            // address (a provider calling back) is the same first instance served again on `port`.
            let fixed: (any ApplicationProtocol)? = port == 0 ? nil : apps[0].served(at: port)
            for instance in 1..<max(count, 1) {
                let pool = PostgresClient(configuration: db.configuration, backgroundLogger: TestDatabase.logger)
                extraPools.append(pool)
                extraRedis.append(
                    try await makeApplication(
                        db: db, client: pool, rateLimits: rateLimits, redisURL: overrideRedis, dashboardTTL: dashboardTTL, issuer: issuer,
                        sessionIdle: sessionIdle, stream: stream, twilioWebhook: twilioWebhook, listCache: listCache, claims: claims,
                        idleTimeout: idleTimeout, databaseDeadline: databaseDeadline, erp: erp,
                        operationRouter: !routerOnly.contains(instance), into: &apps, hubs: &hubs))
            }
            let harness = SitrepHarness(db: db, redis: harnessRedis, tokens: try await makeTokens(), hubs: hubs)
            let pools = extraPools
            let runningHubs = hubs
            let result: Result<Void, any Error>
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for pool in pools { group.addTask { await pool.run() } }
                    for hub in runningHubs { group.addTask { await hub.run() } }
                    if let fixed { group.addTask { try await fixed.runService() } }
                    defer { group.cancelAll() }
                    if fixed != nil { try await Self.waitForPort(port) }
                    try await Self.nest(apps[...], setup: setup, clients: []) { clients in
                        defer { runningHubs.forEach { $0.endStreams() } }  // so the servers can drain and stop
                        try await body(clients, harness)
                    }
                }
                result = .success(())
            } catch {
                result = .failure(error)
            }
            await harnessRedis.shutdown()
            for r in extraRedis { await r.shutdown() }
            try result.get()
        }
    }

    /// Waits until something accepts connections on 127.0.0.1:`port`.
    static func waitForPort(_ port: Int) async throws {
        for _ in 0..<100 {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz")
            request.method = .GET
            if let answer = try? await HTTPClient.shared.execute(request, timeout: .seconds(1)), answer.status == .ok { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw PortNotReady(port: port)
    }

    struct PortNotReady: Error, CustomStringConvertible {
        var port: Int
        var description: String { "nothing answered /healthz on 127.0.0.1:\(port) within 5 s" }
    }

    private static func nest(
        _ apps: ArraySlice<any ApplicationProtocol>, setup: TestingSetup, clients: [any TestClientProtocol],
        _ body: @Sendable ([any TestClientProtocol]) async throws -> Void
    ) async throws {
        guard let first = apps.first else { return try await body(clients) }
        let rest = apps.dropFirst()
        try await first.test(setup) { client in try await nest(rest, setup: setup, clients: clients + [client], body) }
    }

    /// Wires one instance the way `sitrep serve` does and returns its Redis client.
    private static func makeApplication(
        db: TestDatabase, client dbClient: PostgresClient, rateLimits: [String: RedisRateLimiter.Policy]?, redisURL overrideRedis: String?,
        dashboardTTL: Duration, issuer: LocalIssuer?, sessionIdle: Duration, stream: SignalStreamHub.Settings,
        twilioWebhook: TwilioWebhookSettings?, listCache: Duration = .zero, claims: ClaimMapping = .entra,
        idleTimeout: Duration = .seconds(30), databaseDeadline: Duration = DatabaseDeadline.standard, erp: ERPClient? = nil,
        operationRouter: Bool = true, into apps: inout [any ApplicationProtocol],
        hubs: inout [SignalStreamHub]
    ) async throws -> RedisClient {
        do {
            guard let url = overrideRedis ?? redisURL else { throw RedisNotConfigured() }
            var rc = try RedisConfiguration(url: url)
            rc.connectTimeout = .seconds(1)
            rc.commandTimeout = .seconds(2)
            let redis = RedisClient(configuration: rc, logger: TestDatabase.logger)
            let pem = try DevIssuer.loadOrCreatePrivateKey(at: keyPath)
            let auth: JWTAuthenticator
            var sessions: BrowserSessions?
            if let issuer {
                // The same code path as Azure AD: discovery, JWKS and the token endpoint over HTTP.
                auth = try await JWTAuthenticator(configuration: issuer.authConfiguration, httpClient: HTTPClient.shared, logger: TestDatabase.logger)
                let oidc = try await OIDCClient.discover(
                    issuer: issuer.issuer, clientId: issuer.configuration.clientId, clientSecret: issuer.configuration.clientSecret,
                    httpClient: HTTPClient.shared, logger: TestDatabase.logger)
                var settings = SessionSettings(
                    redirectURI: Self.publicURL + "/v1/auth/callback", scope: "openid profile offline_access api://sitrep/access_as_user")
                settings.idle = sessionIdle
                sessions = BrowserSessions(redis: redis, oidc: oidc, verifier: auth, settings: settings, db: dbClient, logger: TestDatabase.logger)
            } else {
                var configuration = DevIssuer.configuration
                configuration.claims = claims
                // A standard issuer has no tenant claim.
                if claims != .entra { configuration.tenantId = nil }
                auth = try await JWTAuthenticator(
                    configuration: configuration,
                    publicKeysPEM: [DevIssuer.keyId: try DevIssuer.publicKeyPEM(fromPrivateKeyPEM: pem)], logger: TestDatabase.logger)
            }
            let policies =
                rateLimits ?? [
                    "writes": .init(limit: 10_000, windowSeconds: 60), "ingest": .init(limit: 10_000, windowSeconds: 60),
                    "messaging": .init(limit: 10_000, windowSeconds: 60, failClosed: true),
                    "auth": .init(limit: 10_000, windowSeconds: 60), "webhook": .init(limit: 10_000, windowSeconds: 60),
                ]
            var runtime = APIRuntime(
                authenticator: SitrepAuthenticator(bearer: auth, sessions: sessions), rateLimiter: RedisRateLimiter(redis: redis, policies: policies),
                idempotencyStore: PostgresIdempotencyStore(db: dbClient, logger: TestDatabase.logger), maxBodyBytes: 1 << 20,
                validateResponses: true, securityEvents: SecurityAuditLog(db: dbClient, logger: TestDatabase.logger),
                logger: TestDatabase.logger)
            runtime.allowedOrigins = [Self.publicURL]
            runtime.maxStreamedBodyBytes = Self.maxUploadBytes
            runtime.stepUpChallenge = claims.mfa == .acrs ? .claims : .acrValues
            let metrics = APIMetrics()
            metrics.register(SitrepOperations.all)
            runtime.metrics = metrics
            let migrations = db.migrations
            let hub = SignalStreamHub(
                db: dbClient, redis: redis,
                subscriber: RedisSubscriber(configuration: rc, channels: [SignalStreamHub.channel], logger: TestDatabase.logger), settings: stream,
                logger: TestDatabase.logger)
            hubs.append(hub)
            let handlers = SitrepHandlers(
                db: dbClient, redis: redis, stepUpContext: "c1", dashboardTTL: dashboardTTL, sessions: sessions, signalHub: hub,
                twilioWebhook: twilioWebhook, listCacheMaxAge: listCache, databaseDeadline: databaseDeadline, erp: erp,
                pendingMigrations: {
                    try await Migrator(client: dbClient, migrations: migrations, logger: TestDatabase.logger).pending().map(\.name)
                })
            let router = Router.sitrep()
            router.registerSitrepAPI(handlers, runtime: runtime)
            router.registerContractDocuments()
            router.registerMetrics(metrics, token: Self.metricsToken)
            let idle = TimeAmount.milliseconds(Int64(idleTimeout / .milliseconds(1)))
            let address = ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0))
            if operationRouter {
                // As `sitrep serve` runs: the generated operation router in front of the router.
                apps.append(
                    Application(
                        router: SitrepOperationRouter(handlers, runtime: runtime, router: router),
                        server: .http1(configuration: .init(idleTimeout: idle)),
                        configuration: address,
                        logger: TestDatabase.logger))
            } else {
                apps.append(
                    Application(
                        router: router, server: .http1(configuration: .init(idleTimeout: idle)), configuration: address, logger: TestDatabase.logger))
            }
            return redis
        }
    }
}

extension ApplicationProtocol {
    /// The same responder as this application, listening on 127.0.0.1:`port`.
    func served(at port: Int) -> any ApplicationProtocol {
        FixedPortApplication(base: self, port: port)
    }
}

/// An application served on a chosen port (the test frameworks always choose their own).
struct FixedPortApplication<Base: ApplicationProtocol>: ApplicationProtocol {
    let base: Base
    let port: Int
    var responder: Base.Responder { get async throws { try await base.responder } }
    var configuration: ApplicationConfiguration { base.configuration.with(address: .hostname("127.0.0.1", port: port)) }
    var logger: Logger { base.logger }
}

extension HTTPFields {
    static func auth(_ token: String, json: Bool = false, ifMatch: String? = nil) -> HTTPFields {
        var h = HTTPFields()
        h[.authorization] = "Bearer \(token)"
        if json { h[.contentType] = "application/json" }
        if let ifMatch { h[.ifMatch] = ifMatch }
        return h
    }

    static func auth(_ token: String, ifNoneMatch: String) -> HTTPFields {
        var h = auth(token)
        h[.ifNoneMatch] = ifNoneMatch
        return h
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body decoded with the generated decoder for `T` (fails the test with the errors).
    func decode<T: JSONDecodable>(_ type: T.Type) throws -> T {
        var errors = ValidationErrors()
        guard let v = T(json: try JSONParser.parse(Array(body.readableBytesView)), at: "", errors: &errors) else {
            throw ContractViolation("cannot decode \(T.self): \(errors.items) in \(text)")
        }
        return v
    }

    var problemCode: String? { (try? decode(Problem.self))?.code }
}

func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

/// A JSON SignalInput with overridable fields.
func signalJSON(
    source: String = "reuters", sourceId: String, title: String = "Brent crude rises", summary: String = "Oil up after disruption.",
    category: String = "economic", severity: String = "high", publishedAt: String = "2026-11-25T08:00:00Z", tags: [String] = ["oil"],
    region: String? = "Gulf"
) -> String {
    let tagList = tags.map { "\"\($0)\"" }.joined(separator: ",")
    let regionJSON = region.map { "\"\($0)\"" } ?? "null"
    return """
        {"source":"\(source)","sourceId":"\(sourceId)","title":"\(title)","summary":"\(summary)","category":"\(category)",\
        "severity":"\(severity)","confidence":0.8,"modelVersion":"m1","tags":[\(tagList)],"region":\(regionJSON),\
        "publishedAt":"\(publishedAt)"}
        """
}

func batch(_ items: [String]) -> String { "{\"items\":[" + items.joined(separator: ",") + "]}" }
