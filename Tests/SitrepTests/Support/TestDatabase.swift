import Foundation
import PostgresNIO
import Storage

/// A fresh PostgreSQL database for one test, on the server named by
/// `SITREP_TEST_DATABASE_URL` (Tools/test sets it; any database on that server
/// that the user may connect to works, e.g. `postgres://postgres@127.0.0.1:5433/postgres`).
///
///     @Test(.enabled(if: TestDatabase.isConfigured))
///     func something() async throws {
///         try await TestDatabase.with { db in
///             try await db.client.query("SELECT 1")
///         }
///     }
///
/// `with` creates `sitrep_test_<random>`, applies every migration in
/// `migrations/` (unless `migrate: false`), runs the body with a running
/// `PostgresClient`, then stops the client and drops the database, also when
/// the body throws. Set `SITREP_TEST_KEEP_DB=1` to keep the databases for a look.
struct TestDatabase: Sendable {
    /// The database's name, `sitrep_test_<16 hex digits>`.
    let name: String
    /// Connection settings for this database (the server URL's, with the database swapped).
    let configuration: PostgresClient.Configuration
    /// A running client on this database.
    let client: PostgresClient
    /// The migrations that were applied (empty with `migrate: false`).
    let migrations: [Migration]

    static let environmentKey = "SITREP_TEST_DATABASE_URL"

    static var serverURL: String? {
        ProcessInfo.processInfo.environment[environmentKey].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Skipped only outside CI when no server is configured; under CI a missing URL fails loudly.
    static var isConfigured: Bool { serverURL != nil || ProcessInfo.processInfo.environment["CI"] != nil }

    /// `<package root>/migrations`, found from this file's path.
    static var migrationsDirectory: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Support
            .deletingLastPathComponent()  // SitrepTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // package root
            .appendingPathComponent("migrations", isDirectory: true)
    }

    static func loadMigrations() throws -> [Migration] {
        try MigrationSource.load(directory: migrationsDirectory)
    }

    /// Quiet logger for tests (warnings and errors only).
    static var logger: Logger {
        var logger = Logger(label: "sitrep.test.db")
        logger.logLevel = .warning
        return logger
    }

    /// The clients' background logger: errors only (postgres-nio warns when a
    /// lease is requested a moment before `run()` has started, which is harmless).
    static var backgroundLogger: Logger {
        var logger = Logger(label: "sitrep.test.db.pool")
        logger.logLevel = .error
        return logger
    }

    struct NotConfigured: Error, CustomStringConvertible {
        var description: String { "\(TestDatabase.environmentKey) is not set; run the tests through Tools/test" }
    }

    static func serverConfiguration() throws -> PostgresClient.Configuration {
        guard let url = serverURL else { throw NotConfigured() }
        return try DatabaseConfiguration(url: url).clientConfiguration
    }

    static func with<T: Sendable>(
        migrate: Bool = true,
        _ body: (TestDatabase) async throws -> T
    ) async throws -> T {
        let server = try serverConfiguration()
        let name = "sitrep_test_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        // An identifier cannot be a bind parameter; `name` is ours (letters, digits, '_').
        try await withRunningClient(server) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name) ENCODING 'UTF8' TEMPLATE template0"), logger: logger)
            return ()
        }

        var configuration = server
        configuration.database = name
        configuration.options.maximumConnections = 8

        let result: Result<T, any Error>
        do {
            let value = try await withRunningClient(configuration) { client in
                var applied: [Migration] = []
                if migrate {
                    applied = try await Migrator(client: client, migrations: loadMigrations(), logger: logger).migrate()
                }
                return try await body(TestDatabase(name: name, configuration: configuration, client: client, migrations: applied))
            }
            result = .success(value)
        } catch {
            result = .failure(error)
        }

        if ProcessInfo.processInfo.environment["SITREP_TEST_KEEP_DB"] != "1" {
            try await withRunningClient(server) { admin in
                try await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
                return ()
            }
        }
        return try result.get()
    }

    /// Another, independent client on this database (its own pool), running for
    /// the body's duration.
    func withExtraClient<T: Sendable>(_ body: (PostgresClient) async throws -> T) async throws -> T {
        try await Self.withRunningClient(configuration, body)
    }

    /// Runs `client.run()` in a child task for the body's duration.
    static func withRunningClient<T: Sendable>(
        _ configuration: PostgresClient.Configuration,
        _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = PostgresClient(configuration: configuration, backgroundLogger: backgroundLogger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
