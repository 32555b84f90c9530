import Auth
import Foundation
import Generated
import HTTPTypes
import Handlers
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Redis
import SitrepRuntime
import Testing

/// The first vertical slice against real PostgreSQL and Redis: signals, posture, dashboard, me,
/// health, and the contract documents.
@Suite("slice: signals, posture, dashboard", .enabled(if: SitrepHarness.isConfigured))
struct SliceTests {
    func ts(_ minutesAgo: Int, from base: Date = Date(timeIntervalSince1970: 1_764_057_600)) -> String {
        WireFormat.formatDateTime(base.addingTimeInterval(-Double(minutesAgo) * 60))
    }

    @Test func ingestIsIdempotentOnSourceId() async throws {
        try await SitrepHarness.with { client, h in
            let items = [signalJSON(sourceId: "A1"), signalJSON(source: "cert", sourceId: "B2", category: "security")]
            var firstIds: [UUID] = []
            try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch(items))) {
                r in
                #expect(r.status == .ok)
                let result = try r.decode(SignalIngestResult.self)
                #expect(result.received == 2 && result.created == 2 && result.unchanged == 0 && result.conflicts == 0)
                #expect(result.results.map(\.outcome) == [.created, .created])
                firstIds = result.results.map(\.id)
            }
            // The same batch again changes nothing and says so per item.
            try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch(items))) {
                r in
                let result = try r.decode(SignalIngestResult.self)
                #expect(result.results.map(\.outcome) == [.unchanged, .unchanged])
                #expect(result.results.map(\.id) == firstIds)
                #expect(result.created == 0 && result.unchanged == 2)
            }
            // Same key, other content: a conflict, and the stored signal is kept.
            let changed = signalJSON(sourceId: "A1", title: "Brent crude falls")
            try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch([changed]))) {
                r in
                let result = try r.decode(SignalIngestResult.self)
                #expect(result.results.map(\.outcome) == [.conflict])
                #expect(result.conflicts == 1)
            }
            try await client.execute(uri: "/v1/signals/\(firstIds[0].uuidString.lowercased())", method: .get, headers: .auth(h.tokens.viewer)) { r in
                let s = try r.decode(Signal.self)
                #expect(s.title == "Brent crude rises")
            }
            // The same key twice in one batch: 422, nothing stored.
            let dup = batch([signalJSON(sourceId: "C3"), signalJSON(sourceId: "C3")])
            try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(dup)) { r in
                #expect(r.status == .unprocessableContent)
                let p = try r.decode(Problem.self)
                #expect(p.errors?.map(\.pointer) == ["/body/items/1/sourceId"])
            }
            let count = try await h.db.client.query("SELECT count(*)::int8 FROM signals WHERE source_id = 'C3'")
            for try await n in count.decode(Int64.self) { #expect(n == 0) }
            // Ingest is audited.
            let audit = try await h.db.client.query("SELECT count(*)::int8 FROM audit_events WHERE action = 'signal.ingest'")
            for try await n in audit.decode(Int64.self) { #expect(n == 2) }
        }
    }

    @Test func aMixedBatchAndRacingBatchesConvergeOnOneRowPerKey() async throws {
        try await SitrepHarness.with { client, h in
            let seed = [signalJSON(sourceId: "M1"), signalJSON(sourceId: "M2")]
            _ = try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch(seed)))
            // New, unchanged and conflicting items in one batch keep their order and outcomes.
            let mixed = [
                signalJSON(sourceId: "M3"), signalJSON(sourceId: "M1"), signalJSON(sourceId: "M2", title: "Changed"), signalJSON(sourceId: "M4"),
            ]
            let r = try await client.execute(
                uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch(mixed)))
            let result = try r.decode(SignalIngestResult.self)
            #expect(result.results.map(\.sourceId) == ["M3", "M1", "M2", "M4"])
            #expect(result.results.map(\.outcome) == [.created, .unchanged, .conflict, .created])
            #expect(result.received == 4 && result.created == 2 && result.unchanged == 1 && result.conflicts == 1)

            // Eight identical batches at once: every key stored once, every answer names the same ids.
            let race = batch((0..<20).map { signalJSON(sourceId: "R\($0)") })
            let token = h.tokens.ingest
            let answers = try await withThrowingTaskGroup(of: SignalIngestResult.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(token, json: true), body: buffer(race))
                            .decode(SignalIngestResult.self)
                    }
                }
                var all: [SignalIngestResult] = []
                for try await a in group { all.append(a) }
                return all
            }
            #expect(answers.map(\.created).reduce(0, +) == 20)
            #expect(answers.allSatisfy { $0.results.count == 20 && $0.conflicts == 0 })
            #expect(Set(answers.map { $0.results.map(\.id) }).count == 1)
            let count = try await h.db.client.query("SELECT count(*)::int8 FROM signals WHERE source_id LIKE 'R%'")
            for try await n in count.decode(Int64.self) { #expect(n == 20) }
        }
    }

    @Test func onlyTheIngestRoleMayPush() async throws {
        try await SitrepHarness.with { client, h in
            try await client.execute(
                uri: "/v1/signals", method: .post, headers: .auth(h.tokens.admin, json: true), body: buffer(batch([signalJSON(sourceId: "X")]))
            ) { r in
                #expect(r.status == .forbidden)
                #expect(r.problemCode == "auth.forbidden")
            }
            try await client.execute(uri: "/v1/signals", method: .get, headers: .auth(h.tokens.nobody)) { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(uri: "/v1/signals", method: .get, headers: .auth("not.a.jwt")) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.wwwAuthenticate]?.contains("invalid_token") == true)
            }
        }
    }

    @Test func paginationHasNoDuplicatesOrGapsWhileRowsArrive() async throws {
        try await SitrepHarness.with { client, h in
            // 120 signals; every third pair shares a timestamp to exercise the id tie-break.
            let items = (0..<120).map { i in signalJSON(sourceId: "P\(i)", publishedAt: ts((i / 2) * 3)) }
            try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch(items))) {
                r in
                #expect(r.status == .ok)
            }
            var seen: [String] = []
            var cursor: String?
            var page = 0
            repeat {
                let uri = "/v1/signals?limit=25" + (cursor.map { "&cursor=\($0)" } ?? "")
                let p = try await client.execute(uri: uri, method: .get, headers: .auth(h.tokens.viewer)) { r in try r.decode(SignalPage.self) }
                #expect(p.items.count <= 25)
                // Ordered newest first, ties by id.
                for (a, b) in zip(p.items, p.items.dropFirst()) {
                    #expect(
                        a.publishedAt > b.publishedAt
                            || (a.publishedAt == b.publishedAt && a.id.uuidString.lowercased() > b.id.uuidString.lowercased()))
                }
                seen += p.items.map(\.sourceId)
                cursor = p.nextCursor
                // Rows arrive while paging: newer ones and ones at the same time as rows already seen.
                let more = [signalJSON(sourceId: "N\(page)", publishedAt: ts(-10)), signalJSON(sourceId: "M\(page)", publishedAt: ts(0))]
                try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch(more))) {
                    _ in
                }
                page += 1
            } while cursor != nil && page < 20
            let original = seen.filter { $0.hasPrefix("P") }
            #expect(original.count == 120)
            #expect(Set(original).count == 120)
            #expect(Set(seen).count == seen.count)
        }
    }

    @Test func everyFilter() async throws {
        try await SitrepHarness.with { client, h in
            let items = [
                signalJSON(
                    sourceId: "F1", title: "Tanker seized near strait", category: "geopolitical", severity: "critical", publishedAt: ts(10),
                    tags: ["maritime"]),
                signalJSON(
                    sourceId: "F2", title: "Bond yields climb", category: "economic", severity: "medium", publishedAt: ts(20), tags: ["bonds"]),
                signalJSON(
                    sourceId: "F3", title: "Ransomware hits port operator", category: "security", severity: "high", publishedAt: ts(30),
                    tags: ["maritime", "ransomware"]),
                signalJSON(sourceId: "F4", title: "Heatwave warning", category: "climate", severity: "low", publishedAt: ts(40), tags: ["heat"]),
            ]
            var ids: [String: String] = [:]
            try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch(items))) {
                r in
                for item in try r.decode(SignalIngestResult.self).results { ids[item.sourceId] = item.id.uuidString.lowercased() }
            }
            // Escalate F3 so the status filter has something to find.
            try await client.execute(
                uri: "/v1/signals/\(ids["F3"]!)/triage", method: .post, headers: .auth(h.tokens.admin, json: true, ifMatch: "\"1\""),
                body: buffer(#"{"status":"escalated","note":"Port ops affected"}"#)
            ) { r in #expect(r.status == .ok) }
            func list(_ query: String) async throws -> [String] {
                try await client.execute(uri: "/v1/signals?" + query, method: .get, headers: .auth(h.tokens.viewer)) { r in
                    #expect(r.status == .ok, "\(query): \(r.text)")
                    return try r.decode(SignalPage.self).items.map(\.sourceId)
                }
            }
            #expect(try await list("category=economic&category=climate") == ["F2", "F4"])
            #expect(try await list("minSeverity=high") == ["F1", "F3"])
            #expect(try await list("status=escalated") == ["F3"])
            #expect(try await list("status=new&category=security") == [])
            #expect(try await list("tag=maritime") == ["F1", "F3"])
            #expect(try await list("since=\(ts(30))&until=\(ts(10))") == ["F2", "F3"])
            #expect(try await list("q=ransomware") == ["F3"])
            #expect(try await list("q=heatwave+warning") == ["F4"])
            try await client.execute(uri: "/v1/signals?cursor=bogus", method: .get, headers: .auth(h.tokens.viewer)) { r in
                #expect(r.status == .badRequest)
                #expect(r.problemCode == "pagination.invalid_cursor")
            }
            try await client.execute(uri: "/v1/signals?since=\(ts(10))&until=\(ts(30))", method: .get, headers: .auth(h.tokens.viewer)) { r in
                #expect(r.status == .badRequest)
                #expect(r.problemCode == "request.invalid_parameter")
            }
        }
    }

    @Test func triageNeedsIfMatchAndIsAudited() async throws {
        try await SitrepHarness.with { client, h in
            var id = ""
            try await client.execute(
                uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch([signalJSON(sourceId: "T1")]))
            ) { r in
                id = try r.decode(SignalIngestResult.self).results[0].id.uuidString.lowercased()
            }
            let etag = try await client.execute(uri: "/v1/signals/\(id)", method: .get, headers: .auth(h.tokens.admin)) { r in
                #expect(r.status == .ok)
                return r.headers[.eTag]
            }
            #expect(etag == "\"1\"")
            let body = buffer(#"{"status":"acknowledged","note":"Seen"}"#)
            try await client.execute(uri: "/v1/signals/\(id)/triage", method: .post, headers: .auth(h.tokens.admin, json: true), body: body) { r in
                #expect(r.status == .preconditionRequired)
            }
            try await client.execute(
                uri: "/v1/signals/\(id)/triage", method: .post, headers: .auth(h.tokens.viewer, json: true, ifMatch: etag), body: body
            ) { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(
                uri: "/v1/signals/\(id)/triage", method: .post, headers: .auth(h.tokens.admin, json: true, ifMatch: etag), body: body
            ) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.eTag] == "\"2\"")
                let s = try r.decode(Signal.self)
                #expect(s.status == .acknowledged && s.triageNote == "Seen" && s.triagedBy == "Admin" && s.triagedAt != nil)
            }
            // The old ETag is stale now.
            try await client.execute(
                uri: "/v1/signals/\(id)/triage", method: .post, headers: .auth(h.tokens.admin, json: true, ifMatch: etag), body: body
            ) { r in
                #expect(r.status == .preconditionFailed)
                #expect(r.problemCode == "precondition.failed")
            }
            try await client.execute(
                uri: "/v1/signals/\(id)/triage", method: .post, headers: .auth(h.tokens.admin, json: true, ifMatch: "\"2\""),
                body: buffer(#"{"status":"new"}"#)
            ) { r in
                #expect(r.status == .conflict)
                #expect(r.problemCode == "signal.invalid_transition")
            }
            try await client.execute(uri: "/v1/signals/0195793d-10c0-7b9a-a4ed-db491c101707", method: .get, headers: .auth(h.tokens.admin)) { r in
                #expect(r.status == .notFound)
            }
            let rows = try await h.db.client.query(
                "SELECT actor_id, from_state, to_state, outcome FROM audit_events WHERE action = 'signal.triage' AND entity_id = \(id)")
            var audited: [(String, String?, String?, String)] = []
            for try await row in rows.decode((String, String?, String?, String).self) { audited.append(row) }
            #expect(audited.count == 1)
            #expect(audited.first?.1 == "new" && audited.first?.2 == "acknowledged" && audited.first?.3 == "succeeded")
        }
    }

    @Test func postureNeedsMFAAndIfMatchAndKeepsHistory() async throws {
        try await SitrepHarness.with { client, h in
            let posture = try await client.execute(uri: "/v1/posture", method: .get, headers: .auth(h.tokens.viewer)) { r in
                try r.decode(Posture.self)
            }
            #expect(posture.domains.map(\.domain) == PostureDomain.allCases)
            #expect(posture.domains.allSatisfy { $0.level == .normal && $0.setAt == nil })
            let etag = try await client.execute(uri: "/v1/posture/cyber", method: .get, headers: .auth(h.tokens.viewer)) { r in r.headers[.eTag] }
            let change = buffer(#"{"level":"elevated","rationale":"Phishing wave against payment portal"}"#)
            try await client.execute(uri: "/v1/posture/cyber", method: .put, headers: .auth(h.tokens.admin, json: true, ifMatch: etag), body: change)
            { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(
                uri: "/v1/posture/cyber", method: .put, headers: .auth(h.tokens.executive, json: true, ifMatch: etag), body: change
            ) { r in
                #expect(r.status == .unauthorized)
                #expect(r.problemCode == "auth.step_up_required")
                #expect(r.headers[.wwwAuthenticate]?.contains("insufficient_claims") == true)
            }
            try await client.execute(uri: "/v1/posture/cyber", method: .put, headers: .auth(h.tokens.executiveMFA, json: true), body: change) { r in
                #expect(r.status == .preconditionRequired)
            }
            try await client.execute(
                uri: "/v1/posture/cyber", method: .put, headers: .auth(h.tokens.executiveMFA, json: true, ifMatch: "\"99\""), body: change
            ) { r in
                #expect(r.status == .preconditionFailed)
            }
            try await client.execute(
                uri: "/v1/posture/cyber", method: .put, headers: .auth(h.tokens.executiveMFA, json: true, ifMatch: etag), body: change
            ) { r in
                #expect(r.status == .ok)
                let e = try r.decode(PostureEntry.self)
                #expect(e.level == .elevated && e.setBy == "Exec2" && e.rationale == "Phishing wave against payment portal")
                #expect(r.headers[.eTag] == e.etag && e.etag != etag)
            }
            try await client.execute(uri: "/v1/posture/bogus", method: .get, headers: .auth(h.tokens.viewer)) { r in
                #expect(r.status == .badRequest)
            }
            let history = try await client.execute(uri: "/v1/posture/history?domain=cyber", method: .get, headers: .auth(h.tokens.viewer)) { r in
                try r.decode(PostureHistoryPage.self)
            }
            #expect(history.items.count == 1)
            #expect(history.items.first?.fromLevel == nil && history.items.first?.toLevel == .elevated)
            let empty = try await client.execute(uri: "/v1/posture/history?domain=physical", method: .get, headers: .auth(h.tokens.viewer)) { r in
                try r.decode(PostureHistoryPage.self)
            }
            #expect(empty.items.isEmpty && empty.nextCursor == nil)
            let audit = try await h.db.client.query("SELECT count(*)::int8 FROM audit_events WHERE action = 'posture.set' AND to_state = 'elevated'")
            for try await n in audit.decode(Int64.self) { #expect(n == 1) }
        }
    }

    @Test func dashboardAggregatesInOneRoundTrip() async throws {
        try await SitrepHarness.with { client, h in
            let now = Date()
            let items = [
                signalJSON(
                    sourceId: "D1", category: "security", severity: "critical", publishedAt: WireFormat.formatDateTime(now.addingTimeInterval(-3600))),
                signalJSON(
                    sourceId: "D2", category: "economic", severity: "low", publishedAt: WireFormat.formatDateTime(now.addingTimeInterval(-7200))),
                signalJSON(
                    sourceId: "D3", category: "economic", severity: "low", publishedAt: WireFormat.formatDateTime(now.addingTimeInterval(-3 * 86400))),
                // Either side of the window's start, which falls inside an hour: counted from the
                // signals themselves, not from the per-hour totals.
                signalJSON(
                    sourceId: "D4", category: "health", severity: "medium",
                    publishedAt: WireFormat.formatDateTime(now.addingTimeInterval(-86400 + 120))),
                signalJSON(
                    sourceId: "D5", category: "climate", severity: "high", publishedAt: WireFormat.formatDateTime(now.addingTimeInterval(-86400 - 5))),
            ]
            try await client.execute(uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch(items))) {
                _ in
            }
            try await h.db.client.query(
                """
                INSERT INTO briefings (id, title, briefing_date, status, submitted_by_id, submitted_at, approved_by_id, approved_at)
                VALUES
                  ('0195793d-10c0-7b9a-a4ed-db491c101701', 'Draft today', current_date, 'draft', NULL, NULL, NULL, NULL),
                  ('0195793d-10c0-7b9a-a4ed-db491c101702', 'Approved yesterday', current_date - 1, 'approved', 'admin', now(), 'exec', now())
                """)
            try await h.db.client.query(
                """
                INSERT INTO actions (id, title, owner_id, assigned_by, due_date, priority, status) VALUES
                  ('0195793d-10c0-7b9a-a4ed-db491c101711', 'Late', 'o', 'a', current_date - 2, 'high', 'open'),
                  ('0195793d-10c0-7b9a-a4ed-db491c101712', 'Soon', 'o', 'a', current_date + 3, 'low', 'in_progress'),
                  ('0195793d-10c0-7b9a-a4ed-db491c101713', 'Stuck', 'o', 'a', current_date + 30, 'low', 'blocked'),
                  ('0195793d-10c0-7b9a-a4ed-db491c101714', 'Done late', 'o', 'a', current_date - 9, 'low', 'done')
                """)
            let d = try await client.execute(uri: "/v1/dashboard", method: .get, headers: .auth(h.tokens.admin)) { r in
                #expect(r.status == .ok)
                return try r.decode(Dashboard.self)
            }
            #expect(d.signals.windowHours == 24 && d.signals.total == 3)
            #expect(
                d.signals.bySeverity.critical == 1 && d.signals.bySeverity.low == 1 && d.signals.bySeverity.medium == 1
                    && d.signals.bySeverity.high == 0)
            #expect(d.signals.byCategory.security == 1 && d.signals.byCategory.economic == 1 && d.signals.byCategory.health == 1)
            #expect(d.signals.byCategory.climate == 0)
            #expect(d.signals.byStatus.new == 3)
            #expect(d.posture.count == 6)
            #expect(d.latestBriefing?.title == "Draft today")
            #expect(
                d.actions.open == 1 && d.actions.inProgress == 1 && d.actions.blocked == 1 && d.actions.overdue == 1 && d.actions.dueNext7Days == 1)
            // Viewers only see approved or distributed briefings.
            let v = try await client.execute(uri: "/v1/dashboard", method: .get, headers: .auth(h.tokens.viewer)) { r in try r.decode(Dashboard.self)
            }
            #expect(v.latestBriefing?.title == "Approved yesterday")
        }
    }

    @Test func meHealthAndTheContractDocuments() async throws {
        try await SitrepHarness.with { client, h in
            try await client.execute(uri: "/v1/me", method: .get, headers: .auth(h.tokens.executiveMFA)) { r in
                let me = try r.decode(Me.self)
                #expect(me.roles == [.sitrepExecutive] && me.mfa && !me.isApplication && me.displayName == "Exec2")
                #expect(me.id == "\(me.tenantId):\(me.objectId)")
            }
            try await client.execute(uri: "/v1/me", method: .get, headers: .auth(h.tokens.ingest)) { r in
                let me = try r.decode(Me.self)
                #expect(me.isApplication)
            }
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { r in
                #expect(r.status == .ok, "\(r.text)")
                let health = try r.decode(Health.self)
                #expect(health.checks.map(\.name) == ["postgres", "redis", "migrations"])
            }
            let file = try Data(
                contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../api/openapi.yaml"))
            try await client.execute(uri: "/openapi.yaml", method: .get) { r in
                #expect(r.status == .ok)
                #expect(Data(r.body.readableBytesView) == file, "the served contract must equal the file byte for byte")
            }
            try await client.execute(uri: "/docs", method: .get) { r in
                #expect(r.headers[.contentType] == "text/html; charset=utf-8")
                #expect(r.text.contains("ingestSignals") && r.text.contains("<h1>"))
            }
        }
    }

    /// Problems a handler returns carry the request id and instance like the runtime's own, and
    /// a method the contract does not declare is 405 (found by schemathesis).
    @Test func handlerProblemsCarryTheRequestIdAndUndeclaredMethodsAre405() async throws {
        try await SitrepHarness.with { client, h in
            var headers = HTTPFields.auth(h.tokens.viewer)
            headers[.xRequestID] = "trace-404"
            let id = UUID().uuidString.lowercased()
            let missing = try await client.execute(uri: "/v1/signals/\(id)", method: .get, headers: headers)
            #expect(missing.status == .notFound)
            #expect(
                missing.text.contains(#""requestId":"trace-404""#) && missing.text.contains(#""instance":"/v1/signals/\#(id)""#), "\(missing.text)")
            // NUL cannot be stored by PostgreSQL: refused as the client's error, not a 500.
            let nul = try await client.execute(uri: "/v1/signals?q=a%00b", method: .get, headers: .auth(h.tokens.viewer))
            #expect(nul.status == .badRequest && nul.text.contains("/query/q") && nul.text.contains("NUL"), "\(nul.text)")
            let nulBody = try await client.execute(
                uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true),
                body: buffer(batch([signalJSON(sourceId: "N1", title: "bad\\u0000title")])))
            #expect(nulBody.status == .unprocessableContent && nulBody.text.contains("/body/items/0/title"), "\(nulBody.text)")
            // More failing fields than Problem.errors' maxItems (100): the first 100 are listed and
            // the detail gives the total (found by schemathesis: 499 repeats of one signal).
            let repeats = try await client.execute(
                uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true),
                body: buffer(batch(Array(repeating: signalJSON(sourceId: "R1", title: "again"), count: 150))))
            let problem = try JSONSerialization.jsonObject(with: Data(repeats.text.utf8)) as? [String: Any]
            let listed = (problem?["errors"] as? [Any])?.count
            #expect(repeats.status == .unprocessableContent && listed == 100, "\(repeats.text.prefix(300))")
            #expect(repeats.text.contains("149 fields are invalid (the first 100 are listed)."), "\(repeats.text.prefix(300))")
            let trace = try await client.execute(uri: "/healthz", method: .trace)
            #expect(trace.status == .methodNotAllowed && trace.headers[.allow] == "GET, HEAD")
        }
    }

    @Test func metricsCountEveryOperationAndNeedTheScrapeToken() async throws {
        let tight = ["writes": RedisRateLimiter.Policy(limit: 1, windowSeconds: 60)]
        try await SitrepHarness.with(rateLimits: tight) { client, h in
            for _ in 0..<3 { _ = try await client.execute(uri: "/healthz", method: .get) }
            _ = try await client.execute(uri: "/v1/signals?limit=5", method: .get, headers: .auth(h.tokens.viewer))
            _ = try await client.execute(uri: "/v1/signals?limit=5", method: .get)  // 401
            // The second write in the window is refused by the `writes` policy.
            for _ in 0..<2 {
                _ = try await client.execute(
                    uri: "/v1/posture/cyber", method: .put, headers: .auth(h.tokens.executiveMFA, json: true, ifMatch: "\"x\""),
                    body: buffer(#"{"level":"elevated","reason":"drill"}"#))
            }

            let refused = try await client.execute(uri: "/metrics", method: .get)
            #expect(refused.status == .unauthorized && refused.headers[.wwwAuthenticate] != nil)
            var headers = HTTPFields()
            headers[.authorization] = "Bearer " + SitrepHarness.metricsToken
            let scrape = try await client.execute(uri: "/metrics", method: .get, headers: headers)
            #expect(scrape.status == .ok && scrape.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = scrape.text
            #expect(text.contains(#"sitrep_http_requests_total{operation="getHealth",status="200"} 3"#), "\(text.prefix(3000))")
            #expect(text.contains(#"sitrep_http_requests_total{operation="listSignals",status="200"} 1"#))
            #expect(text.contains(#"sitrep_http_requests_total{operation="listSignals",status="401"} 1"#))
            #expect(text.contains(#"sitrep_http_request_duration_seconds_count{operation="getHealth"} 3"#))
            #expect(text.contains(#"sitrep_http_request_duration_seconds_bucket{operation="getHealth",le="+Inf"} 3"#))
            #expect(text.contains(#"sitrep_rate_limit_rejections_total{policy="writes"} 1"#))
            #expect(text.contains("sitrep_http_requests_in_flight 0"))
            // Tokens never appear in metrics.
            #expect(!text.contains(h.tokens.viewer))
        }
    }
}

/// Readiness follows Redis: 503 naming it while it is down, 200 again once it is back, with no
/// restart of the service. Uses a private redis-server so other suites keep theirs.
@Suite("slice: readiness", .enabled(if: SitrepHarness.isConfigured))
struct ReadinessTests {
    @Test func readinessGoes503WhenRedisStopsAndRecovers() async throws {
        let server = try PrivateRedisServer.make()
        try await server.startAsync()
        defer { server.remove() }
        try await SitrepHarness.with(redisURL: server.url) { client, _ in
            try await client.execute(uri: "/readyz", method: .get) { r in #expect(r.status == .ok, "\(r.text)") }
            try await server.stopAsync()
            try await client.execute(uri: "/readyz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                let p = try r.decode(Problem.self)
                #expect(p.code == "dependency.unavailable")
                #expect(p.detail?.hasPrefix("redis:") == true, "\(p.detail ?? "")")
                #expect(r.headers[.retryAfter] != nil)
            }
            try await server.startAsync()
            try await client.execute(uri: "/readyz", method: .get) { r in #expect(r.status == .ok, "\(r.text)") }
        }
    }
}

/// Conditional GETs: strong ETags on the dashboard, posture, signal lists and signals, and 304
/// with no body while they still match.
@Suite("slice: conditional GETs", .enabled(if: SitrepHarness.isConfigured))
struct ConditionalGetTests {
    @Test func signalsAndListsRevalidate() async throws {
        try await SitrepHarness.with { client, h in
            var id = ""
            try await client.execute(
                uri: "/v1/signals", method: .post, headers: .auth(h.tokens.ingest, json: true), body: buffer(batch([signalJSON(sourceId: "E1")]))
            ) { r in
                id = try r.decode(SignalIngestResult.self).results[0].id.uuidString.lowercased()
            }
            let etag = try await client.execute(uri: "/v1/signals/\(id)", method: .get, headers: .auth(h.tokens.viewer)) { r in r.headers[.eTag] }
            try await client.execute(uri: "/v1/signals/\(id)", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: etag!)) { r in
                #expect(r.status == .notModified)
                #expect(r.headers[.eTag] == etag)
                #expect(r.body.readableBytes == 0)
            }
            try await client.execute(uri: "/v1/signals/\(id)", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: "\"other\", W/\(etag!)")) {
                r in
                #expect(r.status == .notModified)
            }
            let listTag = try await client.execute(uri: "/v1/signals?limit=10", method: .get, headers: .auth(h.tokens.viewer)) { r in
                #expect(r.status == .ok)
                return r.headers[.eTag]
            }
            try await client.execute(uri: "/v1/signals?limit=10", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: listTag!)) { r in
                #expect(r.status == .notModified)
            }
            // A change makes both stale.
            try await client.execute(
                uri: "/v1/signals/\(id)/triage", method: .post, headers: .auth(h.tokens.admin, json: true, ifMatch: etag),
                body: buffer(#"{"status":"escalated"}"#)
            ) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/v1/signals/\(id)", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: etag!)) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.eTag] != etag)
            }
            try await client.execute(uri: "/v1/signals?limit=10", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: listTag!)) { r in
                #expect(r.status == .ok)
            }
        }
    }

    @Test func dashboardAndPostureRevalidate() async throws {
        try await SitrepHarness.with(dashboardTTL: .seconds(60)) { client, h in
            // A draft only staff see, so viewers' aggregate differs from the admins'.
            try await h.db.client.query(
                "INSERT INTO briefings (id, title, briefing_date, status) VALUES ('0195793d-10c0-7b9a-a4ed-db491c101721', 'Draft', current_date, 'draft')"
            )
            let tag = try await client.execute(uri: "/v1/dashboard", method: .get, headers: .auth(h.tokens.admin)) { r in
                #expect(r.status == .ok)
                return r.headers[.eTag]
            }
            try await client.execute(uri: "/v1/dashboard", method: .get, headers: .auth(h.tokens.admin, ifNoneMatch: tag!)) { r in
                #expect(r.status == .notModified)
                #expect(r.headers[.eTag] == tag)
            }
            // HEAD revalidates the same way, and otherwise names the body it leaves out.
            try await client.execute(uri: "/v1/dashboard", method: .head, headers: .auth(h.tokens.admin, ifNoneMatch: tag!)) { r in
                #expect(r.status == .notModified)
                #expect(r.headers[.eTag] == tag)
            }
            let full = try await client.execute(uri: "/v1/dashboard", method: .get, headers: .auth(h.tokens.admin))
            try await client.execute(uri: "/v1/dashboard", method: .head, headers: .auth(h.tokens.admin)) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.eTag] == tag)
                #expect(r.headers[.contentLength] == String(full.body.readableBytes))
                #expect(r.body.readableBytes == 0)
            }
            // Viewers have their own aggregate (approved briefings only), so their own tag.
            try await client.execute(uri: "/v1/dashboard", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: tag!)) { r in
                #expect(r.status == .ok)
            }
            let posture = try await client.execute(uri: "/v1/posture", method: .get, headers: .auth(h.tokens.viewer)) { r in r.headers[.eTag] }
            try await client.execute(uri: "/v1/posture", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: posture!)) { r in
                #expect(r.status == .notModified)
            }
            let domainTag = try await client.execute(uri: "/v1/posture/financial", method: .get, headers: .auth(h.tokens.viewer)) { r in
                r.headers[.eTag]
            }
            try await client.execute(
                uri: "/v1/posture/financial", method: .put, headers: .auth(h.tokens.executiveMFA, json: true, ifMatch: domainTag),
                body: buffer(#"{"level":"high","rationale":"Currency volatility"}"#)
            ) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/v1/posture", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: posture!)) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/v1/posture/history", method: .get, headers: .auth(h.tokens.viewer)) { r in
                let t = r.headers[.eTag]
                #expect(t != nil)
                try await client.execute(uri: "/v1/posture/history", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: t!)) { r2 in
                    #expect(r2.status == .notModified)
                }
            }
        }
    }
}

extension ConditionalGetTests {
    @Test func anUnchangedDashboardKeepsItsTagAcrossRecomputations() async throws {
        try await SitrepHarness.with(dashboardTTL: .zero) { client, h in
            let first = try await client.execute(uri: "/v1/dashboard", method: .get, headers: .auth(h.tokens.admin)) { r in r.headers[.eTag] }
            try await Task.sleep(for: .milliseconds(20))
            // Recomputed (TTL zero) at a later generatedAt, same content: still 304.
            try await client.execute(uri: "/v1/dashboard", method: .get, headers: .auth(h.tokens.admin, ifNoneMatch: first!)) { r in
                #expect(r.status == .notModified)
            }
            try await h.db.client.query(
                "INSERT INTO actions (id, title, owner_id, assigned_by, due_date, priority, status) VALUES ('0195793d-10c0-7b9a-a4ed-db491c101799', 'New', 'o', 'a', current_date, 'low', 'open')"
            )
            try await client.execute(uri: "/v1/dashboard", method: .get, headers: .auth(h.tokens.admin, ifNoneMatch: first!)) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.eTag] != first)
            }
        }
    }
}

/// `x-rate-limit` enforced through the Redis limiter: the window's budget, then 429 with
/// Retry-After, per principal.
@Suite("slice: rate limits", .enabled(if: SitrepHarness.isConfigured))
struct RateLimitTests {
    @Test func ingestBudgetIsPerPrincipalAndAnswers429() async throws {
        let policies: [String: RedisRateLimiter.Policy] = [
            "writes": .init(limit: 100, windowSeconds: 60), "ingest": .init(limit: 2, windowSeconds: 3600),
            "auth": .init(limit: 100, windowSeconds: 60), "webhook": .init(limit: 100, windowSeconds: 60),
        ]
        try await SitrepHarness.with(rateLimits: policies) { client, h in
            // A pipeline identity of its own, so runs of this test never share a window.
            let pem = try DevIssuer.loadOrCreatePrivateKey(at: SitrepHarness.keyPath)
            let token = try await DevIssuer.token(
                privateKeyPEM: pem, roles: ["Sitrep.Ingest"], user: "pipeline-\(UUID().uuidString)", name: nil, mfa: false, app: true)
            for i in 0..<2 {
                try await client.execute(
                    uri: "/v1/signals", method: .post, headers: .auth(token, json: true), body: buffer(batch([signalJSON(sourceId: "R\(i)")]))
                ) { r in
                    #expect(r.status == .ok)
                    // Every answer of a limited operation says how much is left.
                    #expect(r.headers[.rateLimitPolicy] == "\"ingest\";q=2;w=3600")
                    #expect(r.headers[.rateLimit]?.hasPrefix("\"ingest\";r=\(1 - i);t=") == true, "\(r.headers[.rateLimit] ?? "")")
                }
            }
            try await client.execute(
                uri: "/v1/signals", method: .post, headers: .auth(token, json: true), body: buffer(batch([signalJSON(sourceId: "R9")]))
            ) { r in
                #expect(r.status == .tooManyRequests)
                #expect(r.problemCode == "rate_limit.exceeded")
                let retry = Int(r.headers[.retryAfter] ?? "") ?? 0
                // 2 per hour: one request every 1,800 s once the burst is spent.
                #expect((1700...1800).contains(retry), "\(retry)")
                #expect(r.headers[.rateLimitPolicy] == "\"ingest\";q=2;w=3600")
                #expect(r.headers[.rateLimit]?.hasPrefix("\"ingest\";r=0;t=") == true)
            }
            // Reads are not limited, and other principals have their own budget.
            try await client.execute(uri: "/v1/signals", method: .get, headers: .auth(token)) { r in #expect(r.status == .forbidden) }
            let other = try await DevIssuer.token(
                privateKeyPEM: pem, roles: ["Sitrep.Ingest"], user: "pipeline-\(UUID().uuidString)", name: nil, mfa: false, app: true)
            try await client.execute(
                uri: "/v1/signals", method: .post, headers: .auth(other, json: true), body: buffer(batch([signalJSON(sourceId: "R8")]))
            ) { r in
                #expect(r.status == .ok)
            }
            _ = h
        }
    }

    @Test func twoInstancesShareOneBudgetAndRedisDownFailsOpenOrClosedByPolicy() async throws {
        guard let url = SitrepHarness.redisURL else { throw SitrepHarness.RedisNotConfigured() }
        let shared = RedisClient(configuration: try RedisConfiguration(url: url), logger: TestDatabase.logger)
        let policies: [String: RedisRateLimiter.Policy] = ["writes": .init(limit: 4, windowSeconds: 60)]
        let a = RedisRateLimiter(redis: shared, policies: policies)
        let b = RedisRateLimiter(redis: shared, policies: policies)
        let who = "shared-\(UUID().uuidString)"
        var allowed = 0
        for i in 0..<8 where try await (i % 2 == 0 ? a : b).check(policy: "writes", key: who).allowed { allowed += 1 }
        #expect(allowed == 4, "two instances, one budget")
        await shared.shutdown()

        // Redis stopped: ordinary policies limit in memory; fail-closed ones refuse.
        let server = try PrivateRedisServer.make()
        try await server.startAsync()
        defer { server.remove() }
        var config = try RedisConfiguration(url: server.url)
        config.connectTimeout = .milliseconds(500)
        config.commandTimeout = .seconds(1)
        let down = RedisClient(configuration: config, logger: TestDatabase.logger)
        let limiter = RedisRateLimiter(
            redis: down, policies: ["writes": .init(limit: 2, windowSeconds: 60), "auth": .init(limit: 2, windowSeconds: 60, failClosed: true)])
        try await server.stopAsync()
        let local = [
            try await limiter.check(policy: "writes", key: "k"), try await limiter.check(policy: "writes", key: "k"),
            try await limiter.check(policy: "writes", key: "k"),
        ]
        #expect(local.map(\.allowed) == [true, true, false])
        #expect(local[2].retryAfter == 30)
        await #expect(throws: RedisError.self) { _ = try await limiter.check(policy: "auth", key: "k") }
        await down.shutdown()
    }
}
