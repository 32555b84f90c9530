import Foundation
import Generated
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import SitrepRuntime
import Testing

/// Recipients, and distribution of an approved briefing into the delivery outbox.
@Suite("recipients and distribution", .enabled(if: SitrepHarness.isConfigured))
struct DistributionTests {
    static func headers(_ token: String, key: String? = UUID().uuidString, ifMatch: String? = nil) -> HTTPFields {
        var h = HTTPFields.auth(token, json: true, ifMatch: ifMatch)
        if let key { h[HTTPField.Name("Idempotency-Key")!] = key }
        return h
    }

    static func recipientJSON(
        _ name: String, phone: String, email: String? = nil, language: String = "en", channels: [String] = ["whatsapp", "sms"],
        active: Bool? = nil
    ) -> String {
        let list = channels.map { "\"\($0)\"" }.joined(separator: ",")
        return "{\"name\":\"\(name)\",\"title\":null,\"phone\":\"\(phone)\",\"email\":\(email.map { "\"\($0)\"" } ?? "null"),"
            + "\"language\":\"\(language)\",\"channels\":[\(list)]" + (active.map { ",\"active\":\($0)" } ?? "") + "}"
    }

    static func create(_ client: any TestClientProtocol, _ token: String, _ json: String) async throws -> TestResponse {
        try await client.execute(uri: "/v1/recipients", method: .post, headers: .auth(token, json: true), body: buffer(json))
    }

    static func count(_ sql: String, _ h: SitrepHarness) async throws -> Int {
        var n = -1
        for try await v in try await h.db.client.query(PostgresQuery(unsafeSQL: sql)).decode(Int.self) { n = v }
        return n
    }

    /// An approved briefing, written directly (the approval workflow has its own tests).
    static func approvedBriefing(_ h: SitrepHarness, status: String = "approved") async throws -> String {
        let id = UUID().uuidString.lowercased()
        try await h.db.client.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO briefings (id, title, briefing_date, status, submitted_by_id, submitted_at, approved_by_id, approved_at, content_hash)
                    VALUES ('\(id)', 'Daily briefing', current_date, '\(status)', 'admin', now(),
                            \(status == "approved" ? "'exec', now()" : "NULL, NULL"), 'abc')
                    """))
        return id
    }

    @Test func recipientsAreValidatedUniqueAndNeverErased() async throws {
        try await SitrepHarness.with { client, h in
            let admin = h.tokens.admin
            let made = try await Self.create(
                client, admin,
                Self.recipientJSON("Omar", phone: "+971501234567", email: "omar@example.gov", channels: ["email", "whatsapp", "email"]))
            #expect(made.status == .created, "\(made.text)")
            let omar = try made.decode(Recipient.self)
            #expect(omar.channels == [.whatsapp, .email] && omar.active && made.headers[.eTag] == omar.etag)
            #expect(made.headers[.location] == "/v1/recipients/\(omar.id.lowercasedString)")

            // Rules: e-mail needed for the e-mail channel; E.164 phones; one recipient per phone.
            let noEmail = try await Self.create(client, admin, Self.recipientJSON("X", phone: "+971500000001", channels: ["email"]))
            #expect(noEmail.status == .unprocessableContent && noEmail.text.contains("/body/email"))
            let badPhone = try await Self.create(client, admin, Self.recipientJSON("X", phone: "0501234567"))
            #expect(badPhone.status == .unprocessableContent && badPhone.text.contains("/body/phone"))
            let taken = try await Self.create(client, admin, Self.recipientJSON("Other", phone: "+971501234567"))
            #expect(taken.status == .conflict && taken.problemCode == "recipient.phone_taken")
            #expect(try await client.execute(uri: "/v1/recipients", method: .get, headers: .auth(h.tokens.viewer)).status == .forbidden)

            let layla = try await Self.create(client, admin, Self.recipientJSON("Layla", phone: "+971509999999", language: "ar"))
                .decode(Recipient.self)
            // Update: If-Match required and checked; the phone stays unique; every field replaced.
            let uri = "/v1/recipients/\(layla.id.lowercasedString)"
            let full = Self.recipientJSON(
                "Layla Nasser", phone: "+971509999998", email: "l@example.gov", language: "ar", channels: ["sms"], active: true)
            #expect(
                try await client.execute(uri: uri, method: .put, headers: .auth(admin, json: true), body: buffer(full)).status
                    == .preconditionRequired)
            #expect(
                try await client.execute(uri: uri, method: .put, headers: .auth(admin, json: true, ifMatch: "\"r-9\""), body: buffer(full)).status
                    == .preconditionFailed)
            let clash = Self.recipientJSON("Layla", phone: "+971501234567", language: "ar", active: true)
            let clashed = try await client.execute(
                uri: uri, method: .put, headers: .auth(admin, json: true, ifMatch: layla.etag), body: buffer(clash))
            #expect(clashed.status == .conflict && clashed.problemCode == "recipient.phone_taken")
            let updated = try await client.execute(uri: uri, method: .put, headers: .auth(admin, json: true, ifMatch: layla.etag), body: buffer(full))
            #expect(updated.status == .ok, "\(updated.text)")
            let l2 = try updated.decode(Recipient.self)
            #expect(l2.name == "Layla Nasser" && l2.phone == "+971509999998" && l2.channels == [.sms] && l2.etag != layla.etag)

            // Deactivate: 204, again a no-op 204; still readable; reactivated by update.
            let off = try await client.execute(uri: uri, method: .delete, headers: .auth(admin, ifMatch: l2.etag))
            #expect(off.status == .noContent)
            let offAgain = try await client.execute(uri: uri, method: .delete, headers: .auth(admin, ifMatch: off.headers[.eTag]))
            #expect(offAgain.status == .noContent && offAgain.headers[.eTag] == off.headers[.eTag])
            let l3 = try await client.execute(uri: uri, method: .get, headers: .auth(h.tokens.executive)).decode(Recipient.self)
            #expect(!l3.active)
            #expect(try await client.execute(uri: "/v1/recipients/\(UUID().uuidString)", method: .get, headers: .auth(admin)).status == .notFound)

            // List: by name, filters, pages.
            func names(_ q: String) async throws -> [String] {
                try await client.execute(uri: "/v1/recipients" + q, method: .get, headers: .auth(admin)).decode(RecipientPage.self).items.map(\.name)
            }
            #expect(try await names("") == ["Layla Nasser", "Omar"])
            #expect(try await names("?active=true") == ["Omar"])
            #expect(try await names("?active=false&language=ar") == ["Layla Nasser"])
            let first = try await client.execute(uri: "/v1/recipients?limit=1", method: .get, headers: .auth(admin)).decode(RecipientPage.self)
            #expect(try await names("?limit=1&cursor=\(first.nextCursor ?? "")") == ["Omar"])

            #expect(try await Self.count("SELECT count(*)::int8 FROM audit_events WHERE entity_type = 'recipient'", h) == 4)
            await #expect(throws: PSQLError.self) { try await h.db.client.query("UPDATE recipients SET phone = '12345'") }
        }
    }

    @Test func distributionQueuesOneDeliveryPerActiveRecipientExactlyOnce() async throws {
        try await SitrepHarness.with { client, h in
            let admin = h.tokens.admin
            let briefing = try await Self.approvedBriefing(h)
            let uri = "/v1/briefings/\(briefing)/distribute"
            // Nobody to send to: 422, and the briefing stays approved.
            let nobody = try await client.execute(uri: uri, method: .post, headers: Self.headers(admin))
            #expect(nobody.status == .unprocessableContent, "\(nobody.text)")
            #expect(try await Self.count("SELECT count(*)::int8 FROM briefings WHERE status = 'approved'", h) == 1)

            for (i, name) in ["Zainab", "Ahmed", "Mona"].enumerated() {
                _ = try await Self.create(client, admin, Self.recipientJSON(name, phone: "+97150000000\(i)", email: "\(name)@example.gov"))
            }
            let gone = try await Self.create(client, admin, Self.recipientJSON("Inactive", phone: "+971500000009")).decode(Recipient.self)
            _ = try await client.execute(
                uri: "/v1/recipients/\(gone.id.lowercasedString)", method: .delete, headers: .auth(admin, ifMatch: gone.etag))
            #expect(try await client.execute(uri: uri, method: .post, headers: Self.headers(h.tokens.viewer)).status == .forbidden)

            // Ten racing distributions with different keys: one wins, the rest are 409; one set of deliveries.
            let exec = h.tokens.executive
            let statuses = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for i in 0..<10 {
                    group.addTask {
                        let r = try await client.execute(uri: uri, method: .post, headers: Self.headers(i % 2 == 0 ? admin : exec, key: "race-\(i)"))
                        return (Int(r.status.code), r.text)
                    }
                }
                var out: [(Int, String)] = []
                for try await s in group { out.append(s) }
                return out
            }
            #expect(statuses.filter { $0.0 == 202 }.count == 1 && statuses.filter { $0.0 == 409 }.count == 9, "\(statuses.map(\.0))")
            let winner = statuses.first { $0.0 == 202 }!.1
            #expect(winner.contains("\"deliveryCount\":3") && winner.contains("\"status\":\"distributed\""))
            #expect(try await Self.count("SELECT count(*)::int8 FROM deliveries WHERE briefing_id = '\(briefing)'", h) == 3)
            #expect(
                try await Self.count(
                    "SELECT count(*)::int8 FROM audit_events WHERE action = 'briefing.distribute' AND outcome = 'succeeded' AND entity_id = '\(briefing)'",
                    h) == 1)
            #expect(
                try await Self.count("SELECT count(*)::int8 FROM audit_events WHERE action = 'briefing.distribute' AND outcome = 'refused'", h) == 9)
            let conflict = statuses.first { $0.0 == 409 }!.1
            #expect(conflict.contains("briefing.invalid_transition"))

            // The winner's retry replays the 202 (same key, same caller).
            let winnerIndex = statuses.firstIndex { $0.0 == 202 }!
            _ = winnerIndex

            // Who has it: ordered by name, each queued with no attempt yet; filters and pages.
            let page = try await client.execute(uri: "/v1/briefings/\(briefing)/deliveries", method: .get, headers: .auth(exec))
                .decode(DeliveryPage.self)
            #expect(page.items.map(\.recipientName) == ["Ahmed", "Mona", "Zainab"])
            #expect(page.items.allSatisfy { $0.status == .queued && $0.channel == nil && $0.attempts.isEmpty && $0.completedAt == nil })
            let two = try await client.execute(uri: "/v1/briefings/\(briefing)/deliveries?limit=2", method: .get, headers: .auth(exec))
                .decode(DeliveryPage.self)
            let rest = try await client.execute(
                uri: "/v1/briefings/\(briefing)/deliveries?limit=2&cursor=\(two.nextCursor ?? "")", method: .get, headers: .auth(exec)
            ).decode(DeliveryPage.self)
            #expect(two.items.count == 2 && rest.items.map(\.recipientName) == ["Zainab"] && rest.nextCursor == nil)

            // Attempts appear on the delivery, oldest first.
            let d = page.items[0]
            try await h.db.client.query(
                """
                INSERT INTO delivery_attempts (id, delivery_id, channel, status, provider_message_id, error_code, error_message, attempted_at)
                VALUES (sitrep_uuid_v7(), \(d.id), 'whatsapp', 'failed', 'SM1', '63016', 'outside the window', now() - interval '1 minute'),
                       (sitrep_uuid_v7(), \(d.id), 'sms', 'sent', 'SM2', NULL, NULL, now())
                """)
            try await h.db.client.query("UPDATE deliveries SET status = 'in_progress', channel = 'sms' WHERE id = \(d.id)")
            let one = try await client.execute(uri: "/v1/deliveries/\(d.id.lowercasedString)", method: .get, headers: .auth(admin))
                .decode(Delivery.self)
            #expect(one.status == .inProgress && one.channel == .sms && one.attempts.map(\.channel) == [.whatsapp, .sms])
            #expect(one.attempts[0].errorCode == "63016" && one.attempts[1].providerMessageId == "SM2")
            let inProgress = try await client.execute(
                uri: "/v1/briefings/\(briefing)/deliveries?status=in_progress", method: .get, headers: .auth(exec)
            ).decode(DeliveryPage.self)
            #expect(inProgress.items.map(\.id) == [d.id])
            #expect(try await client.execute(uri: "/v1/deliveries/\(UUID().uuidString)", method: .get, headers: .auth(admin)).status == .notFound)
            // States only move forward, even from psql.
            await #expect(throws: PSQLError.self) { try await h.db.client.query("UPDATE deliveries SET status = 'queued' WHERE id = \(d.id)") }
            await #expect(throws: PSQLError.self) { try await h.db.client.query("DELETE FROM deliveries") }

            // An undistributed briefing has no deliveries; an unknown one is 404.
            let draft = try await Self.approvedBriefing(h, status: "pending_approval")
            let none = try await client.execute(uri: "/v1/briefings/\(draft)/deliveries", method: .get, headers: .auth(exec)).decode(
                DeliveryPage.self)
            #expect(none.items.isEmpty)
            let notApproved = try await client.execute(uri: "/v1/briefings/\(draft)/distribute", method: .post, headers: Self.headers(admin))
            #expect(notApproved.status == .conflict)
            #expect(
                try await client.execute(uri: "/v1/briefings/\(UUID().uuidString)/deliveries", method: .get, headers: .auth(exec)).status == .notFound
            )
        }
    }

    @Test func aRetriedDistributionReplaysTheFirstAnswer() async throws {
        try await SitrepHarness.with { client, h in
            let briefing = try await Self.approvedBriefing(h)
            _ = try await Self.create(client, h.tokens.admin, Self.recipientJSON("Sara", phone: "+971501111111"))
            let uri = "/v1/briefings/\(briefing)/distribute"
            let first = try await client.execute(uri: uri, method: .post, headers: Self.headers(h.tokens.admin, key: "slow-network"))
            #expect(first.status == .accepted && first.headers[.location] == "/v1/briefings/\(briefing)/deliveries")
            let retry = try await client.execute(uri: uri, method: .post, headers: Self.headers(h.tokens.admin, key: "slow-network"))
            #expect(retry.status == .accepted && retry.text == first.text && retry.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            #expect(try await Self.count("SELECT count(*)::int8 FROM deliveries", h) == 1)
        }
    }
}
