import Foundation
import SitrepRuntime
import Synchronization

/// Bearer tokens that already passed every check, so a client's next request with the same token
/// costs a dictionary lookup instead of an RSA signature verification (the largest single cost
/// of an authenticated read before this cache).
///
/// Safe because a verified token cannot change: it is keyed by its exact text, its time claims
/// are re-checked on every hit (an expired token falls through to full verification, which
/// refuses it), and a key-set change bumps ``generation`` so nothing verified against a key that
/// the issuer has since withdrawn is ever answered from here. Failures are never cached. Bounded:
/// at ``capacity`` entries the expired ones are dropped, then everything if that was not enough.
final class VerifiedTokenCache: Sendable {
    struct Entry: Sendable {
        var principal: Principal
        var expiresAt: Double
        var notBefore: Double?
        var generation: Int
    }

    /// A token as a dictionary key, hashed by its length and its last 16 bytes (the end of the
    /// signature) folded into one word rather than all of it: a few hundred bytes through
    /// SipHash was most of a cache hit. Equality still compares the whole text. Only tokens that
    /// passed verification are ever stored, so nobody can fill the table with tokens made to
    /// collide.
    struct Key: Hashable, Sendable {
        let token: Substring

        func hash(into hasher: inout Hasher) {
            let folded = token.utf8.withContiguousStorageIfAvailable { bytes in
                Self.fold(UnsafeRawBufferPointer(bytes))
            }
            hasher.combine(folded ?? Self.fold(Array(token.utf8)))
        }

        /// The length and the last 16 bytes as one word.
        static func fold(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
            var word = UInt64(truncatingIfNeeded: bytes.count)
            if bytes.count >= 16 {
                word ^= bytes.loadUnaligned(fromByteOffset: bytes.count - 16, as: UInt64.self)
                word ^= bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self) &* 0x9E37_79B9_7F4A_7C15
            } else {
                for b in bytes { word = (word &<< 8 | word &>> 56) ^ UInt64(b) }
            }
            return word
        }

        static func fold(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes(fold) }

        /// Byte for byte: a token is ASCII, and `Substring`'s `==` went through the string
        /// library's general comparison (about 260 instructions for a typical token, a few dozen
        /// as one `memcmp`).
        static func == (a: Key, b: Key) -> Bool {
            let x = a.token.utf8
            let y = b.token.utf8
            guard x.count == y.count else { return false }
            let same = x.withContiguousStorageIfAvailable { p in
                y.withContiguousStorageIfAvailable { q in
                    p.isEmpty || memcmp(p.baseAddress!, q.baseAddress!, p.count) == 0
                }
            }
            return (same ?? nil) ?? x.elementsEqual(y)
        }
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var generation = 0
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) { self.capacity = capacity }

    /// The key-set generation a verification about to start should record.
    var generation: Int { state.withLock { $0.generation } }

    /// The principal for `token` when it was verified under the current key set and its `exp`/`nbf`
    /// (with `skew` seconds of tolerance) still hold at `now` (seconds since 1970).
    func lookup(_ token: Substring, now: Double, skew: Double) -> Principal? {
        state.withLock { s in
            let key = Key(token: token)
            guard let e = s.entries[key] else { return nil }
            guard e.generation == s.generation, now < e.expiresAt + skew else {
                s.entries[key] = nil
                return nil
            }
            if let nbf = e.notBefore, now + skew < nbf { return nil }
            return e.principal
        }
    }

    /// Remembers a verification that started at `entry.generation`; ignored when the key set
    /// changed meanwhile.
    func insert(_ token: String, _ entry: Entry, now: Double) {
        state.withLock { s in
            guard entry.generation == s.generation else { return }
            if s.entries.count >= capacity {
                s.entries = s.entries.filter { $0.value.expiresAt > now }
                if s.entries.count >= capacity { s.entries.removeAll(keepingCapacity: true) }
            }
            s.entries[Key(token: token[...])] = entry
        }
    }

    /// Forgets everything: the trusted keys changed.
    func invalidate() {
        state.withLock { s in
            s.generation += 1
            s.entries.removeAll()
        }
    }

    var count: Int { state.withLock { $0.entries.count } }
}
