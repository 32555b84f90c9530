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
    /// Which claims carry the user id, roles and MFA (Entra ID's by default).
    public var claims: ClaimMapping

    public init(
        issuer: String,
        audience: String,
        tenantId: String? = nil,
        jwksURL: URL? = nil,
        clockSkew: Duration = .seconds(300),
        refreshInterval: Duration = .seconds(3600),
        claims: ClaimMapping = .entra
    ) {
        self.claims = claims
        self.issuer = issuer
        self.audience = audience
        self.tenantId = tenantId
        self.jwksURL = jwksURL
        self.clockSkew = clockSkew
        self.refreshInterval = refreshInterval
    }

    /// The tenant a principal belongs to when the token names none (standard OIDC issuers have
    /// no `tid`): the configured ``tenantId``, else the issuer's last path segment (a Keycloak
    /// realm, `https://idp/realms/sitrep` → `sitrep`; a version segment such as `v2.0` skipped),
    /// else its host; at most 100 characters.
    public var tenantLabel: String {
        if let tenantId { return tenantId }
        let url = URL(string: issuer)
        // Entra's `/<tenant>/v2.0`: the version is not the tenant.
        let segments = (url?.path.split(separator: "/") ?? []).filter { s in
            !(s.first == "v" && s.dropFirst().allSatisfy { $0.isNumber || $0 == "." } && s.count > 1)
        }
        let label: String = segments.last.map { String($0) } ?? url?.host ?? issuer
        return String(label.prefix(100))
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
