// Redis pub/sub: one dedicated connection that SUBSCRIBEs to a fixed set of
// channels and turns what arrives into an `AsyncStream` of events.
//
//     let subscriber = RedisSubscriber(configuration: configuration, channels: ["signals"], logger: logger)
//     for await event in subscriber.events() {
//         switch event {
//         case .subscribed: reloadFromTheDatabase()  // first time, after a reconnect, after an overflow
//         case .message(let channel, let payload): apply(channel, payload)
//         case .disconnected(let reason): logger.warning("live updates paused: \(reason)")
//         }
//     }
//     // elsewhere, on shutdown:
//     await subscriber.shutdown()
//
// Threading: the reader is one long work item on a 1-thread `NIOThreadPool`
// of its own, so hiredis is never called on a Swift concurrency cooperative
// thread and a quiet channel never ties up a shared pool's thread. The work
// item owns the connection for its whole life; nothing else touches it.
//
// Waiting for messages: the reader never blocks inside hiredis on an idle
// socket. It `poll`s the socket together with a wake-up pipe, with a 1 s
// timeout, and only then does one `read` and parses what is buffered. An idle
// channel is therefore not an error (a hiredis read timeout would break the
// context), and `shutdown()` wakes the reader at once through the pipe.
//
// Liveness: after `healthCheckInterval` (15 s) of silence the reader sends PING
// (allowed while subscribed; the answer is `["pong", ""]`) and reconnects if
// nothing at all arrives within `commandTimeout`, so a connection that died
// without a FIN (network partition, failover) is noticed.
//
// Reconnecting: any failure (connect refused, EOF, I/O error, protocol error,
// an error reply) emits `.disconnected(reason)` once per outage, then retries
// with capped exponential backoff (100 ms, 200 ms, ... 5 s), without jitter.
// Each successful (re)SUBSCRIBE emits `.subscribed`. Messages published while
// no connection was subscribed are lost — that is Redis pub/sub — which is why
// `.subscribed` tells the caller to catch up from its own store.
//
// Back-pressure: the stream buffers at most `bufferSize` events and drops the
// oldest beyond that, so a slow consumer costs bounded memory. A drop is a gap
// the caller cannot see, so after one the reader queues an extra `.subscribed`
// (behind the gap, at most once a second): the same "catch up" signal as after
// a reconnect.
//
// Blocking that `shutdown()` cannot interrupt: a connect in progress (DNS +
// TCP, and the TLS handshake for `rediss://`, together bounded by
// `connectTimeout`) and the AUTH/SELECT/SUBSCRIBE writes
// (bounded by `commandTimeout`). The stream finishes as soon as `shutdown()`
// is called; `shutdown()` itself returns once the reader has closed the
// connection.

import CHiredis
import Logging
import NIOPosix  // re-exports Glibc (poll, pipe, fcntl)
import Synchronization

public final class RedisSubscriber: Sendable {
    public enum Event: Sendable, Equatable {
        /// Subscribed to every channel: after the first SUBSCRIBE, after every
        /// reconnect, and after events were dropped because the consumer fell
        /// `bufferSize` events behind. Messages may have been missed before it:
        /// replay what matters from the database.
        case subscribed
        /// A message published to one of the channels, bytes unchanged.
        case message(channel: String, payload: [UInt8])
        /// The connection was lost or could not be made (the reason, never a
        /// password). Emitted once per outage; the subscriber keeps retrying
        /// with capped exponential backoff (100 ms .. 5 s) until it can
        /// subscribe again, then emits `.subscribed`.
        case disconnected(String)
    }

    /// Events the stream holds for a slow consumer before dropping the oldest.
    static let bufferSize = 1024
    /// Default silence after which the reader checks the connection with PING.
    static let defaultHealthCheckInterval: Duration = .seconds(15)
    static let minimumBackoff: Duration = .milliseconds(100)
    static let maximumBackoff: Duration = .seconds(5)

    private let configuration: RedisConfiguration
    private let channels: [String]
    private let logger: Logger
    private let healthCheckInterval: Duration
    private let threadPool = NIOThreadPool(numberOfThreads: 1)
    private let control = Control()

    /// `channels` are subscribed to with SUBSCRIBE (exact names, no patterns);
    /// duplicates are ignored. It must not be empty.
    public convenience init(configuration: RedisConfiguration, channels: [String], logger: Logger) {
        self.init(
            configuration: configuration, channels: channels, logger: logger,
            healthCheckInterval: Self.defaultHealthCheckInterval)
    }

    /// `healthCheckInterval`: silence after which the reader sends PING (the
    /// tests shorten it).
    package init(configuration: RedisConfiguration, channels: [String], logger: Logger, healthCheckInterval: Duration) {
        precondition(!channels.isEmpty, "RedisSubscriber needs at least one channel")
        _ = sigpipeIgnoredForSubscribers
        var unique: [String] = []
        for channel in channels where !unique.contains(channel) { unique.append(channel) }
        self.configuration = configuration
        self.channels = unique
        self.healthCheckInterval = healthCheckInterval
        var logger = logger
        logger[metadataKey: "redis"] = "\(configuration.host):\(configuration.port)"
        logger[metadataKey: "redis-channels"] = "\(unique.joined(separator: ","))"
        self.logger = logger
    }

    deinit {
        // Without `shutdown()`: stop the reader (it closes its connection and
        // finishes the stream) and let the pool's thread exit behind it.
        control.requestStop()
        threadPool.shutdownGracefully { _ in }
    }

    /// Starts the background reader and returns the stream of events. Call
    /// once: a second call, or a call after `shutdown()`, returns a stream
    /// that is already finished. The stream finishes after `shutdown()`, and
    /// ending the iteration (or cancelling the task that iterates) stops the
    /// reader; `shutdown()` is still needed to release its thread.
    public func events() -> AsyncStream<Event> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: Event.self, bufferingPolicy: .bufferingNewest(Self.bufferSize))
        let started = control.state.withLock { state -> Bool in
            guard case .idle = state.phase else { return false }
            state.phase = .running(continuation)
            state.readerRunning = true
            return true
        }
        guard started else {
            logger.error("RedisSubscriber.events() called twice or after shutdown(); returning a finished stream")
            continuation.finish()
            return stream
        }
        let control = self.control
        continuation.onTermination = { _ in control.requestStop() }

        threadPool.start()
        let reader = Reader(
            configuration: configuration, channels: channels, logger: logger, healthCheckInterval: healthCheckInterval,
            control: control, continuation: continuation)
        threadPool.submit { workState in
            if workState == .active {
                var reader = reader
                reader.run()
            }
            continuation.finish()
            control.readerFinished()
        }
        return stream
    }

    /// Stops the reader (it wakes at once; a connect in progress is waited
    /// for), closes the connection, finishes the stream and stops the reader's
    /// thread. Safe to call more than once, and without `events()`.
    public func shutdown() async {
        control.requestStop()
        let (continuation, readerRunning) = control.state.withLock { state in
            var continuation: AsyncStream<Event>.Continuation?
            if case .running(let running) = state.phase { continuation = running }
            state.phase = .stopped
            return (continuation, state.readerRunning)
        }
        continuation?.finish()
        if readerRunning {
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                let done = control.state.withLock { state in
                    if !state.readerRunning { return true }
                    state.shutdownWaiters.append(waiter)
                    return false
                }
                if done { waiter.resume() }
            }
        }
        do {
            try await threadPool.shutdownGracefully()
        } catch {
            logger.debug("RedisSubscriber thread pool shutdown", metadata: ["error": "\(error)"])
        }
        logger.debug("Redis subscriber shut down")
    }
}

// MARK: - shared between the subscriber and its reader

extension RedisSubscriber {
    /// The stop flag, the pipe that wakes the reader's `poll`, and the life
    /// cycle state. Its own object (not the subscriber) so that the reader's
    /// work item does not keep the subscriber alive.
    fileprivate final class Control: Sendable {
        enum Phase {
            case idle
            case running(AsyncStream<Event>.Continuation)
            case stopped
        }

        struct State {
            var phase = Phase.idle
            var readerRunning = false
            var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
        }

        enum Wake {
            case readable
            case timedOut
            case stopped
        }

        let state = Mutex(State())
        private let stopRequested = Atomic<Bool>(false)
        /// The self-pipe; -1 if `pipe()` failed, in which case the reader still
        /// notices a stop within its 1 s poll timeout.
        private let wakeRead: Int32
        private let wakeWrite: Int32

        init() {
            var descriptors: [Int32] = [-1, -1]
            if pipe(&descriptors) == 0 {
                for descriptor in descriptors {
                    _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
                    _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
                }
            }
            wakeRead = descriptors[0]
            wakeWrite = descriptors[1]
        }

        deinit {
            if wakeRead >= 0 { close(wakeRead) }
            if wakeWrite >= 0 { close(wakeWrite) }
        }

        var isStopRequested: Bool { stopRequested.load(ordering: .acquiring) }

        /// Idempotent; never blocks (the pipe is non-blocking and written once).
        func requestStop() {
            let (exchanged, _) = stopRequested.compareExchange(
                expected: false, desired: true, ordering: .acquiringAndReleasing)
            if exchanged && wakeWrite >= 0 {
                var byte: UInt8 = 1
                _ = write(wakeWrite, &byte, 1)
            }
        }

        /// Waits until `socket` is readable (or hung up), a stop is requested,
        /// or `timeout` passes. `socket` -1 just sleeps, interruptibly.
        func wait(socket: Int32, timeout: Duration) -> Wake {
            if isStopRequested { return .stopped }
            var descriptors = [
                pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),  // poll ignores a negative fd
            ]
            let ready = poll(&descriptors, nfds_t(descriptors.count), Self.milliseconds(timeout))
            if isStopRequested { return .stopped }
            guard ready > 0 else { return .timedOut }  // 0, or -1 with EINTR: the caller loops
            let readable = Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR) | Int16(POLLNVAL)
            return descriptors[0].revents & readable != 0 ? .readable : .timedOut
        }

        /// Called once by the reader's work item as its last act.
        func readerFinished() {
            let waiters = state.withLock { state in
                state.readerRunning = false
                var waiters: [CheckedContinuation<Void, Never>] = []
                swap(&waiters, &state.shutdownWaiters)
                return waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        private static func milliseconds(_ duration: Duration) -> Int32 {
            let (seconds, attoseconds) = duration.components
            guard seconds >= 0 else { return 0 }
            guard seconds < 1_000_000 else { return Int32.max }
            let total = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
            return Int32(clamping: total)
        }
    }
}

// MARK: - the reader (runs on the subscriber's own thread)

extension RedisSubscriber {
    /// Connects, subscribes, reads, reconnects — until a stop is requested.
    /// Lives on the reader thread only.
    fileprivate struct Reader: Sendable {
        let configuration: RedisConfiguration
        let channels: [String]
        let logger: Logger
        let healthCheckInterval: Duration
        let control: Control
        let continuation: AsyncStream<Event>.Continuation

        private let clock = ContinuousClock()
        /// Events were dropped since the last `.subscribed` we queued.
        private var gap = false
        private var droppedSinceLastReport = 0
        private var lastResync: ContinuousClock.Instant?

        init(
            configuration: RedisConfiguration, channels: [String], logger: Logger, healthCheckInterval: Duration,
            control: Control, continuation: AsyncStream<Event>.Continuation
        ) {
            self.configuration = configuration
            self.channels = channels
            self.logger = logger
            self.healthCheckInterval = healthCheckInterval
            self.control = control
            self.continuation = continuation
        }

        mutating func run() {
            var backoff = RedisSubscriber.minimumBackoff
            var down = false
            while !control.isStopRequested {
                var connection: RedisConnection?
                let failure: RedisError?
                do throws(RedisError) {
                    let opened = try RedisConnection.connect(configuration)
                    connection = opened
                    if try subscribe(opened) {
                        if down { logger.info("Redis subscription restored") }
                        down = false
                        backoff = RedisSubscriber.minimumBackoff
                        try listen(opened)  // returns only when a stop is requested
                    }
                    failure = nil
                } catch {
                    failure = error
                }
                connection?.close()
                guard let failure, !control.isStopRequested else { break }

                if !down {
                    down = true
                    logger.warning(
                        "Redis subscription down; retrying", metadata: ["error": "\(failure)", "retry-in": "\(backoff)"])
                    emit(.disconnected(failure.message))
                } else {
                    logger.debug("Redis subscription retry failed", metadata: ["error": "\(failure)", "retry-in": "\(backoff)"])
                }
                if !sleep(backoff) { break }
                backoff = min(backoff * 2, RedisSubscriber.maximumBackoff)
            }
            logger.debug("Redis subscriber reader stopped")
        }

        /// Sleeps in slices of at most 1 s; false when a stop was requested.
        private func sleep(_ duration: Duration) -> Bool {
            let deadline = clock.now + duration
            while true {
                let left = deadline - clock.now
                if left <= .zero { return !control.isStopRequested }
                if control.wait(socket: -1, timeout: min(left, .seconds(1))) == .stopped { return false }
            }
        }

        /// Sends SUBSCRIBE and waits (up to `commandTimeout`) for one
        /// confirmation per channel, then emits `.subscribed` followed by any
        /// message that arrived during the handshake. False: stop requested.
        private mutating func subscribe(_ connection: RedisConnection) throws(RedisError) -> Bool {
            try connection.append([Array("SUBSCRIBE".utf8)] + channels.map { Array($0.utf8) })
            let deadline = clock.now + configuration.commandTimeout
            var confirmed = 0
            var early: [Event] = []
            while confirmed < channels.count {
                if let reply = try connection.bufferedReply() {
                    switch Self.parse(reply) {
                    case .subscribe: confirmed += 1
                    case .message(let channel, let payload): early.append(.message(channel: channel, payload: payload))
                    case .pong: break
                    case .other: logger.debug("unexpected reply while subscribing", metadata: ["reply": "\(reply)"])
                    }
                    continue
                }
                let left = deadline - clock.now
                guard left > .zero else {
                    throw RedisError(
                        .timeout,
                        "SUBSCRIBE on \(connection.endpoint) not confirmed within \(configuration.commandTimeout)")
                }
                switch control.wait(socket: connection.fileDescriptor, timeout: min(left, .seconds(1))) {
                case .stopped: return false
                case .timedOut: continue
                case .readable: try connection.readAvailable()
                }
            }
            logger.debug("Redis subscribed")
            lastResync = clock.now
            emit(.subscribed)
            gap = false  // it covers every earlier drop, including one its own yield caused
            for event in early { emit(event) }
            return true
        }

        /// Reads until a stop is requested (returns) or the connection fails (throws).
        private mutating func listen(_ connection: RedisConnection) throws(RedisError) {
            var lastHeard = clock.now
            var pingSent: ContinuousClock.Instant?
            while !control.isStopRequested {
                if let reply = try connection.bufferedReply() {
                    switch Self.parse(reply) {
                    case .message(let channel, let payload): emit(.message(channel: channel, payload: payload))
                    case .pong, .subscribe: break
                    case .other: logger.debug("unexpected reply while subscribed", metadata: ["reply": "\(reply)"])
                    }
                    continue
                }
                // Nothing buffered: about to wait for the socket.
                let now = clock.now
                if gap, lastResync.map({ now - $0 >= .seconds(1) }) ?? true {
                    lastResync = now
                    logger.warning("Redis subscriber resynchronising after dropping events for a slow consumer")
                    emit(.subscribed)
                    gap = false  // it covers every earlier drop, including one its own yield caused
                }
                if let pingSent {
                    if now - pingSent >= configuration.commandTimeout {
                        throw RedisError(
                            .timeout,
                            "\(connection.endpoint) did not answer PING within \(configuration.commandTimeout)")
                    }
                } else if now - lastHeard >= healthCheckInterval {
                    try connection.append([Array("PING".utf8)])
                    pingSent = now
                }
                switch control.wait(socket: connection.fileDescriptor, timeout: .seconds(1)) {
                case .stopped:
                    return
                case .timedOut:
                    continue
                case .readable:
                    try connection.readAvailable()
                    lastHeard = clock.now
                    pingSent = nil
                }
            }
        }

        private mutating func emit(_ event: Event) {
            switch continuation.yield(event) {
            case .enqueued:
                if droppedSinceLastReport > 0 {
                    logger.warning(
                        "Redis subscriber consumer caught up",
                        metadata: ["dropped-events": "\(droppedSinceLastReport)"])
                    droppedSinceLastReport = 0
                }
            case .dropped:
                if droppedSinceLastReport == 0 {
                    logger.warning(
                        "Redis subscriber consumer is too slow; dropping the oldest events",
                        metadata: ["buffer": "\(RedisSubscriber.bufferSize)"])
                }
                droppedSinceLastReport += 1
                gap = true
            case .terminated:
                control.requestStop()  // nobody is listening any more
            @unknown default:
                break
            }
        }

        private enum Push {
            case message(String, [UInt8])
            case subscribe
            case pong
            case other
        }

        /// RESP2 pub/sub pushes are arrays whose first element names the kind.
        private static func parse(_ reply: RedisValue) -> Push {
            guard case .array(let items) = reply, let kind = items.first?.bytes else { return .other }
            switch String(decoding: kind, as: UTF8.self).lowercased() {
            case "message" where items.count == 3:
                guard let channel = items[1].bytes, let payload = items[2].bytes else { return .other }
                return .message(String(decoding: channel, as: UTF8.self), payload)
            case "subscribe": return .subscribe
            case "pong": return .pong
            default: return .other
            }
        }
    }
}

/// The subscriber writes (SUBSCRIBE, PING) with `write(2)`; a write to a socket
/// the server closed must fail with EPIPE rather than kill the process with
/// SIGPIPE. Same as RedisClient's, for programs that subscribe without ever
/// creating a client.
private let sigpipeIgnoredForSubscribers: Bool = {
    _ = signal(SIGPIPE, SIG_IGN)
    return true
}()
