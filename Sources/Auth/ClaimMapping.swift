/// Which claims of an access token say who the caller is, which roles they hold and how they
/// signed in. Entra ID (Azure AD) and a standard OIDC issuer such as Keycloak put the same facts
/// in different claims; moving between them is configuration, not code.
public struct ClaimMapping: Sendable, Equatable {
    /// The claim naming the person or application: Entra's `oid` (stable across applications)
    /// or the standard `sub`.
    public enum UserID: String, Sendable, CaseIterable {
        case oid, sub
    }

    /// Where MFA (the step-up authentication context) is read from, and so how a step-up is
    /// asked for.
    public enum MFA: String, Sendable, CaseIterable {
        /// Entra's Conditional Access authentication contexts (`acrs`, a list); step-up is a
        /// `claims` challenge.
        case acrs
        /// The OIDC `acr` claim (a single value, e.g. a Keycloak level of assurance); step-up is
        /// RFC 9470's `insufficient_user_authentication` with `acr_values`.
        case acr
        /// The `amr` list (methods used, e.g. `mfa`, `otp`); step-up as for `acr`.
        case amr
    }

    public var userId: UserID
    /// Where the role names are: `roles` (a top-level list, Entra app roles),
    /// `realm_access.roles` (Keycloak realm roles) or `resource_access.<client>.roles` (Keycloak
    /// client roles).
    public var roles: String
    public var mfa: MFA
    /// Entra marks application (client-credentials) tokens with `idtyp=app` or by having no `scp`.
    /// Issuers without `scp` must not treat every token as an application: there only
    /// `idtyp=app` does.
    public var tokensWithoutScopeAreApplications: Bool

    public init(userId: UserID, roles: String, mfa: MFA, tokensWithoutScopeAreApplications: Bool) {
        self.userId = userId
        self.roles = roles
        self.mfa = mfa
        self.tokensWithoutScopeAreApplications = tokensWithoutScopeAreApplications
    }

    /// Entra ID access tokens (v2): `oid`, `roles`, `acrs`.
    public static let entra = ClaimMapping(userId: .oid, roles: "roles", mfa: .acrs, tokensWithoutScopeAreApplications: true)
    /// A standard OIDC issuer such as Keycloak: `sub`, realm roles, `acr`.
    public static let standard = ClaimMapping(
        userId: .sub, roles: "realm_access.roles", mfa: .acr, tokensWithoutScopeAreApplications: false)

    /// Why `path` is not a roles location this mapping can read, or nil.
    public static func rolesPathProblem(_ path: String) -> String? {
        if path == "roles" || path == "realm_access.roles" { return nil }
        let parts = path.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "resource_access", !parts[1].isEmpty, parts[2] == "roles" { return nil }
        return "expected roles, realm_access.roles or resource_access.<client>.roles"
    }

    /// The roles `claims` carry under this mapping.
    func roles(in claims: AccessTokenClaims) -> [String] {
        switch roles {
        case "roles": return claims.roles ?? []
        case "realm_access.roles": return claims.realmAccess?.roles ?? []
        default:
            let client = roles.split(separator: ".")[1]
            return claims.resourceAccess?[String(client)]?.roles ?? []
        }
    }

    /// The authentication contexts (or levels, or methods) `claims` carry under this mapping.
    func authContexts(in claims: AccessTokenClaims) -> Set<String> {
        switch mfa {
        case .acrs: Set(claims.acrs ?? [])
        case .acr: claims.acr.map { [$0] } ?? []
        case .amr: Set(claims.amr ?? [])
        }
    }
}
