import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Prometheus
import SitrepRuntime
import Testing

/// The per-request metrics `APIMetrics` keeps itself (answers, latency histogram, in flight) and
/// renders at scrape time, in the text format the Prometheus library writes.
@Suite("runtime metrics")
struct MetricsTests {
    static let op = OperationInfo(
        id: "measureThing", tag: "Test", method: .get, path: "/measured", security: [], roles: [], mfa: false, idempotency: false,
        rateLimit: nil, statuses: [404, 200], requestContentTypes: [], bodyRequired: false, planned: false)

    /// A server whose one route answers the status in `?status=` (after `?sleep=` ms).
    func app(_ metrics: APIMetrics) -> some ApplicationProtocol {
        var configured = APIRuntime(authenticator: nil)
        configured.metrics = metrics
        let runtime = configured
        metrics.register([Self.op])
        let router = Router.sitrep()
        router.get("/measured") { request, context in
            await runtime.serve(Self.op, request: request, context: context) { parts, _ in
                func value(_ name: String) -> Int? { parts.query.first { $0.0 == name }.flatMap { Int($0.1) } }
                if let ms = value("sleep") { try await Task.sleep(for: .milliseconds(ms)) }
                return EncodedResponse(status: value("status") ?? 200)
            }
        }
        return Application(router: router)
    }

    /// The value of the one sample line that starts with `prefix` (`name{labels} `).
    func sample(_ text: String, _ prefix: String) -> Double? {
        let lines = text.split(separator: "\n").filter { $0.hasPrefix(prefix) }
        guard lines.count == 1, let value = lines[0].split(separator: " ").last else { return nil }
        return Double(value)
    }

    @Test func answersLatenciesAndInFlightAreCountedAndRendered() async throws {
        let metrics = APIMetrics()
        try await app(metrics).test(.router) { client in
            for query in ["status=200", "status=404", "status=500", "status=200&sleep=12"] {
                _ = try await client.execute(uri: "/measured?" + query, method: .get)
            }
        }
        let text = String(decoding: await metrics.scrape(), as: UTF8.self)
        let answers = "sitrep_http_requests_total{operation=\"measureThing\","
        #expect(sample(text, answers + "status=\"200\"} ") == 2, "\(text)")
        #expect(sample(text, answers + "status=\"404\"} ") == 1)
        // A status the operation does not document is counted as `other`.
        #expect(sample(text, answers + "status=\"other\"} ") == 1)

        let histogram = "sitrep_http_request_duration_seconds"
        let labels = "{operation=\"measureThing\""
        #expect(sample(text, histogram + "_count" + labels + "} ") == 4)
        #expect(sample(text, histogram + "_bucket" + labels + ",le=\"+Inf\"} ") == 4)
        // The request that slept 12 ms is not within 10 ms (nor any faster bucket), and its time is in the sum.
        let within10ms = try #require(sample(text, histogram + "_bucket" + labels + ",le=\"0.01\"} "))
        #expect(within10ms <= 3)
        #expect((sample(text, histogram + "_sum" + labels + "} ") ?? 0) >= 0.012)
        // Buckets are cumulative, and their bounds are written as the Prometheus library writes them.
        let buckets = text.split(separator: "\n").filter { $0.hasPrefix(histogram + "_bucket" + labels) }
        let counts = buckets.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        #expect(counts.count == 14 && counts == counts.sorted(), "\(buckets)")
        let reference = PrometheusCollectorRegistry()
        let bounds: [Duration] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        _ = reference.makeDurationHistogram(name: histogram, labels: [("operation", "measureThing")], buckets: bounds)
        let expected = reference.emitToString().split(separator: "\n").filter { $0.hasPrefix(histogram + "_bucket") }
        #expect(buckets.map { $0.split(separator: " ").first } == expected.map { $0.split(separator: " ").first })

        #expect(sample(text, "sitrep_http_requests_in_flight ") == 0)
        // One HELP and one TYPE line per family.
        for family in ["sitrep_http_requests_total", histogram, "sitrep_http_requests_in_flight"] {
            #expect(text.components(separatedBy: "# TYPE \(family) ").count == 2, "\(family)")
            #expect(text.components(separatedBy: "# HELP \(family) ").count == 2, "\(family)")
        }
    }

    @Test func aRequestBeingHandledIsInFlight() async throws {
        let metrics = APIMetrics()
        try await app(metrics).test(.router) { client in
            async let slow = client.execute(uri: "/measured?sleep=400", method: .get)
            var seen: Double?
            for _ in 0..<100 where seen != 1 {
                try await Task.sleep(for: .milliseconds(5))
                seen = sample(String(decoding: await metrics.scrape(), as: UTF8.self), "sitrep_http_requests_in_flight ")
            }
            #expect(seen == 1)
            _ = try await slow
        }
        #expect(sample(String(decoding: await metrics.scrape(), as: UTF8.self), "sitrep_http_requests_in_flight ") == 0)
    }

    /// An operation registered with a second `APIMetrics` (tests, a second server in one process)
    /// is counted in the one that measured the request, not in the first one it was registered with.
    @Test func aSecondRegistryCountsItsOwnRequests() async throws {
        let first = APIMetrics()
        let second = APIMetrics()
        first.register([Self.op])
        try await app(second).test(.router) { client in
            _ = try await client.execute(uri: "/measured", method: .get)
        }
        let prefix = "sitrep_http_requests_total{operation=\"measureThing\",status=\"200\"} "
        #expect(sample(String(decoding: await second.scrape(), as: UTF8.self), prefix) == 1)
        #expect(sample(String(decoding: await first.scrape(), as: UTF8.self), prefix) == 0)
    }
}
