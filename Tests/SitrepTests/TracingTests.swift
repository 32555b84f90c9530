import AsyncHTTPClient
import ERPStandIn
import Foundation
import Hummingbird
import LocalIssuer
import Logging
import SitrepRuntime
import Synchronization
import Testing

/// OpenTelemetry tracing end to end, through a real `sitrep serve` (the tracer is bootstrapped
/// once per process, so never in the test process): W3C trace context in from the caller and out
/// to the ERP, spans exported over OTLP/HTTP (JSON) to a collector stand-in on loopback, and
/// nothing at all when tracing is not configured.
@Suite("OpenTelemetry tracing", .enabled(if: SitrepHarness.isConfigured), .serialized)
struct TracingTests {
    static let traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let callerSpanId = "00f067aa0ba902b7"
    static let traceparent = "00-\(traceId)-\(callerSpanId)-01"

    /// Runs `body` with a collector, an ERP stand-in and `sitrep serve` wired to both (`otel`
    /// added to its environment); the server is stopped (SIGTERM) before `body`'s checks of what
    /// was exported after shutdown.
    func withServe(
        otel: (CollectorStandIn) -> [String: String],
        _ body:
            @Sendable (_ base: String, _ h: SitrepHarness, _ erp: ERPStandIn, _ collector: CollectorStandIn, _ stop: @Sendable () -> Void)
            async throws -> Void
    ) async throws {
        let logger = Logger(label: "test.tracing")
        let collector = try await CollectorStandIn.start(logger: logger)
        let erp = try await ERPStandIn.start(logger: logger)
        do {
            try await serve(collector, erp, otel: otel(collector), body)
        } catch {
            await erp.shutdown()
            await collector.shutdown()
            throw error
        }
        await erp.shutdown()
        await collector.shutdown()
    }

    private func serve(
        _ collector: CollectorStandIn, _ erp: ERPStandIn, otel: [String: String],
        _ body:
            @Sendable (_ base: String, _ h: SitrepHarness, _ erp: ERPStandIn, _ collector: CollectorStandIn, _ stop: @Sendable () -> Void)
            async throws -> Void
    ) async throws {
        try await SitrepHarness.with { _, h in
            let port = try FaultTests.freePort()
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-tracing-\(port).log")
            let serve = try FaultTests.startServe(
                h, port: port, log: log,
                extra: ["SITREP_ERP_BASE_URL": erp.baseURL, "SITREP_ERP_API_KEY": erp.configuration.apiKey].merging(otel) { _, b in b })
            let stop: @Sendable () -> Void = {
                if serve.isRunning {
                    serve.terminate()
                    serve.waitUntilExit()
                }
            }
            defer {
                stop()
                try? FileManager.default.removeItem(at: log)
            }
            do {
                try await SitrepHarness.waitForPort(port)
                try await body("http://127.0.0.1:\(port)", h, erp, collector, stop)
            } catch {
                let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                Issue.record("sitrep serve's log:\n\(output.suffix(3000))")
                throw error
            }
        }
    }

    /// GET /v1/erp/budget-summary with the caller's `traceparent`.
    static func budgetSummary(_ base: String, token: String, traceparent: String?) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: base + "/v1/erp/budget-summary?costCentre=CC-1001&fiscalYear=2025")
        request.headers.add(name: "Authorization", value: "Bearer " + token)
        request.headers.add(name: "X-Request-ID", value: "trace-test-request")
        if let traceparent { request.headers.add(name: "traceparent", value: traceparent) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return response
    }

    @Test func serverSpanContinuesTheCallersTraceAndTheERPCallCarriesIt() async throws {
        try await withServe(otel: { collector in
            [
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.baseURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                "OTEL_SERVICE_NAME": "sitrep-under-test", "OTEL_BSP_SCHEDULE_DELAY": "100",
            ]
        }) { base, h, erp, collector, _ in
            let token = h.tokens.executiveMFA
            let response = try await Self.budgetSummary(base, token: token, traceparent: Self.traceparent)
            #expect(response.status == .ok)
            #expect(response.headers["traceparent"].isEmpty && response.headers["tracestate"].isEmpty)

            // The server span: the caller's trace, its span as parent, named after the operation.
            let server = try await collector.waitForSpan { $0.name == "getBudgetSummary" }
            #expect(server.traceId == Self.traceId)
            #expect(server.parentSpanId == Self.callerSpanId)
            #expect(server.kind == 2)  // SPAN_KIND_SERVER
            #expect(server.serviceName == "sitrep-under-test")
            #expect(server.attributes["http.request.method"] == "GET")
            #expect(server.attributes["http.route"] == "/v1/erp/budget-summary")
            #expect(server.attributes["http.response.status_code"] == "200")
            #expect(server.attributes["sitrep.request_id"] == "trace-test-request")
            #expect(server.attributes["enduser.id"]?.isEmpty == false)
            #expect(!server.attributes.values.contains { $0.contains(token) || $0.contains("Bearer") })

            // The ERP calls: client spans under the server span, and each request carried its
            // client span's context (same trace, that span as parent).
            let clients = try await collector.waitForSpans(count: 2) { $0.kind == 3 && $0.traceId == Self.traceId }
            #expect(Set(clients.map(\.name)) == ["ERP listBudgetLines", "ERP listPurchaseOrders"])
            for span in clients {
                #expect(span.parentSpanId == server.spanId)
                #expect(span.attributes["http.response.status_code"] == "200")
                #expect(span.attributes["peer.service"] == "ERP")
                #expect(span.attributes["server.address"] == "127.0.0.1")
            }
            let received = erp.requests()
            #expect(received.count == clients.count)
            for request in received {
                let parts = try #require(request.traceparent?.split(separator: "-").map(String.init), "\(request.target) had no traceparent")
                #expect(parts.count == 4 && parts[0] == "00" && parts[3] == "01")
                #expect(parts[1] == Self.traceId)
                #expect(clients.contains { $0.spanId == parts[2] }, "the ERP's parent is the client span")
            }

            // A request without a traceparent starts a trace of its own.
            let health = try await HTTPClient.shared.execute(HTTPClientRequest(url: base + "/healthz"), timeout: .seconds(5))
            #expect(health.status == .ok)
            let root = try await collector.waitForSpan { $0.attributes["http.route"] == "/healthz" }
            #expect(root.parentSpanId == nil && root.traceId != Self.traceId && root.traceId.count == 32)
            #expect(root.attributes["http.response.status_code"] == "200")

            // A route outside the contract is named after its method and route.
            var metrics = HTTPClientRequest(url: base + "/metrics")
            metrics.headers.add(name: "Authorization", value: "Bearer " + SitrepHarness.metricsToken)
            _ = try await HTTPClient.shared.execute(metrics, timeout: .seconds(5))
            let scrape = try await collector.waitForSpan { $0.attributes["http.route"] == "/metrics" }
            #expect(scrape.name == "GET /metrics")
        }
    }

    /// A token signed under a key the API has not seen makes it fetch the issuer's JWKS inside
    /// the request: that fetch is a client span under the server span, and the issuer receives
    /// its context.
    @Test func jwksFetchesAreClientSpansThatCarryTheTrace() async throws {
        try await IssuerSession.run { session in
            let issuer = session.issuer
            try await withServe(otel: { collector in
                [
                    "OTEL_EXPORTER_OTLP_ENDPOINT": collector.baseURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                    "OTEL_BSP_SCHEDULE_DELAY": "100", "SITREP_OIDC_ISSUER": issuer.issuer,
                    "SITREP_OIDC_AUDIENCE": issuer.configuration.apiAudience, "SITREP_OIDC_TENANT_ID": issuer.configuration.tenantId,
                ]
            }) { base, _, _, collector, _ in
                // Started: the first key set was fetched outside any request.
                #expect(issuer.jwksTraceparents.count == 1)
                try issuer.rotateKey(privateKeyPEM: LocalIssuerFixtures.secondKey, keyId: "second")
                let token = try #require(try await session.signIn(user: "exec").json["access_token"] as? String)

                var request = HTTPClientRequest(url: base + "/v1/me")
                request.headers.add(name: "Authorization", value: "Bearer " + token)
                request.headers.add(name: "traceparent", value: Self.traceparent)
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                #expect(response.status == .ok)

                let server = try await collector.waitForSpan { $0.kind == 2 && $0.traceId == Self.traceId }
                let jwks = try await collector.waitForSpan { $0.name == "OIDC JWKS" && $0.traceId == Self.traceId }
                #expect(jwks.kind == 3 && jwks.parentSpanId == server.spanId)
                #expect(jwks.attributes["peer.service"] == "OIDC" && jwks.attributes["http.response.status_code"] == "200")
                let sent = issuer.jwksTraceparents
                #expect(sent.count == 2)
                #expect(sent.last == "00-\(Self.traceId)-\(jwks.spanId)-01", "\(sent)")
            }
        }
    }

    @Test func unknownRoutesAreTracedWithTheirStatus() async throws {
        try await withServe(otel: { collector in
            ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.baseURL + "/v1/traces", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"]
        }) { base, _, _, collector, stop in
            var request = HTTPClientRequest(url: base + "/v1/no-such-thing")
            request.headers.add(name: "traceparent", value: Self.traceparent)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            #expect(response.status == .notFound)
            // The default batch delay is 5 s: the span leaves when the server stops (flushed).
            stop()
            let span = try await collector.waitForSpan { $0.traceId == Self.traceId }
            #expect(span.name == "GET" && span.attributes["http.route"] == nil)
            #expect(span.serviceName == "sitrep")
            #expect(span.parentSpanId == Self.callerSpanId)
            #expect(span.attributes["http.response.status_code"] == "404")
        }
    }

    @Test func theWorkersProviderCallsAreClientSpansUnderTheirDelivery() async throws {
        let collector = try await CollectorStandIn.start(logger: Logger(label: "test.tracing"))
        do {
            try await DispatchTests().withDispatch { f in
                let briefing = try await DispatchTests().distribute(f, [DistributionTests.recipientJSON("Ahmed", phone: "+971500000001")])
                let log = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-tracing-worker-\(UUID()).log")
                let worker = try DispatchCrashTests.startWorker(
                    f, log: log,
                    extra: [
                        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.baseURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                        "OTEL_BSP_SCHEDULE_DELAY": "100",
                    ])
                defer {
                    worker.terminate()
                    worker.waitUntilExit()
                    try? FileManager.default.removeItem(at: log)
                }
                let send = try await collector.waitForSpan { $0.name == "Twilio POST" }
                #expect(send.kind == 3)  // SPAN_KIND_CLIENT
                #expect(send.attributes["peer.service"] == "Twilio")
                #expect(send.attributes["http.response.status_code"]?.hasPrefix("2") == true)
                #expect(send.attributes["url.path"]?.hasSuffix("/Messages.json") == true)
                let step = try await collector.waitForSpan { $0.spanId == send.parentSpanId }
                #expect(step.name == "dispatch delivery" && step.traceId == send.traceId && step.parentSpanId == nil)
                #expect(step.attributes["sitrep.delivery_id"]?.isEmpty == false)
                #expect(step.serviceName == "sitrep")
                _ = briefing
            }
        } catch {
            await collector.shutdown()
            throw error
        }
        await collector.shutdown()
    }

    @Test(arguments: [
        ["OTEL_SDK_DISABLED": "true"], ["OTEL_TRACES_EXPORTER": "none"], [:],
    ])
    func nothingIsExportedOrPropagatedUnlessConfigured(_ switches: [String: String]) async throws {
        try await withServe(otel: { collector in
            // An endpoint only where a switch turns tracing off again; with no variables at all,
            // swift-otel's default (OTLP to localhost:4318) must not be used either.
            switches.isEmpty
                ? ["OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_BSP_SCHEDULE_DELAY": "100"]
                : switches.merging([
                    "OTEL_EXPORTER_OTLP_ENDPOINT": collector.baseURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                    "OTEL_BSP_SCHEDULE_DELAY": "100",
                ]) { a, _ in a }
        }) { base, h, erp, collector, stop in
            let response = try await Self.budgetSummary(base, token: h.tokens.executiveMFA, traceparent: Self.traceparent)
            #expect(response.status == .ok)
            #expect(response.headers["traceparent"].isEmpty && response.headers["tracestate"].isEmpty)
            #expect(!erp.requests().isEmpty)
            #expect(erp.requests().allSatisfy { $0.traceparent == nil }, "no trace context leaves an untraced instance")
            try await Task.sleep(for: .milliseconds(500))
            stop()
            #expect(collector.exports == 0)
        }
    }
}

/// A span as an OpenTelemetry collector received it (OTLP/JSON), ids in lowercase hex.
struct ExportedSpan: Sendable {
    var traceId: String
    var spanId: String
    var parentSpanId: String?
    var name: String
    var kind: Int
    var serviceName: String?
    /// Every attribute's value as text.
    var attributes: [String: String]
}

/// A stand-in for an OpenTelemetry collector on loopback: takes OTLP/HTTP JSON exports at
/// `POST /v1/traces` and keeps their spans.
final class CollectorStandIn: Sendable {
    let baseURL: String
    private let server: Task<Void, any Error>
    private let state: Mutex<(exports: Int, spans: [ExportedSpan])>

    private init(baseURL: String, server: Task<Void, any Error>) {
        self.baseURL = baseURL
        self.server = server
        self.state = Mutex((0, []))
    }

    var exports: Int { state.withLock { $0.exports } }
    var spans: [ExportedSpan] { state.withLock { $0.spans } }

    static func start(logger: Logger) async throws -> CollectorStandIn {
        let box = Box()
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 << 20)
            let spans = Self.parse(Data(body.readableBytesView))
            box.collector?.state.withLock {
                $0.exports += 1
                $0.spans += spans
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: "{}")))
        }
        let started = try await LocalServer.start(router: router, host: "127.0.0.1", port: 0, logger: logger)
        let collector = CollectorStandIn(baseURL: started.baseURL, server: started.server)
        box.collector = collector
        return collector
    }

    /// Lets the route reach the collector made after the server started.
    private final class Box: Sendable {
        private let value = Mutex<CollectorStandIn?>(nil)
        var collector: CollectorStandIn? {
            get { value.withLock { $0 } }
            set { value.withLock { $0 = newValue } }
        }
    }

    func shutdown() async {
        server.cancel()
        _ = await server.result
    }

    /// The first span matching `match`, waiting up to 10 s for it to be exported.
    func waitForSpan(_ match: (ExportedSpan) -> Bool) async throws -> ExportedSpan {
        try await waitForSpans(count: 1, match)[0]
    }

    /// At least `count` spans matching `match`, waiting up to 10 s.
    func waitForSpans(count: Int, _ match: (ExportedSpan) -> Bool) async throws -> [ExportedSpan] {
        for _ in 0..<200 {
            let found = spans.filter(match)
            if found.count >= count { return found }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ContractViolation("the collector did not receive \(count) matching span(s); it has: \(spans.map(\.name))")
    }

    /// The spans of an `ExportTraceServiceRequest` in OTLP/JSON.
    static func parse(_ data: Data) -> [ExportedSpan] {
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [] }
        var out: [ExportedSpan] = []
        for resourceSpans in root["resourceSpans"] as? [[String: Any]] ?? [] {
            let resource = attributes((resourceSpans["resource"] as? [String: Any])?["attributes"])
            for scopeSpans in resourceSpans["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in scopeSpans["spans"] as? [[String: Any]] ?? [] {
                    out.append(
                        ExportedSpan(
                            traceId: hex(span["traceId"] as? String) ?? "", spanId: hex(span["spanId"] as? String) ?? "",
                            parentSpanId: hex(span["parentSpanId"] as? String), name: span["name"] as? String ?? "",
                            kind: (span["kind"] as? NSNumber)?.intValue ?? 0, serviceName: resource["service.name"],
                            attributes: attributes(span["attributes"])))
                }
            }
        }
        return out
    }

    static func attributes(_ list: Any?) -> [String: String] {
        var out: [String: String] = [:]
        for item in list as? [[String: Any]] ?? [] {
            guard let key = item["key"] as? String, let value = item["value"] as? [String: Any], let first = value.first else { continue }
            out[key] = "\(first.value)"
        }
        return out
    }

    /// An id as lowercase hex: OTLP/JSON asks for hex, protobuf's JSON mapping writes base64.
    static func hex(_ text: String?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        if (text.count == 32 || text.count == 16) && text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        guard let bytes = Data(base64Encoded: text) else { return text }
        if bytes.allSatisfy({ $0 == 0 }) { return nil }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}

/// What this build cannot export to is refused at start, naming the variable.
@Suite("OpenTelemetry configuration")
struct TracingConfigurationTests {
    @Test(arguments: [
        (
            ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"],
            "sitrep: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported: use http/protobuf or http/json (OTLP/gRPC is not built in)"
        ),
        (
            ["OTEL_TRACES_EXPORTER": "zipkin"],
            "sitrep: OTEL_TRACES_EXPORTER=zipkin is not supported: use otlp (or none to turn tracing off)"
        ),
    ])
    func unsupportedExportersAreAConfigurationError(_ otel: [String: String], _ message: String) async throws {
        for command in ["serve", "worker"] {
            let (status, out, err) = try await CommandLineTests().run(
                [command],
                env: [
                    "SITREP_DATABASE_URL": "postgres://u@db/sitrep", "SITREP_REDIS_URL": "redis://cache:6379",
                    "SITREP_SENDGRID_API_KEY": "SG.key", "SITREP_SENDGRID_FROM": "briefings@sitrep.example",
                ].merging(otel) { _, b in b })
            #expect(status == 2, "\(command): \(err)")
            #expect(out.isEmpty)
            #expect(err.split(separator: "\n").map(String.init) == [message], "\(command)")
        }
    }
}
