import Auth
import Hummingbird
import Logging
import SitrepRuntime

/// A small OpenID Connect provider for development and tests, laid out like an Azure AD v2
/// tenant: discovery, JWKS, an authorization endpoint (authorization code with PKCE S256) and a
/// token endpoint (`authorization_code`, `refresh_token`).
///
/// There is no login page: the authorization endpoint signs in the user named by `login_hint`
/// (``LocalIssuerConfiguration/defaultUser`` when absent) at once. Step-up is granted when the
/// request's `claims` parameter asks for `acrs` = ``LocalIssuerConfiguration/stepUpContext``, or
/// always after ``setAlwaysMFA(_:)``. Everything is held in memory and lost on ``stop()``.
///
/// Plain HTTP: meant for loopback only, which is the only place ``JWTAuthenticator`` accepts an
/// `http` issuer. Production configuration must refuse it.
///
/// Endpoints, relative to `http://<host>:<port>`:
/// - `GET /<tenant>/v2.0/.well-known/openid-configuration`
/// - `GET /<tenant>/discovery/v2.0/keys`
/// - `GET /<tenant>/oauth2/v2.0/authorize`
/// - `POST /<tenant>/oauth2/v2.0/token`
public final class LocalIssuer: Sendable {
    /// The configuration it was started with. The switches below change the running issuer, not
    /// this value.
    public let configuration: LocalIssuerConfiguration
    /// The port it listens on (the one bound when started with port 0).
    public let port: Int
    /// `http://<host>:<port>`.
    public let baseURL: String

    let core: IssuerCore
    private let server: Task<Void, any Error>

    private init(configuration: LocalIssuerConfiguration, port: Int, baseURL: String, core: IssuerCore, server: Task<Void, any Error>) {
        self.configuration = configuration
        self.port = port
        self.baseURL = baseURL
        self.core = core
        self.server = server
    }

    /// Starts an issuer listening on `host`:`port` (0 picks a free port) and returns once it
    /// accepts connections. Throws ``LocalIssuerError`` when the configuration is invalid (tenant
    /// id, key) or the address cannot be bound. Call ``stop()`` when done.
    public static func start(
        _ configuration: LocalIssuerConfiguration, host: String = "127.0.0.1", port: Int = 0, logger: Logger
    ) async throws -> LocalIssuer {
        let core = try IssuerCore(configuration: configuration, logger: logger)
        let router = Router()
        core.addRoutes(to: router)
        let started: (port: Int, baseURL: String, server: Task<Void, any Error>)
        do {
            // The base is set before the port is announced, so no request can see an empty issuer.
            started = try await LocalServer.start(router: router, host: host, port: port, logger: logger) { base in
                core.state.withLock { $0.base = base }
            }
        } catch {
            throw LocalIssuerError("the local issuer \(error)")
        }
        let issuer = LocalIssuer(
            configuration: configuration, port: started.port, baseURL: started.baseURL, core: core, server: started.server)
        logger.info("local OIDC issuer listening", metadata: ["issuer": "\(issuer.issuer)"])
        return issuer
    }

    /// Stops listening and waits for the server to finish. Safe to call more than once.
    public func stop() async {
        server.cancel()
        _ = await server.result
    }

    // MARK: URLs

    /// The issuer identifier, `http://<host>:<port>/<tenant>/v2.0`: the `iss` of every token and
    /// what an ``AuthConfiguration`` should name.
    public var issuer: String { urls.issuer }
    /// `<issuer>/.well-known/openid-configuration`.
    public var discoveryURL: String { urls.discovery }
    /// `http://<host>:<port>/<tenant>/oauth2/v2.0/authorize`.
    public var authorizationEndpoint: String { urls.authorize }
    /// `http://<host>:<port>/<tenant>/oauth2/v2.0/token`.
    public var tokenEndpoint: String { urls.token }
    /// `http://<host>:<port>/<tenant>/discovery/v2.0/keys`.
    public var jwksURI: String { urls.jwks }

    /// Settings under which ``JWTAuthenticator`` accepts this issuer's access tokens (keys found
    /// through discovery).
    public var authConfiguration: AuthConfiguration {
        AuthConfiguration(issuer: issuer, audience: configuration.apiAudience, tenantId: configuration.tenantId)
    }

    private var urls: IssuerURLs { IssuerURLs(base: baseURL, tenant: configuration.tenantId) }

    // MARK: Switches for tests (thread-safe, effective for the next token issued)

    /// When on, every token issued from now on (code or refresh) carries `acrs` =
    /// [``LocalIssuerConfiguration/stepUpContext``], as if every sign-in had passed MFA. Refresh
    /// tokens issued while on keep that state.
    public func setAlwaysMFA(_ on: Bool) {
        core.state.withLock { $0.alwaysMFA = on }
    }

    /// The lifetime of access and ID tokens issued from now on.
    public func setAccessTokenLifetime(_ lifetime: Duration) {
        core.state.withLock { $0.accessTokenLifetime = lifetime }
    }

    /// Forgets every refresh token issued so far: presenting one then fails with `invalid_grant`.
    public func revokeAllRefreshTokens() {
        core.state.withLock { $0.refreshTokens.removeAll() }
    }

    /// Signs tokens from now on with `privateKeyPEM` under `keyId`. The JWKS keeps publishing
    /// every earlier key as well, so tokens issued before still verify. Throws
    /// ``LocalIssuerError`` when the PEM is not an RSA private key of 2048 bits or more.
    public func rotateKey(privateKeyPEM: String, keyId: String) throws {
        try core.rotateKey(privateKeyPEM: privateKeyPEM, keyId: keyId)
    }

    /// The `kid` new tokens are signed under.
    public var currentKeyId: String { core.state.withLock { $0.signingKey.kid } }

    /// How many requests reached the token endpoint, successful or not.
    public var tokenRequests: Int { core.state.withLock { $0.tokenRequests } }

    /// The W3C `traceparent` each JWKS request carried, in order (nil when it had none): what
    /// tracing tests check the API propagates on its key fetches.
    public var jwksTraceparents: [String?] { core.state.withLock { $0.jwksTraceparents } }
}
