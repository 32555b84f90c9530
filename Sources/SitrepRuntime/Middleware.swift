import Foundation
import HTTPTypes
import Hummingbird
import Instrumentation
import Logging
import Synchronization
import Tracing

/// Outermost middleware of everything that is not an operation of the contract (unknown paths,
/// 405s, `/metrics`, `/docs`): assigns the request id, turns any failure that escaped a route
/// (unknown path, framework errors) into a problem, stamps `X-Request-ID`, and writes one
/// access-log line. The operations' routes are registered before it (the generated
/// `registerSitrepAPI` adds it after them) and ``APIRuntime/serve(_:request:context:_:)`` does
/// the same for them without this layer; one registered after it is left to this one.
///
/// With a tracer (``APIRuntime/tracer``, OpenTelemetry configured), each request also runs in a
/// server span that continues the caller's W3C trace context (`traceparent`, `tracestate`) and
/// is named after the operation. Without one (the default) that path is skipped entirely: no
/// extraction, no span, no task-local, nothing allocated for tracing.
public struct SitrepMiddleware: RouterMiddleware {
    public typealias Context = SitrepRequestContext
    let runtime: APIRuntime

    public init(runtime: APIRuntime) {
        self.runtime = runtime
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // A request id already given: another SitrepMiddleware outside this one does all of this.
        guard context.requestId.isEmpty else { return try await next(request, context) }
        var context = context
        let requestId = Self.requestId(from: request.headers.value(of: .xRequestID))
        context.requestId = requestId
        let start = Self.logsAccess(context.logger) ? Monotonic.nanoseconds : nil
        var response: Response
        // Log lines written while this request runs get its id, operation and principal from here
        // (``Logger/MetadataProvider/sitrepRequest``), not from copies of the logger's metadata.
        let facts = RequestFacts(requestId: requestId)
        do {
            if let tracer = runtime.tracer {
                response = try await Self.traced(tracer, request, context: context, requestId: requestId, facts: facts) {
                    try await RequestFacts.$current.withValue(facts) { try await next(request, context) }
                }
            } else {
                response = try await RequestFacts.$current.withValue(facts) { try await next(request, context) }
            }
        } catch let e as any HTTPResponseError {
            let status = Int(e.status.code)
            let problem: Problem
            switch status {
            case 404:
                problem = Problem(status: 404, code: "route.not_found", detail: "No operation is defined at \(request.uri.path); see /openapi.yaml.")
            case 413:
                problem = Problem(
                    status: 413, code: "request.too_large", detail: "The body is larger than the limit of \(runtime.maxBodyBytes) bytes.")
            default:
                problem = Problem(status: status, code: "request.rejected", detail: Problem.defaultTitle(status))
            }
            response = runtime.standaloneProblem(problem, request: request, requestId: requestId)
        } catch {
            context.logger.error("unexpected error outside an operation", metadata: ["error": "\(String(reflecting: error))"])
            response = runtime.standaloneProblem(.internalError(), request: request, requestId: requestId)
        }
        // Appended, not set: nothing before this layer names the header, so there is none to
        // replace and no need to search for one.
        response.headers.append(HTTPField(name: .xRequestID, value: requestId))
        // HEAD: whatever answered (a GET route, a 404 or 405 problem), the headers without a body.
        if request.method == .head { response = response.createHeadResponse() }
        if let start {
            Self.logAccess(context.logger, request: request, response: response, facts: facts, nanoseconds: Monotonic.nanoseconds &- start)
        }
        return response
    }

    /// Whether access-log lines are written (info level): when not, the request is not timed for them.
    static func logsAccess(_ logger: Logger) -> Bool { logger.logLevel <= .info }

    /// The access-log line of one request: what every line of it carries (id, operation,
    /// principal), and the answer.
    static func logAccess(_ logger: Logger, request: Request, response: Response, facts: RequestFacts, nanoseconds: Int) {
        let ms = Double(nanoseconds) / 1e6
        var m = facts.logMetadata
        m["method"] = .string(request.method.rawValue)
        m["path"] = .string(request.uri.path)
        m["status"] = .stringConvertible(response.status.code)
        m["durationMs"] = .string(String(format: "%.2f", ms))
        logger.info("request", metadata: m)
    }

    /// Runs `body` in a server span (OpenTelemetry's HTTP server conventions): the caller's trace
    /// context continued, the operation's id as its name (`METHOD /route` for a route outside the
    /// contract, `METHOD` alone when nothing matched), the route template, the status, the request id and the principal's id (never a
    /// credential). The span ends when the handler has answered (a stream's body may go on).
    static func traced<E: Error>(
        _ tracer: any Tracer, _ request: Request, context: Context, requestId: String, facts: RequestFacts,
        _ body: () async throws(E) -> Response
    ) async throws(E) -> Response {
        var parent = ServiceContext.current ?? .topLevel
        tracer.extract(request.headers, into: &parent, using: HTTPFieldsExtractor())
        let span = tracer.startSpan(request.method.rawValue, context: parent, ofKind: .server)
        defer { span.end() }
        func finish(status: Int) {
            guard span.isRecording else { return }
            let (operation, operationRoute, principal) = facts.values
            // Routes outside the contract (`/metrics`, `/docs`) are named `METHOD /route`; Hummingbird
            // calls no route at all "NotFound".
            let route = operationRoute ?? context.endpointPath.flatMap { $0.hasPrefix("/") ? $0 : nil }
            if let name = operation ?? route.map({ request.method.rawValue + " " + $0 }) { span.operationName = name }
            span.updateAttributes { a in
                a["http.request.method"] = request.method.rawValue
                a["url.path"] = request.uri.path
                if let route { a["http.route"] = route }
                a["http.response.status_code"] = status
                a["sitrep.request_id"] = requestId
                if let principal { a["enduser.id"] = principal }
                if let operation { a["sitrep.operation"] = operation }
            }
            if status >= 500 { span.setStatus(SpanStatus(code: .error)) }
        }
        // `withValue` rethrows untyped errors; the body's own (typed) error is carried out as a result.
        let result: Result<Response, E> = await ServiceContext.$current.withValue(span.context) {
            do throws(E) {
                return .success(try await body())
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let response):
            finish(status: Int(response.status.code))
            return response
        case .failure(let error):
            // What the caller then answers: the error's own status, or 500.
            finish(status: Int((error as? any HTTPResponseError)?.status.code ?? 500))
            span.attributes["error.type"] = String(describing: type(of: error))
            throw error
        }
    }

    /// Accepts a caller's id when it is 1–128 characters of `[A-Za-z0-9._:-]`; otherwise makes one.
    public static func requestId(from header: String?) -> String {
        if let h = header, !h.isEmpty, h.utf8.count <= 128,
            h.utf8.allSatisfy({
                ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 46 || $0 == 95 || $0 == 45 || $0 == 58
            })
        {
            return h
        }
        return UUIDv7.make().lowercasedString
    }
}

/// What the operation learned about a request (its id, who called), for the access log line the
/// middleware writes after it: a task-local box the runtime fills in. Never holds credentials.
final class RequestFacts: Sendable {
    @TaskLocal static var current: RequestFacts?
    let requestId: String
    private let state: Mutex<(operation: String?, route: String?, principal: String?)>

    /// `operation`, when the request's operation is known already (the runtime's own routes),
    /// is recorded here rather than set afterwards under the lock.
    init(requestId: String, operation: OperationInfo? = nil) {
        self.requestId = requestId
        self.state = Mutex((operation?.id, operation?.path, nil))
    }

    /// What every log line written for this request carries.
    var logMetadata: Logger.Metadata {
        var m: Logger.Metadata = ["requestId": .string(requestId)]
        let (operation, _, principal) = values
        if let operation { m["operation"] = .string(operation) }
        if let principal { m["principal"] = .string(principal) }
        return m
    }

    /// The operation's id, its path template, the principal's id.
    var values: (String?, String?, String?) { state.withLock { ($0.operation, $0.route, $0.principal) } }
    func set(operation: OperationInfo) {
        state.withLock {
            $0.operation = operation.id
            $0.route = operation.path
        }
    }
    func set(principal: String) { state.withLock { $0.principal = principal } }
}

extension Logger.MetadataProvider {
    /// The request being handled (its id, operation and principal id; never a credential), for
    /// every log line written while it runs, read when a line is written: a request that logs
    /// nothing costs nothing. Give it to `LoggingSystem.bootstrap`; log handlers merge it under
    /// the line's own metadata.
    public static let sitrepRequest = Logger.MetadataProvider { RequestFacts.current?.logMetadata ?? [:] }
}

/// Reads propagation fields (`traceparent`, `tracestate`) from a request's headers.
struct HTTPFieldsExtractor: Extractor {
    func extract(key: String, from carrier: HTTPFields) -> String? {
        guard let name = HTTPField.Name(key) else { return nil }
        return carrier[name]
    }
}

extension HTTPField.Name {
    public static let xRequestID = HTTPField.Name("X-Request-ID")!
    public static let sitrepCSRF = HTTPField.Name("X-Sitrep-CSRF")!
    public static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
}

extension Router where Context == SitrepRequestContext {
    /// The router of a Sitrep server: every `GET` route also answers `HEAD` (RFC 9110 §9.3.2), with
    /// the same status and headers (`Content-Length` and `ETag` included) and no body.
    public static func sitrep() -> Router<SitrepRequestContext> {
        Router(context: SitrepRequestContext.self, options: .autoGenerateHeadEndpoints)
    }

    /// Answers methods a path does not support with a 405 problem listing `Allow` (`HEAD` with
    /// `GET`, which answers it: see ``sitrep()``).
    public func methodNotAllowed(path: String, allowed: [HTTPRequest.Method], runtime: APIRuntime) {
        // TRACE and QUERY too: an undeclared method is 405, not 404 (OPTIONS is left to CORS).
        let all: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .trace, HTTPRequest.Method("QUERY")!]
        let allowed = allowed.contains(.get) && !allowed.contains(.head) ? allowed + [.head] : allowed
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        for m in all where !allowed.contains(m) {
            self.on(RouterPath(path), method: m) { request, context -> Response in
                runtime.standaloneProblem(
                    Problem(
                        status: 405, code: "route.method_not_allowed", title: "Method not allowed",
                        detail: "\(request.method.rawValue) is not supported here; use \(allow).", headers: [(.allow, allow)]),
                    request: request, requestId: context.requestId)
            }
        }
    }
}

/// Time-ordered UUIDs (RFC 9562 version 7).
public enum UUIDv7 {
    /// 48 bits of Unix milliseconds, version 7, and 74 bits from ``UniqueBits``.
    public static func make(at date: Date = Date()) -> UUID {
        let ms = UInt64(max(0, date.timeIntervalSince1970 * 1000))
        let (r1, r2) = UniqueBits.next()
        func byte(_ v: UInt64, _ i: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: v >> (i * 8)) }
        return UUID(
            uuid: (
                byte(ms, 5), byte(ms, 4), byte(ms, 3), byte(ms, 2), byte(ms, 1), byte(ms, 0),
                0x70 | (byte(r1, 0) & 0x0f), byte(r1, 1), 0x80 | (byte(r1, 2) & 0x3f), byte(r1, 3),
                byte(r2, 0), byte(r2, 1), byte(r2, 2), byte(r2, 3), byte(r2, 4), byte(r2, 5)
            ))
    }
}

/// The random part of ids: SplitMix64 over a per-process counter, seeded from the system
/// generator at start: uniformly mixed bits per call (the mix of a counter never repeats within a
/// process) and unrelated seeds per process, without a `getrandom` call per id (that was 2.6 %
/// of a health check's CPU). Not for secrets: session ids, PKCE verifiers and nonces
/// use the system generator directly.
public enum UniqueBits {
    private static let seeds: (UInt64, UInt64) = {
        var rng = SystemRandomNumberGenerator()
        return (rng.next(), rng.next())
    }()
    private static let counter = Atomic<UInt64>(0)

    static func next() -> (UInt64, UInt64) {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        return (mix(seeds.0 &+ n &* 0x9E37_79B9_7F4A_7C15), mix(seeds.1 &+ n &* 0xBF58_476D_1CE4_E5B9))
    }

    private static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension UUID {
    /// The canonical lowercase form (`8-4-4-4-12` hex digits), written without Foundation's
    /// uppercase string and a second pass to lowercase it.
    public var lowercasedString: String {
        withUnsafeBytes(of: uuid) { raw in
            String(unsafeUninitializedCapacity: 36) { out in
                var j = 0
                func group(_ bytes: Range<Int>) {
                    for i in bytes {
                        let pair = UUID.hexPairs[Int(raw[i])]
                        out[j] = UInt8(truncatingIfNeeded: pair >> 8)
                        out[j &+ 1] = UInt8(truncatingIfNeeded: pair)
                        j &+= 2
                    }
                }
                func dash() {
                    out[j] = UInt8(ascii: "-")
                    j &+= 1
                }
                group(0..<4)
                dash()
                group(4..<6)
                dash()
                group(6..<8)
                dash()
                group(8..<10)
                dash()
                group(10..<16)
                return j
            }
        }
    }

    /// The two lowercase hex digits of each byte value, high digit in the high byte.
    private static let hexPairs: [UInt16] = (0..<256).map { b in
        let digits = Array("0123456789abcdef".utf8)
        return UInt16(digits[b >> 4]) << 8 | UInt16(digits[b & 0x0f])
    }
}
