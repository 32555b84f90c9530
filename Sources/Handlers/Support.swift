import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Redis
import SitrepRuntime
import Storage
import Synchronization

/// Opaque keyset cursors: the id of the last item on the page, base64url-encoded with a version,
/// so the next page continues strictly after it in (time, id) order even while rows are added.
enum Cursor {
    static func encode(_ id: UUID) -> String {
        Base64URL.encode(Array("v1:".utf8) + Array(id.lowercasedString.utf8))
    }

    /// The id inside a cursor, or a 400 problem naming the parameter.
    static func decode(_ cursor: String?) throws -> UUID? {
        guard let cursor else { return nil }
        guard let raw = Base64URL.decode(cursor).map({ String(decoding: $0, as: UTF8.self) }), raw.hasPrefix("v1:"),
            let id = UUID(uuidString: String(raw.dropFirst(3)))
        else { throw ProblemError(invalid) }
        return id
    }

    /// The `400` for a cursor this API did not issue.
    static let invalid = Problem(
        status: 400, code: "pagination.invalid_cursor", title: "Invalid cursor",
        detail: "The cursor is not one this API issued; start again without it.",
        errors: [FieldError(pointer: "/query/cursor", message: "is not a valid cursor")])
}

/// Rows were fetched with `LIMIT limit + 1`: drop the probe row and name the next page after the
/// last row kept (nil on the last page).
func trimPage<T>(_ items: inout [T], limit: Int, id: (T) -> UUID) -> String? {
    guard items.count > limit else { return nil }
    items.removeLast(items.count - limit)
    return items.last.map { Cursor.encode(id($0)) }
}

/// ETags are the resource's row version, quoted.
/// A `prefix` names the kind of resource (`b-` briefings, `a-` actions), so a tag from one kind
/// never matches another.
enum ETag {
    static func make(_ version: Int, prefix: String = "") -> String { "\"\(prefix)\(version)\"" }

    /// The version an `If-Match` value names, or nil when it names none we could have issued.
    static func version(fromIfMatch header: String, prefix: String = "") -> Int? {
        var v = header.trimmingCharacters(in: .whitespaces)
        if v.hasPrefix("W/") { v = String(v.dropFirst(2)) }
        guard v.count >= 2 + prefix.count, v.hasPrefix("\"" + prefix), v.hasSuffix("\"") else { return nil }
        return Int(v.dropFirst(1 + prefix.count).dropLast())
    }
}

/// PostgreSQL could not be reached; answered as 503 by the runtime.
struct DatabaseUnavailable: DependencyUnavailableError, CustomStringConvertible {
    let dependency = "PostgreSQL"
    let underlying: String
    var description: String { "PostgreSQL unavailable: \(underlying)" }
}

extension PSQLError {
    /// Whether the error means the database is unreachable rather than the query being wrong.
    var isConnectionFailure: Bool {
        switch code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed,
            .uncleanShutdown:
            return true
        default:
            if let state = serverInfo?[.sqlState] { return SQLState.meansConnectionLost(state) }
            return underlying != nil
        }
    }
}

/// How long one database operation may take before it is abandoned as unavailable. The pool
/// waits for a connection for as long as its circuit breaker allows (a minute) when PostgreSQL is
/// down; callers get a 503 well before that.
public enum DatabaseDeadline {
    public static let standard: Duration = .seconds(5)
}

/// The database did not answer within the deadline.
struct DatabaseTimedOut: Error {}

/// The first of several racing results, handed to the one waiter.
final class FirstOutcome<T: Sendable>: Sendable {
    private enum State {
        case waiting
        case settled(Result<T, any Error>)
        case awaited(CheckedContinuation<T, any Error>)
        case done
    }

    private let state = Mutex<State>(.waiting)

    private enum Action {
        case ignored, stored
        case resume(CheckedContinuation<T, any Error>)
    }

    /// Records `result` unless another came first; true when it was the first.
    @discardableResult
    func settle(_ result: Result<T, any Error>) -> Bool {
        let action: Action = state.withLock { s in
            switch s {
            case .waiting:
                s = .settled(result)
                return .stored
            case .awaited(let c):
                s = .done
                return .resume(c)
            case .settled, .done:
                return .ignored
            }
        }
        switch action {
        case .ignored: return false
        case .stored: return true
        case .resume(let c):
            c.resume(with: result)
            return true
        }
    }

    /// The first result, when there is one.
    func value() async throws -> T {
        try await withCheckedThrowingContinuation { c in
            let ready: Result<T, any Error>? = state.withLock { s in
                switch s {
                case .settled(let r):
                    s = .done
                    return r
                case .waiting:
                    s = .awaited(c)
                    return nil
                case .awaited, .done:
                    return .failure(CancellationError())
                }
            }
            if let ready { c.resume(with: ready) }
        }
    }
}

/// Runs a database operation under a deadline (nil: none), turning connectivity failures and
/// time-outs into `DatabaseUnavailable` (503).
///
/// The operation runs in a task of its own so that the caller can be answered at the deadline
/// even when the operation does not react to cancellation at once (the pool's wait for a
/// connection to a server that is down ends only with its circuit breaker); it is cancelled
/// then, and left to finish on its own.
func database<T: Sendable>(deadline: Duration? = DatabaseDeadline.standard, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let deadline else { return try await databaseUnbounded(body) }
    return try await databaseUnbounded {
        let outcome = FirstOutcome<T>()
        let work = Task {
            do {
                outcome.settle(.success(try await body()))
            } catch {
                outcome.settle(.failure(error))
            }
        }
        // The deadline is an entry in an event loop's timer queue, removed when the work ends
        // first. (A sleeping `Task` as the timer cost a task per query that outlived its
        // cancellation until the deadline — swiftlang/swift#60441 — and at thousands of queries
        // per second that was tens of MiB held and a heap that did not shrink back.)
        let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(Int64(deadline.timeInterval * 1e9))) {
            if outcome.settle(.failure(DatabaseTimedOut())) { work.cancel() }
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await outcome.value()
        } onCancel: {
            work.cancel()
        }
    }
}

/// Runs a database operation without a deadline (one that holds a transaction open for as long
/// as a client streams, or wraps a handler), turning connectivity failures and time-outs into
/// `DatabaseUnavailable` (503).
func databaseUnbounded<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch is DatabaseTimedOut {
        throw DatabaseUnavailable(underlying: "no answer within the deadline")
    } catch let e as PSQLError where e.isConnectionFailure {
        throw DatabaseUnavailable(underlying: "\(e.code)")
    } catch let e as RowCallbackStatements.ConnectionLost {
        throw DatabaseUnavailable(underlying: e.description)
    } catch let e as PostgresTransactionError {
        if let inner = (e.beginError ?? e.closureError ?? e.commitError) as? PSQLError, inner.isConnectionFailure {
            throw DatabaseUnavailable(underlying: "\(inner.code)")
        }
        if let p = e.closureError as? ProblemError { throw p }
        // A nested operation already found the database unavailable (or too slow): that is the
        // answer, not the transaction that wrapped it.
        if let unavailable = e.closureError as? any DependencyUnavailableError { throw unavailable }
        if e.closureError is DatabaseTimedOut { throw DatabaseUnavailable(underlying: "no answer within the deadline") }
        throw e
    }
}

extension OperationContext {
    /// An audit event for this call: who (principal, roles), request id and client address filled in.
    func audit(
        _ action: String, entityType: String, entityId: String, fromState: String? = nil, toState: String? = nil,
        reason: String? = nil, outcome: AuditEventOutcome = .succeeded, details: AuditJSON? = nil
    ) -> AuditEventInput {
        AuditEventInput(
            action: action, outcome: outcome, actorId: principal?.id ?? "anonymous", actorName: principal?.displayName,
            actorRoles: Array(principal?.roles ?? []).sorted(), entityType: entityType, entityId: entityId,
            fromState: fromState, toState: toState, reason: reason, requestId: requestId, clientAddress: clientAddress,
            details: details)
    }
}

// A Redis failure that reaches a handler's boundary means the shared cache is unusable right
// now (connection refused, timeout, pool closed): answer 503 with Retry-After, never a 500.
extension RedisError: DependencyUnavailableError {
    public var dependency: String { "Redis" }
}

/// Reads a row's cells left to right with non-generic fast paths for the binary forms of the
/// common column types, and postgres-nio's own decoding for anything else. The profile of the
/// signals list showed generic decoding (metadata lookups per cell) as its largest cost.
struct CellReader {
    private var cells: PostgresRow.Iterator

    init(_ row: PostgresRow) { cells = row.makeIterator() }

    private mutating func cell() throws -> PostgresCell {
        guard let cell = cells.next() else { throw RowShapeError() }
        return cell
    }

    mutating func string() throws -> String {
        guard let s = try optionalString() else { throw RowShapeError() }
        return s
    }

    mutating func optionalString() throws -> String? {
        let c = try cell()
        guard var bytes = c.bytes else { return nil }
        switch c.dataType {
        case .text, .varchar, .bpchar, .name: return bytes.readString(length: bytes.readableBytes)
        default: return try c.decode(String.self)
        }
    }

    mutating func uuid() throws -> UUID {
        let c = try cell()
        if c.format == .binary, c.dataType == .uuid, var bytes = c.bytes, bytes.readableBytes == 16, let id = bytes.readUUIDBytes() {
            return id
        }
        return try c.decode(UUID.self)
    }

    mutating func date() throws -> Date {
        guard let d = try optionalDate() else { throw RowShapeError() }
        return d
    }

    /// Binary timestamps are microseconds since 2000-01-01T00:00:00Z.
    mutating func optionalDate() throws -> Date? {
        let c = try cell()
        guard var bytes = c.bytes else { return nil }
        if c.format == .binary, c.dataType == .timestamptz || c.dataType == .timestamp, bytes.readableBytes == 8,
            let micros = bytes.readInteger(as: Int64.self)
        {
            return Date(timeIntervalSince1970: 946_684_800 + Double(micros) / 1_000_000)
        }
        return try c.decode(Date.self)
    }

    mutating func int() throws -> Int {
        let c = try cell()
        if c.format == .binary, c.dataType == .int8, var bytes = c.bytes, bytes.readableBytes == 8, let v = bytes.readInteger(as: Int64.self) {
            return Int(v)
        }
        return try c.decode(Int.self)
    }

    mutating func optionalInt() throws -> Int? { try cell().decode(Int?.self) }

    mutating func double() throws -> Double {
        let c = try cell()
        if c.format == .binary, c.dataType == .float8, var bytes = c.bytes, bytes.readableBytes == 8,
            let bits = bytes.readInteger(as: UInt64.self)
        {
            return Double(bitPattern: bits)
        }
        return try c.decode(Double.self)
    }

    /// Any other column type, through postgres-nio's decoding.
    mutating func decode<T: PostgresDecodable>(_ type: T.Type) throws -> T { try cell().decode(T.self) }

    /// `text[]` through ``BinaryTextArray``; anything else through postgres-nio.
    mutating func stringArray() throws -> [String] {
        let c = try cell()
        if c.format == .binary, c.dataType == .textArray || c.dataType == .varcharArray, let bytes = c.bytes {
            var out: [String] = []
            let read = bytes.withUnsafeReadableBytes { raw in
                BinaryTextArray.forEach(in: raw) { out.append(String(decoding: $0, as: UTF8.self)) }
            }
            if read { return out }
        }
        return try c.decode([String].self)
    }
}

/// A one-dimensional `text[]` (or `varchar[]`) without NULLs in PostgreSQL's binary form:
/// dimensions, has-null flag, element type, per dimension a size and a lower bound, then per
/// element a length and UTF-8 bytes. Read by both the typed path (``CellReader``) and the
/// composite reader (``RecordFields``).
enum BinaryTextArray {
    /// Calls `body` with each element's bytes, after the whole array was checked; false, with
    /// nothing handed out, for any other shape (NULL elements, more dimensions, another element
    /// type, lengths the bytes do not hold, bytes past the last element).
    static func forEach(in b: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard b.count >= 12 else { return false }
        func int32(_ at: Int) -> Int { Int(Int32(bigEndian: b.loadUnaligned(fromByteOffset: at, as: Int32.self))) }
        let dims = int32(0)
        let element = PostgresDataType(UInt32(truncatingIfNeeded: int32(8)))
        guard int32(4) == 0, element == .text || element == .varchar else { return false }
        if dims == 0 { return b.count == 12 }
        guard dims == 1, b.count >= 20 else { return false }
        let count = int32(12)
        guard count >= 0 else { return false }
        var at = 20
        for _ in 0..<count {
            guard b.count - at >= 4 else { return false }
            let length = int32(at)
            guard length >= 0, b.count - at - 4 >= length else { return false }
            at += 4 + length
        }
        guard at == b.count else { return false }
        at = 20
        for _ in 0..<count {
            let length = int32(at)
            body(UnsafeRawBufferPointer(rebasing: b[at + 4..<at + 4 + length]))
            at += 4 + length
        }
        return true
    }
}

/// The fields of one composite value in PostgreSQL's binary form (`record_send`): a field count,
/// then per field its type OID, its length (-1 for NULL) and its bytes. A statement that selects
/// `ROW(a, b, …)` gets each row as one such cell, read here field by field over the cell's bytes.
/// postgres-nio's per-cell work (a `PostgresCell` carrying its column's name, two reads of the
/// length, a buffer slice, each under an exclusivity check) was the signals list page's largest
/// cost: 19 cells a row at ~600 instructions each.
///
/// Every field is checked before it is handed out: there is one, its type is the one asked for,
/// its bytes are all there. Anything else is a ``RowShapeError`` (the statement and its reader
/// disagree: a bug, answered 500). The fields are valid only inside the closure that lent the
/// bytes.
struct RecordFields {
    enum FormatLabel { case checked, unreliable }

    private let bytes: UnsafeRawBufferPointer
    private var offset = 4
    private var left: Int

    init(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count >= 4 else { throw RowShapeError() }
        let count = Int32(bigEndian: bytes.loadUnaligned(as: Int32.self))
        guard count >= 0 else { throw RowShapeError() }
        self.bytes = bytes
        self.left = Int(count)
    }

    /// Calls `body` with the fields of the composite in `cell` (binary, type `record`).
    ///
    /// `formatLabel: .unreliable` reads the cell's bytes as binary whatever format its column
    /// is labelled with: for rows from ``RowCallbackStatements``, whose columns postgres-nio
    /// labels `.text` though it asked for (and got) every column in binary. A cell that really
    /// were text would start with `(`, which reads as a field count of over 671 million, and
    /// fails like any other malformed composite.
    static func read<T>(
        _ cell: PostgresCell, formatLabel: FormatLabel = .checked, _ body: (inout RecordFields) throws -> T
    ) throws -> T {
        guard formatLabel == .unreliable || cell.format == .binary, cell.dataType == .record, let bytes = cell.bytes else {
            throw RowShapeError()
        }
        return try bytes.withUnsafeReadableBytes { raw in
            var fields = try RecordFields(raw)
            let value = try body(&fields)
            guard fields.left == 0 else { throw RowShapeError() }
            return value
        }
    }

    /// The next field's bytes, nil for NULL, if its type is one `accepts`.
    @inline(__always)
    private mutating func field(_ accepts: (PostgresDataType) -> Bool) throws -> UnsafeRawBufferPointer? {
        guard left > 0, bytes.count - offset >= 8 else { throw RowShapeError() }
        let type = PostgresDataType(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        let length = Int(Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: Int32.self)))
        offset += 8
        left -= 1
        guard accepts(type) else { throw RowShapeError() }
        if length == -1 { return nil }
        guard length >= 0, bytes.count - offset >= length else { throw RowShapeError() }
        defer { offset += length }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length])
    }

    /// A string column's UTF-8 bytes (a UTF8 database's `text`, `varchar`, `char`, `name`); nil for NULL.
    mutating func text() throws -> UnsafeRawBufferPointer? {
        try field { $0 == .text || $0 == .varchar || $0 == .bpchar || $0 == .name }
    }

    mutating func uuid() throws -> UUID {
        guard let b = try field({ $0 == .uuid }), b.count == 16 else { throw RowShapeError() }
        return UUID(uuid: b.loadUnaligned(as: uuid_t.self))
    }

    mutating func double() throws -> Double {
        guard let b = try field({ $0 == .float8 }), b.count == 8 else { throw RowShapeError() }
        return Double(bitPattern: UInt64(bigEndian: b.loadUnaligned(as: UInt64.self)))
    }

    mutating func int() throws -> Int {
        guard let b = try field({ $0 == .int4 || $0 == .int8 }) else { throw RowShapeError() }
        switch b.count {
        case 4: return Int(Int32(bigEndian: b.loadUnaligned(as: Int32.self)))
        case 8: return Int(Int64(bigEndian: b.loadUnaligned(as: Int64.self)))
        default: throw RowShapeError()
        }
    }

    /// A `timestamptz`: microseconds since 2000-01-01T00:00:00Z; nil for NULL.
    mutating func date() throws -> Date? {
        guard let b = try field({ $0 == .timestamptz }) else { return nil }
        guard b.count == 8 else { throw RowShapeError() }
        let micros = Int64(bigEndian: b.loadUnaligned(as: Int64.self))
        return Date(timeIntervalSince1970: 946_684_800 + Double(micros) / 1_000_000)
    }

    /// A `text[]` (``BinaryTextArray``): `body` gets each element's UTF-8 bytes, after the whole
    /// array was checked.
    mutating func textArray(_ body: (UnsafeRawBufferPointer) -> Void) throws {
        guard let b = try field({ $0 == .textArray || $0 == .varcharArray }), BinaryTextArray.forEach(in: b, body) else {
            throw RowShapeError()
        }
    }
}

/// A row had fewer columns than its decoder reads, or NULL where the decoder needs a value: a
/// query and its decoder disagree (a bug, answered 500).
struct RowShapeError: Error, CustomStringConvertible {
    var description: String { "row does not have the shape its decoder reads" }
}
