// Replies and errors. hiredis 0.14 speaks RESP2, so five reply shapes cover
// everything; an error reply never becomes a value, it is thrown.

public enum RedisValue: Sendable, Equatable, Hashable {
    case null
    case status(String)
    case integer(Int64)
    case bulk([UInt8])
    case array([RedisValue])

    /// The text of a status or bulk reply (bulk decoded as UTF-8, invalid bytes
    /// replaced); `nil` for the other shapes.
    public var string: String? {
        switch self {
        case .status(let text): text
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .null, .integer, .array: nil
        }
    }

    /// An integer reply, or a bulk/status reply holding a decimal integer
    /// (what GET returns for a counter).
    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .bulk, .status: string.flatMap { Int64($0) }
        case .null, .array: nil
        }
    }

    /// The bytes of a bulk reply (or a status reply's UTF-8).
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): bytes
        case .status(let text): Array(text.utf8)
        case .null, .integer, .array: nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let items) = self { items } else { nil }
    }

    public var isNull: Bool { self == .null }
}

extension RedisValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .null: "(nil)"
        case .status(let text): text
        case .integer(let value): "(integer) \(value)"
        case .bulk(let bytes): "\"\(String(decoding: bytes, as: UTF8.self))\""
        case .array(let items): "[" + items.map(\.description).joined(separator: ", ") + "]"
        }
    }
}

public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable, Hashable {
        /// Could not connect, or the connection broke (refused, reset, EOF,
        /// connect timeout, AUTH/SELECT refused). The connection is discarded;
        /// the next call connects anew.
        case connection
        /// A command did not complete within `commandTimeout` (its connection is
        /// discarded), no pooled connection became free within `commandTimeout`,
        /// or the calling task was cancelled while waiting.
        case timeout
        /// The server answered with an error reply (`ERR`, `WRONGTYPE`, ...).
        /// The connection stays usable.
        case server
        /// A malformed reply or a request that cannot be sent (empty command).
        case `protocol`
        /// `shutdown()` was called (or the thread pool is no longer running).
        case poolClosed
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public init(kind: Kind, message: String) {
        self.init(kind, message)
    }

    /// For `.server`: the error code Redis put first (`ERR`, `WRONGTYPE`, `NOAUTH`, ...).
    public var serverCode: String? {
        guard kind == .server else { return nil }
        return message.split(separator: " ", maxSplits: 1).first.map(String.init)
    }

    public var description: String { "Redis \(kind.rawValue) error: \(message)" }
}
