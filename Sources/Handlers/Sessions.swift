import Auth
import Crypto
import Foundation
import Logging
import PostgresNIO
import Redis
import SitrepRuntime
import Storage

/// How browser sessions behave (backend-for-frontend).
public struct SessionSettings: Sendable {
    /// A session unused for this long ends.
    public var idle: Duration = .seconds(15 * 60)
    /// A session ends this long after sign-in, used or not.
    public var absolute: Duration = .seconds(8 * 3600)
    /// Where the provider sends the browser back: `<public URL>/v1/auth/callback`.
    public var redirectURI: String
    /// Scopes asked for: OpenID, refresh tokens, and the API's delegated scope.
    public var scope: String
    /// The access token behind a session is refreshed when it has less than this left.
    public var refreshMargin: Duration = .seconds(120)
    /// How a step-up sign-in asks the issuer for MFA (Entra's claims request or `acr_values`).
    public var stepUp: StepUpChallenge = .claims

    public init(redirectURI: String, scope: String) {
        self.redirectURI = redirectURI
        self.scope = scope
    }
}

/// What Redis keeps for one session. Never leaves the server.
struct StoredSession: Codable, Sendable {
    var principalId: String
    var tenantId: String
    var objectId: String
    var displayName: String?
    var roles: [String]
    var authContexts: [String]
    var accessToken: String
    var refreshToken: String?
    var accessExpiresAt: Double
    var authenticatedAt: Double
    var absoluteExpiresAt: Double
    var lastSeenAt: Double
}

/// Browser sessions in Redis: created at sign-in under a fresh random id (the cookie value; Redis
/// holds only its SHA-256), ended by idle timeout (the key's TTL, renewed on use), absolute
/// lifetime, or sign-out. The provider's tokens stay here; the access token is refreshed inline
/// when it nears expiry. Redis unreachable → the RedisError surfaces as a 503 (fail closed).
public final class BrowserSessions: Sendable {
    let redis: RedisClient
    let oidc: OIDCClient
    let verifier: JWTAuthenticator
    let settings: SessionSettings
    let db: PostgresClient
    let logger: Logger

    public init(
        redis: RedisClient, oidc: OIDCClient, verifier: JWTAuthenticator, settings: SessionSettings, db: PostgresClient, logger: Logger
    ) {
        self.redis = redis
        self.oidc = oidc
        self.verifier = verifier
        self.settings = settings
        self.db = db
        self.logger = logger
    }

    static let cookieName = "__Host-sitrep_session"
    static let loginCookieName = "__Host-sitrep_login"

    static func key(forCookie value: String) -> String { "sitrep:session:" + SHA256.hash(data: Array(value.utf8)).hexString }

    /// 32 bytes from the system generator, base64url: session ids, state, nonce, PKCE verifiers.
    static func randomToken() -> String {
        var rng = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        for _ in 0..<4 { withUnsafeBytes(of: rng.next() as UInt64) { bytes.append(contentsOf: $0) } }
        return Base64URL.encode(bytes)
    }

    func cookie(_ value: String, maxAge: Int) -> String {
        "\(Self.cookieName)=\(value); Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=\(maxAge)"
    }

    func expiredCookie() -> String { cookie("", maxAge: 0) }

    // MARK: create, load, rotate, end

    /// A new session for `principal` (verified tokens); returns the cookie value.
    func create(principal: Principal, tokens: OIDCClient.Tokens, now: Date = Date()) async throws -> (cookie: String, session: StoredSession) {
        let t = now.timeIntervalSince1970
        let session = StoredSession(
            principalId: principal.id, tenantId: principal.tenantId, objectId: principal.objectId, displayName: principal.displayName,
            roles: principal.roles.sorted(), authContexts: principal.authContexts.sorted(), accessToken: tokens.accessToken,
            refreshToken: tokens.refreshToken, accessExpiresAt: t + Double(tokens.expiresIn), authenticatedAt: t,
            absoluteExpiresAt: t + settings.absolute.timeInterval, lastSeenAt: t)
        let value = Self.randomToken()
        try await store(session, key: Self.key(forCookie: value), now: t)
        return (value, session)
    }

    private func store(_ session: StoredSession, key: String, now: Double) async throws {
        let ttl = min(settings.idle.timeInterval, session.absoluteExpiresAt - now)
        guard ttl > 0 else { return }
        let json = try JSONEncoder().encode(session)
        let reply = try await redis.send([Array("SET".utf8), Array(key.utf8), Array(json), Array("PX".utf8), Array(String(Int(ttl * 1000)).utf8)])
        guard reply == .status("OK") else { throw RedisError(.protocol, "SET answered \(reply)") }
    }

    func fetch(key: String) async throws -> StoredSession? {
        let reply = try await redis.send(["GET", key])
        guard case .bulk(let bytes) = reply else { return nil }
        return try? JSONDecoder().decode(StoredSession.self, from: Data(bytes))
    }

    func end(key: String) async throws {
        _ = try await redis.send(["DEL", key])
    }

    /// The principal behind a session cookie, or nil when there is no such (live) session.
    /// Renews the idle timeout; refreshes the provider tokens when the access token nears expiry
    /// (a refused refresh ends the session).
    func principal(forCookie value: String, now: Date = Date()) async throws -> Principal? {
        guard !value.isEmpty, value.utf8.count <= 200 else { return nil }
        let key = Self.key(forCookie: value)
        guard var session = try await fetch(key: key) else { return nil }
        let t = now.timeIntervalSince1970
        if t >= session.absoluteExpiresAt {
            try await end(key: key)
            return nil
        }
        if session.accessExpiresAt - t < settings.refreshMargin.timeInterval {
            guard let refreshed = try await refreshTokens(session, now: t) else {
                try await end(key: key)
                return nil
            }
            session = refreshed
        }
        session.lastSeenAt = t
        try await store(session, key: key, now: t)
        return principal(of: session, key: key)
    }

    func principal(of session: StoredSession, key: String) -> Principal {
        var p = Principal(
            id: session.principalId, tenantId: session.tenantId, objectId: session.objectId, displayName: session.displayName,
            roles: Set(session.roles), authContexts: Set(session.authContexts), isApplication: false, scheme: "sessionCookie")
        p.sessionExpiresAt = Date(timeIntervalSince1970: min(session.lastSeenAt + settings.idle.timeInterval, session.absoluteExpiresAt))
        p.sessionKey = key
        return p
    }

    /// Refreshes the provider tokens behind a session; nil when the provider refuses (audited).
    func refreshTokens(_ session: StoredSession, now: Double) async throws -> StoredSession? {
        guard let refreshToken = session.refreshToken else {
            await auditRefreshFailure(session, reason: "the session has no refresh token")
            return nil
        }
        let tokens: OIDCClient.Tokens
        do {
            tokens = try await oidc.refresh(refreshToken: refreshToken, scope: settings.scope)
        } catch let refused as OIDCClient.Refused {
            await auditRefreshFailure(session, reason: "the identity provider refused the refresh (\(refused.error))")
            return nil
        } catch let unavailable as OIDCClient.Unavailable {
            throw IdentityProviderUnavailable(reason: unavailable.reason)
        }
        let p: Principal
        do {
            p = try await verifier.authenticate(bearerToken: tokens.accessToken)
        } catch let failure as AuthenticationFailure {
            await auditRefreshFailure(session, reason: "the refreshed access token was refused: \(failure.description)")
            return nil
        }
        guard p.id == session.principalId else {
            await auditRefreshFailure(session, reason: "the refreshed token names another user")
            return nil
        }
        var s = session
        s.roles = p.roles.sorted()
        s.authContexts = p.authContexts.sorted()
        s.displayName = p.displayName
        s.accessToken = tokens.accessToken
        if let rotated = tokens.refreshToken { s.refreshToken = rotated }
        s.accessExpiresAt = now + Double(tokens.expiresIn)
        return s
    }

    /// Stores `session` under a new cookie value (a refreshed session gets a new id).
    func storeNew(_ session: StoredSession, cookie value: String) async throws {
        try await store(session, key: Self.key(forCookie: value), now: session.lastSeenAt)
    }

    // MARK: audit

    func audit(_ event: AuditEventInput) async {
        do {
            _ = try await db.withTransaction(logger: logger) { conn in try await appendAudit(event, on: conn, logger: logger) }
        } catch {
            logger.error("could not audit a session event", metadata: ["action": "\(event.action)", "error": "\(error)"])
        }
    }

    private func auditRefreshFailure(_ session: StoredSession, reason: String) async {
        await audit(
            AuditEventInput(
                action: "auth.refresh", outcome: .refused, actorId: session.principalId, actorName: session.displayName,
                actorRoles: session.roles, entityType: "session", entityId: session.principalId, reason: reason))
    }
}

/// The identity provider could not be reached: 503, retry later.
struct IdentityProviderUnavailable: DependencyUnavailableError, CustomStringConvertible {
    let dependency = "identity provider"
    let reason: String
    var description: String { "identity provider unavailable: \(reason)" }
}

/// Bearer tokens through the JWT authenticator, browser sessions through ``BrowserSessions``.
public struct SitrepAuthenticator: Authenticator {
    let bearer: JWTAuthenticator
    let sessions: BrowserSessions?

    public init(bearer: JWTAuthenticator, sessions: BrowserSessions?) {
        self.bearer = bearer
        self.sessions = sessions
    }

    public func authenticate(bearerToken: String) async throws -> Principal {
        try await bearer.authenticate(bearerToken: bearerToken)
    }

    public func cachedPrincipal(bearerToken: Substring) -> Principal? {
        bearer.cachedPrincipal(bearerToken: bearerToken)
    }

    public func authenticate(sessionCookie: String) async throws -> Principal? {
        guard let sessions else { return nil }
        return try await sessions.principal(forCookie: sessionCookie)
    }
}
