import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SitrepRuntime
import Synchronization
import Testing

/// Log lines kept in memory.
final class CapturedLogs: Sendable {
    let lines = Mutex<[(message: String, metadata: Logger.Metadata)]>([])
}

struct CapturingLogHandler: LogHandler {
    let store: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    var metadataProvider: Logger.MetadataProvider? = nil

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String,
        line: UInt
    ) {
        let merged = metadata.merging(metadataProvider?.get() ?? [:]) { _, new in new }.merging(explicit ?? [:]) { _, new in new }
        store.lines.withLock { $0.append((message.description, merged)) }
    }
}

/// One access-log line per request, naming the operation and the caller (never the token).
@Suite("access log")
struct AccessLogTests {
    @Test func eachRequestIsOneLineWithOperationPrincipalStatusAndDuration() async throws {
        let logs = CapturedLogs()
        let logger = Logger(label: "sitrep.test") { _ in CapturingLogHandler(store: logs) }
        try await makeApp(logger: logger).test(.router) { client in
            var auth = HTTPFields()
            auth[.authorization] = "Bearer viewer"
            auth[.xRequestID] = "trace-me-1"
            _ = try await client.execute(uri: "/v1/signals?limit=5", method: .get, headers: auth)
            _ = try await client.execute(uri: "/v1/signals?limit=5", method: .get)
            _ = try await client.execute(uri: "/nowhere", method: .get)
        }
        let lines = logs.lines.withLock { $0.filter { $0.message == "request" } }
        #expect(lines.count == 3)
        guard lines.count == 3 else { return }
        let ok = lines[0].metadata
        #expect(ok["operation"] == "listSignals" && ok["principal"] == "t:viewer" && ok["requestId"] == "trace-me-1")
        #expect(ok["status"]?.description == "200" && ok["method"] == "GET" && ok["path"] == "/v1/signals")
        #expect(ok["durationMs"].map { Double($0.description) != nil } == true)
        let refused = lines[1].metadata
        #expect(refused["operation"] == "listSignals" && refused["principal"] == nil && refused["status"]?.description == "401")
        let unknown = lines[2].metadata
        #expect(unknown["operation"] == nil && unknown["status"]?.description == "404")
        // Never a credential.
        let all = logs.lines.withLock { $0.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n") }
        #expect(!all.contains("Bearer"))
    }

    /// Operations routed after a `SitrepMiddleware` (so it wraps them, the order before session 24)
    /// still get one request id and one access-log line: the middleware gives the request its id
    /// first, and `serve` then leaves the rest to it. A second middleware is a no-op too.
    @Test func aMiddlewareAroundTheOperationsDoesNotDoubleTheEnvelope() async throws {
        let logs = CapturedLogs()
        let logger = Logger(label: "sitrep.test") { _ in CapturingLogHandler(store: logs) }
        let runtime = APIRuntime(authenticator: TestAuthenticator(), rateLimiter: CountingRateLimiter(limit: 1000), validateResponses: true)
        let router = Router.sitrep()
        router.add(middleware: SitrepMiddleware(runtime: runtime))
        router.registerSignalsAPI(FakeSignals(), runtime: runtime)
        router.add(middleware: SitrepMiddleware(runtime: runtime))
        router.registerMethodNotAllowed(runtime: runtime)
        try await Application(router: router, logger: logger).test(.router) { client in
            var auth = HTTPFields()
            auth[.authorization] = "Bearer viewer"
            auth[.xRequestID] = "outer-1"
            let listed = try await client.execute(uri: "/v1/signals?limit=5", method: .get, headers: auth)
            #expect(listed.status == .ok && listed.headers[values: .xRequestID] == ["outer-1"])
            let refused = try await client.execute(uri: "/v1/signals", method: .delete, headers: auth)
            #expect(refused.status == .methodNotAllowed && refused.headers[values: .xRequestID] == ["outer-1"])
            let unknown = try await client.execute(uri: "/nowhere", method: .get, headers: auth)
            #expect(unknown.status == .notFound && unknown.headers[values: .xRequestID] == ["outer-1"])
        }
        let lines = logs.lines.withLock { $0.filter { $0.message == "request" } }
        #expect(lines.count == 3)
        #expect(lines.first?.metadata["operation"] == "listSignals" && lines.first?.metadata["requestId"] == "outer-1")
    }

    /// A line written while a request runs (here the runtime's own, for an unexpected error) names
    /// the request, its operation and its caller through the metadata provider, read when the line
    /// is written; a line written outside any request names none.
    @Test func linesWrittenDuringARequestNameItThroughTheMetadataProvider() async throws {
        struct Boom: Error {}
        let logs = CapturedLogs()
        let logger = Logger(label: "sitrep.test") { _ in CapturingLogHandler(store: logs, metadataProvider: .sitrepRequest) }
        try await makeApp(handler: FakeSignals(failWith: Boom()), logger: logger).test(.router) { client in
            var headers = HTTPFields()
            headers[.authorization] = "Bearer ingest"
            headers[.xRequestID] = "trace-me-2"
            headers[.contentType] = "application/json"
            let body =
                #"{"items":[{"source":"reuters","sourceId":"X1","title":"t","summary":"s","category":"economic","severity":"high","confidence":0.5,"modelVersion":"m1","publishedAt":"2026-11-26T08:00:00Z"}]}"#
            let r = try await client.execute(uri: "/v1/signals", method: .post, headers: headers, body: ByteBuffer(string: body))
            #expect(r.status == .internalServerError)
        }
        let failure = try #require(logs.lines.withLock { $0.first { $0.message == "unexpected error" } })
        #expect(failure.metadata["requestId"] == "trace-me-2")
        #expect(failure.metadata["operation"] == "ingestSignals" && failure.metadata["principal"] == "t:ingest")
        logger.info("outside")
        let outside = try #require(logs.lines.withLock { $0.first { $0.message == "outside" } })
        #expect(outside.metadata["requestId"] == nil && outside.metadata["operation"] == nil)
    }
}
