import Crypto
import Foundation

extension Sequence<UInt8> {
    /// Lowercase hexadecimal, two digits per byte (digests, fingerprints, tags).
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in self {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Conditional GET support (RFC 9110 §13): strong entity tags and `If-None-Match` matching.
public enum ConditionalRequest {
    /// Whether an `If-None-Match` header matches `etag` (weak comparison, as §13.1.2 requires):
    /// `*`, or any listed tag equal once a `W/` prefix is ignored.
    public static func ifNoneMatch(_ header: String?, matches etag: String) -> Bool {
        guard let header else { return false }
        var target = etag.utf8[...]
        if target.starts(with: "W/".utf8) { target = target.dropFirst(2) }
        // Read in place: no splitting, trimming or copies (this runs on every poll).
        var rest = header.utf8[...]
        while true {
            let end = rest.firstIndex(of: UInt8(ascii: ",")) ?? rest.endIndex
            var tag = rest[rest.startIndex..<end]
            while let c = tag.first, c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") { tag = tag.dropFirst() }
            while let c = tag.last, c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") { tag = tag.dropLast() }
            if tag.elementsEqual("*".utf8) { return true }
            if tag.starts(with: "W/".utf8) { tag = tag.dropFirst(2) }
            if tag.elementsEqual(target) { return true }
            guard end < rest.endIndex else { return false }
            rest = rest[rest.index(after: end)...]
        }
    }

    /// A strong tag for a representation: `"<prefix>-<16 hex digits of SHA-256>"` of the parts.
    public static func etag(prefix: String, parts: [String]) -> String {
        var h = SHA256()
        for p in parts {
            h.update(data: Array(p.utf8))
            h.update(data: [0])
        }
        return "\"" + prefix + "-" + h.finalize().prefix(8).hexString + "\""
    }

    public static func etag(prefix: String, bytes: [UInt8]) -> String {
        "\"" + prefix + "-" + SHA256.hash(data: bytes).prefix(8).hexString + "\""
    }
}
