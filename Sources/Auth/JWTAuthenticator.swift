import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import SitrepRuntime

/// Verifies RS256 bearer tokens from one OIDC issuer (Azure AD v2 shaped) and maps them to a
/// `Principal`.
///
/// Rules: `alg` must be RS256 (none, HS*, ES*, PS*, RS384… are refused, and so is a token whose
/// key the issuer published for another algorithm); the key is chosen by `kid` only; `iss` is
/// compared exactly; `aud` must contain the configured audience; `tid` must equal the configured
/// tenant when there is one; `exp` is required and `exp`/`nbf` allow ``AuthConfiguration/clockSkew``;
/// `oid` is required. Every refusal is an `AuthenticationFailure` with error `invalid_token`
/// and a short reason that never contains the token.
///
/// Remote mode keeps the issuer's JWKS in memory: ``refreshKeys()`` replaces it (keeping the last
/// good set when the issuer cannot be reached), ``runRefreshLoop()`` does so periodically, and
/// a token signed with an unknown `kid` triggers at most one synchronous refresh every
/// five minutes (key rotation without a restart, but no refresh storm from forged kids).
public actor JWTAuthenticator: Authenticator {
    /// The configuration in force.
    public nonisolated let configuration: AuthConfiguration
    private let logger: Logger
    /// nil in local-keys mode.
    private let fetcher: JWKSFetcher?
    private var keys: TrustedKeySet
    /// Discovered (or configured) JWKS URL; nil forces discovery on the next refresh.
    private var jwksURL: URL?
    private var refreshInFlight: Task<Void, Never>?
    private var lastUnknownKidRefresh: ContinuousClock.Instant?
    private var lastSuccessfulRefresh: ContinuousClock.Instant?
    private var lastRefreshFailed = false
    /// Minimum time between two refreshes triggered by an unknown `kid`.
    var unknownKidRefreshInterval: Duration = .seconds(300)
    /// Time before retrying after a failed periodic refresh (capped by `refreshInterval`).
    var failedRefreshRetryInterval: Duration = .seconds(60)
    /// Tokens longer than this are refused before any parsing.
    static let maxTokenBytes = 64 * 1024
    /// Tokens that passed every check (see ``VerifiedTokenCache`` for why that is safe).
    nonisolated let verified = VerifiedTokenCache(capacity: 4096)

    /// Remote issuer: fetches the JWKS over HTTPS with the given client, through OIDC discovery
    /// when ``AuthConfiguration/jwksURL`` is nil.
    ///
    /// Throws ``AuthSetupError`` when the configuration is unusable or the first key set cannot
    /// be fetched, so a misconfigured server fails at start-up rather than on every request.
    public init(configuration: AuthConfiguration, httpClient: HTTPClient, logger: Logger) async throws {
        try Self.validate(configuration)
        let fetcher = JWKSFetcher(configuration: configuration, httpClient: httpClient, logger: logger)
        let url = try await fetcher.resolveJWKSURL()
        let keys = try await fetcher.fetchKeys(from: url)
        self.configuration = configuration
        self.logger = logger
        self.fetcher = fetcher
        self.keys = keys
        self.jwksURL = url
        self.lastSuccessfulRefresh = .now
        logger.info(
            "loaded issuer signing keys",
            metadata: ["issuer": "\(configuration.issuer)", "jwks": "\(url)", "kids": "\(keys.kids)"])
    }

    /// Local keys (development issuer, tests): trusts exactly these RSA keys, keyed by `kid`.
    /// Each PEM is a public key, an X.509 certificate, or a private key (only its public half is
    /// kept). Keys under 2048 bits are refused. No network; ``refreshKeys()`` does nothing.
    public init(configuration: AuthConfiguration, publicKeysPEM: [String: String], logger: Logger) async throws {
        try Self.validate(configuration)
        guard !publicKeysPEM.isEmpty else { throw AuthSetupError("no trusted keys given") }
        self.keys = try await TrustedKeySet.fromPEM(publicKeysPEM)
        self.configuration = configuration
        self.logger = logger
        self.fetcher = nil
        self.jwksURL = nil
    }

    private static func validate(_ configuration: AuthConfiguration) throws {
        guard !configuration.issuer.isEmpty else { throw AuthSetupError("issuer is empty") }
        guard !configuration.audience.isEmpty else { throw AuthSetupError("audience is empty") }
        if let tenant = configuration.tenantId, tenant.isEmpty {
            throw AuthSetupError("tenantId is empty (use nil to accept any tenant)")
        }
        guard configuration.clockSkew >= .zero else { throw AuthSetupError("clockSkew is negative") }
        guard configuration.refreshInterval > .zero else { throw AuthSetupError("refreshInterval must be positive") }
    }

    // MARK: Authenticator

    public nonisolated func authenticate(bearerToken: String) async throws -> Principal {
        if let principal = cachedPrincipal(bearerToken: bearerToken[...]) { return principal }
        return try await authenticateUncached(bearerToken)
    }

    /// A token verified before (see ``VerifiedTokenCache``), its time claims checked again now.
    public nonisolated func cachedPrincipal(bearerToken: Substring) -> Principal? {
        verified.lookup(bearerToken, now: Date().timeIntervalSince1970, skew: configuration.clockSkew.timeInterval)
    }

    private func authenticateUncached(_ bearerToken: String) async throws -> Principal {
        do {
            let generation = verified.generation
            let (principal, claims) = try await verify(bearerToken)
            if let exp = claims.exp {
                verified.insert(
                    bearerToken,
                    .init(principal: principal, expiresAt: exp, notBefore: claims.nbf, generation: generation),
                    now: Date().timeIntervalSince1970)
            }
            return principal
        } catch let failure as AuthenticationFailure {
            logger.debug("bearer token refused", metadata: ["reason": "\(failure.description)"])
            throw failure
        }
    }

    private func verify(_ rawToken: String) async throws -> (Principal, AccessTokenClaims) {
        let claims = try await verifySignature(rawToken)
        return (try principal(from: claims, now: Date()), claims)
    }

    /// Validates an OpenID Connect ID token from this issuer (Core §3.1.3.7): RS256 signature by
    /// a trusted key, `iss` exact, `aud` containing `clientId`, `tid` when a tenant is configured,
    /// `exp`/`nbf` with the skew, and `nonce` equal to the one the sign-in sent (when given).
    /// Returns the token's `tid` and `oid`.
    public func verifyIDToken(_ token: String, clientId: String, nonce: String?) async throws -> (tenantId: String, objectId: String) {
        let claims = try await verifySignature(token)
        guard claims.iss == configuration.issuer else { throw Self.fail("ID token issuer is not trusted") }
        guard let aud = claims.aud, aud.contains(clientId) else { throw Self.fail("ID token audience does not match") }
        if let tenant = configuration.tenantId, claims.tid != tenant { throw Self.fail("ID token tenant is not trusted") }
        let skew = configuration.clockSkew.timeInterval
        let now = Date().timeIntervalSince1970
        guard let exp = claims.exp, now < exp + skew else { throw Self.fail("ID token expired") }
        if let nbf = claims.nbf, now + skew < nbf { throw Self.fail("ID token is not yet valid") }
        if let nonce, claims.nonce != nonce { throw Self.fail("ID token nonce does not match") }
        guard let oid = claims.oid, !oid.isEmpty else { throw Self.fail("ID token has no object id (oid)") }
        return (claims.tid ?? "", oid)
    }

    /// Header rules, key choice and the RS256 signature; the claims are not checked yet.
    private func verifySignature(_ rawToken: String) async throws -> AccessTokenClaims {
        let token = rawToken.trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty, token.utf8.count <= Self.maxTokenBytes else { throw Self.fail("token is malformed") }
        let header = try Self.decodeHeader(token)

        guard let alg = header.alg else { throw Self.fail("token algorithm is missing") }
        guard alg == "RS256" else { throw Self.fail("token algorithm \(Self.printable(alg)) is not accepted") }
        if let crit = header.crit, !crit.isEmpty {
            throw Self.fail("token has critical header parameters that are not supported")
        }
        guard let kid = header.kid, !kid.isEmpty else { throw Self.fail("token has no key id") }

        let keySet = await keySet(containing: kid)
        switch keySet.entries[kid] {
        case .none:
            throw Self.fail("token signing key is not trusted")
        case .otherAlgorithm:
            throw Self.fail("token algorithm does not match its signing key")
        case .rs256:
            break
        }

        let claims: AccessTokenClaims
        do {
            claims = try await keySet.collection.verify(token, as: AccessTokenClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            throw Self.fail("token signature is invalid")
        } catch {
            throw Self.fail("token is malformed")
        }
        return claims
    }

    /// Applies the claim rules to verified claims and builds the principal.
    func principal(from claims: AccessTokenClaims, now: Date) throws -> Principal {
        guard claims.iss == configuration.issuer else { throw Self.fail("token issuer is not trusted") }
        guard let aud = claims.aud, aud.contains(configuration.audience) else {
            throw Self.fail("token audience does not match")
        }
        if let tenant = configuration.tenantId, claims.tid != tenant {
            throw Self.fail("token tenant is not trusted")
        }
        let skew = configuration.clockSkew.timeInterval
        let current = now.timeIntervalSince1970
        guard let exp = claims.exp else { throw Self.fail("token has no expiry") }
        guard current < exp + skew else { throw Self.fail("token expired") }
        if let nbf = claims.nbf, current + skew < nbf { throw Self.fail("token is not yet valid") }
        let mapping = configuration.claims
        let oid: String
        switch mapping.userId {
        case .oid:
            guard let v = claims.oid, !v.isEmpty else { throw Self.fail("token has no object id (oid)") }
            oid = v
        case .sub:
            guard let v = claims.sub, !v.isEmpty else { throw Self.fail("token has no subject (sub)") }
            oid = v
        }

        let isApplication: Bool =
            if let idtyp = claims.idtyp { idtyp == "app" } else { mapping.tokensWithoutScopeAreApplications && claims.scp == nil }
        let tenantId = claims.tid ?? configuration.tenantLabel
        let id = isApplication ? "app:\(claims.azp ?? claims.appid ?? oid)" : "\(tenantId):\(oid)"
        return Principal(
            id: id,
            tenantId: tenantId,
            objectId: oid,
            displayName: claims.name,
            roles: Set(mapping.roles(in: claims)),
            authContexts: mapping.authContexts(in: claims),
            isApplication: isApplication,
            scheme: "bearerAuth"
        )
    }

    // MARK: Keys

    /// The current key set, refreshed first when `kid` is unknown, remote, and the last such
    /// refresh is older than ``unknownKidRefreshInterval``. A refresh already running is joined.
    private func keySet(containing kid: String) async -> TrustedKeySet {
        if keys.entries[kid] != nil || fetcher == nil { return keys }
        if let running = refreshInFlight {
            await running.value
            return keys
        }
        let now = ContinuousClock.now
        if let last = lastUnknownKidRefresh, now - last < unknownKidRefreshInterval { return keys }
        lastUnknownKidRefresh = now
        logger.info(
            "token names an unknown signing key; refreshing the JWKS",
            metadata: ["kid": "\(Self.printable(kid, limit: 64))"])
        if let task = startRefresh() { await task.value }
        return keys
    }

    /// Re-fetches the JWKS (remote mode). When the issuer cannot be reached or answers with an
    /// unusable document, the last good key set stays in force. Concurrent calls share one fetch.
    public func refreshKeys() async {
        guard let task = startRefresh() else { return }
        await task.value
    }

    /// The refresh in flight, or a new one; nil in local-keys mode. Synchronous on the actor,
    /// so two callers can never start two fetches.
    private func startRefresh() -> Task<Void, Never>? {
        guard let fetcher else { return nil }
        if let running = refreshInFlight { return running }
        // The task body runs on this actor, so it cannot start before the assignment below.
        let task = Task {
            await self.performRefresh(fetcher)
            self.refreshInFlight = nil
        }
        refreshInFlight = task
        return task
    }

    private func performRefresh(_ fetcher: JWKSFetcher) async {
        do {
            let url: URL
            if let known = jwksURL {
                url = known
            } else {
                url = try await fetcher.resolveJWKSURL()
                jwksURL = url
            }
            let fresh = try await fetcher.fetchKeys(from: url)
            let previous = Set(keys.kids)
            keys = fresh
            verified.invalidate()
            lastSuccessfulRefresh = .now
            lastRefreshFailed = false
            if previous != Set(fresh.kids) {
                logger.info("issuer signing keys changed", metadata: ["kids": "\(fresh.kids)"])
            } else {
                logger.debug("issuer signing keys refreshed", metadata: ["kids": "\(fresh.kids)"])
            }
        } catch {
            lastRefreshFailed = true
            // Rediscover next time, in case the issuer moved its keys.
            if configuration.jwksURL == nil { jwksURL = nil }
            logger.warning(
                "could not refresh issuer signing keys; keeping the last good set",
                metadata: ["error": "\(error)", "kids": "\(keys.kids)"])
        }
    }

    /// Runs ``refreshKeys()`` every ``AuthConfiguration/refreshInterval`` (sooner after a failure)
    /// until the task is cancelled. In local-keys mode it just waits for cancellation, so it can
    /// be run as a service either way.
    public func runRefreshLoop() async {
        while !Task.isCancelled {
            let wait =
                lastRefreshFailed ? min(failedRefreshRetryInterval, configuration.refreshInterval) : configuration.refreshInterval
            do {
                try await Task.sleep(for: fetcher == nil ? .seconds(86_400) : wait)
            } catch {
                return
            }
            await refreshKeys()
        }
    }

    /// The kids currently trusted (diagnostics, tests).
    public var trustedKeyIds: [String] { keys.kids }

    // MARK: Parsing helpers

    struct Header: Decodable {
        var alg: String?
        var kid: String?
        var crit: [String]?
    }

    static func decodeHeader(_ token: String) throws -> Header {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else { throw fail("token is malformed") }
        guard let data = base64URLDecode(parts[0]), let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw fail("token is malformed")
        }
        return header
    }

    static func base64URLDecode(_ text: Substring) -> Data? {
        var s = String(text).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        switch s.utf8.count % 4 {
        case 2: s += "=="
        case 3: s += "="
        case 0: break
        default: return nil
        }
        return Data(base64Encoded: s)
    }

    static func fail(_ reason: String) -> AuthenticationFailure {
        AuthenticationFailure(error: "invalid_token", description: reason)
    }

    /// A header value safe to echo in a reason: short, letters/digits/`-`/`_` only.
    static func printable(_ value: String, limit: Int = 16) -> String {
        let allowed = value.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_") }
        return allowed && value.count <= limit && !value.isEmpty ? value : "(unrecognised)"
    }
}
