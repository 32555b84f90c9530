import AsyncHTTPClient
import Foundation
import Hummingbird
import JWTKit
import Logging
import SitrepRuntime
import Testing

@testable import Auth

// MARK: - Fixtures

/// Keys made once per test process (RSA generation is slow), in a private temporary directory.
enum AuthFixtures {
    /// Shared across runs (the keys are reused); per-test files under it are removed by their test.
    static let directory = NSTemporaryDirectory() + "sitrep-auth-tests"
    static let primaryPrivateKey: String = try! DevIssuer.loadOrCreatePrivateKey(at: directory + "/primary/dev-issuer.pem")
    static let primaryPublicKey: String = try! DevIssuer.publicKeyPEM(fromPrivateKeyPEM: primaryPrivateKey)
    static let secondPrivateKey: String = try! DevIssuer.loadOrCreatePrivateKey(at: directory + "/second/dev-issuer.pem")
    static let secondPublicKey: String = try! DevIssuer.publicKeyPEM(fromPrivateKeyPEM: secondPrivateKey)

    static let quietLogger = Logger(label: "sitrep.auth.tests", factory: { _ in SwiftLogNoOpLogHandler() })
    static let userObjectId = "6f1c1f2e-8d0a-4e57-9c55-0c5a3c1f0a11"

    /// Claims of a valid user token from the development issuer; `edit` makes it invalid.
    static func claims(
        issuer: String = DevIssuer.issuer, _ edit: (inout AccessTokenClaims) -> Void = { _ in }
    ) -> AccessTokenClaims {
        let now = Date().timeIntervalSince1970.rounded(.down)
        var claims = AccessTokenClaims(
            iss: issuer, aud: [DevIssuer.audience], tid: DevIssuer.tenantId, oid: userObjectId,
            sub: "pairwise-subject", name: "Amina Executive", azp: DevIssuer.clientId,
            scp: "access_as_user", roles: ["Sitrep.Executive"], acrs: ["c1"], ver: "2.0",
            iat: now, nbf: now, exp: now + 3600)
        edit(&claims)
        return claims
    }

    static func sign(
        _ claims: AccessTokenClaims, kid: String = DevIssuer.keyId, privateKey: String = primaryPrivateKey
    ) async throws -> String {
        try await DevIssuer.sign(claims, privateKeyPEM: privateKey, kid: kid)
    }

    static func localAuthenticator(
        configuration: AuthConfiguration = DevIssuer.configuration
    ) async throws -> JWTAuthenticator {
        try await JWTAuthenticator(
            configuration: configuration, publicKeysPEM: [DevIssuer.keyId: primaryPublicKey], logger: quietLogger)
    }

    /// A compact JWS with the given header and payload JSON and raw signature bytes.
    static func compact(header: String, payload: String, signature: [UInt8] = []) -> String {
        DevIssuer.base64URL(Data(header.utf8)) + "." + DevIssuer.base64URL(Data(payload.utf8)) + "."
            + DevIssuer.base64URL(Data(signature))
    }

    static func payloadJSON(_ claims: AccessTokenClaims) throws -> String {
        String(decoding: try JSONEncoder().encode(claims), as: UTF8.self)
    }
}

extension AuthFixtures {
    /// Expects `token` to be refused with `invalid_token` and exactly `description`, and checks the
    /// reason does not leak the token.
    static func expectRefused(
        _ token: String, _ description: String, by authenticator: JWTAuthenticator,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        do {
            let principal = try await authenticator.authenticate(bearerToken: token)
            Issue.record("token was accepted as \(principal.id); expected \"\(description)\"", sourceLocation: sourceLocation)
        } catch let failure as AuthenticationFailure {
            #expect(failure == AuthenticationFailure(error: "invalid_token", description: description), sourceLocation: sourceLocation)
            for part in token.split(separator: ".") where part.count > 8 {
                #expect(!failure.description.contains(part), "reason leaks the token", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }
}

// MARK: - Verified-token cache

@Suite("Auth: verified-token cache")
struct VerifiedTokenCacheTests {
    @Test func aVerifiedTokenIsAnsweredFromTheCacheUntilItExpires() async throws {
        var configuration = DevIssuer.configuration
        configuration.clockSkew = .zero
        let auth = try await AuthFixtures.localAuthenticator(configuration: configuration)
        let now = Date().timeIntervalSince1970.rounded(.down)
        let shortLived = try await AuthFixtures.sign(AuthFixtures.claims { $0.exp = now + 2 })
        let first = try await auth.authenticate(bearerToken: shortLived)
        #expect(auth.verified.count == 1)
        #expect(try await auth.authenticate(bearerToken: shortLived) == first)
        #expect(auth.verified.count == 1)
        // Expiry is re-checked on every hit: once exp has passed the full path refuses the token.
        try await Task.sleep(for: .milliseconds(Int64((now + 2.2 - Date().timeIntervalSince1970) * 1000)))
        await AuthFixtures.expectRefused(shortLived, "token expired", by: auth)
        #expect(auth.verified.count == 0)
    }

    @Test func failuresAreNotCachedAndTheCacheIsBounded() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let wrongAudience = try await AuthFixtures.sign(AuthFixtures.claims { $0.aud = ["someone-else"] })
        await AuthFixtures.expectRefused(wrongAudience, "token audience does not match", by: auth)
        #expect(auth.verified.count == 0)

        let cache = VerifiedTokenCache(capacity: 2)
        let principal = Principal(id: "t:o", tenantId: "t", objectId: "o", roles: [])
        let now = Date().timeIntervalSince1970
        for token in ["a", "b", "c"] {
            cache.insert(token, .init(principal: principal, expiresAt: now + 60, notBefore: nil, generation: 0), now: now)
        }
        #expect(cache.count <= 2)
        #expect(cache.lookup("c", now: now, skew: 0) == principal)
        // A verification that started before a key-set change is not remembered.
        let started = cache.generation
        cache.invalidate()
        cache.insert("d", .init(principal: principal, expiresAt: now + 60, notBefore: nil, generation: started), now: now)
        #expect(cache.lookup("d", now: now, skew: 0) == nil)
        #expect(cache.lookup("c", now: now, skew: 0) == nil)
    }

    /// The cache hashes a token by its length and last 32 bytes only: tokens that share those
    /// still find their own entry, never another's.
    @Test func tokensThatHashAlikeAreStillToldApart() async throws {
        let cache = VerifiedTokenCache(capacity: 8)
        let now = Date().timeIntervalSince1970
        let tail = String(repeating: "s", count: 40)
        let alice = Principal(id: "t:alice", tenantId: "t", objectId: "alice", roles: ["Sitrep.Admin"])
        let bob = Principal(id: "t:bob", tenantId: "t", objectId: "bob", roles: ["Sitrep.Viewer"])
        cache.insert("header-a." + tail, .init(principal: alice, expiresAt: now + 60, notBefore: nil, generation: 0), now: now)
        cache.insert("header-b." + tail, .init(principal: bob, expiresAt: now + 60, notBefore: nil, generation: 0), now: now)
        #expect(cache.count == 2)
        #expect(cache.lookup(Substring("header-a." + tail), now: now, skew: 0) == alice)
        #expect(cache.lookup(Substring("header-b." + tail), now: now, skew: 0) == bob)
        #expect(cache.lookup(Substring("header-c." + tail), now: now, skew: 0) == nil)
        // A slice of a longer header value finds the token it spells.
        let header = "Bearer header-a." + tail
        #expect(cache.lookup(header.dropFirst(7), now: now, skew: 0) == alice)
    }

    /// A cached token answers again and again while it holds, and never once it does not: past
    /// its expiry, before its `nbf`, after a key-set change, or from another cache.
    @Test func aCachedTokenAnswersOnlyWhileItHolds() async throws {
        let now = Date().timeIntervalSince1970
        let alice = Principal(id: "t:alice", tenantId: "t", objectId: "alice", roles: ["Sitrep.Admin"])
        let cache = VerifiedTokenCache(capacity: 64)
        cache.insert("token-a", .init(principal: alice, expiresAt: now + 60, notBefore: nil, generation: 0), now: now)
        #expect(cache.lookup("token-a", now: now, skew: 0) == alice)
        #expect(cache.lookup("token-a", now: now, skew: 0) == alice)
        #expect(cache.lookup("token-a", now: now, skew: 0)?.roles == ["Sitrep.Admin"])
        // Past its expiry it does not answer, and is dropped.
        #expect(cache.lookup("token-a", now: now + 61, skew: 0) == nil)
        #expect(cache.count == 0)
        #expect(cache.lookup("token-a", now: now, skew: 0) == nil)

        // Not yet valid: refused, and answered once it is (without being dropped meanwhile).
        cache.insert("token-n", .init(principal: alice, expiresAt: now + 60, notBefore: now + 30, generation: 0), now: now)
        #expect(cache.lookup("token-n", now: now + 31, skew: 0) == alice)
        #expect(cache.lookup("token-n", now: now, skew: 0) == nil)
        #expect(cache.lookup("token-n", now: now + 31, skew: 0) == alice)

        // A key-set change: nothing cached before it answers any more.
        cache.invalidate()
        #expect(cache.lookup("token-n", now: now + 31, skew: 0) == nil)

        // Another cache does not answer for this one.
        let other = VerifiedTokenCache(capacity: 64)
        cache.insert("token-b", .init(principal: alice, expiresAt: now + 60, notBefore: nil, generation: cache.generation), now: now)
        #expect(cache.lookup("token-b", now: now, skew: 0) == alice)
        #expect(other.lookup("token-b", now: now, skew: 0) == nil)
        #expect(cache.lookup("token-b", now: now, skew: 0) == alice)
    }

    /// Many users' tokens looked up in turn from many tasks at once: each token finds its own
    /// principal.
    @Test func manyTokensFromManyThreadsEachFindTheirOwnPrincipal() async throws {
        let now = Date().timeIntervalSince1970
        let cache = VerifiedTokenCache(capacity: 256)
        let users = (0..<12).map { "user-\($0)" }
        for user in users {
            let p = Principal(id: "t:\(user)", tenantId: "t", objectId: user, roles: ["Sitrep.Viewer"])
            cache.insert("token-for-\(user)", .init(principal: p, expiresAt: now + 60, notBefore: nil, generation: 0), now: now)
        }
        let wrong = await withTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var wrong = 0
                    for i in 0..<500 {
                        let user = users[(i * (task + 1)) % users.count]
                        if cache.lookup(Substring("token-for-\(user)"), now: now, skew: 0)?.objectId != user { wrong += 1 }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(wrong == 0)
    }
}

// MARK: - Local keys: principal mapping

@Suite("Auth: principal from a valid token")
struct AuthPrincipalTests {
    @Test func devIssuerUserTokenMapsToPrincipal() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await DevIssuer.token(
            privateKeyPEM: AuthFixtures.primaryPrivateKey, roles: ["Sitrep.Executive", "Sitrep.Viewer"],
            user: "amina", name: "Amina K.", mfa: true, app: false)
        let principal = try await auth.authenticate(bearerToken: token)
        let oid = DevIssuer.objectId(forUser: "amina")
        #expect(principal.id == "\(DevIssuer.tenantId):\(oid)")
        #expect(principal.tenantId == DevIssuer.tenantId)
        #expect(principal.objectId == oid)
        #expect(principal.displayName == "Amina K.")
        #expect(principal.roles == ["Sitrep.Executive", "Sitrep.Viewer"])
        #expect(principal.authContexts == ["c1"])
        #expect(principal.isApplication == false)
        #expect(principal.scheme == "bearerAuth")
    }

    @Test func devIssuerTokenWithoutMFAHasNoAuthContext() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await DevIssuer.token(
            privateKeyPEM: AuthFixtures.primaryPrivateKey, roles: ["Sitrep.Viewer"], user: "omar", name: nil,
            mfa: false, app: false, lifetime: .seconds(600))
        let principal = try await auth.authenticate(bearerToken: token)
        #expect(principal.authContexts.isEmpty)
        #expect(principal.displayName == "omar")
        #expect(principal.roles == ["Sitrep.Viewer"])
    }

    @Test func customClaimsMapToPrincipal() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await AuthFixtures.sign(AuthFixtures.claims())
        let principal = try await auth.authenticate(bearerToken: token)
        #expect(
            principal
                == Principal(
                    id: "\(DevIssuer.tenantId):\(AuthFixtures.userObjectId)", tenantId: DevIssuer.tenantId,
                    objectId: AuthFixtures.userObjectId, displayName: "Amina Executive",
                    roles: ["Sitrep.Executive"], authContexts: ["c1"], isApplication: false, scheme: "bearerAuth"))
    }

    @Test func scopeIsNotARole() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await AuthFixtures.sign(
            AuthFixtures.claims {
                $0.scp = "Sitrep.Admin access_as_user"
                $0.roles = ["Sitrep.Viewer"]
            })
        let principal = try await auth.authenticate(bearerToken: token)
        #expect(principal.roles == ["Sitrep.Viewer"])
        #expect(!principal.roles.contains("Sitrep.Admin"))
        #expect(principal.isApplication == false)

        let noRoles = try await AuthFixtures.sign(AuthFixtures.claims { $0.roles = nil })
        #expect(try await auth.authenticate(bearerToken: noRoles).roles.isEmpty)
    }

    @Test func appOnlyTokenFromDevIssuer() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await DevIssuer.token(
            privateKeyPEM: AuthFixtures.primaryPrivateKey, roles: ["Sitrep.Ingest"], user: "ingest-pipeline",
            name: nil, mfa: false, app: true)
        let principal = try await auth.authenticate(bearerToken: token)
        #expect(principal.isApplication)
        #expect(principal.id == "app:\(DevIssuer.objectId(forUser: "app:ingest-pipeline"))")
        #expect(principal.objectId == DevIssuer.objectId(forUser: "ingest-pipeline"))
        #expect(principal.roles == ["Sitrep.Ingest"])
        #expect(principal.tenantId == DevIssuer.tenantId)
    }

    @Test func appOnlyWithoutIdtypIsRecognisedByMissingScope() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        // No idtyp, no scp: app-only. azp absent → appid (Azure AD v1 style).
        let v1 = try await AuthFixtures.sign(
            AuthFixtures.claims {
                $0.idtyp = nil
                $0.scp = nil
                $0.azp = nil
                $0.appid = "a1b2c3d4-0000-4000-8000-00000000beef"
                $0.roles = ["Sitrep.BriefingWriter"]
            })
        let p1 = try await auth.authenticate(bearerToken: v1)
        #expect(p1.isApplication)
        #expect(p1.id == "app:a1b2c3d4-0000-4000-8000-00000000beef")
        #expect(p1.roles == ["Sitrep.BriefingWriter"])

        // Neither azp nor appid: falls back to oid.
        let bare = try await AuthFixtures.sign(
            AuthFixtures.claims {
                $0.scp = nil
                $0.azp = nil
            })
        #expect(try await auth.authenticate(bearerToken: bare).id == "app:\(AuthFixtures.userObjectId)")

        // idtyp wins when present: "user" without scp is still a user.
        let user = try await AuthFixtures.sign(
            AuthFixtures.claims {
                $0.idtyp = "user"
                $0.scp = nil
            })
        let p3 = try await auth.authenticate(bearerToken: user)
        #expect(p3.isApplication == false)
        #expect(p3.id == "\(DevIssuer.tenantId):\(AuthFixtures.userObjectId)")
    }

    @Test func audienceArrayContainingTheAPIIsAccepted() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await AuthFixtures.sign(
            AuthFixtures.claims { $0.aud = ["api://other", DevIssuer.audience] })
        #expect(try await auth.authenticate(bearerToken: token).objectId == AuthFixtures.userObjectId)
    }

    @Test func anyTenantWhenNoneConfigured() async throws {
        var configuration = DevIssuer.configuration
        configuration.tenantId = nil
        let auth = try await AuthFixtures.localAuthenticator(configuration: configuration)
        let token = try await AuthFixtures.sign(AuthFixtures.claims { $0.tid = "another-tenant" })
        #expect(try await auth.authenticate(bearerToken: token).tenantId == "another-tenant")
        let noTid = try await AuthFixtures.sign(AuthFixtures.claims { $0.tid = nil })
        let principal = try await auth.authenticate(bearerToken: noTid)
        // No tid: the issuer's last path segment stands for the tenant (a Keycloak realm).
        #expect(principal.tenantId == "dev-issuer")
        #expect(principal.id == "dev-issuer:\(AuthFixtures.userObjectId)")
        configuration.issuer = "https://login.microsoftonline.com/contoso/v2.0"
        #expect(configuration.tenantLabel == "contoso")
        configuration.issuer = "https://idp.example.org/realms/sitrep"
        #expect(configuration.tenantLabel == "sitrep")
        configuration.issuer = "https://idp.example.org"
        #expect(configuration.tenantLabel == "idp.example.org")
    }

    @Test func clockSkewIsAllowed() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let now = Date().timeIntervalSince1970
        let justExpired = try await AuthFixtures.sign(
            AuthFixtures.claims {
                $0.iat = now - 4000
                $0.nbf = now - 4000
                $0.exp = now - 200
            })
        _ = try await auth.authenticate(bearerToken: justExpired)
        let almostValid = try await AuthFixtures.sign(AuthFixtures.claims { $0.nbf = now + 200 })
        _ = try await auth.authenticate(bearerToken: almostValid)
    }
}

// MARK: - Local keys: refusals

@Suite("Auth: refused tokens")
struct AuthRefusalTests {
    @Test func expiredBeyondSkew() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let now = Date().timeIntervalSince1970
        let token = try await AuthFixtures.sign(
            AuthFixtures.claims {
                $0.iat = now - 4000
                $0.nbf = now - 4000
                $0.exp = now - 301
            })
        await AuthFixtures.expectRefused(token, "token expired", by: auth)
    }

    @Test func notYetValid() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let now = Date().timeIntervalSince1970
        let token = try await AuthFixtures.sign(
            AuthFixtures.claims {
                $0.nbf = now + 400
                $0.exp = now + 4000
            })
        await AuthFixtures.expectRefused(token, "token is not yet valid", by: auth)
    }

    @Test func missingExpiry() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await AuthFixtures.sign(AuthFixtures.claims { $0.exp = nil })
        await AuthFixtures.expectRefused(token, "token has no expiry", by: auth)
    }

    @Test func wrongIssuer() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        for issuer in ["https://login.microsoftonline.com/evil/v2.0", DevIssuer.issuer + "/", "HTTPS://sitrep.local/dev-issuer"] {
            let token = try await AuthFixtures.sign(AuthFixtures.claims(issuer: issuer))
            await AuthFixtures.expectRefused(token, "token issuer is not trusted", by: auth)
        }
        let none = try await AuthFixtures.sign(AuthFixtures.claims { $0.iss = nil })
        await AuthFixtures.expectRefused(none, "token issuer is not trusted", by: auth)
    }

    @Test func wrongAudience() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await AuthFixtures.sign(AuthFixtures.claims { $0.aud = ["api://graph"] })
        await AuthFixtures.expectRefused(token, "token audience does not match", by: auth)
        let none = try await AuthFixtures.sign(AuthFixtures.claims { $0.aud = nil })
        await AuthFixtures.expectRefused(none, "token audience does not match", by: auth)
    }

    @Test func wrongTenant() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await AuthFixtures.sign(
            AuthFixtures.claims { $0.tid = "99999999-0000-4000-8000-000000000009" })
        await AuthFixtures.expectRefused(token, "token tenant is not trusted", by: auth)
        let none = try await AuthFixtures.sign(AuthFixtures.claims { $0.tid = nil })
        await AuthFixtures.expectRefused(none, "token tenant is not trusted", by: auth)
    }

    @Test func algNone() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let payload = try AuthFixtures.payloadJSON(AuthFixtures.claims())
        let token = AuthFixtures.compact(header: #"{"alg":"none","kid":"sitrep-dev-1","typ":"JWT"}"#, payload: payload)
        await AuthFixtures.expectRefused(token, "token algorithm none is not accepted", by: auth)
        let noAlg = AuthFixtures.compact(header: #"{"kid":"sitrep-dev-1"}"#, payload: payload, signature: [1, 2, 3])
        await AuthFixtures.expectRefused(noAlg, "token algorithm is missing", by: auth)
    }

    @Test func hs256SignedWithThePublicKeyAsSecret() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let hmac = JWTKeyCollection()
        await hmac.add(
            hmac: HMACKey(from: AuthFixtures.primaryPublicKey), digestAlgorithm: .sha256,
            kid: JWKIdentifier(string: DevIssuer.keyId))
        let token = try await hmac.sign(AuthFixtures.claims(), kid: JWKIdentifier(string: DevIssuer.keyId))
        await AuthFixtures.expectRefused(token, "token algorithm HS256 is not accepted", by: auth)
    }

    @Test func otherAsymmetricAlgorithms() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        // RS384 with the trusted key itself: still refused, RS256 only.
        let rs384 = JWTKeyCollection()
        await rs384.add(
            rsa: try JWTKit.Insecure.RSA.PrivateKey(pem: AuthFixtures.primaryPrivateKey), digestAlgorithm: .sha384,
            kid: JWKIdentifier(string: DevIssuer.keyId))
        let token = try await rs384.sign(AuthFixtures.claims(), kid: JWKIdentifier(string: DevIssuer.keyId))
        await AuthFixtures.expectRefused(token, "token algorithm RS384 is not accepted", by: auth)

        let payload = try AuthFixtures.payloadJSON(AuthFixtures.claims())
        for alg in ["ES256", "PS256", "EdDSA"] {
            let forged = AuthFixtures.compact(
                header: #"{"alg":"\#(alg)","kid":"sitrep-dev-1"}"#, payload: payload, signature: Array(repeating: 7, count: 64))
            await AuthFixtures.expectRefused(forged, "token algorithm \(alg) is not accepted", by: auth)
        }
        // A hostile alg value is not echoed.
        let hostile = AuthFixtures.compact(header: #"{"alg":"<script>alert(1)</script>","kid":"x"}"#, payload: payload)
        await AuthFixtures.expectRefused(hostile, "token algorithm (unrecognised) is not accepted", by: auth)
    }

    @Test func unknownOrMissingKeyId() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let unknown = try await AuthFixtures.sign(AuthFixtures.claims(), kid: "someone-else")
        await AuthFixtures.expectRefused(unknown, "token signing key is not trusted", by: auth)

        let payload = try AuthFixtures.payloadJSON(AuthFixtures.claims())
        let noKid = AuthFixtures.compact(header: #"{"alg":"RS256"}"#, payload: payload, signature: Array(repeating: 1, count: 256))
        await AuthFixtures.expectRefused(noKid, "token has no key id", by: auth)
    }

    @Test func tamperedPayload() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await AuthFixtures.sign(AuthFixtures.claims { $0.roles = ["Sitrep.Viewer"] })
        let parts = token.split(separator: ".").map(String.init)
        let escalated = try AuthFixtures.payloadJSON(AuthFixtures.claims { $0.roles = ["Sitrep.Admin"] })
        let tampered = parts[0] + "." + DevIssuer.base64URL(Data(escalated.utf8)) + "." + parts[2]
        await AuthFixtures.expectRefused(tampered, "token signature is invalid", by: auth)

        // Signed by a key we do not trust, under our kid.
        let forged = try await AuthFixtures.sign(AuthFixtures.claims(), privateKey: AuthFixtures.secondPrivateKey)
        await AuthFixtures.expectRefused(forged, "token signature is invalid", by: auth)

        // Signature stripped.
        await AuthFixtures.expectRefused(parts[0] + "." + parts[1] + ".", "token signature is invalid", by: auth)
    }

    @Test func missingObjectId() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let token = try await AuthFixtures.sign(AuthFixtures.claims { $0.oid = nil })
        await AuthFixtures.expectRefused(token, "token has no object id (oid)", by: auth)
    }

    @Test func malformedTokens() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        for token in ["", "abc", "a.b", "a.b.c.d", "!!!.???.***", String(repeating: "a", count: 70_000)] {
            await AuthFixtures.expectRefused(token, "token is malformed", by: auth)
        }
        // Header {}: no algorithm.
        await AuthFixtures.expectRefused("e30.e30.", "token algorithm is missing", by: auth)
        // Payload that is not JSON and no signature: the signature check comes first.
        let junk = AuthFixtures.compact(header: #"{"alg":"RS256","kid":"sitrep-dev-1"}"#, payload: "not json")
        await AuthFixtures.expectRefused(junk, "token signature is invalid", by: auth)
        // Claim of the wrong type, correctly signed.
        struct WrongTypes: JWTPayload {
            var iss = DevIssuer.issuer
            var exp = "tomorrow"
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }
        let wrong = try await DevIssuer.sign(WrongTypes(), privateKeyPEM: AuthFixtures.primaryPrivateKey, kid: DevIssuer.keyId)
        await AuthFixtures.expectRefused(wrong, "token is malformed", by: auth)
    }

    @Test func criticalHeaderIsRefused() async throws {
        let auth = try await AuthFixtures.localAuthenticator()
        let payload = try AuthFixtures.payloadJSON(AuthFixtures.claims())
        let token = AuthFixtures.compact(
            header: #"{"alg":"RS256","kid":"sitrep-dev-1","crit":["exp"]}"#, payload: payload, signature: [1])
        await AuthFixtures.expectRefused(token, "token has critical header parameters that are not supported", by: auth)
    }
}

// MARK: - Development issuer

@Suite("Auth: development issuer")
struct DevIssuerTests {
    @Test func privateKeyIsCreatedOnceWithOwnerOnlyPermissions() throws {
        let root = AuthFixtures.directory + "/create-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/nested/dir/key.pem"
        let first = try DevIssuer.loadOrCreatePrivateKey(at: path)
        #expect(first.contains("PRIVATE KEY"))
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let second = try DevIssuer.loadOrCreatePrivateKey(at: path)
        #expect(second == first)
        let publicPEM = try DevIssuer.publicKeyPEM(fromPrivateKeyPEM: first)
        #expect(publicPEM.contains("BEGIN PUBLIC KEY"))
        #expect(!publicPEM.contains("PRIVATE"))
        // No temporary files left behind.
        let siblings = try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent)
        #expect(siblings == ["key.pem"])
    }

    @Test func corruptKeyFileIsAnError() throws {
        let dir = AuthFixtures.directory + "/corrupt-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/key.pem"
        try "not a key".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: AuthSetupError.self) { try DevIssuer.loadOrCreatePrivateKey(at: path) }
    }

    @Test func objectIdIsAStableUUID() {
        let a = DevIssuer.objectId(forUser: "amina")
        #expect(a == DevIssuer.objectId(forUser: "amina"))
        #expect(a != DevIssuer.objectId(forUser: "omar"))
        #expect(UUID(uuidString: a) != nil)
        #expect(a == a.lowercased())
        #expect(Array(a)[14] == "8")  // version 8
    }

    @Test func tokenShape() async throws {
        let token = try await DevIssuer.token(
            privateKeyPEM: AuthFixtures.primaryPrivateKey, roles: ["Sitrep.Admin"], user: "lee", name: "Lee",
            mfa: true, app: false, lifetime: .seconds(3600))
        let parts = token.split(separator: ".")
        let header = try JSONSerialization.jsonObject(with: JWTAuthenticator.base64URLDecode(parts[0])!) as! [String: Any]
        #expect(header["alg"] as? String == "RS256")
        #expect(header["kid"] as? String == DevIssuer.keyId)
        let claims = try JSONSerialization.jsonObject(with: JWTAuthenticator.base64URLDecode(parts[1])!) as! [String: Any]
        #expect(claims["iss"] as? String == DevIssuer.issuer)
        #expect(claims["aud"] as? String == DevIssuer.audience)
        #expect(claims["tid"] as? String == DevIssuer.tenantId)
        #expect(claims["oid"] as? String == DevIssuer.objectId(forUser: "lee"))
        #expect(claims["sub"] as? String == DevIssuer.objectId(forUser: "lee"))
        #expect(claims["ver"] as? String == "2.0")
        #expect(claims["acrs"] as? [String] == ["c1"])
        #expect(claims["roles"] as? [String] == ["Sitrep.Admin"])
        #expect(claims["idtyp"] == nil)
        let iat = try #require((claims["iat"] as? NSNumber)?.doubleValue)
        let exp = try #require((claims["exp"] as? NSNumber)?.doubleValue)
        #expect(exp - iat == 3600)
        #expect(abs(iat - Date().timeIntervalSince1970) < 60)
    }

    @Test func configurationMatchesConstants() {
        let configuration = DevIssuer.configuration
        #expect(configuration.issuer == "https://sitrep.local/dev-issuer")
        #expect(configuration.audience == "api://sitrep")
        #expect(configuration.tenantId == "00000000-0000-4000-8000-000000000001")
        #expect(configuration.clockSkew == .seconds(300))
        #expect(configuration.refreshInterval == .seconds(3600))
    }

    @Test func setupErrors() async throws {
        await #expect(throws: AuthSetupError.self) {
            _ = try await JWTAuthenticator(
                configuration: DevIssuer.configuration, publicKeysPEM: [DevIssuer.keyId: "garbage"],
                logger: AuthFixtures.quietLogger)
        }
        await #expect(throws: AuthSetupError.self) {
            _ = try await JWTAuthenticator(
                configuration: DevIssuer.configuration, publicKeysPEM: [:], logger: AuthFixtures.quietLogger)
        }
        // Keys over plain HTTP from another host are refused before any request is made.
        await #expect(throws: AuthSetupError.self) {
            _ = try await JWTAuthenticator(
                configuration: AuthConfiguration(
                    issuer: "https://issuer.invalid", audience: "api://sitrep",
                    jwksURL: URL(string: "http://issuer.invalid/keys")!),
                httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        }
    }
}

// MARK: - Remote mode against a local issuer

/// A tiny OIDC issuer on 127.0.0.1: serves the discovery document and a JWKS that tests can
/// change, and counts requests.
final class AuthTestIssuer: Sendable {
    actor State {
        var jwks: String
        var issuer = ""
        var discoveryRequests = 0
        var jwksRequests = 0
        init(jwks: String) { self.jwks = jwks }
        func setIssuer(_ issuer: String) { self.issuer = issuer }
        func setJWKS(_ jwks: String) { self.jwks = jwks }
        func discovery() -> String {
            discoveryRequests += 1
            return #"{"issuer":"\#(issuer)","jwks_uri":"\#(issuer)/keys","id_token_signing_alg_values_supported":["RS256"]}"#
        }
        func keys() -> String {
            jwksRequests += 1
            return jwks
        }
    }

    let state: State
    let port: Int
    let issuer: String
    private let server: Task<Void, any Error>

    private init(state: State, port: Int, server: Task<Void, any Error>) {
        self.state = state
        self.port = port
        self.issuer = "http://127.0.0.1:\(port)"
        self.server = server
    }

    static func start(publicKeys: [String: String]) async throws -> AuthTestIssuer {
        try await start(jwks: DevIssuer.jwksJSON(publicKeysPEM: publicKeys))
    }

    static func start(jwks: String) async throws -> AuthTestIssuer {
        let state = State(jwks: jwks)
        let router = Router()
        router.get("/.well-known/openid-configuration") { _, _ in
            Self.json(await state.discovery())
        }
        router.get("/keys") { _, _ in
            Self.json(await state.keys())
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: AuthFixtures.quietLogger
        )
        let server = Task { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            server.cancel()
            throw AuthSetupError("local issuer did not start")
        }
        let issuer = AuthTestIssuer(state: state, port: port, server: server)
        await state.setIssuer(issuer.issuer)
        return issuer
    }

    static func json(_ body: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    var configuration: AuthConfiguration {
        AuthConfiguration(issuer: issuer, audience: DevIssuer.audience, tenantId: DevIssuer.tenantId)
    }

    func stop() async {
        server.cancel()
        _ = await server.result
    }
}

@Suite("Auth: remote JWKS")
struct RemoteJWKSTests {
    @Test func discoveryThenKeyRotationThenIssuerDown() async throws {
        let local = try await AuthTestIssuer.start(publicKeys: ["k1": AuthFixtures.primaryPublicKey])
        let auth = try await JWTAuthenticator(
            configuration: local.configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        #expect(await local.state.discoveryRequests == 1)
        #expect(await local.state.jwksRequests == 1)
        #expect(await auth.trustedKeyIds == ["k1"])

        let k1Token = try await AuthFixtures.sign(AuthFixtures.claims(issuer: local.issuer), kid: "k1")
        #expect(try await auth.authenticate(bearerToken: k1Token).objectId == AuthFixtures.userObjectId)
        #expect(await local.state.jwksRequests == 1)

        // The issuer rotates in a new key; a token signed with it triggers exactly one refresh.
        await local.state.setJWKS(
            try DevIssuer.jwksJSON(publicKeysPEM: ["k1": AuthFixtures.primaryPublicKey, "k2": AuthFixtures.secondPublicKey]))
        let k2Token = try await AuthFixtures.sign(
            AuthFixtures.claims(issuer: local.issuer), kid: "k2", privateKey: AuthFixtures.secondPrivateKey)
        #expect(try await auth.authenticate(bearerToken: k2Token).objectId == AuthFixtures.userObjectId)
        #expect(await local.state.jwksRequests == 2)
        #expect(await local.state.discoveryRequests == 1)
        #expect(await auth.trustedKeyIds == ["k1", "k2"])
        // Known kids never cause a fetch.
        _ = try await auth.authenticate(bearerToken: k1Token)
        _ = try await auth.authenticate(bearerToken: k2Token)
        #expect(await local.state.jwksRequests == 2)

        // Another unknown kid within five minutes: no second synchronous refresh.
        let k3Token = try await AuthFixtures.sign(AuthFixtures.claims(issuer: local.issuer), kid: "k3")
        await AuthFixtures.expectRefused(k3Token, "token signing key is not trusted", by: auth)
        #expect(await local.state.jwksRequests == 2)

        // The issuer goes down: refresh fails, the last good keys stay in force.
        await local.stop()
        await auth.refreshKeys()
        #expect(await auth.trustedKeyIds == ["k1", "k2"])
        #expect(try await auth.authenticate(bearerToken: k1Token).objectId == AuthFixtures.userObjectId)
        #expect(try await auth.authenticate(bearerToken: k2Token).objectId == AuthFixtures.userObjectId)
        await AuthFixtures.expectRefused(k3Token, "token signing key is not trusted", by: auth)
    }

    @Test func aFloodOfUnknownKidsCausesAtMostOneRefresh() async throws {
        let local = try await AuthTestIssuer.start(publicKeys: ["k1": AuthFixtures.primaryPublicKey])
        let auth = try await JWTAuthenticator(
            configuration: local.configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        #expect(await local.state.jwksRequests == 1)
        var forged: [String] = []
        for i in 0..<40 { forged.append(try await AuthFixtures.sign(AuthFixtures.claims(issuer: local.issuer), kid: "attacker-\(i)")) }
        let tokens = forged
        await withTaskGroup(of: Void.self) { group in
            for token in tokens {
                group.addTask { await AuthFixtures.expectRefused(token, "token signing key is not trusted", by: auth) }
            }
        }
        #expect(await local.state.jwksRequests == 2, "one synchronous refresh for the whole flood")
        await local.stop()
    }

    @Test func aValidTokenFromASecondIssuerIsRefused() async throws {
        // Another provider, its own key, even the same kid as ours: neither the key nor the issuer is trusted.
        let auth = try await AuthFixtures.localAuthenticator()
        let other = try await AuthFixtures.sign(
            AuthFixtures.claims(issuer: "https://login.example.org/other-tenant/v2.0"), kid: DevIssuer.keyId,
            privateKey: AuthFixtures.secondPrivateKey)
        await AuthFixtures.expectRefused(other, "token signature is invalid", by: auth)
        let otherKid = try await AuthFixtures.sign(
            AuthFixtures.claims(issuer: "https://login.example.org/other-tenant/v2.0"), kid: "other-kid",
            privateKey: AuthFixtures.secondPrivateKey)
        await AuthFixtures.expectRefused(otherKid, "token signing key is not trusted", by: auth)
    }

    @Test func withdrawnKeyStopsBeingTrusted() async throws {
        let local = try await AuthTestIssuer.start(
            publicKeys: ["k1": AuthFixtures.primaryPublicKey, "k2": AuthFixtures.secondPublicKey])
        var configuration = local.configuration
        configuration.jwksURL = URL(string: local.issuer + "/keys")
        let auth = try await JWTAuthenticator(
            configuration: configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        #expect(await local.state.discoveryRequests == 0)  // explicit jwksURL: no discovery
        let k1Token = try await AuthFixtures.sign(AuthFixtures.claims(issuer: local.issuer), kid: "k1")
        _ = try await auth.authenticate(bearerToken: k1Token)

        await local.state.setJWKS(try DevIssuer.jwksJSON(publicKeysPEM: ["k2": AuthFixtures.secondPublicKey]))
        await auth.refreshKeys()
        #expect(await auth.trustedKeyIds == ["k2"])
        await AuthFixtures.expectRefused(k1Token, "token signing key is not trusted", by: auth)
        await local.stop()
    }

    @Test func jwkAlgorithmMustAgree() async throws {
        let rsa = try JWTKit.Insecure.RSA.PublicKey(pem: AuthFixtures.primaryPublicKey)
        let (n, e) = try rsa.getKeyPrimitives()
        let jwks = """
            {"keys":[
              {"kty":"RSA","kid":"rs384-key","alg":"RS384","use":"sig","n":"\(DevIssuer.base64URL(n))","e":"\(DevIssuer.base64URL(e))"},
              {"kty":"RSA","kid":"no-alg","use":"sig","n":"\(DevIssuer.base64URL(n))","e":"\(DevIssuer.base64URL(e))"},
              {"kty":"RSA","kid":"enc-key","use":"enc","alg":"RSA-OAEP","n":"\(DevIssuer.base64URL(n))","e":"\(DevIssuer.base64URL(e))"},
              {"kty":"EC","kid":"ec-key","crv":"P-256","alg":"ES256","x":"AAAA","y":"AAAA"},
              {"kty":"oct","kid":"secret","k":"c2VjcmV0"}
            ]}
            """
        let local = try await AuthTestIssuer.start(jwks: jwks)
        let auth = try await JWTAuthenticator(
            configuration: local.configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        #expect(await auth.trustedKeyIds == ["no-alg", "rs384-key"])

        let mismatched = try await AuthFixtures.sign(AuthFixtures.claims(issuer: local.issuer), kid: "rs384-key")
        await AuthFixtures.expectRefused(mismatched, "token algorithm does not match its signing key", by: auth)
        let noAlg = try await AuthFixtures.sign(AuthFixtures.claims(issuer: local.issuer), kid: "no-alg")
        #expect(try await auth.authenticate(bearerToken: noAlg).objectId == AuthFixtures.userObjectId)
        await local.stop()
    }

    @Test func refreshLoopPicksUpNewKeys() async throws {
        let local = try await AuthTestIssuer.start(publicKeys: ["k1": AuthFixtures.primaryPublicKey])
        var configuration = local.configuration
        configuration.refreshInterval = .milliseconds(100)
        let auth = try await JWTAuthenticator(
            configuration: configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        let loop = Task { await auth.runRefreshLoop() }
        await local.state.setJWKS(try DevIssuer.jwksJSON(publicKeysPEM: ["k9": AuthFixtures.secondPublicKey]))
        let deadline = ContinuousClock.now + .seconds(10)
        while await auth.trustedKeyIds != ["k9"], ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(await auth.trustedKeyIds == ["k9"])
        loop.cancel()
        await loop.value
        await local.stop()
    }

    @Test func startupFailures() async throws {
        // Discovery names a different issuer: metadata refused (OIDC Discovery §4.3).
        let local = try await AuthTestIssuer.start(publicKeys: ["k1": AuthFixtures.primaryPublicKey])
        var wrongIssuer = local.configuration
        wrongIssuer.issuer = local.issuer + "/tenant"
        wrongIssuer.jwksURL = nil
        await #expect(throws: AuthSetupError.self) {
            _ = try await JWTAuthenticator(
                configuration: wrongIssuer, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        }
        // A JWKS with no usable key.
        await local.state.setJWKS(#"{"keys":[]}"#)
        await #expect(throws: AuthSetupError.self) {
            _ = try await JWTAuthenticator(
                configuration: local.configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        }
        // Issuer unreachable at start-up.
        await local.stop()
        await #expect(throws: AuthSetupError.self) {
            _ = try await JWTAuthenticator(
                configuration: local.configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        }
    }

    @Test func concurrentUnknownKidsShareOneRefresh() async throws {
        let local = try await AuthTestIssuer.start(publicKeys: ["k1": AuthFixtures.primaryPublicKey])
        let auth = try await JWTAuthenticator(
            configuration: local.configuration, httpClient: HTTPClient.shared, logger: AuthFixtures.quietLogger)
        await local.state.setJWKS(
            try DevIssuer.jwksJSON(publicKeysPEM: ["k1": AuthFixtures.primaryPublicKey, "k2": AuthFixtures.secondPublicKey]))
        let k2Token = try await AuthFixtures.sign(
            AuthFixtures.claims(issuer: local.issuer), kid: "k2", privateKey: AuthFixtures.secondPrivateKey)
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 {
                group.addTask { (try? await auth.authenticate(bearerToken: k2Token)) != nil }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0 })
        #expect(await local.state.jwksRequests == 2)
        await local.stop()
    }
}
