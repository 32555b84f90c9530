import Foundation
import Generated
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import SitrepRuntime
import Testing

/// `POST /v1/actions` is `x-idempotency: required`: a slow mobile connection retrying (or a
/// double tap) never creates a second action.
@Suite("actions: exactly-once create", .enabled(if: SitrepHarness.isConfigured))
struct ActionTests {
    static let body = """
        {"title":"Brief the minister on Red Sea exposure","ownerId":"t:omar","ownerName":"Omar Haddad","dueDate":"2026-12-01",
        "priority":"high"}
        """

    static func headers(_ token: String, key: String?) -> HTTPFields {
        var h = HTTPFields.auth(token, json: true)
        if let key { h[HTTPField.Name("Idempotency-Key")!] = key }
        return h
    }

    @Test func fortyConcurrentIdenticalPostsMakeOneActionAndOneAnswer() async throws {
        try await SitrepHarness.with { client, h in
            let token = h.tokens.admin
            let responses = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String, Bool).self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        let r = try await client.execute(
                            uri: "/v1/actions", method: .post, headers: Self.headers(token, key: "tap-1"), body: buffer(Self.body))
                        return (r.status, r.text, r.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
                    }
                }
                var all: [(HTTPResponse.Status, String, Bool)] = []
                for try await x in group { all.append(x) }
                return all
            }
            #expect(responses.allSatisfy { $0.0 == .created }, "\(responses.map(\.0))")
            #expect(Set(responses.map(\.1)).count == 1, "every answer is the same action")
            #expect(responses.filter { !$0.2 }.count == 1, "exactly one answer was not a replay")
            let rows = try await h.db.client.query("SELECT count(*)::int8 FROM actions WHERE title LIKE 'Brief the minister%'")
            for try await n in rows.decode(Int.self) { #expect(n == 1) }
            let audit = try await h.db.client.query("SELECT count(*)::int8 FROM audit_events WHERE action = 'action.create'")
            for try await n in audit.decode(Int.self) { #expect(n == 1) }

            let created = try JSONParser.parse(Array(responses[0].1.utf8))
            guard case .object(let o) = created, case .string(let id)? = o["id"] else {
                Issue.record("no id")
                return
            }
            let action = try await client.execute(uri: "/v1/actions/\(id)", method: .get, headers: .auth(h.tokens.viewer)).decode(Action.self)
            #expect(action.status == .open && action.ownerName == "Omar Haddad" && action.assignedByName == "Admin" && !action.overdue)

            // Same key, other body: 422. No key: 400. Bad body: 422, not remembered, so the corrected retry works.
            let other = Self.body.replacingOccurrences(of: "high", with: "low")
            let reused = try await client.execute(uri: "/v1/actions", method: .post, headers: Self.headers(token, key: "tap-1"), body: buffer(other))
            #expect(reused.status == .unprocessableContent)
            #expect(reused.problemCode == "idempotency.key_reused")
            let noKey = try await client.execute(uri: "/v1/actions", method: .post, headers: Self.headers(token, key: nil), body: buffer(Self.body))
            #expect(noKey.status == .badRequest)
            let bad = Self.body.replacingOccurrences(of: "\"high\"", with: "\"urgent\"")
            #expect(
                try await client.execute(uri: "/v1/actions", method: .post, headers: Self.headers(token, key: "tap-2"), body: buffer(bad)).status
                    == .unprocessableContent)
            #expect(
                try await client.execute(uri: "/v1/actions", method: .post, headers: Self.headers(token, key: "tap-2"), body: buffer(other)).status
                    == .created)
            // Keys are per principal: another user's same key is their own action.
            #expect(
                try await client.execute(
                    uri: "/v1/actions", method: .post, headers: Self.headers(h.tokens.executive, key: "tap-1"), body: buffer(Self.body)
                ).status == .created)
        }
    }
}
