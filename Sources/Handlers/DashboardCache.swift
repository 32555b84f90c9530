import Foundation
import Generated
import SitrepRuntime
import Synchronization

/// The dashboard aggregate, recomputed at most once per `ttl` per audience and shared by every
/// request in between: the landing page is polled by everyone at once, and an `If-None-Match`
/// hit then costs no query and no encoding.
///
/// Once `ttl` has passed, the next request starts one recomputation and, while it runs, every
/// request (that one included) is answered from the last snapshot, for up to `staleLimit` past
/// `ttl`: nobody waits for the aggregate's queries except when there is no recent snapshot at
/// all (the first request, or after `staleLimit`, e.g. while PostgreSQL is down), and then
/// concurrent requests wait for one computation. Counts are still those of the snapshot's
/// `generatedAt`, as the contract says. With `ttl` zero every request computes its own, shared
/// with no other request and kept nowhere.
///
/// A hit is one lock acquisition (no actor hop): at tens of thousands of polls per second the
/// hop to an actor's executor and back was a noticeable share of each request.
final class DashboardCache: Sendable {
    /// A class, so a hit hands out a reference rather than copying the aggregate's fields.
    final class Snapshot: Sendable {
        let dashboard: Dashboard
        /// `dashboard` as it is sent, with its ETag, encoded once for every request that gets this
        /// snapshot.
        let body: Encoded<Dashboard>
        let computedAt: ContinuousClock.Instant

        var etag: String { body.etag }

        init(dashboard: Dashboard, body: Encoded<Dashboard>, computedAt: ContinuousClock.Instant) {
            self.dashboard = dashboard
            self.body = body
            self.computedAt = computedAt
        }
    }

    /// Per audience (viewers, everyone else): two slots rather than a dictionary keyed by a
    /// `Bool`, which hashed the key on every request.
    private struct State {
        var full: Slot = Slot()
        var viewerOnly: Slot = Slot()
        subscript(viewerOnly viewerOnly: Bool) -> Slot {
            get { viewerOnly ? self.viewerOnly : full }
            set {
                if viewerOnly { self.viewerOnly = newValue } else { full = newValue }
            }
        }
    }

    private struct Slot {
        var snapshot: Snapshot?
        var inFlight: Task<Snapshot, any Error>?
    }

    let ttl: Duration
    /// How long past `ttl` a snapshot may still answer while the next one is computed.
    let staleLimit: Duration
    private let state = Mutex(State())

    /// `staleLimit` defaults to 15 × `ttl` (30 s for the default 2 s).
    init(ttl: Duration, staleLimit: Duration? = nil) {
        self.ttl = ttl
        self.staleLimit = staleLimit ?? ttl * 15
    }

    /// The snapshot while it is fresh: a hit costs one lock and allocates nothing.
    func fresh(viewerOnly: Bool) -> Snapshot? {
        let now = ContinuousClock.now
        return state.withLock { s in
            guard let snap = viewerOnly ? s.viewerOnly.snapshot : s.full.snapshot, now - snap.computedAt < ttl else { return nil }
            return snap
        }
    }

    func snapshot(viewerOnly: Bool, compute: @escaping @Sendable () async throws -> Dashboard) async throws -> Snapshot {
        // No cache: each request computes its own aggregate, which starts after the request
        // arrived and so sees every write committed before it. Sharing a computation already
        // running would answer from a snapshot older than the request.
        if ttl == .zero { return try Self.make(await compute()) }
        let now = ContinuousClock.now
        enum Next {
            case ready(Snapshot)
            case wait(Task<Snapshot, any Error>)
        }
        let next: Next = state.withLock { s in
            let last = s[viewerOnly: viewerOnly].snapshot
            if let last, now - last.computedAt < ttl { return .ready(last) }
            let task: Task<Snapshot, any Error>
            if let running = s[viewerOnly: viewerOnly].inFlight {
                task = running
            } else {
                // Created under the lock, so its own clean-up (which takes the lock) runs after
                // it is registered here.
                task = Task { try await self.recompute(viewerOnly: viewerOnly, compute) }
                s[viewerOnly: viewerOnly].inFlight = task
            }
            if let last, now - last.computedAt < ttl + staleLimit { return .ready(last) }
            return .wait(task)
        }
        switch next {
        case .ready(let snapshot): return snapshot
        case .wait(let task): return try await task.value
        }
    }

    /// `d` encoded once, with its tag.
    private static func make(_ d: Dashboard) -> Snapshot {
        // The tag names the content, not the moment: an unchanged aggregate keeps its ETag
        // across recomputations, so pollers keep getting 304.
        var content = d
        content.generatedAt = Date(timeIntervalSince1970: 0)
        let etag = ConditionalRequest.etag(prefix: "d", bytes: content.jsonBytes(capacity: 2048))
        return Snapshot(dashboard: d, body: Encoded(d, capacity: 2048, etag: etag), computedAt: .now)
    }

    /// Computes a snapshot and keeps it (whoever waits for it, if anyone).
    private func recompute(viewerOnly: Bool, _ compute: @Sendable () async throws -> Dashboard) async throws -> Snapshot {
        let result: Result<Snapshot, any Error>
        do {
            result = .success(Self.make(try await compute()))
        } catch {
            result = .failure(error)
        }
        state.withLock { s in
            s[viewerOnly: viewerOnly].inFlight = nil
            if case .success(let snap) = result { s[viewerOnly: viewerOnly].snapshot = snap }
        }
        return try result.get()
    }
}
