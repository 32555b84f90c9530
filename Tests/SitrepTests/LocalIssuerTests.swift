import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SitrepRuntime
import Testing

@testable import Auth
@testable import LocalIssuer

// MARK: - Fixtures

/// Keys made once per machine (RSA generation is slow) under the temporary directory, and a
/// client that does not follow redirects, so the authorization endpoint's 302 can be read.
enum LocalIssuerFixtures {
    static let directory = NSTemporaryDirectory() + "sitrep-local-issuer-tests"
    static let firstKey: String = try! DevIssuer.loadOrCreatePrivateKey(at: directory + "/first.pem")
    static let secondKey: String = try! DevIssuer.loadOrCreatePrivateKey(at: directory + "/second.pem")
    static let logger = Logger(label: "sitrep.local-issuer.tests", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Where the client pretends to be; nothing listens there (redirects are not followed).
    static let redirectURI = "http://127.0.0.1:9/auth/callback?from=web"

    static func configuration(_ edit: (inout LocalIssuerConfiguration) -> Void = { _ in }) -> LocalIssuerConfiguration {
        var configuration = LocalIssuerConfiguration(privateKeyPEM: firstKey, keyId: "first")
        edit(&configuration)
        return configuration
    }
}

/// A running issuer and an HTTP client, both stopped by ``run(_:_:)`` whatever the test does.
struct IssuerSession {
    let issuer: LocalIssuer
    let client: HTTPClient

    static func run(
        _ configuration: LocalIssuerConfiguration = LocalIssuerFixtures.configuration(),
        _ body: (IssuerSession) async throws -> Void
    ) async throws {
        let issuer = try await LocalIssuer.start(configuration, logger: LocalIssuerFixtures.logger)
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        let session = IssuerSession(issuer: issuer, client: client)
        do {
            try await body(session)
        } catch {
            try? await client.shutdown()
            await issuer.stop()
            throw error
        }
        try await client.shutdown()
        await issuer.stop()
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    }

    func get(_ url: String) async throws -> Reply {
        let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        return try await Self.reply(response)
    }

    func post(
        _ url: String, form: [(String, String)], basic: (String, String)? = nil,
        contentType: String = "application/x-www-form-urlencoded"
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        if let basic {
            let credentials = FormEncoding.escape(basic.0) + ":" + FormEncoding.escape(basic.1)
            request.headers.add(name: "Authorization", value: "Basic " + Data(credentials.utf8).base64EncodedString())
        }
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(form)))
        let response = try await client.execute(request, timeout: .seconds(10))
        return try await Self.reply(response)
    }

    static func reply(_ response: HTTPClientResponse) async throws -> Reply {
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        let body = try await response.body.collect(upTo: 1 << 20)
        return Reply(status: Int(response.status.code), headers: headers, body: Data(buffer: body))
    }

    // MARK: The flow

    /// A fresh PKCE verifier (64 unreserved characters).
    static func verifier() -> String {
        String((0..<64).map { _ in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".randomElement()! })
    }

    /// The standard authorization request parameters; `edit` changes them (nil removes one).
    static func authorizeParameters(
        verifier: String, user: String? = nil, claims: String? = nil, edit: (inout [String: String?]) -> Void = { _ in }
    ) -> [(String, String)] {
        var parameters: [String: String?] = [
            "client_id": DevIssuer.clientId,
            "redirect_uri": LocalIssuerFixtures.redirectURI,
            "response_type": "code",
            "scope": "openid profile offline_access api://sitrep/access_as_user",
            "state": "st&te=1 /é",
            "nonce": "n-0S6_WzA2Mj",
            "code_challenge": PKCE.challenge(for: verifier),
            "code_challenge_method": "S256",
            "login_hint": user,
            "claims": claims,
        ]
        edit(&parameters)
        return parameters.compactMap { name, value in value.map { (name, $0) } }.sorted { $0.0 < $1.0 }
    }

    func authorize(_ parameters: [(String, String)]) async throws -> Reply {
        try await get(issuer.authorizationEndpoint + "?" + FormEncoding.encode(parameters))
    }

    /// The query parameters of a redirect's Location, decoded.
    static func redirectQuery(_ reply: Reply) throws -> [String: String] {
        let location = try #require(reply.headers["location"])
        let components = try #require(URLComponents(string: location))
        return try FormEncoding.decode(components.percentEncodedQuery ?? "")
    }

    /// Authorize, then redeem the code. Returns the token endpoint's reply.
    func signIn(user: String? = nil, claims: String? = nil) async throws -> Reply {
        let verifier = Self.verifier()
        let redirect = try await authorize(Self.authorizeParameters(verifier: verifier, user: user, claims: claims))
        #expect(redirect.status == 302)
        let code = try #require(try Self.redirectQuery(redirect)["code"])
        return try await redeem(code: code, verifier: verifier)
    }

    func redeem(
        code: String, verifier: String, redirectURI: String = LocalIssuerFixtures.redirectURI
    ) async throws -> Reply {
        try await post(
            issuer.tokenEndpoint,
            form: [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
                ("code_verifier", verifier), ("client_id", DevIssuer.clientId),
            ])
    }

    func refresh(_ refreshToken: String) async throws -> Reply {
        try await post(
            issuer.tokenEndpoint,
            form: [("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("client_id", DevIssuer.clientId)])
    }

    func authenticator() async throws -> JWTAuthenticator {
        try await JWTAuthenticator(
            configuration: AuthConfiguration(
                issuer: issuer.issuer, audience: issuer.configuration.apiAudience, tenantId: issuer.configuration.tenantId),
            httpClient: client, logger: LocalIssuerFixtures.logger)
    }
}

/// The decoded header and claims of a compact JWS.
func jwtParts(_ token: String) throws -> (header: [String: Any], claims: [String: Any]) {
    let parts = token.split(separator: ".")
    try #require(parts.count == 3)
    let header = try JSONSerialization.jsonObject(with: try #require(JWTAuthenticator.base64URLDecode(parts[0])))
    let claims = try JSONSerialization.jsonObject(with: try #require(JWTAuthenticator.base64URLDecode(parts[1])))
    return (try #require(header as? [String: Any]), try #require(claims as? [String: Any]))
}

func expectOAuthError(
    _ reply: IssuerSession.Reply, _ error: String, status: Int = 400, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(reply.status == status, sourceLocation: sourceLocation)
    #expect(reply.json["error"] as? String == error, sourceLocation: sourceLocation)
    #expect(reply.json["error_description"] is String, sourceLocation: sourceLocation)
    #expect(reply.headers["location"] == nil, sourceLocation: sourceLocation)
}

// MARK: - Tests

@Suite("Local issuer: discovery and keys")
struct LocalIssuerMetadataTests {
    @Test func discoveryDocumentIsAzureShaped() async throws {
        try await IssuerSession.run { session in
            let issuer = session.issuer
            let base = "http://127.0.0.1:\(issuer.port)"
            let tenant = DevIssuer.tenantId
            #expect(issuer.issuer == "\(base)/\(tenant)/v2.0")
            #expect(issuer.authConfiguration.discoveryURL?.absoluteString == issuer.discoveryURL)

            let reply = try await session.get(issuer.issuer + "/.well-known/openid-configuration")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"]?.hasPrefix("application/json") == true)
            let document = reply.json
            #expect(document["issuer"] as? String == issuer.issuer)
            #expect(document["authorization_endpoint"] as? String == "\(base)/\(tenant)/oauth2/v2.0/authorize")
            #expect(document["token_endpoint"] as? String == "\(base)/\(tenant)/oauth2/v2.0/token")
            #expect(document["jwks_uri"] as? String == "\(base)/\(tenant)/discovery/v2.0/keys")
            #expect(document["response_types_supported"] as? [String] == ["code"])
            #expect(document["code_challenge_methods_supported"] as? [String] == ["S256"])
            #expect(document["id_token_signing_alg_values_supported"] as? [String] == ["RS256"])
            #expect(document["subject_types_supported"] as? [String] == ["public"])
            #expect((document["scopes_supported"] as? [String])?.contains("openid") == true)
            #expect(document["claims_parameter_supported"] as? Bool == true)
        }
    }

    @Test func jwksPublishesTheSigningKey() async throws {
        try await IssuerSession.run { session in
            let reply = try await session.get(session.issuer.jwksURI)
            #expect(reply.status == 200)
            let keys = try #require(reply.json["keys"] as? [[String: Any]])
            #expect(keys.count == 1)
            #expect(keys.first?["kid"] as? String == "first")
            #expect(keys.first?["kty"] as? String == "RSA")
            #expect(keys.first?["alg"] as? String == "RS256")
            #expect(keys.first?["use"] as? String == "sig")
            // The API's authenticator finds the keys through discovery and trusts them.
            let auth = try await session.authenticator()
            #expect(await auth.trustedKeyIds == ["first"])
        }
    }

    @Test func startFailsWhenThePortIsTaken() async throws {
        try await IssuerSession.run { session in
            await #expect(throws: LocalIssuerError.self) {
                let second = try await LocalIssuer.start(
                    LocalIssuerFixtures.configuration(), port: session.issuer.port, logger: LocalIssuerFixtures.logger)
                await second.stop()
            }
        }
    }

    @Test func startRefusesABadConfiguration() async throws {
        await #expect(throws: LocalIssuerError.self) {
            _ = try await LocalIssuer.start(
                LocalIssuerFixtures.configuration { $0.privateKeyPEM = "not a key" }, logger: LocalIssuerFixtures.logger)
        }
        await #expect(throws: LocalIssuerError.self) {
            _ = try await LocalIssuer.start(
                LocalIssuerFixtures.configuration { $0.tenantId = "a/b" }, logger: LocalIssuerFixtures.logger)
        }
    }
}

@Suite("Local issuer: authorization code flow")
struct LocalIssuerFlowTests {
    @Test func fullFlowTokensAreAcceptedByTheAPI() async throws {
        try await IssuerSession.run { session in
            let auth = try await session.authenticator()
            let reply = try await session.signIn(user: "exec2")
            #expect(reply.status == 200)
            #expect(reply.headers["cache-control"] == "no-store")
            let body = reply.json
            #expect(body["token_type"] as? String == "Bearer")
            #expect((body["expires_in"] as? NSNumber)?.intValue == 3600)
            #expect(body["scope"] as? String == "openid profile offline_access api://sitrep/access_as_user")
            #expect((body["refresh_token"] as? String)?.isEmpty == false)
            let accessToken = try #require(body["access_token"] as? String)
            let idToken = try #require(body["id_token"] as? String)

            let principal = try await auth.authenticate(bearerToken: accessToken)
            let oid = DevIssuer.objectId(forUser: "exec2")
            #expect(principal.id == "\(DevIssuer.tenantId):\(oid)")
            #expect(principal.objectId == oid)
            #expect(principal.displayName == "Exec2")
            #expect(principal.roles == ["Sitrep.Executive", "Sitrep.Viewer"])
            #expect(principal.authContexts.isEmpty)
            #expect(principal.isApplication == false)

            let access = try jwtParts(accessToken)
            #expect(access.header["alg"] as? String == "RS256")
            #expect(access.header["typ"] as? String == "JWT")
            #expect(access.header["kid"] as? String == "first")
            #expect(access.claims["iss"] as? String == session.issuer.issuer)
            #expect(access.claims["aud"] as? String == DevIssuer.audience)
            #expect(access.claims["tid"] as? String == DevIssuer.tenantId)
            #expect(access.claims["sub"] as? String == oid)
            #expect(access.claims["azp"] as? String == DevIssuer.clientId)
            #expect(access.claims["scp"] as? String == "access_as_user")
            #expect(access.claims["preferred_username"] as? String == "exec2@sitrep.local")
            #expect(access.claims["ver"] as? String == "2.0")
            #expect(access.claims["acrs"] == nil)
            let iat = try #require((access.claims["iat"] as? NSNumber)?.int64Value)
            #expect((access.claims["nbf"] as? NSNumber)?.int64Value == iat)
            #expect((access.claims["exp"] as? NSNumber)?.int64Value == iat + 3600)

            let id = try jwtParts(idToken)
            #expect(id.header["kid"] as? String == "first")
            #expect(id.claims["aud"] as? String == DevIssuer.clientId)
            #expect(id.claims["iss"] as? String == session.issuer.issuer)
            #expect(id.claims["nonce"] as? String == "n-0S6_WzA2Mj")
            #expect(id.claims["oid"] as? String == oid)
            #expect(id.claims["name"] as? String == "Exec2")
            #expect(id.claims["acrs"] == nil)
            #expect(session.issuer.tokenRequests == 1)
        }
    }

    @Test func defaultUserIsTheViewer() async throws {
        try await IssuerSession.run { session in
            let auth = try await session.authenticator()
            let reply = try await session.signIn()
            let principal = try await auth.authenticate(bearerToken: try #require(reply.json["access_token"] as? String))
            #expect(principal.roles == ["Sitrep.Viewer"])
            #expect(principal.objectId == DevIssuer.objectId(forUser: "viewer"))
        }
    }

    @Test func stepUpRequestedThroughTheClaimsParameter() async throws {
        try await IssuerSession.run { session in
            let auth = try await session.authenticator()
            let claims = #"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#
            let reply = try await session.signIn(user: "exec", claims: claims)
            #expect(reply.status == 200)
            let accessToken = try #require(reply.json["access_token"] as? String)
            let principal = try await auth.authenticate(bearerToken: accessToken)
            #expect(principal.authContexts == ["c1"])
            #expect(principal.roles == ["Sitrep.Executive"])
            #expect(try jwtParts(try #require(reply.json["id_token"] as? String)).claims["acrs"] as? [String] == ["c1"])

            // The refresh token keeps the step-up.
            let refreshed = try await session.refresh(try #require(reply.json["refresh_token"] as? String))
            #expect(refreshed.status == 200)
            let again = try await auth.authenticate(bearerToken: try #require(refreshed.json["access_token"] as? String))
            #expect(again.authContexts == ["c1"])

            // Another context than the configured one is not granted.
            let other = try await session.signIn(
                user: "exec", claims: #"{"access_token":{"acrs":{"essential":true,"value":"c9"}}}"#)
            let plain = try await auth.authenticate(bearerToken: try #require(other.json["access_token"] as? String))
            #expect(plain.authContexts.isEmpty)
        }
    }

    @Test func alwaysMFASwitch() async throws {
        try await IssuerSession.run { session in
            let auth = try await session.authenticator()
            session.issuer.setAlwaysMFA(true)
            let on = try await session.signIn(user: "admin")
            let stepped = try await auth.authenticate(bearerToken: try #require(on.json["access_token"] as? String))
            #expect(stepped.authContexts == ["c1"])
            #expect(stepped.roles == ["Sitrep.Admin"])

            session.issuer.setAlwaysMFA(false)
            let off = try await session.signIn(user: "admin")
            let plain = try await auth.authenticate(bearerToken: try #require(off.json["access_token"] as? String))
            #expect(plain.authContexts.isEmpty)
        }
    }

    @Test func accessTokenLifetimeSwitch() async throws {
        try await IssuerSession.run { session in
            session.issuer.setAccessTokenLifetime(.seconds(90))
            let reply = try await session.signIn()
            #expect((reply.json["expires_in"] as? NSNumber)?.intValue == 90)
            let claims = try jwtParts(try #require(reply.json["access_token"] as? String)).claims
            let iat = try #require((claims["iat"] as? NSNumber)?.int64Value)
            #expect((claims["exp"] as? NSNumber)?.int64Value == iat + 90)
        }
    }

    @Test func redirectCarriesCodeAndStateAndKeepsTheRedirectQuery() async throws {
        try await IssuerSession.run { session in
            let reply = try await session.authorize(IssuerSession.authorizeParameters(verifier: IssuerSession.verifier()))
            #expect(reply.status == 302)
            let location = try #require(reply.headers["location"])
            #expect(location.hasPrefix("http://127.0.0.1:9/auth/callback?from=web&code="))
            let query = try IssuerSession.redirectQuery(reply)
            #expect(query["from"] == "web")
            #expect(query["state"] == "st&te=1 /é")
            #expect((query["code"]?.count ?? 0) >= 43)
        }
    }

    @Test func unknownLoginHintIsDeniedByRedirect() async throws {
        try await IssuerSession.run { session in
            let reply = try await session.authorize(
                IssuerSession.authorizeParameters(verifier: IssuerSession.verifier(), user: "mallory"))
            #expect(reply.status == 302)
            let query = try IssuerSession.redirectQuery(reply)
            #expect(query["error"] == "access_denied")
            #expect(query["error_description"]?.isEmpty == false)
            #expect(query["state"] == "st&te=1 /é")
            #expect(query["code"] == nil)
        }
    }

    @Test func malformedClaimsParameterIsRedirectedAsInvalidRequest() async throws {
        try await IssuerSession.run { session in
            let reply = try await session.authorize(
                IssuerSession.authorizeParameters(verifier: IssuerSession.verifier(), claims: "{not json"))
            #expect(reply.status == 302)
            let query = try IssuerSession.redirectQuery(reply)
            #expect(query["error"] == "invalid_request")
            #expect(query["state"] == "st&te=1 /é")
            #expect(query["code"] == nil)
        }
    }

    @Test func badAuthorizationRequestsAreRefusedWithoutRedirect() async throws {
        try await IssuerSession.run { session in
            let verifier = IssuerSession.verifier()
            let edits: [(String, (inout [String: String?]) -> Void)] = [
                ("wrong client", { $0["client_id"] = "someone-else" }),
                ("no client", { $0["client_id"] = .some(nil) }),
                ("no redirect_uri", { $0["redirect_uri"] = .some(nil) }),
                ("non-http redirect_uri", { $0["redirect_uri"] = "javascript:alert(1)" }),
                ("relative redirect_uri", { $0["redirect_uri"] = "/callback" }),
                ("implicit flow", { $0["response_type"] = "token" }),
                ("no PKCE", { $0["code_challenge"] = .some(nil) }),
                ("plain PKCE", { $0["code_challenge_method"] = "plain" }),
                ("no PKCE method", { $0["code_challenge_method"] = .some(nil) }),
            ]
            for (label, edit) in edits {
                let reply = try await session.authorize(IssuerSession.authorizeParameters(verifier: verifier, edit: edit))
                #expect(reply.status == 400, "\(label)")
                #expect(reply.json["error"] as? String == "invalid_request", "\(label)")
                #expect(reply.headers["location"] == nil, "\(label)")
            }
        }
    }
}

@Suite("Local issuer: token endpoint")
struct LocalIssuerTokenTests {
    /// Authorizes and returns the code with its verifier, without redeeming it.
    static func code(_ session: IssuerSession) async throws -> (code: String, verifier: String) {
        let verifier = IssuerSession.verifier()
        let reply = try await session.authorize(IssuerSession.authorizeParameters(verifier: verifier))
        return (try #require(try IssuerSession.redirectQuery(reply)["code"]), verifier)
    }

    @Test func pkceMismatchIsInvalidGrantAndSpendsTheCode() async throws {
        try await IssuerSession.run { session in
            let (code, verifier) = try await Self.code(session)
            expectOAuthError(try await session.redeem(code: code, verifier: IssuerSession.verifier()), "invalid_grant")
            expectOAuthError(try await session.redeem(code: code, verifier: verifier), "invalid_grant")
        }
    }

    @Test func codeReuseIsInvalidGrantAndRevokesItsRefreshToken() async throws {
        try await IssuerSession.run { session in
            let (code, verifier) = try await Self.code(session)
            let first = try await session.redeem(code: code, verifier: verifier)
            #expect(first.status == 200)
            let refreshToken = try #require(first.json["refresh_token"] as? String)
            expectOAuthError(try await session.redeem(code: code, verifier: verifier), "invalid_grant")
            // RFC 6749 §4.1.2: tokens issued from a replayed code are revoked.
            expectOAuthError(try await session.refresh(refreshToken), "invalid_grant")
        }
    }

    @Test func wrongRedirectURIIsInvalidGrant() async throws {
        try await IssuerSession.run { session in
            let (code, verifier) = try await Self.code(session)
            let reply = try await session.redeem(code: code, verifier: verifier, redirectURI: "http://127.0.0.1:9/elsewhere")
            expectOAuthError(reply, "invalid_grant")
        }
    }

    @Test func unknownCodeIsInvalidGrant() async throws {
        try await IssuerSession.run { session in
            expectOAuthError(try await session.redeem(code: "made-up", verifier: IssuerSession.verifier()), "invalid_grant")
        }
    }

    @Test func refreshRotatesTheRefreshToken() async throws {
        try await IssuerSession.run { session in
            let auth = try await session.authenticator()
            let first = try await session.signIn(user: "admin")
            let oldRefresh = try #require(first.json["refresh_token"] as? String)

            let second = try await session.refresh(oldRefresh)
            #expect(second.status == 200)
            #expect(second.headers["cache-control"] == "no-store")
            let newRefresh = try #require(second.json["refresh_token"] as? String)
            #expect(newRefresh != oldRefresh)
            let principal = try await auth.authenticate(bearerToken: try #require(second.json["access_token"] as? String))
            #expect(principal.roles == ["Sitrep.Admin"])
            let id = try jwtParts(try #require(second.json["id_token"] as? String)).claims
            #expect(id["nonce"] == nil)
            #expect(id["aud"] as? String == DevIssuer.clientId)

            expectOAuthError(try await session.refresh(oldRefresh), "invalid_grant")
            #expect(try await session.refresh(newRefresh).status == 200)
            #expect(session.issuer.tokenRequests == 4)
        }
    }

    @Test func revokedRefreshTokensAreInvalidGrant() async throws {
        try await IssuerSession.run { session in
            let reply = try await session.signIn()
            let refreshToken = try #require(reply.json["refresh_token"] as? String)
            session.issuer.revokeAllRefreshTokens()
            expectOAuthError(try await session.refresh(refreshToken), "invalid_grant")
        }
    }

    @Test func malformedTokenRequests() async throws {
        try await IssuerSession.run { session in
            let endpoint = session.issuer.tokenEndpoint
            expectOAuthError(
                try await session.post(endpoint, form: [("client_id", DevIssuer.clientId)]), "invalid_request")
            expectOAuthError(
                try await session.post(endpoint, form: [("grant_type", "password"), ("client_id", DevIssuer.clientId)]),
                "unsupported_grant_type")
            expectOAuthError(
                try await session.post(
                    endpoint, form: [("grant_type", "refresh_token"), ("client_id", DevIssuer.clientId), ("refresh_token", "x")],
                    contentType: "application/json"),
                "invalid_request")
            expectOAuthError(
                try await session.post(endpoint, form: [("grant_type", "authorization_code"), ("client_id", DevIssuer.clientId)]),
                "invalid_request")
            expectOAuthError(
                try await session.post(endpoint, form: [("grant_type", "refresh_token"), ("refresh_token", "x")]),
                "invalid_request")
            expectOAuthError(
                try await session.post(
                    endpoint, form: [("grant_type", "refresh_token"), ("client_id", "someone-else"), ("refresh_token", "x")]),
                "invalid_client", status: 401)
            #expect(session.issuer.tokenRequests == 6)
        }
    }

    @Test func clientSecretIsRequiredWhenConfigured() async throws {
        let configuration = LocalIssuerFixtures.configuration { $0.clientSecret = "s3cret:+/" }
        try await IssuerSession.run(configuration) { session in
            let endpoint = session.issuer.tokenEndpoint
            func redeem(_ extra: [(String, String)], basic: (String, String)? = nil) async throws -> IssuerSession.Reply {
                let (code, verifier) = try await LocalIssuerTokenTests.code(session)
                let form: [(String, String)] =
                    [
                        ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", LocalIssuerFixtures.redirectURI),
                        ("code_verifier", verifier),
                    ] + extra
                return try await session.post(endpoint, form: form, basic: basic)
            }
            expectOAuthError(try await redeem([("client_id", DevIssuer.clientId)]), "invalid_client", status: 401)
            let wrong = try await redeem([("client_id", DevIssuer.clientId), ("client_secret", "guess")])
            expectOAuthError(wrong, "invalid_client", status: 401)
            #expect(wrong.headers["www-authenticate"]?.hasPrefix("Basic") == true)
            expectOAuthError(try await redeem([], basic: (DevIssuer.clientId, "guess")), "invalid_client", status: 401)
            // Both methods at once.
            expectOAuthError(
                try await redeem([("client_secret", "s3cret:+/")], basic: (DevIssuer.clientId, "s3cret:+/")), "invalid_request")

            let post = try await redeem([("client_id", DevIssuer.clientId), ("client_secret", "s3cret:+/")])
            #expect(post.status == 200)
            let basic = try await redeem([], basic: (DevIssuer.clientId, "s3cret:+/"))
            #expect(basic.status == 200)

            // Refresh needs the secret too.
            let refreshToken = try #require(basic.json["refresh_token"] as? String)
            expectOAuthError(try await session.refresh(refreshToken), "invalid_client", status: 401)
            let refreshed = try await session.post(
                endpoint, form: [("grant_type", "refresh_token"), ("refresh_token", refreshToken)],
                basic: (DevIssuer.clientId, "s3cret:+/"))
            #expect(refreshed.status == 200)
        }
    }

    @Test func keyRotationPublishesBothKeys() async throws {
        try await IssuerSession.run { session in
            let auth = try await session.authenticator()
            let before = try #require(try await session.signIn().json["access_token"] as? String)
            #expect(try jwtParts(before).header["kid"] as? String == "first")

            try session.issuer.rotateKey(privateKeyPEM: LocalIssuerFixtures.secondKey, keyId: "second")
            #expect(session.issuer.currentKeyId == "second")
            let reply = try await session.signIn()
            let after = try #require(reply.json["access_token"] as? String)
            #expect(try jwtParts(after).header["kid"] as? String == "second")
            #expect(try jwtParts(try #require(reply.json["id_token"] as? String)).header["kid"] as? String == "second")

            let jwks = try await session.get(session.issuer.jwksURI)
            let kids = (jwks.json["keys"] as? [[String: Any]] ?? []).compactMap { $0["kid"] as? String }
            #expect(kids.sorted() == ["first", "second"])
            // The API picks the new key up on first sight of its kid and still accepts the old one.
            #expect(try await auth.authenticate(bearerToken: after).roles == ["Sitrep.Viewer"])
            #expect(try await auth.authenticate(bearerToken: before).roles == ["Sitrep.Viewer"])
            #expect(await auth.trustedKeyIds == ["first", "second"])

            #expect(throws: LocalIssuerError.self) {
                try session.issuer.rotateKey(privateKeyPEM: "garbage", keyId: "third")
            }
        }
    }
}

@Suite("Local issuer: helpers")
struct LocalIssuerHelperTests {
    @Test func pkceChallengeMatchesRFC7636Example() {
        // RFC 7636 Appendix B.
        #expect(
            PKCE.challenge(for: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(!PKCE.isWellFormed("short"))
    }

    @Test func formEncoding() throws {
        #expect(try FormEncoding.decode("a=1&b=x+y%2Bz&c=&d") == ["a": "1", "b": "x y+z"])
        #expect(throws: FormEncoding.Failure.repeated("a")) { try FormEncoding.decode("a=1&a=2") }
        #expect(throws: FormEncoding.Failure.malformed) { try FormEncoding.decode("a=%zz") }
        #expect(FormEncoding.encode([("s", "a b&c=/é")]) == "s=a%20b%26c%3D%2F%C3%A9")
    }
}
