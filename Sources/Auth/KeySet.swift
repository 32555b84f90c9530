import AsyncHTTPClient
import Foundation
import HTTPTracing
import JWTKit
import Logging
import NIOCore
import NIOHTTP1

/// The signing keys trusted at one moment, by `kid`. Replaced whole on every successful refresh,
/// so a key the issuer has withdrawn stops being trusted.
struct TrustedKeySet: Sendable {
    enum Entry: Sendable, Equatable {
        /// An RS256 key; present in `collection` under its kid.
        case rs256
        /// The issuer published this kid for another algorithm (the JWK's own `alg`).
        case otherAlgorithm(String)
    }

    let entries: [String: Entry]
    /// Holds exactly the `.rs256` keys, each registered for RS256 under its kid, so that
    /// jwt-kit never falls back to a default key.
    let collection: JWTKeyCollection

    var count: Int { entries.count }
    var kids: [String] { entries.keys.sorted() }

    static let empty = TrustedKeySet(entries: [:], collection: JWTKeyCollection())

    /// Keys given as PEM (public key or X.509 certificate), trusted for RS256.
    static func fromPEM(_ pems: [String: String]) async throws -> TrustedKeySet {
        let collection = JWTKeyCollection()
        var entries: [String: Entry] = [:]
        for (kid, pem) in pems {
            guard !kid.isEmpty else { throw AuthSetupError("a trusted key has an empty kid") }
            let key: JWTKit.Insecure.RSA.PublicKey
            do {
                key = try parsePublicKey(pem: pem)
            } catch {
                throw AuthSetupError("trusted key \(kid) is not a usable RSA public key (2048 bits or more): \(error)")
            }
            await collection.add(rsa: key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
            entries[kid] = .rs256
        }
        return TrustedKeySet(entries: entries, collection: collection)
    }

    static func parsePublicKey(pem: String) throws -> JWTKit.Insecure.RSA.PublicKey {
        if pem.contains("BEGIN CERTIFICATE") {
            return try JWTKit.Insecure.RSA.PublicKey(certificatePEM: pem)
        }
        if pem.contains("PRIVATE KEY") {
            return try JWTKit.Insecure.RSA.PrivateKey(pem: pem).publicKey
        }
        return try JWTKit.Insecure.RSA.PublicKey(pem: pem)
    }

    /// Builds the set from a JWKS document. Keys that are not for signing, not RSA, or not
    /// decodable are skipped (with a log line); a JWK whose own `alg` is not RS256 is remembered
    /// so that tokens naming it are refused with a clear reason. Throws when no RS256 key remains.
    static func fromJWKS(_ data: Data, logger: Logger) async throws -> TrustedKeySet {
        let document: LenientJWKS
        do {
            document = try JSONDecoder().decode(LenientJWKS.self, from: data)
        } catch {
            throw AuthSetupError("the JWKS document is not valid JSON with a `keys` array")
        }
        let collection = JWTKeyCollection()
        var entries: [String: Entry] = [:]
        for jwk in document.keys {
            guard let kid = jwk.kid, !kid.isEmpty else { continue }
            guard jwk.kty == "RSA" else { continue }
            if let use = jwk.use, use != "sig" { continue }
            if let alg = jwk.alg, alg != "RS256" {
                entries[kid] = .otherAlgorithm(alg)
                continue
            }
            do {
                let key: JWTKit.Insecure.RSA.PublicKey
                if let n = jwk.n, let e = jwk.e {
                    key = try JWTKit.Insecure.RSA.PublicKey(modulus: n, exponent: e)
                } else if let der = jwk.x5c?.first {
                    key = try JWTKit.Insecure.RSA.PublicKey(certificatePEM: pemWrap(der, label: "CERTIFICATE"))
                } else {
                    logger.warning("JWKS key has neither n/e nor x5c; skipped", metadata: ["kid": "\(kid)"])
                    continue
                }
                await collection.add(rsa: key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
                entries[kid] = .rs256
            } catch {
                logger.warning("JWKS key is not a usable RSA key; skipped", metadata: ["kid": "\(kid)", "error": "\(error)"])
            }
        }
        guard entries.values.contains(.rs256) else {
            throw AuthSetupError("the JWKS document has no usable RS256 signing key")
        }
        return TrustedKeySet(entries: entries, collection: collection)
    }

    static func pemWrap(_ base64: String, label: String) -> String {
        var lines: [Substring] = []
        var rest = Substring(base64)
        while !rest.isEmpty {
            lines.append(rest.prefix(64))
            rest = rest.dropFirst(64)
        }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----\n"
    }
}

/// A JWKS decoded without jwt-kit's `JWK`, which refuses a whole set over one key type or
/// algorithm it does not know (Azure AD publishes only RSA keys today, other issuers mix).
struct LenientJWKS: Decodable {
    struct Key: Decodable {
        var kty: String?
        var kid: String?
        var use: String?
        var alg: String?
        var n: String?
        var e: String?
        var x5c: [String]?

        enum CodingKeys: String, CodingKey { case kty, kid, use, alg, n, e, x5c }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            kty = try? c.decodeIfPresent(String.self, forKey: .kty)
            kid = try? c.decodeIfPresent(String.self, forKey: .kid)
            use = try? c.decodeIfPresent(String.self, forKey: .use)
            alg = try? c.decodeIfPresent(String.self, forKey: .alg)
            n = try? c.decodeIfPresent(String.self, forKey: .n)
            e = try? c.decodeIfPresent(String.self, forKey: .e)
            x5c = try? c.decodeIfPresent([String].self, forKey: .x5c)
        }
    }
    var keys: [Key]
}

/// Fetches an issuer's signing keys over HTTPS: OIDC discovery (when no JWKS URL is configured)
/// then the JWKS document.
struct JWKSFetcher: Sendable {
    let configuration: AuthConfiguration
    let httpClient: HTTPClient
    let logger: Logger
    var timeout: TimeAmount = .seconds(5)
    var maxBodyBytes = 1 << 20

    /// The configured JWKS URL, or the one the discovery document names.
    func resolveJWKSURL() async throws -> URL {
        if let url = configuration.jwksURL {
            try Self.requireSecure(url, what: "JWKS URL")
            return url
        }
        guard let discoveryURL = configuration.discoveryURL else {
            throw AuthSetupError("issuer \(configuration.issuer) does not make a valid discovery URL")
        }
        try Self.requireSecure(discoveryURL, what: "issuer")
        let data = try await get(discoveryURL, "OIDC discovery")
        struct Discovery: Decodable {
            var issuer: String?
            var jwks_uri: String?
        }
        guard let document = try? JSONDecoder().decode(Discovery.self, from: data) else {
            throw AuthSetupError("the discovery document at \(discoveryURL) is not valid JSON")
        }
        // OpenID Connect Discovery 1.0 §4.3: the issuer must be identical, or the metadata is not used.
        guard document.issuer == configuration.issuer else {
            throw AuthSetupError(
                "the discovery document names issuer \(document.issuer ?? "(none)"), not \(configuration.issuer)")
        }
        guard let jwks = document.jwks_uri, let url = URL(string: jwks) else {
            throw AuthSetupError("the discovery document at \(discoveryURL) has no valid jwks_uri")
        }
        try Self.requireSecure(url, what: "jwks_uri")
        return url
    }

    func fetchKeys(from url: URL) async throws -> TrustedKeySet {
        let data = try await get(url, "OIDC JWKS")
        return try await TrustedKeySet.fromJWKS(data, logger: logger)
    }

    private func get(_ url: URL, _ spanName: String) async throws -> Data {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        return try await ClientSpans.withClientSpan(spanName, service: "OIDC", request: request) { request, span in
            let response: HTTPClientResponse
            do {
                response = try await httpClient.execute(request, timeout: timeout, logger: logger)
            } catch {
                throw AuthSetupError("GET \(url) failed: \(error)")
            }
            span.status(Int(response.status.code))
            guard response.status == .ok else {
                throw AuthSetupError("GET \(url) answered \(response.status.code)")
            }
            let body = try await response.body.collect(upTo: maxBodyBytes)
            return Data(body.readableBytesView)
        }
    }

    /// Keys and metadata must come over HTTPS; plain HTTP only to this machine (dev, tests).
    static func requireSecure(_ url: URL, what: String) throws {
        let scheme = url.scheme?.lowercased()
        if scheme == "https" { return }
        if scheme == "http", let host = url.host, isLoopback(host) { return }
        throw AuthSetupError("the \(what) \(url) must use https")
    }

    static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return h == "localhost" || h == "::1" || h.hasPrefix("127.")
    }
}
