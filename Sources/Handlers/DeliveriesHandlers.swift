import Foundation
import Generated
import PostgresNIO
import SitrepRuntime
import Storage

/// Distribution of an approved briefing (the transactional outbox) and the "who has it" reads.
extension SitrepHandlers {
    /// `approved → distributed`, one queued delivery per active recipient and the audit event, in
    /// the idempotency key's transaction: the answer, the state change and the outbox rows commit
    /// together or not at all. Nothing is sent here; the dispatch worker picks the rows up.
    public func distributeBriefing(_ input: DistributeBriefing.Input, context: OperationContext) async throws -> DistributeBriefing.Output {
        enum Outcome {
            case notFound, refused(BriefingWorkflow.Refusal), noRecipients, done(count: Int, at: Date)
        }
        let caller = context.caller
        let id = input.briefingId
        let outcome: Outcome = try await database {
            try await withEffectTransaction(db, context) { conn in
                guard let (current, submitter, _) = try await loadBriefing(id, on: conn, context: context, lock: true) else { return .notFound }
                let actor = BriefingWorkflow.Actor(id: caller.id, roles: caller.roles)
                if case .failure(let refusal) = BriefingWorkflow.decide(.distribute, from: current.status, actor: actor, submittedBy: submitter) {
                    try await recordAudit(
                        context.audit(
                            BriefingWorkflow.Transition.distribute.action, entityType: "briefing", entityId: id.lowercasedString,
                            fromState: current.status.rawValue, toState: BriefingStatus.distributed.rawValue, reason: Self.describe(refusal),
                            outcome: .refused),
                        on: conn, logger: context.logger)
                    return .refused(refusal)
                }
                let inserted = try await conn.query(
                    """
                    INSERT INTO deliveries (id, briefing_id, recipient_id, recipient_name, language, phone, email, channels)
                    SELECT sitrep_uuid_v7(), \(id), r.id, r.name, r.language, r.phone, r.email, r.channels
                    FROM recipients r WHERE r.active ORDER BY r.name, r.id
                    RETURNING 1
                    """, logger: context.logger)
                var count = 0
                for try await _ in inserted { count += 1 }
                // No one to send to: refuse before the irreversible transition (the insert wrote nothing).
                guard count > 0 else { return .noRecipients }
                var at = Date()
                let updated = try await conn.query(
                    """
                    UPDATE briefings SET status = 'distributed', distributed_at = now(), updated_at = now(), version = version + 1
                    WHERE id = \(id) RETURNING distributed_at
                    """, logger: context.logger)
                for try await d in updated.decode(Date.self) { at = d }
                try await recordAudit(
                    context.audit(
                        BriefingWorkflow.Transition.distribute.action, entityType: "briefing", entityId: id.lowercasedString,
                        fromState: current.status.rawValue, toState: BriefingStatus.distributed.rawValue,
                        details: ["deliveries": .int(Int64(count)), "contentHash": .string(current.contentHash)]),
                    on: conn, logger: context.logger)
                return .done(count: count, at: at)
            }
        }
        switch outcome {
        case .notFound: return .notFound(Self.noBriefing(id))
        case .refused(let r): return Self.problem(for: r).status == 409 ? .conflict(Self.problem(for: r)) : .forbidden(Self.problem(for: r))
        case .noRecipients:
            var errors = ValidationErrors()
            errors.add("/path/briefingId", "there is no active recipient to distribute to; add or reactivate one first")
            return .unprocessableContent(.validation(errors, detail: "There is no active recipient."))
        case .done(let count, let at):
            return .accepted(
                DistributionAccepted(briefingId: id, status: .distributed, deliveryCount: count, acceptedAt: at),
                location: "/v1/briefings/\(id.lowercasedString)/deliveries")
        }
    }

    static let deliveryColumns = """
        id, briefing_id, recipient_id, recipient_name, language, status, channel, created_at, updated_at, completed_at
        """

    /// Deliveries matching `whereSQL` (binds start at $1), ordered by recipient name, with their attempts.
    func loadDeliveries(_ whereSQL: String, binds: PostgresBindings, limit: Int, context: OperationContext) async throws -> [Delivery] {
        try await db.withConnection { conn in
            var rows: [(Delivery)] = []
            let query = PostgresQuery(
                unsafeSQL: "SELECT \(Self.deliveryColumns) FROM deliveries WHERE \(whereSQL) ORDER BY recipient_name, id LIMIT \(limit)",
                binds: binds)
            for try await row in try await conn.query(query, logger: context.logger) {
                var r = CellReader(row)
                rows.append(
                    Delivery(
                        id: try r.uuid(), briefingId: try r.uuid(), recipientId: try r.uuid(), recipientName: try r.string(),
                        language: Language(rawValue: try r.string()) ?? .en, status: DeliveryStatus(rawValue: try r.string()) ?? .queued,
                        channel: try r.optionalString().flatMap(DeliveryChannel.init(rawValue:)), attempts: [], createdAt: try r.date(),
                        updatedAt: try r.date(), completedAt: try r.optionalDate()))
            }
            guard !rows.isEmpty else { return [] }
            let attempts = try await conn.query(
                """
                SELECT delivery_id, id, channel, status, provider_message_id, error_code, error_message, attempted_at, updated_at
                FROM delivery_attempts WHERE delivery_id = ANY(\(rows.map(\.id))::uuid[]) ORDER BY attempted_at, id
                """, logger: context.logger)
            var byDelivery: [UUID: [DeliveryAttempt]] = [:]
            for try await row in attempts {
                var r = CellReader(row)
                let deliveryId = try r.uuid()
                byDelivery[deliveryId, default: []].append(
                    DeliveryAttempt(
                        id: try r.uuid(), channel: DeliveryChannel(rawValue: try r.string()) ?? .whatsapp,
                        status: DeliveryAttemptStatus(rawValue: try r.string()) ?? .queued, providerMessageId: try r.optionalString(),
                        errorCode: try r.optionalString(), errorMessage: try r.optionalString(), attemptedAt: try r.date(),
                        updatedAt: try r.date()))
            }
            for i in rows.indices { rows[i].attempts = byDelivery[rows[i].id] ?? [] }
            return rows
        }
    }

    public func listBriefingDeliveries(
        _ input: ListBriefingDeliveries.Input, context: OperationContext
    ) async throws -> ListBriefingDeliveries.Output {
        let after = try Cursor.decode(input.cursor)
        let page: [Delivery]? = try await database {
            let exists = try await db.withConnection { conn in
                try await loadBriefing(input.briefingId, on: conn, context: context, lock: false) != nil
            }
            guard exists else { return nil }
            var binds = PostgresBindings()
            binds.append(input.briefingId)
            var sql = "briefing_id = $1"
            if let statuses = input.status, !statuses.isEmpty {
                binds.append(statuses.map(\.rawValue))
                sql += " AND status = ANY($\(binds.count)::text[])"
            }
            if let after {
                binds.append(after)
                sql += " AND (recipient_name, id) > (SELECT recipient_name, id FROM deliveries WHERE id = $\(binds.count))"
            }
            return try await loadDeliveries(sql, binds: binds, limit: input.limit + 1, context: context)
        }
        guard var items = page else { return .notFound(Self.noBriefing(input.briefingId)) }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        return .ok(DeliveryPage(items: items, nextCursor: next))
    }

    public func getDelivery(_ input: GetDelivery.Input, context: OperationContext) async throws -> GetDelivery.Output {
        var binds = PostgresBindings()
        binds.append(input.deliveryId)
        let found = try await database { [binds] in try await loadDeliveries("id = $1", binds: binds, limit: 1, context: context) }
        guard let delivery = found.first else {
            return .notFound(.notFound("No delivery has id \(input.deliveryId.lowercasedString)."))
        }
        return .ok(delivery)
    }
}
