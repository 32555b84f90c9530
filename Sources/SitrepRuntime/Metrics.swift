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
/// The three per-request metrics are kept here rather than in the Prometheus registry, and
/// rendered at scrape time: every request updates them, and here that is two or three relaxed
/// atomic additions, found without a lookup. The registry's histogram takes a lock and updates
/// every bucket, and its gauge a compare-and-swap loop, on each request, on objects every core
/// shares.
public final class APIMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// For `MetricsSystem.bootstrap`, so libraries' swift-metrics land in the same registry.
    public var factory: PrometheusMetricsFactory { PrometheusMetricsFactory(registry: registry) }

    /// Upper bounds of the latency buckets, in nanoseconds (`le` 1 ms … 10 s).
    static let bounds: InlineArray<13, Int> = [
        1_000_000, 2_000_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000, 250_000_000, 500_000_000,
        1_000_000_000, 2_500_000_000, 5_000_000_000, 10_000_000_000,
    ]
    /// Most documented statuses an operation may have (the spec's largest has 15).
    static let statusCapacity = 31

    /// One operation's counts. Latencies are counted per bucket (not cumulatively; the scrape
    /// adds them up), the last slot for answers slower than every bound.
    final class Operation: Sendable {
        /// ``APIMetrics/serial`` of the registry these belong to.
        let registry: UInt64
        let id: String
        /// The documented statuses, in the order of ``answers``' first slots.
        let statuses: [Int]
        let latencies: InlineArray<14, Atomic<Int>>
        let nanoseconds: Atomic<Int>
        /// Answers per documented status, then one slot for any other.
        let answers: InlineArray<32, Atomic<Int>>

        init(registry: UInt64, id: String, statuses: [Int]) {
            precondition(
                statuses.count <= APIMetrics.statusCapacity,
                "\(id) documents \(statuses.count) statuses; APIMetrics counts at most \(APIMetrics.statusCapacity) per operation")
            self.registry = registry
            self.id = id
            self.statuses = statuses
            latencies = InlineArray { _ in Atomic(0) }
            nanoseconds = Atomic(0)
            answers = InlineArray { _ in Atomic(0) }
        }

        func record(status: Int, nanoseconds elapsed: Int) {
            var bucket = 0
            while bucket < APIMetrics.bounds.count && elapsed > APIMetrics.bounds[bucket] { bucket += 1 }
            latencies[bucket].wrappingAdd(1, ordering: .relaxed)
            nanoseconds.wrappingAdd(elapsed, ordering: .relaxed)
            var slot = 0
            while slot < statuses.count && statuses[slot] != status { slot += 1 }
            answers[slot].wrappingAdd(1, ordering: .relaxed)
        }
    }

    /// Tells registries apart (an operation's ``OperationInfo/metrics`` names its registry by
    /// this, not by an address a later registry could reuse).
    private let serial = APIMetrics.serials.wrappingAdd(1, ordering: .relaxed).newValue
    private static let serials = Atomic<UInt64>(0)

    private let operations: Mutex<[String: Operation]> = Mutex([:])
    private let rejections: Mutex<[String: Counter]> = Mutex([:])
    let inFlight = Atomic<Int>(0)
    /// Set gauges that are read from elsewhere (queue depths…) just before each scrape.
    let beforeScrape: @Sendable () async -> Void

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), beforeScrape: @escaping @Sendable () async -> Void = {}) {
        self.registry = registry
        self.beforeScrape = beforeScrape
    }

    /// Makes the metric objects of `operations` (the generated router calls this once).
    public func register(_ ops: [OperationInfo]) {
        operations.withLock { known in
            for op in ops where known[op.id] == nil {
                let made = Operation(registry: serial, id: op.id, statuses: op.statuses.sorted())
                known[op.id] = made
                op.metrics.storeIfNil(made)
            }
        }
    }

    func record(_ op: OperationInfo, status: Int, nanoseconds: Int) {
        let m: Operation
        if let mine = op.metrics.load(), mine.registry == serial {
            m = mine
        } else {
            guard let known = operations.withLock({ $0[op.id] }) else { return }
            m = known
        }
        m.record(status: status, nanoseconds: nanoseconds)
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

    /// The exposition text, after ``beforeScrape``: the registry's metrics, then the
    /// per-request ones kept here.
    public func scrape() async -> [UInt8] {
        await beforeScrape()
        var out = registry.emitToBuffer()
        let ops = operations.withLock { $0.values.sorted { $0.id < $1.id } }
        Self.render(ops, inFlight: inFlight.load(ordering: .relaxed), into: &out)
        return out
    }

    static let durationName = "sitrep_http_request_duration_seconds"
    static let answersName = "sitrep_http_requests_total"
    static let inFlightName = "sitrep_http_requests_in_flight"

    /// The per-request metrics in the text exposition format, as the Prometheus library writes
    /// its own (one `# HELP` and `# TYPE` per family; cumulative `le` buckets, `+Inf`, `_sum` and
    /// `_count`; bounds and sums in seconds).
    static func render(_ ops: [Operation], inFlight: Int, into out: inout [UInt8]) {
        func line(_ s: String) { out.append(contentsOf: s.utf8) }
        line("# HELP \(answersName) Answers per operation and HTTP status.\n# TYPE \(answersName) counter\n")
        for op in ops {
            for (slot, status) in op.statuses.enumerated() {
                line("\(answersName){operation=\"\(op.id)\",status=\"\(status)\"} \(op.answers[slot].load(ordering: .relaxed))\n")
            }
            line("\(answersName){operation=\"\(op.id)\",status=\"other\"} \(op.answers[op.statuses.count].load(ordering: .relaxed))\n")
        }
        line("# HELP \(durationName) Time from the request's arrival to its answer, per operation.\n# TYPE \(durationName) histogram\n")
        for op in ops {
            var count = 0
            for bucket in 0..<bounds.count {
                count += op.latencies[bucket].load(ordering: .relaxed)
                let le = Duration.nanoseconds(bounds[bucket]).bucketRepresentation
                line("\(durationName)_bucket{operation=\"\(op.id)\",le=\"\(le)\"} \(count)\n")
            }
            count += op.latencies[bounds.count].load(ordering: .relaxed)
            line("\(durationName)_bucket{operation=\"\(op.id)\",le=\"+Inf\"} \(count)\n")
            let sum = Duration.nanoseconds(op.nanoseconds.load(ordering: .relaxed)).bucketRepresentation
            line("\(durationName)_sum{operation=\"\(op.id)\"} \(sum)\n")
            line("\(durationName)_count{operation=\"\(op.id)\"} \(count)\n")
        }
        line("# HELP \(inFlightName) Requests being handled now.\n# TYPE \(inFlightName) gauge\n\(inFlightName) \(inFlight)\n")
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

/// Monotonic time in nanoseconds (`CLOCK_MONOTONIC`), for timing requests. A plain integer: a
/// `ContinuousClock.Instant` kept across a suspension point was allocated on the task's heap
/// with a metadata lookup (its layout is not fixed), and subtracting `Duration`s and taking
/// their components was 128-bit arithmetic, about 400 instructions a request.
public enum Monotonic {
    /// Nanoseconds since an arbitrary origin (the machine's boot).
    public static var nanoseconds: Int {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return t.tv_sec &* 1_000_000_000 &+ t.tv_nsec
    }
}
