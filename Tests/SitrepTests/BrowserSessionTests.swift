import AsyncHTTPClient
import Auth
import Crypto
import Foundation
import Generated
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LocalIssuer
import NIOCore
import SitrepRuntime
import Testing

/// The backend-for-frontend flow end to end against the local OpenID Connect provider (the same
/// code path as Azure AD): login → provider → callback → session → CSRF → refresh → step-up →
/// idle expiry → logout, with cookie attributes and audit events asserted.
@Suite("browser sessions (BFF)", .enabled(if: SitrepHarness.isConfigured), .serialized)
struct BrowserSessionTests {
    static let keyFile = NSTemporaryDirectory() + "sitrep-bff-tests/issuer.pem"

    static func withIssuer(_ body: (LocalIssuer) async throws -> Void) async throws {
        let pem = try DevIssuer.loadOrCreatePrivateKey(at: keyFile)
        let issuer = try await LocalIssuer.start(LocalIssuerConfiguration(privateKeyPEM: pem), logger: TestDatabase.logger)
        do {
            try await body(issuer)
        } catch {
            await issuer.stop()
            throw error
        }
        await issuer.stop()
    }

    /// A client for the provider's pages that does not follow redirects (the test is the browser).
    static let browser = HTTPClient(
        eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))

    /// The value of cookie `name` in a `Set-Cookie` header, and its attributes (lowercased).
    static func setCookie(_ r: TestResponse, _ name: String) -> (value: String, attributes: [String])? {
        guard let header = r.headers[.setCookie], header.hasPrefix(name + "=") else { return nil }
        let parts = header.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        return (String(parts[0].dropFirst(name.count + 1)), parts.dropFirst().map { $0.lowercased() })
    }

    static func query(_ url: String) -> [String: String] {
        var out: [String: String] = [:]
        for item in URLComponents(string: url)?.queryItems ?? [] { out[item.name] = item.value }
        return out
    }

    /// Signs `user` in through the whole flow; returns the session cookie value.
    static func signIn(
        _ client: any TestClientProtocol, user: String, stepUp: Bool = false, returnTo: String = "/briefings"
    ) async throws -> String {
        let start = try await client.execute(
            uri: "/v1/auth/login?returnTo=\(returnTo)&loginHint=\(user)\(stepUp ? "&stepUp=true" : "")", method: .get, headers: [:])
        #expect(start.status == .found)
        let login = try #require(setCookie(start, "__Host-sitrep_login"))
        #expect(login.attributes.contains("path=/") && login.attributes.contains("secure") && login.attributes.contains("httponly"))
        #expect(login.attributes.contains("samesite=lax") && !login.attributes.contains { $0.hasPrefix("domain") })
        let authorize = try #require(start.headers[.location])
        let authorizeQuery = query(authorize)
        #expect(authorizeQuery["code_challenge_method"] == "S256")
        #expect(authorizeQuery["redirect_uri"] == SitrepHarness.publicURL + "/v1/auth/callback")
        #expect((authorizeQuery["claims"] != nil) == stepUp)

        // The provider signs the hinted user in and sends the browser back with a code.
        let provider = try await browser.execute(HTTPClientRequest(url: authorize), timeout: .seconds(10))
        #expect(provider.status == .found)
        let back = try #require(provider.headers.first(name: "Location"))
        let backQuery = query(back)
        let code = try #require(backQuery["code"])
        let state = try #require(backQuery["state"])

        var headers = HTTPFields()
        headers[.cookie] = "__Host-sitrep_login=\(login.value)"
        let callback = try await client.execute(
            uri: "/v1/auth/callback?code=\(code)&state=\(state)", method: .get, headers: headers)
        #expect(callback.status == .found, "\(callback.text)")
        #expect(callback.headers[.location] == returnTo)
        let session = try #require(setCookie(callback, "__Host-sitrep_session"))
        #expect(session.attributes.contains("path=/") && session.attributes.contains("secure") && session.attributes.contains("httponly"))
        #expect(session.attributes.contains("samesite=strict") && !session.attributes.contains { $0.hasPrefix("domain") })
        #expect(session.attributes.contains("max-age=28800"))

        // The state is single use: replaying the callback is refused.
        let replay = try await client.execute(uri: "/v1/auth/callback?code=\(code)&state=\(state)", method: .get, headers: headers)
        #expect(replay.status == .badRequest)
        #expect(replay.problemCode == "auth.invalid_callback")
        return session.value
    }

    static func cookie(_ value: String, csrf: Bool = false, json: Bool = false) -> HTTPFields {
        var h = HTTPFields()
        h[.cookie] = "__Host-sitrep_session=\(value)"
        if csrf { h[HTTPField.Name("X-Sitrep-CSRF")!] = "1" }
        if json { h[.contentType] = "application/json" }
        return h
    }

    @Test func signInSessionCSRFRefreshStepUpAndLogout() async throws {
        try await Self.withIssuer { issuer in
            try await SitrepHarness.with(issuer: issuer) { client, h in
                let sid = try await Self.signIn(client, user: "exec")

                // The session, and /v1/me through it.
                let s = try await client.execute(uri: "/v1/auth/session", method: .get, headers: Self.cookie(sid)).decode(Session.self)
                #expect(s.roles == [.sitrepExecutive])
                #expect(s.mfa == false)
                #expect(s.expiresAt.timeIntervalSince(s.authenticatedAt) == 8 * 3600)
                let me = try await client.execute(uri: "/v1/me", method: .get, headers: Self.cookie(sid)).decode(Me.self)
                #expect(me.objectId == DevIssuer.objectId(forUser: "exec"))
                #expect(me.sessionExpiresAt != nil)

                // CSRF: writes with the cookie need the custom header, an allowed Origin, and no cross-site fetch.
                let noHeader = try await client.execute(uri: "/v1/auth/refresh", method: .post, headers: Self.cookie(sid))
                #expect(noHeader.status == .forbidden)
                #expect(noHeader.problemCode == "auth.csrf_rejected")
                var evil = Self.cookie(sid, csrf: true)
                evil[.origin] = "https://evil.example"
                #expect(try await client.execute(uri: "/v1/auth/refresh", method: .post, headers: evil).problemCode == "auth.csrf_rejected")
                var crossSite = Self.cookie(sid, csrf: true)
                crossSite[HTTPField.Name("Sec-Fetch-Site")!] = "cross-site"
                #expect(try await client.execute(uri: "/v1/auth/refresh", method: .post, headers: crossSite).problemCode == "auth.csrf_rejected")

                // Refresh: new tokens from the provider, a new session id; the old cookie is dead.
                let requestsBefore = issuer.tokenRequests
                var good = Self.cookie(sid, csrf: true)
                good[.origin] = SitrepHarness.publicURL
                let refreshed = try await client.execute(uri: "/v1/auth/refresh", method: .post, headers: good)
                #expect(refreshed.status == .ok, "\(refreshed.text)")
                #expect(issuer.tokenRequests == requestsBefore + 1)
                let sid2 = try #require(Self.setCookie(refreshed, "__Host-sitrep_session")).value
                #expect(sid2 != sid)
                #expect(try await client.execute(uri: "/v1/auth/session", method: .get, headers: Self.cookie(sid)).status == .unauthorized)
                #expect(try await client.execute(uri: "/v1/auth/session", method: .get, headers: Self.cookie(sid2)).status == .ok)

                // Step-up: an x-mfa write with a plain session is a claims challenge; signing in
                // again with stepUp gives a new session that satisfies it.
                let change = buffer(#"{"level":"elevated","rationale":"Regional escalation"}"#)
                let challenged = try await client.execute(
                    uri: "/v1/posture/cyber", method: .put, headers: Self.cookie(sid2, csrf: true, json: true), body: change)
                #expect(challenged.status == .unauthorized)
                #expect(challenged.problemCode == "auth.step_up_required")
                let stepped = try await Self.signIn(client, user: "exec", stepUp: true)
                #expect(stepped != sid2)
                let s2 = try await client.execute(uri: "/v1/auth/session", method: .get, headers: Self.cookie(stepped)).decode(Session.self)
                #expect(s2.mfa == true)
                let domain = try await client.execute(uri: "/v1/posture/cyber", method: .get, headers: Self.cookie(stepped))
                var write = Self.cookie(stepped, csrf: true, json: true)
                write[.ifMatch] = domain.headers[.eTag]
                #expect(try await client.execute(uri: "/v1/posture/cyber", method: .put, headers: write, body: change).status == .ok)

                // Logout: session gone, cookie expired, site data cleared.
                let out = try await client.execute(uri: "/v1/auth/logout", method: .post, headers: Self.cookie(stepped, csrf: true))
                #expect(out.status == .noContent)
                #expect(try #require(Self.setCookie(out, "__Host-sitrep_session")).attributes.contains("max-age=0"))
                #expect(out.headers[HTTPField.Name("Clear-Site-Data")!] == "\"cookies\"")
                #expect(try await client.execute(uri: "/v1/auth/session", method: .get, headers: Self.cookie(stepped)).status == .unauthorized)

                // Audit: sign-ins, refresh, sign-out, the CSRF refusals and the step-up challenge.
                let rows = try await h.db.client.query(
                    "SELECT action, outcome FROM audit_events WHERE action LIKE 'auth.%' ORDER BY sequence")
                var actions: [String] = []
                for try await (action, outcome) in rows.decode((String, String).self) { actions.append("\(action):\(outcome)") }
                #expect(actions.filter { $0 == "auth.login:succeeded" }.count == 2)
                #expect(actions.contains("auth.refresh:succeeded"))
                #expect(actions.contains("auth.logout:succeeded"))
                #expect(actions.filter { $0 == "auth.csrf_rejected:refused" }.count == 3)
                #expect(actions.contains("auth.step_up_required:refused"))
            }
        }
    }

    @Test func idleExpiryInlineRefreshAndRefusedRefresh() async throws {
        try await Self.withIssuer { issuer in
            try await SitrepHarness.with(issuer: issuer, sessionIdle: .seconds(2)) { client, h in
                // Access tokens that are always within the refresh margin: every use refreshes inline.
                issuer.setAccessTokenLifetime(.seconds(60))
                let sid = try await Self.signIn(client, user: "viewer")
                let before = issuer.tokenRequests
                #expect(try await client.execute(uri: "/v1/auth/session", method: .get, headers: Self.cookie(sid)).status == .ok)
                #expect(issuer.tokenRequests == before + 1)

                // Idle: unused for longer than the idle timeout, the session is gone.
                try await Task.sleep(for: .milliseconds(2500))
                #expect(try await client.execute(uri: "/v1/auth/session", method: .get, headers: Self.cookie(sid)).status == .unauthorized)

                // The provider refuses the refresh: the session ends and the failure is audited.
                let sid2 = try await Self.signIn(client, user: "viewer")
                issuer.revokeAllRefreshTokens()
                let refused = try await client.execute(uri: "/v1/auth/session", method: .get, headers: Self.cookie(sid2))
                #expect(refused.status == .unauthorized)
                #expect(refused.problemCode == "auth.unauthenticated")
                let rows = try await h.db.client.query(
                    "SELECT count(*)::int8 FROM audit_events WHERE action = 'auth.refresh' AND outcome = 'refused'")
                for try await n in rows.decode(Int.self) { #expect(n == 1) }
            }
        }
    }

    @Test func redisDownFailsSessionsClosedButBearerTokensWork() async throws {
        let server = try PrivateRedisServer.make()
        try await server.startAsync()
        defer { server.remove() }
        try await Self.withIssuer { issuer in
            try await SitrepHarness.with(redisURL: server.url, issuer: issuer) { client, _ in
                let sid = try await Self.signIn(client, user: "viewer")
                // A bearer token from the same provider, through the real code flow's token endpoint.
                let tokens = try await Self.bearerToken(issuer, user: "viewer")
                try await server.stopAsync()
                let closed = try await client.execute(uri: "/v1/auth/session", method: .get, headers: Self.cookie(sid))
                #expect(closed.status == .serviceUnavailable)
                #expect(closed.problemCode == "dependency.unavailable")
                var bearer = HTTPFields()
                bearer[.authorization] = "Bearer \(tokens)"
                #expect(try await client.execute(uri: "/v1/me", method: .get, headers: bearer).status == .ok)
                try await server.startAsync()
            }
        }
    }

    /// An access token for `user` from the provider (authorize with PKCE, then the token endpoint),
    /// the way MSAL in the SPA would get one.
    static func bearerToken(_ issuer: LocalIssuer, user: String) async throws -> String {
        let verifier = "v-" + String(repeating: "x", count: 50)
        let challenge = Base64URL.encode(Array(SHA256.hash(data: Array(verifier.utf8))))
        let redirect = "https://sitrep.test/spa"
        var components = URLComponents(string: issuer.authorizationEndpoint)!
        components.queryItems = [
            .init(name: "client_id", value: issuer.configuration.clientId), .init(name: "response_type", value: "code"),
            .init(name: "redirect_uri", value: redirect), .init(name: "scope", value: "openid api://sitrep/access_as_user"),
            .init(name: "state", value: "s"), .init(name: "nonce", value: "n"), .init(name: "code_challenge", value: challenge),
            .init(name: "code_challenge_method", value: "S256"), .init(name: "login_hint", value: user),
        ]
        let authorize = try await browser.execute(HTTPClientRequest(url: components.url!.absoluteString), timeout: .seconds(10))
        let back = try #require(authorize.headers.first(name: "Location"))
        let code = try #require(query(back)["code"])
        var request = HTTPClientRequest(url: issuer.tokenEndpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(
            ByteBuffer(
                string: "grant_type=authorization_code&code=\(code)&redirect_uri=https%3A%2F%2Fsitrep.test%2Fspa&code_verifier=\(verifier)"
                    + "&client_id=\(issuer.configuration.clientId)"))
        let response = try await browser.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        struct Answer: Decodable { var access_token: String }
        return try JSONDecoder().decode(Answer.self, from: Data(body.readableBytesView)).access_token
    }

    @Test func callbackRefusals() async throws {
        try await Self.withIssuer { issuer in
            try await SitrepHarness.with(issuer: issuer) { client, _ in
                // Unknown state.
                var headers = HTTPFields()
                headers[.cookie] = "__Host-sitrep_login=whatever"
                let unknown = try await client.execute(uri: "/v1/auth/callback?code=abc&state=nope", method: .get, headers: headers)
                #expect(unknown.status == .badRequest)
                #expect(unknown.problemCode == "auth.invalid_callback")

                // A callback carried to another browser (no or another binding cookie).
                let start = try await client.execute(uri: "/v1/auth/login?loginHint=admin", method: .get, headers: [:])
                let location = try #require(start.headers[.location])
                let provider = try await Self.browser.execute(HTTPClientRequest(url: location), timeout: .seconds(10))
                let back = try #require(provider.headers.first(name: "Location"))
                let q = Self.query(back)
                let stolen = try await client.execute(
                    uri: "/v1/auth/callback?code=\(q["code"]!)&state=\(q["state"]!)", method: .get, headers: headers)
                #expect(stolen.status == .badRequest)
                #expect(stolen.problemCode == "auth.invalid_callback")

                // The provider reports an error.
                let start2 = try await client.execute(uri: "/v1/auth/login", method: .get, headers: [:])
                let binding = try #require(Self.setCookie(start2, "__Host-sitrep_login")).value
                let location2 = try #require(start2.headers[.location])
                let state = try #require(Self.query(location2)["state"])
                headers[.cookie] = "__Host-sitrep_login=\(binding)"
                let denied = try await client.execute(
                    uri: "/v1/auth/callback?state=\(state)&error=access_denied&error_description=no", method: .get, headers: headers)
                #expect(denied.status == .unauthorized)
                #expect(denied.problemCode == "auth.login_failed")

                // returnTo must be a same-origin path.
                let offsite = try await client.execute(uri: "/v1/auth/login?returnTo=//evil.example/x", method: .get, headers: [:])
                #expect(offsite.status == .badRequest)
            }
        }
    }
}
