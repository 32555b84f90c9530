import Foundation
import Generated
import Synchronization
import Testing

@testable import Handlers

/// The dashboard snapshot cache: fresh within its TTL, then answered from the last snapshot while
/// one recomputation runs (up to its stale limit), and never stale with a zero TTL.
@Suite("dashboard cache")
struct DashboardCacheTests {
    /// A computation the test releases by hand, counting how often it ran.
    final class Gate: Sendable {
        let runs = Atomic<Int>(0)
        let released = Mutex<[CheckedContinuation<Void, Never>]>([])
        let open = Atomic<Bool>(true)

        func dashboard(total: Int) -> @Sendable () async throws -> Dashboard {
            { [self] in
                runs.wrappingAdd(1, ordering: .relaxed)
                if !open.load(ordering: .relaxed) {
                    await withCheckedContinuation { c in released.withLock { $0.append(c) } }
                }
                return DashboardCacheTests.dashboard(total: total)
            }
        }

        func release() {
            for c in released.withLock({ w in
                defer { w = [] }; return w
            }) { c.resume() }
        }
    }

    static func dashboard(total: Int) -> Dashboard {
        Dashboard(
            generatedAt: Date(), posture: [],
            signals: SignalStats(
                windowHours: 24, total: total, bySeverity: SeverityCounts(low: total, medium: 0, high: 0, critical: 0),
                byCategory: CategoryCounts(
                    geopolitical: total, economic: 0, security: 0, technology: 0, health: 0, climate: 0, regulatory: 0, reputational: 0),
                byStatus: SignalStatusCounts(new: total, acknowledged: 0, escalated: 0, dismissed: 0)),
            latestBriefing: nil, actions: ActionStats(open: 0, inProgress: 0, blocked: 0, overdue: 0, dueNext7Days: 0))
    }

    @Test func afterTheTTLTheLastSnapshotAnswersWhileOneRecomputationRuns() async throws {
        // A TTL long enough that a busy machine (the whole suite runs in parallel on two cores)
        // still sees the new snapshot while it is fresh: with 50 ms, a poll that slept longer
        // than that missed it for good.
        let cache = DashboardCache(ttl: .milliseconds(400), staleLimit: .seconds(30))
        let gate = Gate()
        let first = try await cache.snapshot(viewerOnly: false, compute: gate.dashboard(total: 1))
        #expect(first.dashboard.signals.total == 1 && cache.fresh(viewerOnly: false) != nil)
        try await Task.sleep(for: .milliseconds(420))
        #expect(cache.fresh(viewerOnly: false) == nil)

        gate.open.store(false, ordering: .relaxed)
        // Stale: answered at once from the last snapshot, while one recomputation starts.
        for _ in 0..<5 {
            let s = try await cache.snapshot(viewerOnly: false, compute: gate.dashboard(total: 2))
            #expect(s.dashboard.signals.total == 1 && s.etag == first.etag)
        }
        try await eventually("the recomputation to start") { gate.runs.load(ordering: .relaxed) == 2 }
        gate.release()
        try await eventually("the new snapshot") { cache.fresh(viewerOnly: false)?.dashboard.signals.total == 2 }
        let second = try await cache.snapshot(viewerOnly: false, compute: gate.dashboard(total: 3))
        #expect(second.dashboard.signals.total == 2 && second.etag != first.etag)
        #expect(gate.runs.load(ordering: .relaxed) == 2)
        // Each audience has its own snapshot.
        gate.open.store(true, ordering: .relaxed)
        let viewer = try await cache.snapshot(viewerOnly: true, compute: gate.dashboard(total: 9))
        #expect(viewer.dashboard.signals.total == 9)
    }

    @Test func pastTheStaleLimitOrWithoutASnapshotRequestsWaitForOneComputation() async throws {
        let cache = DashboardCache(ttl: .milliseconds(20), staleLimit: .milliseconds(20))
        let gate = Gate()
        _ = try await cache.snapshot(viewerOnly: false, compute: gate.dashboard(total: 1))
        try await Task.sleep(for: .milliseconds(60))
        gate.open.store(false, ordering: .relaxed)
        async let a = cache.snapshot(viewerOnly: false, compute: gate.dashboard(total: 2))
        async let b = cache.snapshot(viewerOnly: false, compute: gate.dashboard(total: 3))
        try await eventually("the computation to start") { gate.runs.load(ordering: .relaxed) == 2 }
        try await Task.sleep(for: .milliseconds(20))
        gate.release()
        let (x, y) = try await (a, b)
        // Either request may be the one that computes (the two child tasks race to start); both
        // get that one computation's snapshot.
        #expect([2, 3].contains(x.dashboard.signals.total) && y.dashboard.signals.total == x.dashboard.signals.total)
        #expect(x.etag == y.etag)
        #expect(gate.runs.load(ordering: .relaxed) == 2)
    }

    @Test func aFailedRecomputationKeepsTheLastSnapshotAndTheNextRequestTriesAgain() async throws {
        struct Down: Error {}
        let cache = DashboardCache(ttl: .milliseconds(20), staleLimit: .seconds(30))
        _ = try await cache.snapshot(viewerOnly: false) { Self.dashboard(total: 1) }
        try await Task.sleep(for: .milliseconds(30))
        let tries = Atomic<Int>(0)
        let failing: @Sendable () async throws -> Dashboard = {
            tries.wrappingAdd(1, ordering: .relaxed)
            throw Down()
        }
        #expect(try await cache.snapshot(viewerOnly: false, compute: failing).dashboard.signals.total == 1)
        try await eventually("the failed recomputation") { tries.load(ordering: .relaxed) == 1 }
        try await Task.sleep(for: .milliseconds(10))
        #expect(try await cache.snapshot(viewerOnly: false, compute: failing).dashboard.signals.total == 1)
        try await eventually("a second try") { tries.load(ordering: .relaxed) == 2 }
    }

    @Test func aZeroTTLComputesEveryTimeAndNeverAnswersStale() async throws {
        let cache = DashboardCache(ttl: .zero)
        #expect(cache.staleLimit == .zero)
        let a = try await cache.snapshot(viewerOnly: false) { Self.dashboard(total: 1) }
        let b = try await cache.snapshot(viewerOnly: false) { Self.dashboard(total: 2) }
        #expect(a.dashboard.signals.total == 1 && b.dashboard.signals.total == 2)
        #expect(cache.fresh(viewerOnly: false) == nil)
        // Requests at the same time do not share a computation (one already running began
        // before the later request arrived): each runs its own.
        let gate = Gate()
        gate.open.store(false, ordering: .relaxed)
        async let x = cache.snapshot(viewerOnly: false, compute: gate.dashboard(total: 3))
        async let y = cache.snapshot(viewerOnly: false, compute: gate.dashboard(total: 4))
        try await eventually("both computations to wait") { gate.released.withLock { $0.count } == 2 }
        gate.release()
        let (p, q) = try await (x, y)
        #expect(Set([p.dashboard.signals.total, q.dashboard.signals.total]) == [3, 4])
    }

    /// Many tasks at once get the snapshot's very bytes and tag, and the new snapshot once one is
    /// made.
    @Test func everyTaskSeesTheCurrentSnapshot() async throws {
        let cache = DashboardCache(ttl: .seconds(30))
        let first = try await cache.snapshot(viewerOnly: false) { Self.dashboard(total: 1) }
        let bytes = Array(first.body.buffer.readableBytesView)
        func everyoneSees(_ expected: DashboardCache.Snapshot) async -> Int {
            let expectedBytes = Array(expected.body.buffer.readableBytesView)
            let tag = expected.etag
            return await withTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var wrong = 0
                        for _ in 0..<200 {
                            if let s = cache.fresh(viewerOnly: false), s.etag == tag, Array(s.body.buffer.readableBytesView) == expectedBytes {
                                continue
                            }
                            wrong += 1
                        }
                        return wrong
                    }
                }
                return await group.reduce(0, +)
            }
        }
        #expect(await everyoneSees(first) == 0)
        #expect(Array(first.body.buffer.readableBytesView) == bytes)
        // Viewers have no snapshot yet: the other audience's does not answer for them.
        #expect(cache.fresh(viewerOnly: true) == nil)

        // A new snapshot (the old one aged past the TTL in a cache with a short one).
        // 400 ms, so a busy machine still sees the first one while it is fresh.
        let short = DashboardCache(ttl: .milliseconds(400), staleLimit: .seconds(30))
        let old = try await short.snapshot(viewerOnly: false) { Self.dashboard(total: 1) }
        #expect(short.fresh(viewerOnly: false)?.etag == old.etag)
        try await Task.sleep(for: .milliseconds(420))
        #expect(short.fresh(viewerOnly: false) == nil)
        _ = try await short.snapshot(viewerOnly: false) { Self.dashboard(total: 2) }
        try await eventually("the new snapshot") { short.fresh(viewerOnly: false)?.dashboard.signals.total == 2 }
        let new = try #require(short.fresh(viewerOnly: false))
        #expect(new.etag != old.etag)
    }

    /// Two caches (two servers in one process): neither answers with the other's snapshot.
    @Test func twoCachesKeepTheirOwnSnapshots() async throws {
        let a = DashboardCache(ttl: .seconds(30))
        let b = DashboardCache(ttl: .seconds(30))
        _ = try await a.snapshot(viewerOnly: false) { Self.dashboard(total: 1) }
        func both() -> (Int?, Int?) {
            (a.fresh(viewerOnly: false)?.dashboard.signals.total, b.fresh(viewerOnly: false)?.dashboard.signals.total)
        }
        #expect(both() == (1, nil))
        _ = try await b.snapshot(viewerOnly: false) { Self.dashboard(total: 5) }
        #expect(both() == (1, 5))
        #expect(both() == (1, 5))
    }
}
