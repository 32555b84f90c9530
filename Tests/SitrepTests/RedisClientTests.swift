// Tests of the hiredis-based Redis client against real redis-server processes.
//
// Tools/test starts a project-local Redis and exports SITREP_TEST_REDIS_URL;
// without it the server tests are skipped (the URL-parsing and pool tests still
// run). Tests that stop, restart or reconfigure Redis never touch that shared
// server — other suites use it in parallel — but start a private redis-server
// with the same arguments Tools/test uses (SITREP_TEST_REDIS_START), on a port
// of their own, under SITREP_TEST_DATA_DIR (cleaned up by Tools/test's trap).

import Foundation
import Logging
import NIOPosix
import Redis
import Testing

private enum RedisTestEnvironment {
    static let url = ProcessInfo.processInfo.environment["SITREP_TEST_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static let isAvailable = url != nil
    static let skipReason: Comment = "SITREP_TEST_REDIS_URL is not set: run the tests with Tools/test, which starts Redis"

    static var logger: Logger {
        var logger = Logger(label: "sitrep.tests.redis")
        logger.logLevel = .info
        return logger
    }

    static func sharedConfiguration(poolSize: Int = 4, commandTimeout: Duration = .seconds(5)) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url!)
        configuration.poolSize = poolSize
        configuration.commandTimeout = commandTimeout
        configuration.connectTimeout = .seconds(2)
        return configuration
    }

    /// A key no other test (or other suite) uses.
    static func key(_ name: String) -> String {
        "test:redisclient:\(UUID().uuidString.lowercased()):\(name)"
    }
}

/// A redis-server owned by one test: started, stopped and restarted at will.
struct PrivateRedisServer {
    let port: Int
    let directory: String
    let password: String?
    /// With certificates: TLS only (`--port 0 --tls-port <port>`), clients not asked for a
    /// certificate; the server's certificate names `localhost` (RedisTLSTests.swift).
    var tls: RedisTestCertificates? = nil

    /// Same flags as Tools/test's SITREP_TEST_REDIS_START, with this server's own port and directory.
    var startCommand: String {
        var command = "redis-server"
        if let tls {
            command +=
                " --port 0 --tls-port \(port) --tls-cert-file '\(tls.serverCertificate)' --tls-key-file '\(tls.serverKey)'"
                + " --tls-ca-cert-file '\(tls.caFile)' --tls-auth-clients no"
        } else {
            command += " --port \(port)"
        }
        command +=
            " --bind 127.0.0.1 --daemonize yes --save '' --appendonly no"
            + " --dir '\(directory)' --pidfile '\(directory)/redis.pid' --logfile '\(directory)/redis.log'"
        if let password { command += " --requirepass '\(password)'" }
        return command
    }

    private var cli: String {
        "redis-cli -h 127.0.0.1 -p \(port)" + (tls == nil ? "" : " --tls --insecure")
            + (password.map { " --no-auth-warning -a '\($0)'" } ?? "")
    }

    /// `redis://…127.0.0.1:<port>`, or with TLS `rediss://…localhost:<port>` (the name in the certificate).
    var url: String {
        (tls == nil ? "redis://" : "rediss://") + (password.map { ":\($0)@" } ?? "")
            + (tls == nil ? "127.0.0.1" : "localhost") + ":\(port)"
    }

    static func make(password: String? = nil, tls: RedisTestCertificates? = nil) throws -> PrivateRedisServer {
        let base =
            ProcessInfo.processInfo.environment["SITREP_TEST_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.temporaryDirectory.path
        let directory = "\(base)/redis-private-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return PrivateRedisServer(port: try freeLoopbackPort(), directory: directory, password: password, tls: tls)
    }

    func start() throws {
        try runShell(startCommand)
        try waitUntil(description: "redis-server on port \(port) to answer PING") {
            (try? runShell("\(cli) ping 2>/dev/null | grep -q PONG")) != nil
        }
    }

    func stop() throws {
        try? runShell("\(cli) shutdown nosave >/dev/null 2>&1")
        try waitUntil(description: "redis-server on port \(port) to stop") { !isListening(port: port) }
    }

    func remove() {
        try? stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

// MARK: - URL parsing

@Suite("RedisConfiguration(url:)")
struct RedisConfigurationURLTests {
    @Test func fullURL() throws {
        let configuration = try RedisConfiguration(url: "redis://:s3cr%40t@cache.internal:6380/3")
        #expect(configuration.host == "cache.internal")
        #expect(configuration.port == 6380)
        #expect(configuration.password == "s3cr@t")
        #expect(configuration.username == nil)
        #expect(configuration.database == 3)
        #expect(configuration.description == "redis://:***@cache.internal:6380/3")
    }

    @Test func defaults() throws {
        let configuration = try RedisConfiguration(url: "redis://localhost")
        #expect(configuration.port == 6379)
        #expect(configuration.database == 0)
        #expect(configuration.password == nil)
        #expect(configuration.poolSize == RedisConfiguration.defaultPoolSize)
        #expect(try RedisConfiguration(url: "redis://localhost/").database == 0)
    }

    @Test func userAndIPv6() throws {
        let configuration = try RedisConfiguration(url: "redis://app:pw@[::1]:7000/1")
        #expect(configuration.host == "::1")
        #expect(configuration.port == 7000)
        #expect(configuration.username == "app")
        #expect(configuration.password == "pw")
        #expect(configuration.description == "redis://app:***@[::1]:7000/1")
    }

    @Test(arguments: [
        ("", "empty"),
        ("localhost:6379", "missing scheme"),
        ("http://localhost", "unsupported scheme"),
        ("rediss://", "missing host"),
        ("unix:///run/redis.sock", "Unix socket"),
        ("redis://", "missing host"),
        ("redis://:pw@", "missing host"),
        ("redis://host:abc", "port 'abc'"),
        ("redis://host:70000", "between 1 and 65535"),
        ("redis://host:", "port ''"),
        ("redis://host/x", "database '/x'"),
        ("redis://host/-1", "database"),
        ("redis://host?db=1", "query"),
        ("redis://pw@host", "credentials"),
        ("redis://:p%zz@host", "percent-encoding"),
        ("redis://::1:6379", "IPv6"),
    ])
    func rejectsBadURLs(url: String, expected: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("'\(url)' was accepted")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func redissMeansTLSWithTheSystemRootsAndTheSamePortRule() throws {
        let azure = try RedisConfiguration(url: "rediss://:k3y%2F@sitrep.redis.cache.windows.net:6380/0")
        #expect(azure.tls == RedisTLS())
        #expect(azure.tls?.caFile == nil)
        #expect(azure.host == "sitrep.redis.cache.windows.net")
        #expect(azure.port == 6380)
        #expect(azure.password == "k3y/")
        #expect(azure.description == "rediss://:***@sitrep.redis.cache.windows.net:6380/0")
        // No port: 6379, as for redis:// (Azure's TLS ports must be written in the URL).
        #expect(try RedisConfiguration(url: "REDISS://cache").port == 6379)
        #expect(try RedisConfiguration(url: "redis://cache").tls == nil)
        #expect(try RedisConfiguration(url: "redis://cache").description == "redis://cache:6379/0")
    }

    @Test func errorsNeverShowThePassword() {
        do {
            _ = try RedisConfiguration(url: "redis://:hunter2@host:notaport")
            Issue.record("accepted")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("redis://:***@host:notaport"))
        }
    }
}

// MARK: - the pool on its own

@Suite("ConnectionPool")
struct RedisConnectionPoolTests {
    @Test func waitsThenTimesOut() async throws {
        let pool = ConnectionPool(capacity: 1)
        let first = try await pool.lease(timeout: .seconds(1))
        #expect(first == nil)  // a permit to connect
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: RedisError.self) {
            _ = try await pool.lease(timeout: .milliseconds(150))
        }
        #expect(clock.now - start >= .milliseconds(140))
        pool.release(first)
        #expect(pool.leasedCount == 0)
    }

    @Test func releaseHandsTheSlotToAWaiter() async throws {
        let pool = ConnectionPool(capacity: 1)
        let first = try await pool.lease(timeout: .seconds(1))
        async let second = pool.lease(timeout: .seconds(5))
        try await Task.sleep(for: .milliseconds(50))
        pool.release(first)
        _ = try await second
        #expect(pool.leasedCount == 1)
    }

    @Test func cancellingAWaiterFailsItPromptly() async throws {
        let pool = ConnectionPool(capacity: 1)
        let first = try await pool.lease(timeout: .seconds(1))
        let waiter = Task { () async throws -> Void in
            _ = try await pool.lease(timeout: .seconds(30))
        }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        let result = await waiter.result
        guard case .failure(let error) = result else {
            Issue.record("the cancelled waiter got a lease")
            return
        }
        #expect((error as? RedisError)?.kind == .timeout)
        pool.release(first)
    }

    @Test func closeFailsWaitersAndRefusesNewLeases() async throws {
        let pool = ConnectionPool(capacity: 1)
        let first = try await pool.lease(timeout: .seconds(1))
        let waiter = Task { () async throws -> Void in
            _ = try await pool.lease(timeout: .seconds(30))
        }
        try await Task.sleep(for: .milliseconds(50))
        async let closed: Void = pool.close()
        let result = await waiter.result
        guard case .failure(let error) = result else {
            Issue.record("the waiter got a lease from a closed pool")
            return
        }
        #expect((error as? RedisError)?.kind == .poolClosed)
        pool.release(first)  // close() waits for this one
        await closed
        await #expect(throws: RedisError(.poolClosed, "the Redis client has been shut down")) {
            _ = try await pool.lease(timeout: .seconds(1))
        }
    }
}

// MARK: - against the shared test server

@Suite("RedisClient", .enabled(if: RedisTestEnvironment.isAvailable, RedisTestEnvironment.skipReason))
struct RedisClientTests {
    @Test func commandRoundTrips() async throws {
        let redis = RedisClient(configuration: try RedisTestEnvironment.sharedConfiguration(), logger: RedisTestEnvironment.logger)
        defer { Task { await redis.shutdown() } }
        let key = RedisTestEnvironment.key("roundtrip")
        let counter = RedisTestEnvironment.key("counter")
        let hash = RedisTestEnvironment.key("hash")

        try await redis.ping()
        #expect(try await redis.send(["SET", key, "héllo wörld", "PX", "60000"]) == .status("OK"))
        #expect(try await redis.send(["GET", key]).string == "héllo wörld")
        #expect(try await redis.send(["GET", RedisTestEnvironment.key("missing")]) == .null)
        #expect(try await redis.send(["INCRBY", counter, "41"]) == .integer(41))
        #expect(try await redis.send(["INCR", counter]).int == 42)
        #expect(try await redis.send(["GET", counter]).int == 42)
        #expect(
            try await redis.send(["MGET", key, RedisTestEnvironment.key("missing"), counter])
                == .array([.bulk(Array("héllo wörld".utf8)), .null, .bulk(Array("42".utf8))]))
        #expect(try await redis.send(["HSET", hash, "a", "1", "b", "2"]) == .integer(2))
        let all: [String] = try await redis.send(["HGETALL", hash]).array?.compactMap(\.string) ?? []
        var fields: [String: String] = [:]
        for index in stride(from: 0, to: all.count - 1, by: 2) { fields[all[index]] = all[index + 1] }
        #expect(fields == ["a": "1", "b": "2"])
        #expect(try await redis.send(["EXISTS", key, counter, hash]) == .integer(3))
        #expect(try await redis.send(["DEL", key, counter, hash]) == .integer(3))
        #expect(try await redis.send(["EXISTS", key]) == .integer(0))
    }

    @Test func binaryValuesSurviveUnchanged() async throws {
        let redis = RedisClient(configuration: try RedisTestEnvironment.sharedConfiguration(), logger: RedisTestEnvironment.logger)
        defer { Task { await redis.shutdown() } }
        let key = Array(RedisTestEnvironment.key("bin").utf8) + [0, 0xFF, 0x0D, 0x0A]
        let value: [UInt8] = Array(0...255) + [0, 13, 10, 36, 42] + Array(repeating: 0, count: 1000)
        #expect(try await redis.send([Array("SET".utf8), key, value, Array("EX".utf8), Array("60".utf8)]) == .status("OK"))
        #expect(try await redis.send([Array("GET".utf8), key]) == .bulk(value))
        #expect(try await redis.send([Array("STRLEN".utf8), key]) == .integer(Int64(value.count)))

        let empty = Array(RedisTestEnvironment.key("empty").utf8)
        #expect(try await redis.send([Array("SET".utf8), empty, [], Array("EX".utf8), Array("60".utf8)]) == .status("OK"))
        #expect(try await redis.send([Array("GET".utf8), empty]) == .bulk([]))
        _ = try await redis.send([Array("DEL".utf8), key, empty])
    }

    @Test func serverErrorsAreThrownAndKeepTheConnection() async throws {
        let redis = RedisClient(configuration: try RedisTestEnvironment.sharedConfiguration(poolSize: 1), logger: RedisTestEnvironment.logger)
        defer { Task { await redis.shutdown() } }
        let key = RedisTestEnvironment.key("wrongtype")
        let clientID = try await redis.send(["CLIENT", "ID"])

        do {
            _ = try await redis.send(["NOSUCHCOMMAND", "x"])
            Issue.record("unknown command succeeded")
        } catch {
            #expect(error.kind == .server)
            #expect(error.serverCode == "ERR")
            #expect(error.message.contains("unknown command"))
        }

        _ = try await redis.send(["SET", key, "v", "EX", "60"])
        do {
            _ = try await redis.send(["LPUSH", key, "x"])
            Issue.record("LPUSH on a string succeeded")
        } catch {
            #expect(error.kind == .server)
            #expect(error.serverCode == "WRONGTYPE")
        }

        await #expect(throws: RedisError.self) { _ = try await redis.send([String]()) }

        // The same (only) connection served every call: errors did not drop it.
        #expect(try await redis.send(["CLIENT", "ID"]) == clientID)
        _ = try await redis.send(["DEL", key])
    }

    @Test func poolServesFiftyConcurrentCalls() async throws {
        let redis = RedisClient(configuration: try RedisTestEnvironment.sharedConfiguration(poolSize: 4), logger: RedisTestEnvironment.logger)
        defer { Task { await redis.shutdown() } }
        let counter = RedisTestEnvironment.key("concurrent")

        let results = try await withThrowingTaskGroup(of: Int64.self) { group in
            for _ in 0..<50 {
                group.addTask { try await redis.send(["INCR", counter]).int ?? -1 }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        #expect(results.sorted() == Array(1...50))
        #expect(try await redis.send(["GET", counter]).int == 50)
        let pool = redis.poolForTesting
        #expect(pool.leasedCount == 0)
        #expect((1...4).contains(pool.idleCount))
        _ = try await redis.send(["DEL", counter])
    }

    @Test func commandTimeoutDropsTheConnectionAndTheNextCallWorks() async throws {
        // Its own threads: timing must not depend on what other suites queue on the shared pool.
        let threads = NIOThreadPool(numberOfThreads: 1)
        threads.start()
        let redis = RedisClient(
            configuration: try RedisTestEnvironment.sharedConfiguration(poolSize: 1, commandTimeout: .milliseconds(300)),
            logger: RedisTestEnvironment.logger, threadPool: threads)
        defer {
            Task {
                await redis.shutdown(); try? await threads.shutdownGracefully()
            }
        }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await redis.send(["BLPOP", RedisTestEnvironment.key("never"), "5"])
            Issue.record("BLPOP returned before its timeout")
        } catch {
            #expect(error.kind == .timeout, "\(error)")
        }
        #expect(clock.now - start < .seconds(3))
        try await redis.ping()
    }

    @Test func selectsTheDatabaseFromTheURL() async throws {
        var configuration = try RedisTestEnvironment.sharedConfiguration(poolSize: 1)
        configuration.database = 5
        let db5 = RedisClient(configuration: configuration, logger: RedisTestEnvironment.logger)
        configuration.database = 6
        let db6 = RedisClient(configuration: configuration, logger: RedisTestEnvironment.logger)
        defer {
            Task {
                await db5.shutdown(); await db6.shutdown()
            }
        }
        let key = RedisTestEnvironment.key("db")
        _ = try await db5.send(["SET", key, "five", "EX", "60"])
        #expect(try await db5.send(["GET", key]).string == "five")
        #expect(try await db6.send(["GET", key]) == .null)
        _ = try await db5.send(["DEL", key])
    }

    @Test func connectFailureIsQuickAndSaysConnection() async throws {
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(try freeLoopbackPort())")
        configuration.connectTimeout = .seconds(2)
        let threads = NIOThreadPool(numberOfThreads: 1)
        threads.start()
        let redis = RedisClient(configuration: configuration, logger: RedisTestEnvironment.logger, threadPool: threads)
        defer {
            Task {
                await redis.shutdown(); try? await threads.shutdownGracefully()
            }
        }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try await redis.ping()
            Issue.record("ping to a closed port succeeded")
        } catch {
            #expect(error.kind == .connection)
            #expect(error.message.contains("127.0.0.1"), "\(error)")
        }
        #expect(clock.now - start < .seconds(1))
        #expect(redis.poolForTesting.leasedCount == 0)
    }

    @Test func shutdownRefusesLaterCalls() async throws {
        let redis = RedisClient(configuration: try RedisTestEnvironment.sharedConfiguration(), logger: RedisTestEnvironment.logger)
        try await redis.ping()
        await redis.shutdown()
        await redis.shutdown()  // idempotent
        do {
            try await redis.ping()
            Issue.record("ping after shutdown succeeded")
        } catch {
            #expect(error.kind == .poolClosed)
        }
    }
}

// MARK: - against a private server we stop and start

@Suite("RedisClient restarts", .serialized, .enabled(if: RedisTestEnvironment.isAvailable, RedisTestEnvironment.skipReason))
struct RedisClientRestartTests {
    @Test func recoversAfterRedisRestartsWithoutANewClient() async throws {
        let server = try PrivateRedisServer.make(password: "restart-pw")
        defer { server.remove() }
        try await server.startAsync()

        var configuration = try RedisConfiguration(url: server.url + "/2")
        configuration.poolSize = 3
        configuration.connectTimeout = .seconds(1)
        configuration.commandTimeout = .seconds(2)
        let redis = RedisClient(configuration: configuration, logger: RedisTestEnvironment.logger)
        defer { Task { await redis.shutdown() } }

        // AUTH and SELECT happened on connect.
        #expect(try await redis.send(["CLIENT", "INFO"]).string?.contains(" db=2 ") == true)
        #expect(try await redis.send(["SET", "k", "before"]) == .status("OK"))
        // Open all three pooled connections.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 { group.addTask { try await redis.ping() } }
            try await group.waitForAll()
        }

        try await server.stopAsync()
        for _ in 0..<5 {
            do {
                try await redis.ping()
                Issue.record("ping succeeded while Redis was down")
            } catch {
                #expect(error.kind == .connection, "\(error)")
            }
        }

        try await server.startAsync()
        try await redis.ping()  // the very first call after the restart succeeds
        #expect(try await redis.send(["GET", "k"]) == .null)  // started without persistence
        #expect(try await redis.send(["SET", "k", "after"]) == .status("OK"))
        #expect(try await redis.send(["GET", "k"]).string == "after")
        #expect(try await redis.send(["CLIENT", "INFO"]).string?.contains(" db=2 ") == true)
    }

    @Test func idleConnectionsDroppedByTheServerAreNotReused() async throws {
        let server = try PrivateRedisServer.make()
        defer { server.remove() }
        try await server.startAsync()
        var configuration = try RedisConfiguration(url: server.url)
        configuration.poolSize = 4
        let redis = RedisClient(configuration: configuration, logger: RedisTestEnvironment.logger)
        defer { Task { await redis.shutdown() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { try await redis.ping() } }
            try await group.waitForAll()
        }
        #expect(redis.poolForTesting.idleCount >= 1)

        // Restart with no call in between: every pooled socket is now dead.
        try await server.stopAsync()
        try await server.startAsync()
        for _ in 0..<8 { try await redis.ping() }
    }

    @Test func wrongPasswordIsAConnectionError() async throws {
        let server = try PrivateRedisServer.make(password: "right")
        defer { server.remove() }
        try await server.startAsync()
        let redis = RedisClient(
            configuration: try RedisConfiguration(url: "redis://:wrong@127.0.0.1:\(server.port)"),
            logger: RedisTestEnvironment.logger)
        defer { Task { await redis.shutdown() } }
        do {
            try await redis.ping()
            Issue.record("AUTH with a wrong password succeeded")
        } catch {
            #expect(error.kind == .connection)
            #expect(error.message.contains("WRONGPASS") || error.message.contains("invalid"), "\(error)")
            #expect(!error.message.contains("wrong@"))
        }
    }
}

// MARK: - helpers

extension RedisClient {
    fileprivate var poolForTesting: ConnectionPool { pool }
}

/// A loopback port nothing listens on right now (bind to port 0, read it, close).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw RedisTestFailure("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw RedisTestFailure("bind() failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

func isListening(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// Runs `bash -c command` and waits for it (posix_spawn + waitpid).
///
/// Not Foundation's `Process`: it learns of the child's exit through a socket
/// the child inherits, and a daemon started by the command (redis-server
/// --daemonize yes) keeps that socket open, so `waitUntilExit` never returns.
/// For the same reason the child closes every descriptor above 2 before
/// running the command: a daemon must not keep another test's pipes open.
func runShell(_ command: String) throws {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    var pid: pid_t = 0
    let closeInherited = #"for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; "#
    let arguments = ["/bin/bash", "-c", closeInherited + command]
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    let spawned = posix_spawn(&pid, "/bin/bash", &actions, nil, &argv, environ)
    guard spawned == 0 else { throw RedisTestFailure("posix_spawn failed (\(spawned)) for `\(command)`") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    guard exitCode == 0 else { throw RedisTestFailure("`\(command)` exited with \(exitCode)") }
}

func waitUntil(description: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if condition() { return }
        usleep(20_000)
    }
    throw RedisTestFailure("timed out waiting for \(description)")
}

struct RedisTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
