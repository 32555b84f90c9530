import Foundation
import Handlers
import PostgresNIO
import Storage
import Testing

// MARK: - DatabaseConfiguration (no database needed)

@Suite("DatabaseConfiguration")
struct DatabaseConfigurationTests {
    @Test func parsesAFullURL() throws {
        let config = try DatabaseConfiguration(
            url: "postgres://sitrep:s%40cr%3At@db.example.com:6543/sitrep_prod?sslmode=verify-full&pool_max=7&connect_timeout=3")
        #expect(config.username == "sitrep")
        #expect(config.host == "db.example.com")
        #expect(config.port == 6543)
        #expect(config.database == "sitrep_prod")
        #expect(config.sslMode == .verifyFull)
        #expect(config.poolMax == 7)
        #expect(config.connectTimeoutSeconds == 3)
        let client = config.clientConfiguration
        #expect(client.username == "sitrep")
        #expect(client.password == "s@cr:t")
        #expect(client.host == "db.example.com")
        #expect(client.port == 6543)
        #expect(client.database == "sitrep_prod")
        #expect(client.options.maximumConnections == 7)
        #expect(client.options.connectTimeout == .seconds(3))
        #expect(!config.redactedDescription.contains("s@cr"))
        #expect(config.redactedDescription.contains("sslmode=verify-full"))
    }

    @Test func defaults() throws {
        let config = try DatabaseConfiguration(url: "postgresql://app@localhost/app")
        #expect(config.port == 5432)
        #expect(config.sslMode == .prefer)
        #expect(config.poolMax == 20)
        #expect(config.clientConfiguration.options.maximumConnections == 20)
        #expect(config.clientConfiguration.password == nil)
        #expect(config.connectTimeoutSeconds == 10)
    }

    /// The servers' pools: fixed size, no timers per release unless keep-alive is asked for.
    @Test func aFixedPoolPingsOnlyWhenAsked() throws {
        let config = try DatabaseConfiguration(url: "postgres://app@db.example:5432/app?sslmode=require&connect_timeout=3")
        let fixed = config.clientConfiguration(poolSize: 12, keepAlive: nil)
        #expect(fixed.options.minimumConnections == 12 && fixed.options.maximumConnections == 12)
        #expect(fixed.options.keepAliveBehavior == nil)
        #expect(fixed.options.connectTimeout == .seconds(3) && fixed.host == "db.example")
        let pinged = config.clientConfiguration(poolSize: 4, keepAlive: .seconds(60))
        #expect(pinged.options.keepAliveBehavior?.frequency == .seconds(60) && pinged.options.minimumConnections == 4)
    }

    @Test func ipv6AndSocket() throws {
        let v6 = try DatabaseConfiguration(url: "postgres://u:p@[::1]:5433/d?sslmode=disable")
        #expect(v6.host == "::1")
        #expect(v6.port == 5433)
        let socket = try DatabaseConfiguration(url: "postgres://u@/d?host=/var/run/postgresql")
        #expect(socket.host == nil)
        #expect(socket.unixSocketPath == "/var/run/postgresql/.s.PGSQL.5432")
        #expect(socket.clientConfiguration.unixSocketPath == "/var/run/postgresql/.s.PGSQL.5432")
    }

    @Test func passwordWithUnescapedAt() throws {
        let config = try DatabaseConfiguration(url: "postgres://u:p@ss/w@h:1/d")
        #expect(config.clientConfiguration.password == "p@ss/w")
        #expect(config.host == "h")
    }

    @Test(arguments: [
        ("mysql://u@h/d", "scheme 'mysql://'"),
        ("u:secret@h/d", "must start with postgres://"),
        ("", "empty"),
        ("postgres://h/d", "no user name"),
        ("postgres://:secret@h/d", "empty user name"),
        ("postgres://u:secret@h:99999/d", "port '99999'"),
        ("postgres://u:secret@h:abc/d", "port 'abc'"),
        ("postgres://u:secret@/d", "no host"),
        ("postgres://u:secret@h/d?sslmode=maybe", "sslmode 'maybe'"),
        ("postgres://u:secret@h/d?pool_max=0", "pool_max '0'"),
        ("postgres://u:secret@h/d?pool_max=lots", "pool_max 'lots'"),
        ("postgres://u:secret@h/d?connect_timeout=-1", "connect_timeout '-1'"),
        ("postgres://u:secret@h/d?sslmod=require", "parameter 'sslmod' is not supported"),
        ("postgres://u:secret@h/d?pool_max=1&pool_max=2", "more than once"),
        ("postgres://u:secret@h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "sslrootcert file '/nonexistent/ca.pem'"),
        ("postgres://u:sec%zzret@h/d", "invalid %-escape in the password"),
        ("postgres://u:secret@h1,h2/d", "several hosts"),
        ("postgres://u:secret@::1/d", "IPv6"),
    ])
    func rejectsWithOneClearLine(url: String, expected: String) {
        do {
            _ = try DatabaseConfiguration(url: url)
            Issue.record("expected \(url) to be rejected")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
            #expect(!error.description.contains("secret"), "error leaks the password: \(error.description)")
            #expect(!error.description.contains("\n"))
        }
    }
}

@Suite("Connection check", .enabled(if: TestDatabase.isConfigured))
struct DatabaseConnectionCheckTests {
    @Test func reachableServerPasses() async throws {
        let config = try DatabaseConfiguration(url: TestDatabase.serverURL ?? "")
        try await config.checkConnection(logger: TestDatabase.logger)
    }

    @Test func missingDatabaseIsOneClearLine() async throws {
        let server = try DatabaseConfiguration(url: TestDatabase.serverURL ?? "")
        let host = server.host.map { $0.contains(":") ? "[\($0)]" : $0 } ?? ""
        let socket =
            server.unixSocketPath.map { path in
                "&host=" + String(path.prefix(upTo: path.range(of: "/.s.PGSQL.")?.lowerBound ?? path.endIndex))
            } ?? ""
        let url = "postgres://\(server.username)@\(host):\(server.port)/sitrep_no_such_db?sslmode=\(server.sslMode.rawValue)\(socket)"
        let config = try DatabaseConfiguration(url: url)
        let error = await #expect(throws: DatabaseConfigurationError.self) {
            try await config.checkConnection(logger: TestDatabase.logger)
        }
        #expect(error?.description.contains("sitrep_no_such_db\" does not exist") == true, "\(error?.description ?? "")")
        #expect(error?.description.contains("\n") == false)
    }

    @Test func refusedPortIsReportedNotAwaitedForever() async throws {
        let config = try DatabaseConfiguration(url: "postgres://nobody:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
        let error = await #expect(throws: DatabaseConfigurationError.self) {
            try await config.checkConnection(logger: TestDatabase.logger)
        }
        #expect(error?.description.contains("cannot connect to postgres://nobody@127.0.0.1:1/x") == true, "\(error?.description ?? "")")
        #expect(error?.description.contains("secret") == false)
    }
}

// MARK: - MigrationSource (files only)

@Suite("MigrationSource")
struct MigrationSourceTests {
    func withTemporaryDirectory<T>(_ files: [String: String], _ body: (URL) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sitrep-migrations-\(UInt64.random(in: 0...UInt64.max))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, content) in files {
            try Data(content.utf8).write(to: directory.appendingPathComponent(name))
        }
        return try body(directory)
    }

    @Test func loadsSortedWithChecksumsAndIgnoresOtherFiles() throws {
        let migrations = try withTemporaryDirectory([
            "0002_second.sql": "abc",
            "0001_first.sql": "",
            "README.md": "not a migration",
            ".gitkeep": "",
        ]) { try MigrationSource.load(directory: $0) }
        #expect(migrations.map(\.version) == [1, 2])
        #expect(migrations.map(\.name) == ["first", "second"])
        #expect(migrations.map(\.fileName) == ["0001_first.sql", "0002_second.sql"])
        // SHA-256 test vectors for "" and "abc"
        #expect(migrations[0].checksum == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(migrations[1].checksum == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func duplicateVersionNamesBothFiles() throws {
        let error = try withTemporaryDirectory(["0003_a.sql": "", "0003_b.sql": ""]) { directory in
            #expect(throws: MigrationError.self) { try MigrationSource.load(directory: directory) }
        }
        #expect(error?.kind == .duplicateVersion)
        #expect(error?.description.contains("0003_a.sql") == true)
        #expect(error?.description.contains("0003_b.sql") == true)
    }

    @Test(arguments: ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "0001_.sql", "abcd_x.sql", "0000_zero.sql"])
    func badNameIsAnErrorNamingTheFile(fileName: String) throws {
        let error = try withTemporaryDirectory([fileName: "select 1"]) { directory in
            #expect(throws: MigrationError.self) { try MigrationSource.load(directory: directory) }
        }
        #expect(error?.kind == .badFileName)
        #expect(error?.description.contains(fileName) == true)
    }

    @Test func missingDirectory() {
        let error = #expect(throws: MigrationError.self) {
            try MigrationSource.load(directory: URL(fileURLWithPath: "/nonexistent/migrations"))
        }
        #expect(error?.description.contains("/nonexistent/migrations") == true)
    }

    @Test func projectMigrationsLoad() throws {
        let migrations = try TestDatabase.loadMigrations()
        #expect(migrations.first?.fileName == "0001_initial.sql")
        #expect(Set(migrations.map(\.version)).count == migrations.count)
    }
}

// MARK: - Migrator (real PostgreSQL)

@Suite("Migrator", .enabled(if: TestDatabase.isConfigured))
struct MigratorTests {
    let logger = TestDatabase.logger

    func tableExists(_ name: String, _ client: PostgresClient) async throws -> Bool {
        let rows = try await client.query("SELECT to_regclass(\(name)) IS NOT NULL")
        for try await exists in rows.decode(Bool.self) { return exists }
        return false
    }

    func appliedVersions(_ client: PostgresClient) async throws -> [Int] {
        var versions: [Int] = []
        for try await version in try await client.query("SELECT version FROM schema_migrations ORDER BY version").decode(Int.self) {
            versions.append(version)
        }
        return versions
    }

    @Test func migrateAppliesAllThenNothing() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let all = try TestDatabase.loadMigrations()
            let migrator = Migrator(client: db.client, migrations: all, logger: logger)
            #expect(try await migrator.pending() == all)

            let applied = try await migrator.migrate()
            #expect(applied == all)
            #expect(try await migrator.pending().isEmpty)
            #expect(try await appliedVersions(db.client) == all.map(\.version))

            let again = try await migrator.migrate()
            #expect(again.isEmpty)
            #expect(try await appliedVersions(db.client) == all.map(\.version))

            // the recorded checksum is the file's
            for try await (version, checksum) in try await db.client.query(
                "SELECT version, checksum FROM schema_migrations ORDER BY version"
            ).decode((Int, String).self) {
                #expect(all.first { $0.version == version }?.checksum == checksum)
            }
        }
    }

    @Test func twoMigratorsAtOnceApplyEachMigrationOnce() async throws {
        try await TestDatabase.with(migrate: false) { db in
            // The project's migrations plus a slow one, so the second instance
            // really has to wait on the advisory lock.
            let all =
                try TestDatabase.loadMigrations()
                + [Migration(version: 900_000, name: "slow", sql: "SELECT pg_sleep(0.3);")]
            let (first, second) = try await db.withExtraClient { other in
                async let a = Migrator(client: db.client, migrations: all, logger: logger).migrate()
                async let b = Migrator(client: other, migrations: all, logger: logger).migrate()
                return try await (a, b)
            }
            #expect(first.count + second.count == all.count)
            #expect(first.isEmpty || second.isEmpty)
            #expect(try await appliedVersions(db.client) == all.map(\.version))
            // The lock was released: nobody holds it now.
            let rows = try await db.client.query(
                """
                SELECT count(*) FROM pg_locks
                WHERE locktype = 'advisory' AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """)
            for try await count in rows.decode(Int.self) { #expect(count == 0) }
        }
    }

    @Test func changedChecksumRefusesAndAppliesNothing() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let v1 = Migration(version: 1, name: "first", sql: "CREATE TABLE first_t (x int);")
            try await Migrator(client: db.client, migrations: [v1], logger: logger).migrate()

            let edited = Migration(version: 1, name: "first", sql: "CREATE TABLE first_t (x int, y int);")
            let v2 = Migration(version: 2, name: "second", sql: "CREATE TABLE second_t (x int);")
            let migrator = Migrator(client: db.client, migrations: [edited, v2], logger: logger)
            let error = await #expect(throws: MigrationError.self) { try await migrator.migrate() }
            #expect(error?.kind == .changedAfterApplied)
            #expect(error?.description.contains("migration 0001_first.sql was changed after it was applied") == true)
            #expect(error?.description.contains(String(v1.checksum.prefix(12))) == true)
            #expect(error?.description.contains(String(edited.checksum.prefix(12))) == true)
            #expect(try await tableExists("second_t", db.client) == false)
            #expect(try await appliedVersions(db.client) == [1])
        }
    }

    @Test func appliedVersionWithoutFileRefuses() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let v1 = Migration(version: 1, name: "first", sql: "SELECT 1;")
            let v2 = Migration(version: 2, name: "second", sql: "SELECT 2;")
            try await Migrator(client: db.client, migrations: [v1, v2], logger: logger).migrate()
            let v3 = Migration(version: 3, name: "third", sql: "CREATE TABLE third_t (x int);")
            let error = await #expect(throws: MigrationError.self) {
                try await Migrator(client: db.client, migrations: [v1, v3], logger: logger).migrate()
            }
            #expect(error?.kind == .missingFile)
            #expect(error?.description.contains("0002_second.sql") == true)
            #expect(try await tableExists("third_t", db.client) == false)
        }
    }

    @Test func outOfOrderMigrationRefuses() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let v1 = Migration(version: 1, name: "first", sql: "SELECT 1;")
            let v3 = Migration(version: 3, name: "third", sql: "SELECT 3;")
            try await Migrator(client: db.client, migrations: [v1, v3], logger: logger).migrate()
            let v2 = Migration(version: 2, name: "second", sql: "CREATE TABLE second_t (x int);")
            let error = await #expect(throws: MigrationError.self) {
                try await Migrator(client: db.client, migrations: [v1, v2, v3], logger: logger).migrate()
            }
            #expect(error?.kind == .outOfOrder)
            #expect(error?.description.contains("0002_second.sql") == true)
            #expect(try await tableExists("second_t", db.client) == false)
        }
    }

    @Test func pendingListsWhatIsNotApplied() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let v1 = Migration(version: 1, name: "first", sql: "SELECT 1;")
            let v2 = Migration(version: 2, name: "second", sql: "SELECT 2;")
            let v3 = Migration(version: 3, name: "third", sql: "SELECT 3;")
            #expect(try await Migrator(client: db.client, migrations: [v1, v2, v3], logger: logger).pending() == [v1, v2, v3])
            try await Migrator(client: db.client, migrations: [v1], logger: logger).migrate()
            #expect(try await Migrator(client: db.client, migrations: [v1, v2, v3], logger: logger).pending() == [v2, v3])
        }
    }

    @Test func failingMigrationRollsBackAndSaysWhere() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let v1 = Migration(version: 1, name: "first", sql: "CREATE TABLE first_t (x int);")
            let v2 = Migration(version: 2, name: "broken", sql: "CREATE TABLE half_t (x int);\nINSERT INTO nope VALUES (1);\n")
            let migrator = Migrator(client: db.client, migrations: [v1, v2], logger: logger)
            let error = await #expect(throws: MigrationError.self) { try await migrator.migrate() }
            #expect(error?.kind == .failed)
            let text = error?.description ?? ""
            #expect(text.contains("0002_broken.sql"), "\(text)")
            #expect(text.contains("line 2"), "\(text)")
            #expect(text.contains("\"nope\" does not exist"), "\(text)")
            let firstExists = try await tableExists("first_t", db.client)
            let halfExists = try await tableExists("half_t", db.client)
            #expect(firstExists)
            #expect(!halfExists)
            let stillPending = try await migrator.pending()
            #expect(stillPending == [v2])
            // and the lock was given back: a fixed file applies
            let fixed = Migration(version: 2, name: "broken", sql: "CREATE TABLE half_t (x int);")
            let applied = try await Migrator(client: db.client, migrations: [v1, fixed], logger: logger).migrate()
            #expect(applied == [fixed])
        }
    }

    @Test func multiStatementFilesWithQuotesCommentsAndEmptyFiles() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let tricky = Migration(
                version: 1, name: "tricky",
                sql: """
                    -- a comment; with a semicolon
                    /* block; /* nested */ comment */
                    CREATE TABLE t (s text);
                    INSERT INTO t VALUES ('it''s; fine'), ($$dollar; $sitrep_sql$ quoted$$), (E'escaped\\'; quote');
                    CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$;
                    CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;
                    -- trailing comment without newline
                    """)
            let empty = Migration(version: 2, name: "only_comments", sql: "-- nothing yet\n/* still nothing */\n")
            let applied = try await Migrator(client: db.client, migrations: [tricky, empty], logger: logger).migrate()
            #expect(applied == [tricky, empty])
            var values: [String] = []
            for try await value in try await db.client.query("SELECT s FROM t ORDER BY s").decode(String.self) {
                values.append(value)
            }
            #expect(values == ["dollar; $sitrep_sql$ quoted", "escaped'; quote", "it's; fine"])
        }
    }
}

// MARK: - Schema

@Suite("Schema", .enabled(if: TestDatabase.isConfigured))
struct StorageSchemaTests {
    @Test func postureIsSeededAtNormal() async throws {
        try await TestDatabase.with { db in
            var rows: [String: String] = [:]
            for try await (domain, level, version, setBy, setAt) in try await db.client.query(
                "SELECT domain, level, version, set_by, set_at FROM posture"
            ).decode((String, String, Int, String?, Date?).self) {
                rows[domain] = level
                #expect(version == 1)
                #expect(setBy == nil)
                #expect(setAt == nil)
            }
            #expect(
                rows == [
                    "cyber": "normal", "physical": "normal", "financial": "normal",
                    "operational": "normal", "reputational": "normal", "information": "normal",
                ])
        }
    }

    @Test func signalsConstraintsAndGeneratedColumns() async throws {
        try await TestDatabase.with { db in
            let id = UUID()
            let rows = try await db.client.query(
                """
                INSERT INTO signals (id, source, source_id, title, summary, category, severity, confidence,
                                     model_version, tags, published_at, content_hash)
                VALUES (\(id), 'reuters', 'r-1', 'Port strike spreads', 'Dockworkers walk out', 'economic', 'high', 0.9,
                        'm-1', ARRAY['ports','labour'], now(), 'abc')
                RETURNING severity_rank, status, version, search_vector @@ websearch_to_tsquery('simple', 'dockworkers')
                """)
            for try await (rank, status, version, matches) in rows.decode((Int, String, Int, Bool).self) {
                #expect(rank == 3)
                #expect(status == "new")
                #expect(version == 1)
                #expect(matches)
            }
            // (source, source_id) is unique
            await #expect(throws: PSQLError.self) {
                try await db.client.query(
                    """
                    INSERT INTO signals (id, source, source_id, title, summary, category, severity, confidence,
                                         model_version, published_at, content_hash)
                    VALUES (\(UUID()), 'reuters', 'r-1', 't', 's', 'economic', 'low', 0.1, 'm', now(), 'x')
                    """)
            }
            // enums and ranges are checked
            for (category, severity, confidence) in [("weather", "low", 0.5), ("economic", "severe", 0.5), ("economic", "low", 1.5)] {
                let error = await #expect(throws: PSQLError.self) {
                    try await db.client.query(
                        """
                        INSERT INTO signals (id, source, source_id, title, summary, category, severity, confidence,
                                             model_version, published_at, content_hash)
                        VALUES (\(UUID()), 'x', \(UUID().uuidString), 't', 's', \(category), \(severity), \(confidence), 'm', now(), 'x')
                        """)
                }
                #expect(error?.serverInfo?[.sqlState] == "23514")
            }
        }
    }
}

// MARK: - Audit log

@Suite("Audit log", .enabled(if: TestDatabase.isConfigured))
struct AuditChainTests {
    func event(_ n: Int) -> AuditEventInput {
        AuditEventInput(
            action: "posture.set",
            outcome: n % 5 == 4 ? .refused : .succeeded,
            actorId: n % 3 == 0 ? "system:worker" : "user-\(n)",
            actorName: n % 3 == 0 ? nil : "عمر Omar \(n)",
            actorRoles: n % 2 == 0 ? ["Sitrep.Executive", "Sitrep.Viewer"] : [],
            entityType: "posture",
            entityId: "cyber",
            fromState: "normal",
            toState: n % 2 == 0 ? "elevated" : nil,
            reason: "رفع مستوى الجاهزية — raised \(n)",
            requestId: "req-\(n)",
            clientAddress: "203.0.113.\(n % 250)",
            details: n % 2 == 0 ? ["n": .int(Int64(n)), "tags": ["a", "é\"\\\n"], "ok": true, "none": nil, "x": 1.5] : nil)
    }

    func append(_ count: Int, from start: Int = 0, client: PostgresClient) async throws -> [AuditRecord] {
        var records: [AuditRecord] = []
        for n in start..<(start + count) {
            let stored = try await client.withTransaction(logger: TestDatabase.logger) { connection in
                try await appendAudit(event(n), on: connection)
            }
            records.append(stored)
        }
        return records
    }

    func expectRefused(_ sql: String, _ client: PostgresClient) async {
        let error = await #expect(throws: PSQLError.self) {
            try await client.query(PostgresQuery(unsafeSQL: sql))
        }
        #expect(error?.serverInfo?[.sqlState] == "42501", "\(sql)")
        #expect(error?.serverInfo?[.message]?.contains("append-only") == true, "\(sql)")
    }

    @Test func theApplicationRoleCanAppendButNeverRewrite() async throws {
        try await TestDatabase.with { db in
            try await db.client.withConnection { conn in
                try await conn.query("SET ROLE sitrep_app", logger: TestDatabase.logger)
                try await conn.query("BEGIN", logger: TestDatabase.logger)
                try await appendAudit(
                    AuditEventInput(action: "role.check", outcome: .succeeded, actorId: "app", entityType: "test", entityId: "1"),
                    on: conn, logger: TestDatabase.logger)
                try await conn.query("COMMIT", logger: TestDatabase.logger)
                for sql in [
                    "UPDATE audit_events SET reason = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events",
                    "UPDATE briefing_revisions SET title = 'x'", "DELETE FROM signals", "TRUNCATE briefings",
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (99, 'x', 'y')",
                ] {
                    let error = await #expect(throws: PSQLError.self, "\(sql)") {
                        try await conn.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger)
                    }
                    #expect(error?.serverInfo?[.sqlState] == "42501", "\(sql)")
                    #expect(error?.serverInfo?[.message]?.hasPrefix("permission denied") == true, "\(sql)")
                }
                try await conn.query("RESET ROLE", logger: TestDatabase.logger)
            }
            #expect(try await AuditVerifier().verify(client: db.client).valid)
        }
    }

    /// Under an AuditBatch the events are written at the end of the transaction, in the order
    /// recorded, then the steps behind them; the chain head is not held while the rest of the
    /// transaction runs, so another writer appends and commits meanwhile without waiting.
    @Test func batchedEventsAreWrittenAtTheEndAndDoNotHoldTheChainHead() async throws {
        try await TestDatabase.with { db in
            let log = TestDatabase.logger
            @Sendable func count(_ conn: PostgresConnection) async throws -> Int {
                try await conn.query("SELECT count(*)::int8 FROM audit_events", logger: log).collect().first!.decode(Int.self)
            }
            let order = try await db.client.withAuditedTransaction(logger: log) { conn -> [String] in
                try await recordAudit(event(1), on: conn, logger: log)
                try await recordAudit(event(2), on: conn, logger: log)
                try await afterAudit(on: conn) { conn in
                    // Behind the events: they are in the table when this runs (with the other writer's).
                    let seen = try await count(conn)
                    #expect(seen == 3)
                }
                #expect(try await count(conn) == 0, "held back until the end")
                // Meanwhile another writer is not kept waiting by this transaction.
                try await db.client.withTransaction(logger: log) { other in
                    try await other.query("SET LOCAL lock_timeout = '2s'", logger: log)
                    try await appendAudit(event(3), on: other, logger: log)
                }
                return ["done"]
            }
            #expect(order == ["done"])
            let rows = try await db.client.query("SELECT request_id FROM audit_events ORDER BY sequence", logger: log).collect()
            #expect(try rows.map { try $0.decode(String.self) } == ["req-3", "req-1", "req-2"])
            #expect(try await AuditVerifier().verify(client: db.client).valid)

            // A transaction that fails writes none of what it held, and runs none of its steps.
            struct Failed: Error {}
            await #expect(throws: (any Error).self) {
                try await db.client.withAuditedTransaction(logger: log) { conn in
                    try await recordAudit(event(4), on: conn, logger: log)
                    try await afterAudit(on: conn) { conn in try await conn.query("SELECT 1/0", logger: log) }
                    throw Failed()
                }
            }
            let total = try await db.client.query("SELECT count(*)::int8 FROM audit_events", logger: log).collect().first!.decode(Int.self)
            #expect(total == 3)

            // Outside a batch (or on another connection than the batch's) an event is written at once.
            try await db.client.withAuditedTransaction(logger: log) { conn in
                try await db.client.withConnection { other in
                    try await recordAudit(event(5), on: other, logger: log)
                    #expect(try await count(other) == 4)
                }
            }
        }
    }

    @Test func appendReturnsTheStoredChainedRow() async throws {
        try await TestDatabase.with { db in
            let chosen = UUID()
            var input = event(0)
            input.id = chosen
            let first = try await db.client.withConnection { try await appendAudit(input, on: $0) }
            let more = try await append(2, from: 1, client: db.client)
            let records = [first] + more
            #expect(first.id == chosen)
            #expect(records.map(\.sequence) == [1, 2, 3])
            #expect(records[0].prevHash == nil)
            #expect(records[1].prevHash == records[0].hash)
            #expect(records[2].prevHash == records[1].hash)
            #expect(records[1].id != records[2].id)
            // database-made ids are UUIDv7
            #expect(records[1].id.uuidString.dropFirst(14).first == "7")
            #expect(records[0].reason == event(0).reason)
            #expect(records[0].actorId == "system:worker")
            #expect(records[1].actorName == "عمر Omar 1")
            #expect(records[0].actorRoles == ["Sitrep.Executive", "Sitrep.Viewer"])
            #expect(records[0].outcome == "succeeded")
            #expect(records[0].detailsJSON?.contains("\"tags\"") == true)
            #expect(records[1].detailsJSON == nil)
            #expect(records[2].hashHex.count == 64)
            for (index, stored) in records.enumerated() {
                #expect(stored.computedHash(previous: index == 0 ? nil : records[index - 1].hash) == stored.hash)
            }
            let page = try await fetchAuditRecords(entityType: "posture", entityId: "cyber", afterSequence: 1, limit: 1, on: db.client)
            #expect(page.map(\.sequence) == [2])
            #expect(try await fetchAuditRecords(entityType: "signal", on: db.client).isEmpty)
        }
    }

    @Test func swiftCanonicalFormMatchesTheDatabase() async throws {
        try await TestDatabase.with { db in
            _ = try await append(6, client: db.client)
            let rows = try await db.client.query(
                "SELECT \(unescaped: AuditRecord.selectList), convert_to(audit_canonical(e), 'UTF8') FROM audit_events e ORDER BY sequence")
            var count = 0
            for try await row in rows {
                let record = try AuditRecord(row: row)
                let canonical = try row.makeRandomAccess()[19].decode(ByteBuffer.self)
                #expect(record.canonicalBytes == Array(canonical.readableBytesView), "event \(record.sequence)")
                count += 1
            }
            #expect(count == 6)
        }
    }

    @Test func chainVerifiesAcrossPagesAndConcurrentWriters() async throws {
        try await TestDatabase.with { db in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask { _ = try await append(10, from: writer * 100, client: db.client) }
                }
                try await group.waitForAll()
            }
            // a rolled-back event leaves no trace, not even a gap
            await #expect(throws: (any Error).self) {
                try await db.client.withTransaction(logger: TestDatabase.logger) { connection in
                    try await appendAudit(event(999), on: connection)
                    throw CancellationError()
                }
            }
            let last = try await append(2, from: 500, client: db.client)
            #expect(last.map(\.sequence) == [41, 42])

            let result = try await AuditVerifier(pageSize: 7).verify(client: db.client)
            #expect(result.valid)
            #expect(result.eventsChecked == 42)
            #expect(result.firstSequence == 1)
            #expect(result.lastSequence == 42)
            #expect(result.headHash == last[1].hash)
            #expect(result.brokenAtSequence == nil)
            #expect(result.problem == nil)
        }
    }

    @Test func emptyLogVerifies() async throws {
        try await TestDatabase.with { db in
            let result = try await AuditVerifier().verify(client: db.client)
            #expect(result.valid)
            #expect(result.eventsChecked == 0)
            #expect(result.firstSequence == nil)
            #expect(result.headHash == nil)
        }
    }

    @Test func updateDeleteTruncateAreRefusedByTheDatabase() async throws {
        try await TestDatabase.with { db in
            _ = try await append(2, client: db.client)
            await expectRefused("UPDATE audit_events SET reason = 'x'", db.client)
            await expectRefused("UPDATE audit_events SET reason = 'x' WHERE false", db.client)
            await expectRefused("DELETE FROM audit_events", db.client)
            await expectRefused("TRUNCATE audit_events", db.client)
            // nor can the chain head be moved by hand
            let error = await #expect(throws: PSQLError.self) {
                try await db.client.query("UPDATE audit_chain_head SET last_sequence = 1")
            }
            #expect(error?.serverInfo?[.sqlState] == "42501")
            await #expect(throws: PSQLError.self) { try await db.client.query("DELETE FROM audit_chain_head") }
            // forged sequence and hashes on insert are overwritten by the trigger
            // ([UInt8] would bind as "char"[]: bind bytea as ByteBuffer)
            let forged = ByteBuffer(bytes: Array(repeating: UInt8(1), count: 32))
            try await db.client.query(
                """
                INSERT INTO audit_events (sequence, actor_id, action, outcome, entity_type, entity_id, prev_hash, hash)
                VALUES (77, 'u', 'x.y', 'succeeded', 'test', 't1', \(forged), \(forged))
                """)
            let result = try await AuditVerifier().verify(client: db.client)
            #expect(result.valid)
            #expect(result.eventsChecked == 3)
        }
    }

    @Test func repeatableReadWriterGetsASerializationFailureNotAFork() async throws {
        try await TestDatabase.with { db in
            _ = try await append(1, client: db.client)
            try await db.client.withConnection { connection in
                try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ", logger: TestDatabase.logger)
                try await connection.query("SELECT count(*) FROM audit_events", logger: TestDatabase.logger)  // takes the snapshot
                _ = try await append(1, from: 1, client: db.client)  // another transaction commits
                let error = await #expect(throws: PSQLError.self) {
                    try await appendAudit(event(2), on: connection)
                }
                #expect(error?.serverInfo?[.sqlState] == "40001")
                try await connection.query("ROLLBACK", logger: TestDatabase.logger)
            }
            #expect(try await AuditVerifier().verify(client: db.client).valid)
        }
    }

    /// As the superuser: switch the guards off, edit, switch them back on.
    func tamper(_ sql: PostgresQuery, _ client: PostgresClient) async throws {
        try await client.withConnection { connection in
            try await connection.query("ALTER TABLE audit_events DISABLE TRIGGER USER", logger: TestDatabase.logger)
            try await connection.query(sql, logger: TestDatabase.logger)
            try await connection.query("ALTER TABLE audit_events ENABLE TRIGGER USER", logger: TestDatabase.logger)
        }
    }

    @Test func editedRowIsReported() async throws {
        try await TestDatabase.with { db in
            _ = try await append(5, client: db.client)
            try await tamper("UPDATE audit_events SET reason = 'nothing to see' WHERE sequence = 3", db.client)
            let result = try await AuditVerifier(pageSize: 2).verify(client: db.client)
            #expect(!result.valid)
            #expect(result.brokenAtSequence == 3)
            #expect(result.eventsChecked == 2)
            #expect(result.problem?.contains("does not match its contents") == true)
            // and the guards are back on
            await expectRefused("UPDATE audit_events SET reason = 'x'", db.client)
        }
    }

    @Test func rehashedRowBreaksTheNextLink() async throws {
        try await TestDatabase.with { db in
            _ = try await append(4, client: db.client)
            // a forger who recomputes the edited row's own hash still breaks the next row's link
            try await tamper(
                """
                UPDATE audit_events e SET reason = 'forged',
                    hash = sha256(e.prev_hash || convert_to(audit_canonical(ROW(e.id, e.sequence, e.occurred_at, e.actor_id,
                        e.actor_name, e.actor_roles, e.action, e.outcome, e.entity_type, e.entity_id, e.from_state, e.to_state,
                        'forged', e.request_id, e.client_address, e.details, e.prev_hash, e.hash)::audit_events), 'UTF8'))
                WHERE sequence = 2
                """, db.client)
            let result = try await AuditVerifier().verify(client: db.client)
            #expect(result.brokenAtSequence == 3)
            #expect(result.problem?.contains("prev_hash") == true)
        }
    }

    @Test func deletedRowsAreReported() async throws {
        try await TestDatabase.with { db in
            _ = try await append(5, client: db.client)
            try await tamper("DELETE FROM audit_events WHERE sequence = 2", db.client)
            let middle = try await AuditVerifier().verify(client: db.client)
            #expect(!middle.valid)
            #expect(middle.brokenAtSequence == 2)
            #expect(middle.eventsChecked == 1)
        }
        try await TestDatabase.with { db in
            _ = try await append(3, client: db.client)
            try await tamper("DELETE FROM audit_events WHERE sequence = 3", db.client)
            let tail = try await AuditVerifier().verify(client: db.client)
            #expect(!tail.valid)
            #expect(tail.brokenAtSequence == 3)
            #expect(tail.eventsChecked == 2)
        }
    }
}

// MARK: - RowCallbackStatements (needs PostgreSQL)

@Suite("RowCallbackStatements", .enabled(if: TestDatabase.isConfigured))
struct RowCallbackStatementsTests {
    struct Refused: Error {}

    /// Collects an `int8` column, read as binary whatever the cell's label says; refuses the
    /// row numbered `refuseAt` (from 0).
    final class Collect: RowConsumer {
        var values: [Int64] = []
        var labels: Set<PostgresFormat> = []
        let refuseAt: Int?
        init(refuseAt: Int? = nil) { self.refuseAt = refuseAt }
        func consume(_ row: PostgresRow) throws {
            if values.count == refuseAt { throw Refused() }
            guard row.count == 1, let cell = row.first, var bytes = cell.bytes, bytes.readableBytes == 8,
                let value = bytes.readInteger(as: Int64.self)
            else { throw Refused() }
            labels.insert(cell.format)
            values.append(value)
        }
        func finish() -> ([Int64], Set<PostgresFormat>) { (values, labels) }
    }

    static let series = "SELECT i * 1000003 FROM generate_series(1::int8, $1::int8) AS i"

    /// Thousands of rows (several reads off the socket) arrive whole and in order, as binary
    /// `int8`s: eight bytes each, though postgres-nio labels them `.text`. If a postgres-nio
    /// release labels them truly, the label check here is what changes, not the values.
    @Test func rowsArriveInOrderAsBinaryValues() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let statements = RowCallbackStatements()
            let (values, labels) = try await db.client.withConnection { conn in
                try await statements.execute(Self.series, binds: [PostgresData(int64: 5000)], on: conn, into: Collect())
            }
            #expect(values == (1...5000).map { Int64($0) * 1000003 })
            #expect(labels == [.text])
            let none = try await db.client.withConnection { conn in
                try await statements.execute(Self.series, binds: [PostgresData(int64: 0)], on: conn, into: Collect())
            }
            #expect(none.0.isEmpty)
        }
    }

    /// A statement is prepared once per connection, however often it runs there.
    @Test func preparedOncePerConnection() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let statements = RowCallbackStatements()
            let prepared = try await db.client.withConnection { conn in
                for n in [3, 1, 2] {
                    let (values, _) = try await statements.execute(Self.series, binds: [PostgresData(int64: Int64(n))], on: conn, into: Collect())
                    #expect(values.count == n)
                }
                let rows = try await conn.query(
                    "SELECT count(*)::int8 FROM pg_prepared_statements WHERE statement = \(Self.series)", logger: TestDatabase.logger)
                var count: Int64 = -1
                for try await (c) in rows.decode(Int64.self) { count = c }
                return count
            }
            #expect(prepared == 1)
            #expect(statements.connectionCount == 1)
        }
    }

    /// A row the consumer refuses fails the call with the consumer's error; the rest of the
    /// result is dropped and the same connection answers the next call whole.
    @Test func aRefusedRowFailsTheCallAndTheConnectionGoesOn() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let statements = RowCallbackStatements()
            try await db.client.withConnection { conn in
                await #expect(throws: Refused.self) {
                    _ = try await statements.execute(Self.series, binds: [PostgresData(int64: 5000)], on: conn, into: Collect(refuseAt: 10))
                }
                // Refused in the first batch of rows and in a later one.
                await #expect(throws: Refused.self) {
                    _ = try await statements.execute(Self.series, binds: [PostgresData(int64: 5000)], on: conn, into: Collect(refuseAt: 4000))
                }
                let (values, _) = try await statements.execute(Self.series, binds: [PostgresData(int64: 5000)], on: conn, into: Collect())
                #expect(values.count == 5000)
            }
        }
    }

    /// SQL PostgreSQL refuses fails the call with PostgreSQL's error (and prepares nothing to
    /// keep); an error while running does too, and is not taken for a lost connection.
    @Test func refusedSQLFails() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let statements = RowCallbackStatements()
            await #expect(throws: PostgresError.self) {
                _ = try await db.client.withConnection { conn in
                    try await statements.execute("SELECT 1 / ($1::int8 - 1)", binds: [PostgresData(int64: 1)], on: conn, into: Collect())
                }
            }
            await #expect(throws: PostgresError.self) {
                _ = try await db.client.withConnection { conn in
                    try await statements.execute("SELECT nonsense FROM nowhere", on: conn, into: Collect())
                }
            }
            #expect(statements.connectionCount == 1)
        }
    }

    /// The server ending the connection under a call (an administrator's
    /// `pg_terminate_backend`, SQLSTATE 57P01) is a lost connection, not a failed statement.
    @Test func aTerminatedBackendIsALostConnection() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let statements = RowCallbackStatements()
            await #expect(throws: RowCallbackStatements.ConnectionLost.self) {
                _ = try await db.client.withConnection { conn in
                    try await statements.execute(
                        "SELECT pg_terminate_backend(pg_backend_pid())::int::int8 FROM generate_series(1::int8, $1::int8)",
                        binds: [PostgresData(int64: 1)], on: conn, into: Collect())
                }
            }
        }
    }

    /// A closed connection's statements are dropped when another connection comes along.
    @Test func closedConnectionsAreForgotten() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let statements = RowCallbackStatements()
            let c = db.configuration
            let own = try await PostgresConnection.connect(
                configuration: .init(
                    host: c.host ?? "127.0.0.1", port: c.port ?? 5432, username: c.username, password: c.password, database: c.database, tls: .disable
                ),
                id: 1, logger: TestDatabase.logger)
            _ = try await statements.execute(Self.series, binds: [PostgresData(int64: 1)], on: own, into: Collect())
            #expect(statements.connectionCount == 1)
            try await own.close()
            _ = try await db.client.withConnection { conn in
                try await statements.execute(Self.series, binds: [PostgresData(int64: 1)], on: conn, into: Collect())
            }
            #expect(statements.connectionCount == 1)
        }
    }
}

// MARK: - Per-hour signal counts (migrations 0013, 0014)

@Suite("Signal counts", .enabled(if: TestDatabase.isConfigured))
struct SignalCountsTests {
    /// Groups whose count (totals plus unfolded deltas) differs from counting `signals` afresh
    /// (either way round).
    static func mismatches(_ client: PostgresClient) async throws -> Int64 {
        let rows = try await client.query(
            """
            WITH kept AS (
                SELECT hour, severity, category, status, sum(n) AS n FROM (
                    SELECT hour, severity, category, status, n FROM signal_counts
                    UNION ALL SELECT hour, severity, category, status, n FROM signal_count_deltas
                ) AS parts GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
            ),
            fresh AS (
                SELECT date_trunc('hour', published_at, 'UTC') AS hour, severity, category, status, count(*) AS n
                FROM signals GROUP BY 1, 2, 3, 4
            )
            SELECT count(*)::int8 FROM ((SELECT * FROM kept EXCEPT SELECT * FROM fresh) UNION ALL (SELECT * FROM fresh EXCEPT SELECT * FROM kept)) AS d
            """, logger: TestDatabase.logger)
        var n: Int64 = -1
        for try await c in rows.decode(Int64.self) { n = c }
        return n
    }

    static func count(_ client: PostgresClient, _ sql: String) async throws -> Int64 {
        var n: Int64 = -1
        for try await c in try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).decode(Int64.self) { n = c }
        return n
    }

    /// One signal, on `conn` (inside the caller's transaction or role); `at` is SQL (`now()`) or
    /// a timestamp literal.
    static func insertOne(on conn: PostgresConnection, sourceId: String, category: String, severity: String, at: String) async throws {
        let published = at == "now()" ? at : "'\(at)'::timestamptz"
        try await conn.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO signals (id, source, source_id, title, summary, category, severity, confidence, model_version,
                                         published_at, content_hash)
                    VALUES (gen_random_uuid(), 'test', '\(sourceId)', 't', 's', '\(category)', '\(severity)', 0.5, 'm', \(published), 'h')
                    """), logger: TestDatabase.logger)
    }

    static func fold(_ client: PostgresClient) async throws -> Int {
        try await SignalCountsFolder(db: client, logger: TestDatabase.logger).fold()
    }

    static func insert(_ client: PostgresClient, _ values: String) async throws {
        try await client.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO signals (id, source, source_id, title, summary, category, severity, confidence, model_version,
                                         published_at, content_hash)
                    SELECT gen_random_uuid(), 'test', v.sid, 't', 's', v.category, v.severity, 0.5, 'm', v.at::timestamptz, 'h'
                    FROM (VALUES \(values)) AS v(sid, category, severity, at)
                    """), logger: TestDatabase.logger)
    }

    /// Whatever writes `signals` (batches across hour edges, status and time changes, deletes, a
    /// truncate), the per-hour counts stay exactly those of the table, hours taken in UTC
    /// whatever the session's time zone.
    @Test func theCountsFollowEveryWrite() async throws {
        try await TestDatabase.with { db in
            let c = db.client
            try await Self.insert(
                c,
                """
                ('a', 'economic', 'low', '2026-11-20 09:59:59.999+00'), ('b', 'economic', 'low', '2026-11-20 10:00:00+00'),
                ('c', 'security', 'critical', '2026-11-20 10:30:00+05:30'), ('d', 'health', 'medium', '2026-11-20 23:59:59+00')
                """)
            #expect(try await Self.mismatches(c) == 0)
            // A session in a time zone off the hour (+05:45) writes to the same UTC hours.
            try await c.withConnection { conn in
                try await conn.query("BEGIN", logger: TestDatabase.logger)
                try await conn.query("SET LOCAL TIME ZONE 'Asia/Kathmandu'", logger: TestDatabase.logger)
                try await Self.insertOne(on: conn, sourceId: "e", category: "economic", severity: "low", at: "2026-11-20 10:10:00+00")
                try await conn.query("COMMIT", logger: TestDatabase.logger)
            }
            #expect(try await Self.mismatches(c) == 0)
            // Two statements, two delta rows for 10:00 economic; folded, one total of 2.
            #expect(try await Self.fold(c) == 5)
            #expect(try await Self.count(c, "SELECT count(*)::int8 FROM signal_count_deltas") == 0)
            #expect(
                try await Self.count(c, "SELECT n FROM signal_counts WHERE hour = '2026-11-20 10:00:00+00' AND category = 'economic'")
                    == 2)
            #expect(try await Self.mismatches(c) == 0)

            try await c.query("UPDATE signals SET status = 'acknowledged' WHERE source_id IN ('a', 'b')", logger: TestDatabase.logger)
            try await c.query(
                "UPDATE signals SET published_at = published_at + interval '90 minutes' WHERE source_id = 'c'", logger: TestDatabase.logger)
            try await c.query("UPDATE signals SET title = 'renamed'", logger: TestDatabase.logger)
            #expect(try await Self.mismatches(c) == 0)
            try await Self.fold(c)
            #expect(try await Self.mismatches(c) == 0)
            try await c.query("DELETE FROM signals WHERE source_id = 'd'", logger: TestDatabase.logger)
            #expect(try await Self.mismatches(c) == 0)
            // The group 'd' left is empty: its folded total of zero is removed, not kept.
            try await Self.fold(c)
            #expect(try await Self.mismatches(c) == 0)
            #expect(try await Self.count(c, "SELECT count(*)::int8 FROM signal_counts WHERE n <= 0") == 0)
            #expect(try await Self.count(c, "SELECT count(*)::int8 FROM signal_counts WHERE category = 'health'") == 0)
            // A rolled-back write leaves no count behind.
            try await c.withConnection { conn in
                try await conn.query("BEGIN", logger: TestDatabase.logger)
                try await conn.query("UPDATE signals SET status = 'dismissed'", logger: TestDatabase.logger)
                try await conn.query("ROLLBACK", logger: TestDatabase.logger)
            }
            #expect(try await Self.mismatches(c) == 0)
            // A truncate empties the totals and the unfolded deltas.
            try await Self.insert(c, "('f', 'climate', 'high', '2026-11-21 08:00:00+00')")
            #expect(try await Self.count(c, "SELECT count(*)::int8 FROM signal_count_deltas") > 0)
            try await c.query("TRUNCATE signals CASCADE", logger: TestDatabase.logger)
            #expect(try await Self.count(c, "SELECT count(*)::int8 FROM signal_counts") == 0)
            #expect(try await Self.count(c, "SELECT count(*)::int8 FROM signal_count_deltas") == 0)
        }
    }

    /// The application role reads the counts and folds them, and cannot write them; its own
    /// writes to `signals` still keep them (the triggers and the fold run as the tables' owner).
    @Test func theApplicationRoleReadsButNeverWritesTheCounts() async throws {
        try await TestDatabase.with { db in
            try await db.client.withConnection { conn in
                try await conn.query("SET ROLE sitrep_app", logger: TestDatabase.logger)
                try await Self.insertOne(on: conn, sourceId: "x", category: "climate", severity: "high", at: "now()")
                let rows = try await conn.query("SELECT sum(n)::int8 FROM signal_count_deltas", logger: TestDatabase.logger)
                for try await n in rows.decode(Int64.self) { #expect(n == 1) }
                // It may fold (the server does), which moves the delta into the totals it reads.
                try await conn.query("SELECT signal_counts_fold()", logger: TestDatabase.logger)
                let totals = try await conn.query("SELECT sum(n)::int8 FROM signal_counts", logger: TestDatabase.logger)
                for try await n in totals.decode(Int64.self) { #expect(n == 1) }
                for sql in [
                    "UPDATE signal_counts SET n = 5", "INSERT INTO signal_counts VALUES (now(), 'low', 'health', 'new', 1)",
                    "INSERT INTO signal_count_deltas VALUES (now(), 'low', 'health', 'new', 1)", "DELETE FROM signal_count_deltas",
                ] {
                    await #expect(throws: PSQLError.self, "\(sql)") {
                        try await conn.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger)
                    }
                }
                try await conn.query("RESET ROLE", logger: TestDatabase.logger)
            }
            #expect(try await Self.mismatches(db.client) == 0)
        }
    }

    /// Two transactions writing signals of the same hour and group do not wait for each other:
    /// each appends its own delta rows (0013's in-place totals made the second wait for the
    /// first's commit).
    @Test func concurrentWritersOfOneGroupDoNotWaitForEachOther() async throws {
        try await TestDatabase.with { db in
            try await Self.insert(db.client, "('seed', 'economic', 'low', '2026-11-20 10:05:00+00')")
            try await Self.fold(db.client)
            try await db.client.withConnection { first in
                try await first.query("BEGIN", logger: TestDatabase.logger)
                try await first.query(
                    "UPDATE signals SET status = 'acknowledged' WHERE source_id = 'seed'", logger: TestDatabase.logger)
                try await Self.insertOne(on: first, sourceId: "one", category: "economic", severity: "low", at: "2026-11-20 10:10:00+00")
                // Still open: a second writer of the same group commits without waiting for it.
                try await db.client.withConnection { second in
                    try await second.query("SET lock_timeout = '2s'", logger: TestDatabase.logger)
                    try await second.query("BEGIN", logger: TestDatabase.logger)
                    try await Self.insertOne(on: second, sourceId: "two", category: "economic", severity: "low", at: "2026-11-20 10:20:00+00")
                    // And a fold meanwhile takes only what is committed.
                    try await second.query("SELECT signal_counts_fold()", logger: TestDatabase.logger)
                    try await second.query("COMMIT", logger: TestDatabase.logger)
                }
                try await first.query("COMMIT", logger: TestDatabase.logger)
            }
            #expect(try await Self.mismatches(db.client) == 0)
            try await Self.fold(db.client)
            #expect(try await Self.mismatches(db.client) == 0)
            #expect(try await Self.count(db.client, "SELECT count(*)::int8 FROM signal_count_deltas") == 0)
            #expect(
                try await Self.count(
                    db.client, "SELECT n FROM signal_counts WHERE category = 'economic' AND status = 'new'") == 2)
        }
    }

    /// Folds from several connections, running while signals are written, updated and deleted
    /// on others, never lose or double a change; a fold that finds another running returns 0.
    @Test func foldsRacingWritersAndEachOtherKeepTheCounts() async throws {
        try await TestDatabase.with { db in
            let c = db.client
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<3 {
                    group.addTask {
                        for round in 0..<15 {
                            let values = (0..<6).map { i in
                                let category = ["economic", "health", "climate"][(i + round) % 3]
                                let severity = ["low", "high"][(i + writer) % 2]
                                return "('w\(writer)-\(round)-\(i)', '\(category)', '\(severity)', '2026-11-20 \(10 + i % 2):\(10 + round):00+00')"
                            }
                            try await Self.insert(c, values.joined(separator: ", "))
                            try await c.query(
                                PostgresQuery(
                                    unsafeSQL:
                                        "UPDATE signals SET status = 'escalated' WHERE source_id LIKE 'w\(writer)-\(round)-%' AND severity = 'high'"),
                                logger: TestDatabase.logger)
                            try await c.query(
                                PostgresQuery(unsafeSQL: "DELETE FROM signals WHERE source_id = 'w\(writer)-\(round)-0'"), logger: TestDatabase.logger
                            )
                        }
                    }
                }
                for _ in 0..<2 {
                    group.addTask {
                        for _ in 0..<20 { try await Self.fold(c) }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await Self.mismatches(c) == 0)
            try await Self.fold(c)
            #expect(try await Self.count(c, "SELECT count(*)::int8 FROM signal_count_deltas") == 0)
            #expect(try await Self.mismatches(c) == 0)
            #expect(try await Self.count(c, "SELECT sum(n)::int8 FROM signal_counts") == 3 * 15 * 5)

            // While one fold holds the folder's lock, another returns at once, folding nothing.
            try await Self.insert(c, "('late', 'security', 'medium', '2026-11-20 12:00:00+00')")
            try await c.withConnection { holder in
                try await holder.query("BEGIN", logger: TestDatabase.logger)
                try await holder.query("SELECT pg_advisory_xact_lock(6001420690774840131)", logger: TestDatabase.logger)
                #expect(try await Self.fold(c) == 0)
                try await holder.query("COMMIT", logger: TestDatabase.logger)
            }
            #expect(try await Self.fold(c) == 1)
        }
    }

    /// The server's folder folds on its interval until cancelled.
    @Test func theFolderFoldsOnItsInterval() async throws {
        try await TestDatabase.with { db in
            let folder = SignalCountsFolder(db: db.client, interval: .milliseconds(20), logger: TestDatabase.logger)
            let running = Task { await folder.run() }
            defer { running.cancel() }
            try await Self.insert(db.client, "('x', 'technology', 'low', '2026-11-20 12:00:00+00')")
            try await eventually("the fold", timeout: .seconds(10)) {
                try await Self.count(db.client, "SELECT count(*)::int8 FROM signal_count_deltas") == 0
            }
            #expect(try await Self.count(db.client, "SELECT sum(n)::int8 FROM signal_counts") == 1)
            running.cancel()
            await running.value
        }
    }
}
