import Crypto
import Foundation
import JWTKit
import SitrepRuntime

/// The claims of an access token, shaped like Azure AD v2.
struct LocalAccessTokenClaims: JWTPayload, Equatable {
    var iss: String
    var aud: String
    var tid: String
    var oid: String
    var sub: String
    var name: String
    var preferredUsername: String
    var azp: String
    var scp: String
    /// Omitted when the user has no roles, as Azure AD does.
    var roles: [String]?
    /// Present only when the sign-in satisfied the step-up context.
    var acrs: [String]?
    var ver: String
    var iat: Int64
    var nbf: Int64
    var exp: Int64

    enum CodingKeys: String, CodingKey {
        case iss, aud, tid, oid, sub, name, azp, scp, roles, acrs, ver, iat, nbf, exp
        case preferredUsername = "preferred_username"
    }

    /// Verification is the relying party's business; the issuer only signs.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// The claims of an OpenID Connect ID token, shaped like Azure AD v2.
struct LocalIDTokenClaims: JWTPayload, Equatable {
    var iss: String
    var aud: String
    var tid: String
    var oid: String
    var sub: String
    var name: String
    var preferredUsername: String
    /// The authorization request's nonce; omitted on refresh.
    var nonce: String?
    var acrs: [String]?
    var ver: String
    var iat: Int64
    var nbf: Int64
    var exp: Int64

    enum CodingKeys: String, CodingKey {
        case iss, aud, tid, oid, sub, name, nonce, acrs, ver, iat, nbf, exp
        case preferredUsername = "preferred_username"
    }

    /// Verification is the relying party's business; the issuer only signs.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// `application/x-www-form-urlencoded` (query strings and token request bodies).
enum FormEncoding {
    enum Failure: Error, Equatable {
        case malformed
        case repeated(String)
    }

    /// The parameters of `text`. Empty values count as absent (RFC 6749 §3.1); a parameter given
    /// twice is an error (RFC 6749 §3.1, §3.2).
    static func decode(_ text: some StringProtocol) throws(Failure) -> [String: String] {
        var result: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = component(parts[0]) else { throw .malformed }
            guard let value = parts.count > 1 ? component(parts[1]) : "" else { throw .malformed }
            if value.isEmpty { continue }
            guard result[name] == nil else { throw .repeated(name) }
            result[name] = value
        }
        return result
    }

    /// One decoded name or value: `+` is a space, then percent-decoding. Nil when the escapes are
    /// invalid or not UTF-8.
    static func component(_ text: some StringProtocol) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// `pairs` encoded, in order, escaping everything but RFC 3986 unreserved characters.
    static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}

/// Proof Key for Code Exchange (RFC 7636), S256 only.
enum PKCE {
    /// base64url(SHA-256(ASCII(verifier))), no padding (RFC 7636 §4.2).
    static func challenge(for verifier: String) -> String {
        base64URL(Data(SHA256.hash(data: Data(verifier.utf8))))
    }

    /// A code verifier or S256 challenge: 43 to 128 unreserved characters (RFC 7636 §4.1).
    static func isWellFormed(_ value: String) -> Bool {
        (43...128).contains(value.utf8.count)
            && value.unicodeScalars.allSatisfy { FormEncoding.unreserved.contains($0) }
    }

    static func verify(verifier: String, challenge: String) -> Bool {
        isWellFormed(verifier) && constantTimeEqual(Self.challenge(for: verifier), challenge)
    }
}

/// base64url without padding.
func base64URL(_ data: Data) -> String { Base64URL.encode(data) }

/// 256 random bits, base64url: authorization codes, refresh tokens, grant families.
func randomToken() -> String {
    var generator = SystemRandomNumberGenerator()
    let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    return base64URL(Data(bytes))
}

/// Seconds since 1970, whole.
func unixNow() -> Int64 {
    Int64(Date().timeIntervalSince1970.rounded(.down))
}

extension Duration {
    /// Whole seconds, rounded down.
    var wholeSeconds: Int64 { components.seconds }
}
