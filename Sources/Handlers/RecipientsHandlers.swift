import Foundation
import Generated
import PostgresNIO
import SitrepRuntime
import Storage

/// Briefing recipients: who gets an approved briefing and on which channels. Admins manage them;
/// nothing is ever erased (deactivation only), since past deliveries point at them.
extension SitrepHandlers {
    static let recipientColumns = "id, name, title, phone, email, language, channels, active, created_at, updated_at, version"
    static let recipientTagPrefix = "r-"

    static func recipient(from row: PostgresRow) throws -> Recipient {
        var r = CellReader(row)
        return Recipient(
            id: try r.uuid(), name: try r.string(), title: try r.optionalString(), phone: try r.string(), email: try r.optionalString(),
            language: Language(rawValue: try r.string()) ?? .en, channels: try r.stringArray().compactMap(DeliveryChannel.init(rawValue:)),
            active: try r.decode(Bool.self), createdAt: try r.date(), updatedAt: try r.date(),
            etag: ETag.make(try r.int(), prefix: recipientTagPrefix))
    }

    /// The fallback order, whatever order the client listed them in; repeats dropped.
    static func canonicalChannels(_ channels: [DeliveryChannel]) -> [String] {
        DeliveryChannel.allCases.filter(channels.contains).map(\.rawValue)
    }

    static func noRecipient(_ id: UUID) -> Problem { .notFound("No recipient has id \(id.lowercasedString).") }

    static func phoneTaken(_ phone: String) -> Problem {
        .conflict("Another recipient already has the phone number \(phone).", code: "recipient.phone_taken")
    }

    /// The rules the schema cannot state: an e-mail address when the e-mail channel is listed.
    static func recipientErrors(channels: [DeliveryChannel], email: String?, name: String) -> ValidationErrors {
        var errors = ValidationErrors()
        if channels.contains(.email) && (email ?? "").isEmpty { errors.add("/body/email", "is required when channels lists email") }
        if name.allSatisfy(\.isWhitespace) { errors.add("/body/name", "must not be blank") }
        return errors
    }

    func loadRecipient(_ id: UUID, on conn: PostgresConnection, context: OperationContext, lock: Bool = false) async throws -> Recipient? {
        let rows = try await conn.query(
            PostgresQuery(
                unsafeSQL: "SELECT \(Self.recipientColumns) FROM recipients WHERE id = $1" + (lock ? " FOR UPDATE" : ""),
                binds: try Self.binds(id)),
            logger: context.logger)
        for try await row in rows { return try Self.recipient(from: row) }
        return nil
    }

    /// Whether another recipient has `phone` (the unique constraint still guards the race).
    func phoneInUse(_ phone: String, except id: UUID?, on conn: PostgresConnection, context: OperationContext) async throws -> Bool {
        let rows = try await conn.query(
            "SELECT 1 FROM recipients WHERE phone = \(phone) AND (\(id)::uuid IS NULL OR id <> \(id))", logger: context.logger)
        for try await _ in rows { return true }
        return false
    }

    public func listRecipients(_ input: ListRecipients.Input, context: OperationContext) async throws -> ListRecipients.Output {
        let after = try Cursor.decode(input.cursor)
        var items: [Recipient] = try await database {
            try await db.withConnection { conn in
                let rows = try await conn.query(
                    """
                    SELECT \(unescaped: Self.recipientColumns) FROM recipients
                    WHERE (\(input.active)::bool IS NULL OR active = \(input.active))
                      AND (\(input.language?.rawValue)::text IS NULL OR language = \(input.language?.rawValue))
                      AND (\(after)::uuid IS NULL OR (name, id) > (SELECT name, id FROM recipients WHERE id = \(after)))
                    ORDER BY name, id LIMIT \(input.limit + 1)
                    """, logger: context.logger)
                var out: [Recipient] = []
                for try await row in rows { out.append(try Self.recipient(from: row)) }
                return out
            }
        }
        let next = trimPage(&items, limit: input.limit, id: \.id)
        return .ok(RecipientPage(items: items, nextCursor: next))
    }

    public func createRecipient(_ input: CreateRecipient.Input, context: OperationContext) async throws -> CreateRecipient.Output {
        let b = input.body
        let errors = Self.recipientErrors(channels: b.channels, email: b.email, name: b.name)
        if !errors.isEmpty { return .unprocessableContent(.validation(errors)) }
        let id = UUIDv7.make()
        let created: Recipient? = try await database {
            do {
                return try await db.withAuditedTransaction(logger: context.logger) { conn in
                    if try await phoneInUse(b.phone, except: nil, on: conn, context: context) { return nil }
                    try await conn.query(
                        """
                        INSERT INTO recipients (id, name, title, phone, email, language, channels)
                        VALUES (\(id), \(b.name), \(b.title), \(b.phone), \(b.email), \(b.language.rawValue), \(Self.canonicalChannels(b.channels)))
                        """, logger: context.logger)
                    try await recordAudit(
                        context.audit(
                            "recipient.create", entityType: "recipient", entityId: id.lowercasedString, toState: "active",
                            details: ["channels": .array(Self.canonicalChannels(b.channels).map { .string($0) })]),
                        on: conn, logger: context.logger)
                    return try await loadRecipient(id, on: conn, context: context)
                }
            } catch let e as PostgresTransactionError where (e.closureError as? PSQLError)?.serverInfo?[.sqlState] == "23505" {
                return nil  // a concurrent create took the phone number first
            }
        }
        guard let created else { return .conflict(Self.phoneTaken(b.phone)) }
        return .created(created, location: "/v1/recipients/\(id.lowercasedString)", etag: created.etag)
    }

    public func getRecipient(_ input: GetRecipient.Input, context: OperationContext) async throws -> GetRecipient.Output {
        let found = try await database { try await db.withConnection { try await loadRecipient(input.recipientId, on: $0, context: context) } }
        guard let found else { return .notFound(Self.noRecipient(input.recipientId)) }
        return .ok(found, etag: found.etag)
    }

    enum RecipientWrite {
        case notFound, stale, phoneTaken, done(Recipient)
    }

    /// Loads under a row lock, checks If-Match, runs `change` and reloads, in one transaction.
    func writeRecipient(
        _ id: UUID, ifMatch: String, context: OperationContext, _ change: @escaping @Sendable (Recipient, PostgresConnection) async throws -> Bool
    ) async throws -> RecipientWrite {
        try await database {
            do {
                return try await db.withAuditedTransaction(logger: context.logger) { conn in
                    guard let current = try await loadRecipient(id, on: conn, context: context, lock: true) else { return .notFound }
                    if ifMatch != "*"
                        && ETag.version(fromIfMatch: ifMatch, prefix: Self.recipientTagPrefix)
                            != ETag.version(fromIfMatch: current.etag, prefix: Self.recipientTagPrefix)
                    {
                        return .stale
                    }
                    guard try await change(current, conn) else { return .phoneTaken }
                    guard let updated = try await loadRecipient(id, on: conn, context: context) else { throw RowShapeError() }
                    return .done(updated)
                }
            } catch let e as PostgresTransactionError where (e.closureError as? PSQLError)?.serverInfo?[.sqlState] == "23505" {
                return .phoneTaken
            }
        }
    }

    public func updateRecipient(_ input: UpdateRecipient.Input, context: OperationContext) async throws -> UpdateRecipient.Output {
        let b = input.body
        let errors = Self.recipientErrors(channels: b.channels, email: b.email, name: b.name)
        if !errors.isEmpty { return .unprocessableContent(.validation(errors)) }
        let result = try await writeRecipient(input.recipientId, ifMatch: input.ifMatch, context: context) { current, conn in
            if try await phoneInUse(b.phone, except: current.id, on: conn, context: context) { return false }
            try await conn.query(
                """
                UPDATE recipients SET name = \(b.name), title = \(b.title), phone = \(b.phone), email = \(b.email),
                    language = \(b.language.rawValue), channels = \(Self.canonicalChannels(b.channels)), active = \(b.active),
                    updated_at = now(), version = version + 1
                WHERE id = \(current.id)
                """, logger: context.logger)
            try await recordAudit(
                context.audit(
                    "recipient.update", entityType: "recipient", entityId: current.id.lowercasedString,
                    fromState: current.active ? "active" : "inactive", toState: b.active ? "active" : "inactive",
                    details: ["channels": .array(Self.canonicalChannels(b.channels).map { .string($0) }), "language": .string(b.language.rawValue)]),
                on: conn, logger: context.logger)
            return true
        }
        switch result {
        case .notFound: return .notFound(Self.noRecipient(input.recipientId))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .phoneTaken: return .conflict(Self.phoneTaken(b.phone))
        case .done(let r): return .ok(r, etag: r.etag)
        }
    }

    public func deactivateRecipient(_ input: DeactivateRecipient.Input, context: OperationContext) async throws -> DeactivateRecipient.Output {
        let result = try await writeRecipient(input.recipientId, ifMatch: input.ifMatch, context: context) { current, conn in
            guard current.active else { return true }  // already inactive: a no-op, nothing to audit
            try await conn.query(
                "UPDATE recipients SET active = false, updated_at = now(), version = version + 1 WHERE id = \(current.id)", logger: context.logger)
            try await recordAudit(
                context.audit(
                    "recipient.deactivate", entityType: "recipient", entityId: current.id.lowercasedString, fromState: "active",
                    toState: "inactive"),
                on: conn, logger: context.logger)
            return true
        }
        switch result {
        case .notFound: return .notFound(Self.noRecipient(input.recipientId))
        case .stale: return .preconditionFailed(.preconditionFailed())
        case .phoneTaken: throw RowShapeError()  // deactivation never changes the phone
        case .done(let r): return .noContent(etag: r.etag)
        }
    }
}
