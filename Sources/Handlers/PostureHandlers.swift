import Foundation
import Generated
import PostgresNIO
import SitrepRuntime
import Storage

extension SitrepHandlers {
    static let postureOrder = PostureDomain.allCases.map(\.rawValue)

    /// Every domain's current entry, in enum order; a domain never set is `normal` with nulls.
    func postureEntries(context: OperationContext, connection: PostgresConnection? = nil) async throws -> [PostureEntry] {
        var found: [String: PostureEntry] = [:]
        let query: PostgresQuery = "SELECT domain, level, rationale, set_by, set_at, version FROM posture"
        let rows =
            try await
            (connection != nil
            ? connection!.query(query, logger: context.logger) : db.query(query, logger: context.logger))
        for try await (domain, level, rationale, setBy, setAt, version) in rows.decode(
            (String, String, String?, String?, Date?, Int).self)
        {
            guard let d = PostureDomain(rawValue: domain) else { continue }
            found[domain] = PostureEntry(
                domain: d, level: PostureLevel(rawValue: level) ?? .normal, rationale: rationale, setBy: setBy, setAt: setAt,
                etag: ETag.make(version))
        }
        return PostureDomain.allCases.map {
            found[$0.rawValue] ?? PostureEntry(domain: $0, level: .normal, rationale: nil, setBy: nil, setAt: nil, etag: ETag.make(1))
        }
    }

    public func getPosture(_ input: GetPosture.Input, context: OperationContext) async throws -> GetPosture.Output {
        let entries = try await database { try await postureEntries(context: context) }
        let etag = ConditionalRequest.etag(prefix: "p", parts: entries.map { $0.domain.rawValue + $0.etag })
        if ConditionalRequest.ifNoneMatch(input.ifNoneMatch, matches: etag) { return .notModified(etag: etag) }
        let updated = entries.compactMap(\.setAt).max() ?? context.receivedAt
        return .ok(Posture(domains: entries, updatedAt: updated), etag: etag)
    }

    public func getPostureDomain(_ input: GetPostureDomain.Input, context: OperationContext) async throws -> GetPostureDomain.Output {
        let entries = try await database { try await postureEntries(context: context) }
        let entry = entries.first { $0.domain == input.domain }!
        if ConditionalRequest.ifNoneMatch(input.ifNoneMatch, matches: entry.etag) { return .notModified(etag: entry.etag) }
        return .ok(entry, etag: entry.etag)
    }

    public func setPosture(_ input: SetPosture.Input, context: OperationContext) async throws -> SetPosture.Output {
        enum Result {
            case stale, done(PostureEntry)
        }
        let result: Result = try await database {
            try await db.withAuditedTransaction(logger: context.logger) { conn in
                // A domain row may not exist yet: create it at `normal`, never set, then lock it.
                try await conn.query(
                    "INSERT INTO posture (domain, level, version) VALUES (\(input.domain.rawValue), 'normal', 1) ON CONFLICT (domain) DO NOTHING",
                    logger: context.logger)
                let rows = try await conn.query(
                    "SELECT level, version, set_at IS NOT NULL FROM posture WHERE domain = \(input.domain.rawValue) FOR UPDATE",
                    logger: context.logger)
                var current: (String, Int, Bool)?
                for try await row in rows.decode((String, Int, Bool).self) { current = row }
                let (fromLevel, version, wasSet) = current!
                if input.ifMatch != "*" && ETag.version(fromIfMatch: input.ifMatch) != version { return .stale }
                let actor = context.actorLabel
                let updated = try await conn.query(
                    """
                    UPDATE posture SET level = \(input.body.level.rawValue), rationale = \(input.body.rationale),
                        set_by = \(actor), set_at = now(), version = version + 1
                    WHERE domain = \(input.domain.rawValue)
                    RETURNING set_at, version
                    """, logger: context.logger)
                var setAt = Date()
                var newVersion = version + 1
                for try await (at, v) in updated.decode((Date, Int).self) {
                    setAt = at
                    newVersion = v
                }
                let fromLevelOrNil: String? = wasSet ? fromLevel : nil
                try await conn.query(
                    """
                    INSERT INTO posture_history (id, domain, from_level, to_level, rationale, set_by, set_at)
                    VALUES (\(UUIDv7.make()), \(input.domain.rawValue), \(fromLevelOrNil), \(input.body.level.rawValue),
                            \(input.body.rationale), \(actor), \(setAt))
                    """, logger: context.logger)
                try await recordAudit(
                    context.audit(
                        "posture.set", entityType: "posture", entityId: input.domain.rawValue, fromState: fromLevel,
                        toState: input.body.level.rawValue, reason: input.body.rationale),
                    on: conn, logger: context.logger)
                return .done(
                    PostureEntry(
                        domain: input.domain, level: input.body.level, rationale: input.body.rationale, setBy: actor,
                        setAt: setAt, etag: ETag.make(newVersion)))
            }
        }
        switch result {
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .done(let e): return .ok(e, etag: e.etag)
        }
    }

    public func listPostureHistory(_ input: ListPostureHistory.Input, context: OperationContext) async throws -> ListPostureHistory.Output {
        let after = try Cursor.decode(input.cursor)
        var sql = "SELECT id, domain, from_level, to_level, rationale, set_by, set_at FROM posture_history WHERE TRUE"
        var binds = PostgresBindings()
        if let d = input.domain {
            binds.append(d.rawValue)
            sql += " AND domain = $\(binds.count)"
        }
        if let after {
            binds.append(after)
            sql += " AND (set_at, id) < (SELECT set_at, id FROM posture_history WHERE id = $\(binds.count))"
        }
        binds.append(input.limit + 1)
        sql += " ORDER BY set_at DESC, id DESC LIMIT $\(binds.count)"
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        var items: [PostureHistoryEntry] = try await database {
            var items: [PostureHistoryEntry] = []
            let rows = try await db.query(query, logger: context.logger)
            for try await (id, domain, from, to, rationale, setBy, setAt) in rows.decode(
                (UUID, String, String?, String, String, String, Date).self)
            {
                items.append(
                    PostureHistoryEntry(
                        id: id, domain: PostureDomain(rawValue: domain) ?? .cyber, fromLevel: from.flatMap(PostureLevel.init(rawValue:)),
                        toLevel: PostureLevel(rawValue: to) ?? .normal, rationale: rationale, setBy: setBy, setAt: setAt))
            }
            return items
        }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        // History rows never change: the page is named by its ids.
        let etag = ConditionalRequest.etag(prefix: "h", parts: items.map { $0.id.uuidString } + [next ?? ""])
        if ConditionalRequest.ifNoneMatch(input.ifNoneMatch, matches: etag) { return .notModified(etag: etag) }
        return .ok(PostureHistoryPage(items: items, nextCursor: next), etag: etag)
    }
}
