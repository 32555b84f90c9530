import Auth
import Foundation
import Generated
import HTTPTypes
import Handlers
import HummingbirdTesting
import PostgresNIO
import SitrepRuntime
import Testing

/// The status rules on their own: every (from, to) pair against the table in the spec.
@Suite("actions: workflow")
struct ActionWorkflowTests {
    static let table: [ActionStatus: Set<ActionStatus>] = [
        .open: [.inProgress, .blocked, .done], .inProgress: [.open, .blocked, .done], .blocked: [.open, .inProgress], .done: [],
        .cancelled: [],
    ]

    @Test func everyPairFollowsTheTable() {
        for from in ActionStatus.allCases {
            #expect(ActionWorkflow.isFinal(from) == (from == .done || from == .cancelled))
            for to in ActionStatus.allCases {
                let result = ActionWorkflow.update(from: from, to: to)
                let expected = to == from ? !ActionWorkflow.isFinal(from) : Self.table[from]!.contains(to)
                switch result {
                case .success(let next): #expect(expected && next == to, "\(from) → \(to)")
                case .failure(.invalidTransition(let f, let t, let allowed)):
                    #expect(!expected && f == from && t == to, "\(from) → \(to)")
                    #expect(Set(allowed) == (ActionWorkflow.isFinal(from) ? [] : Self.table[from]!.union([.cancelled])))
                case .failure(let other): Issue.record("unexpected \(other)")
                }
            }
            // Leaving the status alone is allowed unless the action is final.
            if case .success = ActionWorkflow.update(from: from, to: nil) { #expect(!ActionWorkflow.isFinal(from)) }
            #expect((try? ActionWorkflow.cancel(from: from).get()) == (ActionWorkflow.isFinal(from) ? nil : .cancelled))
        }
    }

    @Test func progressNeedsOwnershipOrAPrivilegedRole() {
        let viewer: Set<String> = ["Sitrep.Viewer"]
        #expect((try? ActionWorkflow.addProgress(status: .open, ownerId: "me", actorId: "me", actorRoles: viewer).get()) != nil)
        guard case .failure(.notOwner) = ActionWorkflow.addProgress(status: .open, ownerId: "me", actorId: "you", actorRoles: viewer) else {
            Issue.record("a viewer wrote on someone else's action")
            return
        }
        for role in ["Sitrep.Admin", "Sitrep.Executive"] {
            #expect((try? ActionWorkflow.addProgress(status: .blocked, ownerId: "me", actorId: "you", actorRoles: [role]).get()) != nil)
            guard case .failure(.invalidTransition) = ActionWorkflow.addProgress(status: .done, ownerId: "me", actorId: "you", actorRoles: [role])
            else {
                Issue.record("progress on a final action")
                continue
            }
        }
    }

    @Test func randomWalksNeverLeaveTheTable() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var status = ActionStatus.open
            for _ in 0..<12 {
                let wanted = ActionStatus.allCases.randomElement(using: &rng)!
                let before = status
                if wanted == .cancelled {
                    if case .success(let s) = ActionWorkflow.cancel(from: status) { status = s }
                } else if case .success(let s) = ActionWorkflow.update(from: status, to: wanted) {
                    status = s
                }
                #expect(before == status || Self.table[before]!.union(ActionWorkflow.isFinal(before) ? [] : [.cancelled]).contains(status))
                if ActionWorkflow.isFinal(before) { #expect(status == before) }
            }
        }
    }
}

/// The tracker over HTTP on real PostgreSQL: list filters and pages, updates with If-Match and
/// the status rules, cancel, progress notes with ownership, and exactly once across instances.
@Suite("actions: tracker", .enabled(if: SitrepHarness.isConfigured))
struct ActionTrackerTests {
    static func headers(_ token: String, key: String? = UUID().uuidString, ifMatch: String? = nil) -> HTTPFields {
        var h = HTTPFields.auth(token, json: true, ifMatch: ifMatch)
        if let key { h[HTTPField.Name("Idempotency-Key")!] = key }
        return h
    }

    static func create(
        _ client: any TestClientProtocol, _ token: String, title: String, owner: String = "t:omar", due: String = "2026-12-01",
        priority: String = "high", briefingIds: [String] = [], signalIds: [String] = []
    ) async throws -> Action {
        let links =
            "\"briefingIds\":[\(briefingIds.map { "\"\($0)\"" }.joined(separator: ","))],"
            + "\"signalIds\":[\(signalIds.map { "\"\($0)\"" }.joined(separator: ","))]"
        let body = """
            {"title":"\(title)","ownerId":"\(owner)","ownerName":"Owner \(owner)","dueDate":"\(due)","priority":"\(priority)",\(links)}
            """
        let r = try await client.execute(uri: "/v1/actions", method: .post, headers: headers(token), body: buffer(body))
        #expect(r.status == .created, "\(r.text)")
        return try r.decode(Action.self)
    }

    static func patch(
        _ client: any TestClientProtocol, _ token: String, _ action: Action, _ body: String, ifMatch: String? = nil
    ) async throws -> TestResponse {
        try await client.execute(
            uri: "/v1/actions/\(action.id.lowercasedString)", method: .patch, headers: headers(token, ifMatch: ifMatch ?? action.etag),
            body: buffer(body))
    }

    static func count(_ sql: String, _ h: SitrepHarness) async throws -> Int {
        var n = -1
        for try await v in try await h.db.client.query(PostgresQuery(unsafeSQL: sql)).decode(Int.self) { n = v }
        return n
    }

    @Test func updatesFollowTheStatusRulesWithIfMatchAndAudit() async throws {
        try await SitrepHarness.with { client, h in
            let admin = h.tokens.admin
            var a = try await Self.create(client, admin, title: "Draft the freight memo")
            // If-Match: missing → 428, stale → 412.
            var noMatch = Self.headers(admin)
            noMatch[.ifMatch] = nil
            let missing = try await client.execute(
                uri: "/v1/actions/\(a.id.lowercasedString)", method: .patch, headers: noMatch, body: buffer(#"{"status":"in_progress"}"#))
            #expect(missing.status == .preconditionRequired)
            #expect(try await Self.patch(client, admin, a, #"{"status":"in_progress"}"#, ifMatch: "\"a-99\"").status == .preconditionFailed)
            // Empty patch, owner id without a name: 422 naming the field.
            let empty = try await Self.patch(client, admin, a, "{}")
            #expect(empty.status == .unprocessableContent && empty.text.contains("/body"))
            let half = try await Self.patch(client, admin, a, #"{"ownerId":"t:layla"}"#)
            #expect(half.status == .unprocessableContent && half.text.contains("/body/ownerName"))
            // Viewers cannot update.
            #expect(try await Self.patch(client, h.tokens.viewer, a, #"{"status":"in_progress"}"#).status == .forbidden)

            // open → in_progress → blocked → in_progress → done, every field kept, new ETag each time.
            for step in ["in_progress", "blocked", "in_progress"] {
                let r = try await Self.patch(client, admin, a, "{\"status\":\"\(step)\"}")
                #expect(r.status == .ok, "\(step): \(r.text)")
                let next = try r.decode(Action.self)
                #expect(next.status.rawValue == step && next.etag != a.etag && r.headers[.eTag] == next.etag)
                a = next
            }
            let edit = try await Self.patch(
                client, admin, a,
                #"{"title":"Freight memo v2","description":"","ownerId":"t:layla","ownerName":"Layla","dueDate":"2026-12-24","priority":"low"}"#)
            #expect(edit.status == .ok, "\(edit.text)")
            a = try edit.decode(Action.self)
            #expect(a.title == "Freight memo v2" && a.ownerId == "t:layla" && a.ownerName == "Layla" && a.dueDate.description == "2026-12-24")
            #expect(a.priority == .low && a.status == .inProgress && a.description == nil)
            let done = try await Self.patch(client, admin, a, #"{"status":"done"}"#)
            a = try done.decode(Action.self)
            #expect(a.status == .done && a.progress == 100 && a.completedAt != nil)

            // Final: every further update or cancel is a 409 naming the state, and audited as refused.
            let again = try await Self.patch(client, admin, a, #"{"title":"reopen"}"#)
            #expect(again.status == .conflict && again.problemCode == "action.invalid_transition" && again.text.contains("final"))
            let reopen = try await Self.patch(client, admin, a, #"{"status":"open"}"#)
            #expect(reopen.status == .conflict)
            let cancel = try await client.execute(
                uri: "/v1/actions/\(a.id.lowercasedString)/cancel", method: .post, headers: Self.headers(admin, ifMatch: a.etag),
                body: buffer(#"{"reason":"no longer needed"}"#))
            #expect(cancel.status == .conflict && cancel.problemCode == "action.invalid_transition")
            let id = a.id.lowercasedString
            #expect(try await Self.count("SELECT count(*)::int8 FROM audit_events WHERE entity_id = '\(id)' AND outcome = 'succeeded'", h) == 6)
            #expect(try await Self.count("SELECT count(*)::int8 FROM audit_events WHERE entity_id = '\(id)' AND outcome = 'refused'", h) == 3)
            let details = try await h.db.client.query(
                "SELECT details::text FROM audit_events WHERE entity_id = \(id) AND action = 'action.update' AND details ? 'ownerId'")
            for try await text in details.decode(String.self) { #expect(text.contains("t:layla") && text.contains("2026-12-24")) }

            // Illegal moves from a live state: blocked → done, and cancelled through update.
            var b = try await Self.create(client, admin, title: "Second")
            b = try await Self.patch(client, admin, b, #"{"status":"blocked"}"#).decode(Action.self)
            let skip = try await Self.patch(client, admin, b, #"{"status":"done"}"#)
            #expect(skip.status == .conflict && skip.text.contains("open, in_progress, cancelled (through cancelAction)"))
            #expect(try await Self.patch(client, admin, b, #"{"status":"cancelled"}"#).status == .conflict)
            // And the database refuses it too, even from psql.
            await #expect(throws: PSQLError.self) {
                try await h.db.client.query("UPDATE actions SET status = 'done' WHERE id = \(b.id)")
            }
            await #expect(throws: PSQLError.self) {
                try await h.db.client.query("DELETE FROM actions WHERE id = \(b.id)")
            }
            // Unknown id: 404.
            let ghost = try await client.execute(
                uri: "/v1/actions/\(UUID().uuidString.lowercased())", method: .patch, headers: Self.headers(admin, ifMatch: "*"),
                body: buffer(#"{"status":"done"}"#))
            #expect(ghost.status == .notFound)
        }
    }

    @Test func cancelNeedsAReasonAndIsFinalAndReplayed() async throws {
        try await SitrepHarness.with { client, h in
            let exec = h.tokens.executive
            let a = try await Self.create(client, h.tokens.admin, title: "To cancel")
            let uri = "/v1/actions/\(a.id.lowercasedString)/cancel"
            let blank = try await client.execute(
                uri: uri, method: .post, headers: Self.headers(exec, ifMatch: a.etag), body: buffer(#"{"reason":"  "}"#))
            #expect(blank.status == .unprocessableContent)
            #expect(
                try await client.execute(uri: uri, method: .post, headers: Self.headers(exec, ifMatch: a.etag), body: buffer("{}")).status
                    == .unprocessableContent)
            let key = "cancel-1"
            let first = try await client.execute(
                uri: uri, method: .post, headers: Self.headers(exec, key: key, ifMatch: a.etag), body: buffer(#"{"reason":"Superseded"}"#))
            #expect(first.status == .ok)
            let cancelled = try first.decode(Action.self)
            #expect(cancelled.status == .cancelled && cancelled.cancelReason == "Superseded" && cancelled.completedAt == nil)
            // A retry with the same key replays the answer (the ETag it sent is stale by now).
            let retry = try await client.execute(
                uri: uri, method: .post, headers: Self.headers(exec, key: key, ifMatch: a.etag), body: buffer(#"{"reason":"Superseded"}"#))
            #expect(retry.status == .ok && retry.text == first.text && retry.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            #expect(try await Self.count("SELECT count(*)::int8 FROM audit_events WHERE action = 'action.cancel' AND reason = 'Superseded'", h) == 1)
            let twice = try await client.execute(
                uri: uri, method: .post, headers: Self.headers(exec, ifMatch: cancelled.etag), body: buffer(#"{"reason":"again"}"#))
            #expect(twice.status == .conflict)
        }
    }

    @Test func progressNotesAreAppendOnlyOwnedAndPaged() async throws {
        try await SitrepHarness.with { client, h in
            // The viewer's principal id, as the token names it.
            let me = try await client.execute(uri: "/v1/me", method: .get, headers: .auth(h.tokens.viewer)).decode(Me.self)
            let mine = try await Self.create(client, h.tokens.admin, title: "Viewer's own", owner: me.id)
            let theirs = try await Self.create(client, h.tokens.admin, title: "Someone else's")
            let note = #"{"note":"Quotes collected","progress":40}"#
            let own = try await client.execute(
                uri: "/v1/actions/\(mine.id.lowercasedString)/updates", method: .post, headers: Self.headers(h.tokens.viewer), body: buffer(note))
            #expect(own.status == .created, "\(own.text)")
            let update = try own.decode(ActionUpdate.self)
            #expect(update.progress == 40 && update.authorId == me.id && update.note == "Quotes collected")
            #expect(own.headers[.location] == "/v1/actions/\(mine.id.lowercasedString)/updates/\(update.id.lowercasedString)")
            let after = try await client.execute(uri: "/v1/actions/\(mine.id.lowercasedString)", method: .get, headers: .auth(h.tokens.viewer))
                .decode(Action.self)
            #expect(after.progress == 40 && after.etag != mine.etag)

            let other = try await client.execute(
                uri: "/v1/actions/\(theirs.id.lowercasedString)/updates", method: .post, headers: Self.headers(h.tokens.viewer), body: buffer(note))
            #expect(other.status == .forbidden && other.problemCode == "action.not_owner")
            #expect(try await Self.count("SELECT count(*)::int8 FROM audit_events WHERE action = 'action.progress' AND outcome = 'refused'", h) == 1)

            // Admins write on anyone's; a note without progress leaves the percentage alone.
            for i in 0..<5 {
                let r = try await client.execute(
                    uri: "/v1/actions/\(mine.id.lowercasedString)/updates", method: .post, headers: Self.headers(h.tokens.admin),
                    body: buffer("{\"note\":\"note \(i)\"}"))
                #expect(r.status == .created)
            }
            let still = try await client.execute(uri: "/v1/actions/\(mine.id.lowercasedString)", method: .get, headers: .auth(h.tokens.viewer))
                .decode(Action.self)
            #expect(still.progress == 40)

            // Newest first, two per page, no gaps or repeats.
            var seen: [String] = []
            var cursor: String?
            repeat {
                let q = "/v1/actions/\(mine.id.lowercasedString)/updates?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await client.execute(uri: q, method: .get, headers: .auth(h.tokens.viewer)).decode(ActionUpdatePage.self)
                seen += page.items.map(\.note)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(seen == ["note 4", "note 3", "note 2", "note 1", "note 0", "Quotes collected"])

            let one = try await client.execute(
                uri: "/v1/actions/\(mine.id.lowercasedString)/updates/\(update.id.lowercasedString)", method: .get, headers: .auth(h.tokens.viewer))
            #expect(one.status == .ok)
            #expect(try one.decode(ActionUpdate.self) == update)
            let wrongParent = try await client.execute(
                uri: "/v1/actions/\(theirs.id.lowercasedString)/updates/\(update.id.lowercasedString)", method: .get, headers: .auth(h.tokens.viewer))
            #expect(wrongParent.status == .notFound)
            let noAction = try await client.execute(
                uri: "/v1/actions/\(UUID().uuidString.lowercased())/updates", method: .get, headers: .auth(h.tokens.viewer))
            #expect(noAction.status == .notFound)
            let blank = try await client.execute(
                uri: "/v1/actions/\(mine.id.lowercasedString)/updates", method: .post, headers: Self.headers(h.tokens.admin),
                body: buffer(#"{"note":" "}"#))
            #expect(blank.status == .unprocessableContent)
            let tooMuch = try await client.execute(
                uri: "/v1/actions/\(mine.id.lowercasedString)/updates", method: .post, headers: Self.headers(h.tokens.admin),
                body: buffer(#"{"note":"x","progress":101}"#))
            #expect(tooMuch.status == .unprocessableContent)

            // Append-only underneath, and none on a final action.
            await #expect(throws: PSQLError.self) { try await h.db.client.query("UPDATE action_updates SET note = 'x'") }
            await #expect(throws: PSQLError.self) { try await h.db.client.query("DELETE FROM action_updates") }
            let done = try await Self.patch(client, h.tokens.admin, still, #"{"status":"done"}"#).decode(Action.self)
            let late = try await client.execute(
                uri: "/v1/actions/\(done.id.lowercasedString)/updates", method: .post, headers: Self.headers(h.tokens.viewer), body: buffer(note))
            #expect(late.status == .conflict && late.problemCode == "action.invalid_transition")
        }
    }

    @Test func listFiltersAndKeysetPages() async throws {
        try await SitrepHarness.with { client, h in
            let admin = h.tokens.admin
            let me = try await client.execute(uri: "/v1/me", method: .get, headers: .auth(admin)).decode(Me.self)
            let briefing = UUID().uuidString.lowercased()
            let signal = UUID().uuidString.lowercased()
            _ = try await Self.create(client, admin, title: "Overdue", owner: me.id, due: "2020-01-01", priority: "critical")
            let later = try await Self.create(client, admin, title: "Later", due: "2030-06-01", priority: "low", briefingIds: [briefing])
            let soon = try await Self.create(client, admin, title: "Soon", due: "2029-01-01", priority: "medium", signalIds: [signal])
            let oldDone = try await Self.create(client, admin, title: "Old but done", due: "2020-02-01")
            _ = try await Self.patch(client, admin, oldDone, #"{"status":"done"}"#)
            _ = try await Self.patch(client, admin, soon, #"{"status":"blocked"}"#)

            func titles(_ query: String) async throws -> [String] {
                let r = try await client.execute(uri: "/v1/actions" + query, method: .get, headers: .auth(h.tokens.viewer))
                #expect(r.status == .ok, "\(query): \(r.text)")
                return try r.decode(ActionPage.self).items.map(\.title)
            }
            #expect(try await titles("") == ["Overdue", "Old but done", "Soon", "Later"])
            #expect(try await titles("?overdue=true") == ["Overdue"])
            #expect(try await titles("?overdue=false") == ["Old but done", "Soon", "Later"])
            #expect(try await titles("?status=blocked&status=done") == ["Old but done", "Soon"])
            #expect(try await titles("?priority=low&priority=critical") == ["Overdue", "Later"])
            #expect(try await titles("?dueAfter=2029-01-01&dueBefore=2030-06-01") == ["Soon", "Later"])
            #expect(try await titles("?briefingId=\(briefing)") == ["Later"])
            #expect(try await titles("?signalId=\(signal)") == ["Soon"])
            #expect(try await titles("?owner=\(me.id.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)") == ["Overdue"])
            let mineAsAdmin = try await client.execute(uri: "/v1/actions?owner=me", method: .get, headers: .auth(admin)).decode(ActionPage.self)
            #expect(mineAsAdmin.items.map(\.title) == ["Overdue"] && mineAsAdmin.items[0].overdue)
            #expect(try await titles("?owner=me") == [])
            _ = later

            // Bad filters and cursors: 400 problems naming the parameter.
            for bad in ["?status=paused", "?dueAfter=yesterday", "?overdue=maybe", "?cursor=nope", "?limit=0"] {
                let r = try await client.execute(uri: "/v1/actions" + bad, method: .get, headers: .auth(h.tokens.viewer))
                #expect(r.status == .badRequest, "\(bad)")
            }

            // 60 more on a few due days: pages of 7 walk them all once, in (due, id) order.
            for i in 0..<60 { _ = try await Self.create(client, admin, title: "Bulk \(i)", due: "2027-0\(1 + i % 3)-15") }
            var all: [Action] = []
            var cursor: String?
            repeat {
                let page = try await client.execute(
                    uri: "/v1/actions?limit=7" + (cursor.map { "&cursor=\($0)" } ?? ""), method: .get, headers: .auth(h.tokens.viewer)
                ).decode(ActionPage.self)
                all += page.items
                cursor = page.nextCursor
            } while cursor != nil
            #expect(all.count == 64 && Set(all.map(\.id)).count == 64)
            let keys = all.map { "\($0.dueDate.description) \($0.id.lowercasedString)" }
            #expect(keys == keys.sorted())
        }
    }

    @Test func oneHundredIdenticalPostsOnTwoInstancesMakeOneActionAndExpiredKeysActAgain() async throws {
        try await SitrepHarness.instances(2) { clients, h in
            let body = #"{"title":"Exactly once","ownerId":"t:omar","ownerName":"Omar","dueDate":"2026-12-01","priority":"high"}"#
            let token = h.tokens.admin
            let answers = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String, String?).self) { group in
                for i in 0..<100 {
                    let client = clients[i % 2]
                    group.addTask {
                        let r = try await client.execute(
                            uri: "/v1/actions", method: .post, headers: Self.headers(token, key: "double-tap"), body: buffer(body))
                        return (r.status, r.text, r.headers[.location])
                    }
                }
                var out: [(HTTPResponse.Status, String, String?)] = []
                for try await a in group { out.append(a) }
                return out
            }
            #expect(answers.allSatisfy { $0.0 == .created }, "\(Set(answers.map(\.0.code)))")
            #expect(Set(answers.map(\.1)).count == 1 && Set(answers.map(\.2)).count == 1, "every answer identical")
            #expect(try await Self.count("SELECT count(*)::int8 FROM actions WHERE title = 'Exactly once'", h) == 1)

            // After the key expires, the same request is a new effect.
            try await h.db.client.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
            let fresh = try await clients[1].execute(
                uri: "/v1/actions", method: .post, headers: Self.headers(token, key: "double-tap"), body: buffer(body))
            #expect(fresh.status == .created && fresh.headers[HTTPField.Name("Idempotent-Replayed")!] == nil)
            #expect(try await Self.count("SELECT count(*)::int8 FROM actions WHERE title = 'Exactly once'", h) == 2)
        }
    }

    /// `x-rate-limit: writes` over HTTP on two instances sharing one Redis: one budget, the IETF
    /// headers on every answer, 429 with Retry-After past it; with Redis stopped, writes are
    /// limited per instance (fail open) and sign-in is refused (fail closed).
    @Test func twoInstancesShareOneWriteBudgetAndRedisDownFailsOpenOrClosed() async throws {
        let server = try PrivateRedisServer.make()
        try await server.startAsync()
        defer { server.remove() }
        let policies: [String: RedisRateLimiter.Policy] = [
            "writes": .init(limit: 4, windowSeconds: 60), "ingest": .init(limit: 100, windowSeconds: 60),
            "messaging": .init(limit: 100, windowSeconds: 60, failClosed: true), "auth": .init(limit: 100, windowSeconds: 60, failClosed: true),
            "webhook": .init(limit: 100, windowSeconds: 60),
        ]
        try await SitrepHarness.instances(2, rateLimits: policies, redisURL: server.url) { clients, h in
            let pem = try DevIssuer.loadOrCreatePrivateKey(at: SitrepHarness.keyPath)
            func token() async throws -> String {
                try await DevIssuer.token(privateKeyPEM: pem, roles: ["Sitrep.Admin"], user: "rl-\(UUID())", name: "RL", mfa: false, app: false)
            }
            let body = #"{"title":"Budgeted","ownerId":"t:o","ownerName":"O","dueDate":"2026-12-01","priority":"low"}"#
            let admin = try await token()
            var statuses: [Int] = []
            for i in 0..<6 {
                let r = try await clients[i % 2].execute(uri: "/v1/actions", method: .post, headers: Self.headers(admin), body: buffer(body))
                statuses.append(Int(r.status.code))
                #expect(r.headers[.rateLimitPolicy] == "\"writes\";q=4;w=60", "\(r.headers)")
                let remaining = r.headers[.rateLimit].flatMap { $0.split(separator: ";").first { $0.hasPrefix("r=") } }
                #expect(remaining == "r=\(max(0, 3 - i))", "\(i): \(r.headers[.rateLimit] ?? "none")")
                if r.status == .tooManyRequests {
                    #expect(r.problemCode == "rate_limit.exceeded" && Int(r.headers[.retryAfter] ?? "") ?? 0 > 0)
                }
            }
            #expect(statuses == [201, 201, 201, 201, 429, 429], "one budget across both instances")

            try await server.stopAsync()
            let other = try await token()
            let open = try await clients[1].execute(uri: "/v1/actions", method: .post, headers: Self.headers(other), body: buffer(body))
            #expect(open.status == .created && open.headers[.rateLimitPolicy] == "\"writes\";q=4;w=60", "writes fail open: \(open.text)")
            let login = try await clients[0].execute(uri: "/v1/auth/login", method: .get)
            #expect(login.status == .serviceUnavailable && login.problemCode == "dependency.unavailable", "sign-in fails closed: \(login.text)")
            _ = h
        }
    }
}
