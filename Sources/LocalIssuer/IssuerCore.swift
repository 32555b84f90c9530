import Auth
import Foundation
import Hummingbird
import JWTKit
import Logging
import NIOCore
import SitrepRuntime
import Synchronization

/// The endpoint URLs of a local issuer listening at `base` (`http://127.0.0.1:<port>`), laid out
/// as Azure AD lays out a tenant's.
struct IssuerURLs: Sendable, Equatable {
    var base: String
    var tenant: String

    static func issuerPath(_ tenant: String) -> String { "/\(tenant)/v2.0" }
    static func discoveryPath(_ tenant: String) -> String { issuerPath(tenant) + "/.well-known/openid-configuration" }
    static func authorizePath(_ tenant: String) -> String { "/\(tenant)/oauth2/v2.0/authorize" }
    static func tokenPath(_ tenant: String) -> String { "/\(tenant)/oauth2/v2.0/token" }
    static func jwksPath(_ tenant: String) -> String { "/\(tenant)/discovery/v2.0/keys" }

    var issuer: String { base + Self.issuerPath(tenant) }
    var discovery: String { base + Self.discoveryPath(tenant) }
    var authorize: String { base + Self.authorizePath(tenant) }
    var token: String { base + Self.tokenPath(tenant) }
    var jwks: String { base + Self.jwksPath(tenant) }
}

/// A signing key, parsed once.
struct SigningKey: Sendable {
    var kid: String
    var key: JWTKit.Insecure.RSA.PrivateKey

    init(privateKeyPEM: String, kid: String) throws {
        guard !kid.isEmpty else { throw LocalIssuerError("the key id is empty") }
        do {
            key = try JWTKit.Insecure.RSA.PrivateKey(pem: privateKeyPEM)
        } catch {
            throw LocalIssuerError("not an RSA private key of 2048 bits or more")
        }
        self.kid = kid
    }
}

/// The state and request handling of a local issuer, shared by its routes and its controls.
final class IssuerCore: Sendable {
    /// An authorization code not yet redeemed.
    struct PendingCode: Sendable {
        var clientId: String
        var redirectURI: String
        var codeChallenge: String
        var nonce: String?
        var user: String
        var mfa: Bool
        var scope: String
        /// Every refresh token descending from this code; revoked together if the code is replayed.
        var family: String
        var expiresAt: Int64
    }

    /// What a refresh token stands for.
    struct RefreshGrant: Sendable {
        var user: String
        var mfa: Bool
        var scope: String
        var family: String
        var expiresAt: Int64
    }

    struct RedeemedCode: Sendable {
        var family: String
        var expiresAt: Int64
    }

    struct State: Sendable {
        var base = ""
        var signingKey: SigningKey
        /// kid → public key PEM: every key ever used by this issuer, so tokens signed before a
        /// rotation still verify.
        var publicKeys: [String: String]
        var jwks: String
        var alwaysMFA = false
        var accessTokenLifetime: Duration
        var codes: [String: PendingCode] = [:]
        var redeemedCodes: [String: RedeemedCode] = [:]
        var refreshTokens: [String: RefreshGrant] = [:]
        var tokenRequests = 0
        /// The `traceparent` header of each JWKS request, in order (nil when it had none).
        var jwksTraceparents: [String?] = []
    }

    let configuration: LocalIssuerConfiguration
    let logger: Logger
    let state: Mutex<State>

    init(configuration: LocalIssuerConfiguration, logger: Logger) throws {
        let tenantCharacters = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._")
        guard !configuration.tenantId.isEmpty,
            configuration.tenantId.unicodeScalars.allSatisfy({ tenantCharacters.contains($0) })
        else {
            throw LocalIssuerError("tenant id \"\(configuration.tenantId)\" must be letters, digits, '.', '_' or '-'")
        }
        guard !configuration.clientId.isEmpty else { throw LocalIssuerError("the client id is empty") }
        guard !configuration.apiAudience.isEmpty else { throw LocalIssuerError("the API audience is empty") }
        let signingKey = try SigningKey(privateKeyPEM: configuration.privateKeyPEM, kid: configuration.keyId)
        let publicKeys = [configuration.keyId: try Self.publicKeyPEM(configuration.privateKeyPEM)]
        self.configuration = configuration
        self.logger = logger
        self.state = Mutex(
            State(
                signingKey: signingKey, publicKeys: publicKeys, jwks: try Self.jwks(publicKeys),
                accessTokenLifetime: configuration.accessTokenLifetime))
    }

    static func publicKeyPEM(_ privateKeyPEM: String) throws -> String {
        do {
            return try DevIssuer.publicKeyPEM(fromPrivateKeyPEM: privateKeyPEM)
        } catch {
            throw LocalIssuerError("not an RSA private key of 2048 bits or more")
        }
    }

    static func jwks(_ publicKeys: [String: String]) throws -> String {
        do {
            return try DevIssuer.jwksJSON(publicKeysPEM: publicKeys)
        } catch {
            throw LocalIssuerError("cannot publish the signing keys: \(error)")
        }
    }

    var urls: IssuerURLs {
        IssuerURLs(base: state.withLock { $0.base }, tenant: configuration.tenantId)
    }

    // MARK: Controls

    func rotateKey(privateKeyPEM: String, keyId: String) throws {
        let signingKey = try SigningKey(privateKeyPEM: privateKeyPEM, kid: keyId)
        let publicKey = try Self.publicKeyPEM(privateKeyPEM)
        // Build the new JWKS outside the lock, then publish it with the key only if no other
        // rotation happened meanwhile (otherwise redo with the newer key set).
        while true {
            var publicKeys = state.withLock { $0.publicKeys }
            let before = publicKeys
            publicKeys[keyId] = publicKey
            let jwks = try Self.jwks(publicKeys)
            let published = state.withLock { s in
                guard s.publicKeys == before else { return false }
                s.publicKeys = publicKeys
                s.jwks = jwks
                s.signingKey = signingKey
                return true
            }
            if published { break }
        }
        logger.info("local issuer rotated its signing key", metadata: ["kid": "\(keyId)"])
    }

    // MARK: Routes

    /// W3C Trace Context's header, recorded on JWKS requests.
    static let traceparent = HTTPFields.Element.Name("traceparent")!

    func addRoutes(to router: Router<BasicRequestContext>) {
        let tenant = configuration.tenantId
        router.get(RouterPath(IssuerURLs.discoveryPath(tenant))) { _, _ in self.discovery() }
        router.get(RouterPath(IssuerURLs.jwksPath(tenant))) { request, _ in
            let traceparent = request.headers[values: Self.traceparent].first
            return Self.jsonResponse(
                self.state.withLock {
                    $0.jwksTraceparents.append(traceparent)
                    return $0.jwks
                })
        }
        router.get(RouterPath(IssuerURLs.authorizePath(tenant))) { request, _ in self.authorize(request) }
        router.post(RouterPath(IssuerURLs.tokenPath(tenant))) { request, _ in await self.token(request) }
    }

    // MARK: Discovery

    struct DiscoveryDocument: Encodable {
        var issuer: String
        var authorization_endpoint: String
        var token_endpoint: String
        var jwks_uri: String
        var response_types_supported = ["code"]
        var response_modes_supported = ["query"]
        var grant_types_supported = ["authorization_code", "refresh_token"]
        var code_challenge_methods_supported = ["S256"]
        var subject_types_supported = ["public"]
        var id_token_signing_alg_values_supported = ["RS256"]
        var token_endpoint_auth_methods_supported = ["client_secret_post", "client_secret_basic", "none"]
        var scopes_supported = ["openid", "profile", "email", "offline_access"]
        var claims_supported = [
            "iss", "aud", "sub", "oid", "tid", "name", "preferred_username", "nonce", "acrs", "roles", "iat", "nbf", "exp",
            "ver",
        ]
        var claims_parameter_supported = true
        var request_uri_parameter_supported = false
    }

    func discovery() -> Response {
        let urls = self.urls
        let document = DiscoveryDocument(
            issuer: urls.issuer, authorization_endpoint: urls.authorize, token_endpoint: urls.token, jwks_uri: urls.jwks)
        return Self.jsonResponse(Self.encode(document))
    }

    // MARK: Authorization endpoint

    /// Signs the hinted user in at once (there is no login page) and redirects back with a code.
    /// Requests that cannot be trusted to redirect (unknown client, bad redirect URI) or that break
    /// the contract (not `code`, no S256 PKCE) are refused with 400 instead.
    func authorize(_ request: Request) -> Response {
        let parameters: [String: String]
        do {
            parameters = try FormEncoding.decode(request.uri.query ?? "")
        } catch .repeated(let name) {
            return Self.oauthError(.badRequest, "invalid_request", "parameter \(name) is repeated")
        } catch {
            return Self.oauthError(.badRequest, "invalid_request", "the query string is not valid URL encoding")
        }
        guard parameters["client_id"] == configuration.clientId else {
            return Self.oauthError(.badRequest, "invalid_request", "unknown client_id")
        }
        guard let redirectURI = parameters["redirect_uri"], Self.isAcceptableRedirect(redirectURI) else {
            return Self.oauthError(.badRequest, "invalid_request", "redirect_uri must be an absolute http(s) URL without a fragment")
        }
        guard parameters["response_type"] == "code" else {
            return Self.oauthError(.badRequest, "invalid_request", "response_type must be code")
        }
        guard let challenge = parameters["code_challenge"], PKCE.isWellFormed(challenge) else {
            return Self.oauthError(.badRequest, "invalid_request", "code_challenge is required (PKCE)")
        }
        guard parameters["code_challenge_method"] == "S256" else {
            return Self.oauthError(.badRequest, "invalid_request", "code_challenge_method must be S256")
        }
        let state = parameters["state"]

        var mfa = false
        if let claims = parameters["claims"] {
            guard let contexts = Self.requestedAuthContexts(claims) else {
                return Self.redirect(
                    to: redirectURI,
                    [("error", "invalid_request"), ("error_description", "the claims parameter is not a JSON object")], state: state)
            }
            mfa = contexts.contains(configuration.stepUpContext)
        }

        var user = parameters["login_hint"] ?? configuration.defaultUser
        if configuration.users[user] == nil, user.lowercased().hasSuffix("@sitrep.local") {
            user = String(user.dropLast("@sitrep.local".count))
        }
        guard configuration.users[user] != nil else {
            logger.info("local issuer refused sign-in of an unknown user", metadata: ["user": "\(user)"])
            return Self.redirect(
                to: redirectURI,
                [("error", "access_denied"), ("error_description", "no user \(user) is configured in the local issuer")],
                state: state)
        }

        let code = randomToken()
        let pending = PendingCode(
            clientId: configuration.clientId, redirectURI: redirectURI, codeChallenge: challenge, nonce: parameters["nonce"],
            user: user, mfa: mfa, scope: parameters["scope"] ?? "openid", family: randomToken(),
            expiresAt: unixNow() + configuration.authorizationCodeLifetime.wholeSeconds)
        self.state.withLock { s in
            Self.prune(&s, now: unixNow())
            s.codes[code] = pending
        }
        logger.debug("local issuer signed a user in", metadata: ["user": "\(user)", "mfa": "\(mfa)"])
        return Self.redirect(to: redirectURI, [("code", code)], state: state)
    }

    static func isAcceptableRedirect(_ uri: String) -> Bool {
        guard let components = URLComponents(string: uri), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty,
            components.fragment == nil
        else { return false }
        return true
    }

    /// The authentication contexts an OIDC `claims` request asks for in `acrs` (`value` or
    /// `values`, under `access_token` or `id_token`). Nil when the parameter is not a JSON object.
    static func requestedAuthContexts(_ claims: String) -> Set<String>? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(claims.utf8)) as? [String: Any] else {
            return nil
        }
        var contexts: Set<String> = []
        for member in ["access_token", "id_token"] {
            guard let requested = object[member] as? [String: Any], let acrs = requested["acrs"] as? [String: Any] else {
                continue
            }
            if let value = acrs["value"] as? String { contexts.insert(value) }
            if let values = acrs["values"] as? [String] { contexts.formUnion(values) }
        }
        return contexts
    }

    /// A 302 to `uri` with `parameters` (and `state` when given) added to its query.
    static func redirect(to uri: String, _ parameters: [(String, String)], state: String?) -> Response {
        var components = URLComponents(string: uri)!
        var pairs = parameters
        if let state { pairs.append(("state", state)) }
        let added = FormEncoding.encode(pairs)
        if let existing = components.percentEncodedQuery, !existing.isEmpty {
            components.percentEncodedQuery = existing + "&" + added
        } else {
            components.percentEncodedQuery = added
        }
        return Response(
            status: .found,
            headers: [.location: components.string ?? uri, .cacheControl: "no-store"])
    }

    // MARK: Token endpoint

    struct TokenResponse: Encodable {
        var token_type = "Bearer"
        var access_token: String
        var id_token: String
        var refresh_token: String
        var expires_in: Int64
        var scope: String
    }

    func token(_ request: Request) async -> Response {
        state.withLock { $0.tokenRequests += 1 }
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/x-www-form-urlencoded") else {
            return Self.oauthError(.badRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 64 * 1024)
        } catch {
            return Self.oauthError(.badRequest, "invalid_request", "the body is too large or could not be read")
        }
        let parameters: [String: String]
        do {
            parameters = try FormEncoding.decode(String(buffer: body))
        } catch .repeated(let name) {
            return Self.oauthError(.badRequest, "invalid_request", "parameter \(name) is repeated")
        } catch {
            return Self.oauthError(.badRequest, "invalid_request", "the body is not valid URL encoding")
        }

        if let failure = authenticateClient(request, parameters) { return failure }

        switch parameters["grant_type"] {
        case nil:
            return Self.oauthError(.badRequest, "invalid_request", "grant_type is required")
        case "authorization_code":
            return await redeemCode(parameters)
        case "refresh_token":
            return await refresh(parameters)
        case .some(let other):
            return Self.oauthError(.badRequest, "unsupported_grant_type", "grant_type \(other) is not supported")
        }
    }

    /// Nil when the client is the configured one and, if a secret is configured, presented it
    /// (`client_secret_post` or `client_secret_basic`, not both); otherwise the error response.
    func authenticateClient(_ request: Request, _ parameters: [String: String]) -> Response? {
        var basic: (id: String, secret: String)?
        if let authorization = request.headers[.authorization] {
            guard authorization.count > 6, authorization.prefix(6).lowercased() == "basic ",
                let decoded = Data(base64Encoded: String(authorization.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
                let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":"),
                let id = FormEncoding.component(text[..<colon]),
                let secret = FormEncoding.component(text[text.index(after: colon)...])
            else {
                return Self.invalidClient("the Authorization header is not valid HTTP Basic client authentication")
            }
            basic = (id, secret)
        }
        if basic != nil, parameters["client_secret"] != nil {
            return Self.oauthError(.badRequest, "invalid_request", "use one client authentication method, not two")
        }
        if let basic, let formId = parameters["client_id"], formId != basic.id {
            return Self.invalidClient("client_id does not match the HTTP Basic credentials")
        }
        guard let clientId = basic?.id ?? parameters["client_id"] else {
            return Self.oauthError(.badRequest, "invalid_request", "client_id is required")
        }
        guard constantTimeEqual(clientId, configuration.clientId) else {
            return Self.invalidClient("unknown client")
        }
        if let expected = configuration.clientSecret {
            guard let secret = basic?.secret ?? parameters["client_secret"], constantTimeEqual(secret, expected) else {
                return Self.invalidClient("client authentication failed")
            }
        }
        return nil
    }

    func redeemCode(_ parameters: [String: String]) async -> Response {
        guard let code = parameters["code"], let redirectURI = parameters["redirect_uri"],
            let verifier = parameters["code_verifier"]
        else {
            return Self.oauthError(.badRequest, "invalid_request", "code, redirect_uri and code_verifier are required")
        }
        let now = unixNow()
        // Single use: the code is gone from the first attempt on, whatever its outcome. A replayed
        // code also revokes the refresh tokens it led to (RFC 6749 §4.1.2).
        let pending: PendingCode? = state.withLock { s in
            Self.prune(&s, now: now)
            if let pending = s.codes.removeValue(forKey: code) {
                s.redeemedCodes[code] = RedeemedCode(family: pending.family, expiresAt: pending.expiresAt)
                return pending
            }
            if let replayed = s.redeemedCodes[code] {
                s.refreshTokens = s.refreshTokens.filter { $0.value.family != replayed.family }
            }
            return nil
        }
        guard let pending, pending.expiresAt > now else {
            return Self.oauthError(.badRequest, "invalid_grant", "the authorization code is invalid, expired or already used")
        }
        guard pending.clientId == configuration.clientId else {
            return Self.oauthError(.badRequest, "invalid_grant", "the authorization code was issued to another client")
        }
        guard pending.redirectURI == redirectURI else {
            return Self.oauthError(.badRequest, "invalid_grant", "redirect_uri does not match the authorization request")
        }
        guard PKCE.verify(verifier: verifier, challenge: pending.codeChallenge) else {
            return Self.oauthError(.badRequest, "invalid_grant", "code_verifier does not match the code_challenge")
        }
        return await issueTokens(
            user: pending.user, mfa: pending.mfa, nonce: pending.nonce, scope: pending.scope, family: pending.family)
    }

    func refresh(_ parameters: [String: String]) async -> Response {
        guard let refreshToken = parameters["refresh_token"] else {
            return Self.oauthError(.badRequest, "invalid_request", "refresh_token is required")
        }
        let now = unixNow()
        // Rotation: the presented token is spent whatever happens next.
        let grant = state.withLock { s in
            Self.prune(&s, now: now)
            return s.refreshTokens.removeValue(forKey: refreshToken)
        }
        guard let grant, grant.expiresAt > now else {
            return Self.oauthError(.badRequest, "invalid_grant", "the refresh token is invalid, expired, revoked or already used")
        }
        return await issueTokens(user: grant.user, mfa: grant.mfa, nonce: nil, scope: grant.scope, family: grant.family)
    }

    /// Signs an access token and an ID token for `user` and records a new refresh token.
    func issueTokens(user: String, mfa requestedMFA: Bool, nonce: String?, scope: String, family: String) async -> Response {
        let now = unixNow()
        let refreshToken = randomToken()
        let refreshExpiry = now + configuration.refreshTokenLifetime.wholeSeconds
        // The refresh token is recorded with the snapshot of the switches, before signing, so a
        // revocation or replay that happens while signing also covers it.
        let (key, lifetime, mfa, base) = state.withLock { s in
            let mfa = requestedMFA || s.alwaysMFA
            s.refreshTokens[refreshToken] = RefreshGrant(
                user: user, mfa: mfa, scope: scope, family: family, expiresAt: refreshExpiry)
            return (s.signingKey, s.accessTokenLifetime, mfa, s.base)
        }
        let urls = IssuerURLs(base: base, tenant: configuration.tenantId)
        let oid = DevIssuer.objectId(forUser: user)
        let name = user.prefix(1).uppercased() + user.dropFirst()
        let username = "\(user)@sitrep.local"
        let roles = configuration.users[user] ?? []
        let acrs = mfa ? [configuration.stepUpContext] : nil
        let exp = now + lifetime.wholeSeconds
        let access = LocalAccessTokenClaims(
            iss: urls.issuer, aud: configuration.apiAudience, tid: configuration.tenantId, oid: oid, sub: oid, name: name,
            preferredUsername: username, azp: configuration.clientId, scp: DevIssuer.userScope,
            roles: roles.isEmpty ? nil : roles, acrs: acrs, ver: "2.0", iat: now, nbf: now, exp: exp)
        let id = LocalIDTokenClaims(
            iss: urls.issuer, aud: configuration.clientId, tid: configuration.tenantId, oid: oid, sub: oid, name: name,
            preferredUsername: username, nonce: nonce, acrs: acrs, ver: "2.0", iat: now, nbf: now, exp: exp)
        let accessToken: String
        let idToken: String
        do {
            let keys = JWTKeyCollection()
            await keys.add(rsa: key.key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: key.kid))
            accessToken = try await keys.sign(access, kid: JWKIdentifier(string: key.kid))
            idToken = try await keys.sign(id, kid: JWKIdentifier(string: key.kid))
        } catch {
            state.withLock { _ = $0.refreshTokens.removeValue(forKey: refreshToken) }
            logger.error("local issuer could not sign a token", metadata: ["error": "\(error)"])
            return Self.oauthError(.internalServerError, "server_error", "the token could not be signed")
        }
        logger.debug("local issuer issued tokens", metadata: ["user": "\(user)", "mfa": "\(mfa)", "kid": "\(key.kid)"])
        let response = TokenResponse(
            access_token: accessToken, id_token: idToken, refresh_token: refreshToken, expires_in: max(0, exp - now),
            scope: scope)
        return Self.jsonResponse(Self.encode(response), headers: [.cacheControl: "no-store"])
    }

    /// Drops expired codes, replay records and refresh tokens.
    static func prune(_ s: inout State, now: Int64) {
        s.codes = s.codes.filter { $0.value.expiresAt > now }
        s.redeemedCodes = s.redeemedCodes.filter { $0.value.expiresAt > now }
        s.refreshTokens = s.refreshTokens.filter { $0.value.expiresAt > now }
    }

    // MARK: Responses

    static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }

    static func jsonResponse(_ body: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// An RFC 6749 §5.2 error body.
    static func oauthError(
        _ status: HTTPResponse.Status, _ error: String, _ description: String, headers: HTTPFields = [:]
    ) -> Response {
        var fields = headers
        fields[.cacheControl] = "no-store"
        return jsonResponse(encode(["error": error, "error_description": description]), status: status, headers: fields)
    }

    static func invalidClient(_ description: String) -> Response {
        oauthError(.unauthorized, "invalid_client", description, headers: [.wwwAuthenticate: #"Basic realm="local-issuer""#])
    }
}
