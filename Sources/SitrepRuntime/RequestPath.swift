/// A request path cut at its slashes, for the generated operation router (`SitrepOperationRouter`, in the
/// generated Router.swift): the segments of a path in the form the contract writes its paths
/// (`/a/b/c`: a leading slash, no empty segment, no trailing slash), at most ``capacity`` of them.
///
/// Any other path (`/`, `//a`, `/a/`, longer ones, a path whose bytes are not contiguous) has
/// ``count`` 0: the operation router matches nothing and leaves it to Hummingbird's router, which answers it as it
/// always has. The segments are compared as they arrive, percent-encoding and case included,
/// which is how the router compares them.
public struct RequestPath: Sendable {
    /// The most segments a path may have to be matched here.
    public static let capacity = 8

    public let path: String
    /// How many segments the path has; 0 when the path is left to Hummingbird's router.
    public let count: Int
    /// The offset of each segment's end (a `/` or the end of the path); segment `i` starts one
    /// byte after the end of segment `i - 1` (after the leading `/` for the first).
    @usableFromInline
    let ends: (Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32)

    public init(_ path: String) {
        self.path = path
        var ends: (Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32) = (0, 0, 0, 0, 0, 0, 0, 0)
        let count =
            path.utf8.withContiguousStorageIfAvailable { bytes -> Int in
                guard bytes.count > 1, bytes.count < Int(Int32.max), bytes[0] == UInt8(ascii: "/") else { return 0 }
                var n = 0
                var start = 1
                withUnsafeMutableBytes(of: &ends) { raw in
                    let out = raw.bindMemory(to: Int32.self)
                    var i = 1
                    while true {
                        if i == bytes.count || bytes[i] == UInt8(ascii: "/") {
                            // An empty segment (`//`, a trailing `/`) or one too many: the router's.
                            guard i > start, n < Self.capacity else {
                                n = 0
                                return
                            }
                            out[n] = Int32(i)
                            n += 1
                            if i == bytes.count { return }
                            start = i + 1
                        }
                        i += 1
                    }
                }
                return n
            } ?? 0
        self.count = count
        self.ends = ends
    }

    @inlinable
    func end(_ i: Int) -> Int {
        withUnsafeBytes(of: ends) { Int($0.load(fromByteOffset: i &* 4, as: Int32.self)) }
    }

    @inlinable
    func start(_ i: Int) -> Int {
        i == 0 ? 1 : end(i &- 1) &+ 1
    }

    /// Whether segment `i` (`i < count`) is `literal`, byte for byte.
    @inlinable
    public func matches(_ i: Int, _ literal: StaticString) -> Bool {
        let start = start(i)
        let length = end(i) &- start
        guard length == literal.utf8CodeUnitCount else { return false }
        return path.utf8.withContiguousStorageIfAvailable { bytes in
            let want = literal.utf8Start
            for k in 0..<length where bytes[start &+ k] != want[k] { return false }
            return true
        } ?? false
    }

    /// Segment `i` (`i < count`), as the router hands a captured segment to the operation.
    public subscript(_ i: Int) -> Substring {
        let u = path.utf8
        let from = u.index(u.startIndex, offsetBy: start(i))
        let to = u.index(u.startIndex, offsetBy: end(i))
        return path[from..<to]
    }
}
