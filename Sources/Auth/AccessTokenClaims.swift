import Foundation
import JWTKit

/// The claims of an access token that Sitrep reads: Azure AD v2 ones and their standard OIDC /
/// Keycloak counterparts (``ClaimMapping`` says which count).
///
/// Decoding is lenient about shape where issuers differ (`aud`, `roles`, `acrs` as a string or
/// an array; NumericDate as an integer or a fraction) and strict about type otherwise: a claim
/// of the wrong type makes the token malformed. The claim rules (issuer, audience, tenant,
/// lifetime) are checked by ``JWTAuthenticator`` against its configuration, not here.
struct AccessTokenClaims: JWTPayload, Equatable {
    var iss: String?
    var aud: [String]?
    var tid: String?
    var oid: String?
    var sub: String?
    var name: String?
    var azp: String?
    var appid: String?
    var idtyp: String?
    /// Delegated scopes, space-separated. Not roles.
    var scp: String?
    var roles: [String]?
    var acrs: [String]?
    /// Standard OIDC: the authentication context class (level of assurance) reached.
    var acr: String?
    /// Standard OIDC: the authentication methods used.
    var amr: [String]?
    /// Keycloak: realm roles, `{"roles": [...]}`.
    var realmAccess: RoleList?
    /// Keycloak: client roles by client id.
    var resourceAccess: [String: RoleList]?
    var ver: String?
    var iat: Double?
    var nbf: Double?
    var exp: Double?
    /// ID tokens only: the value the sign-in request sent, echoed back (replay protection).
    var nonce: String?

    init(
        iss: String? = nil, aud: [String]? = nil, tid: String? = nil, oid: String? = nil,
        sub: String? = nil, name: String? = nil, azp: String? = nil, appid: String? = nil,
        idtyp: String? = nil, scp: String? = nil, roles: [String]? = nil, acrs: [String]? = nil,
        ver: String? = nil, iat: Double? = nil, nbf: Double? = nil, exp: Double? = nil
    ) {
        self.iss = iss
        self.aud = aud
        self.tid = tid
        self.oid = oid
        self.sub = sub
        self.name = name
        self.azp = azp
        self.appid = appid
        self.idtyp = idtyp
        self.scp = scp
        self.roles = roles
        self.acrs = acrs
        self.ver = ver
        self.iat = iat
        self.nbf = nbf
        self.exp = exp
    }

    /// `{"roles": [...]}` as Keycloak nests roles.
    struct RoleList: Codable, Equatable, Sendable {
        var roles: [String]?
    }

    enum CodingKeys: String, CodingKey {
        case iss, aud, tid, oid, sub, name, azp, appid, idtyp, scp, roles, acrs, acr, amr, ver, iat, nbf, exp, nonce
        case realmAccess = "realm_access"
        case resourceAccess = "resource_access"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        iss = try c.decodeIfPresent(String.self, forKey: .iss)
        aud = try Self.decodeStrings(c, .aud)
        tid = try c.decodeIfPresent(String.self, forKey: .tid)
        oid = try c.decodeIfPresent(String.self, forKey: .oid)
        sub = try c.decodeIfPresent(String.self, forKey: .sub)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        azp = try c.decodeIfPresent(String.self, forKey: .azp)
        appid = try c.decodeIfPresent(String.self, forKey: .appid)
        idtyp = try c.decodeIfPresent(String.self, forKey: .idtyp)
        scp = try c.decodeIfPresent(String.self, forKey: .scp)
        roles = try Self.decodeStrings(c, .roles)
        acrs = try Self.decodeStrings(c, .acrs)
        acr = try c.decodeIfPresent(String.self, forKey: .acr)
        amr = try Self.decodeStrings(c, .amr)
        realmAccess = try c.decodeIfPresent(RoleList.self, forKey: .realmAccess)
        resourceAccess = try c.decodeIfPresent([String: RoleList].self, forKey: .resourceAccess)
        ver = try c.decodeIfPresent(String.self, forKey: .ver)
        iat = try c.decodeIfPresent(Double.self, forKey: .iat)
        nbf = try c.decodeIfPresent(Double.self, forKey: .nbf)
        exp = try c.decodeIfPresent(Double.self, forKey: .exp)
        nonce = try c.decodeIfPresent(String.self, forKey: .nonce)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(iss, forKey: .iss)
        // A single audience is written as a string, as Azure AD does.
        if let aud {
            if aud.count == 1 { try c.encode(aud[0], forKey: .aud) } else { try c.encode(aud, forKey: .aud) }
        }
        try c.encodeIfPresent(tid, forKey: .tid)
        try c.encodeIfPresent(oid, forKey: .oid)
        try c.encodeIfPresent(sub, forKey: .sub)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encodeIfPresent(azp, forKey: .azp)
        try c.encodeIfPresent(appid, forKey: .appid)
        try c.encodeIfPresent(idtyp, forKey: .idtyp)
        try c.encodeIfPresent(scp, forKey: .scp)
        try c.encodeIfPresent(roles, forKey: .roles)
        try c.encodeIfPresent(acrs, forKey: .acrs)
        try c.encodeIfPresent(acr, forKey: .acr)
        try c.encodeIfPresent(amr, forKey: .amr)
        try c.encodeIfPresent(realmAccess, forKey: .realmAccess)
        try c.encodeIfPresent(resourceAccess, forKey: .resourceAccess)
        try c.encodeIfPresent(ver, forKey: .ver)
        // NumericDate written as whole seconds.
        try c.encodeIfPresent(iat.map { Int64($0.rounded(.down)) }, forKey: .iat)
        try c.encodeIfPresent(nbf.map { Int64($0.rounded(.down)) }, forKey: .nbf)
        try c.encodeIfPresent(exp.map { Int64($0.rounded(.down)) }, forKey: .exp)
        try c.encodeIfPresent(nonce, forKey: .nonce)
    }

    private static func decodeStrings(
        _ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys
    ) throws -> [String]? {
        guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
        if let one = try? c.decode(String.self, forKey: key) { return [one] }
        return try c.decode([String].self, forKey: key)
    }

    /// Claim rules need the authenticator's configuration; they are checked in
    /// ``JWTAuthenticator/principal(from:now:)``.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
