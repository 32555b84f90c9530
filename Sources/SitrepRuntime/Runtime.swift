import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Tracing

/// Request context for every Sitrep route.
public struct SitrepRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// `X-Request-ID` taken from the request (when sane) or made; set by `RequestIDMiddleware`.
    public var requestId: String
    /// The connection, for ``clientAddress``: the address is formatted only when something asks
    /// (rate-limit keys of anonymous callers, security events), not for every request.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestId = ""
        self.channel = source.channel
    }

    /// The peer's IP address.
    public var clientAddress: String? { channel.remoteAddress?.ipAddress }

    /// The runtime collects bodies itself with its own limit and 413 problem.
    public var maxUploadSize: Int { Int.max }
}

// MARK: - Protocols the runtime calls for spec-declared policies

/// The answer of a rate limiter for one call.
public struct RateLimitDecision: Sendable, Equatable {
    public var allowed: Bool
    /// Requests the policy allows per window (its quota).
    public var limit: Int
    public var remaining: Int
    /// Seconds until the window frees a slot (used for `Retry-After`).
    public var retryAfter: Int
    /// The policy's window in seconds.
    public var windowSeconds: Int
    /// Seconds until the full quota is available again.
    public var resetSeconds: Int
    public init(allowed: Bool, limit: Int, remaining: Int, retryAfter: Int, windowSeconds: Int = 60, resetSeconds: Int = 0) {
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.retryAfter = retryAfter
        self.windowSeconds = windowSeconds
        self.resetSeconds = resetSeconds
    }

    /// `RateLimit-Policy` and `RateLimit` (IETF draft-ietf-httpapi-ratelimit-headers, structured
    /// fields): the policy's quota and window, and what is left of it now.
    public func headers(policy: String) -> [(HTTPField.Name, String)] {
        [
            (.rateLimitPolicy, "\"\(policy)\";q=\(limit);w=\(windowSeconds)"),
            (.rateLimit, "\"\(policy)\";r=\(remaining);t=\(resetSeconds)"),
        ]
    }
}

extension HTTPField.Name {
    public static let rateLimitPolicy = HTTPField.Name("RateLimit-Policy")!
    public static let rateLimit = HTTPField.Name("RateLimit")!
}

/// Enforces `x-rate-limit: <policy>` per principal (or client address for public operations).
public protocol RateLimiter: Sendable {
    /// Policies this limiter knows; the runtime refuses to start when the spec names another.
    var policies: Set<String> { get }
    func check(policy: String, key: String) async throws -> RateLimitDecision
}

/// How an idempotent call ended.
public enum IdempotencyOutcome: Sendable {
    /// First time this key was seen: the handler ran; this is its answer.
    case fresh(EncodedResponse)
    /// Same key and same request as an earlier, finished call: its saved answer.
    case replay(EncodedResponse)
    /// Same key, different request: 422.
    case mismatch
    /// Same key, still being processed elsewhere: 409.
    case inFlight
}

/// Stores `x-idempotency` keys. ``execute(operation:principal:key:fingerprint:_:)`` runs the
/// handler at most once per (principal, key): implementations that can (PostgreSQL) run it inside
/// the same transaction as the key row and hand that transaction to the handler, so the effect
/// and its key commit together — no effect without its key, no key without its effect.
public protocol IdempotencyStore: Sendable {
    func execute(
        operation: String, principal: String, key: String, fingerprint: String,
        _ body: @Sendable (_ transaction: (any Sendable)?) async throws -> EncodedResponse
    ) async throws -> IdempotencyOutcome
}

public enum IdempotencyPolicy {
    /// Whether an answer is kept for replay: validation failures (400, 422) and server errors are
    /// not, so a corrected or later retry runs again.
    public static func keeps(_ response: EncodedResponse) -> Bool {
        response.status < 500 && response.status != 400 && response.status != 422
    }
}

/// How a `401` asks for MFA step-up.
public enum StepUpChallenge: String, Sendable {
    /// Entra ID: `error="insufficient_claims"` with a base64 `claims` request naming the
    /// authentication context (`acrs`).
    case claims
    /// RFC 9470 (standard OIDC issuers): `error="insufficient_user_authentication"` with
    /// `acr_values`.
    case acrValues
}

/// An error a dependency (PostgreSQL, Redis, a provider) raises when it cannot be reached; the
/// runtime answers 503 with `Retry-After` instead of 500.
public protocol DependencyUnavailableError: Error {
    var dependency: String { get }
}

// MARK: - The runtime

/// Everything the generated router needs at run time: the authenticator, policy stores, limits.
public struct APIRuntime: Sendable {
    public var authenticator: (any Authenticator)?
    public var rateLimiter: (any RateLimiter)?
    public var idempotencyStore: (any IdempotencyStore)?
    /// Largest accepted request body; larger ones get a 413 problem.
    public var maxBodyBytes: Int
    /// Largest accepted `x-streaming` body (an upload the handler reads as it arrives).
    public var maxStreamedBodyBytes: Int = 50 << 20
    /// Parse every JSON response back and check it against its schema (tests, development).
    public var validateResponses: Bool
    /// Conditional Access authentication context id that satisfies `x-mfa: required`.
    public var stepUpContext: String
    /// How a missing step-up is asked for in `WWW-Authenticate`.
    public var stepUpChallenge: StepUpChallenge = .claims
    /// Receives every 401, 403 and step-up challenge (audit); nil records nothing.
    public var securityEvents: (any SecurityEventSink)?
    /// Origins (`scheme://host[:port]`) whose pages may send cookie-authenticated writes.
    public var allowedOrigins: Set<String> = []
    /// Per-operation counts and latencies for `/metrics`; nil: not measured.
    public var metrics: APIMetrics?
    /// OpenTelemetry's tracer when tracing is configured: every request then runs in a server
    /// span (see ``SitrepMiddleware``). Nil (the default): nothing is traced or allocated for it.
    public var tracer: (any Tracer)?
    public var logger: Logger

    public init(
        authenticator: (any Authenticator)?, rateLimiter: (any RateLimiter)? = nil,
        idempotencyStore: (any IdempotencyStore)? = nil, maxBodyBytes: Int = 1 << 20,
        validateResponses: Bool = false, stepUpContext: String = "c1", securityEvents: (any SecurityEventSink)? = nil,
        logger: Logger = Logger(label: "sitrep")
    ) {
        self.securityEvents = securityEvents
        self.authenticator = authenticator
        self.rateLimiter = rateLimiter
        self.idempotencyStore = idempotencyStore
        self.maxBodyBytes = maxBodyBytes
        self.validateResponses = validateResponses
        self.stepUpContext = stepUpContext
        self.logger = logger
    }

    /// Refuses a configuration that cannot honour what the spec declares (checked at start-up, so
    /// a missing policy is a start-up error, never a silent pass).
    public func verify(operations: [OperationInfo]) throws {
        var problems: [String] = []
        for op in operations where !op.planned {
            if !op.security.isEmpty && authenticator == nil {
                problems.append("\(op.id) needs an authenticator")
            }
            if let policy = op.rateLimit {
                if let rateLimiter {
                    if !rateLimiter.policies.contains(policy) {
                        problems.append("\(op.id) names rate-limit policy '\(policy)', which is not configured")
                    }
                } else {
                    problems.append("\(op.id) declares x-rate-limit but no rate limiter is configured")
                }
            }
            if op.idempotency && idempotencyStore == nil {
                problems.append("\(op.id) declares x-idempotency but no idempotency store is configured")
            }
        }
        if !problems.isEmpty {
            throw ContractViolation("runtime cannot enforce the spec: " + problems.joined(separator: "; "))
        }
    }

    /// Runs one operation: policy enforcement, body handling, the handler, error mapping.
    /// Never throws: every failure becomes a problem response.
    ///
    /// The routes of the contract are registered before ``SitrepMiddleware`` (see the generated
    /// `registerSitrepAPI`), so this also does the middleware's part for them, without its
    /// layers: the request id, the server span, the log context, `X-Request-ID` and the access
    /// log line. A route the middleware does wrap arrives with its request id already set, and
    /// only the operation runs here.
    nonisolated(nonsending) public func serve(
        _ op: OperationInfo, request: Request, context: SitrepRequestContext,
        _ run: nonisolated(nonsending) @Sendable (RequestParts, OperationContext) async throws -> EncodedResponse
    ) async -> Response {
        guard context.requestId.isEmpty else { return await measured(op, request: request, context: context, run) }
        // The id goes to the operation as an argument: setting it in a copy of the context
        // retained and released every field of the copy.
        let requestId = SitrepMiddleware.requestId(from: request.headers.value(of: .xRequestID))
        let facts = RequestFacts(requestId: requestId, operation: op)
        // One clock read on each side serves the metrics and the access log.
        let logs = SitrepMiddleware.logsAccess(context.logger)
        let start = logs || metrics != nil ? Monotonic.nanoseconds : nil
        metrics?.inFlight.wrappingAdd(1, ordering: .relaxed)
        var response: Response
        if let tracer {
            response = await SitrepMiddleware.traced(tracer, request, context: context, requestId: requestId, facts: facts) {
                await RequestFacts.$current.withValue(facts) {
                    await answer(op, request: request, context: context, requestId: requestId, facts: facts, run)
                }
            }
        } else {
            response = await RequestFacts.$current.withValue(facts) {
                await answer(op, request: request, context: context, requestId: requestId, facts: facts, run)
            }
        }
        metrics?.inFlight.wrappingSubtract(1, ordering: .relaxed)
        // Appended, not set: nothing before this names the header.
        response.headers.append(HTTPField(name: .xRequestID, value: requestId))
        if let start {
            let elapsed = Monotonic.nanoseconds &- start
            metrics?.record(op, status: Int(response.status.code), nanoseconds: elapsed)
            if logs { SitrepMiddleware.logAccess(context.logger, request: request, response: response, facts: facts, nanoseconds: elapsed) }
        }
        return response
    }

    /// The operation, counted and timed for `/metrics` when they are kept.
    nonisolated(nonsending) private func measured(
        _ op: OperationInfo, request: Request, context: SitrepRequestContext,
        _ run: nonisolated(nonsending) @Sendable (RequestParts, OperationContext) async throws -> EncodedResponse
    ) async -> Response {
        let facts = RequestFacts.current
        facts?.set(operation: op)
        guard let metrics else {
            return await answer(op, request: request, context: context, requestId: context.requestId, facts: facts, run)
        }
        let start = Monotonic.nanoseconds
        metrics.inFlight.wrappingAdd(1, ordering: .relaxed)
        let response = await answer(op, request: request, context: context, requestId: context.requestId, facts: facts, run)
        metrics.inFlight.wrappingSubtract(1, ordering: .relaxed)
        metrics.record(op, status: Int(response.status.code), nanoseconds: Monotonic.nanoseconds &- start)
        return response
    }

    nonisolated(nonsending) private func answer(
        _ op: OperationInfo, request: Request, context: SitrepRequestContext, requestId: String, facts: RequestFacts?,
        _ run: nonisolated(nonsending) @Sendable (RequestParts, OperationContext) async throws -> EncodedResponse
    ) async -> Response {
        let logger = context.logger
        var rateHeaders: [(HTTPField.Name, String)] = []
        do {
            // 1. Authentication, roles, MFA step-up — for planned operations too, so what the
            // contract declares about who may call holds before the operation exists.
            var principal: Principal?
            if !op.security.isEmpty {
                func refuse(_ kind: SecurityEvent.Kind, _ problem: Problem, _ who: Principal?) async -> ProblemError {
                    await securityEvents?.record(
                        SecurityEvent(
                            kind: kind, operationId: op.id, principal: who, reason: problem.detail ?? problem.title,
                            requestId: requestId, clientAddress: context.clientAddress))
                    return ProblemError(problem)
                }
                let p: Principal
                if let known = cachedBearer(op, request: request) {
                    p = known
                } else {
                    do {
                        p = try await authenticate(op, request: request)
                    } catch let e as ProblemError where e.problem.status == 401 {
                        throw await refuse(.unauthenticated, e.problem, nil)
                    }
                }
                if p.scheme == "sessionCookie", let reason = csrfRefusal(request) {
                    let problem = Problem(status: 403, code: "auth.csrf_rejected", title: "Cross-site request refused", detail: reason)
                    throw await refuse(.csrfRejected, problem, p)
                }
                principal = p
                facts?.set(principal: p.id)
                if !op.roles.isEmpty && !p.hasAnyRole(of: op.roles) {
                    let problem = Problem(
                        status: 403, code: "auth.forbidden", detail: "This operation needs one of the roles: \(op.roles.joined(separator: ", ")).")
                    throw await refuse(.forbidden, problem, p)
                }
                if op.mfa && !p.authContexts.contains(stepUpContext) {
                    throw await refuse(.stepUpRequired, stepUp(), p)
                }
            }
            if op.planned {
                throw ProblemError(
                    Problem(
                        status: 501, code: "not_implemented", title: "Not implemented",
                        detail: "\(op.id) is in the contract but not implemented yet (x-planned)."))
            }
            // 2. Rate limit. The limiter decides how an outage of its store is handled (a local
            // limiter for most policies, a 503 for the ones that must fail closed).
            if let policy = op.rateLimit, let limiter = rateLimiter {
                let key = principal?.id ?? context.clientAddress ?? "anonymous"
                let d = try await limiter.check(policy: policy, key: key)
                rateHeaders = d.headers(policy: policy)
                if !d.allowed {
                    metrics?.rejected(policy: policy)
                    throw ProblemError(
                        Problem(
                            status: 429, code: "rate_limit.exceeded",
                            detail: "Rate limit '\(policy)' allows \(d.limit) requests per \(d.windowSeconds) s; retry after \(d.retryAfter) s.",
                            headers: [(.retryAfter, String(d.retryAfter))] + rateHeaders))
                }
            }
            // 3. Body. Taken in a function of its own: a streamed body's type has no fixed size
            // here, and as a local of this async function it cost every request heap allocations
            // on the task.
            let parts =
                op.streamsRequest || !op.requestContentTypes.isEmpty
                ? try await partsWithBody(op, request: request, context: context)
                : RequestParts(
                    path: Self.pathParameters(context), query: Self.parseQuery(request.uri.query), headers: request.headers, json: nil,
                    rawBody: nil, contentType: nil)
            let opContext = OperationContext(
                operation: op, principal: principal, requestId: requestId, connection: context.channel, logger: logger)

            // 4. Idempotency, around 5. the handler. The answer is changed in place, never
            // copied: a copy retains each of its buffers.
            var out: EncodedResponse
            if op.idempotency, let store = idempotencyStore {
                let key = try Self.idempotencyKey(request.headers)
                let fp = Self.fingerprint(method: request.method, path: request.uri.path, body: parts.rawBody ?? [])
                let path = request.uri.path
                let outcome = try await store.execute(operation: op.id, principal: principal?.id ?? "anonymous", key: key, fingerprint: fp) {
                    transaction in
                    var scoped = opContext
                    scoped.transaction = transaction
                    var answer = try await run(parts, scoped)
                    try self.stamp(&answer, requestId: requestId, path: path)
                    return answer
                }
                switch outcome {
                case .fresh(let response):
                    out = response
                case .replay(var saved):
                    saved.headers.append((HTTPField.Name("Idempotent-Replayed")!, "true"))
                    out = saved
                case .mismatch:
                    throw ProblemError(
                        Problem(
                            status: 422, code: "idempotency.key_reused",
                            detail: "This Idempotency-Key was already used with a different request."))
                case .inFlight:
                    throw ProblemError(
                        Problem(
                            status: 409, code: "idempotency.in_flight",
                            detail: "A request with this Idempotency-Key is still being processed; retry shortly."))
                }
            } else {
                out = try await run(parts, opContext)
                try stamp(&out, requestId: requestId, path: request.uri.path)
            }
            if !rateHeaders.isEmpty { out.headers += rateHeaders }
            return finish(out, op: op, requestId: requestId, logger: logger)
        } catch {
            var response = problemResponse(for: error, op: op, request: request, requestId: requestId, logger: logger)
            for (name, value) in rateHeaders where response.headers[name] == nil { response.headers[name] = value }
            return response
        }
    }

    // MARK: helpers

    /// The parts of a request whose operation takes a body: collected (at most
    /// ``maxBodyBytes``), media type checked, JSON parsed; or, for `x-streaming`, checked as far
    /// as the headers allow and handed on as it arrives.
    nonisolated(nonsending) private func partsWithBody(
        _ op: OperationInfo, request: Request, context: SitrepRequestContext
    ) async throws -> RequestParts {
        var json: JSONValue?
        var raw: [UInt8]?
        var stream: RequestBodyStream?
        let contentType = request.headers.value(of: .contentType)
        if op.streamsRequest {
            stream = try streamedBody(op, request: request, contentType: contentType)
        } else if !op.requestContentTypes.isEmpty {
            let bytes = try await collectBody(request)
            if bytes.isEmpty {
                if op.bodyRequired {
                    throw ProblemError(.badRequest("This operation needs a request body.", code: "request.malformed_json"))
                }
            } else {
                let mediaType = contentType.map(Self.mediaType) ?? ""
                guard op.requestContentTypes.contains(mediaType) else {
                    throw ProblemError(
                        Problem(
                            status: 415, code: "request.unsupported_media_type",
                            detail:
                                "Send the body as \(op.requestContentTypes.joined(separator: " or ")); got \(contentType ?? "no Content-Type")."))
                }
                if mediaType == "application/json" {
                    do {
                        json = try JSONParser.parse(bytes)
                    } catch {
                        throw ProblemError(.badRequest("The body is not valid JSON: \(error.message).", code: "request.malformed_json"))
                    }
                }
                raw = bytes
            }
        }
        return RequestParts(
            path: Self.pathParameters(context), query: Self.parseQuery(request.uri.query), headers: request.headers,
            json: json, rawBody: raw, bodyStream: stream, contentType: contentType)
    }

    /// The caller, when the operation takes a bearer token and this one is in the
    /// authenticator's cache of verified tokens: the usual case, answered without suspending.
    private func cachedBearer(_ op: OperationInfo, request: Request) -> Principal? {
        guard let authenticator, op.security.contains("bearerAuth"), let auth = request.headers.value(of: .authorization),
            let token = Self.bearerTokenSlice(auth), var p = authenticator.cachedPrincipal(bearerToken: token)
        else { return nil }
        // Principals are made with this scheme; setting it anyway would copy the fields.
        if p.scheme != "bearerAuth" { p.scheme = "bearerAuth" }
        return p
    }

    private func authenticate(_ op: OperationInfo, request: Request) async throws -> Principal {
        guard let authenticator else {
            throw ProblemError(Problem.internalError())
        }
        if op.security.contains("bearerAuth"), let auth = request.headers.value(of: .authorization) {
            guard let token = Self.bearerToken(auth) else {
                throw ProblemError(unauthorized(error: "invalid_request", description: "Authorization must be 'Bearer <token>'."))
            }
            do {
                var p = try await authenticator.authenticate(bearerToken: token)
                if p.scheme != "bearerAuth" { p.scheme = "bearerAuth" }
                return p
            } catch let f as AuthenticationFailure {
                throw ProblemError(unauthorized(error: f.error, description: f.description))
            }
        }
        if op.security.contains("sessionCookie"), let cookie = request.cookies["__Host-sitrep_session"] {
            do {
                if var p = try await authenticator.authenticate(sessionCookie: cookie.value) {
                    p.scheme = "sessionCookie"
                    return p
                }
            } catch let f as AuthenticationFailure {
                throw ProblemError(unauthorized(error: f.error, description: f.description))
            }
            throw ProblemError(unauthorized(error: "invalid_token", description: "The session is not valid; sign in again."))
        }
        throw ProblemError(unauthorized(error: nil, description: "Authentication is required: send a bearer token or a session cookie."))
    }

    /// The token of `Bearer <token>` (the scheme in any case, RFC 9110 §11.1), or nil when the
    /// value is not that. Read without splitting or case-mapping copies.
    static func bearerToken(_ value: String) -> String? {
        bearerTokenSlice(value).map(String.init)
    }

    /// ``bearerToken(_:)`` as a slice of `value`, not a copy.
    static func bearerTokenSlice(_ value: String) -> Substring? {
        let u = value.utf8
        guard u.count > 7 else { return nil }
        // The scheme compared a byte at a time, `| 0x20` folding ASCII case; index arithmetic on
        // the UTF-8 view is per-byte bookkeeping this runs on every request.
        func isScheme(_ b: some Collection<UInt8>) -> Bool {
            let scheme: StaticString = "bearer"
            var i = b.startIndex
            for k in 0..<6 {
                guard b[i] | 0x20 == scheme.utf8Start[k] else { return false }
                i = b.index(after: i)
            }
            return b[i] == UInt8(ascii: " ")
        }
        guard u.withContiguousStorageIfAvailable({ isScheme($0) }) ?? isScheme(u) else { return nil }
        return value[u.index(u.startIndex, offsetBy: 7)...]
    }

    /// Why a cookie-authenticated request looks cross-site, or nil. Safe methods never change
    /// state, so only writes are checked: the custom header (a cross-site form cannot send one
    /// without a CORS preflight), `Sec-Fetch-Site`, and `Origin` against the allowlist.
    func csrfRefusal(_ request: Request) -> String? {
        switch request.method {
        case .get, .head, .options: return nil
        default: break
        }
        if request.headers[.secFetchSite]?.lowercased() == "cross-site" {
            return "A cross-site page cannot write with this session."
        }
        if let origin = request.headers[.origin], !allowedOrigins.contains(origin) {
            return "Origin \(origin) may not write with this session."
        }
        guard request.headers[.sitrepCSRF] == "1" else {
            return "Cookie-authenticated writes need the header X-Sitrep-CSRF: 1."
        }
        return nil
    }

    private func unauthorized(error: String?, description: String) -> Problem {
        var challenge = "Bearer realm=\"sitrep\""
        if let error {
            challenge += ", error=\"\(error)\", error_description=\"\(description.replacingOccurrences(of: "\"", with: "'"))\""
        }
        return Problem(
            status: 401, code: "auth.unauthenticated", title: "Unauthorized", detail: description,
            headers: [(.wwwAuthenticate, challenge)])
    }

    private func stepUp() -> Problem {
        let challenge: String
        let how: String
        switch stepUpChallenge {
        case .claims:
            let claims = #"{"access_token":{"acrs":{"essential":true,"value":"\#(stepUpContext)"}}}"#
            let b64 = Data(claims.utf8).base64EncodedString()
            challenge =
                "Bearer realm=\"sitrep\", error=\"insufficient_claims\", error_description=\"Step-up authentication is required\", claims=\"\(b64)\""
            how = "acquire a token with the claims in WWW-Authenticate"
        case .acrValues:
            challenge =
                "Bearer realm=\"sitrep\", error=\"insufficient_user_authentication\", error_description=\"Step-up authentication is required\", acr_values=\"\(stepUpContext)\""
            how = "sign in again asking for acr_values=\(stepUpContext)"
        }
        return Problem(
            status: 401, code: "auth.step_up_required", title: "Step-up authentication required",
            detail: "This operation needs multi-factor authentication (authentication context \(stepUpContext)); \(how).",
            headers: [(.wwwAuthenticate, challenge)])
    }

    /// The body of an `x-streaming` operation, checked as far as the headers allow before the
    /// handler reads it: media type (415) and declared length (413). An empty body is the
    /// handler's to judge (an empty file is a validation error, not a missing body).
    private func streamedBody(_ op: OperationInfo, request: Request, contentType: String?) throws -> RequestBodyStream {
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > maxStreamedBodyBytes {
            throw ProblemError(RequestBodyStream.tooLarge(limit: maxStreamedBodyBytes))
        }
        let mediaType = contentType.map(Self.mediaType) ?? ""
        guard op.requestContentTypes.contains(mediaType) else {
            throw ProblemError(
                Problem(
                    status: 415, code: "request.unsupported_media_type",
                    detail: "Send the body as \(op.requestContentTypes.joined(separator: " or ")); got \(contentType ?? "no Content-Type")."))
        }
        return RequestBodyStream(request.body, limit: maxStreamedBodyBytes, declaredLength: declared)
    }

    private func collectBody(_ request: Request) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBodyBytes {
            throw ProblemError(tooLarge())
        }
        var out: [UInt8] = []
        for try await chunk in request.body {
            if out.count + chunk.readableBytes > maxBodyBytes { throw ProblemError(tooLarge()) }
            out.append(contentsOf: chunk.readableBytesView)
        }
        return out
    }

    private func tooLarge() -> Problem {
        Problem(status: 413, code: "request.too_large", detail: "The body is larger than the limit of \(maxBodyBytes) bytes.")
    }

    static func mediaType(_ contentType: String) -> String {
        let base = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return base.trimmingCharacters(in: .whitespaces).lowercased()
    }

    static func pathParameters(_ context: SitrepRequestContext) -> [String: Substring] {
        var out: [String: Substring] = [:]
        for (k, v) in context.parameters {
            out[String(k)] = Substring(v.removingPercentEncoding ?? String(v))
        }
        return out
    }

    /// `application/x-www-form-urlencoded` query parsing: `+` is a space, `%XX` decoded.
    public static func parseQuery(_ query: String?) -> [(Substring, Substring)] {
        guard let query, !query.isEmpty else { return [] }
        var out: [(Substring, Substring)] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = decodeComponent(kv[0])
            let v = kv.count > 1 ? decodeComponent(kv[1]) : ""
            out.append((Substring(k), Substring(v)))
        }
        return out
    }

    private static func decodeComponent(_ s: Substring) -> String {
        if !s.contains("%") && !s.contains("+") { return String(s) }
        let plus = s.replacingOccurrences(of: "+", with: " ")
        return plus.removingPercentEncoding ?? plus
    }

    static func idempotencyKey(_ headers: HTTPFields) throws -> String {
        guard var key = headers[HTTPField.Name("Idempotency-Key")!]?.trimmingCharacters(in: .whitespaces), !key.isEmpty else {
            throw ProblemError(
                Problem(
                    status: 400, code: "request.invalid_parameter", title: "Invalid parameters",
                    detail: "This operation needs an Idempotency-Key header (a unique string per intended write, 1–255 characters).",
                    errors: [FieldError(pointer: "/header/Idempotency-Key", message: "is required")]))
        }
        if key.count >= 2 && key.hasPrefix("\"") && key.hasSuffix("\"") { key = String(key.dropFirst().dropLast()) }
        guard !key.isEmpty, key.utf8.count <= 255 else {
            throw ProblemError(
                Problem(
                    status: 400, code: "request.invalid_parameter", title: "Invalid parameters",
                    detail: "Idempotency-Key must be 1 to 255 characters.",
                    errors: [FieldError(pointer: "/header/Idempotency-Key", message: "must be 1 to 255 characters")]))
        }
        return key
    }

    static func fingerprint(method: HTTPRequest.Method, path: String, body: [UInt8]) -> String {
        var h = SHA256()
        h.update(data: Array(method.rawValue.utf8))
        h.update(data: [0])
        h.update(data: Array(path.utf8))
        h.update(data: [0])
        h.update(data: body)
        return h.finalize().hexString
    }

    /// A problem a handler returned carries the request id and, unless it set one, the path as
    /// `instance`, like the problems the runtime makes itself.
    /// In place, so the usual answer (no problem) is not copied; `path` is worked out only for
    /// a problem.
    func stamp(_ out: inout EncodedResponse, requestId: String, path: @autoclosure () -> String) throws {
        guard var p = out.problem, p.requestId.isEmpty || p.instance == nil else { return }
        if p.requestId.isEmpty { p.requestId = requestId }
        if p.instance == nil { p.instance = path() }
        out = try EncodedResponse.problem(p, validate: validateResponses)
    }

    private func finish(_ out: EncodedResponse, op: OperationInfo, requestId: String, logger: Logger) -> Response {
        guard op.statuses.contains(out.status) else {
            logger.error("contract violation: \(op.id) answered undocumented status \(out.status)")
            return Self.response(contractFailure(requestId: requestId, message: "undocumented status \(out.status)"))
        }
        return Self.response(out)
    }

    private func contractFailure(requestId: String, message: String) -> EncodedResponse {
        var p = Problem.internalError()
        p.requestId = requestId
        if validateResponses {
            p.code = "contract.response_invalid"
            p.detail = message
        }
        return (try? EncodedResponse.problem(p, validate: false)) ?? EncodedResponse(status: 500)
    }

    func problemResponse(for error: any Error, op: OperationInfo?, request: Request, requestId: String, logger: Logger) -> Response {
        var problem: Problem
        switch error {
        case let e as ProblemError:
            problem = e.problem
        case let e as ContractViolation:
            logger.error("contract violation: \(e.message)")
            return Self.response(contractFailure(requestId: requestId, message: e.message))
        case let e as any DependencyUnavailableError:
            logger.error("dependency unavailable", metadata: ["dependency": .string(e.dependency), "error": "\(error)"])
            problem = .serviceUnavailable("\(e.dependency) is unavailable; retry shortly.", code: "dependency.unavailable")
        default:
            logger.error("unexpected error", metadata: ["error": "\(String(reflecting: error))"])
            problem = .internalError()
        }
        problem.requestId = requestId
        if problem.instance == nil { problem.instance = request.uri.path }
        if let op, !op.statuses.contains(problem.status) {
            logger.error("contract violation: \(op.id) would answer undocumented status \(problem.status) (\(problem.code))")
            return Self.response(contractFailure(requestId: requestId, message: "undocumented status \(problem.status) (\(problem.code))"))
        }
        do {
            return Self.response(try EncodedResponse.problem(problem, validate: validateResponses))
        } catch {
            logger.error("contract violation: problem body: \(error)")
            return Self.response(contractFailure(requestId: requestId, message: "\(error)"))
        }
    }

    /// The content type of most answers, checked once (making a field checks its value).
    static let jsonContentType = HTTPField(name: .contentType, value: "application/json")

    public static func response(_ out: EncodedResponse) -> Response {
        if let fields = out.fields, let body = out.sharedBody, out.stream == nil {
            return Response(status: HTTPResponse.Status(code: out.status), headers: fields, body: .init(byteBuffer: body))
        }
        var headers = HTTPFields()
        // Read once: with an ETag kept apart, each read of `out.headers` makes the list anew.
        let fieldsOut = out.headers
        // Room for these and the fields added on the way out (X-Request-ID, Date, Content-Length),
        // so the list never grows.
        headers.reserveCapacity(fieldsOut.count + 4)
        if let ct = out.contentType { headers.append(ct == "application/json" ? jsonContentType : HTTPField(name: .contentType, value: ct)) }
        for (n, v) in fieldsOut { headers.append(HTTPField(name: n, value: v)) }
        let status = HTTPResponse.Status(code: out.status)
        if let stream = out.stream {
            // Proxies (App Service's front end, nginx) must pass events through, not buffer them.
            headers[.cacheControl] = "no-store"
            headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
            return Response(
                status: status, headers: headers,
                body: ResponseBody { writer in
                    try await stream.produce { chunk in try await writer.write(ByteBuffer(bytes: chunk)) }
                    try await writer.finish(nil)
                })
        }
        if !out.hasBody {
            if out.status != 204 && out.status != 304 { headers[.contentLength] = "0" }
            return Response(status: status, headers: headers)
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: out.sharedBody ?? ByteBuffer(bytes: out.body)))
    }

    /// A problem for failures outside any operation (unknown route, wrong method).
    public func standaloneProblem(_ problem: Problem, request: Request, requestId: String) -> Response {
        var p = problem
        p.requestId = requestId
        if p.instance == nil { p.instance = request.uri.path }
        return Self.response((try? EncodedResponse.problem(p, validate: false)) ?? EncodedResponse(status: p.status))
    }
}
