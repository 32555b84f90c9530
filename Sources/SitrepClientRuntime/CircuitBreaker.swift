import Logging
import Synchronization

/// A circuit breaker for one dependency, shared by every call to it.
///
/// - **closed**: calls go through; ``Configuration-swift.struct/failureThreshold`` consecutive
///   failures open it.
/// - **open**: calls fail at once (``Open``) without reaching the dependency, for
///   ``Configuration-swift.struct/coolDown``.
/// - **half-open**: after the cool-down, exactly one call (the probe) goes through while the others
///   still fail at once; a success closes the breaker, a failure opens it again for another
///   cool-down.
///
/// What counts as a failure is the caller's verdict (``HTTPTransport``: a connection error, a
/// timeout, 429 or 5xx; any other answer proves the dependency is up). A verdict on a permit
/// issued before the last state change is ignored, so a slow call that started while the breaker
/// was closed cannot close it again while it is open. Thread-safe: the state lives in a `Mutex`.
public final class CircuitBreaker: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Consecutive failures that open the breaker (at least 1).
        public var failureThreshold: Int
        /// How long it stays open before letting one probe through.
        public var coolDown: Duration

        public init(failureThreshold: Int = 5, coolDown: Duration = .seconds(30)) {
            self.failureThreshold = max(1, failureThreshold)
            self.coolDown = coolDown
        }
    }

    public enum State: String, Sendable, Equatable {
        case closed
        case open
        case halfOpen = "half-open"
    }

    /// Leave to make one call; hand it back with ``recordSuccess(_:)``, ``recordFailure(_:)`` or
    /// ``release(_:)``.
    public struct Permit: Sendable, Equatable {
        let generation: UInt64
        /// Whether this call is the half-open probe.
        public let isProbe: Bool
    }

    /// The breaker refused a call: it is open (or half-open with its probe in flight).
    public struct Open: Error, Sendable, Equatable {
        /// How long until a probe may go through (at least one second while a probe is in flight).
        public let retryAfter: Duration

        public init(retryAfter: Duration) { self.retryAfter = retryAfter }
    }

    private struct Core {
        var state: State = .closed
        var failures = 0
        var openedAt: Duration = .zero
        /// Bumped on every state change; permits of older generations carry no verdict.
        var generation: UInt64 = 0
        var probeInFlight = false
    }

    public let configuration: Configuration
    /// The dependency's name, for logs.
    public let name: String
    private let clock: any ClientClock
    private let logger: Logger
    private let core = Mutex(Core())

    public init(
        name: String, configuration: Configuration = Configuration(), clock: any ClientClock = SystemClientClock(),
        logger: Logger = Logger(label: "sitrep.client.breaker")
    ) {
        self.name = name
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    /// The state as the next call would find it: an open breaker whose cool-down is over reports
    /// half-open.
    public var state: State {
        let now = clock.now()
        return core.withLock { c in
            if c.state == .open && now >= c.openedAt + configuration.coolDown { return .halfOpen }
            return c.state
        }
    }

    /// Failures in a row while closed.
    public var consecutiveFailures: Int { core.withLock { $0.failures } }

    /// A permit for one call, or ``Open`` when the call must fail at once.
    public func acquire() throws(Open) -> Permit {
        let now = clock.now()
        let result: Result<Permit, Open> = core.withLock { c in
            switch c.state {
            case .closed:
                return .success(Permit(generation: c.generation, isProbe: false))
            case .open:
                let reopen = c.openedAt + configuration.coolDown
                guard now >= reopen else { return .failure(Open(retryAfter: reopen - now)) }
                c.state = .halfOpen
                c.generation &+= 1
                c.probeInFlight = true
                return .success(Permit(generation: c.generation, isProbe: true))
            case .halfOpen:
                if c.probeInFlight { return .failure(Open(retryAfter: .seconds(1))) }
                c.probeInFlight = true
                return .success(Permit(generation: c.generation, isProbe: true))
            }
        }
        switch result {
        case .success(let permit):
            if permit.isProbe { logger.info("circuit half-open: probing", metadata: ["dependency": "\(name)"]) }
            return permit
        case .failure(let open):
            throw open
        }
    }

    /// The call proved the dependency up.
    public func recordSuccess(_ permit: Permit) {
        let closed: Bool = core.withLock { c in
            guard permit.generation == c.generation else { return false }
            switch c.state {
            case .closed:
                c.failures = 0
                return false
            case .halfOpen where permit.isProbe:
                c.state = .closed
                c.failures = 0
                c.generation &+= 1
                c.probeInFlight = false
                return true
            default:
                return false
            }
        }
        if closed { logger.info("circuit closed: the probe succeeded", metadata: ["dependency": "\(name)"]) }
    }

    /// The call failed in a way that counts against the dependency.
    public func recordFailure(_ permit: Permit) {
        let now = clock.now()
        let opened: Int? = core.withLock { c in
            guard permit.generation == c.generation else { return nil }
            switch c.state {
            case .closed:
                c.failures += 1
                guard c.failures >= configuration.failureThreshold else { return nil }
            case .halfOpen where permit.isProbe:
                break
            default:
                return nil
            }
            let failures = c.failures
            c.state = .open
            c.openedAt = now
            c.generation &+= 1
            c.probeInFlight = false
            return failures
        }
        if let opened {
            logger.warning(
                "circuit open: calls fail at once for the cool-down",
                metadata: ["dependency": "\(name)", "consecutiveFailures": "\(opened)", "coolDown": "\(configuration.coolDown)"])
        }
    }

    /// The call ended without a verdict (e.g. cancelled): a probe's slot is freed for the next call.
    public func release(_ permit: Permit) {
        core.withLock { c in
            if permit.isProbe && permit.generation == c.generation && c.state == .halfOpen { c.probeInFlight = false }
        }
    }

    /// Closes the breaker and forgets the failures.
    public func reset() {
        core.withLock { c in
            c.state = .closed
            c.failures = 0
            c.generation &+= 1
            c.probeInFlight = false
        }
    }
}
