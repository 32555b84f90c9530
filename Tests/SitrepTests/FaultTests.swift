import Foundation
import Generated
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import SitrepRuntime
import Storage
import Synchronization
import Testing

@testable import Handlers

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// Faults from outside: PostgreSQL going away and coming back under load, `sitrep serve` killed
/// mid-write, and abusive clients (deep JSON, huge bodies and headers, slowloris).
@Suite("faults", .enabled(if: SitrepHarness.isConfigured), .serialized)
struct FaultTests {
    static func actionBody(_ title: String) -> String {
        #"{"title":"\#(title)","ownerId":"t:omar","ownerName":"Omar Haddad","dueDate":"2026-12-01","priority":"high"}"#
    }

    static func headers(_ token: String, key: String) -> HTTPFields {
        var h = HTTPFields.auth(token, json: true)
        h[HTTPField.Name("Idempotency-Key")!] = key
        return h
    }

    /// Runs `command` with bash on a thread of its own (the shared pools may be busy with the
    /// very load the test creates).
    static func shell(_ command: String) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                // system(3), not Process: Foundation's wait for the child did not return once
                // the child had started a daemon (the PostgreSQL server).
                let status = system("/bin/bash -c \(Self.shellQuoted(command)) </dev/null >/dev/null 2>&1")
                if status == 0 {
                    c.resume()
                } else {
                    c.resume(throwing: ContractViolation("`\(command)` exited with status \(status)"))
                }
            }
            thread.start()
        }
    }

    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// `body`'s result, or nil when it takes longer than `limit` (it is then left running).
    static func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        let outcome = FirstOutcome<T?>()
        let work = Task {
            do { outcome.settle(.success(try await body())) } catch { outcome.settle(.failure(error)) }
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            outcome.settle(.success(nil))
        }
        defer { timer.cancel() }
        _ = work
        return try await outcome.value()
    }

    static var pgControl: (stop: String, start: String)? {
        let env = ProcessInfo.processInfo.environment
        guard let stop = env["SITREP_TEST_PG_STOP"], let start = env["SITREP_TEST_PG_START"] else { return nil }
        return (stop, start)
    }

    /// Counts rows with a query returning one int8.
    static func count(_ sql: String, _ h: SitrepHarness) async throws -> Int {
        try await DistributionTests.count(sql, h)
    }

    // MARK: PostgreSQL outage

    /// Writers and readers keep going while PostgreSQL stops for three seconds: every answer is a
    /// success or a 503 problem (never a 500, never a hang), service resumes within 5 s of the
    /// database being back, no acknowledged write is lost, and retrying the refused ones with
    /// their idempotency keys converges to exactly one action each.
    @Test(.enabled(if: FaultTests.pgControl != nil, "needs the local test PostgreSQL (Tools/test without external services)"))
    func postgresStopsAndComesBackUnderLoad() async throws {
        let control = try #require(Self.pgControl)
        try await SitrepHarness.instances(1, databaseDeadline: .seconds(1)) { clients, h in
            let client = clients[0]
            let token = h.tokens.admin
            actor Log {
                var acknowledged: Set<String> = []
                var refused: Set<String> = []
                var statuses: [Int: Int] = [:]
                var firstSuccessAfterRestart: ContinuousClock.Instant?
                var restartedAt: ContinuousClock.Instant?
                var problems: [String] = []
                func record(_ key: String, _ r: TestResponse) {
                    let status = Int(r.status.code)
                    statuses[status, default: 0] += 1
                    if status == 201 {
                        acknowledged.insert(key)
                        refused.remove(key)
                        if let restartedAt, firstSuccessAfterRestart == nil, ContinuousClock.now > restartedAt {
                            firstSuccessAfterRestart = .now
                        }
                    } else {
                        refused.insert(key)
                        if status != 503 || r.problemCode != "dependency.unavailable" || r.headers[.retryAfter] == nil {
                            problems.append("\(status) \(r.text)")
                        }
                    }
                }
                func read(_ r: TestResponse) {
                    let status = Int(r.status.code)
                    statuses[status, default: 0] += 1
                    if status != 200 && status != 503 { problems.append("read \(status) \(r.text)") }
                }
                func restarted() { restartedAt = .now }
                func unknown(_ key: String) {
                    refused.insert(key)
                    statuses[0, default: 0] += 1
                }
                func slowRead() { statuses[-1, default: 0] += 1 }
            }
            let log = Log()
            let stop = ManagedAtomicFlag()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<4 {
                    group.addTask {
                        var i = 0
                        while !stop.isSet {
                            let key = "pg-\(w)-\(i)"
                            // A write the outage caught inside the pool's wait may take until the
                            // pool's circuit breaker gives up: treated as unknown and retried below.
                            let r = try await Self.within(.seconds(3)) {
                                try await client.execute(
                                    uri: "/v1/actions", method: .post, headers: Self.headers(token, key: key), body: buffer(Self.actionBody(key)))
                            }
                            if let r { await log.record(key, r) } else { await log.unknown(key) }
                            i += 1
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                }
                group.addTask {
                    while !stop.isSet {
                        if let r = try await Self.within(
                            .seconds(3), { try await client.execute(uri: "/v1/signals?limit=5", method: .get, headers: .auth(token)) })
                        {
                            await log.read(r)
                        } else {
                            await log.slowRead()
                        }
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(1))
                    try await Self.shell(control.stop)
                    try await Task.sleep(for: .seconds(3))
                    try await Self.shell(control.start)
                    await log.restarted()
                    try await Task.sleep(for: .seconds(6))
                    stop.set()
                }
                try await group.waitForAll()
            }
            let problems = await log.problems
            #expect(problems.isEmpty, "every failure is a 503 dependency.unavailable problem: \(problems.prefix(5))")
            let statuses = await log.statuses
            #expect(statuses[503, default: 0] > 0, "the outage was seen: \(statuses)")
            #expect(statuses[500] == nil)
            let restartedAt = try #require(await log.restartedAt)
            let back = try #require(await log.firstSuccessAfterRestart, "writes succeed again after the restart")
            #expect(back - restartedAt < .seconds(5), "service resumed \(back - restartedAt) after PostgreSQL was back")

            // Every refused write retried with its key: exactly one action per key, none lost.
            for key in await log.refused {
                let r = try await client.execute(
                    uri: "/v1/actions", method: .post, headers: Self.headers(token, key: key), body: buffer(Self.actionBody(key)))
                #expect(r.status == .created, "retry of \(key): \(r.status.code) \(r.text)")
            }
            let acknowledged = await log.acknowledged
            let keys = acknowledged.union(await log.refused)
            #expect(try await Self.count("SELECT count(*)::int8 FROM actions WHERE title LIKE 'pg-%'", h) == keys.count)
            #expect(try await Self.count("SELECT count(DISTINCT title)::int8 FROM actions WHERE title LIKE 'pg-%'", h) == keys.count)
            #expect(
                try await Self.count(
                    "SELECT count(*)::int8 FROM audit_events e JOIN actions a ON e.entity_id = a.id::text WHERE e.action = 'action.create' AND a.title LIKE 'pg-%'",
                    h) == keys.count)
        }
    }

    // MARK: serve killed mid-write

    static func startServe(_ h: SitrepHarness, port: Int, log: URL, extra: [String: String] = [:]) throws -> Process {
        try launchSitrep(
            ["serve"], log: log,
            environment: [
                "SITREP_DATABASE_URL": try DispatchCrashTests.databaseURL(h), "SITREP_PORT": String(port), "SITREP_HOST": "127.0.0.1",
                "SITREP_DEV_ISSUER_KEY": SitrepHarness.keyPath, "SITREP_MIGRATIONS_DIR": TestDatabase.migrationsDirectory.path,
                "SITREP_DISPATCH_IN_SERVE": "false",
                "SITREP_RATE_LIMITS": "writes=100000/60,ingest=100000/60,auth=100/60,messaging=100/60,webhook=100/60",
            ].merging(extra) { _, new in new })
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// `sitrep serve` is SIGKILLed while 8 clients create actions with idempotency keys. After a
    /// restart, retrying every key that did not get its 201 converges: one action per key, each
    /// with its audit event, acknowledged ones replayed unchanged, and the audit chain intact.
    @Test func serveKilledDuringWritesLeavesNoPartialState() async throws {
        try await SitrepHarness.with { _, h in
            let port = try Self.freePort()
            let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-kill-\(port).log")
            let base = "http://127.0.0.1:\(port)"
            let token = h.tokens.admin
            func post(_ key: String) async -> (status: Int, id: String?, replayed: Bool)? {
                var request = URLRequest(url: URL(string: base + "/v1/actions")!)
                request.httpMethod = "POST"
                request.timeoutInterval = 5
                request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.setValue(key, forHTTPHeaderField: "Idempotency-Key")
                request.httpBody = Data(Self.actionBody(key).utf8)
                guard let (data, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else {
                    return nil
                }
                let id = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["id"] as? String
                return (http.statusCode, id, http.value(forHTTPHeaderField: "Idempotent-Replayed") == "true")
            }
            func waitReady() async throws {
                for _ in 0..<200 {
                    if let (_, r) = try? await URLSession.shared.data(from: URL(string: base + "/healthz")!),
                        (r as? HTTPURLResponse)?.statusCode == 200
                    {
                        return
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                throw ContractViolation("sitrep serve did not come up; see \(logURL.path)")
            }

            var serve = try Self.startServe(h, port: port, log: logURL)
            try await waitReady()
            let acks = SharedCounter()
            let acknowledged = try await withThrowingTaskGroup(of: [String: String].self) { group in
                for w in 0..<8 {
                    group.addTask {
                        var mine: [String: String] = [:]
                        for i in 0..<1000 {
                            let key = "kill-\(w)-\(i)"
                            guard let r = await post(key) else { break }  // the server is gone
                            if r.status == 201, let id = r.id {
                                mine[key] = id
                                acks.increment()
                            }
                        }
                        return mine
                    }
                }
                // Killed while writes are flowing: once a few dozen are acknowledged (however
                // slow the machine is), then a moment later so that some are in flight.
                let deadline = ContinuousClock.now + .seconds(60)
                while acks.count < 40 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                try await Task.sleep(for: .milliseconds(300))
                kill(serve.processIdentifier, SIGKILL)
                var all: [String: String] = [:]
                for try await part in group { all.merge(part) { a, _ in a } }
                return all
            }
            serve.waitUntilExit()
            #expect(acknowledged.count > 20, "writes were flowing when the server died")
            serve = try Self.startServe(h, port: port, log: logURL)
            defer {
                serve.terminate()
                serve.waitUntilExit()
            }
            try await waitReady()

            // Every key each writer got to, acknowledged or not, retried.
            let attempted = try await Self.attemptedKeys(h, acknowledged: Set(acknowledged.keys))
            for key in attempted {
                let r = try #require(await post(key))
                #expect(r.status == 201, "\(key): \(r.status)")
                if let before = acknowledged[key] {
                    #expect(r.replayed && r.id == before, "an acknowledged write replays unchanged")
                }
            }
            let keys = attempted.count
            #expect(try await Self.count("SELECT count(*)::int8 FROM actions WHERE title LIKE 'kill-%'", h) == keys)
            #expect(try await Self.count("SELECT count(DISTINCT title)::int8 FROM actions WHERE title LIKE 'kill-%'", h) == keys)
            #expect(
                try await Self.count(
                    "SELECT count(*)::int8 FROM audit_events e JOIN actions a ON e.entity_id = a.id::text WHERE e.action = 'action.create' AND a.title LIKE 'kill-%'",
                    h) == keys)
            let verdict = try await AuditVerifier().verify(client: h.db.client)
            #expect(verdict.valid, "\(verdict)")
        }
    }

    /// The keys the writers reached: every acknowledged one, plus for each writer the keys up to
    /// the one in flight when the server died (its highest stored or acknowledged index + 1).
    static func attemptedKeys(_ h: SitrepHarness, acknowledged: Set<String>) async throws -> [String] {
        var highest: [Int: Int] = [:]
        var stored: [String] = []
        for try await title in try await h.db.client.query("SELECT title FROM actions WHERE title LIKE 'kill-%'").decode(String.self) {
            stored.append(title)
        }
        for key in acknowledged.union(stored) {
            let parts = key.split(separator: "-")
            guard parts.count == 3, let w = Int(parts[1]), let i = Int(parts[2]) else { continue }
            highest[w] = max(highest[w] ?? -1, i)
        }
        var keys: [String] = []
        for w in 0..<8 {
            let top = (highest[w] ?? -1) + 1
            for i in 0...top { keys.append("kill-\(w)-\(i)") }
        }
        return keys
    }

    // MARK: abusive clients

    /// Deep nesting, oversized bodies, a huge header and a hundred slowloris connections against
    /// a real `sitrep serve`: each is refused or cut off, a normal client is served throughout,
    /// and the process is still up at the end.
    @Test func abusiveClientsAreRefusedAndTheServerStaysUp() async throws {
        try await SitrepHarness.with { _, h in
            let port = try Self.freePort()
            let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-abuse-\(port).log")
            let serve = try Self.startServe(h, port: port, log: logURL, extra: ["SITREP_IDLE_TIMEOUT_SECONDS": "1"])
            defer {
                serve.terminate()
                serve.waitUntilExit()
            }
            try await Self.waitHealthy(port: port, log: logURL)
            let token = h.tokens.admin
            let head =
                "POST /v1/actions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nConnection: close\r\n"

            let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
            let r1 = try await RawHTTP.exchange(
                port: port, head + "Idempotency-Key: deep\r\nContent-Length: \(deep.utf8.count)\r\n\r\n" + deep)
            #expect(r1.hasPrefix("HTTP/1.1 400") && r1.contains("request.malformed_json"), "\(r1.prefix(300))")

            // 2 MiB declared: 413 before the body is read (the client sees it while still
            // sending); without a declared length: 413 once past the limit.
            let big = "{\"title\":\"" + String(repeating: "x", count: 2 << 20) + "\"}"
            let declared = try await RawHTTP.exchange(
                port: port, head + "Idempotency-Key: big1\r\nContent-Length: \(big.utf8.count)\r\n\r\n" + big)
            #expect(declared.hasPrefix("HTTP/1.1 413") && declared.contains("request.too_large"), "\(declared.prefix(300))")
            let chunked = try await RawHTTP.exchange(
                port: port,
                head + "Idempotency-Key: big2\r\nTransfer-Encoding: chunked\r\n\r\n" + String(big.utf8.count, radix: 16) + "\r\n" + big
                    + "\r\n0\r\n\r\n")
            #expect(chunked.hasPrefix("HTTP/1.1 413") && chunked.contains("request.too_large"), "\(chunked.prefix(300))")

            // A 200 kB header: refused (4xx or the connection closed), never a crash.
            let huge = try await RawHTTP.exchange(
                port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: \(String(repeating: "a", count: 200_000))\r\n\r\n")
            #expect(huge.isEmpty || huge.hasPrefix("HTTP/1.1 4"), "\(huge.prefix(100))")

            // Slowloris: 100 connections that never finish their request head.
            var slow: [Int32] = []
            for _ in 0..<100 {
                let fd = try RawHTTP.connect(port: port)
                RawHTTP.send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                slow.append(fd)
            }
            // Meanwhile a normal client is served promptly.
            let started = ContinuousClock.now
            let ok = try await RawHTTP.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(ok.hasPrefix("HTTP/1.1 200") && ContinuousClock.now - started < .seconds(1))
            // The idle timeout (SITREP_IDLE_TIMEOUT_SECONDS, 1 s here) closes them.
            try await Task.sleep(for: .milliseconds(2500))
            let stillOpen = try await offCooperativePool { [slow] in slow.filter { RawHTTP.isOpen($0) }.count }
            for fd in slow { close(fd) }
            #expect(stillOpen == 0, "\(stillOpen) slow connections still open")
            #expect(serve.isRunning, "sitrep serve survived; see \(logURL.path)")
            let after = try await RawHTTP.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(after.hasPrefix("HTTP/1.1 200"))
        }
    }

    static func waitHealthy(port: Int, log: URL) async throws {
        for _ in 0..<200 {
            if let r = try? await RawHTTP.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                r.hasPrefix("HTTP/1.1 200")
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ContractViolation("sitrep serve did not come up; see \(log.path)")
    }
}

/// A flag set once, readable from any task.
final class ManagedAtomicFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// A count shared by tasks.
final class SharedCounter: Sendable {
    private let value = Mutex(0)
    var count: Int { value.withLock { $0 } }
    func increment() { value.withLock { $0 += 1 } }
}

/// Plain blocking sockets, for what an HTTP client library will not send.
enum RawHTTP {
    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw ContractViolation("connect to \(port) failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func send(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Whether the server still holds the connection: a read that times out (nothing to read,
    /// not closed) means open; 0 bytes or an error means closed.
    static func isOpen(_ fd: Int32) -> Bool {
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return true }
        return n > 0
    }

    /// Sends `request` on a new connection and returns what came back before the server closed
    /// it or went quiet ("" when it just closed).
    static func exchange(port: Int, _ request: String) async throws -> String {
        try await offCooperativePool {
            let fd = try connect(port: port)
            defer { close(fd) }
            send(fd, request)
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                out += buffer[0..<n]
                if out.count > 65_536 { break }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
