import Foundation
import Generated
import PostgresNIO
import SitrepRuntime

extension SitrepHandlers {
    public func getDashboard(_ input: GetDashboard.Input, context: OperationContext) async throws -> GetDashboard.Output {
        // Viewers see only approved or distributed briefings, so they get their own copy.
        let viewerOnly = !context.caller.hasAnyRole(of: Self.fullDashboardRoles)
        let snapshot: DashboardCache.Snapshot
        if let hit = dashboardCache.fresh(viewerOnly: viewerOnly) {
            snapshot = hit
        } else {
            snapshot = try await dashboardCache.snapshot(viewerOnly: viewerOnly) {
                try await database { try await computeDashboard(viewerOnly: viewerOnly, context: context) }
            }
        }
        if ConditionalRequest.ifNoneMatch(input.ifNoneMatch, matches: snapshot.etag) {
            return .notModified(etag: snapshot.etag)
        }
        return .okEncoded(snapshot.body)
    }

    /// Roles that see every briefing on the dashboard.
    static let fullDashboardRoles = ["Sitrep.Admin", "Sitrep.Executive", "Sitrep.BriefingWriter"]

    /// The aggregate, fresh from PostgreSQL (four queries run concurrently on the pool).
    func computeDashboard(viewerOnly: Bool, context: OperationContext) async throws -> Dashboard {
        let now = Date()
        let windowHours = 24
        async let posture = postureEntries(context: context)
        async let stats = signalStats(since: now.addingTimeInterval(-Double(windowHours) * 3600), context: context)
        async let briefing = latestBriefing(viewerOnly: viewerOnly, context: context)
        async let actions = actionStats(now: now, context: context)
        let (s, total) = try await stats
        return Dashboard(
            generatedAt: now, posture: try await posture,
            signals: SignalStats(
                windowHours: windowHours, total: total,
                bySeverity: SeverityCounts(
                    low: s["severity:low"] ?? 0, medium: s["severity:medium"] ?? 0, high: s["severity:high"] ?? 0,
                    critical: s["severity:critical"] ?? 0),
                byCategory: CategoryCounts(
                    geopolitical: s["category:geopolitical"] ?? 0, economic: s["category:economic"] ?? 0,
                    security: s["category:security"] ?? 0, technology: s["category:technology"] ?? 0,
                    health: s["category:health"] ?? 0, climate: s["category:climate"] ?? 0,
                    regulatory: s["category:regulatory"] ?? 0, reputational: s["category:reputational"] ?? 0),
                byStatus: SignalStatusCounts(
                    new: s["status:new"] ?? 0, acknowledged: s["status:acknowledged"] ?? 0,
                    escalated: s["status:escalated"] ?? 0, dismissed: s["status:dismissed"] ?? 0)),
            latestBriefing: try await briefing, actions: try await actions)
    }

    /// Counts keyed `severity:<v>`, `category:<v>`, `status:<v>`, and the total, of the signals
    /// published at or after `since`: the per-hour totals of `signal_counts` (migration 0013) and
    /// the changes not yet folded into them (`signal_count_deltas`, migration 0014) from the first
    /// whole hour on, plus the signals of the partial hour before it (an index-only scan of
    /// `signals_published_cover_idx`), grouped by all three (at most 128 groups) in one
    /// statement, so every part reads the same snapshot; summed here.
    func signalStats(since: Date, context: OperationContext) async throws -> ([String: Int], Int) {
        let rows = try await db.query(
            """
            WITH edge AS (
                SELECT s, CASE WHEN date_trunc('hour', s, 'UTC') = s THEN s ELSE date_trunc('hour', s, 'UTC') + interval '1 hour' END AS t
                FROM (SELECT \(since)::timestamptz AS s) AS given
            )
            SELECT severity, category, status, sum(n)::int8 FROM (
                SELECT severity, category, status, n FROM signal_counts, edge WHERE hour >= edge.t
                UNION ALL
                SELECT severity, category, status, n FROM signal_count_deltas, edge WHERE hour >= edge.t
                UNION ALL
                SELECT severity, category, status, count(*) FROM signals, edge
                WHERE published_at >= edge.s AND published_at < edge.t GROUP BY severity, category, status
            ) AS parts
            GROUP BY severity, category, status HAVING sum(n) <> 0
            """, logger: context.logger)
        var out: [String: Int] = [:]
        var total = 0
        for try await (severity, category, status, count) in rows.decode((String, String, String, Int64).self) {
            let n = Int(count)
            out["severity:" + severity, default: 0] += n
            out["category:" + category, default: 0] += n
            out["status:" + status, default: 0] += n
            total += n
        }
        return (out, total)
    }

    func latestBriefing(viewerOnly: Bool, context: OperationContext) async throws -> BriefingSummary? {
        let rows = try await db.query(
            """
            SELECT id, title, status, to_char(briefing_date, 'YYYY-MM-DD'), updated_at FROM briefings
            WHERE NOT \(viewerOnly) OR status IN ('approved', 'distributed')
            ORDER BY briefing_date DESC, updated_at DESC, id DESC LIMIT 1
            """, logger: context.logger)
        for try await (id, title, status, date, updatedAt) in rows.decode((UUID, String, String, String, Date).self) {
            guard let d = CalendarDate(date), let s = BriefingStatus(rawValue: status) else { continue }
            return BriefingSummary(id: id, title: title, status: s, briefingDate: d, updatedAt: updatedAt)
        }
        return nil
    }

    func actionStats(now: Date, context: OperationContext) async throws -> ActionStats {
        // Overdue and "due soon" are judged against today's date in UTC.
        let rows = try await db.query(
            """
            WITH today AS (SELECT (\(now)::timestamptz AT TIME ZONE 'UTC')::date AS d)
            SELECT count(*) FILTER (WHERE status = 'open')::int8,
                   count(*) FILTER (WHERE status = 'in_progress')::int8,
                   count(*) FILTER (WHERE status = 'blocked')::int8,
                   count(*) FILTER (WHERE status IN ('open', 'in_progress', 'blocked') AND due_date < today.d)::int8,
                   count(*) FILTER (WHERE status IN ('open', 'in_progress', 'blocked') AND due_date >= today.d
                                    AND due_date < today.d + 7)::int8
            FROM actions, today
            """, logger: context.logger)
        for try await (open, inProgress, blocked, overdue, dueSoon) in rows.decode((Int64, Int64, Int64, Int64, Int64).self) {
            return ActionStats(open: Int(open), inProgress: Int(inProgress), blocked: Int(blocked), overdue: Int(overdue), dueNext7Days: Int(dueSoon))
        }
        return ActionStats(open: 0, inProgress: 0, blocked: 0, overdue: 0, dueNext7Days: 0)
    }
}
