import ERPClient
import Hummingbird
import Logging
import SitrepRuntime
import Synchronization

/// A local stand-in for the organisation's ERP, serving api/erp.yaml's operations over seeded,
/// deterministic data (``ERPStandInConfiguration``), for development (`sitrep dev-erp`,
/// `Tools/run`) and tests:
///
/// - `GET /v1/cost-centres/{costCentre}/budget-lines?fiscalYear=&limit=&cursor=`
/// - `GET /v1/cost-centres/{costCentre}/purchase-orders?status=&limit=&cursor=`
///
/// with real keyset paging (opaque cursors tied to the filters), `Authorization: Bearer <apiKey>`
/// checked (`401`), cost centres outside the key's scope (`403`) or unknown (`404`), invalid
/// parameters (`400`), and RFC 9457 problems. Normal answers are encoded with the generated
/// `ERPClient` types, so they conform to the contract by construction.
///
/// Faults are switchable from tests (``inject(_:then:)``): a delay, an error status (503, 500,
/// 429 with `Retry-After`…), or drift (a member the contract lacks, a required member missing).
/// Faults apply to every request that reaches the stand-in, whatever its path and method, before
/// authentication. Plain HTTP, meant for loopback; production configuration must refuse it.
public final class ERPStandIn: Sendable {
    /// What the next request gets instead of (or on top of) the normal answer.
    public enum Fault: Sendable, Equatable {
        /// The normal answer.
        case none
        /// The normal answer, after waiting this long (for timeouts).
        case delay(Duration)
        /// A problem with this status (`503`, `500`, `429`…), with `Retry-After` in seconds when given.
        case status(Int, retryAfter: Int? = nil)
        /// The normal answer with this member added to its first item (to the page when it is
        /// empty): drift the contract does not allow (`additionalProperties: false`).
        case extraField(String)
        /// The normal answer without this member in its first item: a required member missing.
        case omitField(String)
    }

    /// One request the stand-in answered.
    public struct Received: Sendable, Equatable {
        public var method: String
        /// Path and query, as sent.
        public var target: String
        public var status: Int
        public var fault: Fault
        /// The W3C `traceparent` header it carried, if any (the caller's trace context).
        public var traceparent: String? = nil
    }

    public let configuration: ERPStandInConfiguration
    /// The port it listens on (the one bound when started with port 0).
    public let port: Int
    /// `http://<host>:<port>`: the ERP's base URL.
    public let baseURL: String

    let core: ERPStandInCore
    private let server: Task<Void, any Error>

    private init(configuration: ERPStandInConfiguration, port: Int, baseURL: String, core: ERPStandInCore, server: Task<Void, any Error>) {
        self.configuration = configuration
        self.port = port
        self.baseURL = baseURL
        self.core = core
        self.server = server
    }

    /// Starts a stand-in on `host`:`port` (0 picks a free port) and returns once it accepts
    /// connections. Throws `LocalServer.StartFailure` when the address cannot be bound. Call
    /// ``shutdown()`` when done.
    public static func start(
        configuration: ERPStandInConfiguration = ERPStandInConfiguration(), host: String = "127.0.0.1", port: Int = 0,
        logger: Logger
    ) async throws -> ERPStandIn {
        let core = ERPStandInCore(configuration: configuration)
        let router = Router()
        core.addRoutes(to: router)
        let started = try await LocalServer.start(router: router, host: host, port: port, logger: logger)
        let standIn = ERPStandIn(configuration: configuration, port: started.port, baseURL: started.baseURL, core: core, server: started.server)
        logger.info("ERP stand-in listening", metadata: ["baseURL": "\(standIn.baseURL)"])
        return standIn
    }

    /// Stops listening and waits for it. Safe to call more than once.
    public func shutdown() async {
        server.cancel()
        _ = await server.result
    }

    /// Settings under which an ``HTTPTransport`` talks to this stand-in (for ``ERPClient``).
    public func transportConfiguration(
        connectTimeout: Duration = .seconds(2), requestTimeout: Duration = .seconds(5), retry: RetryPolicy = RetryPolicy(),
        breaker: CircuitBreaker.Configuration = CircuitBreaker.Configuration()
    ) -> HTTPTransport.Configuration {
        HTTPTransport.Configuration(
            service: "ERP", baseURL: baseURL, bearerToken: configuration.apiKey, connectTimeout: connectTimeout,
            requestTimeout: requestTimeout, retry: retry, breaker: breaker)
    }

    // MARK: Faults (thread-safe, effective for the next request)

    /// The next requests get `faults`, one each, in order; after that every request gets `then`.
    public func inject(_ faults: [Fault], then: Fault = .none) {
        core.state.withLock {
            $0.faults = faults
            $0.steady = then
        }
    }

    /// The next `count` requests answer `status` (a problem; `Retry-After` when given).
    public func failNext(_ count: Int, status: Int = 503, retryAfter: Int? = nil) {
        inject(Array(repeating: .status(status, retryAfter: retryAfter), count: count))
    }

    /// Every request from now on waits `delay` before its normal answer.
    public func delayAll(_ delay: Duration) {
        inject([], then: .delay(delay))
    }

    /// Back to normal answers.
    public func clearFaults() {
        inject([], then: .none)
    }

    // MARK: What it received and serves

    /// Every request answered, oldest first.
    public func requests() -> [Received] { core.state.withLock { $0.requests } }

    /// How many requests it answered.
    public var requestCount: Int { core.state.withLock { $0.requests.count } }

    /// Forgets the requests received.
    public func clearRequests() {
        core.state.withLock { $0.requests.removeAll() }
    }

    /// Every budget line of `costCentre` in `fiscalYear`, in id order (what paging must yield).
    public func budgetLines(costCentre: String, fiscalYear: Int) -> [BudgetLine] {
        core.data.budgetLines[costCentre]?[fiscalYear] ?? []
    }

    /// The purchase orders of `costCentre` (only those in `status` when given), in id order.
    public func purchaseOrders(costCentre: String, status: PurchaseOrderStatus? = nil) -> [PurchaseOrder] {
        (core.data.purchaseOrders[costCentre] ?? []).filter { status == nil || $0.status == status }
    }
}
