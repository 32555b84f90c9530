import Foundation
import Logging
import PostgresNIO
import SitrepRuntime
import Storage

/// Who changed a delivery, for the audit log.
public struct DispatchActor: Sendable {
    public var id: String
    public var requestId: String?
    public var clientAddress: String?

    public init(id: String, requestId: String? = nil, clientAddress: String? = nil) {
        self.id = id
        self.requestId = requestId
        self.clientAddress = clientAddress
    }

    /// The dispatch worker.
    public static let worker = DispatchActor(id: "system:dispatch")
}

/// One delivery as the worker sees it: how to reach the person, what was tried.
public struct DeliveryView: Sendable {
    public var id: UUID
    public var briefingId: UUID
    public var recipientName: String
    public var language: String
    public var phone: String
    public var email: String?
    public var channels: [DispatchChannel]
    public var status: String
    public var attempts: [AttemptView]
}

/// What a status report (a Twilio callback, or a fetch by the worker) did.
public enum StatusReportOutcome: Sendable, Equatable {
    /// The attempt moved forward (and the delivery with it when that settled it).
    case applied(from: AttemptStatus, to: AttemptStatus)
    /// Nothing to do: a repeat, an out-of-order report, or a status that says nothing new.
    case ignored
    /// No attempt has this message (or attempt) id.
    case unknown
}

/// The SQL of dispatch: claiming due deliveries under a lease, recording attempts before and
/// after each provider call, and applying status reports. Every change is audited in the same
/// transaction.
public struct DispatchStore: Sendable {
    public let db: PostgresClient
    public let logger: Logger

    public init(db: PostgresClient, logger: Logger) {
        self.db = db
        self.logger = logger
    }

    // MARK: Claiming

    /// Claims up to `limit` due deliveries for `lease` under a new token: `FOR UPDATE SKIP
    /// LOCKED`, so concurrent workers never claim the same row. Queued ones become `in_progress`.
    public func claim(limit: Int, lease: Duration) async throws -> (token: UUID, ids: [UUID]) {
        let token = UUIDv7.make()
        let seconds = lease.timeInterval
        let ids: [UUID] = try await db.withAuditedTransaction(logger: logger) { conn in
            let rows = try await conn.query(
                """
                WITH due AS (
                    SELECT id, status FROM deliveries
                    WHERE status IN ('queued', 'in_progress') AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                UPDATE deliveries d SET lease_token = \(token), status = 'in_progress', updated_at = now(),
                    next_attempt_at = now() + \(seconds) * interval '1 second'
                FROM due WHERE d.id = due.id
                RETURNING d.id, due.status
                """, logger: logger)
            var claimed: [(UUID, String)] = []
            for try await row in rows.decode((UUID, String).self) { claimed.append(row) }
            for (id, old) in claimed where old == "queued" {
                try await audit(conn, "delivery.started", id, from: "queued", to: "in_progress", actor: .worker)
            }
            return claimed.map(\.0)
        }
        return (token, ids)
    }

    /// Gives the delivery back: no lease, next due at `next` (or now).
    public func release(_ id: UUID, token: UUID, next: Date?) async throws {
        try await db.withConnection { conn in
            try await conn.query(
                """
                UPDATE deliveries SET lease_token = NULL, next_attempt_at = coalesce(\(next), now()), updated_at = now()
                WHERE id = \(id) AND lease_token = \(token) AND status = 'in_progress'
                """, logger: logger)
        }
    }

    // MARK: Reading

    /// The delivery and its attempts, if `token` still holds its lease and it is not final.
    public func load(_ id: UUID, token: UUID) async throws -> DeliveryView? {
        try await db.withConnection { conn in
            let rows = try await conn.query(
                """
                SELECT briefing_id, recipient_name, language, phone, email, channels, status FROM deliveries
                WHERE id = \(id) AND lease_token = \(token) AND status = 'in_progress'
                """, logger: logger)
            var view: DeliveryView?
            for try await (briefing, name, language, phone, email, channels, status) in rows.decode(
                (UUID, String, String, String, String?, [String], String).self)
            {
                view = DeliveryView(
                    id: id, briefingId: briefing, recipientName: name, language: language, phone: phone, email: email,
                    channels: channels.compactMap(DispatchChannel.init(rawValue:)), status: status, attempts: [])
            }
            guard var found = view else { return nil }
            found.attempts = try await attempts(of: id, on: conn)
            return found
        }
    }

    func attempts(of id: UUID, on conn: PostgresConnection) async throws -> [AttemptView] {
        let rows = try await conn.query(
            """
            SELECT id, channel, status, provider_message_id, retryable, error_code, error_message, attempted_at
            FROM delivery_attempts WHERE delivery_id = \(id) ORDER BY attempted_at, id
            """, logger: logger)
        var out: [AttemptView] = []
        for try await (aid, channel, status, sid, retryable, code, message, at) in rows.decode(
            (UUID, String, String, String?, Bool, String?, String?, Date).self)
        {
            guard let c = DispatchChannel(rawValue: channel), let s = AttemptStatus(rawValue: status) else { continue }
            out.append(
                AttemptView(
                    id: aid, channel: c, status: s, providerMessageId: sid, retryable: retryable, errorCode: code, errorMessage: message,
                    attemptedAt: at))
        }
        return out
    }

    /// Locks the delivery if `token` holds it (nil token: whoever holds it); its status, or nil.
    func lock(_ id: UUID, token: UUID?, on conn: PostgresConnection) async throws -> String? {
        let rows = try await conn.query(
            """
            SELECT status FROM deliveries WHERE id = \(id) AND (\(token)::uuid IS NULL OR lease_token = \(token)) FOR UPDATE
            """, logger: logger)
        for try await status in rows.decode(String.self) { return status }
        return nil
    }

    // MARK: Attempts

    /// Records a new attempt (`queued`) on `channel` before the provider is called, so a crash
    /// during the call leaves a trace to reconcile. nil when the lease was lost.
    public func startAttempt(_ id: UUID, token: UUID, channel: DispatchChannel) async throws -> AttemptView? {
        let attemptId = UUIDv7.make()
        return try await db.withAuditedTransaction(logger: logger) { conn in
            guard try await lock(id, token: token, on: conn) == "in_progress" else { return nil }
            let rows = try await conn.query(
                """
                INSERT INTO delivery_attempts (id, delivery_id, channel) VALUES (\(attemptId), \(id), \(channel.rawValue))
                RETURNING attempted_at
                """, logger: logger)
            var at = Date()
            for try await d in rows.decode(Date.self) { at = d }
            let previous = try await conn.query(
                "UPDATE deliveries SET channel = \(channel.rawValue), updated_at = now() WHERE id = \(id) RETURNING 1", logger: logger)
            for try await _ in previous {}
            try await audit(
                conn, "delivery.attempt_started", id, from: nil, to: AttemptStatus.queued.rawValue, actor: .worker,
                details: ["attemptId": .string(attemptId.lowercasedString), "channel": .string(channel.rawValue)])
            return AttemptView(id: attemptId, channel: channel, status: .queued, attemptedAt: at)
        }
    }

    /// The provider accepted the attempt's message (or, `reconciled`, a look-up after an
    /// interrupted send found it): its id, and the status it reported (`sent` when it only
    /// accepted it).
    public func recordAccepted(
        _ attempt: AttemptView, deliveryId: UUID, token: UUID, providerMessageId: String, status: AttemptStatus, reconciled: Bool = false
    ) async throws {
        try await db.withAuditedTransaction(logger: logger) { conn in
            guard try await lock(deliveryId, token: token, on: conn) != nil else { return }
            try await conn.query(
                """
                UPDATE delivery_attempts SET provider_message_id = coalesce(provider_message_id, \(providerMessageId)), updated_at = now()
                WHERE id = \(attempt.id)
                """, logger: logger)
            _ = try await move(
                attemptId: attempt.id, deliveryId: deliveryId, to: status == .queued ? .sent : status, errorCode: nil, errorMessage: nil,
                retryable: false, actor: .worker, note: reconciled ? ["reconciled": true] : [:], on: conn)
        }
    }

    /// The attempt failed: `retryable` for 429/5xx/time-outs of the call (the same channel is
    /// tried again), otherwise final for its channel.
    public func recordFailure(
        _ attempt: AttemptView, deliveryId: UUID, token: UUID, status: AttemptStatus = .failed, retryable: Bool, errorCode: String?,
        errorMessage: String
    ) async throws {
        try await db.withAuditedTransaction(logger: logger) { conn in
            guard try await lock(deliveryId, token: token, on: conn) != nil else { return }
            _ = try await move(
                attemptId: attempt.id, deliveryId: deliveryId, to: status, errorCode: errorCode, errorMessage: String(errorMessage.prefix(500)),
                retryable: retryable, actor: .worker, on: conn)
        }
    }

    /// Settles the delivery: `delivered` (a channel confirmed) or `failed` (every channel failed).
    public func complete(_ id: UUID, token: UUID?, delivered: Bool, reason: String?, actor: DispatchActor) async throws {
        try await db.withAuditedTransaction(logger: logger) { conn in
            guard try await lock(id, token: token, on: conn) == "in_progress" else { return }
            try await settle(id, delivered: delivered, reason: reason, actor: actor, on: conn)
        }
    }

    func settle(_ id: UUID, delivered: Bool, reason: String?, actor: DispatchActor, on conn: PostgresConnection) async throws {
        let to = delivered ? "delivered" : "failed"
        try await conn.query(
            """
            UPDATE deliveries SET status = \(to), lease_token = NULL, completed_at = now(), updated_at = now()
            WHERE id = \(id) AND status = 'in_progress'
            """, logger: logger)
        try await audit(conn, "delivery.\(to)", id, from: "in_progress", to: to, actor: actor, reason: reason)
    }

    // MARK: Status reports

    /// Applies a status report for an attempt, found by `attemptId` when given (the callback URL
    /// carries it) or else by the provider's message id. Forward only: repeats and out-of-order
    /// reports are ignored. A confirmation settles the delivery; a failure wakes the worker for
    /// the next channel.
    public func applyReport(
        attemptId: UUID?, messageId: String, status: AttemptStatus, errorCode: String?, errorMessage: String?, actor: DispatchActor
    ) async throws -> StatusReportOutcome {
        try await db.withAuditedTransaction(logger: logger) { conn in
            let rows: PostgresRowSequence
            if let attemptId {
                rows = try await conn.query(
                    "SELECT id, delivery_id, provider_message_id FROM delivery_attempts WHERE id = \(attemptId)", logger: logger)
            } else {
                rows = try await conn.query(
                    "SELECT id, delivery_id, provider_message_id FROM delivery_attempts WHERE provider_message_id = \(messageId)",
                    logger: logger)
            }
            var found: (UUID, UUID, String?)?
            for try await row in rows.decode((UUID, UUID, String?).self) { found = row }
            guard let (aid, deliveryId, knownSid) = found else { return .unknown }
            // A callback naming an attempt must be about that attempt's message.
            if let knownSid, knownSid != messageId { return .unknown }
            guard let deliveryStatus = try await lock(deliveryId, token: nil, on: conn) else { return .unknown }
            if knownSid == nil {
                try await conn.query(
                    "UPDATE delivery_attempts SET provider_message_id = \(messageId), updated_at = now() WHERE id = \(aid)", logger: logger)
            }
            let outcome = try await move(
                attemptId: aid, deliveryId: deliveryId, to: status, errorCode: errorCode, errorMessage: errorMessage.map { String($0.prefix(500)) },
                retryable: false, actor: actor, on: conn)
            guard case .applied = outcome, deliveryStatus == "in_progress" else { return outcome }
            if status.isDelivered {
                try await settle(deliveryId, delivered: true, reason: nil, actor: actor, on: conn)
            } else if status.isFailure {
                // Wake the worker now for the next channel, unless one is working on it (it re-reads).
                try await conn.query(
                    "UPDATE deliveries SET next_attempt_at = now() WHERE id = \(deliveryId) AND lease_token IS NULL", logger: logger)
            }
            return outcome
        }
    }

    /// Moves an attempt forward (no-op when the move is not allowed), with its audit event.
    func move(
        attemptId: UUID, deliveryId: UUID, to status: AttemptStatus, errorCode: String?, errorMessage: String?, retryable: Bool,
        actor: DispatchActor, note: [String: AuditJSON] = [:], on conn: PostgresConnection
    ) async throws -> StatusReportOutcome {
        let rows = try await conn.query(
            "SELECT status, channel FROM delivery_attempts WHERE id = \(attemptId) FOR UPDATE", logger: logger)
        var current: (String, String)?
        for try await row in rows.decode((String, String).self) { current = row }
        guard let (raw, channel) = current, let from = AttemptStatus(rawValue: raw) else { return .unknown }
        guard from.mayMove(to: status) else { return .ignored }
        try await conn.query(
            """
            UPDATE delivery_attempts SET status = \(status.rawValue), updated_at = now(),
                error_code = coalesce(\(errorCode), error_code), error_message = coalesce(\(errorMessage), error_message),
                retryable = \(retryable), read_at = CASE WHEN \(status.rawValue) = 'read' THEN now() ELSE read_at END
            WHERE id = \(attemptId)
            """, logger: logger)
        var details: [String: AuditJSON] = ["attemptId": .string(attemptId.lowercasedString), "channel": .string(channel)]
        if let errorCode { details["errorCode"] = .string(errorCode) }
        if retryable { details["retryable"] = true }
        details.merge(note) { _, new in new }
        try await audit(
            conn, "delivery.attempt_\(status.rawValue)", deliveryId, from: from.rawValue, to: status.rawValue, actor: actor,
            reason: errorMessage, details: .object(details))
        return .applied(from: from, to: status)
    }

    func audit(
        _ conn: PostgresConnection, _ action: String, _ deliveryId: UUID, from: String?, to: String?, actor: DispatchActor,
        reason: String? = nil, details: AuditJSON? = nil
    ) async throws {
        try await recordAudit(
            AuditEventInput(
                action: action, actorId: actor.id, actorRoles: [], entityType: "delivery", entityId: deliveryId.lowercasedString,
                fromState: from, toState: to, reason: reason, requestId: actor.requestId, clientAddress: actor.clientAddress,
                details: details),
            on: conn, logger: logger)
    }
}
