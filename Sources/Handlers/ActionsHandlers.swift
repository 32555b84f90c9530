import Foundation
import Generated
import PostgresNIO
import SitrepRuntime
import Storage

extension SitrepHandlers {
    static let actionColumns = """
        id, title, description, owner_id, owner_name, assigned_by, assigned_by_name, to_char(due_date, 'YYYY-MM-DD'), priority,
        status, progress, (due_date < current_date AND status NOT IN ('done', 'cancelled')), briefing_ids, signal_ids, cancel_reason,
        created_at, updated_at, completed_at, version
        """

    static func action(from row: PostgresRow) throws -> Action {
        var r = CellReader(row)
        let id = try r.uuid()
        let title = try r.string()
        let description = try r.string()
        let ownerId = try r.string()
        let ownerName = try r.string()
        let assignedById = try r.string()
        let assignedByName = try r.string()
        guard let due = CalendarDate(try r.string()) else { throw RowShapeError() }
        return Action(
            id: id, title: title, description: description.isEmpty ? nil : description, ownerId: ownerId, ownerName: ownerName,
            assignedById: assignedById, assignedByName: assignedByName, dueDate: due,
            priority: Priority(rawValue: try r.string()) ?? .medium, status: ActionStatus(rawValue: try r.string()) ?? .open,
            progress: try r.int(), overdue: try r.decode(Bool.self), briefingIds: try r.decode([UUID].self),
            signalIds: try r.decode([UUID].self), cancelReason: try r.optionalString(), createdAt: try r.date(), updatedAt: try r.date(),
            completedAt: try r.optionalDate(), etag: ETag.make(try r.int(), prefix: "a-"))
    }

    func loadAction(_ id: UUID, on conn: PostgresConnection, context: OperationContext) async throws -> Action? {
        let rows = try await conn.query(
            PostgresQuery(unsafeSQL: "SELECT \(Self.actionColumns) FROM actions WHERE id = $1", binds: try Self.binds(id)), logger: context.logger)
        for try await row in rows { return try Self.action(from: row) }
        return nil
    }

    /// Creates an action. `x-idempotency`: the row, its audit event and the key commit in one
    /// transaction (the store's), so a retried POST never creates a second action.
    public func createAction(_ input: CreateAction.Input, context: OperationContext) async throws -> CreateAction.Output {
        let b = input.body
        let caller = context.caller
        let id = UUIDv7.make()
        let created: Action = try await database {
            try await withEffectTransaction(db, context) { conn in
                try await conn.query(
                    """
                    INSERT INTO actions (id, title, description, owner_id, owner_name, assigned_by, assigned_by_name, due_date, priority,
                                         briefing_ids, signal_ids)
                    VALUES (\(id), \(b.title), \(b.description ?? ""), \(b.ownerId), \(b.ownerName), \(caller.id), \(context.actorLabel),
                            \(b.dueDate.description)::date, \(b.priority.rawValue), \(b.briefingIds ?? [])::uuid[], \(b.signalIds ?? [])::uuid[])
                    """, logger: context.logger)
                try await appendAudit(
                    context.audit("action.create", entityType: "action", entityId: id.lowercasedString, toState: "open"), on: conn,
                    logger: context.logger)
                guard let action = try await loadAction(id, on: conn, context: context) else { throw RowShapeError() }
                return action
            }
        }
        return .created(created, location: "/v1/actions/\(id.lowercasedString)", etag: created.etag)
    }

    public func getAction(_ input: GetAction.Input, context: OperationContext) async throws -> GetAction.Output {
        let found = try await database {
            try await db.withConnection { conn in try await loadAction(input.actionId, on: conn, context: context) }
        }
        guard let found else { return .notFound(.notFound("No action has id \(input.actionId.lowercasedString).")) }
        return .ok(found, etag: found.etag)
    }
}
