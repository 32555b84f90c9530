// A bounded pool of hiredis connections.
//
// Invariant: `leased + idle.count <= capacity`. A lease is a permit to use one
// connection slot; it comes with an idle connection when there is one, or with
// `nil`, meaning "you may open one". Callers that find every slot busy wait in
// FIFO order, bounded by a timeout, until a lease is released to them.
//
// One thread at a time per `redisContext`: a connection sits either in `idle`
// (touched only under `state`'s mutex) or in exactly one lease, whose holder
// is the only code that can reach it until it calls `release`. Moving a
// connection between the two always goes through the mutex.

import Synchronization

/// `package` rather than internal so that the tests can drive it without `@testable`.
package final class ConnectionPool: Sendable {
    package typealias Lease = RedisConnection?

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Result<Lease, RedisError>, Never>
    }

    private struct State {
        var idle: [RedisConnection] = []
        var leased = 0
        var waiters: [Waiter] = []
        var closed = false
        var nextWaiterID: UInt64 = 0
        /// `close()` callers waiting for every lease to come back.
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private enum Take {
        case ready(Lease)
        case failed(RedisError)
        case mustWait
    }

    /// Holds the timeout timer of one waiting `lease` call.
    private final class TimerSlot: Sendable {
        let task = Mutex<Task<Void, Never>?>(nil)
    }

    package let capacity: Int
    private let state = Mutex(State())

    package init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    deinit {
        // Nobody else can hold a reference now, so the idle connections are ours.
        for connection in state.withLock({ $0.idle }) { connection.close() }
    }

    package var idleCount: Int { state.withLock { $0.idle.count } }
    package var leasedCount: Int { state.withLock { $0.leased } }

    /// Takes a slot: an idle connection, `nil` (open a new one), or waits up to
    /// `timeout` for one to be released. Every successful call must be paired
    /// with exactly one `release`.
    package func lease(timeout: Duration) async throws(RedisError) -> Lease {
        switch state.withLock({ Self.take(&$0, capacity: capacity) }) {
        case .ready(let lease): return lease
        case .failed(let error): throw error
        case .mustWait: break
        }

        let id = state.withLock { state in
            state.nextWaiterID &+= 1
            return state.nextWaiterID
        }
        let timer = TimerSlot()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Lease, RedisError>, Never>) in
                let immediate: Result<Lease, RedisError>? = state.withLock { state in
                    switch Self.take(&state, capacity: capacity) {
                    case .ready(let lease):
                        return .success(lease)
                    case .failed(let error):
                        return .failure(error)
                    case .mustWait:
                        // Checked under the lock: `onCancel` below takes the same
                        // lock, so a cancellation either is visible here or finds
                        // the waiter registered.
                        if Task.isCancelled {
                            return .failure(RedisError(.timeout, "cancelled while waiting for a Redis connection"))
                        }
                        state.waiters.append(Waiter(id: id, continuation: continuation))
                        return nil
                    }
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                    return
                }
                timer.task.withLock {
                    $0 = Task { [weak self] in
                        do { try await Task.sleep(for: timeout) } catch { return }  // cancelled: served in time
                        self?.failWaiter(
                            id,
                            with: RedisError(
                                .timeout,
                                "no Redis connection became free within \(timeout) (all \(self?.capacity ?? 0) in use)"))
                    }
                }
            }
        } onCancel: {
            failWaiter(id, with: RedisError(.timeout, "cancelled while waiting for a Redis connection"))
        }
        timer.task.withLock { $0?.cancel() }
        return try result.get()
    }

    /// Gives a slot back, with its connection if that is still healthy.
    package func release(_ connection: Lease) {
        enum Action {
            case none
            case handOff(Waiter, Lease)
            case discard(Lease, drained: [CheckedContinuation<Void, Never>])
        }
        let action: Action = state.withLock { state in
            state.leased -= 1
            if state.closed {
                var drained: [CheckedContinuation<Void, Never>] = []
                if state.leased == 0 { swap(&drained, &state.closeWaiters) }
                return .discard(connection, drained: drained)
            }
            if !state.waiters.isEmpty {
                state.leased += 1
                return .handOff(state.waiters.removeFirst(), connection)
            }
            if let connection { state.idle.append(connection) }
            return .none
        }
        switch action {
        case .none:
            break
        case .handOff(let waiter, let lease):
            waiter.continuation.resume(returning: .success(lease))
        case .discard(let lease, let drained):
            lease?.close()
            for continuation in drained { continuation.resume() }
        }
    }

    /// Refuses new leases, fails the waiters, closes idle connections and waits
    /// until every outstanding lease has been released (each is bounded by the
    /// command timeout). Safe to call more than once.
    package func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            var idle: [RedisConnection] = []
            var waiters: [Waiter] = []
            swap(&idle, &state.idle)
            swap(&waiters, &state.waiters)
            return (idle, waiters)
        }
        for waiter in waiters {
            waiter.continuation.resume(returning: .failure(Self.closedError))
        }
        for connection in idle { connection.close() }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state in
                if state.leased == 0 { return true }
                state.closeWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    // MARK: - private

    private static let closedError = RedisError(.poolClosed, "the Redis client has been shut down")

    private static func take(_ state: inout State, capacity: Int) -> Take {
        if state.closed { return .failed(closedError) }
        if let connection = state.idle.popLast() {  // most recently used: its socket is warm
            state.leased += 1
            return .ready(connection)
        }
        if state.leased < capacity {
            state.leased += 1
            return .ready(nil)
        }
        return .mustWait
    }

    private func failWaiter(_ id: UInt64, with error: RedisError) {
        let waiter: Waiter? = state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(returning: .failure(error))
    }
}
