import Foundation
import PostgresNIO
import Storage
import Testing

/// The `sitrep` executable's operator-facing behaviour: help on every command, and a bad
/// configuration reported one line per problem with exit code 2 (no stack trace).
@Suite("sitrep command line")
struct CommandLineTests {
    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/sitrep").path

    func run(_ args: [String], env: [String: String]) async throws -> (Int32, String, String) {
        try await offCooperativePool { try Self.runBlocking(args, env: env) }
    }

    static func runBlocking(_ args: [String], env: [String: String]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.environment = env.merging(["PATH": "/usr/bin:/bin"]) { a, _ in a }
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test(arguments: [
        [], ["serve"], ["worker"], ["migrate"], ["seed-demo"], ["dev-token"], ["dev-issuer"], ["dev-providers"], ["dev-erp"],
        ["audit", "verify"], ["contract", "diff"],
    ])
    func everyCommandHasHelp(command: [String]) async throws {
        let (status, out, _) = try await run(command + ["--help"], env: [:])
        #expect(status == 0)
        #expect(out.contains("USAGE:"))
    }

    @Test func contractDiffPassesTheReleasedContractAndCatchesABreak() async throws {
        let root = URL(fileURLWithPath: Self.binary).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let released = root.appendingPathComponent("api/released/openapi-1.0.0.yaml").path
        let current = root.appendingPathComponent("api/openapi.yaml").path
        let (ok, findings, verdict) = try await run(["contract", "diff", released, current], env: [:])
        #expect(ok == 0, "\(verdict)")
        #expect(verdict.contains("no breaking changes"))
        #expect(!findings.contains("BREAKING"))
        // The recipients list taken away without a new major version: refused, and named.
        let broken = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-broken-\(UUID().uuidString).yaml")
        let text = try String(contentsOfFile: current, encoding: .utf8).replacingOccurrences(of: "  /v1/recipients:\n", with: "  /v1/recipientz:\n")
        try text.write(to: broken, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: broken) }
        let (status, out, err) = try await run(["contract", "diff", current, broken.path], env: [:])
        #expect(status == 1)
        #expect(out.contains("BREAKING operation-removed paths./v1/recipients.get"))
        #expect(err.contains("need a major version bump"))
    }

    @Test func badConfigurationIsOneLinePerProblemAndExitCode2() async throws {
        let (status, out, err) = try await run(
            ["serve"], env: ["SITREP_PORT": "eighty", "SITREP_ENV": "staging", "SITREP_REDIS_URL": "http://cache"])
        #expect(status == 2)
        #expect(out.isEmpty)
        let lines = err.split(separator: "\n").map(String.init)
        #expect(
            lines == [
                "sitrep: SITREP_ENV=staging is not valid: expected development, test or production",
                "sitrep: SITREP_PORT=eighty is not valid: expected an integer in 1...65535",
                "sitrep: SITREP_DATABASE_URL is missing: set it to postgres://user:pass@host:port/db",
                "sitrep: SITREP_REDIS_URL is not valid: it must start with redis:// (or rediss:// for TLS)",
            ])
    }

    @Test func redisCAFileProblemsAreConfigurationErrors() async throws {
        let missing = "/nonexistent-\(UUID().uuidString)/ca.pem"
        let (status, _, err) = try await run(
            ["serve"], env: ["SITREP_REDIS_URL": "rediss://:key@cache.example:6380/0", "SITREP_REDIS_CA_FILE": missing])
        #expect(status == 2)
        #expect(
            err.contains(
                "sitrep: SITREP_REDIS_CA_FILE=\(missing) is not valid: cannot read the CA file \(missing): No such file or directory"),
            "\(err)")

        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-empty-ca-\(UUID().uuidString).pem")
        try Data("not a certificate\n".utf8).write(to: empty)
        defer { try? FileManager.default.removeItem(at: empty) }
        let (emptyStatus, _, emptyErr) = try await run(
            ["serve"], env: ["SITREP_REDIS_URL": "rediss://cache.example:6380", "SITREP_REDIS_CA_FILE": empty.path])
        #expect(emptyStatus == 2)
        #expect(emptyErr.contains("sitrep: SITREP_REDIS_CA_FILE=\(empty.path) is not valid: the CA file"), "\(emptyErr)")

        let (plainStatus, _, plainErr) = try await run(
            ["serve"], env: ["SITREP_REDIS_URL": "redis://cache.example:6379", "SITREP_REDIS_CA_FILE": empty.path])
        #expect(plainStatus == 2)
        #expect(plainErr.contains("sitrep: SITREP_REDIS_CA_FILE is set but SITREP_REDIS_URL is redis:// (no TLS)"), "\(plainErr)")
    }

    @Test func productionRefusesTheDevIssuer() async throws {
        let (status, _, err) = try await run(
            ["serve"],
            env: [
                "SITREP_ENV": "production", "SITREP_DATABASE_URL": "postgres://u@db/sitrep", "SITREP_REDIS_URL": "redis://cache:6379",
                "SITREP_DEV_ISSUER_KEY": "/tmp/key.pem",
            ])
        #expect(status == 2)
        #expect(err.contains("sitrep: SITREP_OIDC_ISSUER is missing: production needs the real token issuer"))
        #expect(err.contains("sitrep: SITREP_DEV_ISSUER_KEY is set: the local dev issuer is refused in production"))
        let (tokenStatus, _, tokenErr) = try await run(
            ["dev-token"], env: ["SITREP_ENV": "production", "SITREP_OIDC_ISSUER": "https://login.example/v2.0", "SITREP_OIDC_AUDIENCE": "api://x"])
        #expect(tokenStatus != 0)
        #expect(tokenErr.contains("dev-token is refused in production"))
        let (issuerStatus, issuerOut, issuerErr) = try await run(
            ["dev-issuer", "--port", "0"],
            env: ["SITREP_ENV": "production", "SITREP_OIDC_ISSUER": "https://login.example/v2.0", "SITREP_OIDC_AUDIENCE": "api://x"])
        #expect(issuerStatus != 0)
        #expect(issuerOut.isEmpty)
        #expect(issuerErr.contains("dev-issuer is refused in production"))
    }

    @Test(.enabled(if: TestDatabase.isConfigured)) func auditVerifyReportsAnIntactChainAndNamesAForgedEvent() async throws {
        try await TestDatabase.with { db in
            for i in 1...3 {
                try await db.client.withTransaction(logger: TestDatabase.logger) { conn in
                    try await appendAudit(
                        AuditEventInput(action: "test.event", outcome: .succeeded, actorId: "cli", entityType: "test", entityId: "e\(i)"),
                        on: conn, logger: TestDatabase.logger)
                }
            }
            var url = URLComponents(string: try #require(TestDatabase.serverURL))!
            url.path = "/" + db.name
            let env = ["SITREP_DATABASE_URL": url.string!, "SITREP_REDIS_URL": "redis://127.0.0.1:1/0", "SITREP_LOG_LEVEL": "error"]
            let (ok, okOut, _) = try await run(["audit", "verify"], env: env)
            #expect(ok == 0)
            #expect(okOut.hasPrefix("audit log intact: 3 events (sequence 1…3)"))
            try await db.client.withConnection { connection in
                try await connection.query("ALTER TABLE audit_events DISABLE TRIGGER USER", logger: TestDatabase.logger)
                try await connection.query("UPDATE audit_events SET reason = 'forged' WHERE sequence = 2", logger: TestDatabase.logger)
                try await connection.query("ALTER TABLE audit_events ENABLE TRIGGER USER", logger: TestDatabase.logger)
            }
            let (broken, brokenOut, _) = try await run(["audit", "verify"], env: env)
            #expect(broken == 1)
            #expect(brokenOut.hasPrefix("audit log BROKEN at sequence 2"), "\(brokenOut)")
        }
    }

    @Test func browserSignInNeedsThePublicURL() async throws {
        let (status, _, err) = try await run(
            ["serve"],
            env: [
                "SITREP_DATABASE_URL": "postgres://u@db/sitrep", "SITREP_REDIS_URL": "redis://cache:6379",
                "SITREP_OIDC_CLIENT_ID": "client", "SITREP_SESSION_IDLE_MINUTES": "0",
            ])
        #expect(status == 2)
        #expect(
            err.split(separator: "\n").map(String.init) == [
                "sitrep: SITREP_PUBLIC_URL is missing: browser sign-in (SITREP_OIDC_CLIENT_ID) needs the public base URL for its callback",
                "sitrep: SITREP_SESSION_IDLE_MINUTES=0 is not valid: expected an integer in 1...1440",
            ])
    }

    @Test func productionRefusesTheProviderStandIn() async throws {
        let production = [
            "SITREP_ENV": "production", "SITREP_DATABASE_URL": "postgres://u@db/sitrep", "SITREP_REDIS_URL": "redis://cache:6379",
            "SITREP_OIDC_ISSUER": "https://login.example/v2.0", "SITREP_OIDC_AUDIENCE": "api://x",
        ]
        for command in [["serve"], ["worker"]] {
            let (status, out, err) = try await run(
                command,
                env: production.merging([
                    "SITREP_TWILIO_BASE_URL": "http://127.0.0.1:8082", "SITREP_SENDGRID_BASE_URL": "http://localhost:8082/",
                ]) { _, b in b })
            #expect(status == 2)
            #expect(out.isEmpty)
            let lines = err.split(separator: "\n").map(String.init)
            #expect(
                lines.contains(
                    "sitrep: SITREP_TWILIO_BASE_URL=http://127.0.0.1:8082 is not valid in production: a local stand-in (or plain http) is refused"),
                "\(err)")
            #expect(
                lines.contains(
                    "sitrep: SITREP_SENDGRID_BASE_URL=http://localhost:8082 is not valid in production: a local stand-in (or plain http) is refused"),
                "\(err)")
        }
        // https on a loopback host is refused as well; the real providers are not.
        let (status, _, err) = try await run(
            ["serve"],
            env: production.merging([
                "SITREP_TWILIO_BASE_URL": "https://[::1]:8443", "SITREP_SENDGRID_BASE_URL": "https://api.sendgrid.com",
                "SITREP_DISPATCH_IN_SERVE": "maybe",
            ]) { _, b in b })
        #expect(status == 2)
        #expect(
            err.split(separator: "\n").map(String.init) == [
                "sitrep: SITREP_DISPATCH_IN_SERVE=maybe is not valid: expected true or false",
                "sitrep: SITREP_TWILIO_BASE_URL=https://[::1]:8443 is not valid in production: a local stand-in (or plain http) is refused",
            ])
    }

    @Test func badDispatchConfigurationIsOneLinePerProblem() async throws {
        let (status, out, err) = try await run(
            ["serve"],
            env: [
                "SITREP_DATABASE_URL": "postgres://u@db/sitrep", "SITREP_REDIS_URL": "redis://cache:6379",
                "SITREP_TWILIO_ACCOUNT_SID": "AC123", "SITREP_TWILIO_SMS_FROM": "+15550001111",
                "SITREP_TWILIO_STATUS_CALLBACK_URL": "https://sitrep.example/v1/webhooks/twilio/status",
                "SITREP_TWILIO_CONTENT_SIDS": "en=HX0123456789abcdef0123456789abcdef,fr=HX0123456789abcdef0123456789abcdef",
                "SITREP_SENDGRID_API_KEY": "SG.key", "SITREP_DISPATCH_IN_SERVE": "maybe",
                // Outside production the local stand-in is fine.
                "SITREP_TWILIO_BASE_URL": "http://127.0.0.1:8082", "SITREP_SENDGRID_BASE_URL": "http://localhost:8082",
            ])
        #expect(status == 2)
        #expect(out.isEmpty)
        #expect(
            err.split(separator: "\n").map(String.init) == [
                "sitrep: SITREP_TWILIO_ACCOUNT_SID and SITREP_TWILIO_AUTH_TOKEN must be set together",
                "sitrep: SITREP_TWILIO_ACCOUNT_SID=AC123 is not valid: expected AC followed by 32 lower-case hex digits",
                "sitrep: SITREP_TWILIO_CONTENT_SIDS entry 'fr=HX0123456789abcdef0123456789abcdef' is not valid: expected en=HX… or ar=HX… (HX + 32 hex digits)",
                "sitrep: SITREP_SENDGRID_FROM is missing: SendGrid needs a verified sender address",
                "sitrep: SITREP_DISPATCH_IN_SERVE=maybe is not valid: expected true or false",
            ])
        // A well-formed sid and token, with a malformed content sid.
        let (status2, _, err2) = try await run(
            ["worker"],
            env: [
                "SITREP_DATABASE_URL": "postgres://u@db/sitrep", "SITREP_REDIS_URL": "redis://cache:6379",
                "SITREP_TWILIO_ACCOUNT_SID": "AC" + String(repeating: "a", count: 32), "SITREP_TWILIO_AUTH_TOKEN": "token",
                "SITREP_TWILIO_WHATSAPP_FROM": "+15550001111", "SITREP_PUBLIC_URL": "https://sitrep.example",
                "SITREP_TWILIO_CONTENT_SIDS": "ar=HX12",
            ])
        #expect(status2 == 2)
        #expect(
            err2.split(separator: "\n").map(String.init) == [
                "sitrep: SITREP_TWILIO_CONTENT_SIDS entry 'ar=HX12' is not valid: expected en=HX… or ar=HX… (HX + 32 hex digits)",
                "sitrep: SITREP_TWILIO_CONTENT_SIDS is missing: WhatsApp sends approved templates only",
            ])
    }
}
