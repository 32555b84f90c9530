import ArgumentParser
import Auth
import Foundation
import Handlers
import LocalIssuer
import Logging
import PostgresNIO
import Storage

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending migrations from SITREP_MIGRATIONS_DIR (each in a transaction, under an advisory lock).")

    @Flag(help: "Only list pending migrations; apply nothing.")
    var dryRun = false

    func run() async throws {
        let config = loadConfiguration(needs: .database)
        bootstrapLogging(config)
        let logger = Logger(label: "sitrep.migrate")
        try await withDatabase(config, logger: logger) { client in
            let migrations = try MigrationSource.load(directory: URL(fileURLWithPath: config.migrationsDirectory))
            let migrator = Migrator(client: client, migrations: migrations, logger: logger)
            if dryRun {
                let pending = try await migrator.pending()
                print(pending.isEmpty ? "up to date" : pending.map(\.name).joined(separator: "\n"))
                return
            }
            let applied = try await migrator.migrate()
            print(applied.isEmpty ? "up to date (\(migrations.count) migrations)" : "applied: " + applied.map(\.name).joined(separator: ", "))
        }
    }
}

/// `sitrep audit verify`: walks the hash chain; exit 0 when intact, 1 naming the first broken event.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audit log tools.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute every audit event's hash chain; exit 1 and name the first broken event when it is not intact.")

        func run() async throws {
            let config = loadConfiguration(needs: .database)
            bootstrapLogging(config)
            let logger = Logger(label: "sitrep.audit")
            try await withDatabase(config, logger: logger) { client in
                let start = ContinuousClock.now
                let v = try await AuditVerifier().verify(client: client)
                let elapsed = ContinuousClock.now - start
                let seconds = elapsed.timeInterval
                let rate = seconds > 0 ? Int(Double(v.eventsChecked) / seconds) : v.eventsChecked
                if v.valid {
                    print(
                        "audit log intact: \(v.eventsChecked) events (sequence \(v.firstSequence ?? 0)…\(v.lastSequence ?? 0)), "
                            + "head \(v.headHash?.hexString ?? "none"), \(rate) events/s")
                } else {
                    print(
                        "audit log BROKEN at sequence \(v.brokenAtSequence.map(String.init) ?? "?"): \(v.problem ?? "hash mismatch") "
                            + "(\(v.eventsChecked) events checked)")
                    Foundation.exit(1)
                }
            }
        }
    }
}

struct SeedDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed-demo",
        abstract: "Load realistic demo data: a week of signals, posture, a draft briefing, actions, recipients.")

    @Option(
        name: [.customLong("signals"), .customLong("rows")],
        help: "Number of signals to create (spread over the last seven days); above 2,000 they are inserted set-based.")
    var signals = 400

    func run() async throws {
        let config = loadConfiguration(needs: .database)
        bootstrapLogging(config)
        let logger = Logger(label: "sitrep.seed")
        try await withDatabase(config, logger: logger) { client in
            let summary = try await DemoData.seed(client: client, signals: signals, logger: logger)
            print(summary)
        }
    }
}

struct DevToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-token",
        abstract: "Print a bearer token signed by the local development issuer (refused in production).")

    @Option(name: .customLong("role"), help: "App role to grant (repeatable), e.g. Sitrep.Admin.")
    var roles: [String] = []

    @Option(help: "User name the token is for (its oid is derived from it).")
    var user = "dev.user@sitrep.local"

    @Option(help: "Display name.")
    var name = "Dev User"

    @Flag(help: "Include the MFA step-up authentication context (acrs).")
    var mfa = false

    @Flag(help: "Make an app-only token (for Sitrep.Ingest or Sitrep.BriefingWriter).")
    var app = false

    @Option(help: "Lifetime in hours.")
    var hours = 12

    func run() async throws {
        let config = loadConfiguration(needs: [])
        guard config.environment != .production, let keyPath = config.devIssuerKeyPath else {
            die("dev-token is refused in production")
        }
        let known = ["Sitrep.Viewer", "Sitrep.Admin", "Sitrep.Executive", "Sitrep.Ingest", "Sitrep.BriefingWriter"]
        for r in roles where !known.contains(r) {
            FileHandle.standardError.write(Data("sitrep: unknown role \(r) (known: \(known.joined(separator: ", ")))\n".utf8))
            throw ExitCode(2)
        }
        let pem = try DevIssuer.loadOrCreatePrivateKey(at: keyPath)
        let token = try await DevIssuer.token(
            privateKeyPEM: pem, roles: roles.isEmpty ? ["Sitrep.Viewer"] : roles, user: user, name: name, mfa: mfa, app: app,
            lifetime: .seconds(hours * 3600), issuer: config.oidcIssuer ?? DevIssuer.issuer)
        print(token)
    }
}

/// The local OpenID Connect provider (discovery, JWKS, authorize, token) for development: the
/// same sign-in code path as Azure AD, only the issuer URL differs. Refused in production.
struct DevIssuerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-issuer",
        abstract: "Run the local OpenID Connect provider for development (refused in production).",
        discussion: """
            Signs users in at once (no password): viewer, admin, exec, exec2 — pick one with \
            /v1/auth/login?loginHint=<user>. Signs with the development key, so `sitrep dev-token` \
            tokens validate too when SITREP_OIDC_ISSUER names this issuer.
            """)

    @Option(help: "Port on 127.0.0.1 to listen on.")
    var port = 8081

    func run() async throws {
        let config = loadConfiguration(needs: [])
        bootstrapLogging(config)
        guard config.environment != .production, let keyPath = config.devIssuerKeyPath else {
            die("dev-issuer is refused in production")
        }
        let pem = try DevIssuer.loadOrCreatePrivateKey(at: keyPath)
        let issuer = try await LocalIssuer.start(LocalIssuerConfiguration(privateKeyPEM: pem), port: port, logger: Logger(label: "dev-issuer"))
        FileHandle.standardOutput.write(Data((issuer.issuer + "\n").utf8))  // unbuffered: Tools/run waits for this line
        while !Task.isCancelled {
            try await Task.sleep(for: .seconds(3600))
        }
        await issuer.stop()
    }
}

/// Runs `body` with a pooled PostgreSQL client, then shuts the pool down.
func withDatabase(_ config: Configuration, logger: Logger, _ body: @escaping @Sendable (PostgresClient) async throws -> Void) async throws {
    let database: DatabaseConfiguration
    do {
        database = try DatabaseConfiguration(url: config.databaseURL)
    } catch {
        die("\(error)")
    }
    var quiet = logger
    quiet.logLevel = .error  // the pool warns about a lease made a moment before run() starts
    let client = PostgresClient(configuration: database.clientConfiguration, backgroundLogger: quiet)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        do {
            try await body(client)
        } catch {
            die("\(error)")
        }
    }
}
