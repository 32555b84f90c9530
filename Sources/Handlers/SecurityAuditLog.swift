import Logging
import PostgresNIO
import SitrepRuntime
import Storage

/// Writes every refused access attempt (401, 403, step-up challenge) to the audit log as a
/// `refused` event: who (when the credential was valid), the operation, why, request id and
/// client address — never the token or a session id. A failure to record is logged, and the
/// refusal is still answered: an audit outage must not turn a 401 into a 500.
public struct SecurityAuditLog: SecurityEventSink {
    let db: PostgresClient
    let logger: Logger

    public init(db: PostgresClient, logger: Logger) {
        self.db = db
        self.logger = logger
    }

    public func record(_ event: SecurityEvent) async {
        let input = AuditEventInput(
            action: event.kind.rawValue, outcome: .refused, actorId: event.principal?.id ?? "anonymous",
            actorName: event.principal?.displayName, actorRoles: Array(event.principal?.roles ?? []).sorted(),
            entityType: "operation", entityId: event.operationId, reason: event.reason, requestId: event.requestId,
            clientAddress: event.clientAddress)
        let db = db
        let logger = logger
        do {
            // Under the deadline: a refusal is answered even while PostgreSQL is down.
            _ = try await database {
                try await db.withTransaction(logger: logger) { conn in
                    _ = try await appendAudit(input, on: conn, logger: logger)
                }
            }
        } catch {
            logger.error("could not audit a refused access attempt", metadata: ["action": "\(event.kind.rawValue)", "error": "\(error)"])
        }
    }
}
