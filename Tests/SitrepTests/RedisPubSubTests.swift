// Tests of RedisSubscriber (pub/sub) against private redis-server processes.
//
// Every test starts its own redis-server on a free loopback port (the
// PrivateRedisServer helper of RedisClientTests.swift, under
// SITREP_TEST_DATA_DIR or the temporary directory), so the suite does not need
// Tools/test's shared Redis and may kill and restart its servers at will. It
// only needs `redis-server` on the PATH. Swift Testing, like the rest of this
// target.

import Foundation
import Logging
import Redis
import Synchronization
import Testing

@Suite("RedisSubscriber", .serialized, .enabled(if: PubSubTestEnvironment.hasRedisServer, "redis-server is not on the PATH"))
struct RedisPubSubTests {
    @Test func deliversExactBytesIncludingBinaryAndLargePayloads() async throws {
        let server = try PrivateRedisServer.make()
        defer { server.remove() }
        try await server.startAsync()
        let publisher = try PubSubTestEnvironment.client(server)
        let subscriber = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:a", "pubsub:b"])
        let recorder = EventRecorder(subscriber.events())
        defer {
            Task {
                await subscriber.shutdown(); await publisher.shutdown()
            }
        }
        try await recorder.waitUntil("subscribed") { $0 == [.subscribed] }

        var generator = SystemRandomNumberGenerator()
        let large = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let sent: [(String, [UInt8])] = [
            ("pubsub:a", Array("hello".utf8)),
            ("pubsub:a", [0, 0xFF, 0xFE, 0x80, 0xC3, 0x28, 13, 10, 36, 42, 0]),  // not UTF-8, CR LF, RESP markers
            ("pubsub:b", []),
            ("pubsub:a", Array("ünïcødé ✓ مرحبا".utf8)),
            ("pubsub:b", large),
            ("pubsub:a", Array(0...255)),
        ]
        for (channel, payload) in sent {
            let receivers = try await publisher.send([Array("PUBLISH".utf8), Array(channel.utf8), payload])
            #expect(receivers == .integer(1))
        }
        let messages = try await recorder.waitForMessages(sent.count)
        #expect(messages.count == sent.count)
        for (received, expected) in zip(messages, sent) {
            #expect(received.channel == expected.0)
            #expect(received.payload == expected.1, "payload of \(expected.1.count) bytes on \(expected.0) differs")
        }
        // A channel we did not subscribe to is not delivered.
        #expect(try await publisher.send(["PUBLISH", "pubsub:other", "x"]) == .integer(0))
    }

    @Test func twoSubscribersBothReceive() async throws {
        let server = try PrivateRedisServer.make()
        defer { server.remove() }
        try await server.startAsync()
        let publisher = try PubSubTestEnvironment.client(server)
        let first = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:shared"])
        let second = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:shared", "pubsub:shared"])
        let firstEvents = EventRecorder(first.events())
        let secondEvents = EventRecorder(second.events())
        defer {
            Task {
                await first.shutdown(); await second.shutdown(); await publisher.shutdown()
            }
        }
        try await firstEvents.waitUntil("first subscribed") { $0 == [.subscribed] }
        try await secondEvents.waitUntil("second subscribed") { $0 == [.subscribed] }

        #expect(try await publisher.send(["PUBLISH", "pubsub:shared", "one"]) == .integer(2))
        #expect(try await publisher.send(["PUBLISH", "pubsub:shared", "two"]) == .integer(2))
        let expected: [RedisSubscriber.Event] = [
            .subscribed,
            .message(channel: "pubsub:shared", payload: Array("one".utf8)),
            .message(channel: "pubsub:shared", payload: Array("two".utf8)),
        ]
        try await firstEvents.waitUntil("first got both") { $0.count >= 3 }
        try await secondEvents.waitUntil("second got both") { $0.count >= 3 }
        #expect(firstEvents.events == expected)
        #expect(secondEvents.events == expected)  // the duplicate channel did not double anything
    }

    @Test func authenticatesAndReportsAWrongPassword() async throws {
        let server = try PrivateRedisServer.make(password: "pubsub-pw")
        defer { server.remove() }
        try await server.startAsync()
        let publisher = try PubSubTestEnvironment.client(server)
        let subscriber = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:auth"])
        var wrong = try PubSubTestEnvironment.configuration(server)
        wrong.password = "not-the-password"
        let refused = RedisSubscriber(configuration: wrong, channels: ["pubsub:auth"], logger: PubSubTestEnvironment.logger)
        let recorder = EventRecorder(subscriber.events())
        let refusedEvents = EventRecorder(refused.events())
        defer {
            Task {
                await subscriber.shutdown(); await refused.shutdown(); await publisher.shutdown()
            }
        }
        try await recorder.waitUntil("subscribed") { $0 == [.subscribed] }
        #expect(try await publisher.send(["PUBLISH", "pubsub:auth", "ok"]) == .integer(1))
        try await recorder.waitUntil("message") { $0.count == 2 }

        try await refusedEvents.waitUntil("refused") { !$0.isEmpty }
        guard case .disconnected(let reason) = refusedEvents.events[0] else {
            Issue.record("expected .disconnected, got \(refusedEvents.events)")
            return
        }
        #expect(reason.contains("WRONGPASS") || reason.contains("invalid"), "\(reason)")
        #expect(!reason.contains("not-the-password"))
    }

    @Test func idleLongerThanThePollTimeoutIsNotAnError() async throws {
        let server = try PrivateRedisServer.make()
        defer { server.remove() }
        try await server.startAsync()
        let publisher = try PubSubTestEnvironment.client(server)
        let subscriber = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:quiet"])
        let recorder = EventRecorder(subscriber.events())
        defer {
            Task {
                await subscriber.shutdown(); await publisher.shutdown()
            }
        }
        try await recorder.waitUntil("subscribed") { $0 == [.subscribed] }
        try await Task.sleep(for: .milliseconds(2_500))  // several 1 s poll timeouts
        #expect(try await publisher.send(["PUBLISH", "pubsub:quiet", "still here"]) == .integer(1))
        try await recorder.waitUntil("message") { $0.count >= 2 }
        #expect(recorder.events == [.subscribed, .message(channel: "pubsub:quiet", payload: Array("still here".utf8))])
    }

    @Test func reconnectsAfterRedisIsKilledAndRestarted() async throws {
        let server = try PrivateRedisServer.make()
        defer { server.remove() }
        try await server.startAsync()
        let publisher = try PubSubTestEnvironment.client(server)
        let subscriber = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:restart"])
        let recorder = EventRecorder(subscriber.events())
        defer {
            Task {
                await subscriber.shutdown(); await publisher.shutdown()
            }
        }
        try await recorder.waitUntil("subscribed") { $0 == [.subscribed] }
        #expect(try await publisher.send(["PUBLISH", "pubsub:restart", "before"]) == .integer(1))
        try await recorder.waitUntil("first message") { $0.count == 2 }

        try await server.killAsync()
        try await recorder.waitUntil("disconnected") { $0.count == 3 }
        guard case .disconnected(let reason) = recorder.events[2] else {
            Issue.record("expected .disconnected, got \(recorder.events)")
            return
        }
        #expect(!reason.isEmpty)
        try await Task.sleep(for: .milliseconds(700))  // a few failed retries while it is down
        #expect(recorder.events.count == 3, "one .disconnected per outage: \(recorder.events)")

        try await server.startAsync()
        try await recorder.waitUntil("subscribed again") { $0.count == 4 }
        #expect(recorder.events[3] == .subscribed)
        #expect(try await publisher.send(["PUBLISH", "pubsub:restart", "after"]) == .integer(1))
        try await recorder.waitUntil("message after the restart") { $0.count == 5 }
        #expect(recorder.events[4] == .message(channel: "pubsub:restart", payload: Array("after".utf8)))
        #expect(recorder.events[1] == .message(channel: "pubsub:restart", payload: Array("before".utf8)))
    }

    @Test func redisDownAtStartThenComesUp() async throws {
        let server = try PrivateRedisServer.make()  // port chosen, not started
        defer { server.remove() }
        let subscriber = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:late"])
        let recorder = EventRecorder(subscriber.events())
        defer { Task { await subscriber.shutdown() } }
        try await recorder.waitUntil("disconnected") { $0.count == 1 }
        guard case .disconnected(let reason) = recorder.events[0] else {
            Issue.record("expected .disconnected first, got \(recorder.events)")
            return
        }
        #expect(reason.contains("127.0.0.1:\(server.port)"), "\(reason)")

        try await server.startAsync()
        try await recorder.waitUntil("subscribed") { $0.count == 2 }
        #expect(recorder.events[1] == .subscribed)
        let publisher = try PubSubTestEnvironment.client(server)
        defer { Task { await publisher.shutdown() } }
        #expect(try await publisher.send(["PUBLISH", "pubsub:late", "hi"]) == .integer(1))
        try await recorder.waitUntil("message") { $0.count == 3 }
        #expect(recorder.events[2] == .message(channel: "pubsub:late", payload: Array("hi".utf8)))
    }

    @Test func shutdownFinishesTheStreamPromptly() async throws {
        let server = try PrivateRedisServer.make()
        defer { server.remove() }
        try await server.startAsync()
        let subscriber = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:bye"])
        let recorder = EventRecorder(subscriber.events())
        try await recorder.waitUntil("subscribed") { $0 == [.subscribed] }
        try await Task.sleep(for: .milliseconds(300))  // the reader is blocked in poll

        let clock = ContinuousClock()
        let start = clock.now
        await subscriber.shutdown()
        #expect(clock.now - start < .seconds(2))
        try await recorder.waitUntilFinished(timeout: .seconds(2))
        #expect(clock.now - start < .seconds(2))
        await subscriber.shutdown()  // idempotent

        // Its connection is gone: the server counts no subscriber any more.
        let publisher = try PubSubTestEnvironment.client(server)
        defer { Task { await publisher.shutdown() } }
        #expect(try await publisher.send(["PUBSUB", "NUMSUB", "pubsub:bye"]) == .array([.bulk(Array("pubsub:bye".utf8)), .integer(0)]))
        // events() after shutdown: an already finished stream.
        var iterator = subscriber.events().makeAsyncIterator()
        #expect(await iterator.next() == nil)
    }

    @Test func shutdownWhileRetryingIsPrompt() async throws {
        let server = try PrivateRedisServer.make()  // never started
        defer { server.remove() }
        let subscriber = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:nobody"])
        let recorder = EventRecorder(subscriber.events())
        try await recorder.waitUntil("disconnected") { $0.count == 1 }
        try await Task.sleep(for: .seconds(2))  // backoff has grown past 1 s
        let clock = ContinuousClock()
        let start = clock.now
        await subscriber.shutdown()
        try await recorder.waitUntilFinished(timeout: .seconds(2))
        #expect(clock.now - start < .seconds(2))
    }

    @Test func frozenServerIsDetectedByThePingHealthCheck() async throws {
        let server = try PrivateRedisServer.make()
        defer {
            try? server.signal("CONT")
            server.remove()
        }
        try await server.startAsync()
        let subscriber = RedisSubscriber(
            configuration: try PubSubTestEnvironment.configuration(server), channels: ["pubsub:frozen"],
            logger: PubSubTestEnvironment.logger, healthCheckInterval: .milliseconds(500))
        let recorder = EventRecorder(subscriber.events())
        defer { Task { await subscriber.shutdown() } }
        try await recorder.waitUntil("subscribed") { $0 == [.subscribed] }
        try await Task.sleep(for: .seconds(1))  // PINGs answered: still just subscribed
        #expect(recorder.events == [.subscribed])

        // SIGSTOP: the socket stays open, nothing answers (like a partition).
        try await offCooperativePool { try server.signal("STOP") }
        try await recorder.waitUntil("disconnected", timeout: .seconds(8)) { $0.count == 2 }
        guard case .disconnected(let reason) = recorder.events[1] else {
            Issue.record("expected .disconnected, got \(recorder.events)")
            return
        }
        #expect(reason.contains("PING"), "\(reason)")

        try await offCooperativePool { try server.signal("CONT") }
        try await recorder.waitUntil("subscribed again", timeout: .seconds(15)) { $0.count == 3 }
        #expect(recorder.events[2] == .subscribed)
    }

    @Test func endingTheIterationStopsTheReader() async throws {
        let server = try PrivateRedisServer.make()
        defer { server.remove() }
        try await server.startAsync()
        let publisher = try PubSubTestEnvironment.client(server)
        let subscriber = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:cancel"])
        defer {
            Task {
                await subscriber.shutdown(); await publisher.shutdown()
            }
        }
        let stream = subscriber.events()
        let consumer = Task {
            for await _ in stream {}
        }
        try await waitUntilSubscribed(publisher, channel: "pubsub:cancel")
        consumer.cancel()
        _ = await consumer.value
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(2)
        while try await publisher.send(["PUBSUB", "NUMSUB", "pubsub:cancel"]).array?.last?.int != 0 {
            guard clock.now < deadline else {
                Issue.record("the subscriber's connection is still open 2 s after the consumer went away")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test func slowConsumerIsBoundedAndToldToResynchronise() async throws {
        let server = try PrivateRedisServer.make()
        defer { server.remove() }
        try await server.startAsync()
        let publisher = try PubSubTestEnvironment.client(server)
        let subscriber = try PubSubTestEnvironment.subscriber(server, channels: ["pubsub:flood"])
        defer {
            Task {
                await subscriber.shutdown(); await publisher.shutdown()
            }
        }
        let stream = subscriber.events()  // not read until the flood is over
        try await waitUntilSubscribed(publisher, channel: "pubsub:flood")

        let count = 1_500
        for index in 0..<count {
            _ = try await publisher.send(["PUBLISH", "pubsub:flood", "m\(index)"])
        }
        try await Task.sleep(for: .seconds(3))  // the reader queues its resync marker when idle, at most once a second

        let recorder = EventRecorder(stream)
        try await recorder.waitUntil("the buffered events") { $0.last == .subscribed && $0.count >= 1_000 }
        try await Task.sleep(for: .milliseconds(200))
        let events = recorder.events
        #expect(events.count == 1_024, "the buffer holds the newest 1024 events")
        #expect(events.last == .subscribed, "a resync marker follows the gap")
        let numbers = events.compactMap { event -> Int? in
            guard case .message(_, let payload) = event else { return nil }
            return Int(String(decoding: payload.dropFirst(), as: UTF8.self))
        }
        #expect(numbers.last == count - 1)
        #expect(numbers == numbers.sorted())
        #expect(numbers.first.map { $0 > 0 } == true, "the oldest messages were dropped")

        // Still subscribed and delivering.
        _ = try await publisher.send(["PUBLISH", "pubsub:flood", "later"])
        try await recorder.waitUntil("a later message") { $0.last == .message(channel: "pubsub:flood", payload: Array("later".utf8)) }
    }
}

// MARK: - helpers

enum PubSubTestEnvironment {
    static let hasRedisServer = (try? runShell("command -v redis-server >/dev/null && command -v redis-cli >/dev/null")) != nil

    static var logger: Logger {
        var logger = Logger(label: "sitrep.tests.redis-pubsub")
        logger.logLevel = .error
        return logger
    }

    static func configuration(_ server: PrivateRedisServer) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: server.url)
        configuration.connectTimeout = .seconds(1)
        configuration.commandTimeout = .seconds(2)
        configuration.poolSize = 1
        return configuration
    }

    static func client(_ server: PrivateRedisServer) throws -> RedisClient {
        RedisClient(configuration: try configuration(server), logger: logger)
    }

    static func subscriber(_ server: PrivateRedisServer, channels: [String]) throws -> RedisSubscriber {
        RedisSubscriber(configuration: try configuration(server), channels: channels, logger: logger)
    }
}

/// Waits until Redis counts a subscriber on `channel` (for a test that does not read the events).
private func waitUntilSubscribed(_ client: RedisClient, channel: String, timeout: Duration = .seconds(10)) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        let reply = try await client.send(["PUBSUB", "NUMSUB", channel])
        if reply.array?.last?.int ?? 0 > 0 { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw RedisTestFailure("timed out waiting for a subscriber on \(channel)")
}

/// Reads a subscriber's stream in a task of its own and records every event.
private final class EventRecorder: Sendable {
    private struct State {
        var events: [RedisSubscriber.Event] = []
        var finished = false
    }

    private let state = Mutex(State())

    init(_ stream: AsyncStream<RedisSubscriber.Event>) {
        Task { [self] in
            for await event in stream { state.withLock { $0.events.append(event) } }
            state.withLock { $0.finished = true }
        }
    }

    var events: [RedisSubscriber.Event] { state.withLock { $0.events } }
    var isFinished: Bool { state.withLock { $0.finished } }

    func waitUntil(
        _ description: String, timeout: Duration = .seconds(10), _ condition: ([RedisSubscriber.Event]) -> Bool
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if condition(events) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RedisTestFailure("timed out waiting for \(description); events so far: \(summary)")
    }

    func waitUntilFinished(timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if isFinished { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RedisTestFailure("the event stream did not finish within \(timeout)")
    }

    /// Waits for `count` messages (any other events are skipped) and returns them.
    func waitForMessages(_ count: Int) async throws -> [(channel: String, payload: [UInt8])] {
        try await waitUntil("\(count) messages") { Self.messages(in: $0).count >= count }
        return Self.messages(in: events)
    }

    private static func messages(in events: [RedisSubscriber.Event]) -> [(channel: String, payload: [UInt8])] {
        events.compactMap { event in
            guard case .message(let channel, let payload) = event else { return nil }
            return (channel, payload)
        }
    }

    /// Events with payloads shortened, for failure messages.
    private var summary: String {
        events.map { event in
            switch event {
            case .subscribed: "subscribed"
            case .disconnected(let reason): "disconnected(\(reason))"
            case .message(let channel, let payload): "message(\(channel), \(payload.count) bytes)"
            }
        }.joined(separator: ", ")
    }
}

extension PrivateRedisServer {
    /// SIGKILL, as a crash: no FIN handshake of a clean shutdown is needed for
    /// the kernel to close the sockets, but nothing is flushed or said first.
    func kill() throws {
        try runShell("kill -KILL \"$(cat '\(directory)/redis.pid')\"")
        try waitUntil(description: "redis-server on port \(port) to die") { !isListening(port: port) }
    }

    func killAsync() async throws { try await offCooperativePool { try kill() } }

    /// Sends `SIG<name>` (STOP, CONT) to the server.
    func signal(_ name: String) throws {
        try runShell("kill -\(name) \"$(cat '\(directory)/redis.pid')\"")
    }
}
