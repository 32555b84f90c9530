import Foundation
import Generated
import PostgresNIO
import SitrepRuntime
import Storage
import Synchronization

extension SitrepHandlers {
    static let actionColumns = """
        id, title, description, owner_id, owner_name, assigned_by, assigned_by_name, to_char(due_date, 'YYYY-MM-DD'), priority,
        status, progress, (due_date < (now() AT TIME ZONE 'UTC')::date AND status NOT IN ('done', 'cancelled')), briefing_ids, signal_ids, cancel_reason,
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

    /// The action with `id` (`lock`: `FOR UPDATE`, for a write in the caller's transaction).
    func loadAction(_ id: UUID, on conn: PostgresConnection, context: OperationContext, lock: Bool = false) async throws -> Action? {
        let rows = try await conn.query(
            PostgresQuery(
                unsafeSQL: "SELECT \(Self.actionColumns) FROM actions WHERE id = $1" + (lock ? " FOR UPDATE" : ""), binds: try Self.binds(id)),
            logger: context.logger)
        for try await row in rows { return try Self.action(from: row) }
        return nil
    }

    static func noAction(_ id: UUID) -> Problem { .notFound("No action has id \(id.lowercasedString).") }

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
                try await recordAudit(
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

// MARK: - list

extension SitrepHandlers {
    /// Actions by due day then id, in keyset pages; every filter is a bound parameter.
    public func listActions(_ input: ListActions.Input, context: OperationContext) async throws -> ListActions.Output {
        let after = try Cursor.decode(input.cursor)
        var sql = "SELECT \(Self.actionColumns) FROM actions WHERE true"
        var binds = PostgresBindings()
        func bind(_ value: some PostgresEncodable & Sendable) throws -> String {
            try binds.append(value)
            return "$\(binds.count)"
        }
        if let owner = input.owner {
            sql += " AND owner_id = \(try bind(owner == "me" ? context.caller.id : owner))"
        }
        if let statuses = input.status, !statuses.isEmpty {
            sql += " AND status = ANY(\(try bind(statuses.map(\.rawValue)))::text[])"
        }
        if let priorities = input.priority, !priorities.isEmpty {
            sql += " AND priority = ANY(\(try bind(priorities.map(\.rawValue)))::text[])"
        }
        if let overdue = input.overdue {
            let isOverdue = "(due_date < (now() AT TIME ZONE 'UTC')::date AND status IN ('open', 'in_progress', 'blocked'))"
            sql += overdue ? " AND \(isOverdue)" : " AND NOT \(isOverdue)"
        }
        if let day = input.dueAfter { sql += " AND due_date >= \(try bind(day.description))::date" }
        if let day = input.dueBefore { sql += " AND due_date <= \(try bind(day.description))::date" }
        if let id = input.briefingId { sql += " AND briefing_ids @> ARRAY[\(try bind(id))]::uuid[]" }
        if let id = input.signalId { sql += " AND signal_ids @> ARRAY[\(try bind(id))]::uuid[]" }
        if let after {
            let p = try bind(after)
            sql += " AND (due_date, id) > (SELECT due_date, id FROM actions WHERE id = \(p))"
        }
        sql += " ORDER BY due_date, id LIMIT \(input.limit + 1)"
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        var items: [Action] = try await database {
            try await db.withConnection { conn in
                var out: [Action] = []
                out.reserveCapacity(input.limit + 1)
                for try await row in try await conn.query(query, logger: context.logger) { out.append(try Self.action(from: row)) }
                return out
            }
        }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        return .ok(ActionPage(items: items, nextCursor: next))
    }
}

// MARK: - update and cancel

extension SitrepHandlers {
    enum ActionWriteResult {
        case notFound, stale, refused(ActionWorkflow.Refusal), done(Action)
    }

    /// Loads the action under a row lock, checks If-Match, and hands it to `change`, all on the
    /// idempotency key's transaction: the change, its audit event and the key commit together.
    func writeAction(
        _ id: UUID, ifMatch: String?, context: OperationContext,
        _ change: @escaping @Sendable (Action, PostgresConnection) async throws -> Result<Void, ActionWorkflow.Refusal>
    ) async throws -> ActionWriteResult {
        try await database {
            try await withEffectTransaction(db, context) { conn in
                guard let current = try await loadAction(id, on: conn, context: context, lock: true) else { return .notFound }
                if let ifMatch, ifMatch != "*",
                    ETag.version(fromIfMatch: ifMatch, prefix: Self.actionTagPrefix)
                        != ETag.version(fromIfMatch: current.etag, prefix: Self.actionTagPrefix)
                {
                    return .stale
                }
                if case .failure(let refusal) = try await change(current, conn) { return .refused(refusal) }
                guard let updated = try await loadAction(id, on: conn, context: context) else { throw RowShapeError() }
                return .done(updated)
            }
        }
    }

    static let actionTagPrefix = "a-"

    /// The problem for a refusal: 409 for the state machine, 403 for ownership.
    static func problem(for refusal: ActionWorkflow.Refusal) -> Problem {
        switch refusal {
        case .invalidTransition: Problem.conflict(ActionWorkflow.describe(refusal), code: "action.invalid_transition")
        case .notOwner: Problem(status: 403, code: "action.not_owner", title: "Forbidden", detail: ActionWorkflow.describe(refusal))
        }
    }

    /// Records a refused change as an audit event (the refusal is answered, and kept, like any other).
    func auditRefusal(
        _ action: String, _ refusal: ActionWorkflow.Refusal, current: Action, on conn: PostgresConnection, context: OperationContext
    ) async throws {
        var toState: String?
        if case .invalidTransition(_, let to, _) = refusal { toState = to.rawValue }
        try await recordAudit(
            context.audit(
                action, entityType: "action", entityId: current.id.lowercasedString, fromState: current.status.rawValue, toState: toState,
                reason: ActionWorkflow.describe(refusal), outcome: .refused),
            on: conn, logger: context.logger)
    }

    public func updateAction(_ input: UpdateAction.Input, context: OperationContext) async throws -> UpdateAction.Output {
        let patch = input.body
        var errors = ValidationErrors()
        if patch == ActionPatch() { errors.add("/body", "must change at least one field") }
        if (patch.ownerId == nil) != (patch.ownerName == nil) {
            errors.add(patch.ownerId == nil ? "/body/ownerId" : "/body/ownerName", "ownerId and ownerName change together; send both")
        }
        if !errors.isEmpty { return .unprocessableContent(.validation(errors)) }

        let result = try await writeAction(input.actionId, ifMatch: input.ifMatch, context: context) { current, conn in
            let next: ActionStatus
            switch ActionWorkflow.update(from: current.status, to: patch.status) {
            case .failure(let refusal):
                try await auditRefusal("action.update", refusal, current: current, on: conn, context: context)
                return .failure(refusal)
            case .success(let s): next = s
            }
            var sets: [String] = []
            var binds = PostgresBindings()
            binds.append(current.id)
            var changed: [String: AuditJSON] = [:]
            func set(_ column: String, _ field: String, _ value: some PostgresEncodable & Sendable, cast: String = "", audit: AuditJSON) throws {
                try binds.append(value)
                sets.append("\(column) = $\(binds.count)\(cast)")
                changed[field] = audit
            }
            if let v = patch.title { try set("title", "title", v, audit: .string(v)) }
            if let v = patch.description { try set("description", "description", v, audit: .string(v)) }
            if let id = patch.ownerId, let name = patch.ownerName {
                try set("owner_id", "ownerId", id, audit: .string(id))
                try set("owner_name", "ownerName", name, audit: .string(name))
            }
            if let v = patch.dueDate { try set("due_date", "dueDate", v.description, cast: "::date", audit: .string(v.description)) }
            if let v = patch.priority { try set("priority", "priority", v.rawValue, audit: .string(v.rawValue)) }
            if let v = patch.briefingIds {
                try set("briefing_ids", "briefingIds", v, cast: "::uuid[]", audit: .array(v.map { .string($0.lowercasedString) }))
            }
            if let v = patch.signalIds {
                try set("signal_ids", "signalIds", v, cast: "::uuid[]", audit: .array(v.map { .string($0.lowercasedString) }))
            }
            if next != current.status {
                try set("status", "status", next.rawValue, audit: .string(next.rawValue))
                if next == .done { sets.append("completed_at = now(), progress = 100") }
            }
            sets.append("updated_at = now(), version = version + 1")
            try await conn.query(
                PostgresQuery(unsafeSQL: "UPDATE actions SET \(sets.joined(separator: ", ")) WHERE id = $1", binds: binds), logger: context.logger)
            try await recordAudit(
                context.audit(
                    "action.update", entityType: "action", entityId: current.id.lowercasedString, fromState: current.status.rawValue,
                    toState: next.rawValue, details: .object(changed)),
                on: conn, logger: context.logger)
            return .success(())
        }
        switch result {
        case .notFound: return .notFound(Self.noAction(input.actionId))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .refused(let r): return .conflict(Self.problem(for: r))
        case .done(let a): return .ok(a, etag: a.etag)
        }
    }

    public func cancelAction(_ input: CancelAction.Input, context: OperationContext) async throws -> CancelAction.Output {
        let reason = input.body.reason
        if reason.allSatisfy(\.isWhitespace) {
            var errors = ValidationErrors()
            errors.add("/body/reason", "must not be blank")
            return .unprocessableContent(.validation(errors))
        }
        let result = try await writeAction(input.actionId, ifMatch: input.ifMatch, context: context) { current, conn in
            if case .failure(let refusal) = ActionWorkflow.cancel(from: current.status) {
                try await auditRefusal("action.cancel", refusal, current: current, on: conn, context: context)
                return .failure(refusal)
            }
            try await conn.query(
                """
                UPDATE actions SET status = 'cancelled', cancel_reason = \(reason), updated_at = now(), version = version + 1
                WHERE id = \(current.id)
                """, logger: context.logger)
            try await recordAudit(
                context.audit(
                    "action.cancel", entityType: "action", entityId: current.id.lowercasedString, fromState: current.status.rawValue,
                    toState: ActionStatus.cancelled.rawValue, reason: reason),
                on: conn, logger: context.logger)
            return .success(())
        }
        switch result {
        case .notFound: return .notFound(Self.noAction(input.actionId))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .refused(let r): return .conflict(Self.problem(for: r))
        case .done(let a): return .ok(a, etag: a.etag)
        }
    }
}

// MARK: - progress updates

extension SitrepHandlers {
    static let actionUpdateColumns = "id, action_id, note, progress, author_id, author_name, created_at"

    static func actionUpdate(from row: PostgresRow) throws -> ActionUpdate {
        var r = CellReader(row)
        return ActionUpdate(
            id: try r.uuid(), actionId: try r.uuid(), note: try r.string(), progress: try r.optionalInt(), authorId: try r.string(),
            authorName: try r.string(), createdAt: try r.date())
    }

    public func addActionUpdate(_ input: AddActionUpdate.Input, context: OperationContext) async throws -> AddActionUpdate.Output {
        let note = input.body.note
        if note.allSatisfy(\.isWhitespace) {
            var errors = ValidationErrors()
            errors.add("/body/note", "must not be blank")
            return .unprocessableContent(.validation(errors))
        }
        let caller = context.caller
        let updateId = UUIDv7.make()
        let progress = input.body.progress
        // Set inside the (Sendable) change closure, read after the transaction.
        let writtenBox = Mutex<ActionUpdate?>(nil)
        let result = try await writeAction(input.actionId, ifMatch: nil, context: context) { current, conn in
            let decision = ActionWorkflow.addProgress(
                status: current.status, ownerId: current.ownerId, actorId: caller.id, actorRoles: caller.roles)
            if case .failure(let refusal) = decision {
                try await auditRefusal("action.progress", refusal, current: current, on: conn, context: context)
                return .failure(refusal)
            }
            let rows = try await conn.query(
                """
                INSERT INTO action_updates (id, action_id, note, progress, author_id, author_name)
                VALUES (\(updateId), \(current.id), \(note), \(progress), \(caller.id), \(context.actorLabel))
                RETURNING \(unescaped: Self.actionUpdateColumns)
                """, logger: context.logger)
            for try await row in rows {
                let update = try Self.actionUpdate(from: row)
                writtenBox.withLock { $0 = update }
            }
            if let progress {
                try await conn.query(
                    "UPDATE actions SET progress = \(progress), updated_at = now(), version = version + 1 WHERE id = \(current.id)",
                    logger: context.logger)
            }
            try await recordAudit(
                context.audit(
                    "action.progress", entityType: "action", entityId: current.id.lowercasedString, fromState: current.status.rawValue,
                    toState: current.status.rawValue,
                    details: .object(["updateId": .string(updateId.lowercasedString), "progress": progress.map { .int(Int64($0)) } ?? .null])),
                on: conn, logger: context.logger)
            return .success(())
        }
        switch result {
        case .notFound: return .notFound(Self.noAction(input.actionId))
        case .stale: throw RowShapeError()  // no If-Match on this operation
        case .refused(let r):
            return r == .notOwner ? .forbidden(Self.problem(for: r)) : .conflict(Self.problem(for: r))
        case .done:
            guard let written = writtenBox.withLock({ $0 }) else { throw RowShapeError() }
            return .created(written, location: "/v1/actions/\(input.actionId.lowercasedString)/updates/\(updateId.lowercasedString)")
        }
    }

    public func listActionUpdates(_ input: ListActionUpdates.Input, context: OperationContext) async throws -> ListActionUpdates.Output {
        let after = try Cursor.decode(input.cursor)
        let page: [ActionUpdate]? = try await database {
            try await db.withConnection { conn in
                let exists = try await conn.query("SELECT 1 FROM actions WHERE id = \(input.actionId)", logger: context.logger)
                var found = false
                for try await _ in exists { found = true }
                guard found else { return nil }
                let rows = try await conn.query(
                    """
                    SELECT \(unescaped: Self.actionUpdateColumns) FROM action_updates
                    WHERE action_id = \(input.actionId) AND (\(after)::uuid IS NULL OR id < \(after)::uuid)
                    ORDER BY id DESC LIMIT \(input.limit + 1)
                    """, logger: context.logger)
                var out: [ActionUpdate] = []
                for try await row in rows { out.append(try Self.actionUpdate(from: row)) }
                return out
            }
        }
        guard var items = page else { return .notFound(Self.noAction(input.actionId)) }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        return .ok(ActionUpdatePage(items: items, nextCursor: next))
    }

    public func getActionUpdate(_ input: GetActionUpdate.Input, context: OperationContext) async throws -> GetActionUpdate.Output {
        let found: ActionUpdate? = try await database {
            try await db.withConnection { conn in
                let rows = try await conn.query(
                    """
                    SELECT \(unescaped: Self.actionUpdateColumns) FROM action_updates
                    WHERE action_id = \(input.actionId) AND id = \(input.updateId)
                    """, logger: context.logger)
                for try await row in rows { return try Self.actionUpdate(from: row) }
                return nil
            }
        }
        guard let found else {
            return .notFound(
                .notFound("Action \(input.actionId.lowercasedString) has no progress update \(input.updateId.lowercasedString)."))
        }
        return .ok(found)
    }
}
