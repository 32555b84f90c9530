import Foundation
import Generated
import SitrepRuntime

/// The dashboard aggregate, recomputed at most once per `ttl` per audience and shared by every
/// request in between: the landing page is polled by everyone at once, and an `If-None-Match`
/// hit then costs no query and no encoding. Concurrent misses wait for one computation.
actor DashboardCache {
    struct Snapshot: Sendable {
        let dashboard: Dashboard
        let etag: String
        let computedAt: ContinuousClock.Instant
    }

    let ttl: Duration
    private var snapshots: [Bool: Snapshot] = [:]
    private var inFlight: [Bool: Task<Snapshot, any Error>] = [:]

    init(ttl: Duration) { self.ttl = ttl }

    func snapshot(viewerOnly: Bool, compute: @escaping @Sendable () async throws -> Dashboard) async throws -> Snapshot {
        if let s = snapshots[viewerOnly], ContinuousClock.now - s.computedAt < ttl { return s }
        if let task = inFlight[viewerOnly] { return try await task.value }
        let task = Task { () async throws -> Snapshot in
            let d = try await compute()
            // The tag names the content, not the moment: an unchanged aggregate keeps its ETag
            // across recomputations, so pollers keep getting 304.
            var content = d
            content.generatedAt = Date(timeIntervalSince1970: 0)
            return Snapshot(dashboard: d, etag: ConditionalRequest.etag(prefix: "d", bytes: content.jsonBytes(capacity: 2048)), computedAt: .now)
        }
        inFlight[viewerOnly] = task
        defer { inFlight[viewerOnly] = nil }
        let s = try await task.value
        snapshots[viewerOnly] = s
        return s
    }
}
