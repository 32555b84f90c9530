import Foundation
import HTTPTypes
import Hummingbird
import Prometheus
import Synchronization

/// Prometheus metrics of the API, served at `/metrics` (text exposition format 0.0.4).
///
/// - `sitrep_http_requests_total{operation, status}`: answers per operation and HTTP status.
/// - `sitrep_http_request_duration_seconds{operation}`: latency histogram per operation.
/// - `sitrep_http_requests_in_flight`: requests being handled now.
/// - `sitrep_rate_limit_rejections_total{policy}`: 429s per rate-limit policy.
/// - anything registered through swift-metrics (`MetricsSystem.bootstrap` with
///   ``factory``), and gauges the server sets before each scrape (``beforeScrape``).
///
/// Every per-request metric object is made once, when the operations are registered, so a
/// request costs a few atomic additions and no lookup by label.
public final class APIMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// For `MetricsSystem.bootstrap`, so libraries' swift-metrics land in the same registry.
    public var factory: PrometheusMetricsFactory { PrometheusMetricsFactory(registry: registry) }

    final class Operation: Sendable {
        /// ``APIMetrics/serial`` of the registry these belong to.
        let registry: UInt64
        let duration: DurationHistogram
        /// One counter per documented status (an undocumented one cannot be answered).
        let statuses: [(Int, Counter)]
        let other: Counter
        init(registry: UInt64, duration: DurationHistogram, statuses: [(Int, Counter)], other: Counter) {
            self.registry = registry
            self.duration = duration
            self.statuses = statuses
            self.other = other
        }
    }

    /// Tells registries apart (an operation's ``OperationInfo/metrics`` names its registry by
    /// this, not by an address a later registry could reuse).
    private let serial = APIMetrics.serials.wrappingAdd(1, ordering: .relaxed).newValue
    private static let serials = Atomic<UInt64>(0)

    private let operations: Mutex<[String: Operation]> = Mutex([:])
    private let rejections: Mutex<[String: Counter]> = Mutex([:])
    let inFlight: Gauge
    /// Set gauges that are read from elsewhere (queue depths…) just before each scrape.
    let beforeScrape: @Sendable () async -> Void

    static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), beforeScrape: @escaping @Sendable () async -> Void = {}) {
        self.registry = registry
        self.beforeScrape = beforeScrape
        inFlight = registry.makeGauge(name: "sitrep_http_requests_in_flight", help: "Requests being handled now.")
    }

    /// Makes the metric objects of `operations` (the generated router calls this once).
    public func register(_ ops: [OperationInfo]) {
        operations.withLock { known in
            for op in ops where known[op.id] == nil {
                let labels = [("operation", op.id)]
                let made = Operation(
                    registry: serial,
                    duration: registry.makeDurationHistogram(
                        name: "sitrep_http_request_duration_seconds", labels: labels, buckets: Self.buckets,
                        help: "Time from the request's arrival to its answer, per operation."),
                    statuses: op.statuses.map { status in
                        (
                            status,
                            registry.makeCounter(
                                name: "sitrep_http_requests_total", labels: labels + [("status", String(status))],
                                help: "Answers per operation and HTTP status.")
                        )
                    },
                    other: registry.makeCounter(
                        name: "sitrep_http_requests_total", labels: labels + [("status", "other")], help: "Answers per operation and HTTP status."
                    ))
                known[op.id] = made
                op.metrics.storeIfNil(made)
            }
        }
    }

    func record(_ op: OperationInfo, status: Int, duration: Duration) {
        let m: Operation
        if let mine = op.metrics.load(), mine.registry == serial {
            m = mine
        } else {
            guard let known = operations.withLock({ $0[op.id] }) else { return }
            m = known
        }
        m.duration.record(duration)
        (m.statuses.first { $0.0 == status }?.1 ?? m.other).increment()
    }

    func rejected(policy: String) {
        let counter = rejections.withLock { known in
            if let c = known[policy] { return c }
            let c = registry.makeCounter(
                name: "sitrep_rate_limit_rejections_total", labels: [("policy", policy)], help: "Requests refused with 429, per policy.")
            known[policy] = c
            return c
        }
        counter.increment()
    }

    /// The exposition text, after ``beforeScrape``.
    public func scrape() async -> [UInt8] {
        await beforeScrape()
        return registry.emitToBuffer()
    }
}

extension Router where Context == SitrepRequestContext {
    /// `GET /metrics`. With `token`, only `Authorization: Bearer <token>` may read it (the
    /// metrics name every operation and its traffic); without, anyone who reaches the port may.
    public func registerMetrics(_ metrics: APIMetrics, token: String?) {
        get("/metrics") { request, _ -> Response in
            if let token {
                let given = request.headers[.authorization] ?? ""
                guard constantTimeEqual(given, "Bearer " + token) else {
                    return Response(
                        status: .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"metrics\"", .contentType: "text/plain"],
                        body: .init(byteBuffer: ByteBuffer(string: "metrics need the scrape token\n")))
                }
            }
            let bytes = await metrics.scrape()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }
}

/// Monotonic time as a `Duration` since a process-wide origin, for timing requests. A `Duration`
/// has a fixed layout; `ContinuousClock.Instant` does not (the standard library may change it),
/// so each instant an async function keeps across a suspension point was allocated on the
/// task's heap, with a metadata lookup, on every request.
public enum Monotonic {
    private static let origin = ContinuousClock.now
    /// The time since the origin.
    public static var now: Duration { origin.duration(to: .now) }
}
