import Foundation

/// `application/x-www-form-urlencoded`: Twilio's request bodies and query strings, and the bodies
/// of its status callbacks.
public enum FormEncoding {
    /// `pairs` encoded in the order given. Everything but the RFC 3986 unreserved characters is
    /// percent-encoded as UTF-8 (a space becomes `%20`), so the result is also a valid query string.
    public static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    /// The name-value pairs of `text`, in order, repeated names and empty values included (a
    /// signature covers every parameter as sent). `+` is a space; percent escapes are decoded as
    /// UTF-8. A component whose escapes are malformed or not UTF-8 is kept as it came (with `+`
    /// still read as a space), never dropped.
    public static func decode(_ text: some StringProtocol) -> [(String, String)] {
        var pairs: [(String, String)] = []
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            pairs.append((component(parts[0]), parts.count > 1 ? component(parts[1]) : ""))
        }
        return pairs
    }

    /// One name or value encoded (RFC 3986 unreserved characters kept, the rest `%XX`).
    public static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                result += "%"
                result += String(hexDigits[Int(byte >> 4)])
                result += String(hexDigits[Int(byte & 0x0F)])
            }
        }
        return result
    }

    /// One name or value decoded: `+` is a space, then percent-decoding.
    static func component(_ text: some StringProtocol) -> String {
        let spaced = String(text).replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    static let hexDigits = Array("0123456789ABCDEF")
}
