import Crypto
import Foundation
import Generated
import Logging
import NIOCore
import PostgresNIO
import Redis
import SitrepRuntime
import Storage
import Synchronization
import Treasury

/// How many uploads one instance takes at a time: each holds a PostgreSQL connection (its open
/// transaction) for as long as the client takes to send the file.
public final class UploadSlots: Sendable {
    public let capacity: Int
    private let used = Mutex(0)

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Takes a slot; false when all are taken.
    func take() -> Bool {
        used.withLock { n in
            guard n < capacity else { return false }
            n += 1
            return true
        }
    }

    func give() { used.withLock { $0 -= 1 } }
}

/// Treasury position files: streamed, validated row by row, stored all or nothing with `COPY`,
/// duplicates refused by checksum; progress kept in Redis for `getTreasuryUploadProgress`.
extension SitrepHandlers {
    static let treasuryUploadColumns =
        "id, file_name, sha256, size_bytes, row_count, as_of_date::text, currencies, currency_totals, currency_accounts, uploaded_by, uploaded_at"

    static func treasuryUpload(from row: PostgresRow) throws -> TreasuryUpload {
        var r = CellReader(row)
        let id = try r.uuid()
        let fileName = try r.string()
        let sha = try r.decode(ByteBuffer.self)
        let size = try r.int()
        let rows = try r.int()
        guard let asOf = CalendarDate(try r.string()) else { throw RowShapeError() }
        let currencies = try r.stringArray()
        let totals = try r.stringArray()
        let accounts = try r.decode([Int32].self)
        guard totals.count == currencies.count, accounts.count == currencies.count else { throw RowShapeError() }
        return TreasuryUpload(
            id: id, fileName: fileName, sha256: sha.readableBytesView.hexString, sizeBytes: size, rowCount: rows, asOfDate: asOf,
            currencies: currencies,
            totals: currencies.indices.map { CurrencyTotal(currency: currencies[$0], total: totals[$0], accountCount: Int(accounts[$0])) },
            uploadedBy: try r.string(), uploadedAt: try r.date())
    }

    static func noUpload(_ id: UUID) -> Problem { .notFound("No treasury upload has id \(id.lowercasedString).") }

    // MARK: upload

    /// Why a file was refused after it had been read; thrown out of the transaction to roll it back.
    enum UploadRefusal: Error {
        case invalid(TreasuryValidationFailure)
        case duplicate(of: TreasuryUpload)
    }

    /// What the stream held when the file was accepted.
    struct ReceivedFile: Sendable {
        var summary: TreasuryFileSummary
        var sha256: [UInt8]
        var size: Int
    }

    public func createTreasuryUpload(_ input: CreateTreasuryUpload.Input, context: OperationContext) async throws -> CreateTreasuryUpload.Output {
        guard uploadSlots.take() else {
            return .serviceUnavailable(
                .serviceUnavailable(
                    "This server is already taking \(uploadSlots.capacity) uploads; retry when one has finished.", code: "service.busy",
                    retryAfter: 5))
        }
        defer { uploadSlots.give() }
        let id = input.uploadId ?? UUIDv7.make()
        let progress = UploadProgress(
            redis: redis, logger: context.logger, uploadId: id, fileName: input.fileName, expected: input.body.declaredLength)
        let chosen = input.uploadId != nil
        if chosen {
            let stored = try await database {
                try await db.withConnection { conn in
                    for try await _ in try await conn.query("SELECT 1 FROM treasury_uploads WHERE id = \(id)", logger: context.logger) {
                        return true
                    }
                    return false
                }
            }
            if stored { return .conflict(Self.uploadIdTaken(id)) }
        }
        guard await progress.start(exclusive: chosen) else { return .conflict(Self.uploadIdTaken(id)) }

        do {
            // No deadline: the transaction lasts as long as the client takes to send the file.
            let (file, upload) = try await databaseUnbounded {
                try await db.withAuditedTransaction(logger: context.logger) { conn in
                    let file = try await receive(input.body, uploadId: id, on: conn, progress: progress, context: context)
                    let upload = try await storeUpload(id, fileName: input.fileName, file: file, on: conn, context: context)
                    return (file, upload)
                }
            }
            await progress.finish(.accepted, bytes: file.size, rows: file.summary.rowCount, errors: 0, outcome: nil)
            return .created(upload, location: "/v1/treasury/uploads/\(id.lowercasedString)")
        } catch let e as PostgresTransactionError {
            switch e.closureError {
            case let refusal as UploadRefusal:
                return try await refuse(refusal, uploadId: id, fileName: input.fileName, progress: progress, context: context)
            case let psql as PSQLError where psql.serverInfo?[.sqlState] == "23505":
                // A concurrent upload of the same bytes (or id) committed first.
                if let earlier = try await uploadWithSameBytes(as: progress.sha256, context: context) {
                    return try await refuse(.duplicate(of: earlier), uploadId: id, fileName: input.fileName, progress: progress, context: context)
                }
                await progress.finish(.refused, outcome: "treasury.upload_id_taken")
                return .conflict(Self.uploadIdTaken(id))
            default:
                await progress.finish(.refused, outcome: "internal.error")
                throw e
            }
        } catch let e as ProblemError {
            // 413 while reading, or PostgreSQL unavailable: refused as a whole, nothing stored.
            await progress.finish(.refused, outcome: e.problem.code)
            if e.problem.status == 413 {
                try? await auditRefusal(
                    uploadId: id, fileName: input.fileName, reason: e.problem.detail ?? "too large",
                    details: ["bytesReceived": .int(Int64(progress.bytesReceived))], context: context)
            }
            throw e
        } catch {
            // The client went away mid-file, or the database failed: nothing was stored.
            await progress.finish(.refused, outcome: "upload.interrupted")
            throw error
        }
    }

    static func uploadIdTaken(_ id: UUID) -> Problem {
        .conflict("The upload id \(id.lowercasedString) was used before; choose a new one.", code: "treasury.upload_id_taken")
    }

    /// Reads the body to its end: hashes it, parses and validates every record, and copies the
    /// valid rows into `treasury_positions` (in the caller's transaction) while no row has failed.
    /// Throws ``UploadRefusal/invalid`` after the whole file was read when any row failed.
    private func receive(
        _ body: RequestBodyStream, uploadId: UUID, on conn: PostgresConnection, progress: UploadProgress, context: OperationContext
    ) async throws -> ReceivedFile {
        var parser = CSVStreamParser()
        var validator = TreasuryFileValidator()
        var hasher = SHA256()
        var size = 0
        var broken = false
        var summary: TreasuryFileSummary?
        let prefix = Array((uploadId.lowercasedString + "\t").utf8)
        try await conn.copyFrom(
            table: "treasury_positions",
            columns: ["upload_id", "line", "entity", "bank", "account_ref", "currency", "balance", "value_date"],
            logger: context.logger
        ) { writer in
            var out = ByteBuffer()
            out.reserveCapacity(80 << 10)
            func take(_ records: [CSVRecord]) {
                for row in validator.consume(records) where validator.totalErrors == 0 {
                    Self.appendCopyRow(row, prefix: prefix, to: &out)
                }
                if validator.totalErrors > 0 { out.clear() }
            }
            for try await chunk in body {
                size += chunk.readableBytes
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                // After a syntax error the rest is still read (and hashed, and counted against the
                // size limit) so the answer comes after the whole request, as HTTP expects.
                if !broken {
                    do throws(CSVError) {
                        take(try parser.feed(chunk.readableBytesView))
                    } catch {
                        validator.reportSyntaxError(error)
                        broken = true
                    }
                }
                if out.readableBytes >= 64 << 10 {
                    try await writer.write(out)
                    out.clear()
                }
                progress.note(bytes: size, rows: validator.rowCount, errors: validator.totalErrors)
            }
            if !broken {
                do throws(CSVError) {
                    take(try parser.finish())
                } catch {
                    validator.reportSyntaxError(error)
                }
            }
            do throws(TreasuryValidationFailure) {
                summary = try validator.finish()
            } catch {
                progress.note(bytes: size, rows: validator.rowCount, errors: error.totalErrors)
                progress.sha256 = Array(hasher.finalize())
                throw UploadRefusal.invalid(error)
            }
            if out.readableBytes > 0 { try await writer.write(out) }
        }
        progress.note(bytes: size, rows: validator.rowCount, errors: 0)
        let digest = Array(hasher.finalize())
        progress.sha256 = digest
        guard let summary else { throw RowShapeError() }
        return ReceivedFile(summary: summary, sha256: digest, size: size)
    }

    /// One row in `COPY`'s text format: tab-separated, with `\`, tab, line feed and carriage
    /// return escaped (the validator already refused NUL).
    static func appendCopyRow(_ row: TreasuryRow, prefix: [UInt8], to out: inout ByteBuffer) {
        func field(_ text: String) {
            for b in text.utf8 {
                switch b {
                case UInt8(ascii: "\\"): out.writeStaticString("\\\\")
                case 0x09: out.writeStaticString("\\t")
                case 0x0A: out.writeStaticString("\\n")
                case 0x0D: out.writeStaticString("\\r")
                default: out.writeInteger(b)
                }
            }
        }
        out.writeBytes(prefix)
        out.writeString(String(row.line))
        out.writeInteger(UInt8(0x09))
        field(row.entity)
        out.writeInteger(UInt8(0x09))
        field(row.bank)
        out.writeInteger(UInt8(0x09))
        field(row.accountRef)
        out.writeInteger(UInt8(0x09))
        out.writeString(row.currency)
        out.writeInteger(UInt8(0x09))
        out.writeString(row.balance.formatted(minimumFractionDigits: 0))
        out.writeInteger(UInt8(0x09))
        out.writeString(row.valueDate)
        out.writeInteger(UInt8(0x0A))
    }

    /// The upload row and its audit event, after the rows; a file with the same bytes refuses it.
    private func storeUpload(
        _ id: UUID, fileName: String, file: ReceivedFile, on conn: PostgresConnection, context: OperationContext
    ) async throws -> TreasuryUpload {
        let earlier = try await conn.query(
            "SELECT \(unescaped: Self.treasuryUploadColumns) FROM treasury_uploads WHERE sha256 = \(ByteBuffer(bytes: file.sha256))",
            logger: context.logger)
        for try await row in earlier { throw UploadRefusal.duplicate(of: try Self.treasuryUpload(from: row)) }
        let currencies = file.summary.currencies
        let totals = file.summary.totals.map(\.total.description)
        let accounts = file.summary.totals.map { Int32($0.count) }
        let rows = try await conn.query(
            """
            INSERT INTO treasury_uploads (id, file_name, sha256, size_bytes, row_count, as_of_date, currencies, currency_totals,
                                          currency_accounts, uploaded_by, uploaded_by_id)
            VALUES (\(id), \(fileName), \(ByteBuffer(bytes: file.sha256)), \(file.size), \(file.summary.rowCount),
                    \(file.summary.valueDate)::date, \(currencies), \(totals), \(accounts), \(context.actorLabel), \(context.caller.id))
            RETURNING \(unescaped: Self.treasuryUploadColumns)
            """, logger: context.logger)
        var stored: TreasuryUpload?
        for try await row in rows { stored = try Self.treasuryUpload(from: row) }
        guard let stored else { throw RowShapeError() }
        try await recordAudit(
            context.audit(
                "treasury_upload.accepted", entityType: "treasury_upload", entityId: id.lowercasedString, toState: "accepted",
                details: [
                    "fileName": .string(fileName), "sha256": .string(stored.sha256), "sizeBytes": .int(Int64(file.size)),
                    "rowCount": .int(Int64(file.summary.rowCount)), "asOfDate": .string(file.summary.valueDate),
                    "totals": .object(
                        Dictionary(uniqueKeysWithValues: file.summary.totals.map { ($0.currency, AuditJSON.string($0.total.description)) })),
                ]),
            on: conn, logger: context.logger)
        return stored
    }

    private func uploadWithSameBytes(as sha256: [UInt8]?, context: OperationContext) async throws -> TreasuryUpload? {
        guard let sha256 else { return nil }
        return try await database {
            try await db.withConnection { conn in
                let rows = try await conn.query(
                    "SELECT \(unescaped: Self.treasuryUploadColumns) FROM treasury_uploads WHERE sha256 = \(ByteBuffer(bytes: sha256))",
                    logger: context.logger)
                for try await row in rows { return try Self.treasuryUpload(from: row) }
                return nil
            }
        }
    }

    /// Answers a refused file (422 or 409), after recording the refusal in the audit log and in
    /// the upload's progress.
    private func refuse(
        _ refusal: UploadRefusal, uploadId: UUID, fileName: String, progress: UploadProgress, context: OperationContext
    ) async throws -> CreateTreasuryUpload.Output {
        let sha = progress.sha256.map(\.hexString)
        switch refusal {
        case .invalid(let failure):
            await progress.finish(.refused, outcome: "validation.failed")
            try await auditRefusal(
                uploadId: uploadId, fileName: fileName, reason: "\(failure.totalErrors) invalid cell(s)",
                details: [
                    "sha256": sha.map { .string($0) } ?? .null, "rowsParsed": .int(Int64(progress.rowsParsed)),
                    "errors": .int(Int64(failure.totalErrors)),
                ], context: context)
            var errors = ValidationErrors()
            for e in failure.errors { errors.add(e.pointer, e.message) }
            let shown = failure.errors.count
            let detail =
                failure.totalErrors == shown
                ? "The file was refused and nothing was stored: \(shown == 1 ? "1 problem" : "\(shown) problems") listed in errors."
                : "The file was refused and nothing was stored: \(failure.totalErrors) problems, the first \(shown) listed in errors."
            return .unprocessableContent(.validation(errors, detail: detail))
        case .duplicate(let earlier):
            await progress.finish(.refused, outcome: "treasury.duplicate_file")
            try await auditRefusal(
                uploadId: uploadId, fileName: fileName, reason: "same file as upload \(earlier.id.lowercasedString)",
                details: ["sha256": sha.map { .string($0) } ?? .null, "earlierUploadId": .string(earlier.id.lowercasedString)],
                context: context)
            return .conflict(
                .conflict(
                    "This exact file (SHA-256 \(earlier.sha256)) was already uploaded as \(earlier.id.lowercasedString) "
                        + "(\(earlier.fileName), \(WireFormat.formatDateTime(earlier.uploadedAt))); nothing was stored.",
                    code: "treasury.duplicate_file"))
        }
    }

    private func auditRefusal(uploadId: UUID, fileName: String, reason: String, details: [String: AuditJSON], context: OperationContext)
        async throws
    {
        var all = details
        all["fileName"] = .string(fileName)
        let event = context.audit(
            "treasury_upload.refused", entityType: "treasury_upload", entityId: uploadId.lowercasedString, toState: "refused",
            reason: reason, outcome: .refused, details: .object(all))
        try await database {
            try await db.withAuditedTransaction(logger: context.logger) { conn in
                try await recordAudit(event, on: conn, logger: context.logger)
            }
        }
    }

    // MARK: reads

    public func listTreasuryUploads(_ input: ListTreasuryUploads.Input, context: OperationContext) async throws -> ListTreasuryUploads.Output {
        let after = try Cursor.decode(input.cursor)
        var items: [TreasuryUpload] = try await database {
            try await db.withConnection { conn in
                let rows = try await conn.query(
                    """
                    SELECT \(unescaped: Self.treasuryUploadColumns) FROM treasury_uploads
                    WHERE (\(after)::uuid IS NULL OR (uploaded_at, id) < (SELECT uploaded_at, id FROM treasury_uploads WHERE id = \(after)))
                    ORDER BY uploaded_at DESC, id DESC LIMIT \(input.limit + 1)
                    """, logger: context.logger)
                var out: [TreasuryUpload] = []
                for try await row in rows { out.append(try Self.treasuryUpload(from: row)) }
                return out
            }
        }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        return .ok(TreasuryUploadPage(items: items, nextCursor: next))
    }

    public func getTreasuryUpload(_ input: GetTreasuryUpload.Input, context: OperationContext) async throws -> GetTreasuryUpload.Output {
        guard let found = try await loadTreasuryUpload(input.uploadId, context: context) else {
            return .notFound(Self.noUpload(input.uploadId))
        }
        return .ok(found)
    }

    func loadTreasuryUpload(_ id: UUID, context: OperationContext) async throws -> TreasuryUpload? {
        try await database {
            try await db.withConnection { conn in
                let rows = try await conn.query(
                    "SELECT \(unescaped: Self.treasuryUploadColumns) FROM treasury_uploads WHERE id = \(id)", logger: context.logger)
                for try await row in rows { return try Self.treasuryUpload(from: row) }
                return nil
            }
        }
    }

    public func getTreasuryUploadProgress(
        _ input: GetTreasuryUploadProgress.Input, context: OperationContext
    ) async throws -> GetTreasuryUploadProgress.Output {
        if let live = try await UploadProgress.read(input.uploadId, redis: redis) { return .ok(live) }
        // Progress expired (or was never written because Redis was down): an accepted upload
        // still has its final figures.
        if let stored = try await loadTreasuryUpload(input.uploadId, context: context) {
            return .ok(
                TreasuryUploadProgress(
                    uploadId: stored.id, fileName: stored.fileName, state: .accepted, bytesReceived: stored.sizeBytes,
                    bytesExpected: stored.sizeBytes, rowsParsed: stored.rowCount, errorCount: 0, outcome: nil, updatedAt: stored.uploadedAt))
        }
        return .notFound(.notFound("No upload with id \(input.uploadId.lowercasedString) is known (progress is kept for an hour)."))
    }

    public func getTreasuryPositions(_ input: GetTreasuryPositions.Input, context: OperationContext) async throws -> GetTreasuryPositions.Output {
        let afterLine = try Self.decodeLineCursor(input.cursor)
        let asOf = input.asOf ?? CalendarDate(Self.utcDay(Date()))!
        struct Page {
            var upload: (id: UUID, date: CalendarDate)
            var positions: [TreasuryPosition]
            /// The file line of each position, for the next page's cursor.
            var lines: [Int32]
            var totals: [CurrencyTotal]
        }
        let page: Page? = try await database {
            try await db.withConnection { conn in
                var upload: (UUID, CalendarDate)?
                let latest = try await conn.query(
                    """
                    SELECT id, as_of_date::text FROM treasury_uploads WHERE as_of_date <= \(asOf.description)::date
                    ORDER BY as_of_date DESC, uploaded_at DESC, id DESC LIMIT 1
                    """, logger: context.logger)
                for try await (id, date) in latest.decode((UUID, String).self) {
                    guard let d = CalendarDate(date) else { throw RowShapeError() }
                    upload = (id, d)
                }
                guard let (id, date) = upload else { return nil }
                var positions: [TreasuryPosition] = []
                var lines: [Int32] = []
                let rows = try await conn.query(
                    """
                    SELECT line, entity, bank, account_ref, currency, balance::text, value_date::text FROM treasury_positions
                    WHERE upload_id = \(id) AND line > \(afterLine ?? 0)
                    ORDER BY line LIMIT \(input.limit + 1)
                    """, logger: context.logger)
                for try await row in rows {
                    var r = CellReader(row)
                    lines.append(try r.decode(Int32.self))
                    let entity = try r.string()
                    let bank = try r.string()
                    let accountRef = try r.string()
                    let currency = try r.string()
                    let balance = try Self.canonicalDecimal(try r.string())
                    guard let valueDate = CalendarDate(try r.string()) else { throw RowShapeError() }
                    positions.append(
                        TreasuryPosition(
                            entity: entity, bank: bank, accountRef: accountRef, currency: currency, balance: balance, valueDate: valueDate))
                }
                var totals: [CurrencyTotal] = []
                let sums = try await conn.query(
                    """
                    SELECT currency, sum(balance)::text, count(*)::int8 FROM treasury_positions
                    WHERE upload_id = \(id) GROUP BY currency ORDER BY currency
                    """, logger: context.logger)
                for try await (currency, total, count) in sums.decode((String, String, Int).self) {
                    totals.append(CurrencyTotal(currency: currency, total: try Self.canonicalDecimal(total), accountCount: count))
                }
                return Page(upload: (id, date), positions: positions, lines: lines, totals: totals)
            }
        }
        guard var page else {
            return .notFound(.notFound("No treasury upload has a value date on or before \(asOf)."))
        }
        var next: String?
        if page.positions.count > input.limit {
            page.positions.removeLast(page.positions.count - input.limit)
            next = Self.encodeLineCursor(Int(page.lines[input.limit - 1]))
        }
        return .ok(
            TreasuryPositions(
                asOfDate: page.upload.date, uploadId: page.upload.id, positions: page.positions, totals: page.totals, nextCursor: next))
    }

    /// PostgreSQL's `numeric` text (`12500000.0000`) in the contract's canonical form (`12500000.00`).
    static func canonicalDecimal(_ text: String) throws -> String {
        guard let d = Decimal4(text) else { throw RowShapeError() }
        return d.description
    }

    static func utcDay(_ date: Date) -> String {
        String(WireFormat.formatDateTime(date).prefix(10))
    }

    /// Positions pages continue after a line number of the file; the cursor carries it.
    static func encodeLineCursor(_ line: Int) -> String {
        Base64URL.encode(Array("v1:line:\(line)".utf8))
    }

    static func decodeLineCursor(_ cursor: String?) throws -> Int? {
        guard let cursor else { return nil }
        guard let raw = Base64URL.decode(cursor).map({ String(decoding: $0, as: UTF8.self) }), raw.hasPrefix("v1:line:"),
            let line = Int(raw.dropFirst(8)), line >= 0
        else { throw ProblemError(Cursor.invalid) }
        return line
    }
}

/// An upload's progress in Redis (`sitrep:treasury-upload:<id>`, kept an hour after the last
/// change). The reader only notes its figures (cheap, per chunk); a flusher task writes them at
/// most every quarter second, also while the client stalls, so what a poller sees is never more
/// than that behind. Progress is a courtesy: when Redis fails the upload goes on without it.
final class UploadProgress: Sendable {
    static let ttlSeconds = 3600
    static let interval: Duration = .milliseconds(250)

    struct Figures {
        var bytes = 0
        var rows = 0
        var errors = 0
        var dirty = false
        var writing = true
        var sha256: [UInt8]?
    }

    let redis: RedisClient
    let logger: Logger
    let uploadId: UUID
    let fileName: String
    let expected: Int?
    private let figures = Mutex(Figures())
    private let flusher = Mutex<Task<Void, Never>?>(nil)

    init(redis: RedisClient, logger: Logger, uploadId: UUID, fileName: String, expected: Int?) {
        self.redis = redis
        self.logger = logger
        self.uploadId = uploadId
        self.fileName = fileName
        self.expected = expected
    }

    static func key(_ id: UUID) -> String { "sitrep:treasury-upload:\(id.lowercasedString)" }

    var bytesReceived: Int { figures.withLock { $0.bytes } }
    var rowsParsed: Int { figures.withLock { $0.rows } }
    /// The file's checksum, once read.
    var sha256: [UInt8]? {
        get { figures.withLock { $0.sha256 } }
        set { figures.withLock { $0.sha256 = newValue } }
    }

    /// Writes the first progress and starts the flusher. `exclusive`: the client chose the id,
    /// which must be new (false when Redis already knows it). A Redis failure does not stop the
    /// upload.
    func start(exclusive: Bool) async -> Bool {
        do {
            let reply = try await redis.send(command(.receiving, outcome: nil, exclusive: exclusive))
            if reply == .null { return false }
        } catch {
            stopWriting(error)
            return true
        }
        let task = Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.interval)
                guard !Task.isCancelled else { return }
                let due = figures.withLock { f in
                    defer { f.dirty = false }
                    return f.dirty && f.writing
                }
                if due { await write(.receiving, outcome: nil) }
            }
        }
        flusher.withLock { $0 = task }
        return true
    }

    /// Records the figures; the flusher writes them.
    func note(bytes: Int, rows: Int, errors: Int) {
        figures.withLock { f in
            if f.bytes != bytes || f.rows != rows || f.errors != errors { f.dirty = true }
            f.bytes = bytes
            f.rows = rows
            f.errors = errors
        }
    }

    /// Stops the flusher (waiting for a write in flight, so it cannot land after this one) and
    /// writes the final state.
    func finish(_ state: TreasuryUploadState, bytes: Int? = nil, rows: Int? = nil, errors: Int? = nil, outcome: String?) async {
        let task = flusher.withLock { t in
            defer { t = nil }
            return t
        }
        task?.cancel()
        await task?.value
        let writing = figures.withLock { f in
            f.bytes = bytes ?? f.bytes
            f.rows = rows ?? f.rows
            f.errors = errors ?? f.errors
            return f.writing
        }
        if writing { await write(state, outcome: outcome) }
    }

    private func write(_ state: TreasuryUploadState, outcome: String?) async {
        do {
            _ = try await redis.send(command(state, outcome: outcome, exclusive: false))
        } catch {
            stopWriting(error)
        }
    }

    private func stopWriting(_ error: any Error) {
        logger.warning("treasury upload progress unavailable", metadata: ["upload": "\(uploadId)", "error": "\(error)"])
        figures.withLock { $0.writing = false }
    }

    private func command(_ state: TreasuryUploadState, outcome: String?, exclusive: Bool) -> [[UInt8]] {
        let f = figures.withLock { $0 }
        let value = TreasuryUploadProgress(
            uploadId: uploadId, fileName: fileName, state: state, bytesReceived: f.bytes, bytesExpected: expected,
            rowsParsed: f.rows, errorCount: f.errors, outcome: outcome, updatedAt: Date())
        var args: [[UInt8]] = [
            Array("SET".utf8), Array(Self.key(uploadId).utf8), value.jsonBytes(), Array("EX".utf8), Array(String(Self.ttlSeconds).utf8),
        ]
        if exclusive { args.append(Array("NX".utf8)) }
        return args
    }

    /// The progress Redis holds for `id`, or nil.
    static func read(_ id: UUID, redis: RedisClient) async throws -> TreasuryUploadProgress? {
        guard case .bulk(let bytes) = try await redis.send(["GET", key(id)]) else { return nil }
        guard let json = try? JSONParser.parse(bytes) else { return nil }
        var errors = ValidationErrors()
        return TreasuryUploadProgress(json: json, at: "", errors: &errors)
    }
}
