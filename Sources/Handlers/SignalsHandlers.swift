import Crypto
import Foundation
import Generated
import PostgresNIO
import SitrepRuntime
import Storage

extension SitrepHandlers {
    static let signalColumns = """
        id, source, source_id, title, summary, source_url, category, severity, confidence::float8, model_version, tags,
        region, published_at, status, triage_note, triaged_by, triaged_at, ingested_at, version
        """

    static func signal(from row: PostgresRow) throws -> Signal {
        let r = row.makeRandomAccess()
        let version = try r[18].decode(Int.self)
        return Signal(
            id: try r[0].decode(UUID.self), source: try r[1].decode(String.self), sourceId: try r[2].decode(String.self),
            title: try r[3].decode(String.self), summary: try r[4].decode(String.self),
            sourceUrl: try r[5].decode(String?.self),
            category: SignalCategory(rawValue: try r[6].decode(String.self)) ?? .security,
            severity: Severity(rawValue: try r[7].decode(String.self)) ?? .low,
            confidence: try r[8].decode(Double.self), modelVersion: try r[9].decode(String.self),
            tags: try r[10].decode([String].self), region: try r[11].decode(String?.self),
            publishedAt: try r[12].decode(Date.self),
            status: SignalStatus(rawValue: try r[13].decode(String.self)) ?? .new,
            triageNote: try r[14].decode(String?.self), triagedBy: try r[15].decode(String?.self),
            triagedAt: try r[16].decode(Date?.self), ingestedAt: try r[17].decode(Date.self), etag: ETag.make(version))
    }

    static let severityRank: [Severity: Int] = [.low: 1, .medium: 2, .high: 3, .critical: 4]

    // MARK: ingest

    public func ingestSignals(_ input: IngestSignals.Input, context: OperationContext) async throws -> IngestSignals.Output {
        let items = input.body.items
        // The same (source, sourceId) twice in one batch: refuse the batch, point at the repeat.
        var seen: [String: Int] = [:]
        var errors = ValidationErrors()
        for (i, item) in items.enumerated() {
            let key = item.source + "\u{0}" + item.sourceId
            if let first = seen[key] {
                errors.add("/body/items/\(i)/sourceId", "repeats (source, sourceId) of item \(first)")
            } else {
                seen[key] = i
            }
        }
        if !errors.isEmpty { return .unprocessableContent(.validation(errors)) }

        let results: [SignalIngestItem] = try await database {
            try await db.withTransaction(logger: context.logger) { conn in
                var out: [SignalIngestItem] = []
                out.reserveCapacity(items.count)
                for item in items {
                    let hash = Self.contentHash(item)
                    let id = UUIDv7.make()
                    let tags = item.tags ?? []
                    let inserted = try await conn.query(
                        """
                        INSERT INTO signals (id, source, source_id, title, summary, source_url, category, severity, confidence,
                                             model_version, tags, region, published_at, content_hash)
                        VALUES (\(id), \(item.source), \(item.sourceId), \(item.title), \(item.summary), \(item.sourceUrl),
                                \(item.category.rawValue), \(item.severity.rawValue), \(item.confidence), \(item.modelVersion),
                                \(tags), \(item.region), \(item.publishedAt), \(hash))
                        ON CONFLICT (source, source_id) DO NOTHING
                        RETURNING id
                        """, logger: context.logger)
                    var newId: UUID?
                    for try await row in inserted.decode(UUID.self) { newId = row }
                    if let newId {
                        out.append(SignalIngestItem(sourceId: item.sourceId, source: item.source, id: newId, outcome: .created))
                        continue
                    }
                    let existing = try await conn.query(
                        "SELECT id, content_hash FROM signals WHERE source = \(item.source) AND source_id = \(item.sourceId)",
                        logger: context.logger)
                    for try await (existingId, existingHash) in existing.decode((UUID, String).self) {
                        out.append(
                            SignalIngestItem(
                                sourceId: item.sourceId, source: item.source, id: existingId,
                                outcome: existingHash == hash ? .unchanged : .conflict))
                    }
                }
                let created = out.filter { $0.outcome == .created }.count
                let conflicts = out.filter { $0.outcome == .conflict }.count
                if created > 0 || conflicts > 0 {
                    try await appendAudit(
                        context.audit(
                            "signal.ingest", entityType: "signal_batch", entityId: context.requestId,
                            details: ["received": .int(Int64(items.count)), "created": .int(Int64(created)), "conflicts": .int(Int64(conflicts))]),
                        on: conn, logger: context.logger)
                }
                return out
            }
        }
        return .ok(
            SignalIngestResult(
                received: items.count, created: results.filter { $0.outcome == .created }.count,
                unchanged: results.filter { $0.outcome == .unchanged }.count,
                conflicts: results.filter { $0.outcome == .conflict }.count, results: results))
    }

    /// SHA-256 of the item's canonical JSON (the generated encoder writes keys in spec order).
    static func contentHash(_ item: SignalInput) -> String {
        SHA256.hash(data: item.jsonBytes()).hexString
    }

    // MARK: list

    public func listSignals(_ input: ListSignals.Input, context: OperationContext) async throws -> ListSignals.Output {
        let after = try Cursor.decode(input.cursor)
        if let since = input.since, let until = input.until, since >= until {
            return .badRequest(
                Problem(
                    status: 400, code: "request.invalid_parameter", title: "Invalid parameters",
                    detail: "since must be before until.",
                    errors: [FieldError(pointer: "/query/since", message: "must be before until")]))
        }
        var sql = "SELECT \(Self.signalColumns) FROM signals WHERE TRUE"
        var binds = PostgresBindings()
        func bind<T: PostgresEncodable>(_ v: T) throws -> String {
            try binds.append(v)
            return "$\(binds.count)"
        }
        if let c = input.category, !c.isEmpty { sql += " AND category = ANY(\(try bind(c.map(\.rawValue))))" }
        if let s = input.status, !s.isEmpty { sql += " AND status = ANY(\(try bind(s.map(\.rawValue))))" }
        if let m = input.minSeverity { sql += " AND severity_rank >= \(try bind(Self.severityRank[m] ?? 1))" }
        if let t = input.tag { sql += " AND tags @> ARRAY[\(try bind(t))]::text[]" }
        if let s = input.since { sql += " AND published_at >= \(try bind(s))" }
        if let u = input.until { sql += " AND published_at < \(try bind(u))" }
        if let q = input.q {
            sql += " AND search_vector @@ websearch_to_tsquery('simple', \(try bind(q)))"
        }
        if let after {
            let p = try bind(after)
            sql += " AND (published_at, id) < (SELECT published_at, id FROM signals WHERE id = \(p))"
        }
        sql += " ORDER BY published_at DESC, id DESC LIMIT \(try bind(input.limit + 1))"
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        var items: [Signal] = []
        items.reserveCapacity(input.limit + 1)
        try await database {
            let rows = try await db.query(query, logger: context.logger)
            for try await row in rows { items.append(try Self.signal(from: row)) }
        }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        // The page is named by its rows' ids and versions: compared before anything is encoded.
        let etag = ConditionalRequest.etag(prefix: "l", parts: items.map { $0.id.uuidString + $0.etag } + [next ?? ""])
        if ConditionalRequest.ifNoneMatch(input.ifNoneMatch, matches: etag) { return .notModified(etag: etag) }
        return .ok(SignalPage(items: items, nextCursor: next), etag: etag)
    }

    // MARK: get

    public func getSignal(_ input: GetSignal.Input, context: OperationContext) async throws -> GetSignal.Output {
        if let held = input.ifNoneMatch {
            // Revalidation reads only the version: no row decoding, no encoding when it still matches.
            let version: Int? = try await database {
                let rows = try await db.query("SELECT version FROM signals WHERE id = \(input.signalId)", logger: context.logger)
                for try await v in rows.decode(Int.self) { return v }
                return nil
            }
            if let version, ConditionalRequest.ifNoneMatch(held, matches: ETag.make(version)) {
                return .notModified(etag: ETag.make(version))
            }
        }
        let found: Signal? = try await database {
            let rows = try await db.query(
                PostgresQuery(unsafeSQL: "SELECT \(Self.signalColumns) FROM signals WHERE id = $1", binds: try Self.binds(input.signalId)),
                logger: context.logger)
            for try await row in rows { return try Self.signal(from: row) }
            return nil
        }
        guard let found else { return .notFound(.notFound("No signal has id \(input.signalId.uuidString.lowercased()).")) }
        return .ok(found, etag: found.etag)
    }

    static func binds<T: PostgresEncodable>(_ v: T) throws -> PostgresBindings {
        var b = PostgresBindings()
        try b.append(v)
        return b
    }

    // MARK: triage

    public func triageSignal(_ input: TriageSignal.Input, context: OperationContext) async throws -> TriageSignal.Output {
        if input.body.status == .new {
            return .conflict(
                .conflict("A signal cannot be moved back to new; choose acknowledged, escalated or dismissed.", code: "signal.invalid_transition"))
        }
        enum Result {
            case notFound, stale, done(Signal)
        }
        let result: Result = try await database {
            try await db.withTransaction(logger: context.logger) { conn in
                let rows = try await conn.query(
                    "SELECT version, status FROM signals WHERE id = \(input.signalId) FOR UPDATE", logger: context.logger)
                var current: (Int, String)?
                for try await row in rows.decode((Int, String).self) { current = row }
                guard let (version, fromStatus) = current else { return .notFound }
                if input.ifMatch != "*" && ETag.version(fromIfMatch: input.ifMatch) != version { return .stale }
                let updated = try await conn.query(
                    PostgresQuery(
                        unsafeSQL: """
                            UPDATE signals SET status = $1, triage_note = $2, triaged_by = $3, triaged_at = now(), updated_at = now(),
                                version = version + 1
                            WHERE id = $4 RETURNING \(Self.signalColumns)
                            """,
                        binds: {
                            var b = PostgresBindings()
                            b.append(input.body.status.rawValue)
                            b.append(input.body.note)
                            b.append(context.actorLabel)
                            b.append(input.signalId)
                            return b
                        }()), logger: context.logger)
                var signal: Signal?
                for try await row in updated { signal = try Self.signal(from: row) }
                try await appendAudit(
                    context.audit(
                        "signal.triage", entityType: "signal", entityId: input.signalId.uuidString.lowercased(),
                        fromState: fromStatus, toState: input.body.status.rawValue, reason: input.body.note),
                    on: conn, logger: context.logger)
                return .done(signal!)
            }
        }
        switch result {
        case .notFound: return .notFound(.notFound("No signal has id \(input.signalId.uuidString.lowercased())."))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .done(let s): return .ok(s, etag: s.etag)
        }
    }
}
