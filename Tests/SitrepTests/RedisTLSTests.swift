// Tests of `rediss://` (TLS through RedisTLSTunnel) against real redis-server
// processes serving TLS only, with a throwaway CA and server certificate made
// by the `openssl` CLI for each test.
//
// Every test starts its own redis-server (PrivateRedisServer of
// RedisClientTests.swift, with `tls:`) on a free loopback port under
// SITREP_TEST_DATA_DIR or the temporary directory, so the suite needs only
// `redis-server`, `redis-cli` and `openssl` on the PATH. The server listens on
// no plain-text port (`--port 0`), so a command that succeeds went over TLS.

import Foundation
import Logging
import Redis
import Synchronization
import Testing

/// A throwaway CA, a server certificate it signed for `localhost` (the DNS name only: no IP
/// address, so a `rediss://127.0.0.1` URL does not match it), and an unrelated second CA.
struct RedisTestCertificates {
    let directory: String

    var caFile: String { "\(directory)/ca.pem" }
    var otherCAFile: String { "\(directory)/other-ca.pem" }
    var serverCertificate: String { "\(directory)/server.pem" }
    var serverKey: String { "\(directory)/server.key" }

    static func make() throws -> RedisTestCertificates {
        let base =
            ProcessInfo.processInfo.environment["SITREP_TEST_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.temporaryDirectory.path
        let directory = "\(base)/redis-tls-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ca =
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
            + " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        try runShell(
            """
            set -e; cd '\(directory)'
            \(ca) -keyout ca.key -out ca.pem -subj '/CN=Sitrep test CA' 2>/dev/null
            \(ca) -keyout other-ca.key -out other-ca.pem -subj '/CN=Some other CA' 2>/dev/null
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
              -subj '/CN=localhost' 2>/dev/null
            printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\nkeyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext \
              -out server.pem 2>/dev/null
            chmod 644 server.key
            """)
        return RedisTestCertificates(directory: directory)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

private enum RedisTLSTestEnvironment {
    static let isAvailable =
        (try? runShell("command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v openssl >/dev/null"))
        != nil

    static var logger: Logger {
        var logger = Logger(label: "sitrep.tests.redis-tls")
        logger.logLevel = .error
        return logger
    }

    /// The server's `rediss://` URL with the test CA trusted, short timeouts.
    static func configuration(
        _ server: PrivateRedisServer, caFile: String?, url: String? = nil, connectTimeout: Duration = .seconds(2)
    ) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url ?? server.url)
        configuration.tls = RedisTLS(caFile: caFile)
        configuration.connectTimeout = connectTimeout
        configuration.commandTimeout = .seconds(3)
        configuration.poolSize = 4
        return configuration
    }

    /// Runs `body` against a started TLS server with a password and its certificates, and removes
    /// both afterwards, whatever `body` did.
    static func withServer(_ body: (PrivateRedisServer, RedisTestCertificates) async throws -> Void) async throws {
        let certificates = try await offCooperativePool { try RedisTestCertificates.make() }
        defer { certificates.remove() }
        let server = try PrivateRedisServer.make(password: "tls-pw", tls: certificates)
        defer { server.remove() }
        try await server.startAsync()
        try await body(server, certificates)
    }

    /// Sends PING expecting a connection error, returns it and how long it took.
    static func failingPing(_ configuration: RedisConfiguration) async throws -> (RedisError, Duration) {
        let redis = RedisClient(configuration: configuration, logger: logger)
        defer { Task { await redis.shutdown() } }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try await redis.ping()
        } catch {
            return (error, clock.now - start)
        }
        throw RedisTestFailure("PING over \(configuration) succeeded")
    }
}

@Suite(
    "Redis over TLS (rediss://)", .serialized,
    .enabled(if: RedisTLSTestEnvironment.isAvailable, "redis-server, redis-cli or openssl is not on the PATH"))
struct RedisTLSTests {
    @Test func commandsAuthAndSelectGoOverTLS() async throws {
        try await RedisTLSTestEnvironment.withServer { server, certificates in
            let configuration = try RedisTLSTestEnvironment.configuration(
                server, caFile: certificates.caFile, url: server.url + "/3")
            #expect(configuration.description == "rediss://:***@localhost:\(server.port)/3")
            let redis = RedisClient(configuration: configuration, logger: RedisTLSTestEnvironment.logger)
            defer { Task { await redis.shutdown() } }

            try await redis.ping()
            // AUTH and SELECT went through the tunnel on connect.
            #expect(try await redis.send(["CLIENT", "INFO"]).string?.contains(" db=3 ") == true)
            let key = "tls:\(UUID().uuidString)"
            #expect(try await redis.send(["SET", key, "over TLS", "PX", "60000"]) == .status("OK"))
            #expect(try await redis.send(["GET", key]).string == "over TLS")

            // Binary-safe, and far larger than one TLS record (16 KiB), a socket buffer or the relay's
            // write buffer (so the relay has to hold back reads in both directions).
            let big = (0..<4_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
            #expect(try await redis.send([Array("SET".utf8), Array(key.utf8), big]) == .status("OK"))
            #expect(try await redis.send([Array("GET".utf8), Array(key.utf8)]) == .bulk(big))

            // Many calls at once: the pool opens several tunnels and uses them concurrently.
            let counter = key + ":n"
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<40 { group.addTask { _ = try await redis.send(["INCR", counter]) } }
                try await group.waitForAll()
            }
            #expect(try await redis.send(["GET", counter]).int == 40)
            let clients = try await redis.send(["CLIENT", "LIST"]).string ?? ""
            #expect(clients.split(separator: "\n").count >= 2, "\(clients)")
            _ = try await redis.send(["DEL", key, counter])
        }
    }

    @Test func closingEitherSideClosesTheOther() async throws {
        try await RedisTLSTestEnvironment.withServer { server, certificates in
            let configuration = try RedisTLSTestEnvironment.configuration(server, caFile: certificates.caFile)
            let observer = RedisClient(configuration: configuration, logger: RedisTLSTestEnvironment.logger)
            defer { Task { await observer.shutdown() } }
            try await observer.ping()

            // The client shuts down (hiredis frees its contexts): the server sees its TLS
            // connections go, leaving only the observer's.
            let redis = RedisClient(configuration: configuration, logger: RedisTLSTestEnvironment.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { try await redis.ping() } }
                try await group.waitForAll()
            }
            #expect(try await Self.connectedClients(observer) >= 2)
            await redis.shutdown()
            try await eventually("the server to drop the closed client's connections", timeout: .seconds(10)) {
                try await Self.connectedClients(observer) == 1
            }

            // The server restarts (closing every TLS connection): the pooled connection is
            // seen as closed before reuse, so the first call after the restart succeeds.
            try await server.stopAsync()
            do throws(RedisError) {
                try await observer.ping()
                Issue.record("PING succeeded while the server was down")
            } catch {
                #expect(error.kind == .connection, "\(error)")
                #expect(error.message.contains("localhost:\(server.port)"), "\(error)")
            }
            try await server.startAsync()
            try await observer.ping()
            #expect(try await observer.send(["CLIENT", "INFO"]).string?.contains("cmd=client") == true)
        }
    }

    @Test func aServerThatStopsAnsweringTimesOutTheCommand() async throws {
        try await RedisTLSTestEnvironment.withServer { server, certificates in
            // Resumed before the server is removed (it was stopped with SIGSTOP).
            defer { try? server.signal("CONT") }
            var configuration = try RedisTLSTestEnvironment.configuration(server, caFile: certificates.caFile)
            configuration.commandTimeout = .seconds(1)
            let redis = RedisClient(configuration: configuration, logger: RedisTLSTestEnvironment.logger)
            defer { Task { await redis.shutdown() } }
            try await redis.ping()

            try server.signal("STOP")
            let clock = ContinuousClock()
            let start = clock.now
            do throws(RedisError) {
                try await redis.ping()
                Issue.record("PING answered by a stopped server")
            } catch {
                #expect(error.kind == .timeout, "\(error)")
            }
            #expect(clock.now - start < .seconds(2))
            try server.signal("CONT")
            try await redis.ping()  // on a new connection: the timed-out one was dropped
        }
    }

    @Test func subscriberReceivesMessagesOverTLS() async throws {
        try await RedisTLSTestEnvironment.withServer { server, certificates in
            let configuration = try RedisTLSTestEnvironment.configuration(server, caFile: certificates.caFile)
            let publisher = RedisClient(configuration: configuration, logger: RedisTLSTestEnvironment.logger)
            let subscriber = RedisSubscriber(
                configuration: configuration, channels: ["tls:news"], logger: RedisTLSTestEnvironment.logger)
            let events = Recorded(subscriber.events())
            defer {
                Task {
                    await subscriber.shutdown(); await publisher.shutdown()
                }
            }
            try await eventually("the subscriber to subscribe", timeout: .seconds(10)) { events.all.contains(.subscribed) }
            let payload = Array("über TLS \u{1F512}".utf8) + [0, 255, 10]
            #expect(try await publisher.send([Array("PUBLISH".utf8), Array("tls:news".utf8), payload]) == .integer(1))
            try await eventually("the message", timeout: .seconds(10)) { events.all.contains(.message(channel: "tls:news", payload: payload)) }
            #expect(!events.all.contains { if case .disconnected = $0 { true } else { false } }, "\(events.all)")
        }
    }

    @Test func anUntrustedCertificateFailsQuicklyAndSaysWhy() async throws {
        try await RedisTLSTestEnvironment.withServer { server, certificates in
            // A CA that did not sign the server's certificate.
            let (error, elapsed) = try await RedisTLSTestEnvironment.failingPing(
                RedisTLSTestEnvironment.configuration(server, caFile: certificates.otherCAFile))
            #expect(error.kind == .connection)
            #expect(error.message.contains("localhost:\(server.port)"), "\(error)")
            #expect(error.message.contains("certificate verify failed"), "\(error)")
            #expect(error.message.contains("CERTIFICATE_VERIFY_FAILED"), "\(error)")
            #expect(error.message.contains(certificates.otherCAFile), "\(error)")
            #expect(elapsed < .seconds(2), "\(elapsed)")

            // The system trust roots do not know the test CA either.
            let (systemError, _) = try await RedisTLSTestEnvironment.failingPing(
                RedisTLSTestEnvironment.configuration(server, caFile: nil))
            #expect(systemError.message.contains("certificate verify failed"), "\(systemError)")
            #expect(systemError.message.contains("the system trust roots"), "\(systemError)")

            // The subscriber reports the same reason while it retries.
            let subscriber = RedisSubscriber(
                configuration: try RedisTLSTestEnvironment.configuration(server, caFile: certificates.otherCAFile),
                channels: ["tls:never"], logger: RedisTLSTestEnvironment.logger)
            let events = Recorded(subscriber.events())
            defer { Task { await subscriber.shutdown() } }
            try await eventually("the subscriber to report the failure", timeout: .seconds(10)) {
                events.all.contains { event in
                    if case .disconnected(let reason) = event { reason.contains("certificate verify failed") } else { false }
                }
            }
        }
    }

    @Test func aCertificateForAnotherNameIsRefused() async throws {
        try await RedisTLSTestEnvironment.withServer { server, certificates in
            // Signed by the trusted CA, but it names `localhost`, not the address 127.0.0.1.
            let (error, elapsed) = try await RedisTLSTestEnvironment.failingPing(
                RedisTLSTestEnvironment.configuration(
                    server, caFile: certificates.caFile, url: "rediss://:tls-pw@127.0.0.1:\(server.port)"))
            #expect(error.kind == .connection)
            #expect(error.message.contains("127.0.0.1:\(server.port)"), "\(error)")
            #expect(error.message.contains("not valid for the host name '127.0.0.1'"), "\(error)")
            #expect(elapsed < .seconds(2), "\(elapsed)")
        }
    }

    @Test func aPlainTextPortFailsWithinTheConnectTimeout() async throws {
        let certificates = try await offCooperativePool { try RedisTestCertificates.make() }
        let plain = try PrivateRedisServer.make()
        defer {
            plain.remove()
            certificates.remove()
        }
        try await plain.startAsync()
        let (error, elapsed) = try await RedisTLSTestEnvironment.failingPing(
            RedisTLSTestEnvironment.configuration(
                plain, caFile: certificates.caFile, url: "rediss://localhost:\(plain.port)", connectTimeout: .seconds(1)))
        #expect(error.kind == .connection)
        #expect(error.message.contains("localhost:\(plain.port)"), "\(error)")
        #expect(error.message.contains("TLS"), "\(error)")
        #expect(elapsed < .seconds(2), "\(elapsed)")  // the 1 s connect timeout, with room for a loaded machine

        // The same server over redis:// still works as before.
        let redis = RedisClient(configuration: try RedisConfiguration(url: plain.url), logger: RedisTLSTestEnvironment.logger)
        defer { Task { await redis.shutdown() } }
        try await redis.ping()
    }

    @Test func aClosedPortFailsLikePlainRedis() async throws {
        let port = try freeLoopbackPort()
        let (error, elapsed) = try await RedisTLSTestEnvironment.failingPing(
            try RedisConfiguration(url: "rediss://127.0.0.1:\(port)"))
        #expect(error.kind == .connection)
        #expect(error.message == "connect to 127.0.0.1:\(port) failed: Connection refused", "\(error)")
        #expect(elapsed < .seconds(1), "\(elapsed)")
    }

    // MARK: - helpers

    static func connectedClients(_ redis: RedisClient) async throws -> Int {
        let list = try await redis.send(["CLIENT", "LIST"]).string ?? ""
        return list.split(separator: "\n").count
    }
}

@Suite("RedisTLS trust roots")
struct RedisTLSTrustTests {
    @Test func aMissingEmptyOrNonPEMCAFileIsRefusedBeforeConnecting() throws {
        let missing = "/nonexistent-\(UUID().uuidString)/ca.pem"
        do {
            try RedisTLS(caFile: missing).prepare()
            Issue.record("a missing CA file was accepted")
        } catch {
            #expect(error.description == "cannot read the CA file \(missing): No such file or directory")
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-ca-\(UUID().uuidString).pem")
        defer { try? FileManager.default.removeItem(at: file) }
        for content in ["", "hello\n", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"] {
            try Data(content.utf8).write(to: file)
            do {
                try RedisTLS(caFile: file.path).prepare()
                Issue.record("\(content.debugDescription) was accepted as a CA file")
            } catch {
                #expect(error.description.hasPrefix("the CA file \(file.path) "), "\(error)")
            }
        }
        try RedisTLS().prepare()  // the system roots
    }

    @Test(.enabled(if: RedisTLSTestEnvironment.isAvailable)) func aPEMBundleIsAccepted() throws {
        let certificates = try RedisTestCertificates.make()
        defer { certificates.remove() }
        let bundle = "\(certificates.directory)/bundle.pem"
        try runShell("cat '\(certificates.otherCAFile)' '\(certificates.caFile)' > '\(bundle)'")
        try RedisTLS(caFile: bundle).prepare()
    }
}

/// Reads a subscriber's stream in a task of its own and keeps every event.
private final class Recorded: Sendable {
    private let events = Mutex<[RedisSubscriber.Event]>([])

    init(_ stream: AsyncStream<RedisSubscriber.Event>) {
        Task { [self] in
            for await event in stream { events.withLock { $0.append(event) } }
        }
    }

    var all: [RedisSubscriber.Event] { events.withLock { $0 } }
}
