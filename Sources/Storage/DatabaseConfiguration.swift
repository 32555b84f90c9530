import Foundation
import Logging
import PostgresNIO

/// A one-line, operator-facing description of what is wrong with a database URL.
///
/// The message never contains the password.
public struct DatabaseConfigurationError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Connection settings for PostgreSQL, parsed from a libpq-style URL:
///
///     postgres://user[:password]@host[:port]/database?sslmode=…&pool_max=N&connect_timeout=S
///
/// `postgresql://` is accepted too. User name, password and database are
/// percent-decoded. Parameters (unknown ones are refused, so a typo is caught at
/// startup instead of being silently ignored):
///
/// | parameter          | values                                                  | default |
/// | ------------------ | ------------------------------------------------------- | ------- |
/// | `sslmode`          | `disable`, `prefer`, `require`, `verify-ca`, `verify-full` | `prefer` |
/// | `sslrootcert`      | a PEM file of trusted CA certificates, or `system`      | `system` |
/// | `pool_max`         | maximum connections in the pool, 1…10000                | 20      |
/// | `connect_timeout`  | seconds, whole number ≥ 1                               | 10      |
/// | `application_name` | shown in `pg_stat_activity`                             | `sitrep` |
/// | `host`             | a directory holding the server's Unix socket (`/…`)     | —       |
///
/// TLS modes follow libpq: `prefer` uses TLS when the server offers it, without
/// checking the certificate (libpq's default); `require` insists on TLS without checking the
/// certificate (unless `sslrootcert` is given, then like `verify-ca`);
/// `verify-ca` checks the chain; `verify-full` checks the chain and that the
/// certificate names the host. Use `verify-full` in production.
public struct DatabaseConfiguration: Sendable {
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable
        case prefer
        case require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// The configuration to hand to `PostgresClient(configuration:)`.
    public var clientConfiguration: PostgresClient.Configuration

    public let username: String
    /// The TCP host, or `nil` for a Unix socket.
    public let host: String?
    public let port: Int
    /// The Unix socket path, when `host=/dir` was given.
    public let unixSocketPath: String?
    public let database: String?
    public let sslMode: SSLMode
    public let poolMax: Int
    public let connectTimeoutSeconds: Int
    public let applicationName: String

    /// How to speak TLS, kept for ``checkConnection(logger:)``.
    enum TLSMode: Sendable {
        case disable
        case prefer(TLSConfiguration)
        case require(TLSConfiguration)
    }

    let tlsMode: TLSMode

    public static let defaultPoolMax = 20
    public static let defaultConnectTimeoutSeconds = 10
    public static let defaultPort = 5432

    static let knownParameters = ["sslmode", "sslrootcert", "pool_max", "connect_timeout", "application_name", "host"]

    public init(url: String) throws(DatabaseConfigurationError) {
        let trimmed = url.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else {
            throw DatabaseConfigurationError("database URL is empty (expected postgres://user:password@host:5432/database)")
        }
        var rest: Substring
        let lower = trimmed.lowercased()
        if lower.hasPrefix("postgres://") {
            rest = trimmed.dropFirst("postgres://".count)
        } else if lower.hasPrefix("postgresql://") {
            rest = trimmed.dropFirst("postgresql://".count)
        } else {
            if let separator = trimmed.range(of: "://") {
                let scheme = trimmed[..<separator.lowerBound]
                if !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }) {
                    throw DatabaseConfigurationError("database URL has scheme '\(scheme)://'; it must be postgres:// or postgresql://")
                }
            }
            throw DatabaseConfigurationError("database URL must start with postgres:// or postgresql://")
        }
        if let hash = rest.firstIndex(of: "#") {
            guard rest[hash...].count == 1 else {
                throw DatabaseConfigurationError("database URL must not have a #fragment (percent-encode '#' in a password as %23)")
            }
            rest = rest[..<hash]
        }

        // Split off the query string.
        var queryString: Substring = ""
        if let question = rest.firstIndex(of: "?") {
            queryString = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }

        // userinfo@host:port/database — the last '@' ends the userinfo, so an
        // unencoded '@' or '/' in a password still parses.
        guard let at = rest.lastIndex(of: "@") else {
            throw DatabaseConfigurationError("database URL has no user name (expected postgres://USER[:PASSWORD]@host/database)")
        }
        let userInfo = rest[..<at]
        let hostAndPath = rest[rest.index(after: at)...]

        let rawUser: Substring
        var rawPassword: Substring?
        if let colon = userInfo.firstIndex(of: ":") {
            rawUser = userInfo[..<colon]
            rawPassword = userInfo[userInfo.index(after: colon)...]
        } else {
            rawUser = userInfo
        }
        let username = try Self.percentDecode(rawUser, what: "the user name")
        guard !username.isEmpty else {
            throw DatabaseConfigurationError("database URL has an empty user name (expected postgres://USER[:PASSWORD]@host/database)")
        }
        let password = try rawPassword.map { raw throws(DatabaseConfigurationError) in
            try Self.percentDecode(raw, what: "the password")
        }

        let authority: Substring
        var database: String?
        if let slash = hostAndPath.firstIndex(of: "/") {
            authority = hostAndPath[..<slash]
            let rawDatabase = hostAndPath[hostAndPath.index(after: slash)...]
            if !rawDatabase.isEmpty {
                let decoded = try Self.percentDecode(rawDatabase, what: "the database name")
                if decoded.contains("/") {
                    throw DatabaseConfigurationError("database URL path must be a single database name, got '\(decoded)'")
                }
                database = decoded
            }
        } else {
            authority = hostAndPath
        }

        // host[:port], host may be [IPv6]
        var host: String
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw DatabaseConfigurationError("database URL has an unterminated IPv6 address '\(authority)' (expected [address]:port)")
            }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let afterClose = authority[authority.index(after: close)...]
            if !afterClose.isEmpty {
                guard afterClose.hasPrefix(":") else {
                    throw DatabaseConfigurationError("database URL has unexpected text '\(afterClose)' after the IPv6 address")
                }
                portText = afterClose.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        } else {
            host = String(authority)
        }
        if !authority.hasPrefix("["), host.contains(":") {
            throw DatabaseConfigurationError(
                "database URL host looks like an IPv6 address; write it in brackets, e.g. postgres://user@[::1]:5432/database")
        }
        if host.contains(",") {
            throw DatabaseConfigurationError("database URL names several hosts ('\(host)'); only one host is supported")
        }
        host = (try? Self.percentDecode(Substring(host), what: "the host")) ?? host

        var port = Self.defaultPort
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw DatabaseConfigurationError("database URL port '\(portText)' is not a number between 1 and 65535")
            }
            port = value
        }

        // Parameters.
        var parameters: [String: String] = [:]
        for pair in queryString.split(separator: "&", omittingEmptySubsequences: true) {
            let key: String
            let value: String
            if let equals = pair.firstIndex(of: "=") {
                key = try Self.percentDecode(pair[..<equals], what: "a parameter name")
                value = try Self.percentDecode(pair[pair.index(after: equals)...], what: "the value of a parameter")
            } else {
                key = try Self.percentDecode(pair, what: "a parameter name")
                value = ""
            }
            guard Self.knownParameters.contains(key) else {
                throw DatabaseConfigurationError(
                    "database URL parameter '\(key)' is not supported (supported: \(Self.knownParameters.joined(separator: ", ")))")
            }
            guard parameters[key] == nil else {
                throw DatabaseConfigurationError("database URL parameter '\(key)' is given more than once")
            }
            parameters[key] = value
        }

        let sslMode: SSLMode
        if let raw = parameters["sslmode"] {
            guard let mode = SSLMode(rawValue: raw) else {
                throw DatabaseConfigurationError(
                    "database URL sslmode '\(raw)' is not supported (use one of: \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            sslMode = mode
        } else {
            sslMode = .prefer
        }

        var trustRoots: NIOSSLTrustRoots = .default
        if let rootCert = parameters["sslrootcert"], rootCert != "system" {
            guard !rootCert.isEmpty else {
                throw DatabaseConfigurationError("database URL sslrootcert is empty (give a PEM file path, or 'system')")
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: rootCert, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw DatabaseConfigurationError("database URL sslrootcert file '\(rootCert)' does not exist")
            }
            trustRoots = .file(rootCert)
        }
        let hasCustomRoot = parameters["sslrootcert"].map { $0 != "system" } ?? false

        let poolMax: Int
        if let raw = parameters["pool_max"] {
            guard let value = Int(raw), (1...10_000).contains(value) else {
                throw DatabaseConfigurationError("database URL pool_max '\(raw)' is not a whole number between 1 and 10000")
            }
            poolMax = value
        } else {
            poolMax = Self.defaultPoolMax
        }

        let connectTimeout: Int
        if let raw = parameters["connect_timeout"] {
            guard let value = Int(raw), value >= 1, value <= 3600 else {
                throw DatabaseConfigurationError("database URL connect_timeout '\(raw)' is not a whole number of seconds between 1 and 3600")
            }
            connectTimeout = value
        } else {
            connectTimeout = Self.defaultConnectTimeoutSeconds
        }

        let applicationName = parameters["application_name"] ?? "sitrep"

        var unixSocketPath: String?
        if let socketDirectory = parameters["host"] {
            guard socketDirectory.hasPrefix("/") else {
                throw DatabaseConfigurationError(
                    "database URL parameter host='\(socketDirectory)' must be an absolute socket directory; put a TCP host in the URL itself")
            }
            guard host.isEmpty else {
                throw DatabaseConfigurationError(
                    "database URL gives both a TCP host '\(host)' and a socket directory host='\(socketDirectory)'; give one")
            }
            let directory = socketDirectory.hasSuffix("/") ? String(socketDirectory.dropLast()) : socketDirectory
            unixSocketPath = "\(directory)/.s.PGSQL.\(port)"
        } else if host.isEmpty {
            throw DatabaseConfigurationError("database URL has no host (expected postgres://user@HOST:5432/database)")
        }

        // TLS, following libpq's sslmode semantics.
        var unverified = TLSConfiguration.makeClientConfiguration()
        unverified.certificateVerification = .none
        var verifyChain = TLSConfiguration.makeClientConfiguration()
        verifyChain.trustRoots = trustRoots
        verifyChain.certificateVerification = .noHostnameVerification
        var verifyFull = TLSConfiguration.makeClientConfiguration()
        verifyFull.trustRoots = trustRoots
        verifyFull.certificateVerification = .fullVerification

        let tlsMode: TLSMode
        switch sslMode {
        case .disable: tlsMode = .disable
        case .prefer: tlsMode = .prefer(unverified)
        case .require: tlsMode = .require(hasCustomRoot ? verifyChain : unverified)
        case .verifyCA: tlsMode = .require(verifyChain)
        case .verifyFull: tlsMode = .require(verifyFull)
        }
        let tls: PostgresClient.Configuration.TLS
        switch tlsMode {
        case .disable: tls = .disable
        case .prefer(let configuration): tls = .prefer(configuration)
        case .require(let configuration): tls = .require(configuration)
        }

        var configuration: PostgresClient.Configuration
        if let unixSocketPath {
            configuration = .init(unixSocketPath: unixSocketPath, username: username, password: password, database: database)
        } else {
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.maximumConnections = poolMax
        configuration.options.connectTimeout = .seconds(connectTimeout)
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]

        self.clientConfiguration = configuration
        self.username = username
        self.host = unixSocketPath == nil ? host : nil
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.database = database
        self.sslMode = sslMode
        self.poolMax = poolMax
        self.connectTimeoutSeconds = connectTimeout
        self.applicationName = applicationName
        self.tlsMode = tlsMode
    }

    /// The client configuration for a fixed pool of `size` connections, opened at start and kept
    /// (no idle time-outs), with postgres-nio's keep-alive pings only when `keepAlive` is given.
    ///
    /// Why fixed and without pings by default: postgres-nio's pool arms a keep-alive timer and an
    /// idle time-out timer each time a connection goes back to the pool, as a task sleeping for
    /// that long, and a cancelled `Task.sleep` keeps its task until its deadline passes
    /// (swiftlang/swift#60441). Under load that held ~1.5 KB of heap per query for 30–60 s
    /// (250 MiB after a minute at ~3,500 queries/s) and left the heap fragmented. A connection
    /// that died while idle is found on its next use: that query fails as unavailable (503) and
    /// the pool replaces the connection.
    public func clientConfiguration(poolSize size: Int, keepAlive: Duration?) -> PostgresClient.Configuration {
        var configuration = clientConfiguration
        configuration.options.maximumConnections = size
        configuration.options.minimumConnections = size
        configuration.options.keepAliveBehavior = keepAlive.map { .init(frequency: $0) }
        return configuration
    }

    /// Opens one connection and runs `SELECT 1`, throwing one line that says
    /// why it failed (unreachable host, refused password, TLS handshake or
    /// certificate failure, missing database).
    ///
    /// Call it at startup before using a `PostgresClient`: the client's pool
    /// retries failed connections in the background and a query just waits, so
    /// a wrong setting otherwise shows up as a hang.
    public func checkConnection(logger: Logger) async throws(DatabaseConfigurationError) {
        let target = redactedDescription
        var configuration: PostgresConnection.Configuration
        if let unixSocketPath {
            configuration = .init(unixSocketPath: unixSocketPath, username: username, password: clientConfiguration.password, database: database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            do {
                switch tlsMode {
                case .disable: tls = .disable
                case .prefer(let settings): tls = .prefer(try NIOSSLContext(configuration: settings))
                case .require(let settings): tls = .require(try NIOSSLContext(configuration: settings))
                }
            } catch {
                throw DatabaseConfigurationError("cannot set up TLS for \(target): \(error)")
            }
            configuration = .init(
                host: host ?? "", port: port, username: username, password: clientConfiguration.password,
                database: database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(Int64(connectTimeoutSeconds))
        configuration.options.additionalStartupParameters = clientConfiguration.options.additionalStartupParameters

        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            do {
                try await connection.query("SELECT 1", logger: logger)
                try await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        } catch {
            throw DatabaseConfigurationError("cannot connect to \(target): \(Self.reason(error))")
        }
    }

    /// A short, password-free reason for a connection failure.
    static func reason(_ error: any Error) -> String {
        guard let error = error as? PSQLError else {
            return oneLine(String(describing: error))
        }
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " [SQLSTATE \($0)]" } ?? ""
            return oneLine(message + state)
        }
        if let underlying = error.underlying {
            return oneLine("\(error.code): \(String(reflecting: underlying))")
        }
        return "\(error.code)"
    }

    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// The settings in URL form without the password, for startup logs:
    /// `postgres://sitrep@db.example:5432/sitrep?sslmode=verify-full&pool_max=20&connect_timeout=10`.
    public var redactedDescription: String {
        let hostPart: String
        if let host {
            hostPart = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        } else {
            hostPart = ""
        }
        var text =
            "postgres://\(username)@\(hostPart)/\(database ?? "")?sslmode=\(sslMode.rawValue)&pool_max=\(poolMax)&connect_timeout=\(connectTimeoutSeconds)"
        if let unixSocketPath {
            text += "&socket=\(unixSocketPath)"
        }
        return text
    }

    static func percentDecode(_ text: Substring, what: String) throws(DatabaseConfigurationError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else {
                    throw DatabaseConfigurationError("database URL has an invalid %-escape in \(what) (use %XX with two hex digits)")
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw DatabaseConfigurationError("database URL has %-escapes in \(what) that are not valid UTF-8")
        }
        return decoded
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
