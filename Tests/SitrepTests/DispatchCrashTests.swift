import DeliveryWorker
import Foundation
import Generated
import PostgresNIO
import ProviderStandIn
import SitrepRuntime
import Testing

/// `sitrep worker` killed with SIGKILL at random points while 1,000 deliveries flow: after
/// restarts every delivery ends final, and the provider saw each message exactly once
/// (interrupted sends are looked up, not repeated).
@Suite("dispatch crash safety", .enabled(if: SitrepHarness.isConfigured), .serialized)
struct DispatchCrashTests {
    /// The test database's URL, for a child process.
    static func databaseURL(_ h: SitrepHarness) throws -> String {
        guard let server = TestDatabase.serverURL, var components = URLComponents(string: server) else { throw TestDatabase.NotConfigured() }
        components.path = "/" + h.db.name
        return components.string!
    }

    static func startWorker(_ f: DispatchTests.Fixture, log: URL, extra: [String: String] = [:]) throws -> Process {
        try launchSitrep(
            ["worker"], log: log,
            environment: [
                "SITREP_DATABASE_URL": try databaseURL(f.h),
                "SITREP_TWILIO_ACCOUNT_SID": f.standIn.configuration.accountSid, "SITREP_TWILIO_AUTH_TOKEN": f.standIn.configuration.authToken,
                "SITREP_TWILIO_BASE_URL": f.standIn.baseURL, "SITREP_TWILIO_WHATSAPP_FROM": "whatsapp:+97140000000",
                "SITREP_TWILIO_SMS_FROM": "+97140000000", "SITREP_TWILIO_CONTENT_SIDS": "en=\(DispatchTests.contentSids["en"]!)",
                "SITREP_TWILIO_STATUS_CALLBACK_URL": f.webhook.statusCallbackURL, "SITREP_PROVIDER_TIMEOUT_SECONDS": "1",
                "SITREP_DISPATCH_CONCURRENCY": "32", "SITREP_DISPATCH_CHANNEL_TIMEOUT_SECONDS": "30", "SITREP_DISPATCH_POLL_MS": "50",
                "SITREP_DISPATCH_RETRY_BASE_MS": "50",
            ].merging(extra) { _, new in new })
    }

    @Test func killedWorkersNeverSendTwice() async throws {
        try await DispatchTests().withDispatch { f in
            // 1,000 recipients (written directly; the API's recipient rules have their own tests).
            try await f.h.db.client.query(
                """
                INSERT INTO recipients (id, name, phone, language, channels)
                SELECT sitrep_uuid_v7(), 'Recipient ' || lpad(i::text, 4, '0'), '+9715' || lpad(i::text, 8, '0'), 'en', ARRAY['whatsapp', 'sms']
                FROM generate_series(1, 1000) AS i
                """)
            // Every send takes a while to answer, so most kills land while calls are in flight: the
            // provider then has messages the worker never heard back about.
            for i in 1...1000 { f.standIn.script("+9715" + String(format: "%08d", i), .delay(.milliseconds(150))) }
            let briefing = try await DispatchTests().distribute(f, [])
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-crash-worker-\(UUID()).log")
            var kills = 0
            var worker = try Self.startWorker(f, log: log)
            // Kill it at random points while work flows, then let the last one finish.
            for _ in 0..<6 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...1200)))
                kill(worker.processIdentifier, SIGKILL)
                worker.waitUntilExit()
                kills += 1
                worker = try Self.startWorker(f, log: log)
            }
            let clock = ContinuousClock()
            let end = clock.now + .seconds(120)
            var open = -1
            while clock.now < end {
                open = try await DistributionTests.count(
                    "SELECT count(*)::int8 FROM deliveries WHERE briefing_id = '\(briefing)' AND status NOT IN ('delivered', 'failed')", f.h)
                if open == 0 { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            worker.terminate()  // SIGTERM: a graceful stop
            worker.waitUntilExit()
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(at: log)
            #expect(open == 0, "deliveries still open after the restarts; worker log:\n\(output.suffix(2000))")
            #expect(kills == 6)

            let delivered = try await DistributionTests.count(
                "SELECT count(*)::int8 FROM deliveries WHERE briefing_id = '\(briefing)' AND status = 'delivered'", f.h)
            #expect(delivered == 1000)
            // Exactly one message per recipient, and every message belongs to one attempt.
            let messages = f.standIn.messages()
            let perRecipient = Dictionary(grouping: messages, by: \.to)
            #expect(messages.count == 1000, "\(messages.count) messages for 1000 recipients")
            #expect(perRecipient.count == 1000 && perRecipient.values.allSatisfy { $0.count == 1 })
            #expect(messages.allSatisfy { $0.channel == .whatsapp })
            let references = Set(messages.compactMap { $0.contentVariables?["4"] })
            #expect(references.count == 1000)
            // Each message is recorded on the attempt it was sent for.
            let recorded = try await DistributionTests.count(
                "SELECT count(*)::int8 FROM delivery_attempts WHERE provider_message_id IS NOT NULL AND status = 'delivered'", f.h)
            #expect(recorded == 1000)
            #expect(try await AuditVerifierCheck.intact(f.h))
            // The kills did interrupt sends: attempts the killed worker never heard back about were
            // settled by the provider's callback (it names the attempt), by a look-up, or found
            // never sent and sent once more.
            let interrupted = try await DistributionTests.count(
                """
                SELECT count(*)::int8 FROM delivery_attempts a WHERE a.error_code = 'not_sent' OR EXISTS (
                    SELECT 1 FROM audit_events e WHERE e.entity_id = a.delivery_id::text AND e.from_state = 'queued'
                    AND e.action IN ('delivery.attempt_sent', 'delivery.attempt_delivered')
                    AND (e.actor_id = 'twilio' OR e.details->>'reconciled' = 'true'))
                """, f.h)
            #expect(interrupted > 0, "no kill landed during a provider call")
        }
    }
}

/// Starts the `sitrep` binary with `arguments` in the test environment (test mode, the shared test
/// Redis, warnings only) plus `environment`, its output appended to `log`.
func launchSitrep(_ arguments: [String], log: URL, environment: [String: String]) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
    p.arguments = arguments
    p.environment = [
        "PATH": "/usr/bin:/bin", "SITREP_ENV": "test", "SITREP_REDIS_URL": SitrepHarness.redisURL ?? "redis://127.0.0.1:6379/0",
        "SITREP_LOG_LEVEL": "warning",
    ].merging(environment) { _, new in new }
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)  // opening it below fails if this did
    let handle = try FileHandle(forWritingTo: log)
    handle.seekToEndOfFile()
    p.standardOutput = handle
    p.standardError = handle
    try p.run()
    return p
}
