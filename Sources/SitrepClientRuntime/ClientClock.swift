import Synchronization

/// The time source of the client runtime's waits: backoff between retries, `Retry-After`, and the
/// circuit breaker's cool-down. Injected so tests of those are deterministic and instant; timeouts
/// of the network I/O itself always run on real time.
public protocol ClientClock: Sendable {
    /// Monotonic time since an arbitrary origin.
    func now() -> Duration
    /// Suspends for `duration`; throws `CancellationError` when the task is cancelled.
    func sleep(for duration: Duration) async throws
}

/// Real time (`ContinuousClock`).
public struct SystemClientClock: ClientClock {
    private let origin = ContinuousClock.now

    public init() {}

    public func now() -> Duration { ContinuousClock.now - origin }

    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

/// A clock that only moves when told to, for tests: ``advance(by:)`` moves it, and ``sleep(for:)``
/// returns at once after moving it by the duration asked for (recording it in ``sleeps``), so a
/// backoff of 30 s takes no real time and can be asserted exactly.
public final class ManualClientClock: ClientClock {
    private struct State {
        var now: Duration
        var sleeps: [Duration] = []
    }

    private let state: Mutex<State>

    public init(now: Duration = .zero) {
        state = Mutex(State(now: now))
    }

    public func now() -> Duration { state.withLock { $0.now } }

    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        state.withLock {
            $0.now += max(duration, .zero)
            $0.sleeps.append(duration)
        }
    }

    /// Moves the clock forward by `duration`.
    public func advance(by duration: Duration) {
        state.withLock { $0.now += max(duration, .zero) }
    }

    /// Every sleep asked for, oldest first.
    public var sleeps: [Duration] { state.withLock { $0.sleeps } }

    /// Forgets the recorded sleeps (the time stays where it is).
    public func clearSleeps() {
        state.withLock { $0.sleeps.removeAll() }
    }
}
