import AsyncHTTPClient
import Foundation
import HTTPTracing
import Logging
import NIOCore

/// The backend-for-frontend's side of the OpenID Connect authorization code flow (with PKCE):
/// where to send the browser, and the token endpoint calls (code exchange, refresh). Endpoints
/// come from the issuer's discovery document, so Azure AD and a sovereign issuer differ only in
/// the issuer URL.
public struct OIDCClient: Sendable {
    public struct Endpoints: Sendable, Equatable {
        public var authorization: URL
        public var token: URL
    }

    /// What the token endpoint answered.
    public struct Tokens: Sendable, Equatable {
        public var accessToken: String
        public var idToken: String?
        public var refreshToken: String?
        /// Seconds until the access token expires, as the provider said.
        public var expiresIn: Int
    }

    /// The provider refused (an OAuth error such as `invalid_grant`): the user signs in again.
    public struct Refused: Error, Sendable, CustomStringConvertible {
        public var error: String
        public var errorDescription: String?
        public var description: String { "the identity provider refused: \(error)" }
    }

    /// The provider could not be reached or answered something unusable: a 503, retry later.
    public struct Unavailable: Error, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String { "the identity provider is unavailable: \(reason)" }
    }

    public let issuer: String
    public let clientId: String
    let clientSecret: String?
    public let endpoints: Endpoints
    let httpClient: HTTPClient
    let logger: Logger
    var timeout: TimeAmount = .seconds(10)

    /// Reads the issuer's discovery document (its `issuer` must match exactly) for the
    /// authorization and token endpoints. Throws ``AuthSetupError`` when it cannot.
    public static func discover(
        issuer: String, clientId: String, clientSecret: String?, httpClient: HTTPClient, logger: Logger
    ) async throws -> OIDCClient {
        guard let url = URL(string: issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer) else {
            throw AuthSetupError("issuer \(issuer) is not a URL")
        }
        let discovery = url.appendingPathComponent(".well-known/openid-configuration")
        try JWKSFetcher.requireSecure(discovery, what: "issuer")
        var request = HTTPClientRequest(url: discovery.absoluteString)
        request.headers.add(name: "Accept", value: "application/json")
        let data: Data
        do {
            data = try await ClientSpans.withClientSpan("OIDC discovery", service: "OIDC", request: request) { request, span in
                let response = try await httpClient.execute(request, timeout: .seconds(10), logger: logger)
                span.status(Int(response.status.code))
                guard response.status == .ok else { throw AuthSetupError("GET \(discovery) answered \(response.status.code)") }
                return Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
            }
        } catch let e as AuthSetupError {
            throw e
        } catch {
            throw AuthSetupError("GET \(discovery) failed: \(error)")
        }
        struct Document: Decodable {
            var issuer: String?
            var authorization_endpoint: String?
            var token_endpoint: String?
        }
        guard let document = try? JSONDecoder().decode(Document.self, from: data) else {
            throw AuthSetupError("the discovery document at \(discovery) is not valid JSON")
        }
        guard document.issuer == issuer else {
            throw AuthSetupError("the discovery document names issuer \(document.issuer ?? "(none)"), not \(issuer)")
        }
        guard let a = document.authorization_endpoint.flatMap(URL.init(string:)),
            let t = document.token_endpoint.flatMap(URL.init(string:))
        else {
            throw AuthSetupError("the discovery document at \(discovery) lacks authorization_endpoint or token_endpoint")
        }
        try JWKSFetcher.requireSecure(t, what: "token_endpoint")
        return OIDCClient(
            issuer: issuer, clientId: clientId, clientSecret: clientSecret, endpoints: Endpoints(authorization: a, token: t),
            httpClient: httpClient, logger: logger)
    }

    /// The authorization request URL (code flow, PKCE S256). `claims` is the JSON of an OIDC
    /// claims request (the step-up authentication context), `loginHint` a user to pre-select.
    public func authorizationURL(
        redirectURI: String, state: String, nonce: String, codeChallenge: String, scope: String, claims: String?,
        acrValues: String? = nil, loginHint: String? = nil
    ) -> URL {
        var components = URLComponents(url: endpoints.authorization, resolvingAgainstBaseURL: false)!
        var items = components.queryItems ?? []
        items += [
            URLQueryItem(name: "client_id", value: clientId), URLQueryItem(name: "response_type", value: "code"),
            URLQueryItem(name: "redirect_uri", value: redirectURI), URLQueryItem(name: "response_mode", value: "query"),
            URLQueryItem(name: "scope", value: scope), URLQueryItem(name: "state", value: state),
            URLQueryItem(name: "nonce", value: nonce), URLQueryItem(name: "code_challenge", value: codeChallenge),
            URLQueryItem(name: "code_challenge_method", value: "S256"),
        ]
        if let claims { items.append(URLQueryItem(name: "claims", value: claims)) }
        if let acrValues { items.append(URLQueryItem(name: "acr_values", value: acrValues)) }
        if let loginHint { items.append(URLQueryItem(name: "login_hint", value: loginHint)) }
        components.queryItems = items
        // URLComponents leaves '+' alone in queries; providers read it as a space.
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        return components.url!
    }

    /// Exchanges an authorization code (with the PKCE verifier) for tokens.
    public func exchange(code: String, verifier: String, redirectURI: String, scope: String) async throws -> Tokens {
        try await tokenRequest([
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("code_verifier", verifier),
            ("scope", scope),
        ])
    }

    /// Uses a refresh token (providers may rotate it: keep the one returned, if any).
    public func refresh(refreshToken: String, scope: String) async throws -> Tokens {
        try await tokenRequest([("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("scope", scope)])
    }

    private func tokenRequest(_ fields: [(String, String)]) async throws -> Tokens {
        var form = fields + [("client_id", clientId)]
        if let clientSecret { form.append(("client_secret", clientSecret)) }
        var request = HTTPClientRequest(url: endpoints.token.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: Self.formEncode(form)))
        let status: UInt
        let data: Data
        do {
            (status, data) = try await ClientSpans.withClientSpan("OIDC token", service: "OIDC", request: request) { request, span in
                let response = try await httpClient.execute(request, timeout: timeout, logger: logger)
                span.status(Int(response.status.code))
                return (response.status.code, Data(try await response.body.collect(upTo: 1 << 20).readableBytesView))
            }
        } catch {
            throw Unavailable(reason: "token endpoint: \(error)")
        }
        struct Answer: Decodable {
            var access_token: String?
            var id_token: String?
            var refresh_token: String?
            var expires_in: Int?
            var error: String?
            var error_description: String?
        }
        let answer = try? JSONDecoder().decode(Answer.self, from: data)
        if status == 200, let answer, let access = answer.access_token {
            return Tokens(accessToken: access, idToken: answer.id_token, refreshToken: answer.refresh_token, expiresIn: answer.expires_in ?? 3600)
        }
        if (400..<500).contains(status), let error = answer?.error {
            throw Refused(error: error, errorDescription: answer?.error_description)
        }
        throw Unavailable(reason: "token endpoint answered \(status)")
    }

    /// `application/x-www-form-urlencoded` (WHATWG): unreserved characters as they are, spaces as
    /// `+`, everything else percent-encoded.
    static func formEncode(_ fields: [(String, String)]) -> String {
        func encode(_ s: String) -> String {
            var out = ""
            for b in s.utf8 {
                switch b {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "*"):
                    out.unicodeScalars.append(Unicode.Scalar(b))
                case UInt8(ascii: " "): out += "+"
                default: out += String(format: "%%%02X", b)
                }
            }
            return out
        }
        return fields.map { encode($0.0) + "=" + encode($0.1) }.joined(separator: "&")
    }
}
