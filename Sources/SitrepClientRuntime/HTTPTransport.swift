import AsyncHTTPClient
import Foundation
import HTTPTracing
import Logging
import NIOCore
import NIOHTTP1

/// When and how often ``HTTPTransport`` tries a call again.
///
/// Only idempotent calls (GET, HEAD, PUT, DELETE, OPTIONS) are retried, and only after a failure
/// that may pass: a connection error, a timeout, 429 or 5xx. The wait before retry `n` (1-based)
/// is "full jitter": a random duration between zero and `min(maxDelay, baseDelay × 2ⁿ⁻¹)`, unless
/// the service sent `Retry-After`, which is honoured as given (up to ``maxRetryAfter``; a longer
/// one ends the call at once).
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included (1: never retry).
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// The longest `Retry-After` waited for.
    public var maxRetryAfter: Duration
    /// No retry starts when its wait would end more than this after the call began (nil: no limit).
    public var totalTimeout: Duration?

    public init(
        maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(200), maxDelay: Duration = .seconds(5),
        maxRetryAfter: Duration = .seconds(30), totalTimeout: Duration? = .seconds(60)
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
        self.totalTimeout = totalTimeout
    }

    /// Never retry.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The full-jitter wait before retry `retry` (1-based), `random` in `0..<1`.
    public func backoff(retry: Int, random: Double) -> Duration {
        let exponent = min(max(retry - 1, 0), 30)
        let ceiling = min(maxDelay, baseDelay * Double(1 << exponent))
        return ceiling * min(max(random, 0), 1)
    }
}

/// The transport generated clients call over HTTP (async-http-client): bearer authentication,
/// connect and per-request timeouts, retries with exponential backoff and full jitter
/// (``RetryPolicy``), and a ``CircuitBreaker``. Every failure is an ``APIClientError``; a call
/// never hangs past its timeouts (the request timeout covers the whole answer, body included).
///
/// Each HTTP attempt counts for the breaker: a connection error, a timeout, 429 or 5xx is a
/// failure; any other answer (even a 4xx or one that breaks the contract) proves the service up.
public final class HTTPTransport: APITransport {
    public struct Configuration: Sendable {
        /// The service's name, e.g. `ERP` (errors, logs, problems).
        public var service: String
        /// E.g. `https://erp.example.gov/api`; the contract's paths are appended to it.
        public var baseURL: String
        /// Sent as `Authorization: Bearer <token>` when set.
        public var bearerToken: String?
        /// The longest a new connection may take (TCP and TLS). Applies when the transport makes
        /// its own `HTTPClient`; a shared one keeps its own setting.
        public var connectTimeout: Duration
        /// The longest one attempt may take, from sending the request to the last byte of the answer.
        public var requestTimeout: Duration
        public var retry: RetryPolicy
        public var breaker: CircuitBreaker.Configuration
        /// The largest answer read (a larger one is a contract violation).
        public var maximumResponseBytes: Int
        public var userAgent: String

        public init(
            service: String, baseURL: String, bearerToken: String? = nil, connectTimeout: Duration = .seconds(3),
            requestTimeout: Duration = .seconds(10), retry: RetryPolicy = RetryPolicy(),
            breaker: CircuitBreaker.Configuration = CircuitBreaker.Configuration(), maximumResponseBytes: Int = 8 << 20,
            userAgent: String = "sitrep"
        ) {
            self.service = service
            self.baseURL = baseURL
            self.bearerToken = bearerToken
            self.connectTimeout = connectTimeout
            self.requestTimeout = requestTimeout
            self.retry = retry
            self.breaker = breaker
            self.maximumResponseBytes = maximumResponseBytes
            self.userAgent = userAgent
        }
    }

    public let configuration: Configuration
    public let breaker: CircuitBreaker
    public var service: String { configuration.service }
    let client: HTTPClient
    let ownsClient: Bool
    let clock: any ClientClock
    let random: @Sendable () -> Double
    let logger: Logger

    /// A transport with its own `HTTPClient` (connect timeout from the configuration, redirects
    /// not followed); call ``shutdown()`` when done. `clock` and `random` drive the waits (backoff,
    /// `Retry-After`, the breaker's cool-down) and can be replaced in tests; `breaker` defaults to
    /// a new one from the configuration (pass one to share it between transports).
    public convenience init(
        configuration: Configuration, clock: any ClientClock = SystemClientClock(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }, breaker: CircuitBreaker? = nil,
        logger: Logger = Logger(label: "sitrep.client")
    ) {
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: Self.httpClientConfiguration(connectTimeout: configuration.connectTimeout))
        self.init(
            configuration: configuration, httpClient: client, ownsClient: true, clock: clock, random: random, breaker: breaker, logger: logger)
    }

    /// A transport over a shared `HTTPClient` the caller owns (and shuts down); its connect
    /// timeout applies.
    public convenience init(
        configuration: Configuration, httpClient: HTTPClient, clock: any ClientClock = SystemClientClock(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }, breaker: CircuitBreaker? = nil,
        logger: Logger = Logger(label: "sitrep.client")
    ) {
        self.init(
            configuration: configuration, httpClient: httpClient, ownsClient: false, clock: clock, random: random, breaker: breaker,
            logger: logger)
    }

    private init(
        configuration: Configuration, httpClient: HTTPClient, ownsClient: Bool, clock: any ClientClock, random: @escaping @Sendable () -> Double,
        breaker: CircuitBreaker?, logger: Logger
    ) {
        self.configuration = configuration
        self.client = httpClient
        self.ownsClient = ownsClient
        self.clock = clock
        self.random = random
        self.logger = logger
        self.breaker = breaker ?? CircuitBreaker(name: configuration.service, configuration: configuration.breaker, clock: clock, logger: logger)
    }

    /// An `HTTPClient` configuration for calling a contract's service: the connect timeout, no
    /// redirects (a redirect would carry the bearer token elsewhere; it is an undocumented status),
    /// and none of the client's own spans (``send(_:)`` makes one per attempt).
    public static func httpClientConfiguration(connectTimeout: Duration) -> HTTPClient.Configuration {
        ClientSpans.withoutClientOwnSpans(
            HTTPClient.Configuration(
                redirectConfiguration: .disallow, timeout: HTTPClient.Configuration.Timeout(connect: TimeAmount(connectTimeout))))
    }

    /// Shuts the `HTTPClient` down if the transport made it. Safe to call more than once.
    public func shutdown() async {
        guard ownsClient else { return }
        try? await client.shutdown()
    }

    // MARK: Calls

    /// What one attempt came to.
    enum Outcome: Sendable {
        case answer(ClientResponse)
        case failed(APIClientError.Failure, retryable: Bool)
    }

    public func execute(_ request: ClientRequest) async throws(APIClientError) -> ClientResponse {
        let policy = configuration.retry
        let idempotent = request.method.isIdempotent
        let started = clock.now()
        var attempt = 0
        while true {
            let permit: CircuitBreaker.Permit
            do {
                permit = try breaker.acquire()
            } catch {
                throw APIClientError(
                    service: service, operation: request.operation, failure: .unavailable(.circuitOpen(retryAfter: error.retryAfter)),
                    attempts: attempt)
            }
            attempt += 1
            let outcome = await send(request)

            // the breaker's verdict, and what to do next
            let failure: APIClientError.Failure
            var retryable = false
            var retryAfter: Duration?
            switch outcome {
            case .answer(let response) where response.status == 429 || (500..<600).contains(response.status):
                breaker.recordFailure(permit)
                retryable = true
                retryAfter = Self.retryAfter(response)
                failure =
                    response.status == 429
                    ? .unavailable(.rateLimited(retryAfter: retryAfter))
                    : .unavailable(.status(response.status, problem: RemoteProblem(body: response.body)))
            case .answer(var response):
                breaker.recordSuccess(permit)
                response.attempts = attempt
                return response
            case .failed(.unavailable(.cancelled), _):
                breaker.release(permit)
                throw APIClientError(service: service, operation: request.operation, failure: .unavailable(.cancelled), attempts: attempt)
            case .failed(let f, let canRetry):
                if case .contractViolation = f { breaker.recordSuccess(permit) } else { breaker.recordFailure(permit) }
                failure = f
                retryable = canRetry
            }
            let error = APIClientError(service: service, operation: request.operation, failure: failure, attempts: attempt)
            guard retryable, idempotent, attempt < policy.maxAttempts else { throw error }

            let wait: Duration
            if let retryAfter {
                guard retryAfter <= policy.maxRetryAfter else {
                    logger.debug("not retrying: Retry-After is too long", metadata: metadata(request, attempt, error))
                    throw error
                }
                wait = retryAfter
            } else {
                wait = policy.backoff(retry: attempt, random: random())
            }
            if let total = policy.totalTimeout, clock.now() - started + wait > total {
                logger.debug("not retrying: the call's total timeout would pass", metadata: metadata(request, attempt, error))
                throw error
            }
            var meta = metadata(request, attempt, error)
            meta["wait"] = "\(wait)"
            logger.debug("retrying", metadata: meta)
            do {
                try await clock.sleep(for: wait)
            } catch {
                throw APIClientError(service: service, operation: request.operation, failure: .unavailable(.cancelled), attempts: attempt)
            }
        }
    }

    func metadata(_ request: ClientRequest, _ attempt: Int, _ error: APIClientError) -> Logger.Metadata {
        ["service": "\(service)", "operation": "\(request.operation)", "attempt": "\(attempt)", "cause": "\(error.cause)"]
    }

    /// One HTTP attempt, bounded by the request timeout from start to the end of the body.
    func send(_ request: ClientRequest) async -> Outcome {
        var base = configuration.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        var http = HTTPClientRequest(url: base + request.target)
        http.method = HTTPMethod(rawValue: request.method.rawValue)
        http.headers.add(name: "Accept", value: "application/json, application/problem+json")
        http.headers.add(name: "User-Agent", value: configuration.userAgent)
        if let token = configuration.bearerToken { http.headers.add(name: "Authorization", value: "Bearer " + token) }
        for (name, value) in request.headers { http.headers.add(name: name, value: value) }
        if let body = request.jsonBody {
            http.headers.add(name: "Content-Type", value: "application/json")
            http.body = .bytes(ByteBuffer(bytes: body))
        }
        let timeout = configuration.requestTimeout
        let limit = configuration.maximumResponseBytes
        let client = self.client
        let logger = self.logger
        let httpRequest = http
        let service = self.service
        let spanName = service + " " + request.operation
        do {
            let answer: ClientResponse? = try await withThrowingTaskGroup(of: ClientResponse?.self) { group in
                group.addTask {
                    try await ClientSpans.withClientSpan(spanName, service: service, request: httpRequest) {
                        httpRequest, span in
                        let response = try await client.execute(httpRequest, timeout: TimeAmount(timeout), logger: logger)
                        span.status(Int(response.status.code))
                        let body = try await response.body.collect(upTo: limit)
                        return ClientResponse(
                            status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
                            body: Array(body.readableBytesView))
                    }
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next() ?? nil
            }
            guard let answer else { return .failed(.timeout(.response, after: timeout), retryable: true) }
            return .answer(answer)
        } catch {
            return outcome(of: error)
        }
    }

    /// A failure before a complete answer arrived, as an outcome (never a raw NIO error).
    func outcome(of error: any Error) -> Outcome {
        if Task.isCancelled { return .failed(.unavailable(.cancelled), retryable: false) }
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return .failed(.timeout(.response, after: configuration.requestTimeout), retryable: true)
            case .connectTimeout, .tlsHandshakeTimeout, .socksHandshakeTimeout, .httpProxyHandshakeTimeout, .getConnectionFromPoolTimeout:
                return .failed(.timeout(.connect, after: configuration.connectTimeout), retryable: true)
            case .invalidURL, .emptyHost, .emptyScheme, .alreadyShutdown:
                return .failed(.unavailable(.connection("the request could not be made: \(redacted(error))")), retryable: false)
            default:
                return .failed(.unavailable(.connection(redacted(error))), retryable: true)
            }
        }
        if error is NIOTooManyBytesError {
            return .failed(
                .contractViolation(status: 200, errors: [.init(pointer: "", message: "is larger than \(configuration.maximumResponseBytes) bytes")]),
                retryable: false)
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return .failed(.unavailable(.connection("connection refused")), retryable: true)
            case ECONNRESET: return .failed(.unavailable(.connection("connection reset")), retryable: true)
            case ENETUNREACH, EHOSTUNREACH: return .failed(.unavailable(.connection("host unreachable")), retryable: true)
            default: break
            }
        }
        return .failed(.unavailable(.connection(redacted(error))), retryable: true)
    }

    /// The error's text with the bearer token (should any library quote it) replaced by `***`.
    func redacted(_ error: any Error) -> String {
        var text = String(describing: error)
        if let token = configuration.bearerToken, !token.isEmpty { text = text.replacingOccurrences(of: token, with: "***") }
        return text
    }

    /// `Retry-After` in seconds or as an HTTP date; nil when absent or unreadable.
    public static func retryAfter(_ response: ClientResponse, now: Date = Date()) -> Duration? {
        guard let value = response.header("Retry-After")?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value) { return .seconds(max(0, seconds)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .seconds(max(0, Int(date.timeIntervalSince(now).rounded(.up))))
    }
}
