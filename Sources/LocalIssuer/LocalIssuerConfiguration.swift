import Auth

/// What a ``LocalIssuer`` signs in as and issues: tenant, audiences, the one client it knows,
/// its development users and their app roles, lifetimes, and its signing key.
///
/// The defaults match ``DevIssuer`` (tenant, API audience, client id), so tokens from a local
/// issuer look like the ones `sitrep dev-token` makes, except for the issuer URL.
public struct LocalIssuerConfiguration: Sendable {
    /// The directory (tenant) id: the `tid` claim and the first path segment of every endpoint.
    /// Letters, digits, `.`, `_` and `-` only.
    public var tenantId: String
    /// The `aud` of access tokens: the API's client id or app id URI.
    public var apiAudience: String
    /// The one client (the BFF) allowed to use the issuer: `azp` of access tokens and `aud` of
    /// ID tokens.
    public var clientId: String
    /// When set, the token endpoint requires this secret (form field `client_secret` or HTTP
    /// Basic); when nil the client is public and authenticates with PKCE only.
    public var clientSecret: String?
    /// User name → app roles (the `roles` claim). The name is what `login_hint` selects.
    public var users: [String: [String]]
    /// The user signed in when an authorization request has no `login_hint`.
    public var defaultUser: String
    /// The Conditional Access authentication context that step-up asks for and tokens then carry
    /// in `acrs`.
    public var stepUpContext: String
    /// Lifetime of access and ID tokens (`exp` − `iat`, and the token response's `expires_in`).
    public var accessTokenLifetime: Duration
    /// How long an unused refresh token stays valid.
    public var refreshTokenLifetime: Duration
    /// How long an authorization code can be redeemed.
    public var authorizationCodeLifetime: Duration
    /// The RSA private key (PEM, 2048 bits or more) that signs tokens with RS256.
    public var privateKeyPEM: String
    /// The `kid` of ``privateKeyPEM`` in token headers and the JWKS.
    public var keyId: String

    /// The development users: one per role, and `exec2` holding two.
    public static let defaultUsers: [String: [String]] = [
        "viewer": ["Sitrep.Viewer"],
        "admin": ["Sitrep.Admin"],
        "exec": ["Sitrep.Executive"],
        "exec2": ["Sitrep.Executive", "Sitrep.Viewer"],
    ]

    /// A configuration signing with `privateKeyPEM` under `keyId`; every other setting has the
    /// development default.
    public init(
        privateKeyPEM: String,
        keyId: String = DevIssuer.keyId,
        tenantId: String = DevIssuer.tenantId,
        apiAudience: String = DevIssuer.audience,
        clientId: String = DevIssuer.clientId,
        clientSecret: String? = nil,
        users: [String: [String]] = LocalIssuerConfiguration.defaultUsers,
        defaultUser: String = "viewer",
        stepUpContext: String = "c1",
        accessTokenLifetime: Duration = .seconds(3600),
        refreshTokenLifetime: Duration = .seconds(24 * 3600),
        authorizationCodeLifetime: Duration = .seconds(300)
    ) {
        self.privateKeyPEM = privateKeyPEM
        self.keyId = keyId
        self.tenantId = tenantId
        self.apiAudience = apiAudience
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.users = users
        self.defaultUser = defaultUser
        self.stepUpContext = stepUpContext
        self.accessTokenLifetime = accessTokenLifetime
        self.refreshTokenLifetime = refreshTokenLifetime
        self.authorizationCodeLifetime = authorizationCodeLifetime
    }
}

/// The local issuer could not start: invalid configuration or the address could not be bound.
public struct LocalIssuerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    /// An error with `message`.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
