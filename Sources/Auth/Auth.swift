import Foundation

/// How bearer tokens are validated: which issuer, audience and tenant are trusted, and where
/// the issuer's signing keys come from.
///
/// Works with any OIDC issuer that signs RS256 access tokens (Azure AD v2, Keycloak, the
/// development issuer in ``DevIssuer``).
public struct AuthConfiguration: Sendable, Equatable {
    /// The exact `iss` claim expected, e.g. `https://login.microsoftonline.com/{tenant}/v2.0`.
    public var issuer: String
    /// The API's client id or app id URI; the token's `aud` must contain it.
    public var audience: String
    /// When set, the token's `tid` claim must equal it.
    public var tenantId: String?
    /// Where the issuer publishes its signing keys. When nil it is discovered from
    /// `issuer + "/.well-known/openid-configuration"` (`jwks_uri`). Must be `https`, except on a
    /// loopback host (development and tests).
    public var jwksURL: URL?
    /// Leeway applied to `exp` and `nbf`.
    public var clockSkew: Duration
    /// How often ``JWTAuthenticator/runRefreshLoop()`` re-fetches the JWKS.
    public var refreshInterval: Duration

    public init(
        issuer: String,
        audience: String,
        tenantId: String? = nil,
        jwksURL: URL? = nil,
        clockSkew: Duration = .seconds(300),
        refreshInterval: Duration = .seconds(3600)
    ) {
        self.issuer = issuer
        self.audience = audience
        self.tenantId = tenantId
        self.jwksURL = jwksURL
        self.clockSkew = clockSkew
        self.refreshInterval = refreshInterval
    }

    /// The OIDC discovery document's URL for ``issuer``.
    public var discoveryURL: URL? {
        var base = issuer
        while base.hasSuffix("/") { base.removeLast() }
        return URL(string: base + "/.well-known/openid-configuration")
    }
}

/// The authenticator could not be set up: bad configuration, unreachable or invalid issuer
/// metadata, unusable keys. Thrown by the ``JWTAuthenticator`` initialisers and ``DevIssuer``;
/// never by `authenticate` (which throws `AuthenticationFailure`).
public struct AuthSetupError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
