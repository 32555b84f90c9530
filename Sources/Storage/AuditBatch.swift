import Logging
import PostgresNIO
import Synchronization

/// Audit events held back to the end of their transaction, written just before it commits.
///
/// The audit chain has one head: the trigger that numbers and hashes an event locks the head row
/// until the transaction ends, so audited transactions run one at a time from their first audit
/// event to their commit. Written where the change happens, the event kept the head locked
/// through every round trip after it (re-reading the row, encoding the answer, storing the
/// idempotency key), and under load every other writer queued behind those round trips. Held
/// back to the end, the head is locked for the event's own statement and the commit.
///
/// Use: run the transaction through ``PostgresClient/withAuditedTransaction(logger:_:)`` (or
/// ``run(on:logger:_:)`` inside a transaction of your own), record with ``recordAudit(_:on:logger:)``,
/// and put writes that must commit in chain order (the live stream's events) behind the audit
/// with ``afterAudit(on:_:)``. Outside a batch both act at once, as ``appendAudit(_:on:logger:)`` does.
public final class AuditBatch: Sendable {
    /// The batch of the transaction this task is running, if it runs one under a batch.
    @TaskLocal static var current: AuditBatch?

    private struct Pending {
        var events: [AuditEventInput] = []
        var after: [@Sendable (PostgresConnection) async throws -> Void] = []
    }

    private let connection: ObjectIdentifier
    private let pending = Mutex(Pending())

    private init(connection: PostgresConnection) { self.connection = ObjectIdentifier(connection) }

    /// The batch for `connection`'s transaction in this task, or nil (none, or another connection's).
    static func active(on connection: PostgresConnection) -> AuditBatch? {
        guard let batch = current, batch.connection == ObjectIdentifier(connection) else { return nil }
        return batch
    }

    /// Runs `body` with a batch for the transaction open on `connection`, then writes what it
    /// held back: the audit events in the order they were recorded, then the steps that follow
    /// them. Call it as the last thing before the commit; nothing is written if `body` throws.
    public static func run<T>(
        on connection: PostgresConnection, logger: Logger, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async throws -> T {
        let batch = AuditBatch(connection: connection)
        let result = try await $current.withValue(batch, operation: body, isolation: isolation)
        try await batch.flush(on: connection, logger: logger)
        return result
    }

    private func flush(on connection: PostgresConnection, logger: Logger) async throws {
        let held = pending.withLock { p in
            defer { p = Pending() }
            return p
        }
        for event in held.events { try await appendAudit(event, on: connection, logger: logger) }
        for step in held.after { try await step(connection) }
    }

    fileprivate func hold(_ event: AuditEventInput) { pending.withLock { $0.events.append(event) } }
    fileprivate func hold(_ step: @escaping @Sendable (PostgresConnection) async throws -> Void) {
        pending.withLock { $0.after.append(step) }
    }
}

/// Records `event` in the transaction open on `connection`: held back to just before the commit
/// when the transaction runs under an ``AuditBatch``, inserted now otherwise. Either way it
/// commits or rolls back with the change it records.
public func recordAudit(_ event: AuditEventInput, on connection: PostgresConnection, logger: Logger) async throws {
    if let batch = AuditBatch.active(on: connection) {
        batch.hold(event)
    } else {
        try await appendAudit(event, on: connection, logger: logger)
    }
}

/// Runs `step` after the transaction's audit events, whose chain lock then orders the commits:
/// at the end with them under an ``AuditBatch``, now otherwise (after the events already written).
public func afterAudit(on connection: PostgresConnection, _ step: @escaping @Sendable (PostgresConnection) async throws -> Void)
    async throws
{
    if let batch = AuditBatch.active(on: connection) {
        batch.hold(step)
    } else {
        try await step(connection)
    }
}

extension PostgresClient {
    /// A transaction whose audit events are written at its end (``AuditBatch``).
    public func withAuditedTransaction<T: Sendable>(
        logger: Logger, isolation: isolated (any Actor)? = #isolation, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withTransaction(logger: logger, isolation: isolation) { conn in
            try await AuditBatch.run(on: conn, logger: logger, isolation: isolation) { try await body(conn) }
        }
    }
}
