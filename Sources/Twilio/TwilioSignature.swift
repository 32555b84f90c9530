import Crypto
import Foundation

/// Twilio's request signature (`X-Twilio-Signature`) on webhooks and status callbacks.
///
/// The signed text is the full URL Twilio requested (scheme, host, port if any, path and query,
/// exactly as configured), followed by every POST parameter sorted by name, each name immediately
/// followed by its value, with no separators. The signature is base64(HMAC-SHA1(auth token, text)).
/// Parameters are the decoded form values (see ``FormEncoding/decode(_:)``); a JSON body is not
/// covered this way and is not supported here.
public enum TwilioSignature {
    /// The header Twilio sends the signature in.
    public static let header = "X-Twilio-Signature"

    /// The signature Twilio would send for a POST to `url` with `parameters`.
    public static func compute(url: String, parameters: [(String, String)], authToken: String) -> String {
        Data(mac(url: url, parameters: parameters, authToken: authToken)).base64EncodedString()
    }

    /// Whether `signature` is Twilio's signature of a POST to `url` with `parameters`, compared in
    /// constant time. As Twilio's own libraries do, an `https` URL is also tried with its default
    /// port added (`:443`) or removed, since Twilio may sign either form.
    public static func isValid(signature: String, url: String, parameters: [(String, String)], authToken: String) -> Bool {
        guard let given = Data(base64Encoded: signature), given.count == Insecure.SHA1.byteCount else { return false }
        let key = SymmetricKey(data: Array(authToken.utf8))
        var valid = false
        // Every candidate is checked (swift-crypto compares in constant time), so the time taken
        // does not depend on which one matched.
        for candidate in urlVariants(url) {
            valid =
                HMAC<Insecure.SHA1>.isValidAuthenticationCode(given, authenticating: signed(url: candidate, parameters: parameters), using: key)
                || valid
        }
        return valid
    }

    static func mac(url: String, parameters: [(String, String)], authToken: String) -> HashedAuthenticationCode<Insecure.SHA1> {
        HMAC<Insecure.SHA1>.authenticationCode(for: signed(url: url, parameters: parameters), using: SymmetricKey(data: Array(authToken.utf8)))
    }

    /// The signed text: the URL, then each parameter's name and value, sorted.
    static func signed(url: String, parameters: [(String, String)]) -> [UInt8] {
        var text = Array(url.utf8)
        for (name, value) in sorted(parameters) {
            text += name.utf8
            text += value.utf8
        }
        return text
    }

    /// Sorted by name, then by value for a repeated name (as Twilio does for list parameters),
    /// comparing UTF-8 bytes.
    static func sorted(_ parameters: [(String, String)]) -> [(String, String)] {
        parameters.sorted { a, b in
            if a.0 != b.0 { return a.0.utf8.lexicographicallyPrecedes(b.0.utf8) }
            return a.1.utf8.lexicographicallyPrecedes(b.1.utf8)
        }
    }

    /// `url` itself, then for `https`/`http` the same URL with the scheme's default port added
    /// when absent or removed when present.
    static func urlVariants(_ url: String) -> [String] {
        guard var components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            let defaultPort = ["https": 443, "http": 80][scheme], components.host != nil
        else { return [url] }
        if components.port == defaultPort {
            components.port = nil
        } else if components.port == nil {
            components.port = defaultPort
        } else {
            return [url]
        }
        guard let other = components.string, other != url else { return [url] }
        return [url, other]
    }
}
