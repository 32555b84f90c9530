import Foundation
import Logging
import PostgresNIO
import Redis
import SitrepRuntime
import Storage

/// Opaque keyset cursors: the id of the last item on the page, base64url-encoded with a version,
/// so the next page continues strictly after it in (time, id) order even while rows are added.
enum Cursor {
    static func encode(_ id: UUID) -> String {
        let raw = "v1:" + id.uuidString.lowercased()
        return Data(raw.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The id inside a cursor, or a 400 problem naming the parameter.
    static func decode(_ cursor: String?) throws -> UUID? {
        guard let cursor else { return nil }
        var b64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let raw = String(data: data, encoding: .utf8), raw.hasPrefix("v1:"),
            let id = UUID(uuidString: String(raw.dropFirst(3)))
        else {
            throw ProblemError(
                Problem(
                    status: 400, code: "pagination.invalid_cursor", title: "Invalid cursor",
                    detail: "The cursor is not one this API issued; start again without it.",
                    errors: [FieldError(pointer: "/query/cursor", message: "is not a valid cursor")]))
        }
        return id
    }
}

/// Rows were fetched with `LIMIT limit + 1`: drop the probe row and name the next page after the
/// last row kept (nil on the last page).
func trimPage<T>(_ items: inout [T], limit: Int, id: (T) -> UUID) -> String? {
    guard items.count > limit else { return nil }
    items.removeLast(items.count - limit)
    return items.last.map { Cursor.encode(id($0)) }
}

/// ETags are the resource's row version, quoted.
enum ETag {
    static func make(_ version: Int) -> String { "\"\(version)\"" }

    /// The version an `If-Match` value names, or nil when it names none we could have issued.
    static func version(fromIfMatch header: String) -> Int? {
        var v = header.trimmingCharacters(in: .whitespaces)
        if v.hasPrefix("W/") { v = String(v.dropFirst(2)) }
        guard v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") else { return nil }
        return Int(v.dropFirst().dropLast())
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
            return serverInfo == nil && underlying != nil
        }
    }
}

/// Runs a database operation, turning connectivity failures into `DatabaseUnavailable` (503).
func database<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let e as PSQLError where e.isConnectionFailure {
        throw DatabaseUnavailable(underlying: "\(e.code)")
    } catch let e as PostgresTransactionError {
        if let inner = (e.beginError ?? e.closureError ?? e.commitError) as? PSQLError, inner.isConnectionFailure {
            throw DatabaseUnavailable(underlying: "\(inner.code)")
        }
        if let p = e.closureError as? ProblemError { throw p }
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
