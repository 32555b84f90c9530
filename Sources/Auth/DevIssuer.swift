import Crypto
import CryptoExtras
import Foundation
import JWTKit
import SitrepRuntime

/// The development issuer: a local RSA key that signs Azure AD v2–shaped access tokens, for
/// `sitrep dev-token` and for the server when `SITREP_ENV` is not `production`. Production
/// configuration must refuse ``issuer``.
public enum DevIssuer {
    public static let issuer = "https://sitrep.local/dev-issuer"
    public static let tenantId = "00000000-0000-4000-8000-000000000001"
    public static let audience = "api://sitrep"
    public static let keyId = "sitrep-dev-1"
    /// The `azp` of user tokens: the client application (the frontend) that asked for the token.
    public static let clientId = "00000000-0000-4000-8000-000000000002"
    /// The delegated scope user tokens carry in `scp`.
    public static let userScope = "access_as_user"

    /// Validation settings for tokens from this issuer.
    public static var configuration: AuthConfiguration {
        AuthConfiguration(issuer: issuer, audience: audience, tenantId: tenantId)
    }

    /// Loads the RSA-2048 private key PEM at `path`, creating it (mode 0600, parent directories
    /// 0700) when missing. Safe against a concurrent creator: the file appears whole or not at all,
    /// and the first writer wins.
    public static func loadOrCreatePrivateKey(at path: String) throws -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: path) {
            return try readPrivateKey(at: path)
        }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        do {
            try fm.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw AuthSetupError("cannot create \(directory): \(error)")
        }

        let pem: String
        do {
            pem = try _RSA.Signing.PrivateKey(keySize: .bits2048).pemRepresentation
        } catch {
            throw AuthSetupError("cannot generate an RSA key: \(error)")
        }

        // Write a private temporary file, then hard-link it into place: link fails if the key
        // already exists (another process won the race), and readers never see a partial file.
        let temporary = directory + "/.\(url.lastPathComponent).\(UUID().uuidString).tmp"
        guard fm.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw AuthSetupError("cannot write \(temporary)")
        }
        defer { try? fm.removeItem(atPath: temporary) }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            try handle.write(contentsOf: Data(pem.utf8))
            try handle.synchronize()
        } catch {
            throw AuthSetupError("cannot write \(temporary): \(error)")
        }
        do {
            try fm.linkItem(atPath: temporary, toPath: path)
        } catch {
            if fm.fileExists(atPath: path) { return try readPrivateKey(at: path) }
            throw AuthSetupError("cannot create \(path): \(error)")
        }
        return pem
    }

    private static func readPrivateKey(at path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AuthSetupError("cannot read \(path)")
        }
        let pem = String(decoding: data, as: UTF8.self)
        do {
            _ = try JWTKit.Insecure.RSA.PrivateKey(pem: pem)
        } catch {
            throw AuthSetupError("\(path) does not hold an RSA private key of 2048 bits or more")
        }
        return pem
    }

    /// The public key PEM (`BEGIN PUBLIC KEY`) of a private key PEM.
    public static func publicKeyPEM(fromPrivateKeyPEM pem: String) throws -> String {
        do {
            return try JWTKit.Insecure.RSA.PrivateKey(pem: pem).publicKey.pemRepresentation
        } catch {
            throw AuthSetupError("not an RSA private key of 2048 bits or more")
        }
    }

    /// A stable object id for a development user name: a UUID (version 8) made from the
    /// SHA-256 of the name, so the same name always maps to the same `oid`.
    public static func objectId(forUser user: String) -> String {
        var bytes = Array(SHA256.hash(data: Data(user.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        let uuid = UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
        return uuid.lowercasedString
    }

    /// Signs an RS256 access token shaped like Azure AD v2.
    ///
    /// User tokens: `oid` = `sub` = ``objectId(forUser:)``, `azp` = ``clientId``,
    /// `scp` = ``userScope``, `idtyp` absent. App-only tokens (`app: true`): `idtyp` = `app`, no
    /// `scp`, `oid` = `sub` = ``objectId(forUser:)`` of `user` (the service principal) and
    /// `azp` = ``objectId(forUser:)`` of `"app:" + user` (the application id), so the principal
    /// id is `app:<azp>`. `acrs` = `["c1"]` when `mfa`. `name` defaults to `user`.
    public static func token(
        privateKeyPEM: String,
        roles: [String],
        user: String,
        name: String?,
        mfa: Bool,
        app: Bool,
        lifetime: Duration = .seconds(12 * 3600),
        issuer: String = DevIssuer.issuer
    ) async throws -> String {
        let now = Date().timeIntervalSince1970.rounded(.down)
        let oid = objectId(forUser: user)
        let claims = AccessTokenClaims(
            iss: issuer,
            aud: [audience],
            tid: tenantId,
            oid: oid,
            sub: oid,
            name: name ?? user,
            azp: app ? objectId(forUser: "app:" + user) : clientId,
            idtyp: app ? "app" : nil,
            scp: app ? nil : userScope,
            roles: roles,
            acrs: mfa ? ["c1"] : nil,
            ver: "2.0",
            iat: now,
            nbf: now,
            exp: now + lifetime.timeInterval.rounded(.down)
        )
        return try await sign(claims, privateKeyPEM: privateKeyPEM, kid: keyId)
    }

    /// Signs any claims with RS256 under `kid` (tests, tools).
    static func sign(_ claims: some JWTPayload, privateKeyPEM: String, kid: String) async throws -> String {
        let key: JWTKit.Insecure.RSA.PrivateKey
        do {
            key = try JWTKit.Insecure.RSA.PrivateKey(pem: privateKeyPEM)
        } catch {
            throw AuthSetupError("not an RSA private key of 2048 bits or more")
        }
        let keys = JWTKeyCollection()
        await keys.add(rsa: key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        return try await keys.sign(claims, kid: JWKIdentifier(string: kid))
    }

    /// A JWKS document (`{"keys":[…]}`) publishing RSA public keys for RS256, keyed by kid — what
    /// a local issuer serves at its `jwks_uri`.
    public static func jwksJSON(publicKeysPEM: [String: String]) throws -> String {
        var keys: [[String: String]] = []
        for (kid, pem) in publicKeysPEM.sorted(by: { $0.key < $1.key }) {
            let key: JWTKit.Insecure.RSA.PublicKey
            do {
                key = try TrustedKeySet.parsePublicKey(pem: pem)
            } catch {
                throw AuthSetupError("key \(kid) is not an RSA key of 2048 bits or more")
            }
            let (modulus, exponent) = try key.getKeyPrimitives()
            keys.append([
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": base64URL(modulus), "e": base64URL(exponent),
            ])
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(["keys": keys]), as: UTF8.self)
    }

    static func base64URL(_ data: Data) -> String { Base64URL.encode(data) }
}
