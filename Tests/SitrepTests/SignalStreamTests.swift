import AsyncHTTPClient
import Foundation
import Generated
import HTTPTypes
import Handlers
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import SitrepRuntime
import Synchronization
import Testing

/// `GET /v1/signals/stream` over real sockets: two instances sharing one database and Redis.
@Suite("signals: live stream", .enabled(if: SitrepHarness.isConfigured))
struct SignalStreamTests {
    /// One open stream read in the background: the events seen so far.
    final class Listener: Sendable {
        struct Seen: Sendable {
            var text = ""
            var ended = false
            var error = ""
        }
        final class Box: Sendable {
            let state = Mutex(Seen())
        }
        let box = Box()
        let task: Task<Void, Never>

        init(client: HTTPClient, port: Int, token: String, query: String = "", lastEventId: String? = nil) {
            let box = box
            task = Task {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/signals/stream\(query)")
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                if let lastEventId { request.headers.add(name: "Last-Event-ID", value: lastEventId) }
                do {
                    let response = try await client.execute(request, timeout: .seconds(60))
                    if response.status != .ok { box.state.withLock { $0.text = "status \(response.status.code)" } }
                    for try await chunk in response.body {
                        let text = String(buffer: chunk)
                        box.state.withLock { $0.text += text }
                    }
                } catch {
                    box.state.withLock { $0.error = "\(error)" }
                }
                box.state.withLock { $0.ended = true }
            }
        }

        var text: String { box.state.withLock { $0.text } }
        var ended: Bool { box.state.withLock { $0.ended } }
        var error: String { box.state.withLock { $0.error } }

        /// Event ids seen, in order.
        var ids: [Int] {
            text.split(separator: "\n").compactMap { $0.hasPrefix("id: ") ? Int($0.dropFirst(4)) : nil }
        }

        func stop() { task.cancel() }
    }

    static func until(_ timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    static func ingest(_ client: any TestClientProtocol, _ h: SitrepHarness, _ ids: [String], category: String = "security") async throws {
        let items = ids.map { signalJSON(sourceId: $0, category: category, severity: "high") }
        let r = try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch(items)))
        #expect(r.status == .ok, "\(r.text)")
    }

    static func makeClient() -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    @Test func anIngestOnOneInstanceReachesTwoHundredSubscribersOnBothWithinASecond() async throws {
        try await SitrepHarness.instances(2, setup: .live) { clients, h in
            let http = Self.makeClient()
            defer { Task { try? await http.shutdown() } }
            let ports = clients.map { $0.port! }
            let listeners = (0..<200).map { i in Listener(client: http, port: ports[i % 2], token: h.tokens.viewer) }
            defer { listeners.forEach { $0.stop() } }
            let connected = try await Self.until(.seconds(20)) { listeners.allSatisfy { $0.text.hasPrefix(": connected") } }
            let stragglers = listeners.filter { !$0.text.hasPrefix(": connected") }
            #expect(connected, "\(stragglers.count) not connected: \(stragglers.prefix(3).map { "\($0.ended) \($0.text) \($0.error)" })")

            let clock = ContinuousClock()
            let start = clock.now
            try await Self.ingest(clients[0], h, ["S1"])
            let all = try await Self.until(.seconds(5)) { listeners.allSatisfy { $0.text.contains("event: signal.created") } }
            let elapsed = clock.now - start
            #expect(all, "every subscriber got the event")
            #expect(elapsed < .seconds(1), "fan-out took \(elapsed)")
            let first = listeners[1].text
            #expect(first.contains("\"sourceId\":\"S1\"") && listeners.allSatisfy { $0.ids == listeners[0].ids })
            #expect(h.hubs.map { $0.counts.connected } == [100, 100])
        }
    }

    @Test func reconnectingWithLastEventIdReplaysTheGapAndFiltersApply() async throws {
        try await SitrepHarness.instances(2, setup: .live) { clients, h in
            let http = Self.makeClient()
            defer { Task { try? await http.shutdown() } }
            let a = clients[0].port!
            let b = clients[1].port!
            let everything = Listener(client: http, port: b, token: h.tokens.viewer)
            let economic = Listener(client: http, port: b, token: h.tokens.viewer, query: "?category=economic")
            let critical = Listener(client: http, port: a, token: h.tokens.viewer, query: "?minSeverity=critical")
            defer { [everything, economic, critical].forEach { $0.stop() } }
            #expect(try await Self.until { [everything, economic, critical].allSatisfy { $0.text.hasPrefix(": connected") } })

            try await Self.ingest(clients[0], h, ["G1", "G2"])
            #expect(try await Self.until { everything.ids.count == 2 })
            let resumeFrom = everything.ids.last!
            everything.stop()

            // While it is away: three more signals and a triage.
            try await Self.ingest(clients[1], h, ["G3", "G4"])
            try await Self.ingest(clients[0], h, ["E1"], category: "economic")
            let page = try await clients[0].execute(uri: "/v1/signals?limit=1", method: .get, headers: .auth(h.tokens.admin)).decode(SignalPage.self)
            let newest = page.items[0]
            let triage = try await clients[0].execute(
                uri: "/v1/signals/\(newest.id.lowercasedString)/triage", method: .post,
                headers: .auth(h.tokens.admin, json: true, ifMatch: newest.etag),
                body: buffer(#"{"status":"escalated","note":"watch"}"#))
            #expect(triage.status == .ok)

            let back = Listener(client: http, port: a, token: h.tokens.viewer, lastEventId: String(resumeFrom))
            defer { back.stop() }
            #expect(try await Self.until { back.ids.count == 4 }, "\(back.text)")
            #expect(back.ids == back.ids.sorted() && back.ids.allSatisfy { $0 > resumeFrom })
            #expect(back.text.contains("\"sourceId\":\"G3\"") && back.text.contains("\"sourceId\":\"E1\""))
            #expect(back.text.contains("event: signal.triaged") && back.text.contains("\"status\":\"escalated\""))
            // Live events keep coming after the replay, without repeats.
            try await Self.ingest(clients[1], h, ["G5"])
            #expect(try await Self.until { back.ids.count == 5 })
            #expect(Set(back.ids).count == 5)

            // Filters: only economic events; nothing below critical.
            #expect(try await Self.until { economic.ids.count == 2 }, "\(economic.text)")
            #expect(!economic.text.contains("\"category\":\"security\""))
            #expect(critical.ids.isEmpty)
        }
    }

    @Test func slowSubscribersAreDroppedNotBuffered() async throws {
        var settings = SignalStreamHub.Settings()
        settings.bufferLimit = 4
        settings.pollInterval = .milliseconds(100)
        try await SitrepHarness.instances(1, stream: settings) { clients, h in
            let hub = h.hubs[0]
            // Wait for the hub to have read the log's head, then subscribe without ever reading.
            var stream: EventStream?
            for _ in 0..<100 where stream == nil {
                stream = try? await hub.subscribe(filter: .init(categories: nil, minSeverity: nil), lastEventId: nil)
                if stream == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(stream != nil && hub.counts.connected == 1)
            try await Self.ingest(clients[0], h, (0..<10).map { "SLOW\($0)" })
            #expect(try await Self.until { hub.counts.dropped == 1 && hub.counts.connected == 0 })
            // What it had buffered is still delivered, then its stream ends: the client reconnects with Last-Event-ID.
            let received = Mutex<[UInt8]>([])
            try await stream?.produce { chunk in received.withLock { $0 += chunk } }
            let text = String(decoding: received.withLock { $0 }, as: UTF8.self)
            #expect(text.components(separatedBy: "event: signal.created").count - 1 == 4)
        }
    }

    /// A backlog of several batches (more than one read of 500) reaches a live subscriber whole
    /// and in order, and once it is delivered the instance's cached list page is served again:
    /// the change mark moved with the head, not with each batch handed out.
    @Test func aBacklogOfSeveralBatchesArrivesWholeAndTheCacheHoldsAfterIt() async throws {
        var settings = SignalStreamHub.Settings()
        settings.pollInterval = .milliseconds(100)
        settings.bufferLimit = 5_000
        try await SitrepHarness.instances(1, stream: settings, listCache: .seconds(60)) { clients, h in
            let hub = h.hubs[0]
            var stream: EventStream?
            for _ in 0..<100 where stream == nil {
                stream = try? await hub.subscribe(filter: .init(categories: nil, minSeverity: nil), lastEventId: nil)
                if stream == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            let live = try #require(stream)
            let received = Listener.Box()
            let reader = Task { try await live.produce { chunk in received.state.withLock { $0.text += String(decoding: chunk, as: UTF8.self) } } }
            defer { reader.cancel() }
            // Three requests of 450: 1,350 events, while the subscriber holds the hub to the backlog.
            for batch in 0..<3 { try await Self.ingest(clients[0], h, (0..<450).map { "BL\(batch)-\($0)" }) }
            func ids() -> [Int] {
                received.state.withLock { $0.text }.split(separator: "\n")
                    .compactMap { $0.hasPrefix("id: ") ? Int($0.dropFirst(4)) : nil }
            }
            #expect(try await Self.until(.seconds(10)) { ids().count == 1_350 }, "\(ids().count) events")
            let seen = ids()
            #expect(seen == seen.sorted() && Set(seen).count == seen.count)
            let head = try await h.db.client.query("SELECT max(seq)::int8 FROM signal_events").collect().first?.decode(Int64.self)
            #expect(seen.last.map(Int64.init) == head)

            // Served from memory now: an out-of-band change (no signal event) is not seen.
            let url = "/v1/signals?limit=3"
            let first = try await clients[0].execute(uri: url, method: .get, headers: .auth(h.tokens.admin)).decode(SignalPage.self)
            try await h.db.client.query("UPDATE signals SET title = 'Changed out of band'")
            let again = try await clients[0].execute(uri: url, method: .get, headers: .auth(h.tokens.admin)).decode(SignalPage.self)
            #expect(again.items.map(\.title) == first.items.map(\.title) && first.items.first?.title != "Changed out of band")
        }
    }

    /// A client that goes away leaves the hub as soon as a write to it fails, so the hub goes
    /// back to skipping backlogs nobody reads. (The first write after the client closed can
    /// still be taken by the kernel; the next one fails.)
    @Test func aClientThatGoesAwayLeavesTheHubOnTheNextEvent() async throws {
        var settings = SignalStreamHub.Settings()
        settings.pollInterval = .milliseconds(100)
        try await SitrepHarness.instances(1, setup: .live, stream: settings) { clients, h in
            let http = Self.makeClient()
            defer { Task { try? await http.shutdown() } }
            let hub = h.hubs[0]
            let listeners = (0..<3).map { _ in Listener(client: http, port: clients[0].port!, token: h.tokens.viewer) }
            #expect(try await Self.until { listeners.allSatisfy { $0.text.hasPrefix(": connected") } })
            #expect(hub.counts.connected == 3)
            listeners[0].stop()
            listeners[1].stop()
            #expect(try await Self.until { listeners[0].ended && listeners[1].ended })
            for id in ["GONE1", "GONE2"] {
                try await Self.ingest(clients[0], h, [id])
                #expect(try await Self.until { listeners[2].text.contains("\"sourceId\":\"\(id)\"") })
            }
            #expect(try await Self.until { hub.counts.connected == 1 }, "\(hub.counts)")
            #expect(hub.counts.dropped == 0)
            listeners[2].stop()
        }
    }

    /// HEAD answers the stream's status and headers and leaves no subscriber behind.
    @Test func headOnTheStreamLeavesNoSubscriber() async throws {
        var settings = SignalStreamHub.Settings()
        settings.pollInterval = .milliseconds(100)
        try await SitrepHarness.instances(1, stream: settings) { clients, h in
            let hub = h.hubs[0]
            var head: TestResponse?
            for _ in 0..<100 where head?.status != .ok {  // 503 until the hub has read the log's head
                head = try await clients[0].execute(uri: "/v1/signals/stream", method: .head, headers: .auth(h.tokens.viewer))
                if head?.status != .ok { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(head?.status == .ok)
            #expect(head?.headers[.contentType]?.hasPrefix("text/event-stream") == true)
            #expect(head?.body.readableBytes == 0)
            #expect(try await Self.until { hub.counts.connected == 0 })
        }
    }

    @Test func badResumeIdsAndRolesAreRefused() async throws {
        try await SitrepHarness.with { client, h in
            var headers = HTTPFields.auth(h.tokens.viewer)
            headers[HTTPField.Name("Last-Event-ID")!] = "abc"
            let badId = try await client.execute(uri: "/v1/signals/stream", method: .get, headers: headers)
            #expect(badId.status == .badRequest && badId.text.contains("/header/Last-Event-ID"))
            let ingest = try await client.execute(uri: "/v1/signals/stream", method: .get, headers: .auth(h.tokens.ingest))
            #expect(ingest.status == .forbidden)
            let severe = try await client.execute(uri: "/v1/signals/stream?minSeverity=severe", method: .get, headers: .auth(h.tokens.viewer))
            #expect(severe.status == .badRequest)
        }
    }

    /// Unfiltered list pages served from memory are dropped as soon as a change is known: at once
    /// on the instance that made it, over pub/sub on the others.
    @Test func cachedListPagesFollowEveryChange() async throws {
        try await SitrepHarness.instances(2, listCache: .seconds(60)) { clients, h in
            let (a, b) = (clients[0], clients[1])
            func page(_ c: any TestClientProtocol, etag: String? = nil) async throws -> (TestResponse, SignalPage?) {
                var headers = HTTPFields.auth(h.tokens.admin)
                if let etag { headers[.ifNoneMatch] = etag }
                let r = try await c.execute(uri: "/v1/signals?limit=5", method: .get, headers: headers)
                return (r, r.status == .ok ? try r.decode(SignalPage.self) : nil)
            }
            func sources(_ c: any TestClientProtocol) async throws -> [String] { try await page(c).1?.items.map(\.sourceId) ?? [] }
            try await Self.ingest(a, h, ["C1"])
            // Both hubs have read the log's head (a cache needs it).
            #expect(try await Self.until { h.hubs.allSatisfy(\.hasStarted) })
            let (onA0, onB0) = (try await sources(a), try await sources(b))
            #expect(onA0 == ["C1"] && onB0 == ["C1"])
            let (first, cached) = try await page(a)
            let etag = try #require(first.headers[.eTag])
            #expect(try await page(a, etag: etag).0.status == .notModified)
            #expect(cached?.items.count == 1)
            // It is served from memory: a change behind the service's back (no signal event) is
            // not seen until the page's age runs out.
            try await h.db.client.query("UPDATE signals SET title = 'Changed out of band'")
            let stale = try await page(a)
            #expect(stale.1?.items.first?.title == "Brent crude rises", "\(stale.0.status) \(stale.0.text.prefix(300))")

            // A's own write: its next read sees it (read your writes), no waiting.
            try await Self.ingest(a, h, ["C2"])
            let afterOwnWrite = try await sources(a)
            #expect(afterOwnWrite == ["C2", "C1"])
            #expect(try await page(a, etag: etag).0.status == .ok)
            // B learns over pub/sub within moments, although its page could live 60 s.
            var seen: [String] = []
            let clock = ContinuousClock()
            let start = clock.now
            while clock.now - start < .seconds(2) {
                seen = try await sources(b)
                if seen.first == "C2" { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(seen == ["C2", "C1"])

            // A triage on B shows on B at once and on A soon after.
            let newest = try #require(try await page(b).1?.items.first)
            let triage = try await b.execute(
                uri: "/v1/signals/\(newest.id.lowercasedString)/triage", method: .post,
                headers: .auth(h.tokens.admin, json: true, ifMatch: newest.etag), body: buffer(#"{"status":"acknowledged","note":null}"#))
            #expect(triage.status == .ok, "\(triage.text)")
            #expect(try await page(b).1?.items.first?.status == .acknowledged)
            var onA: SignalStatus?
            let startA = clock.now
            while clock.now - startA < .seconds(2) {
                onA = try await page(a).1?.items.first?.status
                if onA == .acknowledged { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(onA == .acknowledged)
        }
    }

}
