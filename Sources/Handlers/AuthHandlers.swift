import Auth
import Crypto
import Foundation
import Generated
import Redis
import SitrepRuntime
import Storage

/// The sign-in transaction kept in Redis between `login` and `callback` (10 minutes, single use).
struct LoginTransaction: Codable, Sendable {
    var nonce: String
    var verifier: String
    var returnTo: String
    var stepUp: Bool
    /// SHA-256 of the `__Host-sitrep_login` cookie value set in the browser that started it.
    var binding: String
}

extension SitrepHandlers {
    static let loginTTLSeconds = 600

    func requireSessions() throws -> BrowserSessions {
        guard let sessions else {
            throw ProblemError(
                .serviceUnavailable("Browser sign-in is not configured on this deployment; use a bearer token.", code: "auth.sessions_unavailable"))
        }
        return sessions
    }

    // MARK: login

    public func login(_ input: Login.Input, context: OperationContext) async throws -> Login.Output {
        let sessions = try requireSessions()
        let state = BrowserSessions.randomToken()
        let binding = BrowserSessions.randomToken()
        let verifier = BrowserSessions.randomToken()
        let transaction = LoginTransaction(
            nonce: BrowserSessions.randomToken(), verifier: verifier, returnTo: input.returnTo ?? "/", stepUp: input.stepUp ?? false,
            binding: SHA256.hash(data: Array(binding.utf8)).hexString)
        let json = try JSONEncoder().encode(transaction)
        _ = try await redis.send([
            Array("SET".utf8), Array("sitrep:login:\(state)".utf8), Array(json), Array("EX".utf8), Array(String(Self.loginTTLSeconds).utf8),
        ])
        let challenge = Base64URL.encode(Array(SHA256.hash(data: Array(verifier.utf8))))
        // Step-up as the issuer understands it: Entra's claims request for the authentication
        // context, or the standard acr_values.
        let acrsClaims = #"{"access_token":{"acrs":{"essential":true,"value":"\#(stepUpContext)"}}}"#
        let viaClaims = sessions.settings.stepUp == .claims
        let url = sessions.oidc.authorizationURL(
            redirectURI: sessions.settings.redirectURI, state: state, nonce: transaction.nonce, codeChallenge: challenge,
            scope: sessions.settings.scope, claims: transaction.stepUp && viaClaims ? acrsClaims : nil,
            acrValues: transaction.stepUp && !viaClaims ? stepUpContext : nil, loginHint: input.loginHint)
        // Lax, not Strict: the provider's redirect back to the callback is a cross-site navigation.
        let cookie =
            "\(BrowserSessions.loginCookieName)=\(binding); Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=\(Self.loginTTLSeconds)"
        return .found(location: url.absoluteString, setCookie: cookie)
    }

    // MARK: callback

    public func authCallback(_ input: AuthCallback.Input, context: OperationContext) async throws -> AuthCallback.Output {
        let sessions = try requireSessions()
        func invalid(_ detail: String) -> AuthCallback.Output {
            .badRequest(Problem(status: 400, code: "auth.invalid_callback", title: "Invalid sign-in callback", detail: detail))
        }
        // Single use: the transaction is taken out of Redis whatever happens next.
        let reply = try await redis.send(["GETDEL", "sitrep:login:\(input.state)"])
        guard case .bulk(let bytes) = reply, let transaction = try? JSONDecoder().decode(LoginTransaction.self, from: Data(bytes)) else {
            return invalid("This sign-in is unknown, already used or expired; start again from /v1/auth/login.")
        }
        guard let binding = input.hostSitrepLogin,
            SHA256.hash(data: Array(binding.utf8)).hexString == transaction.binding
        else {
            return invalid("This sign-in was started in another browser; start again from /v1/auth/login.")
        }
        if let error = input.error {
            await sessions.audit(
                context.audit("auth.login", entityType: "session", entityId: "sign-in", outcome: .refused, details: ["error": .string(error)])
            )
            return .unauthorized(loginFailed("The identity provider refused the sign-in (\(error))."))
        }
        guard let code = input.code else { return invalid("The callback has no authorization code.") }

        let tokens: OIDCClient.Tokens
        do {
            tokens = try await sessions.oidc.exchange(
                code: code, verifier: transaction.verifier, redirectURI: sessions.settings.redirectURI, scope: sessions.settings.scope)
        } catch let refused as OIDCClient.Refused {
            await sessions.audit(
                context.audit(
                    "auth.login", entityType: "session", entityId: "sign-in", reason: "code exchange refused: \(refused.error)", outcome: .refused))
            return .unauthorized(loginFailed("The identity provider refused the code exchange (\(refused.error))."))
        } catch let unavailable as OIDCClient.Unavailable {
            throw IdentityProviderUnavailable(reason: unavailable.reason)
        }
        let principal: Principal
        do {
            guard let idToken = tokens.idToken else { throw AuthenticationFailure(description: "the provider sent no ID token") }
            let who = try await sessions.verifier.verifyIDToken(idToken, clientId: sessions.oidc.clientId, nonce: transaction.nonce)
            principal = try await sessions.verifier.authenticate(bearerToken: tokens.accessToken)
            guard principal.objectId == who.objectId, principal.tenantId == who.tenantId else {
                throw AuthenticationFailure(description: "the ID token and the access token name different users")
            }
        } catch let failure as AuthenticationFailure {
            await sessions.audit(
                context.audit("auth.login", entityType: "session", entityId: "sign-in", reason: failure.description, outcome: .refused))
            return .unauthorized(loginFailed("The tokens from the identity provider were refused: \(failure.description)."))
        }
        let created = try await sessions.create(principal: principal, tokens: tokens)
        var event = context.audit("auth.login", entityType: "session", entityId: principal.id, toState: "signed_in")
        event.actorId = principal.id
        event.actorName = principal.displayName
        event.actorRoles = principal.roles.sorted()
        event.details = ["stepUp": .bool(transaction.stepUp), "mfa": .bool(principal.authContexts.contains(stepUpContext))]
        await sessions.audit(event)
        return .found(
            location: transaction.returnTo, setCookie: sessions.cookie(created.cookie, maxAge: Int(sessions.settings.absolute.timeInterval)))
    }

    private func loginFailed(_ detail: String) -> Problem {
        Problem(status: 401, code: "auth.login_failed", title: "Sign-in failed", detail: detail)
    }

    // MARK: session

    func session(_ s: StoredSession, sessions: BrowserSessions) -> Session {
        Session(
            principalId: s.principalId, displayName: s.displayName,
            roles: s.roles.compactMap(Role.init(rawValue:)).sorted { $0.rawValue < $1.rawValue },
            mfa: s.authContexts.contains(stepUpContext), authenticatedAt: Date(timeIntervalSince1970: s.authenticatedAt),
            idleExpiresAt: Date(timeIntervalSince1970: min(s.lastSeenAt + sessions.settings.idle.timeInterval, s.absoluteExpiresAt)),
            expiresAt: Date(timeIntervalSince1970: s.absoluteExpiresAt))
    }

    public func getSession(_ input: GetSession.Input, context: OperationContext) async throws -> GetSession.Output {
        let sessions = try requireSessions()
        guard let key = context.caller.sessionKey, let s = try await sessions.fetch(key: key) else {
            return .unauthorized(
                Problem(status: 401, code: "auth.unauthenticated", title: "Unauthorized", detail: "The session has ended; sign in again."))
        }
        return .ok(session(s, sessions: sessions))
    }

    public func refreshSession(_ input: RefreshSession.Input, context: OperationContext) async throws -> RefreshSession.Output {
        let sessions = try requireSessions()
        let ended = Problem(status: 401, code: "auth.unauthenticated", title: "Unauthorized", detail: "The session has ended; sign in again.")
        guard let key = context.caller.sessionKey, let current = try await sessions.fetch(key: key) else { return .unauthorized(ended) }
        guard let refreshed = try await sessions.refreshTokens(current, now: Date().timeIntervalSince1970) else {
            try await sessions.end(key: key)
            return .unauthorized(
                Problem(
                    status: 401, code: "auth.unauthenticated", title: "Unauthorized",
                    detail: "The identity provider refused to extend the session; sign in again."))
        }
        // New id for the refreshed session: the old cookie stops working.
        let value = BrowserSessions.randomToken()
        var s = refreshed
        s.lastSeenAt = Date().timeIntervalSince1970
        try await sessions.storeNew(s, cookie: value)
        try await sessions.end(key: key)
        await sessions.audit(context.audit("auth.refresh", entityType: "session", entityId: s.principalId))
        return .ok(session(s, sessions: sessions), setCookie: sessions.cookie(value, maxAge: Int(s.absoluteExpiresAt - s.lastSeenAt)))
    }

    public func logout(_ input: Logout.Input, context: OperationContext) async throws -> Logout.Output {
        let sessions = try requireSessions()
        if let key = context.caller.sessionKey { try await sessions.end(key: key) }
        await sessions.audit(context.audit("auth.logout", entityType: "session", entityId: context.caller.id, toState: "signed_out"))
        return .noContent(setCookie: sessions.expiredCookie(), clearSiteData: "\"cookies\"")
    }
}
