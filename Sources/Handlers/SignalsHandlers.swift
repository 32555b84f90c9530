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

    /// ``signalColumns`` as one composite value a row, what ``writeSignal(_:to:)`` reads.
    static let signalRecord = "ROW(\(signalColumns))"

    /// Decodes a row of ``signalColumns``, left to right.
    static func signal(from row: PostgresRow) throws -> Signal {
        var r = CellReader(row)
        return try signal(from: &r)
    }

    /// Decodes ``signalColumns`` from where `r` stands.
    static func signal(from r: inout CellReader) throws -> Signal {
        Signal(
            id: try r.uuid(), source: try r.string(), sourceId: try r.string(), title: try r.string(), summary: try r.string(),
            sourceUrl: try r.optionalString(), category: SignalCategory(rawValue: try r.string()) ?? .security,
            severity: Severity(rawValue: try r.string()) ?? .low, confidence: try r.double(), modelVersion: try r.string(),
            tags: try r.stringArray(), region: try r.optionalString(), publishedAt: try r.date(),
            status: SignalStatus(rawValue: try r.string()) ?? .new, triageNote: try r.optionalString(),
            triagedBy: try r.optionalString(), triagedAt: try r.optionalDate(), ingestedAt: try r.date(),
            etag: ETag.make(try r.int()))
    }

    /// Writes a row of ``signalColumns`` as a `Signal`'s JSON straight from the wire bytes, key for
    /// key what the generated encoder writes (pinned by a test), without making a `Signal` or any
    /// `String`: the unfiltered list page, the path every dashboard polls. The row comes as one
    /// composite cell (``signalRecord``), read by ``RecordFields``. Returns the row's id and
    /// version, what the page's ETag names. Category, severity and status are written as stored
    /// (the table's CHECK constraints hold them to the contract's enums).
    static func writeSignal(_ row: PostgresRow, to w: inout JSONWriter) throws -> (id: UUID, version: Int) {
        var cells = row.makeIterator()
        guard let cell = cells.next(), cells.next() == nil else { throw RowShapeError() }
        return try RecordFields.read(cell, formatLabel: .unreliable) { f in
            func string(_ bytes: UnsafeRawBufferPointer?, nullable: Bool = false) throws {
                if let bytes {
                    w.string(utf8: bytes)
                } else if nullable {
                    w.null()
                } else {
                    throw RowShapeError()
                }
            }
            let id = try f.uuid()
            w.raw("{\"id\":")
            w.uuid(id)
            w.raw(",\"source\":")
            try string(f.text())
            w.raw(",\"sourceId\":")
            try string(f.text())
            w.raw(",\"title\":")
            try string(f.text())
            w.raw(",\"summary\":")
            try string(f.text())
            w.raw(",\"sourceUrl\":")
            try string(f.text(), nullable: true)
            w.raw(",\"category\":")
            try string(f.text())
            w.raw(",\"severity\":")
            try string(f.text())
            w.raw(",\"confidence\":")
            w.double(try f.double())
            w.raw(",\"modelVersion\":")
            try string(f.text())
            w.raw(",\"tags\":[")
            var first = true
            try f.textArray { element in
                if !first { w.raw(",") }
                first = false
                w.string(utf8: element)
            }
            w.raw("],\"region\":")
            try string(f.text(), nullable: true)
            w.raw(",\"publishedAt\":")
            guard let published = try f.date() else { throw RowShapeError() }
            w.dateTime(published)
            w.raw(",\"status\":")
            try string(f.text())
            w.raw(",\"triageNote\":")
            try string(f.text(), nullable: true)
            w.raw(",\"triagedBy\":")
            try string(f.text(), nullable: true)
            w.raw(",\"triagedAt\":")
            if let at = try f.date() { w.dateTime(at) } else { w.null() }
            w.raw(",\"ingestedAt\":")
            guard let ingested = try f.date() else { throw RowShapeError() }
            w.dateTime(ingested)
            let version = try f.int()
            // `ETag.make(version)` as a JSON string, `"\"7\""`, without making the String.
            w.raw(",\"etag\":\"\\\"")
            w.int(version)
            w.raw("\\\"\"}")
            return (id, version)
        }
    }

    /// An unfiltered page (`limit + 1` rows asked for: the last only says there is more) written
    /// as `SignalPage` JSON, and its ETag, named by its rows' ids and versions and the cursor.
    /// Writes a page from the rows of a page statement as they arrive, on the connection's event
    /// loop (``RowCallbackStatements``): `limit` items, then the cursor of the last if a row past
    /// them came (`limit + 1` asked for).
    final class PageWriter: RowConsumer {
        private var w = JSONWriter(capacity: 32 * 1024)
        private var name: PageName
        private let limit: Int
        private var count = 0
        private var last: UUID?
        private var more = false

        init(limit: Int) {
            self.limit = limit
            name = PageName(capacity: limit)
            w.raw("{\"items\":[")
        }

        func consume(_ row: PostgresRow) throws {
            if count == limit {
                more = true
                return
            }
            if count > 0 { w.raw(",") }
            let (id, version) = try writeSignal(row, to: &w)
            name.add(id, version: version)
            last = id
            count += 1
        }

        func finish() -> SignalPageCache.Page {
            let next = more ? last.map(Cursor.encode) : nil
            w.raw("],\"nextCursor\":")
            if let next { w.string(next) } else { w.null() }
            w.raw("}")
            return SignalPageCache.Page(body: Encoded(writtenAs: SignalPage.self, by: w, etag: name.etag(next: next)))
        }
    }

    /// What a signal list page's ETag names: its rows' ids and versions, then its cursor. The same
    /// for pages written from rows and pages of `Signal`s, so a held tag matches either.
    struct PageName {
        private var bytes: [UInt8] = []
        init(capacity rows: Int) { bytes.reserveCapacity(rows * 24 + 8) }
        mutating func add(_ id: UUID, etag: String) {
            withUnsafeBytes(of: id.uuid) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: etag.utf8)
        }

        /// ``add(_:etag:)`` with `ETag.make(version)`, written without making the String.
        mutating func add(_ id: UUID, version: Int) {
            withUnsafeBytes(of: id.uuid) { bytes.append(contentsOf: $0) }
            bytes.append(UInt8(ascii: "\""))
            let start = bytes.count
            var rest = version.magnitude
            repeat {
                bytes.append(UInt8(truncatingIfNeeded: rest % 10) &+ UInt8(ascii: "0"))
                rest /= 10
            } while rest != 0
            if version < 0 { bytes.append(UInt8(ascii: "-")) }
            bytes[start...].reverse()
            bytes.append(UInt8(ascii: "\""))
        }
        func etag(next: String?) -> String {
            ConditionalRequest.etag(prefix: "l", bytes: bytes + Array((next ?? "").utf8))
        }
    }

    /// The newest signals, optionally strictly after a cursor row: the unfiltered list page and
    /// the dashboard's polling path. Each page size has its own statement with its LIMIT written
    /// in, prepared once per connection (``RowCallbackStatements``).
    ///
    /// PostgreSQL plans a statement whose LIMIT is a parameter again on every execution: its
    /// generic plan guesses a tenth of the table for the LIMIT, so it never looks as cheap as a
    /// custom plan, and that planning was a sixth of the backend's time on this page. With the
    /// LIMIT written in, the plan is made once per connection. A page of `limit` items needs
    /// `limit + 1` rows (the last says there is more); it takes the smallest size that holds them
    /// and skips the rows past them.
    static let pageRowCounts = [11, 26, 51, 76, 101, 151, 201]

    static let latestSQL = pageRowCounts.map { rows in
        "SELECT \(signalRecord) FROM signals ORDER BY published_at DESC, id DESC LIMIT \(rows)"
    }
    static let latestAfterSQL = pageRowCounts.map { rows in
        """
        SELECT \(signalRecord) FROM signals
        WHERE (published_at, id) < (SELECT published_at, id FROM signals WHERE id = $1)
        ORDER BY published_at DESC, id DESC LIMIT \(rows)
        """
    }

    /// The unfiltered page of `limit` items (1–200), after `after` when given.
    static func latestPage(
        _ db: PostgresClient, _ statements: RowCallbackStatements, limit: Int, after: UUID?, logger: Logger
    ) async throws -> SignalPageCache.Page {
        guard let size = pageRowCounts.firstIndex(where: { $0 >= limit + 1 }) else { throw PageSizeError(limit: limit) }
        return try await db.withConnection { connection in
            if let after {
                return try await statements.execute(
                    latestAfterSQL[size], binds: [PostgresData(uuid: after)], on: connection, into: PageWriter(limit: limit))
            }
            return try await statements.execute(latestSQL[size], on: connection, into: PageWriter(limit: limit))
        }
    }

    /// A page larger than the largest of ``pageRowCounts``: the spec caps `limit` at 200, so the
    /// generated input check refuses it first; reaching this is a bug.
    struct PageSizeError: Error, CustomStringConvertible {
        let limit: Int
        var description: String { "no page statement holds \(limit) items" }
    }

    struct SignalById: PostgresPreparedStatement {
        static let name = "Handlers.SitrepHandlers.SignalById"
        static let sql = "SELECT \(signalColumns) FROM signals WHERE id = $1"
        static let bindingDataTypes: [PostgresDataType] = [.uuid]
        let id: UUID
        func makeBindings() throws -> PostgresBindings { try SitrepHandlers.binds(id) }
        func decodeRow(_ row: PostgresRow) throws -> Signal { try SitrepHandlers.signal(from: row) }
    }

    struct SignalVersion: PostgresPreparedStatement {
        static let name = "Handlers.SitrepHandlers.SignalVersion"
        static let sql = "SELECT version FROM signals WHERE id = $1"
        static let bindingDataTypes: [PostgresDataType] = [.uuid]
        let id: UUID
        func makeBindings() throws -> PostgresBindings { try SitrepHandlers.binds(id) }
        func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
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

        // One statement for the whole batch: the items as a JSON array (the generated encoder's
        // bytes, which are also what the content hash covers), ids and hashes as parallel arrays.
        var document: [UInt8] = [UInt8(ascii: "[")]
        var ids: [UUID] = []
        var hashes: [String] = []
        ids.reserveCapacity(items.count)
        hashes.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            let bytes = item.jsonBytes()
            if i > 0 { document.append(UInt8(ascii: ",")) }
            document.append(contentsOf: bytes)
            ids.append(UUIDv7.make())
            hashes.append(SHA256.hash(data: bytes).hexString)
        }
        document.append(UInt8(ascii: "]"))
        let batch = String(decoding: document, as: UTF8.self)
        let results: [SignalIngestItem] = try await database { [ids, hashes] in
            try await db.withAuditedTransaction(logger: context.logger) { conn in
                var out = [SignalIngestItem?](repeating: nil, count: items.count)
                let rows = try await conn.query(
                    """
                    WITH input AS (
                        SELECT e.ord, k.id, k.hash, e.doc
                        FROM jsonb_array_elements(\(batch)::jsonb) WITH ORDINALITY AS e(doc, ord)
                        JOIN unnest(\(ids)::uuid[], \(hashes)::text[]) WITH ORDINALITY AS k(id, hash, ord) USING (ord)
                    ), inserted AS (
                        INSERT INTO signals (id, source, source_id, title, summary, source_url, category, severity, confidence,
                                             model_version, tags, region, published_at, content_hash)
                        SELECT id, doc->>'source', doc->>'sourceId', doc->>'title', doc->>'summary', doc->>'sourceUrl',
                               doc->>'category', doc->>'severity', (doc->>'confidence')::float8, doc->>'modelVersion',
                               ARRAY(SELECT jsonb_array_elements_text(coalesce(doc->'tags', '[]'::jsonb))), doc->>'region',
                               (doc->>'publishedAt')::timestamptz, hash
                        FROM input ORDER BY ord
                        ON CONFLICT (source, source_id) DO NOTHING
                        RETURNING id
                    )
                    SELECT i.ord::int8, coalesce(ins.id, s.id), ins.id IS NOT NULL, coalesce(s.content_hash = i.hash, false)
                    FROM input i
                    LEFT JOIN inserted ins ON ins.id = i.id
                    LEFT JOIN signals s ON ins.id IS NULL AND s.source = i.doc->>'source' AND s.source_id = i.doc->>'sourceId'
                    ORDER BY i.ord
                    """, logger: context.logger)
                for try await (ord, id, created, same) in rows.decode((Int, UUID?, Bool, Bool).self) {
                    let item = items[ord - 1]
                    guard let id else { continue }  // inserted by a concurrent batch after this statement's snapshot
                    out[ord - 1] = SignalIngestItem(
                        sourceId: item.sourceId, source: item.source, id: id, outcome: created ? .created : same ? .unchanged : .conflict)
                }
                // Rows a concurrent batch committed while this one waited on them: read them now.
                for (i, item) in items.enumerated() where out[i] == nil {
                    let existing = try await conn.query(
                        "SELECT id, content_hash FROM signals WHERE source = \(item.source) AND source_id = \(item.sourceId)",
                        logger: context.logger)
                    for try await (existingId, existingHash) in existing.decode((UUID, String).self) {
                        out[i] = SignalIngestItem(
                            sourceId: item.sourceId, source: item.source, id: existingId, outcome: existingHash == hashes[i] ? .unchanged : .conflict)
                    }
                }
                let done = out.compactMap { $0 }
                let created = done.filter { $0.outcome == .created }.count
                let conflicts = done.filter { $0.outcome == .conflict }.count
                if created > 0 || conflicts > 0 {
                    try await recordAudit(
                        context.audit(
                            "signal.ingest", entityType: "signal_batch", entityId: context.requestId,
                            details: ["received": .int(Int64(items.count)), "created": .int(Int64(created)), "conflicts": .int(Int64(conflicts))]),
                        on: conn, logger: context.logger)
                }
                // Behind the audit event (record writes after it, at the end with it under the batch): the chain
                // head its trigger takes until commit makes events commit in seq order.
                let createdIds = done.filter { $0.outcome == .created }.map(\.id)
                if !createdIds.isEmpty {
                    try await SignalStreamHub.record("signal.created", signalIds: createdIds, on: conn, logger: context.logger)
                }
                return done
            }
        }
        if results.contains(where: { $0.outcome == .created }) { await signalHub?.notify() }
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
        let filtered =
            input.category?.isEmpty == false || input.status?.isEmpty == false || input.minSeverity != nil || input.tag != nil
            || input.since != nil || input.until != nil || input.q != nil
        // Unfiltered pages come from memory while no signal changed (read before the query).
        let key = SignalPageCache.Key(limit: input.limit, after: after)
        let mark = !filtered && signalPages.enabled ? signalHub?.changeMark : nil
        if let mark, let page = signalPages.page(key, mark: mark) {
            if ConditionalRequest.ifNoneMatch(input.ifNoneMatch, matches: page.etag) { return .notModified(etag: page.etag) }
            return .okEncoded(page.body)
        }
        if !filtered {
            let page = try await database {
                try await Self.latestPage(db, pageStatements, limit: input.limit, after: after, logger: context.logger)
            }
            if let mark { signalPages.store(page, for: key, mark: mark) }
            if ConditionalRequest.ifNoneMatch(input.ifNoneMatch, matches: page.etag) { return .notModified(etag: page.etag) }
            return .okEncoded(page.body)
        }
        let query = try Self.filteredQuery(input, after: after)
        var items: [Signal] = try await database {
            var items: [Signal] = []
            items.reserveCapacity(input.limit + 1)
            let rows = try await db.query(query, logger: context.logger)
            for try await row in rows { items.append(try Self.signal(from: row)) }
            return items
        }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        // The page is named by its rows' ids and versions: compared before anything is encoded.
        var name = PageName(capacity: items.count)
        for item in items { name.add(item.id, etag: item.etag) }
        let etag = name.etag(next: next)
        if ConditionalRequest.ifNoneMatch(input.ifNoneMatch, matches: etag) { return .notModified(etag: etag) }
        return .ok(SignalPage(items: items, nextCursor: next), etag: etag)
    }

    /// The list query for filtered pages (shapes vary, so an unnamed statement).
    static func filteredQuery(_ input: ListSignals.Input, after: UUID?) throws -> PostgresQuery {
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
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }

    // MARK: get

    public func getSignal(_ input: GetSignal.Input, context: OperationContext) async throws -> GetSignal.Output {
        if let held = input.ifNoneMatch {
            // Revalidation reads only the version: no row decoding, no encoding when it still matches.
            let version: Int? = try await database {
                for try await v in try await db.execute(SignalVersion(id: input.signalId), logger: context.logger) { return v }
                return nil
            }
            if let version, ConditionalRequest.ifNoneMatch(held, matches: ETag.make(version)) {
                return .notModified(etag: ETag.make(version))
            }
        }
        let found: Signal? = try await database {
            for try await s in try await db.execute(SignalById(id: input.signalId), logger: context.logger) { return s }
            return nil
        }
        guard let found else { return .notFound(.notFound("No signal has id \(input.signalId.lowercasedString).")) }
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
            try await db.withAuditedTransaction(logger: context.logger) { conn in
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
                try await recordAudit(
                    context.audit(
                        "signal.triage", entityType: "signal", entityId: input.signalId.lowercasedString,
                        fromState: fromStatus, toState: input.body.status.rawValue, reason: input.body.note),
                    on: conn, logger: context.logger)
                try await SignalStreamHub.record("signal.triaged", signalIds: [input.signalId], on: conn, logger: context.logger)
                return .done(signal!)
            }
        }
        if case .done = result { await signalHub?.notify() }
        switch result {
        case .notFound: return .notFound(.notFound("No signal has id \(input.signalId.lowercasedString)."))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .done(let s): return .ok(s, etag: s.etag)
        }
    }
}
