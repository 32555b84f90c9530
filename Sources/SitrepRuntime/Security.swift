import Foundation

/// Who is calling, as established by an `Authenticator` from a verified credential.
///
/// The fields sit behind one shared, immutable reference: a request hands its principal from the
/// token cache to the runtime, the operation's context and the handler, and each copy of ten
/// separately counted fields cost ~280 instructions where one reference costs a retain. Setting a
/// field makes a new reference (the cached principal is never touched); that happens when a
/// principal is made, not per request.
public struct Principal: Sendable, Hashable {
    /// Stable id: `"<tid>:<oid>"` for users, `"app:<azp or appid>"` for app-only tokens.
    public var id: String {
        get { box.fields.id }
        set { update { $0.id = newValue } }
    }

    public var tenantId: String {
        get { box.fields.tenantId }
        set { update { $0.tenantId = newValue } }
    }

    public var objectId: String {
        get { box.fields.objectId }
        set { update { $0.objectId = newValue } }
    }

    public var displayName: String? {
        get { box.fields.displayName }
        set { update { $0.displayName = newValue } }
    }

    /// App roles from the token's `roles` claim (e.g. `Sitrep.Admin`).
    public var roles: Set<String> {
        get { box.fields.roles }
        set { update { $0.roles = newValue } }
    }

    /// Conditional Access authentication contexts satisfied (`acrs` claim), used for MFA step-up.
    public var authContexts: Set<String> {
        get { box.fields.authContexts }
        set { update { $0.authContexts = newValue } }
    }

    /// True for app-only (client credentials) tokens.
    public var isApplication: Bool {
        get { box.fields.isApplication }
        set { update { $0.isApplication = newValue } }
    }

    /// Which security scheme of the spec authenticated the call (`bearerAuth`, `sessionCookie`).
    public var scheme: String {
        get { box.fields.scheme }
        set { update { $0.scheme = newValue } }
    }

    /// With a cookie session: when it ends unless used (the earlier of idle and absolute expiry).
    public var sessionExpiresAt: Date? {
        get { box.fields.sessionExpiresAt }
        set { update { $0.sessionExpiresAt = newValue } }
    }

    /// With a cookie session: the session's storage key (a SHA-256 of the cookie value, never
    /// the value itself), so sign-out and refresh can find it.
    public var sessionKey: String? {
        get { box.fields.sessionKey }
        set { update { $0.sessionKey = newValue } }
    }

    private struct Fields: Sendable, Hashable {
        var id: String
        var tenantId: String
        var objectId: String
        var displayName: String?
        var roles: Set<String>
        var authContexts: Set<String>
        var isApplication: Bool
        var scheme: String
        var sessionExpiresAt: Date?
        var sessionKey: String?
    }

    private final class Box: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var box: Box

    private mutating func update(_ change: (inout Fields) -> Void) {
        var fields = box.fields
        change(&fields)
        box = Box(fields)
    }

    public static func == (lhs: Principal, rhs: Principal) -> Bool {
        lhs.box === rhs.box || lhs.box.fields == rhs.box.fields
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(box.fields) }

    /// Whether the caller has at least one of `roles`. A scan comparing strings rather than a
    /// set lookup: a caller has a role or two and an operation names a few, and comparing short
    /// strings is cheaper than hashing one. Lengths are compared first: role names mostly
    /// differ in length, and a failed comparison of two strings took the string library's slow
    /// path.
    public func hasAnyRole(of roles: [String]) -> Bool {
        box.fields.roles.contains { mine in
            let length = mine.utf8.count
            return roles.contains { $0.utf8.count == length && $0 == mine }
        }
    }

    public init(
        id: String, tenantId: String, objectId: String, displayName: String? = nil,
        roles: Set<String>, authContexts: Set<String> = [], isApplication: Bool = false,
        scheme: String = "bearerAuth"
    ) {
        box = Box(
            Fields(
                id: id, tenantId: tenantId, objectId: objectId, displayName: displayName, roles: roles, authContexts: authContexts,
                isApplication: isApplication, scheme: scheme, sessionExpiresAt: nil, sessionKey: nil))
    }
}

/// Why a credential was refused. Mapped by the router to a 401 problem with `WWW-Authenticate`.
public struct AuthenticationFailure: Error, Sendable, Equatable {
    /// RFC 6750 error code: `invalid_token`, `invalid_request`.
    public var error: String
    /// Human-readable reason, safe to show the caller (never token contents).
    public var description: String
    public init(error: String = "invalid_token", description: String) {
        self.error = error
        self.description = description
    }
}

/// Verifies credentials for the security schemes the spec declares.
///
/// The generated router calls it before any handler of an operation that declares security;
/// a thrown `AuthenticationFailure` becomes a 401 problem. Implementations: the JWT/JWKS
/// authenticator in the `Auth` target; test authenticators in tests.
public protocol Authenticator: Sendable {
    /// Verify a bearer token (`Authorization: Bearer …`).
    func authenticate(bearerToken: String) async throws -> Principal
    /// Verify a browser session cookie value. Return nil when sessions are not supported.
    func authenticate(sessionCookie: String) async throws -> Principal?
    /// The principal for a bearer token that already passed every check of
    /// `authenticate(bearerToken:)` and still would, answered without suspending (a cache);
    /// nil sends the token through `authenticate(bearerToken:)`.
    func cachedPrincipal(bearerToken: Substring) -> Principal?
}

extension Authenticator {
    public func authenticate(sessionCookie: String) async throws -> Principal? { nil }
    public func cachedPrincipal(bearerToken: Substring) -> Principal? { nil }
}

/// A refused access attempt — 401, 403 or a step-up challenge — for the audit log. Carries who
/// (when known), what was attempted and why it was refused; never a token or a session id.
public struct SecurityEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case unauthenticated = "auth.unauthenticated"
        case forbidden = "auth.forbidden"
        case stepUpRequired = "auth.step_up_required"
        case csrfRejected = "auth.csrf_rejected"
    }

    public var kind: Kind
    public var operationId: String
    /// The caller when the credential was valid (403, step-up); nil for 401.
    public var principal: Principal?
    /// The reason given to the caller (already free of credential material).
    public var reason: String
    public var requestId: String
    public var clientAddress: String?

    public init(kind: Kind, operationId: String, principal: Principal?, reason: String, requestId: String, clientAddress: String?) {
        self.kind = kind
        self.operationId = operationId
        self.principal = principal
        self.reason = reason
        self.requestId = requestId
        self.clientAddress = clientAddress
    }
}

/// Where the runtime reports refused access attempts (the audit log in `sitrep serve`). Called
/// before the refusal is answered; it must not throw — a failure to record is logged by the sink.
public protocol SecurityEventSink: Sendable {
    func record(_ event: SecurityEvent) async
}
