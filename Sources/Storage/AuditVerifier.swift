import Crypto
import Foundation
import Logging
import PostgresNIO

// The audit log: `audit_events`, append-only and hash-chained by the database
// (see migrations/0001_initial.sql for the trigger and the canonical form).
// This file writes events (`appendAudit`), reads them (`fetchAuditRecords`),
// and verifies the chain independently of the database's own hashing
// (`AuditVerifier`).
//
// Names: the API's generated types are `AuditEvent`, `AuditOutcome` and
// `AuditVerification`; the storage-side types here are `AuditRecord`,
// `AuditEventOutcome` and `AuditChainVerification` so that a module importing
// both compiles without qualifying every use.

/// Whether the audited change happened. Same values as the API's `AuditOutcome`
/// (the names differ so the two modules can be imported together).
public enum AuditEventOutcome: String, Sendable, Codable, CaseIterable {
    /// The change happened.
    case succeeded
    /// It was attempted and refused (illegal transition, permission denied, failed check).
    case refused
}

/// A small JSON value for an audit event's `details`.
public indirect enum AuditJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([AuditJSON])
    case object([String: AuditJSON])

    /// Compact JSON text (object keys sorted, so equal values give equal text).
    public var jsonText: String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value):
            // JSON has no NaN/Infinity: store them as null rather than fail the audit write.
            if value.isFinite { out += "\(value)" } else { out += "null" }
        case .string(let value): Self.writeString(value, into: &out)
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                Self.writeString(key, into: &out)
                out += ":"
                members[key]!.write(into: &out)
            }
            out += "}"
        }
    }

    private static func writeString(_ value: String, into out: inout String) {
        out += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0}":
                // PostgreSQL text (and so jsonb) cannot hold NUL.
                out += "\\ufffd"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension AuditJSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: AuditJSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, AuditJSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

/// What a handler records; the database adds sequence, time and hashes.
public struct AuditEventInput: Sendable, Equatable {
    /// Dotted, lowercase, ≤ 100 characters: `posture.set`, `signal.triage`,
    /// `briefing.submitted`, `auth.login`.
    public var action: String
    public var outcome: AuditEventOutcome
    /// Principal id; `system:<worker>` for background work; `anonymous` before authentication.
    public var actorId: String
    /// The actor's display name at the time, if known.
    public var actorName: String?
    public var actorRoles: [String]
    /// `briefing`, `signal`, `posture`, `action`, `recipient`, `delivery`, `session`, `treasury_upload`.
    public var entityType: String
    /// A UUID, or the domain name for posture.
    public var entityId: String
    public var fromState: String?
    /// The state after, or the one requested when refused.
    public var toState: String?
    /// Return reason, refusal code, note (the API's `detail`).
    public var reason: String?
    public var requestId: String?
    public var clientAddress: String?
    /// Anything else worth keeping; stored as jsonb, covered by the hash, not in the API.
    public var details: AuditJSON?
    /// The event's id; nil lets the database make a UUIDv7.
    public var id: UUID?

    public init(
        action: String,
        outcome: AuditEventOutcome = .succeeded,
        actorId: String,
        actorName: String? = nil,
        actorRoles: [String] = [],
        entityType: String,
        entityId: String,
        fromState: String? = nil,
        toState: String? = nil,
        reason: String? = nil,
        requestId: String? = nil,
        clientAddress: String? = nil,
        details: AuditJSON? = nil,
        id: UUID? = nil
    ) {
        self.action = action
        self.outcome = outcome
        self.actorId = actorId
        self.actorName = actorName
        self.actorRoles = actorRoles
        self.entityType = entityType
        self.entityId = entityId
        self.fromState = fromState
        self.toState = toState
        self.reason = reason
        self.requestId = requestId
        self.clientAddress = clientAddress
        self.details = details
        self.id = id
    }
}

/// One stored row of `audit_events` (the API's `AuditEvent`).
public struct AuditRecord: Sendable, Equatable {
    public let id: UUID
    /// Position in the whole log: 1, 2, 3, … without gaps.
    public let sequence: Int64
    public let occurredAt: Date
    /// `occurred_at` exactly: microseconds since 1970-01-01T00:00:00Z (what the hash covers).
    public let occurredAtMicroseconds: Int64
    public let actorId: String
    public let actorName: String?
    public let actorRoles: [String]
    public let action: String
    /// `succeeded` or `refused` (see ``AuditEventOutcome``).
    public let outcome: String
    public let entityType: String
    public let entityId: String
    public let fromState: String?
    public let toState: String?
    public let reason: String?
    public let requestId: String?
    public let clientAddress: String?
    /// `details` as PostgreSQL's jsonb text, nil when SQL NULL.
    public let detailsJSON: String?
    /// nil for the first event.
    public let prevHash: [UInt8]?
    public let hash: [UInt8]

    public var prevHashHex: String? { prevHash.map { StorageHex.encode($0) } }
    public var hashHex: String { StorageHex.encode(hash) }

    /// The select list `init(row:)` decodes, in order.
    public static let selectList = """
        id, sequence, occurred_at, (extract(epoch FROM occurred_at) * 1000000)::int8, actor_id, actor_name, \
        actor_roles, action, outcome, entity_type, entity_id, from_state, to_state, reason, request_id, \
        client_address, details::text, prev_hash, hash
        """

    /// Decodes a row selected with ``selectList`` (further columns are ignored).
    public init(row: PostgresRow) throws {
        let cells = row.makeRandomAccess()
        id = try cells[0].decode(UUID.self)
        sequence = try cells[1].decode(Int64.self)
        occurredAt = try cells[2].decode(Date.self)
        occurredAtMicroseconds = try cells[3].decode(Int64.self)
        actorId = try cells[4].decode(String.self)
        actorName = try cells[5].decode(String?.self)
        actorRoles = try cells[6].decode([String].self)
        action = try cells[7].decode(String.self)
        outcome = try cells[8].decode(String.self)
        entityType = try cells[9].decode(String.self)
        entityId = try cells[10].decode(String.self)
        fromState = try cells[11].decode(String?.self)
        toState = try cells[12].decode(String?.self)
        reason = try cells[13].decode(String?.self)
        requestId = try cells[14].decode(String?.self)
        clientAddress = try cells[15].decode(String?.self)
        detailsJSON = try cells[16].decode(String?.self)
        prevHash = try cells[17].decode(ByteBuffer?.self).map { Array($0.readableBytesView) }
        hash = Array(try cells[18].decode(ByteBuffer.self).readableBytesView)
    }

    /// The canonical form (version 1) the chain hashes; see 0001_initial.sql.
    public var canonicalBytes: [UInt8] {
        var out = Array("sitrep.audit.v1".utf8)
        func field(_ value: String?) {
            guard let value else {
                out.append(UInt8(ascii: "-"))
                return
            }
            let bytes = Array(value.utf8)
            out.append(contentsOf: String(bytes.count).utf8)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: bytes)
        }
        let roles = actorRoles.map { "\($0.utf8.count):\($0)" }.joined()
        field(String(sequence))
        field(id.uuidString.lowercased())
        field(String(occurredAtMicroseconds))
        field(actorId)
        field(actorName)
        field(roles)
        field(action)
        field(outcome)
        field(entityType)
        field(entityId)
        field(fromState)
        field(toState)
        field(reason)
        field(requestId)
        field(clientAddress)
        field(detailsJSON)
        return out
    }

    /// `sha256((previous ?? 32 zero bytes) || canonicalBytes)`
    public func computedHash(previous: [UInt8]?) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous ?? AuditVerifier.genesisHash)
        hasher.update(data: canonicalBytes)
        return Array(hasher.finalize())
    }
}

/// Inserts one audit event on `connection` (parameterised), inside whatever
/// transaction the caller has open, so the event commits or rolls back with
/// the change it records. The database assigns sequence, occurred_at (= the
/// transaction's `now()`), prev_hash and hash, and serialises writers on the
/// chain head until the transaction ends: keep audited transactions short.
@discardableResult
public func appendAudit(
    _ event: AuditEventInput,
    on connection: PostgresConnection,
    logger: Logger = Logger(label: "sitrep.audit")
) async throws -> AuditRecord {
    let details = event.details?.jsonText
    let rows = try await connection.query(
        """
        INSERT INTO audit_events (id, actor_id, actor_name, actor_roles, action, outcome, entity_type, entity_id,
                                  from_state, to_state, reason, request_id, client_address, details)
        VALUES (coalesce(\(event.id)::uuid, sitrep_uuid_v7()), \(event.actorId), \(event.actorName), \(event.actorRoles),
                \(event.action), \(event.outcome.rawValue), \(event.entityType), \(event.entityId),
                \(event.fromState), \(event.toState), \(event.reason), \(event.requestId), \(event.clientAddress),
                \(details)::jsonb)
        RETURNING \(unescaped: AuditRecord.selectList)
        """,
        logger: logger)
    for try await row in rows {
        return try AuditRecord(row: row)
    }
    throw AuditLogError("INSERT INTO audit_events returned no row")
}

/// Audit events oldest first (ascending sequence), optionally those of one
/// entity, keyset-paginated: pass the last `sequence` you got as `afterSequence`.
public func fetchAuditRecords(
    entityType: String? = nil,
    entityId: String? = nil,
    afterSequence: Int64 = 0,
    limit: Int = 100,
    on client: PostgresClient,
    logger: Logger = Logger(label: "sitrep.audit")
) async throws -> [AuditRecord] {
    let rows = try await client.query(
        """
        SELECT \(unescaped: AuditRecord.selectList) FROM audit_events
        WHERE sequence > \(afterSequence)
          AND (\(entityType)::text IS NULL OR entity_type = \(entityType))
          AND (\(entityId)::text IS NULL OR entity_id = \(entityId))
        ORDER BY sequence
        LIMIT \(max(1, min(limit, 10_000)))
        """,
        logger: logger)
    var records: [AuditRecord] = []
    for try await row in rows {
        records.append(try AuditRecord(row: row))
    }
    return records
}

public struct AuditLogError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The result of walking the chain; maps one-to-one onto the API's
/// `AuditVerification` (which adds `checkedAt`).
public struct AuditChainVerification: Sendable, Equatable {
    /// True when every event's hash matches its content and its predecessor,
    /// sequences have no gaps and the chain head matches the last event.
    public var valid: Bool
    /// Events whose hash and link verified (those before any break).
    public var eventsChecked: Int
    /// First and last sequence examined; nil for an empty log.
    public var firstSequence: Int64?
    public var lastSequence: Int64?
    /// Hash of the chain head (the last event, as the head row records it);
    /// nil for an empty log. Keep it elsewhere to detect a rewrite later.
    public var headHash: [UInt8]?
    /// The first sequence whose hash or link does not verify, or where a gap
    /// (removed events) starts; nil when valid.
    public var brokenAtSequence: Int64?
    /// One line for operators when not valid.
    public var problem: String?

    public var headHashHex: String? { headHash.map { StorageHex.encode($0) } }

    public init(
        valid: Bool, eventsChecked: Int, firstSequence: Int64?, lastSequence: Int64?, headHash: [UInt8]?,
        brokenAtSequence: Int64?, problem: String?
    ) {
        self.valid = valid
        self.eventsChecked = eventsChecked
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.headHash = headHash
        self.brokenAtSequence = brokenAtSequence
        self.problem = problem
    }
}

/// Recomputes the audit chain in Swift from the stored rows, in sequence
/// order, a page at a time (keyset on sequence, so memory stays flat), and
/// compares it with the stored hashes and the chain head.
public struct AuditVerifier: Sendable {
    /// What the first event's hash is chained to.
    public static let genesisHash = [UInt8](repeating: 0, count: 32)

    public var pageSize: Int
    public var logger: Logger

    public init(pageSize: Int = 1000, logger: Logger = Logger(label: "sitrep.audit.verify")) {
        self.pageSize = max(1, pageSize)
        self.logger = logger
    }

    public func verify(client: PostgresClient) async throws -> AuditChainVerification {
        // Read the head first: events appended while we walk are past it and
        // are left for the next run.
        var headSequence: Int64 = 0
        var headHash: [UInt8]?
        for try await (sequence, hash) in try await client.query(
            "SELECT last_sequence, last_hash FROM audit_chain_head WHERE singleton", logger: logger
        ).decode((Int64, ByteBuffer?).self) {
            headSequence = sequence
            headHash = hash.map { Array($0.readableBytesView) }
        }

        var previousHash: [UInt8]?
        var previousSequence: Int64 = 0
        var firstSequence: Int64?
        var checked = 0

        func broken(at sequence: Int64, _ problem: String) -> AuditChainVerification {
            AuditChainVerification(
                valid: false, eventsChecked: checked, firstSequence: firstSequence,
                lastSequence: previousSequence == 0 ? nil : previousSequence, headHash: headHash,
                brokenAtSequence: sequence, problem: problem)
        }

        while previousSequence < headSequence {
            let rows = try await client.query(
                """
                SELECT \(unescaped: AuditRecord.selectList) FROM audit_events
                WHERE sequence > \(previousSequence) AND sequence <= \(headSequence)
                ORDER BY sequence
                LIMIT \(pageSize)
                """,
                logger: logger)
            var count = 0
            for try await row in rows {
                count += 1
                let record = try AuditRecord(row: row)
                if firstSequence == nil { firstSequence = record.sequence }
                if record.sequence != previousSequence + 1 {
                    return broken(
                        at: previousSequence + 1,
                        "audit events \(previousSequence + 1)…\(record.sequence - 1) are missing")
                }
                if record.prevHash != previousHash {
                    return broken(at: record.sequence, "audit event \(record.sequence): prev_hash is not the hash of the event before it")
                }
                let recomputed = record.computedHash(previous: previousHash)
                if recomputed != record.hash {
                    return broken(at: record.sequence, "audit event \(record.sequence): stored hash does not match its contents")
                }
                checked += 1
                previousHash = recomputed
                previousSequence = record.sequence
            }
            if count == 0 { break }
        }

        if previousSequence != headSequence {
            return broken(
                at: previousSequence + 1,
                "the chain head names event \(headSequence) but the log ends at \(previousSequence): events were removed")
        }
        if previousHash != headHash {
            return broken(
                at: headSequence,
                "the chain head's hash does not match event \(headSequence): the head or that event was altered")
        }
        return AuditChainVerification(
            valid: true, eventsChecked: checked, firstSequence: firstSequence,
            lastSequence: headSequence == 0 ? nil : headSequence, headHash: headHash,
            brokenAtSequence: nil, problem: nil)
    }
}
