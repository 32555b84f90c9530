import Foundation
import HTTPTypes
import Logging
import PostgresNIO
import SitrepRuntime
import Storage

/// `x-idempotency` keys in PostgreSQL, exactly once without a distributed lock service.
///
/// One transaction per call: a transaction-scoped advisory lock on (principal, key) — waited
/// for up to ``inFlightWait``, so a duplicate racing the first request usually gets the first
/// one's answer rather than an error, and a 409 only when the first is still running after
/// that — then the saved answer if the key was used before, else the handler runs on the same
/// transaction (``OperationContext/transaction``) and its answer is stored with the key before
/// the commit. The effect and the key commit together, on any number of instances; validation
/// failures and server errors roll back, so a corrected retry runs again.
public struct PostgresIdempotencyStore: IdempotencyStore {
    let db: PostgresClient
    let logger: Logger
    /// How long a key is remembered.
    public var retention: Duration
    /// How long a duplicate waits for the request holding its key before answering 409.
    public var inFlightWait: Duration

    public init(db: PostgresClient, retention: Duration = .seconds(24 * 3600), inFlightWait: Duration = .seconds(5), logger: Logger) {
        self.db = db
        self.retention = retention
        self.inFlightWait = inFlightWait
        self.logger = logger
    }

    private struct InFlight: Error {}
    private struct Discard: Error { let response: EncodedResponse }

    public func execute(
        operation: String, principal: String, key: String, fingerprint: String,
        _ body: @Sendable (_ transaction: (any Sendable)?) async throws -> EncodedResponse
    ) async throws -> IdempotencyOutcome {
        let waitMs = Int(inFlightWait.timeInterval * 1000)
        let retentionSeconds = Int(retention.timeInterval)
        do {
            // The handler runs inside this transaction, so the transaction itself cannot be
            // abandoned at a deadline; a quick round trip under the deadline first answers 503
            // at once while PostgreSQL is unreachable, instead of waiting for the pool.
            _ = try await database { [db, logger] in
                for try await _ in try await db.query("SELECT 1", logger: logger) {}
            }
            return try await databaseUnbounded {
                try await db.withTransaction(logger: logger) { conn in
                    try await conn.query(PostgresQuery(unsafeSQL: "SET LOCAL lock_timeout = '\(waitMs)ms'"), logger: logger)
                    do {
                        // The wait (and its timeout) surfaces while reading the result, so read it here.
                        let locked = try await conn.query(
                            "SELECT pg_advisory_xact_lock(hashtextextended(\(principal + "\u{1F}" + key), 7231))", logger: logger)
                        for try await _ in locked {}
                    } catch let e as PSQLError where e.serverInfo?[.sqlState] == "55P03" {
                        throw InFlight()
                    }
                    try await conn.query("SET LOCAL lock_timeout = 0", logger: logger)
                    let rows = try await conn.query(
                        """
                        SELECT fingerprint, status, headers::text, content_type, body, expires_at > now()
                        FROM idempotency_keys WHERE principal_id = \(principal) AND key = \(key)
                        """, logger: logger)
                    for try await (fp, status, headers, contentType, saved, live) in rows.decode(
                        (String, Int, String, String?, ByteBuffer, Bool).self)
                    {
                        if live {
                            guard fp == fingerprint else { return .mismatch }
                            return .replay(
                                EncodedResponse(
                                    status: status, headers: Self.headers(fromJSON: headers), contentType: contentType,
                                    body: Array(saved.readableBytesView)))
                        }
                        try await conn.query(
                            "DELETE FROM idempotency_keys WHERE principal_id = \(principal) AND key = \(key)", logger: logger)
                    }
                    // The effect's audit events are written after the key, just before the commit (AuditBatch).
                    return try await AuditBatch.run(on: conn, logger: logger) {
                        let response = try await body(conn)
                        guard IdempotencyPolicy.keeps(response) else { throw Discard(response: response) }
                        try await conn.query(
                            """
                            INSERT INTO idempotency_keys (principal_id, key, operation, fingerprint, status, headers, content_type, body, expires_at)
                            VALUES (\(principal), \(key), \(operation), \(fingerprint), \(response.status), \(Self.json(response.headers))::jsonb,
                                    \(response.contentType), \(ByteBuffer(bytes: response.body)), now() + make_interval(secs => \(retentionSeconds)))
                            """, logger: logger)
                        return IdempotencyOutcome.fresh(response)
                    }
                }
            }
        } catch let e as PostgresTransactionError {
            switch e.closureError {
            case let d as Discard: return .fresh(d.response)
            case is InFlight: return .inFlight
            default: throw e
            }
        }
    }

    static func json(_ headers: [(HTTPField.Name, String)]) -> String {
        let pairs = headers.map { [$0.0.rawName, $0.1] }
        guard let data = try? JSONSerialization.data(withJSONObject: pairs) else { return "[]" }
        return String(decoding: data, as: UTF8.self)
    }

    static func headers(fromJSON text: String) -> [(HTTPField.Name, String)] {
        guard let pairs = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String]] else { return [] }
        return pairs.compactMap { p in
            guard p.count == 2, let name = HTTPField.Name(p[0]) else { return nil }
            return (name, p[1])
        }
    }
}

/// Runs `body` in the transaction the idempotency store opened for this call when there is one
/// (so the effect commits with its key), otherwise in a transaction of its own.
func withEffectTransaction<T: Sendable>(
    _ db: PostgresClient, _ context: OperationContext, _ body: (PostgresConnection) async throws -> T
) async throws -> T {
    if let conn = context.transaction as? PostgresConnection {
        return try await body(conn)
    }
    return try await db.withAuditedTransaction(logger: context.logger) { conn in try await body(conn) }
}
