import Crypto
import Foundation
import Generated
import PostgresNIO
import SitrepRuntime
import Storage

extension SitrepHandlers {
    static let briefingColumns = """
        id, title, title_ar, to_char(briefing_date, 'YYYY-MM-DD'), status, summary, summary_ar, sections::text, model_version,
        revision, content_hash, created_by, created_at, updated_at, submitted_by, submitted_at, approved_by, approved_at,
        distributed_at, return_reason, version, submitted_by_id
        """

    /// A briefing row (``briefingColumns``), the principal id that submitted it (four eyes) and
    /// its row version.
    static func briefing(from row: PostgresRow) throws -> (Briefing, submittedById: String?, version: Int) {
        var r = CellReader(row)
        let id = try r.uuid()
        let title = try r.string()
        let titleAr = try r.string()
        let dateText = try r.string()
        let status = BriefingStatus(rawValue: try r.string()) ?? .draft
        let summary = try r.string()
        let summaryAr = try r.string()
        let sections = try Self.sections(fromJSON: try r.string())
        let modelVersion = try r.optionalString()
        let revision = try r.int()
        let contentHash = try r.string()
        let createdBy = try r.string()
        let createdAt = try r.date()
        let updatedAt = try r.date()
        let submittedBy = try r.optionalString()
        let submittedAt = try r.optionalDate()
        let approvedBy = try r.optionalString()
        let approvedAt = try r.optionalDate()
        let distributedAt = try r.optionalDate()
        let returnReason = try r.optionalString()
        let version = try r.int()
        let submittedById = try r.optionalString()
        guard let date = CalendarDate(dateText) else { throw RowShapeError() }
        return (
            Briefing(
                id: id, title: title, titleAr: titleAr, briefingDate: date, status: status, summary: summary, summaryAr: summaryAr,
                sections: sections, modelVersion: modelVersion, revision: revision, contentHash: contentHash, createdBy: createdBy,
                createdAt: createdAt, updatedAt: updatedAt, submittedBy: submittedBy, submittedAt: submittedAt, approvedBy: approvedBy,
                approvedAt: approvedAt, distributedAt: distributedAt, returnReason: returnReason,
                etag: ETag.make(version, prefix: Self.briefingTagPrefix)),
            submittedById, version
        )
    }

    static let briefingTagPrefix = "b-"

    static func sections(fromJSON text: String) throws -> [BriefingSection] {
        var errors = ValidationErrors()
        guard let value = try? JSONParser.parse(Array(text.utf8)),
            let sections = [BriefingSection](json: value, at: "/sections", errors: &errors)
        else { throw RowShapeError() }
        return sections
    }

    /// SHA-256 (hex) of the content's canonical JSON: what approval freezes and the PDF prints.
    static func briefingContentHash(
        title: String, titleAr: String, briefingDate: CalendarDate, summary: String, summaryAr: String, sections: [BriefingSection]
    ) -> String {
        let content = BriefingCreate(
            title: title, titleAr: titleAr, briefingDate: briefingDate, summary: summary, summaryAr: summaryAr, sections: sections,
            modelVersion: nil)
        return SHA256.hash(data: content.jsonBytes(capacity: 4096)).hexString
    }

    /// Who may see briefings that are not approved yet.
    static func seesDrafts(_ p: Principal?) -> Bool {
        guard let p else { return false }
        return p.roles.contains("Sitrep.Admin") || p.roles.contains("Sitrep.Executive") || p.roles.contains("Sitrep.BriefingWriter")
    }

    func loadBriefing(_ id: UUID, on conn: PostgresConnection, context: OperationContext, lock: Bool) async throws -> (
        Briefing, submittedById: String?, version: Int
    )? {
        let rows = try await conn.query(
            PostgresQuery(
                unsafeSQL: "SELECT \(Self.briefingColumns) FROM briefings WHERE id = $1" + (lock ? " FOR UPDATE" : ""),
                binds: try Self.binds(id)), logger: context.logger)
        for try await row in rows {
            return try Self.briefing(from: row)
        }
        return nil
    }

    static func noBriefing(_ id: UUID) -> Problem { .notFound("No briefing has id \(id.lowercasedString).") }

    // MARK: create

    public func createBriefing(_ input: CreateBriefing.Input, context: OperationContext) async throws -> CreateBriefing.Output {
        let b = input.body
        if b.sections.isEmpty {
            var errors = ValidationErrors()
            errors.add("/body/sections", "must have at least one section")
            return .unprocessableContent(.validation(errors))
        }
        let id = UUIDv7.make()
        let hash = Self.briefingContentHash(
            title: b.title, titleAr: b.titleAr, briefingDate: b.briefingDate, summary: b.summary, summaryAr: b.summaryAr, sections: b.sections)
        let sectionsJSON = String(decoding: b.sections.jsonBytes(capacity: 4096), as: UTF8.self)
        let caller = context.caller
        let created: Briefing = try await database {
            try await db.withAuditedTransaction(logger: context.logger) { conn in
                try await conn.query(
                    """
                    INSERT INTO briefings (id, title, title_ar, briefing_date, status, summary, summary_ar, sections, model_version,
                                           revision, content_hash, created_by, created_by_id)
                    VALUES (\(id), \(b.title), \(b.titleAr), \(b.briefingDate.description)::date, 'draft', \(b.summary), \(b.summaryAr),
                            \(sectionsJSON)::jsonb, \(b.modelVersion), 1, \(hash), \(context.actorLabel), \(caller.id))
                    """, logger: context.logger)
                try await conn.query(
                    """
                    INSERT INTO briefing_revisions (briefing_id, revision, title, title_ar, summary, summary_ar, sections, content_hash,
                                                    created_by, created_by_id)
                    VALUES (\(id), 1, \(b.title), \(b.titleAr), \(b.summary), \(b.summaryAr), \(sectionsJSON)::jsonb, \(hash),
                            \(context.actorLabel), \(caller.id))
                    """, logger: context.logger)
                try await recordAudit(
                    context.audit("briefing.create", entityType: "briefing", entityId: id.lowercasedString, toState: "draft"),
                    on: conn, logger: context.logger)
                guard let loaded = try await loadBriefing(id, on: conn, context: context, lock: false) else { throw RowShapeError() }
                return loaded.0
            }
        }
        return .created(created, location: "/v1/briefings/\(id.lowercasedString)", etag: created.etag)
    }

    // MARK: read

    public func listBriefings(_ input: ListBriefings.Input, context: OperationContext) async throws -> ListBriefings.Output {
        let after = try Cursor.decode(input.cursor)
        var statuses = (input.status ?? []).map(\.rawValue)
        if !Self.seesDrafts(context.principal) {
            statuses = statuses.isEmpty ? ["approved", "distributed"] : statuses.filter { $0 == "approved" || $0 == "distributed" }
            if statuses.isEmpty { return .ok(BriefingPage(items: [], nextCursor: nil)) }
        }
        var sql = "SELECT id, title, status, to_char(briefing_date, 'YYYY-MM-DD'), updated_at FROM briefings WHERE TRUE"
        var binds = PostgresBindings()
        func bind<T: PostgresEncodable>(_ v: T) throws -> String {
            try binds.append(v)
            return "$\(binds.count)"
        }
        if !statuses.isEmpty { sql += " AND status = ANY(\(try bind(statuses)))" }
        if let from = input.from { sql += " AND briefing_date >= \(try bind(from.description))::date" }
        if let to = input.to { sql += " AND briefing_date <= \(try bind(to.description))::date" }
        if let after {
            sql += " AND (briefing_date, id) < (SELECT briefing_date, id FROM briefings WHERE id = \(try bind(after)))"
        }
        sql += " ORDER BY briefing_date DESC, id DESC LIMIT \(try bind(input.limit + 1))"
        var items: [BriefingSummary] = try await database { [sql, binds] in
            var out: [BriefingSummary] = []
            let rows = try await db.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: context.logger)
            for try await (id, title, status, date, updated) in rows.decode((UUID, String, String, String, Date).self) {
                guard let d = CalendarDate(date) else { throw RowShapeError() }
                out.append(
                    BriefingSummary(id: id, title: title, status: BriefingStatus(rawValue: status) ?? .draft, briefingDate: d, updatedAt: updated))
            }
            return out
        }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        return .ok(BriefingPage(items: items, nextCursor: next))
    }

    public func getBriefing(_ input: GetBriefing.Input, context: OperationContext) async throws -> GetBriefing.Output {
        let found = try await database {
            try await db.withConnection { conn in try await loadBriefing(input.briefingId, on: conn, context: context, lock: false) }
        }
        guard let (b, _, _) = found, Self.seesDrafts(context.principal) || b.status == .approved || b.status == .distributed else {
            return .notFound(Self.noBriefing(input.briefingId))
        }
        return .ok(b, etag: b.etag)
    }

    public func listBriefingRevisions(_ input: ListBriefingRevisions.Input, context: OperationContext) async throws
        -> ListBriefingRevisions.Output
    {
        let after = try Cursor.decode(input.cursor)
        let result: [BriefingRevision]? = try await database {
            try await db.withConnection { conn in
                guard try await loadBriefing(input.briefingId, on: conn, context: context, lock: false) != nil else { return nil }
                let rows = try await conn.query(
                    """
                    SELECT id, briefing_id, revision, title, title_ar, summary, summary_ar, sections::text, content_hash, change_note,
                           created_by, created_at
                    FROM briefing_revisions
                    WHERE briefing_id = \(input.briefingId)
                      AND (\(after)::uuid IS NULL OR revision < (SELECT revision FROM briefing_revisions WHERE id = \(after)))
                    ORDER BY revision DESC LIMIT \(input.limit + 1)
                    """, logger: context.logger)
                var out: [BriefingRevision] = []
                for try await row in rows {
                    var r = CellReader(row)
                    out.append(
                        BriefingRevision(
                            id: try r.uuid(), briefingId: try r.uuid(), revision: try r.int(), title: try r.string(), titleAr: try r.string(),
                            summary: try r.string(), summaryAr: try r.string(), sections: try Self.sections(fromJSON: try r.string()),
                            contentHash: try r.string(), changeNote: try r.optionalString(), createdBy: try r.string(), createdAt: try r.date()))
                }
                return out
            }
        }
        guard var items = result else { return .notFound(Self.noBriefing(input.briefingId)) }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        return .ok(BriefingRevisionPage(items: items, nextCursor: next))
    }

    // MARK: edit

    public func updateBriefing(_ input: UpdateBriefing.Input, context: OperationContext) async throws -> UpdateBriefing.Output {
        let b = input.body
        if b.sections.isEmpty {
            var errors = ValidationErrors()
            errors.add("/body/sections", "must have at least one section")
            return .unprocessableContent(.validation(errors))
        }
        enum Result {
            case notFound, stale, notEditable(BriefingStatus), done(Briefing)
        }
        let caller = context.caller
        let result: Result = try await database {
            try await db.withAuditedTransaction(logger: context.logger) { conn in
                guard let (current, _, version) = try await loadBriefing(input.briefingId, on: conn, context: context, lock: true) else {
                    return .notFound
                }
                if input.ifMatch != "*" && ETag.version(fromIfMatch: input.ifMatch, prefix: Self.briefingTagPrefix) != version { return .stale }
                guard BriefingWorkflow.isEditable(current.status) else {
                    try await recordAudit(
                        context.audit(
                            "briefing.update", entityType: "briefing", entityId: current.id.lowercasedString,
                            fromState: current.status.rawValue, reason: "only drafts can be edited", outcome: .refused),
                        on: conn, logger: context.logger)
                    return .notEditable(current.status)
                }
                let revision = current.revision + 1
                let hash = Self.briefingContentHash(
                    title: b.title, titleAr: b.titleAr, briefingDate: current.briefingDate, summary: b.summary, summaryAr: b.summaryAr,
                    sections: b.sections)
                let sectionsJSON = String(decoding: b.sections.jsonBytes(capacity: 4096), as: UTF8.self)
                try await conn.query(
                    """
                    UPDATE briefings SET title = \(b.title), title_ar = \(b.titleAr), summary = \(b.summary), summary_ar = \(b.summaryAr),
                        sections = \(sectionsJSON)::jsonb, revision = \(revision), content_hash = \(hash), updated_at = now(),
                        version = version + 1
                    WHERE id = \(input.briefingId)
                    """, logger: context.logger)
                try await conn.query(
                    """
                    INSERT INTO briefing_revisions (briefing_id, revision, title, title_ar, summary, summary_ar, sections, content_hash,
                                                    change_note, created_by, created_by_id)
                    VALUES (\(input.briefingId), \(revision), \(b.title), \(b.titleAr), \(b.summary), \(b.summaryAr), \(sectionsJSON)::jsonb,
                            \(hash), \(b.changeNote), \(context.actorLabel), \(caller.id))
                    """, logger: context.logger)
                try await recordAudit(
                    context.audit(
                        "briefing.update", entityType: "briefing", entityId: current.id.lowercasedString, fromState: "draft", toState: "draft",
                        reason: b.changeNote, details: ["revision": .int(Int64(revision))]),
                    on: conn, logger: context.logger)
                guard let updated = try await loadBriefing(input.briefingId, on: conn, context: context, lock: false) else {
                    throw RowShapeError()
                }
                return .done(updated.0)
            }
        }
        switch result {
        case .notFound: return .notFound(Self.noBriefing(input.briefingId))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .notEditable(let status):
            return .conflict(
                .conflict("The briefing is \(status.rawValue); only drafts can be edited (return it to draft first).", code: "briefing.not_editable"))
        case .done(let b): return .ok(b, etag: b.etag)
        }
    }

    // MARK: transitions

    enum TransitionResult {
        case notFound, stale, refused(BriefingWorkflow.Refusal), done(Briefing)
    }

    /// Takes `transition` under a row lock: If-Match, the workflow's decision, the update, and
    /// the audit event (accepted or refused) in one transaction.
    func transition(
        _ transition: BriefingWorkflow.Transition, briefingId: UUID, ifMatch: String, reason: String?, context: OperationContext
    ) async throws -> TransitionResult {
        let caller = context.caller
        return try await database {
            try await db.withAuditedTransaction(logger: context.logger) { conn in
                guard let (current, submitter, version) = try await loadBriefing(briefingId, on: conn, context: context, lock: true) else {
                    return .notFound
                }
                if ifMatch != "*" && ETag.version(fromIfMatch: ifMatch, prefix: Self.briefingTagPrefix) != version { return .stale }
                let actor = BriefingWorkflow.Actor(id: caller.id, roles: caller.roles)
                switch BriefingWorkflow.decide(transition, from: current.status, actor: actor, submittedBy: submitter) {
                case .failure(let refusal):
                    try await recordAudit(
                        context.audit(
                            transition.action, entityType: "briefing", entityId: briefingId.lowercasedString,
                            fromState: current.status.rawValue, toState: BriefingWorkflow.edge(transition).to.rawValue,
                            reason: Self.describe(refusal), outcome: .refused),
                        on: conn, logger: context.logger)
                    return .refused(refusal)
                case .success(let next):
                    let sql: String
                    var binds = PostgresBindings()
                    binds.append(briefingId)
                    switch transition {
                    case .submit:
                        sql = """
                            UPDATE briefings SET status = 'pending_approval', submitted_by = $2, submitted_by_id = $3, submitted_at = now(),
                                return_reason = NULL, updated_at = now(), version = version + 1 WHERE id = $1
                            """
                        binds.append(context.actorLabel)
                        binds.append(caller.id)
                    case .return:
                        sql = "UPDATE briefings SET status = 'draft', return_reason = $2, updated_at = now(), version = version + 1 WHERE id = $1"
                        binds.append(reason ?? "")
                    case .approve:
                        sql = """
                            UPDATE briefings SET status = 'approved', approved_by = $2, approved_by_id = $3, approved_at = now(),
                                updated_at = now(), version = version + 1 WHERE id = $1
                            """
                        binds.append(context.actorLabel)
                        binds.append(caller.id)
                    case .distribute:
                        sql = """
                            UPDATE briefings SET status = 'distributed', distributed_at = now(), updated_at = now(), version = version + 1
                            WHERE id = $1
                            """
                    }
                    try await conn.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: context.logger)
                    try await recordAudit(
                        context.audit(
                            transition.action, entityType: "briefing", entityId: briefingId.lowercasedString,
                            fromState: current.status.rawValue, toState: next.rawValue, reason: reason,
                            details: transition == .approve
                                ? ["contentHash": .string(current.contentHash), "revision": .int(Int64(current.revision))] : nil),
                        on: conn, logger: context.logger)
                    guard let updated = try await loadBriefing(briefingId, on: conn, context: context, lock: false) else { throw RowShapeError() }
                    return .done(updated.0)
                }
            }
        }
    }

    static func describe(_ refusal: BriefingWorkflow.Refusal) -> String {
        switch refusal {
        case .invalidTransition(let from, let allowed):
            "The briefing is \(from.rawValue); allowed from there: "
                + (allowed.isEmpty ? "nothing (it is final)" : allowed.map(\.rawValue).joined(separator: ", ")) + "."
        case .selfApproval: "Four eyes: the executive who submitted a briefing cannot approve it."
        case .notOwnSubmission: "An admin can only withdraw a briefing they submitted; an executive can return any."
        case .missingRole(let roles): "This needs one of the roles: \(roles.joined(separator: ", "))."
        }
    }

    /// The problem for a refusal: 409 for the state machine, 403 for who may do it.
    static func problem(for refusal: BriefingWorkflow.Refusal) -> Problem {
        switch refusal {
        case .invalidTransition:
            Problem.conflict(describe(refusal), code: "briefing.invalid_transition")
        case .selfApproval:
            Problem(status: 403, code: "briefing.self_approval_forbidden", title: "Forbidden", detail: describe(refusal))
        case .notOwnSubmission:
            Problem(status: 403, code: "briefing.withdraw_forbidden", title: "Forbidden", detail: describe(refusal))
        case .missingRole:
            Problem(status: 403, code: "auth.forbidden", title: "Forbidden", detail: describe(refusal))
        }
    }

    public func submitBriefing(_ input: SubmitBriefing.Input, context: OperationContext) async throws -> SubmitBriefing.Output {
        switch try await transition(.submit, briefingId: input.briefingId, ifMatch: input.ifMatch, reason: nil, context: context) {
        case .notFound: return .notFound(Self.noBriefing(input.briefingId))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .refused(let r): return Self.problem(for: r).status == 409 ? .conflict(Self.problem(for: r)) : .forbidden(Self.problem(for: r))
        case .done(let b): return .ok(b, etag: b.etag)
        }
    }

    public func returnBriefing(_ input: ReturnBriefing.Input, context: OperationContext) async throws -> ReturnBriefing.Output {
        switch try await transition(.return, briefingId: input.briefingId, ifMatch: input.ifMatch, reason: input.body.reason, context: context) {
        case .notFound: return .notFound(Self.noBriefing(input.briefingId))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .refused(let r): return Self.problem(for: r).status == 409 ? .conflict(Self.problem(for: r)) : .forbidden(Self.problem(for: r))
        case .done(let b): return .ok(b, etag: b.etag)
        }
    }

    public func approveBriefing(_ input: ApproveBriefing.Input, context: OperationContext) async throws -> ApproveBriefing.Output {
        switch try await transition(.approve, briefingId: input.briefingId, ifMatch: input.ifMatch, reason: nil, context: context) {
        case .notFound: return .notFound(Self.noBriefing(input.briefingId))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .refused(let r): return Self.problem(for: r).status == 409 ? .conflict(Self.problem(for: r)) : .forbidden(Self.problem(for: r))
        case .done(let b): return .ok(b, etag: b.etag)
        }
    }

    // MARK: audit

    public func getBriefingAudit(_ input: GetBriefingAudit.Input, context: OperationContext) async throws -> GetBriefingAudit.Output {
        let after = try Cursor.decode(input.cursor)
        let result: [AuditEvent]? = try await database {
            try await db.withConnection { conn in
                guard try await loadBriefing(input.briefingId, on: conn, context: context, lock: false) != nil else { return nil }
                let rows = try await conn.query(
                    """
                    SELECT id, sequence, occurred_at, actor_id, actor_name, action, outcome, entity_type, entity_id, from_state, to_state,
                           reason, request_id, encode(prev_hash, 'hex'), encode(hash, 'hex')
                    FROM audit_events
                    WHERE entity_type = 'briefing' AND entity_id = \(input.briefingId.lowercasedString)
                      AND (\(after)::uuid IS NULL OR sequence > (SELECT sequence FROM audit_events WHERE id = \(after)))
                    ORDER BY sequence LIMIT \(input.limit + 1)
                    """, logger: context.logger)
                var out: [AuditEvent] = []
                for try await row in rows {
                    var r = CellReader(row)
                    out.append(
                        AuditEvent(
                            id: try r.uuid(), sequence: try r.int(), occurredAt: try r.date(), actorId: try r.string(),
                            actorName: try r.optionalString(), action: try r.string(),
                            outcome: AuditOutcome(rawValue: try r.string()) ?? .succeeded, entityType: try r.string(), entityId: try r.string(),
                            fromState: try r.optionalString(), toState: try r.optionalString(), detail: try r.optionalString(),
                            requestId: try r.optionalString(), prevHash: try r.optionalString(), hash: try r.string()))
                }
                return out
            }
        }
        guard var items = result else { return .notFound(Self.noBriefing(input.briefingId)) }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        return .ok(AuditEventPage(items: items, nextCursor: next))
    }

    public func verifyAudit(_ input: VerifyAudit.Input, context: OperationContext) async throws -> VerifyAudit.Output {
        let v = try await database { try await AuditVerifier().verify(client: db) }
        return .ok(
            AuditVerification(
                valid: v.valid, eventsChecked: v.eventsChecked, firstSequence: v.firstSequence.map(Int.init),
                lastSequence: v.lastSequence.map(Int.init), headHash: v.headHash?.hexString, brokenAtSequence: v.brokenAtSequence.map(Int.init),
                checkedAt: Date()))
    }
}
