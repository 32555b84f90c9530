import Foundation
import Generated
import Logging
import PostgresNIO
import Redis
import SitrepRuntime
import Storage
import Synchronization

/// The live signal stream's fan-out, one per instance.
///
/// The database is the source of truth: every signal event is a row in `signal_events`, written
/// in the writer's transaction (``record(_:signalIds:on:logger:)``), and its `seq` is the SSE
/// event id. After commit the writer publishes a wake-up on Redis (``notify()``); every instance's
/// hub, subscribed to that channel, then reads the new rows once (one query per instance, not per
/// client), encodes each event once and hands the bytes to its local subscribers whose filters
/// match. A missed wake-up (Redis down, a reconnect) only delays delivery: the hub also polls
/// every ``Settings/pollInterval`` and catches up after every (re)subscription.
///
/// Slow consumers: each subscriber has a bounded buffer; when it is full the subscriber is
/// dropped (its response ends) instead of growing memory. It reconnects with `Last-Event-ID` and
/// replays the gap from the database.
public final class SignalStreamHub: Sendable {
    public static let channel = "sitrep:signal-events"

    public struct Settings: Sendable {
        /// How often an idle stream gets a heartbeat comment.
        public var heartbeat: Duration = .seconds(15)
        /// How often the hub looks for new events without a wake-up.
        public var pollInterval: Duration = .seconds(2)
        /// Events buffered per subscriber before it is dropped as too slow.
        public var bufferLimit = 512
        /// How far back `Last-Event-ID` replay reaches.
        public var replayWindow: Duration = .seconds(600)
        /// Replay at most this many events; a client further behind starts again from now.
        public var replayLimit = 10_000
        public init() {}
    }

    /// Which events one subscriber wants (the list's filters).
    public struct Filter: Sendable {
        var categories: Set<SignalCategory>?
        var minRank: Int

        public init(categories: [SignalCategory]?, minSeverity: Severity?) {
            self.categories = categories.flatMap { $0.isEmpty ? nil : Set($0) }
            minRank = minSeverity.map { SitrepHandlers.severityRank[$0] ?? 0 } ?? 0
        }

        func matches(_ s: Signal) -> Bool {
            (categories?.contains(s.category) ?? true) && (SitrepHandlers.severityRank[s.severity] ?? 0) >= minRank
        }
    }

    typealias Chunk = [UInt8]

    private struct Subscriber {
        let filter: Filter
        let continuation: AsyncStream<Chunk>.Continuation
    }

    private struct State {
        /// The highest event sequence handed to subscribers; nil until the hub has started.
        var lastSeq: Int64?
        /// The highest event sequence known to exist (read at each wake-up, before delivery).
        var knownHead: Int64 = 0
        var subscribers: [Int: Subscriber] = [:]
        var nextId = 0
        var dropped = 0
    }

    let db: PostgresClient
    let redis: RedisClient?
    let subscriber: RedisSubscriber?
    let settings: Settings
    let logger: Logger
    private let state = Mutex(State())
    /// Signal changes this instance has committed (see ``changeMark``).
    private let localWrites = Atomic<Int>(0)
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>

    /// `redis`: publishes wake-ups; `subscriber`: receives them (nil: polling only).
    public init(db: PostgresClient, redis: RedisClient?, subscriber: RedisSubscriber?, settings: Settings = Settings(), logger: Logger) {
        self.db = db
        self.redis = redis
        self.subscriber = subscriber
        self.settings = settings
        self.logger = logger
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Subscribers connected to this instance right now, and how many were dropped as too slow.
    public var counts: (connected: Int, dropped: Int) { state.withLock { ($0.subscribers.count, $0.dropped) } }

    // MARK: writers

    /// Records events for `signalIds` in the caller's transaction, behind its audit event (held
    /// back with it under an ``AuditBatch``), so events commit in `seq` order (see migration 0007).
    static func record(_ kind: String, signalIds: [UUID], on conn: PostgresConnection, logger: Logger) async throws {
        try await afterAudit(on: conn) { conn in
            try await conn.query(
                "INSERT INTO signal_events (kind, signal_id) SELECT \(kind), id FROM unnest(\(signalIds)::uuid[]) WITH ORDINALITY AS t(id, ord) ORDER BY ord",
                logger: logger)
        }
    }

    /// Whether the hub has read the event log's head (streams and cached pages need it).
    public var hasStarted: Bool { state.withLock { $0.lastSeq != nil } }

    /// What the signals look like from here: the head of the event log this hub has read, and
    /// how many changes this instance committed. It moves on every signal change this instance
    /// knows of (its own at once, other instances' on their wake-up); nil until the hub runs.
    var changeMark: SignalPageCache.Mark? {
        let writes = localWrites.load(ordering: .acquiring)
        guard let seq = state.withLock({ $0.lastSeq == nil ? nil : $0.knownHead }) else { return nil }
        return SignalPageCache.Mark(seq: seq, writes: writes)
    }

    /// After commit: wakes every instance's hub (Redis) and this one. Never fails the request;
    /// without Redis the other instances find the events on their next poll.
    func notify() async {
        localWrites.add(1, ordering: .releasing)
        wake.yield()
        guard let redis else { return }
        do {
            _ = try await redis.send(["PUBLISH", Self.channel, "1"])
        } catch {
            logger.warning("could not publish a signal wake-up; other instances will poll", metadata: ["error": "\(error)"])
        }
    }

    // MARK: running

    /// Runs until cancelled: wake-ups from Redis, the poll timer, heartbeats, and the pump. On
    /// the way out every open stream is ended, so a graceful shutdown is not held up by them.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            if let subscriber {
                let events = subscriber.events()
                group.addTask { [wake] in
                    for await event in events {
                        switch event {
                        case .message, .subscribed: wake.yield()
                        case .disconnected: break
                        }
                    }
                }
            }
            group.addTask { [wake, settings] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: settings.pollInterval)
                    wake.yield()
                }
            }
            group.addTask { [settings] in
                var sincePrune = Duration.zero
                while !Task.isCancelled {
                    try? await Task.sleep(for: settings.heartbeat)
                    self.broadcast(EventStream.comment("heartbeat"))
                    sincePrune += settings.heartbeat
                    if sincePrune >= .seconds(600) {
                        sincePrune = .zero
                        await self.prune()
                    }
                }
            }
            group.addTask {
                for await _ in self.wakes {
                    do {
                        try await self.pump()
                    } catch {
                        if Task.isCancelled { return }
                        self.logger.warning("signal stream could not read new events; retrying", metadata: ["error": "\(error)"])
                    }
                }
            }
            wake.yield()
            await withTaskCancellationHandler {
                _ = await group.next()
            } onCancel: {
                self.wake.finish()
            }
            group.cancelAll()
        }
        if let subscriber { await subscriber.shutdown() }
        endStreams()
    }

    /// Ends every open stream now (their responses complete; clients reconnect elsewhere).
    public func endStreams() {
        let all = state.withLock { s in
            defer { s.subscribers.removeAll() }
            return s.subscribers.values.map(\.continuation)
        }
        for c in all { c.finish() }
    }

    /// Reads the event log's head once, at start: events before it are history (replay only).
    private func start() async throws {
        guard state.withLock({ $0.lastSeq }) == nil else { return }
        let head = try await head()
        state.withLock { s in
            if s.lastSeq == nil { s.lastSeq = head }
            s.knownHead = max(s.knownHead, head)
        }
    }

    /// The event log's head now.
    private func head() async throws -> Int64 {
        var head: Int64 = 0
        for try await v in try await db.query("SELECT coalesce(max(seq), 0)::int8 FROM signal_events", logger: logger).decode(Int64.self) {
            head = v
        }
        return head
    }

    /// Reads events after the last one handed out and delivers them.
    ///
    /// One pass per head read: the head is learnt first, so cached list pages older than it stop
    /// being served at once, and only events up to that head are delivered, so the change mark
    /// (``changeMark``) moves once per pass, never in steps while a backlog drains. With no
    /// stream open, nothing needs the backlog: the hub jumps to the head instead of reading and
    /// encoding it, and it does so between batches too once the last stream has gone.
    private func pump() async throws {
        if state.withLock({ $0.lastSeq }) == nil {
            try await start()
            return
        }
        // A write committed during this pass has woken the hub again (the wake-ups keep the
        // newest one), so one pass per wake-up leaves nothing behind.
        let head = try await head()
        var after = state.withLock { s in
            s.knownHead = max(s.knownHead, head)
            return s.lastSeq ?? 0
        }
        while after < head {
            let idle = state.withLock { s in
                guard s.subscribers.isEmpty else { return false }
                s.lastSeq = max(s.lastSeq ?? 0, head)
                return true
            }
            if idle { return }
            let events = try await fetch(after: after, upTo: head, limit: 500)
            for e in events { deliver(e) }
            // Events can be missing below the head (pruned): a short batch ends at the head.
            after = events.count < 500 ? head : events[events.count - 1].seq
            state.withLock { $0.lastSeq = max($0.lastSeq ?? 0, after) }
        }
    }

    struct Event {
        let seq: Int64
        let signal: Signal
        let chunk: Chunk
    }

    /// Events with `after < seq (<= upTo)`, oldest first, encoded.
    func fetch(after: Int64, upTo: Int64?, limit: Int, since: Duration? = nil) async throws -> [Event] {
        let windowSeconds = since.map { Double($0.components.seconds) }
        let rows = try await db.query(
            """
            SELECT e.seq, e.kind, s.* FROM signal_events e
            JOIN LATERAL (SELECT \(unescaped: SitrepHandlers.signalColumns) FROM signals WHERE id = e.signal_id) s ON true
            WHERE e.seq > \(after) AND (\(upTo)::int8 IS NULL OR e.seq <= \(upTo))
              AND (\(windowSeconds)::float8 IS NULL OR e.occurred_at > now() - make_interval(secs => \(windowSeconds)))
            ORDER BY e.seq LIMIT \(limit)
            """, logger: logger)
        var out: [Event] = []
        for try await row in rows {
            var r = CellReader(row)
            let seq = Int64(try r.int())
            let kind = try r.string()
            let signal = try SitrepHandlers.signal(from: &r)
            out.append(Event(seq: seq, signal: signal, chunk: EventStream.event(id: String(seq), name: kind, data: signal.jsonBytes())))
        }
        return out
    }

    private func deliver(_ event: Event) {
        // Finishing a stream runs its termination handler, which takes the lock: do it outside.
        let tooSlow: [AsyncStream<Chunk>.Continuation] = state.withLock { s in
            guard event.seq > (s.lastSeq ?? 0) else { return [] }
            s.lastSeq = event.seq
            var slow: [AsyncStream<Chunk>.Continuation] = []
            for (id, sub) in s.subscribers where sub.filter.matches(event.signal) {
                switch sub.continuation.yield(event.chunk) {
                case .enqueued: break
                case .dropped:
                    slow.append(sub.continuation)
                    s.subscribers[id] = nil
                    s.dropped += 1
                case .terminated:
                    s.subscribers[id] = nil
                @unknown default: break
                }
            }
            return slow
        }
        if !tooSlow.isEmpty { logger.notice("dropped slow live-stream clients", metadata: ["count": "\(tooSlow.count)"]) }
        for c in tooSlow { c.finish() }
    }

    private func broadcast(_ chunk: Chunk) {
        state.withLock { s in
            for (id, sub) in s.subscribers {
                if case .terminated = sub.continuation.yield(chunk) { s.subscribers[id] = nil }
            }
        }
    }

    private func prune() async {
        do {
            try await db.query("DELETE FROM signal_events WHERE occurred_at < now() - interval '1 day'", logger: logger)
        } catch {
            logger.warning("could not prune old signal events", metadata: ["error": "\(error)"])
        }
    }

    // MARK: subscribing

    /// A stream for one client: the events after `lastEventId` from the database (within the
    /// replay window), then live ones, with heartbeats; ends when the client goes away or is too
    /// slow. A subscriber arriving before the hub has read the log's head reads it itself.
    public func subscribe(filter: Filter, lastEventId: Int64?) async throws -> EventStream {
        try await start()
        let (live, continuation) = AsyncStream.makeStream(of: Chunk.self, bufferingPolicy: .bufferingOldest(settings.bufferLimit))
        let registered: (id: Int, liveFrom: Int64)? = state.withLock { s in
            guard let head = s.lastSeq else { return nil }
            let id = s.nextId
            s.nextId += 1
            s.subscribers[id] = Subscriber(filter: filter, continuation: continuation)
            return (id, head)
        }
        guard let (id, liveFrom) = registered else {
            continuation.finish()
            throw ProblemError(.serviceUnavailable("The live stream is starting; retry in a moment.", retryAfter: 1))
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        let settings = settings
        return EventStream { write in
            // However the stream ends (the client gone, a write failed), it leaves the hub as
            // the producer returns, not whenever the response lets go of the stream.
            defer { continuation.finish() }
            // Open the stream at once, so the client knows it is connected before any event.
            try await write(EventStream.comment("connected"))
            if let lastEventId, lastEventId < liveFrom {
                var after = lastEventId
                var sent = 0
                while sent < settings.replayLimit {
                    let batch = try await self.fetch(after: after, upTo: liveFrom, limit: 500, since: settings.replayWindow)
                    for e in batch where filter.matches(e.signal) { try await write(e.chunk) }
                    sent += batch.count
                    guard let last = batch.last, batch.count == 500 else { break }
                    after = last.seq
                }
            }
            for await chunk in live { try await write(chunk) }
        }
    }
}

extension SitrepHandlers {
    public func streamSignals(_ input: StreamSignals.Input, context: OperationContext) async throws -> StreamSignals.Output {
        guard let signalHub else {
            return .serviceUnavailable(.serviceUnavailable("The live stream is not configured on this instance.", retryAfter: 30))
        }
        let filter = SignalStreamHub.Filter(categories: input.category, minSeverity: input.minSeverity)
        let lastEventId = input.lastEventId.flatMap { Int64($0) }
        return .ok(try await database { try await signalHub.subscribe(filter: filter, lastEventId: lastEventId) })
    }
}
