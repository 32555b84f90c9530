import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdTesting
import SitrepRuntime
import Testing

@testable import Auth

/// The identity checks run against two issuer profiles: Entra ID's token shape (`oid`, `roles`,
/// `acrs`) and a standard OIDC issuer's, as Keycloak issues them (`sub`, `realm_access.roles`,
/// `acr`, no tenant, no `scp`), both over discovery and JWKS like a real issuer. Moving between
/// them is configuration only (``ClaimMapping``, `SITREP_OIDC_CLAIMS`).
@Suite("Auth: issuer profiles")
struct IssuerProfileTests {
    enum Profile: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case entra, keycloak

        var testDescription: String { rawValue }

        var mapping: ClaimMapping { self == .entra ? .entra : .standard }

        /// A user token's claims in this issuer's shape.
        func user(
            issuer: String, subject: String = "6f1c1f2e-8d0a-4e57-9c55-0c5a3c1f0a11", roles: [String], mfa: Bool,
            expiresIn: Double = 3600
        ) -> AccessTokenClaims {
            let now = Date().timeIntervalSince1970.rounded(.down)
            var c = AccessTokenClaims(
                iss: issuer, aud: [DevIssuer.audience], name: "Amina Executive", azp: DevIssuer.clientId, iat: now, nbf: now,
                exp: now + expiresIn)
            switch self {
            case .entra:
                c.tid = DevIssuer.tenantId
                c.oid = subject
                c.sub = "pairwise-subject"
                c.scp = "access_as_user"
                c.roles = roles
                c.acrs = mfa ? ["c1"] : nil
                c.ver = "2.0"
            case .keycloak:
                c.sub = subject
                c.realmAccess = .init(roles: roles + ["offline_access", "uma_authorization"])
                c.acr = mfa ? "c1" : "1"
                c.amr = mfa ? ["pwd", "otp"] : ["pwd"]
            }
            return c
        }
    }

    static func start(_ profile: Profile) async throws -> (AuthTestIssuer, JWTAuthenticator) {
        let local = try await AuthTestIssuer.start(publicKeys: ["k1": AuthFixtures.primaryPublicKey])
        var configuration = local.configuration
        configuration.claims = profile.mapping
        if profile == .keycloak { configuration.tenantId = nil }
        let auth = try await JWTAuthenticator(configuration: configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        return (local, auth)
    }

    @Test(arguments: Profile.allCases)
    func aUserTokenMapsToThePrincipal(_ profile: Profile) async throws {
        let (local, auth) = try await Self.start(profile)
        defer { Task { await local.stop() } }
        let token = try await AuthFixtures.sign(profile.user(issuer: local.issuer, roles: ["Sitrep.Executive"], mfa: true), kid: "k1")
        let p = try await auth.authenticate(bearerToken: token)
        #expect(p.objectId == "6f1c1f2e-8d0a-4e57-9c55-0c5a3c1f0a11")
        #expect(p.roles.contains("Sitrep.Executive"))
        #expect(p.authContexts.contains("c1"))
        #expect(!p.isApplication)
        #expect(p.displayName == "Amina Executive")

        let plain = try await AuthFixtures.sign(profile.user(issuer: local.issuer, roles: ["Sitrep.Viewer"], mfa: false), kid: "k1")
        let q = try await auth.authenticate(bearerToken: plain)
        #expect(q.roles.contains("Sitrep.Viewer") && !q.roles.contains("Sitrep.Executive"))
        #expect(!q.authContexts.contains("c1"))
    }

    @Test(arguments: Profile.allCases)
    func rolesInTheOtherProfilesPlaceDoNotCount(_ profile: Profile) async throws {
        let (local, auth) = try await Self.start(profile)
        defer { Task { await local.stop() } }
        var claims = profile.user(issuer: local.issuer, roles: [], mfa: true)
        switch profile {
        case .entra: claims.realmAccess = .init(roles: ["Sitrep.Admin"])
        case .keycloak: claims.roles = ["Sitrep.Admin"]
        }
        let p = try await auth.authenticate(bearerToken: try await AuthFixtures.sign(claims, kid: "k1"))
        #expect(!p.roles.contains("Sitrep.Admin"))
    }

    @Test(arguments: Profile.allCases)
    func invalidTokensAreRefused(_ profile: Profile) async throws {
        let (local, auth) = try await Self.start(profile)
        defer { Task { await local.stop() } }
        func refused(_ edit: (inout AccessTokenClaims) -> Void, _ reason: String) async throws {
            var claims = profile.user(issuer: local.issuer, roles: ["Sitrep.Admin"], mfa: true)
            edit(&claims)
            await AuthFixtures.expectRefused(try await AuthFixtures.sign(claims, kid: "k1"), reason, by: auth)
        }
        try await refused({ $0.iss = "https://idp.example.org/realms/other" }, "token issuer is not trusted")
        try await refused({ $0.aud = ["account"] }, "token audience does not match")
        try await refused({ $0.exp = Date().timeIntervalSince1970 - 3600 }, "token expired")
        switch profile {
        case .entra:
            try await refused({ $0.oid = nil }, "token has no object id (oid)")
            try await refused({ $0.tid = "99999999-0000-4000-8000-000000000009" }, "token tenant is not trusted")
        case .keycloak:
            try await refused({ $0.sub = nil }, "token has no subject (sub)")
        }
        // Signed by a key the issuer does not publish.
        let forged = try await AuthFixtures.sign(
            profile.user(issuer: local.issuer, roles: ["Sitrep.Admin"], mfa: true), kid: "k1", privateKey: AuthFixtures.secondPrivateKey)
        await AuthFixtures.expectRefused(forged, "token signature is invalid", by: auth)
    }

    @Test(arguments: Profile.allCases)
    func applicationTokens(_ profile: Profile) async throws {
        let (local, auth) = try await Self.start(profile)
        defer { Task { await local.stop() } }
        var claims = profile.user(issuer: local.issuer, roles: ["Sitrep.Ingest"], mfa: false)
        claims.idtyp = "app"
        claims.scp = nil
        let p = try await auth.authenticate(bearerToken: try await AuthFixtures.sign(claims, kid: "k1"))
        #expect(p.isApplication && p.id == "app:\(DevIssuer.clientId)")
        // Without idtyp: Entra's scope-less tokens are applications, a standard issuer's are not
        // (they have no scp at all), so every Keycloak user is still a person of their own.
        var user = profile.user(issuer: local.issuer, roles: ["Sitrep.Viewer"], mfa: false)
        user.scp = nil
        let q = try await auth.authenticate(bearerToken: try await AuthFixtures.sign(user, kid: "k1"))
        #expect(q.isApplication == (profile == .entra))
    }

    @Test func theMFAClaimCanBeTheMethodsList() async throws {
        let local = try await AuthTestIssuer.start(publicKeys: ["k1": AuthFixtures.primaryPublicKey])
        defer { Task { await local.stop() } }
        var configuration = local.configuration
        configuration.tenantId = nil
        configuration.claims = .standard
        configuration.claims.mfa = .amr
        configuration.claims.roles = "resource_access.sitrep-api.roles"
        let auth = try await JWTAuthenticator(configuration: configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        var claims = Profile.keycloak.user(issuer: local.issuer, roles: [], mfa: true)
        claims.resourceAccess = ["sitrep-api": .init(roles: ["Sitrep.Executive"]), "account": .init(roles: ["manage-account"])]
        let p = try await auth.authenticate(bearerToken: try await AuthFixtures.sign(claims, kid: "k1"))
        #expect(p.roles == ["Sitrep.Executive"])
        #expect(p.authContexts == ["pwd", "otp"])
        #expect(ClaimMapping.rolesPathProblem("resource_access.sitrep-api.roles") == nil)
        #expect(ClaimMapping.rolesPathProblem("groups") != nil)
        #expect(ClaimMapping.rolesPathProblem("resource_access..roles") != nil)
    }

    /// The whole service on the standard profile: roles from `realm_access`, step-up from `acr`,
    /// and RFC 9470's challenge when it is missing.
    @Test func theServiceRunsOnAStandardIssuer() async throws {
        try await SitrepHarness.with(claims: .standard) { client, _ in
            let pem = try DevIssuer.loadOrCreatePrivateKey(at: SitrepHarness.keyPath)
            func token(_ roles: [String], mfa: Bool, subject: String) async throws -> String {
                try await DevIssuer.sign(
                    Profile.keycloak.user(issuer: DevIssuer.issuer, subject: subject, roles: roles, mfa: mfa), privateKeyPEM: pem,
                    kid: DevIssuer.keyId)
            }
            let executive = try await token(["Sitrep.Executive"], mfa: false, subject: "kc-exec")
            let executiveMFA = try await token(["Sitrep.Executive"], mfa: true, subject: "kc-exec")
            let viewer = try await token(["Sitrep.Viewer"], mfa: false, subject: "kc-viewer")

            let me = try await client.execute(uri: "/v1/me", method: .get, headers: .auth(executiveMFA))
            #expect(me.status == .ok, "\(me.text)")
            #expect(me.text.contains("Sitrep.Executive") && me.text.contains("\"mfa\":true"))

            let change = buffer(#"{"level":"elevated","rationale":"Keycloak drill"}"#)
            let etag = try await client.execute(uri: "/v1/posture/cyber", method: .get, headers: .auth(viewer)).headers[.eTag]
            let stepUp = try await client.execute(
                uri: "/v1/posture/cyber", method: .put, headers: .auth(executive, json: true, ifMatch: etag), body: change)
            #expect(stepUp.status == .unauthorized && stepUp.problemCode == "auth.step_up_required")
            let challenge = stepUp.headers[.wwwAuthenticate] ?? ""
            #expect(challenge.contains("error=\"insufficient_user_authentication\"") && challenge.contains("acr_values=\"c1\""))
            let done = try await client.execute(
                uri: "/v1/posture/cyber", method: .put, headers: .auth(executiveMFA, json: true, ifMatch: etag), body: change)
            #expect(done.status == .ok, "\(done.text)")

            let forbidden = try await client.execute(
                uri: "/v1/posture/cyber", method: .put, headers: .auth(viewer, json: true, ifMatch: etag), body: change)
            #expect(forbidden.status == .forbidden)
            // An Entra-shaped token (top-level roles, oid) carries no roles here.
            let entraShaped = try await DevIssuer.token(
                privateKeyPEM: pem, roles: ["Sitrep.Admin"], user: "entra-admin", name: nil, mfa: true, app: false)
            let refused = try await client.execute(uri: "/v1/me", method: .get, headers: .auth(entraShaped))
            #expect(refused.status == .forbidden || !refused.text.contains("Sitrep.Admin"))
        }
    }
}
