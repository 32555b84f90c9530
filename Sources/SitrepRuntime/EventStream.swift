/// A `text/event-stream` response body. `produce` runs once the response head is sent and
/// writes Server-Sent Events through `write`, which waits while the client is slow (backpressure)
/// and throws once the client has gone away; the response ends when `produce` returns.
public struct EventStream: Sendable {
    public typealias Write = ([UInt8]) async throws -> Void
    public let produce: @Sendable (_ write: Write) async throws -> Void

    public init(_ produce: @escaping @Sendable (_ write: Write) async throws -> Void) {
        self.produce = produce
    }

    /// One event in the wire format: `id`, `event` and one `data` line per line of `data`.
    public static func event(id: String?, name: String?, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 64)
        if let id {
            out += Array("id: ".utf8) + Array(id.utf8)
            out.append(10)
        }
        if let name {
            out += Array("event: ".utf8) + Array(name.utf8)
            out.append(10)
        }
        for line in data.split(separator: 10, omittingEmptySubsequences: false) {
            out += Array("data: ".utf8) + line
            out.append(10)
        }
        out.append(10)
        return out
    }

    /// A comment line (`: text`), which clients ignore: heartbeats that keep proxies from
    /// closing an idle connection.
    public static func comment(_ text: String) -> [UInt8] { Array(": \(text)\n\n".utf8) }
}
