import Foundation
import Generated
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SitrepRuntime

/// Tokens the test authenticator accepts, one per role combination.
struct TestAuthenticator: Authenticator {
    func authenticate(bearerToken: String) async throws -> Principal {
        let roles: [String: Set<String>] = [
            "viewer": ["Sitrep.Viewer"], "admin": ["Sitrep.Admin"], "exec": ["Sitrep.Executive"],
            "exec-mfa": ["Sitrep.Executive"], "ingest": ["Sitrep.Ingest"], "writer": ["Sitrep.BriefingWriter"],
            "nobody": [],
        ]
        guard let r = roles[bearerToken] else {
            throw AuthenticationFailure(description: "token signature is invalid")
        }
        return Principal(
            id: "t:\(bearerToken)", tenantId: "t", objectId: bearerToken, displayName: bearerToken.capitalized, roles: r,
            authContexts: bearerToken == "exec-mfa" ? ["c1"] : [])
    }
}

/// A rate limiter that allows `limit` calls per policy and key, then refuses.
actor CountingRateLimiter: RateLimiter {
    nonisolated let policies: Set<String> = ["writes", "ingest", "auth", "webhook", "messaging"]
    let limit: Int
    var counts: [String: Int] = [:]
    init(limit: Int) { self.limit = limit }
    func check(policy: String, key: String) async throws -> RateLimitDecision {
        counts[policy + key, default: 0] += 1
        let n = counts[policy + key]!
        return RateLimitDecision(allowed: n <= limit, limit: limit, remaining: max(0, limit - n), retryAfter: 42)
    }
}

/// Signals and posture implemented in memory: enough behaviour to exercise the generated router.
struct FakeSignals: SignalsAPI, PostureAPI {
    var failWith: (any Error)? = nil
    var badConfidence = false

    static let fixedId = UUID(uuidString: "0195793d-10c0-7b9a-a4ed-db491c101707")!
    static let when = Date(timeIntervalSince1970: 1_764_144_000)  // 2025-11-26T08:00:00Z

    func signal(_ id: UUID) -> Signal {
        Signal(
            id: id, source: "reuters", sourceId: "X1", title: "Brent rises", summary: "Oil up.", sourceUrl: nil,
            category: .economic, severity: .high, confidence: badConfidence ? 2.0 : 0.9, modelVersion: "m1", tags: ["oil"],
            region: nil, publishedAt: Self.when, status: .new, triageNote: nil, triagedBy: nil, triagedAt: nil,
            ingestedAt: Self.when, etag: "\"1\"")
    }

    func ingestSignals(_ input: IngestSignals.Input, context: OperationContext) async throws -> IngestSignals.Output {
        if let failWith { throw failWith }
        let results = input.body.items.map { SignalIngestItem(sourceId: $0.sourceId, source: $0.source, id: Self.fixedId, outcome: .created) }
        return .ok(SignalIngestResult(received: results.count, created: results.count, unchanged: 0, conflicts: 0, results: results))
    }

    func listSignals(_ input: ListSignals.Input, context: OperationContext) async throws -> ListSignals.Output {
        .ok(SignalPage(items: [signal(Self.fixedId)], nextCursor: nil), etag: "\"l-1\"")
    }

    func getSignal(_ input: GetSignal.Input, context: OperationContext) async throws -> GetSignal.Output {
        if let failWith { throw failWith }
        let s = signal(input.signalId)
        return .ok(s, etag: s.etag)
    }

    /// Two events then the end: the resume point and the filter echoed back, so a test sees what the router decoded.
    func streamSignals(_ input: StreamSignals.Input, context: OperationContext) async throws -> StreamSignals.Output {
        if let failWith { throw failWith }
        let s = signal(Self.fixedId)
        let after = Int(input.lastEventId ?? "0") ?? 0
        let category = input.category?.map(\.rawValue).joined(separator: ",") ?? "all"
        return .ok(
            EventStream { write in
                try await write(EventStream.comment("category \(category)"))
                for id in after + 1...after + 2 {
                    try await write(EventStream.event(id: String(id), name: "signal.created", data: s.jsonBytes()))
                }
            })
    }

    func triageSignal(_ input: TriageSignal.Input, context: OperationContext) async throws -> TriageSignal.Output {
        if input.ifMatch != "\"1\"" { return .preconditionFailed(.preconditionFailed()) }
        var s = signal(input.signalId)
        s.status = input.body.status
        return .ok(s, etag: "\"2\"")
    }

    func getPosture(_ input: GetPosture.Input, context: OperationContext) async throws -> GetPosture.Output {
        .ok(Posture(domains: [], updatedAt: Self.when), etag: "\"p-1\"")
    }

    func getPostureDomain(_ input: GetPostureDomain.Input, context: OperationContext) async throws -> GetPostureDomain.Output {
        let e = PostureEntry(domain: input.domain, level: .normal, rationale: nil, setBy: nil, setAt: nil, etag: "\"0\"")
        return .ok(e, etag: e.etag)
    }

    func setPosture(_ input: SetPosture.Input, context: OperationContext) async throws -> SetPosture.Output {
        let e = PostureEntry(
            domain: input.domain, level: input.body.level, rationale: input.body.rationale, setBy: context.caller.displayName, setAt: Self.when,
            etag: "\"1\"")
        return .ok(e, etag: e.etag)
    }

    func listPostureHistory(_ input: ListPostureHistory.Input, context: OperationContext) async throws -> ListPostureHistory.Output {
        .ok(PostureHistoryPage(items: [], nextCursor: nil), etag: "\"h-1\"")
    }
}

func makeApp(
    handler: FakeSignals = FakeSignals(), limit: Int = 1000, maxBody: Int = 4096, idempotency: (any IdempotencyStore)? = nil,
    extra: ((Router<SitrepRequestContext>, APIRuntime) -> Void)? = nil, logger: Logger = Logger(label: "sitrep.test")
) -> some ApplicationProtocol {
    let runtime = APIRuntime(
        authenticator: TestAuthenticator(), rateLimiter: CountingRateLimiter(limit: limit), idempotencyStore: idempotency,
        maxBodyBytes: maxBody, validateResponses: true)
    let router = Router.sitrep()
    // As the generated registerSitrepAPI does: the operations, then the middleware for the rest.
    router.registerSignalsAPI(handler, runtime: runtime)
    router.registerPostureAPI(handler, runtime: runtime)
    router.registerPlannedOperations(runtime: runtime)
    router.add(middleware: SitrepMiddleware(runtime: runtime))
    router.registerMethodNotAllowed(runtime: runtime)
    extra?(router, runtime)
    return Application(router: router, logger: logger)
}

extension HTTPFields {
    static func bearer(_ token: String, json: Bool = false, _ more: [(String, String)] = []) -> HTTPFields {
        var h = HTTPFields()
        h[.authorization] = "Bearer \(token)"
        if json { h[.contentType] = "application/json" }
        for (k, v) in more { h[HTTPField.Name(k)!] = v }
        return h
    }
}

/// The response body parsed as a JSON object.
func json(_ r: TestResponse) throws -> JSONObject {
    guard case .object(let o) = try JSONParser.parse(Array(r.body.readableBytesView)) else {
        throw ContractViolation("not an object")
    }
    return o
}

func str(_ o: JSONObject, _ k: String) -> String? {
    if case .string(let s)? = o[k] { return s }
    return nil
}

func body(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

let validBatch = """
    {"items":[{"source":"reuters","sourceId":"X1","title":"Brent rises","summary":"Oil up.","category":"economic",
    "severity":"high","confidence":0.9,"modelVersion":"m1","tags":["oil"],"publishedAt":"2025-11-26T08:00:00Z"}]}
    """

/// A string member of the response's JSON body (nil when absent or not JSON).
func field(_ r: TestResponse, _ k: String) -> String? {
    (try? json(r)).flatMap { str($0, k) }
}
