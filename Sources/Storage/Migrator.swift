import Crypto
import Foundation
import Logging
import PostgresNIO

/// One SQL migration file, `NNNN_name.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String
    /// SHA-256 of the file's bytes, lowercase hex.
    public let checksum: String

    public init(version: Int, name: String, sql: String, checksum: String) {
        self.version = version
        self.name = name
        self.sql = sql
        self.checksum = checksum
    }

    /// A migration whose checksum is computed from `sql`'s UTF-8 bytes.
    public init(version: Int, name: String, sql: String) {
        self.init(version: version, name: name, sql: sql, checksum: Self.checksum(of: Array(sql.utf8)))
    }

    /// `0001_initial.sql`
    public var fileName: String {
        Self.fileName(version: version, name: name)
    }

    static func fileName(version: Int, name: String) -> String {
        let digits = String(version)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits + "_" + name + ".sql"
    }

    public static func checksum(of bytes: some Sequence<UInt8>) -> String {
        StorageHex.encode(SHA256.hash(data: Array(bytes)))
    }
}

/// Why migrations could not be loaded or applied. `description` is one line
/// meant for operators.
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        case badDirectory
        case badFileName
        case duplicateVersion
        case unreadableFile
        case changedAfterApplied
        case missingFile
        case outOfOrder
        case failed
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

public enum MigrationSource {
    /// Loads `NNNN_name.sql` files (at least four digits, then `_`, then
    /// lowercase letters, digits and `_`) from `directory`, sorted by version.
    /// Other files without the `.sql` extension (README, .gitkeep) are ignored;
    /// a `.sql` file with another name, a duplicate version, or a file that is
    /// not UTF-8 is an error naming the file.
    public static func load(directory: URL) throws -> [Migration] {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw MigrationError(.badDirectory, "migrations directory \(directory.path) does not exist")
        }
        let names: [String]
        do {
            names = try fileManager.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw MigrationError(.badDirectory, "migrations directory \(directory.path) cannot be read: \(error)")
        }

        var migrations: [Migration] = []
        var byVersion: [Int: String] = [:]
        for fileName in names.sorted() where !fileName.hasPrefix(".") && fileName.hasSuffix(".sql") {
            guard let (version, name) = parseFileName(fileName) else {
                throw MigrationError(
                    .badFileName,
                    "migration file \(fileName) is not named NNNN_name.sql (four or more digits, '_', then lowercase letters, digits or '_')")
            }
            if let other = byVersion[version] {
                throw MigrationError(.duplicateVersion, "migration files \(other) and \(fileName) have the same version \(version)")
            }
            byVersion[version] = fileName
            let url = directory.appendingPathComponent(fileName)
            let data: Data
            do {
                data = try Data(contentsOf: url)
            } catch {
                throw MigrationError(.unreadableFile, "migration file \(fileName) cannot be read: \(error)")
            }
            let bytes = [UInt8](data)
            guard let sql = String(validating: bytes, as: UTF8.self) else {
                throw MigrationError(.unreadableFile, "migration file \(fileName) is not valid UTF-8")
            }
            migrations.append(Migration(version: version, name: name, sql: sql, checksum: Migration.checksum(of: bytes)))
        }
        return migrations.sorted { $0.version < $1.version }
    }

    static func parseFileName(_ fileName: String) -> (Int, String)? {
        guard fileName.hasSuffix(".sql") else { return nil }
        let stem = fileName.dropLast(4)
        guard let underscore = stem.firstIndex(of: "_") else { return nil }
        let digits = stem[..<underscore]
        let name = stem[stem.index(after: underscore)...]
        guard digits.count >= 4, digits.count <= 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
            let version = Int(digits), version >= 1,
            !name.isEmpty,
            name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) })
        else { return nil }
        return (version, String(name))
    }
}

/// Applies SQL migrations to PostgreSQL.
///
/// - `schema_migrations(version, name, checksum, applied_at)` records what has
///   been applied.
/// - A session advisory lock (``advisoryLockKey``) is held on one connection
///   for the whole run, so instances starting together take turns: the second
///   waits, then finds everything applied.
/// - Each migration runs in its own transaction together with its
///   `schema_migrations` row: it is applied entirely or not at all.
/// - Before applying anything it refuses (throws, applies nothing) when an
///   applied migration's file changed (checksum), an applied version has no
///   file, or a pending migration's version is lower than an applied one.
///
/// Multi-statement files: postgres-nio only speaks the extended query protocol,
/// which accepts one statement per query and has no simple-query API, so the
/// file is handed to the server as one statement,
/// `DO $tag$ BEGIN EXECUTE $body$<file>$body$; END $tag$`, and PL/pgSQL's
/// `EXECUTE` runs every statement in it (the server parses the file itself, so
/// dollar quotes, comments and `BEGIN ATOMIC` bodies need no client-side
/// splitting). A file therefore cannot contain transaction control; use
/// `SET LOCAL` for settings (a plain `SET` is reset after the run).
public struct Migrator: Sendable {
    /// `pg_advisory_lock` key held while migrating ("SITREPMG").
    public static let advisoryLockKey: Int64 = 0x5349_5452_4550_4D47

    public let client: PostgresClient
    public let migrations: [Migration]
    public let logger: Logger

    public init(client: PostgresClient, migrations: [Migration], logger: Logger) {
        self.client = client
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// Applies every pending migration, in version order, and returns those it
    /// applied (empty when the schema was already current).
    @discardableResult
    public func migrate() async throws -> [Migration] {
        try Self.checkUnique(migrations)
        let migrations = self.migrations
        let logger = self.logger
        return try await client.withConnection { connection in
            try await Self.lock(connection, logger: logger)
            do {
                let applied = try await Self.run(migrations, on: connection, logger: logger)
                try await Self.release(connection, logger: logger)
                return applied
            } catch {
                // Release the session lock; if the connection cannot say so,
                // close it (the server releases session locks with the session).
                do {
                    try await Self.release(connection, logger: logger)
                } catch {
                    try? await connection.close()
                }
                throw error
            }
        }
    }

    /// The migrations not yet recorded in `schema_migrations` (all of them on an
    /// empty database). Takes no lock; for readiness checks.
    public func pending() async throws -> [Migration] {
        let migrations = self.migrations
        let logger = self.logger
        return try await client.withConnection { connection in
            let applied = try await Self.appliedVersions(on: connection, logger: logger, createTable: false)
            let versions = Set(applied.map(\.version))
            return migrations.filter { !versions.contains($0.version) }
        }
    }

    // MARK: - Implementation

    struct Applied: Sendable {
        let version: Int
        let name: String
        let checksum: String
    }

    static func checkUnique(_ migrations: [Migration]) throws {
        var seen: Set<Int> = []
        for migration in migrations where !seen.insert(migration.version).inserted {
            throw MigrationError(.duplicateVersion, "two migrations have version \(migration.version) (\(migration.fileName))")
        }
    }

    static func lock(_ connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.query("SELECT pg_try_advisory_lock(\(advisoryLockKey))", logger: logger)
        var acquired = false
        for try await got in rows.decode(Bool.self) {
            acquired = got
        }
        if !acquired {
            logger.info("another instance is migrating the database; waiting for it", metadata: ["lock": "\(advisoryLockKey)"])
            try await connection.query("SELECT pg_advisory_lock(\(advisoryLockKey))", logger: logger)
        }
    }

    /// Gives the connection back as it was lent: a plain `SET` in a
    /// migration would otherwise stay on this pooled connection.
    static func release(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("RESET ALL", logger: logger)
        try await connection.query("SELECT pg_advisory_unlock(\(advisoryLockKey))", logger: logger)
    }

    static func appliedVersions(on connection: PostgresConnection, logger: Logger, createTable: Bool) async throws -> [Applied] {
        if createTable {
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    checksum    text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """,
                logger: logger)
        } else {
            let rows = try await connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
            var exists = false
            for try await value in rows.decode(Bool.self) {
                exists = value
            }
            if !exists { return [] }
        }
        let rows = try await connection.query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version", logger: logger)
        var applied: [Applied] = []
        for try await (version, name, checksum) in rows.decode((Int, String, String).self) {
            applied.append(Applied(version: version, name: name, checksum: checksum))
        }
        return applied
    }

    /// What to apply, or why nothing may be applied.
    static func plan(applied: [Applied], available: [Migration], logger: Logger) throws -> [Migration] {
        let byVersion = Dictionary(available.map { ($0.version, $0) }, uniquingKeysWith: { first, _ in first })
        var problems: [MigrationError] = []
        for record in applied {
            let recordedFile = Migration.fileName(version: record.version, name: record.name)
            guard let file = byVersion[record.version] else {
                problems.append(
                    MigrationError(
                        .missingFile,
                        "migration \(recordedFile) is recorded as applied but there is no migration file with version \(record.version)"))
                continue
            }
            if file.checksum != record.checksum {
                problems.append(
                    MigrationError(
                        .changedAfterApplied,
                        "migration \(file.fileName) was changed after it was applied (checksum \(file.checksum.prefix(12))… ≠ applied \(record.checksum.prefix(12))…); restore the applied file and put the change in a new migration"
                    ))
            } else if file.name != record.name {
                logger.warning(
                    "migration file was renamed after it was applied; content is unchanged",
                    metadata: ["applied": "\(recordedFile)", "file": "\(file.fileName)"])
            }
        }
        let appliedVersions = Set(applied.map(\.version))
        let pending = available.filter { !appliedVersions.contains($0.version) }
        if let latest = applied.last, let early = pending.first(where: { $0.version < latest.version }) {
            problems.append(
                MigrationError(
                    .outOfOrder,
                    "migration \(early.fileName) is not applied but the later \(Migration.fileName(version: latest.version, name: latest.name)) is; renumber it after version \(latest.version)"
                ))
        }
        if let first = problems.first {
            if problems.count == 1 { throw first }
            throw MigrationError(
                first.kind,
                "refusing to migrate: " + problems.map(\.description).joined(separator: "; "))
        }
        return pending
    }

    static func run(_ migrations: [Migration], on connection: PostgresConnection, logger: Logger) async throws -> [Migration] {
        let applied = try await appliedVersions(on: connection, logger: logger, createTable: true)
        let pending = try plan(applied: applied, available: migrations, logger: logger)
        if pending.isEmpty {
            logger.info("database schema is current", metadata: ["version": "\(applied.last?.version ?? 0)"])
            return []
        }
        var done: [Migration] = []
        for migration in pending {
            let started = ContinuousClock.now
            logger.info("applying migration", metadata: ["migration": "\(migration.fileName)"])
            try await apply(migration, on: connection, logger: logger)
            let elapsed = ContinuousClock.now - started
            logger.info("applied migration", metadata: ["migration": "\(migration.fileName)", "duration": "\(elapsed)"])
            done.append(migration)
        }
        return done
    }

    static func apply(_ migration: Migration, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("BEGIN", logger: logger)
        do {
            if containsStatements(migration.sql) {
                try await connection.query(PostgresQuery(unsafeSQL: wrapScript(migration.sql)), logger: logger)
            }
            try await connection.query(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                logger: logger)
            try await connection.query("COMMIT", logger: logger)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw MigrationError(.failed, "migration \(migration.fileName) failed and was rolled back: \(describe(error, script: migration.sql))")
        }
    }

    /// `DO $sitrep_do_N$ BEGIN EXECUTE $sitrep_sql_N$<script>$sitrep_sql_N$; END $sitrep_do_N$`
    /// with an `N` whose tags do not occur in the script.
    static func wrapScript(_ script: String) -> String {
        var counter = 0
        var outer = "$sitrep_do$"
        var inner = "$sitrep_sql$"
        while script.contains(outer) || script.contains(inner) {
            counter += 1
            outer = "$sitrep_do_\(counter)$"
            inner = "$sitrep_sql_\(counter)$"
        }
        return "DO \(outer) BEGIN EXECUTE \(inner)\(script)\n\(inner); END \(outer)"
    }

    /// False for a file holding only whitespace and comments (EXECUTE refuses
    /// an empty string).
    static func containsStatements(_ script: String) -> Bool {
        var scalars = Array(script.unicodeScalars)[...]
        while let first = scalars.first {
            if first.properties.isWhitespace || first == ";" {
                scalars = scalars.dropFirst()
            } else if first == "-", scalars.dropFirst().first == "-" {
                scalars = scalars.drop(while: { $0 != "\n" })
            } else if first == "/", scalars.dropFirst().first == "*" {
                var depth = 0
                var index = scalars.startIndex
                while index < scalars.endIndex {
                    let next = index + 1 < scalars.endIndex ? scalars[index + 1] : nil
                    if scalars[index] == "/", next == "*" {
                        depth += 1
                        index += 2
                    } else if scalars[index] == "*", next == "/" {
                        depth -= 1
                        index += 2
                        if depth == 0 { break }
                    } else {
                        index += 1
                    }
                }
                if depth > 0 { return true }  // unterminated comment: let the server say so
                scalars = scalars[index...]
            } else {
                return true
            }
        }
        return false
    }

    /// One line: the server's message, SQLSTATE, the line in the file when the
    /// server reports a position, and detail/hint.
    static func describe(_ error: any Error, script: String) -> String {
        guard let psqlError = error as? PSQLError else {
            return "\(error)"
        }
        guard let info = psqlError.serverInfo, let message = info[.message] else {
            return "\(psqlError.code)"
        }
        var text = message
        if let position = info[.internalPosition].flatMap(Int.init), position >= 1 {
            let prefix = script.prefix(position - 1)
            let line = prefix.reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
            text = "line \(line): " + text
        }
        if let state = info[.sqlState] { text += " [SQLSTATE \(state)]" }
        if let detail = info[.detail] { text += "; detail: \(detail)" }
        if let hint = info[.hint] { text += "; hint: \(hint)" }
        return text.replacingOccurrences(of: "\n", with: " ")
    }
}

/// Lowercase hex, shared by the Storage files.
enum StorageHex {
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
