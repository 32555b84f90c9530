// Where the Redis server is and how the client talks to it.
//
// The URL form is the one operators paste from their cloud console:
//
//     redis://[[user]:password@]host[:port][/db]     plain TCP
//     rediss://[[user]:password@]host[:port][/db]    TLS
//
// The port defaults to 6379 for both schemes: TLS endpoints rarely listen
// there (Azure Cache for Redis: 6380, Azure Managed Redis: 10000), so write
// the port in a `rediss://` URL.
//
// TLS: Debian 12's hiredis 0.14.1 has none, so for `rediss://` the bytes go
// through a socketpair to SwiftNIO, which speaks TLS to the server (see
// RedisTLSTunnel.swift). The server's certificate is verified against the
// system trust roots, or against `RedisTLS.caFile` (SITREP_REDIS_CA_FILE)
// instead, and must name the URL's host (or its IP address, for an IP URL).

/// Why a Redis URL could not be used. The text never contains the password.
public struct RedisConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The URL as given, with any password replaced by `***`.
    public var url: String
    /// What is wrong with it, in words an operator can act on.
    public var reason: String

    public init(url: String, reason: String) {
        self.url = RedisConfiguration.redact(url)
        self.reason = reason
    }

    public var description: String {
        "invalid Redis URL '\(url)': \(reason) (expected redis[s]://[[user]:password@]host[:port][/db])"
    }
}

public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// Redis 6 ACL user name; `nil` means the `default` user (plain `AUTH password`).
    public var username: String?
    public var password: String?
    /// Logical database selected with `SELECT` on every new connection.
    public var database: Int
    /// Bounds TCP connect (DNS included) of a new connection, and with TLS the
    /// handshake too (one deadline for both).
    public var connectTimeout: Duration
    /// Bounds one command's write + read on the socket, and separately the wait
    /// for a free pooled connection when all `poolSize` connections are busy.
    public var commandTimeout: Duration
    /// Maximum number of connections (busy + idle) the client keeps open.
    public var poolSize: Int
    /// TLS settings (`rediss://`); `nil` is plain TCP (`redis://`).
    public var tls: RedisTLS?

    public static let defaultPort = 6379
    public static let defaultConnectTimeout: Duration = .seconds(2)
    public static let defaultCommandTimeout: Duration = .seconds(5)
    public static let defaultPoolSize = 8

    public init(
        host: String = "127.0.0.1",
        port: Int = RedisConfiguration.defaultPort,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = RedisConfiguration.defaultConnectTimeout,
        commandTimeout: Duration = RedisConfiguration.defaultCommandTimeout,
        poolSize: Int = RedisConfiguration.defaultPoolSize,
        tls: RedisTLS? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.poolSize = poolSize
        self.tls = tls
    }

    /// Parses `redis[s]://[[user]:password@]host[:port][/db]`. Timeouts and pool
    /// size take their defaults; set the properties afterwards to change them.
    /// `rediss://` sets `tls` to the system trust roots; set `tls.caFile` to
    /// trust a private CA instead.
    public init(url: String) throws(RedisConfigurationError) {
        func fail(_ reason: String) -> RedisConfigurationError {
            RedisConfigurationError(url: url, reason: reason)
        }
        let trimmed = url.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw fail("the URL is empty") }
        guard let schemeEnd = trimmed.firstRange(of: "://") else {
            throw fail("missing scheme, it must start with redis:// or rediss://")
        }
        let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
        let tls: RedisTLS?
        switch scheme {
        case "redis":
            tls = nil
        case "rediss":
            tls = RedisTLS()
        case "unix", "redis+unix":
            throw fail("Unix socket URLs are not supported, use redis://host:port")
        default:
            throw fail("unsupported scheme '\(scheme)', it must be redis:// or rediss:// (TLS)")
        }
        var rest = Substring(trimmed[schemeEnd.upperBound...])
        if rest.contains("?") { throw fail("query parameters are not supported") }
        if rest.contains("#") { throw fail("a fragment (#...) is not allowed") }

        // authority / path
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var hostPort = rest
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            hostPort = rest[rest.index(after: at)...]
            guard let colon = userInfo.firstIndex(of: ":") else {
                throw fail("credentials must be written ':password@' or 'user:password@'")
            }
            let user = userInfo[..<colon]
            let pass = userInfo[userInfo.index(after: colon)...]
            guard let u = Self.percentDecode(user), let p = Self.percentDecode(pass) else {
                throw fail("bad percent-encoding in the credentials")
            }
            username = u.isEmpty ? nil : u
            password = p.isEmpty ? nil : p
            if username != nil && password == nil {
                throw fail("a user name needs a password ('user:password@')")
            }
        }

        // host [:port], with [v6] literals
        var host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw fail("unterminated IPv6 literal, missing ']'")
            }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after ']'") }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.firstIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
            if portText!.contains(":") {
                throw fail("too many ':' in host:port (write IPv6 addresses as [::1])")
            }
        } else {
            host = hostPort
        }
        guard !host.isEmpty else { throw fail("missing host") }

        var port = Self.defaultPort
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy(\.isASCIIDigit), portText.count <= 5,
                let p = Int(portText), (1...65535).contains(p)
            else {
                throw fail("port '\(portText)' is not a number between 1 and 65535")
            }
            port = p
        }

        var database = 0
        if !path.isEmpty {
            guard path.allSatisfy(\.isASCIIDigit), path.count <= 9, let db = Int(path) else {
                throw fail("database '/\(path)' must be a non-negative number, e.g. /0")
            }
            database = db
        }

        self.init(
            host: String(host), port: port, username: username, password: password,
            database: database, tls: tls)
    }

    /// The URL with the password hidden, safe for logs.
    public var description: String {
        let hostText = host.contains(":") ? "[\(host)]" : host
        let credentials: String
        switch (username, password) {
        case (nil, nil): credentials = ""
        case (let user?, _): credentials = "\(user):***@"
        case (nil, _): credentials = ":***@"
        }
        return "\(tls == nil ? "redis" : "rediss")://\(credentials)\(hostText):\(port)/\(database)"
    }

    static func redact(_ url: String) -> String {
        // Hide whatever sits between the scheme's "://" and the last "@".
        guard let schemeEnd = url.firstRange(of: "://"),
            let at = url[schemeEnd.upperBound...].lastIndex(of: "@")
        else { return url }
        let userInfo = url[schemeEnd.upperBound..<at]
        let user = userInfo.firstIndex(of: ":").map { userInfo[..<$0] } ?? ""
        return String(url[..<schemeEnd.upperBound]) + user + ":***" + url[at...]
    }

    static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var it = text.utf8.makeIterator()
        while let byte = it.next() {
            if byte == UInt8(ascii: "%") {
                guard let hi = it.next().flatMap(hexValue), let lo = it.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(hi << 4 | lo)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
