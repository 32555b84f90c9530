import Foundation
import Generated
import SitrepRuntime
import Synchronization

/// The dashboard aggregate, recomputed at most once per `ttl` per audience and shared by every
/// request in between: the landing page is polled by everyone at once, and an `If-None-Match`
/// hit then costs no query and no encoding. Concurrent misses wait for one computation.
///
/// A hit is one lock acquisition (no actor hop): at tens of thousands of polls per second the
/// hop to an actor's executor and back was a noticeable share of each request.
final class DashboardCache: Sendable {
    struct Snapshot: Sendable {
        let dashboard: Dashboard
        /// `dashboard` as it is sent, encoded once for every request that gets this snapshot.
        let body: Encoded<Dashboard>
        let etag: String
        let computedAt: ContinuousClock.Instant
    }

    private struct State {
        var snapshots: [Bool: Snapshot] = [:]
        var inFlight: [Bool: Task<Snapshot, any Error>] = [:]
    }

    let ttl: Duration
    private let state = Mutex(State())

    init(ttl: Duration) { self.ttl = ttl }

    /// The snapshot while it is fresh: a hit costs one lock and allocates nothing.
    func fresh(viewerOnly: Bool) -> Snapshot? {
        let now = ContinuousClock.now
        return state.withLock { s in
            guard let snap = s.snapshots[viewerOnly], now - snap.computedAt < ttl else { return nil }
            return snap
        }
    }

    func snapshot(viewerOnly: Bool, compute: @escaping @Sendable () async throws -> Dashboard) async throws -> Snapshot {
        let now = ContinuousClock.now
        let ttl = self.ttl
        enum Next {
            case ready(Snapshot)
            case wait(Task<Snapshot, any Error>, owner: Bool)
        }
        let next: Next = state.withLock { s in
            if let snap = s.snapshots[viewerOnly], now - snap.computedAt < ttl { return .ready(snap) }
            if let task = s.inFlight[viewerOnly] { return .wait(task, owner: false) }
            let task = Task { () async throws -> Snapshot in
                let d = try await compute()
                // The tag names the content, not the moment: an unchanged aggregate keeps its
                // ETag across recomputations, so pollers keep getting 304.
                var content = d
                content.generatedAt = Date(timeIntervalSince1970: 0)
                return Snapshot(
                    dashboard: d, body: Encoded(d, capacity: 2048),
                    etag: ConditionalRequest.etag(prefix: "d", bytes: content.jsonBytes(capacity: 2048)), computedAt: .now)
            }
            s.inFlight[viewerOnly] = task
            return .wait(task, owner: true)
        }
        switch next {
        case .ready(let snap):
            return snap
        case .wait(let task, let owner):
            let result = await task.result
            if owner {
                state.withLock { s in
                    s.inFlight[viewerOnly] = nil
                    if case .success(let snap) = result { s.snapshots[viewerOnly] = snap }
                }
            }
            return try result.get()
        }
    }
}
