import AsyncHTTPClient
import DeliveryWorker
import Foundation
import Generated
import HTTPTypes
import Handlers
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ProviderStandIn
import SitrepRuntime
import Storage
import Testing
import Twilio

/// The dispatch worker against the provider stand-in: every fallback path, retries, time-outs,
/// reconciliation, and the signed status webhook, with the audit trail of each.
@Suite("message dispatch", .enabled(if: SitrepHarness.isConfigured), .serialized)
struct DispatchTests {
    static let contentSids = ["en": "HX" + String(repeating: "a", count: 32), "ar": "HX" + String(repeating: "b", count: 32)]

    /// A free loopback port (bound and released), so the webhook URL is known before the server starts.
    static func freePort() throws -> Int {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress?.port ?? 0
        try channel.close().wait()
        return port
    }

    struct Fixture: Sendable {
        let client: any TestClientProtocol
        let h: SitrepHarness
        let standIn: ProviderStandIn
        let webhook: TwilioWebhookSettings
        let port: Int

        func worker(channelTimeout: Duration = .seconds(2), tries: Int = 5, requestTimeout: Duration = .seconds(2)) -> DispatchWorker {
            let settings = DispatchSettings(
                statusCallbackURL: webhook.statusCallbackURL, whatsAppContentSids: DispatchTests.contentSids, channelTimeout: channelTimeout,
                policy: DispatchPlan.Policy(triesPerChannel: tries), retryBase: .milliseconds(50), retryCap: .milliseconds(300),
                concurrency: 8, pollInterval: .milliseconds(50), lease: .seconds(10))
            return DispatchWorker(
                db: h.db.client,
                twilio: TwilioClient(configuration: standIn.twilioConfiguration(requestTimeout: requestTimeout), httpClient: .shared),
                sendGrid: SendGridClient(configuration: standIn.sendGridConfiguration(requestTimeout: requestTimeout), httpClient: .shared),
                settings: settings, logger: TestDatabase.logger)
        }
    }

    func withDispatch(configured: Bool = true, _ body: @Sendable (Fixture) async throws -> Void) async throws {
        let standIn = try await ProviderStandIn.start(logger: TestDatabase.logger)
        let port = try Self.freePort()
        let webhook = TwilioWebhookSettings(
            accountSid: standIn.configuration.accountSid, authToken: standIn.configuration.authToken,
            statusCallbackURL: "http://127.0.0.1:\(port)/v1/webhooks/twilio/status")
        let result: Result<Void, any Error>
        do {
            try await SitrepHarness.instances(1, setup: .live, twilioWebhook: configured ? webhook : nil, port: port) { clients, h in
                try await body(Fixture(client: clients[0], h: h, standIn: standIn, webhook: webhook, port: port))
            }
            result = .success(())
        } catch {
            result = .failure(error)
        }
        await standIn.shutdown()
        try result.get()
    }

    /// Distributes a new approved briefing to `recipients` (JSON bodies); returns its id.
    func distribute(_ f: Fixture, _ recipients: [String]) async throws -> String {
        for r in recipients {
            let made = try await DistributionTests.create(f.client, f.h.tokens.admin, r)
            #expect(made.status == .created, "\(made.text)")
        }
        let briefing = UUID().uuidString.lowercased()
        try await f.h.db.client.query(
            """
            INSERT INTO briefings (id, title, title_ar, briefing_date, status, summary, summary_ar, sections, submitted_by_id, submitted_at,
                                   approved_by, approved_by_id, approved_at, content_hash)
            VALUES (\(UUID(uuidString: briefing)!), 'Daily briefing', 'الإحاطة اليومية', current_date, 'approved', 'Calm day.', 'يوم هادئ.',
                    '[{"heading":"Ops","headingAr":"عمليات","body":"Fine.","bodyAr":"جيد.","signalIds":[]}]'::jsonb, 'admin', now(),
                    'Exec One', 'exec', now(), 'abc')
            """)
        let answer = try await f.client.execute(
            uri: "/v1/briefings/\(briefing)/distribute", method: .post, headers: DistributionTests.headers(f.h.tokens.admin))
        #expect(answer.status == .accepted, "\(answer.text)")
        return briefing
    }

    /// Runs `worker` until every delivery of `briefing` is final (or `timeout`), then stops it.
    func drain(_ f: Fixture, _ worker: DispatchWorker, _ briefing: String, timeout: Duration = .seconds(60)) async throws -> [Delivery] {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await worker.run() }
            defer { group.cancelAll() }
            let clock = ContinuousClock()
            let end = clock.now + timeout
            while clock.now < end {
                let open = try await DistributionTests.count(
                    "SELECT count(*)::int8 FROM deliveries WHERE briefing_id = '\(briefing)' AND status NOT IN ('delivered', 'failed')", f.h)
                if open == 0 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            return try await deliveries(f, briefing)
        }
    }

    func deliveries(_ f: Fixture, _ briefing: String) async throws -> [Delivery] {
        try await f.client.execute(uri: "/v1/briefings/\(briefing)/deliveries?limit=200", method: .get, headers: .auth(f.h.tokens.executive))
            .decode(DeliveryPage.self).items
    }

    func auditActions(_ f: Fixture, delivery: UUID) async throws -> [String] {
        var out: [String] = []
        let rows = try await f.h.db.client.query(
            "SELECT action FROM audit_events WHERE entity_type = 'delivery' AND entity_id = \(delivery.lowercasedString) ORDER BY sequence")
        for try await a in rows.decode(String.self) { out.append(a) }
        return out
    }

    @Test func everyFallbackPathEndsWhereItShould() async throws {
        try await withDispatch { f in
            let s = f.standIn
            s.script("whatsapp:+971500000002", .failAfterSend(status: .failed, code: 63016))  // WhatsApp 63016 → SMS
            s.script("whatsapp:+971500000003", .failAfterSend(status: .failed, code: 63016))  // → SMS undelivered → e-mail
            s.script("+971500000003", .failAfterSend(status: .undelivered, code: 30008))
            s.script("whatsapp:+971500000004", .neverDelivered)  // time-out → SMS
            s.script("+971500000005", .failOnCreate(httpStatus: 400, code: 21211, message: "Invalid 'To' Phone Number"))  // all fail
            s.script("eve@example.gov", .failOnCreate(httpStatus: 400, code: 0, message: "The to email does not contain a valid address."))
            s.script("whatsapp:+971500000006", sequence: [.tooManyRequests(retryAfterSeconds: 0), .serverError])  // retries
            s.script("whatsapp:+971500000007", .acceptAndRead)
            s.script("whatsapp:+971500000008", .dropCallbacks)  // no callback: the worker asks
            s.script("whatsapp:+971500000009", .outOfOrderCallbacks)
            let all = ["whatsapp", "sms", "email"]
            let briefing = try await distribute(
                f,
                [
                    DistributionTests.recipientJSON("Ahmed", phone: "+971500000001"),
                    DistributionTests.recipientJSON("Badr", phone: "+971500000002"),
                    DistributionTests.recipientJSON("Carla", phone: "+971500000003", email: "carla@example.gov", language: "ar", channels: all),
                    DistributionTests.recipientJSON("Dana", phone: "+971500000004"),
                    DistributionTests.recipientJSON("Eve", phone: "+971500000005", email: "eve@example.gov", channels: all),
                    DistributionTests.recipientJSON("Farid", phone: "+971500000006"),
                    DistributionTests.recipientJSON("Gita", phone: "+971500000007"),
                    DistributionTests.recipientJSON("Hana", phone: "+971500000008"),
                    DistributionTests.recipientJSON("Omar", phone: "+971500000009"),
                ])
            let done = try await drain(f, f.worker(), briefing)
            // Give late callbacks (read receipts, out-of-order `sent`) a moment to land.
            try await Task.sleep(for: .milliseconds(500))
            let final = try await deliveries(f, briefing)
            #expect(done.allSatisfy { $0.status == .delivered || $0.status == .failed })
            func d(_ name: String) -> Delivery { final.first { $0.recipientName == name }! }
            func trail(_ name: String) -> [String] {
                d(name).attempts.map { "\($0.channel.rawValue):\($0.status.rawValue)" + ($0.errorCode.map { ":\($0)" } ?? "") }
            }

            #expect(d("Ahmed").status == .delivered && trail("Ahmed") == ["whatsapp:delivered"])
            #expect(d("Badr").status == .delivered && trail("Badr") == ["whatsapp:failed:63016", "sms:delivered"])
            #expect(d("Carla").status == .delivered && trail("Carla") == ["whatsapp:failed:63016", "sms:undelivered:30008", "email:sent"])
            #expect(d("Dana").status == .delivered && trail("Dana") == ["whatsapp:timed_out", "sms:delivered"])
            #expect(d("Eve").status == .failed && trail("Eve") == ["whatsapp:failed:21211", "sms:failed:21211", "email:failed:http_400"])
            #expect(d("Farid").status == .delivered)
            #expect(trail("Farid") == ["whatsapp:failed:20429", "whatsapp:failed:not_sent", "whatsapp:delivered"], "\(trail("Farid"))")
            #expect(d("Gita").status == .delivered && trail("Gita") == ["whatsapp:read"])
            #expect(d("Hana").status == .delivered && trail("Hana") == ["whatsapp:delivered"])
            #expect(d("Omar").status == .delivered && trail("Omar") == ["whatsapp:delivered"])
            #expect(final.allSatisfy { $0.completedAt != nil })

            // What went out: one message per attempt that reached the provider, nothing twice.
            let messages = s.messages()
            func sent(_ to: String) -> Int { messages.filter { $0.to == to }.count }
            #expect(sent("whatsapp:+971500000001") == 1 && sent("+971500000001") == 0)
            #expect(sent("whatsapp:+971500000002") == 1 && sent("+971500000002") == 1)
            #expect(sent("whatsapp:+971500000006") == 1, "the 5xx was looked up before the resend")
            #expect(Set(messages.map(\.sid)).count == messages.count)
            // WhatsApp went as the approved template, with the attempt as the reference.
            let ahmed = messages.first { $0.to == "whatsapp:+971500000001" }!
            #expect(ahmed.contentSid == Self.contentSids["en"] && ahmed.contentVariables?["1"] == "Ahmed")
            #expect(ahmed.contentVariables?["4"] == d("Ahmed").attempts[0].id.lowercasedString)
            #expect(ahmed.statusCallback == f.webhook.statusCallbackURL + "?attempt=" + d("Ahmed").attempts[0].id.lowercasedString)
            // Carla's mail is in Arabic and carries the PDF.
            let mails = s.mails().filter { $0.recipients == ["carla@example.gov"] }
            #expect(mails.count == 1)
            #expect(mails.first?.subject.contains("الإحاطة") == true)
            #expect(mails.first?.attachments.first?.contentType == "application/pdf")
            #expect(mails.first?.attachments.first?.bytes.starts(with: Array("%PDF".utf8)) == true)
            #expect(mails.first?.customArgs["sitrep_attempt"] == d("Carla").attempts[2].id.lowercasedString)

            // Every change is audited, in order.
            #expect(
                try await auditActions(f, delivery: d("Ahmed").id) == [
                    "delivery.started", "delivery.attempt_started", "delivery.attempt_sent", "delivery.attempt_delivered", "delivery.delivered",
                ])
            #expect(
                try await auditActions(f, delivery: d("Badr").id) == [
                    "delivery.started", "delivery.attempt_started", "delivery.attempt_sent", "delivery.attempt_failed",
                    "delivery.attempt_started", "delivery.attempt_sent", "delivery.attempt_delivered", "delivery.delivered",
                ])
            var reason = ""
            for try await r in try await f.h.db.client.query(
                "SELECT reason FROM audit_events WHERE action = 'delivery.failed' AND entity_id = \(d("Eve").id.lowercasedString)"
            ).decode(String.self) { reason = r }
            #expect(
                reason.contains("whatsapp: failed (21211)") && reason.contains("sms: failed (21211)") && reason.contains("email: failed (http_400)"))
            #expect(try await auditActions(f, delivery: d("Gita").id).contains("delivery.attempt_read"))
            // The audit chain is intact after all of it.
            #expect(try await AuditVerifierCheck.intact(f.h))
        }
    }

    @Test func anInterruptedSendIsLookedUpNotRepeated() async throws {
        try await withDispatch { f in
            // No callbacks: only a look-up at the provider can tell what happened.
            f.standIn.script("whatsapp:+971500000001", .dropCallbacks)
            let briefing = try await distribute(
                f,
                [
                    DistributionTests.recipientJSON("Ahmed", phone: "+971500000001"),
                    DistributionTests.recipientJSON("Eve", phone: "+971500000005", email: "eve@example.gov", channels: ["email"]),
                    DistributionTests.recipientJSON("Farid", phone: "+971500000006"),
                ])
            let worker = f.worker()
            let twilio = TwilioClient(configuration: f.standIn.twilioConfiguration(), httpClient: .shared)
            let sendGrid = SendGridClient(configuration: f.standIn.sendGridConfiguration(), httpClient: .shared)
            // A worker claims all three, records its attempts, and dies: after Ahmed's and Eve's
            // calls reached the provider but before their answers were recorded; before Farid's call.
            let (token, ids) = try await worker.store.claim(limit: 10, lease: .seconds(30))
            #expect(ids.count == 3)
            for id in ids {
                let delivery = try #require(try await worker.store.load(id, token: token))
                let channel: DispatchChannel = delivery.recipientName == "Eve" ? .email : .whatsapp
                let attempt = try #require(try await worker.store.startAttempt(id, token: token, channel: channel))
                let reference = attempt.id.lowercasedString
                switch delivery.recipientName {
                case "Ahmed":
                    _ = try await twilio.sendWhatsAppTemplate(
                        to: delivery.phone, contentSid: Self.contentSids["en"]!,
                        contentVariables: ["1": "Ahmed", "2": "today", "3": "Daily briefing", "4": reference],
                        statusCallback: f.webhook.statusCallbackURL + "?attempt=" + reference)
                case "Eve":
                    _ = try await sendGrid.send(
                        to: "eve@example.gov", name: "Eve", subject: "Daily briefing", text: "…", html: nil, attachment: nil,
                        customArgs: ["sitrep_attempt": reference])
                default: break
                }
            }
            // The provider delivers Ahmed's message meanwhile (reported to no one); then the lease
            // runs out and the call's time-out has long passed.
            try await Task.sleep(for: .milliseconds(500))
            try await f.h.db.client.query("UPDATE delivery_attempts SET attempted_at = attempted_at - interval '1 minute'")
            try await f.h.db.client.query("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'")

            let done = try await drain(f, worker, briefing, timeout: .seconds(30))
            func d(_ name: String) -> Delivery { done.first { $0.recipientName == name }! }
            #expect(done.allSatisfy { $0.status == .delivered })
            #expect(d("Ahmed").attempts.map(\.status) == [.delivered] && d("Ahmed").attempts[0].providerMessageId?.hasPrefix("SM") == true)
            #expect(d("Eve").attempts.map(\.status) == [.sent] && d("Eve").attempts[0].providerMessageId != nil)
            #expect(d("Farid").attempts.map(\.errorCode) == ["not_sent", nil] && d("Farid").attempts.map(\.status) == [.failed, .delivered])
            // Each reached the provider exactly once.
            #expect(f.standIn.messages().filter { $0.to == "whatsapp:+971500000001" }.count == 1)
            #expect(f.standIn.messages().filter { $0.to == "whatsapp:+971500000006" }.count == 1)
            #expect(f.standIn.mails().filter { $0.recipients == ["eve@example.gov"] }.count == 1)
            #expect(
                try await DistributionTests.count(
                    "SELECT count(*)::int8 FROM audit_events WHERE details->>'reconciled' = 'true'", f.h) == 2)
        }
    }

    /// A status callback as Twilio would send it.
    func callback(
        _ f: Fixture, attempt: UUID?, _ form: [(String, String)], signature: String?? = .none, token: String? = nil
    ) async throws -> TestResponse {
        let url = f.webhook.statusCallbackURL + (attempt.map { "?attempt=" + $0.lowercasedString } ?? "")
        var headers = HTTPFields()
        headers[.contentType] = "application/x-www-form-urlencoded"
        let signed = TwilioSignature.compute(url: url, parameters: form, authToken: token ?? f.webhook.authToken)
        switch signature {
        case .none: headers[HTTPField.Name("X-Twilio-Signature")!] = signed
        case .some(.some(let given)): headers[HTTPField.Name("X-Twilio-Signature")!] = given
        case .some(.none): break
        }
        let path = "/v1/webhooks/twilio/status" + (attempt.map { "?attempt=" + $0.lowercasedString } ?? "")
        return try await f.client.execute(uri: path, method: .post, headers: headers, body: buffer(FormEncoding.encode(form)))
    }

    @Test func statusCallbacksAreSignedIdempotentAndForwardOnly() async throws {
        try await withDispatch { f in
            // A message is out and waiting: sent, no callback (the stand-in drops them).
            f.standIn.script("whatsapp:+971500000001", .neverDelivered)
            let briefing = try await distribute(f, [DistributionTests.recipientJSON("Ahmed", phone: "+971500000001")])
            let worker = f.worker(channelTimeout: .seconds(600))
            var delivery = try await deliveries(f, briefing)[0]
            for _ in 0..<50 where delivery.attempts.first?.status != .sent {
                do { try await worker.runOnce() } catch { Issue.record("\(String(reflecting: error))"); return }
                delivery = try await deliveries(f, briefing)[0]
            }
            let attempt = try #require(delivery.attempts.first)
            let sid = try #require(attempt.providerMessageId)
            let account = f.webhook.accountSid
            func form(_ status: String, code: String? = nil) -> [(String, String)] {
                var f = [
                    ("MessageSid", sid), ("AccountSid", account), ("MessageStatus", status), ("To", "whatsapp:+971500000001"),
                    ("ApiVersion", "2010-04-01"), ("SmsStatus", status),
                ]
                if let code { f.append(("ErrorCode", code)) }
                return f
            }
            let before = try await auditActions(f, delivery: delivery.id)

            // Forged: wrong key, tampered body, no signature, a different attempt in the URL.
            let forged = try await callback(f, attempt: attempt.id, form("delivered"), token: "not-the-token")
            #expect(forged.status == .forbidden && forged.text.contains("webhook.invalid_signature"))
            #expect(forged.headers[.contentType] == "application/problem+json")
            let unsigned = try await callback(f, attempt: attempt.id, form("delivered"), signature: .some(nil))
            #expect(unsigned.status == .forbidden)
            let garbage = try await callback(f, attempt: attempt.id, form("delivered"), signature: "bm90IGEgc2lnbmF0dXJl")
            #expect(garbage.status == .forbidden)
            let signedForOther = TwilioSignature.compute(
                url: f.webhook.statusCallbackURL + "?attempt=" + attempt.id.lowercasedString, parameters: form("failed"),
                authToken: f.webhook.authToken)
            let tampered = try await callback(f, attempt: attempt.id, form("delivered"), signature: .some(signedForOther))
            #expect(tampered.status == .forbidden)
            let movedURL = try await callback(f, attempt: UUID(), form("delivered"), signature: .some(signedForOther))
            #expect(movedURL.status == .forbidden)
            // Correctly signed, but not our account; and a form that breaks the schema.
            var otherAccount = form("delivered")
            otherAccount[1] = ("AccountSid", "AC" + String(repeating: "f", count: 32))
            let other = try await callback(f, attempt: attempt.id, otherAccount)
            #expect(other.status == .forbidden && other.text.contains("webhook.unknown_account"))
            let bad = try await callback(f, attempt: attempt.id, [("MessageSid", "nope"), ("AccountSid", account)])
            #expect(bad.status == .unprocessableContent && bad.text.contains("/body/MessageSid") && bad.text.contains("/body/MessageStatus"))
            #expect(try await auditActions(f, delivery: delivery.id) == before, "refused callbacks change nothing")
            #expect(try await deliveries(f, briefing)[0].status == .inProgress)

            // Unknown message: accepted and ignored, so Twilio does not retry.
            let unknown = try await callback(
                f, attempt: nil, [("MessageSid", "SM" + String(repeating: "0", count: 32)), ("AccountSid", account), ("MessageStatus", "delivered")])
            #expect(unknown.status == .noContent)
            // Delivered, found by the attempt in the URL; then replayed, then an older status.
            #expect(try await callback(f, attempt: attempt.id, form("delivered")).status == .noContent)
            #expect(try await callback(f, attempt: attempt.id, form("delivered")).status == .noContent)
            #expect(try await callback(f, attempt: nil, form("sent")).status == .noContent)
            #expect(try await callback(f, attempt: nil, form("undelivered", code: "30008")).status == .noContent)
            // Read is recorded (found by message sid alone).
            #expect(try await callback(f, attempt: nil, form("read")).status == .noContent)
            let after = try await deliveries(f, briefing)[0]
            #expect(after.status == .delivered && after.attempts.map(\.status) == [.read] && after.attempts[0].errorCode == nil)
            #expect(
                try await auditActions(f, delivery: delivery.id) == before + [
                    "delivery.attempt_delivered", "delivery.delivered", "delivery.attempt_read",
                ])
            var actors: [String] = []
            for try await a in try await f.h.db.client.query(
                "SELECT DISTINCT actor_id FROM audit_events WHERE action IN ('delivery.attempt_delivered', 'delivery.attempt_read')"
            ).decode(String.self) { actors.append(a) }
            #expect(actors == ["twilio"])
        }
    }

    @Test func theWebhookAnswers503WhenDispatchIsNotConfigured() async throws {
        try await withDispatch(configured: false) { f in
            let answer = try await callback(
                f, attempt: nil,
                [("MessageSid", "SM" + String(repeating: "0", count: 32)), ("AccountSid", f.webhook.accountSid), ("MessageStatus", "sent")])
            #expect(answer.status == .serviceUnavailable && answer.headers[.contentType] == "application/problem+json")
        }
    }
}

/// The audit chain verifies after dispatch's writes.
enum AuditVerifierCheck {
    static func intact(_ h: SitrepHarness) async throws -> Bool {
        try await Storage.AuditVerifier().verify(client: h.db.client).valid
    }
}
