import ERPClient
import ERPStandIn
import Foundation
import Logging
import SitrepClientRuntime
import SitrepRuntime
import Testing

// MARK: - Fixtures

/// A stand-in ERP and a generated client pointing at it, with a manual clock (backoff, Retry-After
/// and the breaker's cool-down take no real time and are asserted exactly) and a fixed jitter of
/// one half.
struct ERPFixture {
    static let logger = Logger(label: "sitrep.erp.tests", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Retries with a 100 ms base: full jitter at 0.5 waits 50 ms, then 100 ms, then 200 ms.
    static let retry = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(100), maxDelay: .seconds(2))

    let standIn: ERPStandIn
    let clock: ManualClientClock
    let transport: HTTPTransport
    let client: ERPClient

    static func start(
        retry: RetryPolicy = ERPFixture.retry, breaker: CircuitBreaker.Configuration = .init(failureThreshold: 100),
        requestTimeout: Duration = .seconds(5), token: String? = nil
    ) async throws -> ERPFixture {
        let standIn = try await ERPStandIn.start(logger: logger)
        let clock = ManualClientClock()
        var configuration = standIn.transportConfiguration(requestTimeout: requestTimeout, retry: retry, breaker: breaker)
        if let token { configuration.bearerToken = token }
        let transport = HTTPTransport(configuration: configuration, clock: clock, random: { 0.5 }, logger: logger)
        return ERPFixture(standIn: standIn, clock: clock, transport: transport, client: ERPClient(transport: transport))
    }

    func stop() async {
        await transport.shutdown()
        await standIn.shutdown()
    }
}

/// Runs `body` against a fresh stand-in and client, and stops both however it ends.
func withERP(
    retry: RetryPolicy = ERPFixture.retry, breaker: CircuitBreaker.Configuration = .init(failureThreshold: 100),
    requestTimeout: Duration = .seconds(5), token: String? = nil, _ body: (ERPFixture) async throws -> Void
) async throws {
    let erp = try await ERPFixture.start(retry: retry, breaker: breaker, requestTimeout: requestTimeout, token: token)
    do {
        try await body(erp)
    } catch {
        await erp.stop()
        throw error
    }
    await erp.stop()
}

/// The error `body` throws (recorded as a test issue when it does not throw).
func expectClientError<T>(_ body: () async throws(APIClientError) -> T, sourceLocation: SourceLocation = #_sourceLocation) async -> APIClientError? {
    do {
        _ = try await body()
        Issue.record("expected an APIClientError", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// A transport answering one canned response, to feed the generated decoding any body.
struct CannedTransport: APITransport {
    var service = "ERP"
    var response: ClientResponse
    func execute(_ request: ClientRequest) async throws(APIClientError) -> ClientResponse { response }
}

// MARK: - Tests

@Suite("ERP client against the stand-in")
struct ERPClientTests {
    @Test func pagesThroughEveryBudgetLine() async throws {
        try await withERP { erp in
            var lines: [BudgetLine] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025, limit: 10, cursor: cursor)
                #expect(page.items.count <= 10)
                lines += page.items
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < 10
            let expected = erp.standIn.budgetLines(costCentre: "CC-1001", fiscalYear: 2025)
            #expect(expected.count == 23)
            #expect(pages == 3)
            #expect(lines == expected)
            #expect(Set(lines.map(\.id)).count == lines.count)
            #expect(lines.allSatisfy { $0.currency == "AED" && $0.budget.contains(".") })
            #expect(erp.standIn.requestCount == 3)
        }
    }

    @Test func pagesThroughPurchaseOrdersOfOneStatus() async throws {
        try await withERP { erp in
            var orders: [PurchaseOrder] = []
            var cursor: String?
            repeat {
                let page = try await erp.client.listPurchaseOrders(costCentre: "CC-2040", status: .closed, limit: 2, cursor: cursor)
                orders += page.items
                cursor = page.nextCursor
            } while cursor != nil && orders.count < 100
            let expected = erp.standIn.purchaseOrders(costCentre: "CC-2040", status: .closed)
            #expect(!expected.isEmpty)
            #expect(orders == expected)
            #expect(orders.allSatisfy { $0.status == .closed })

            // the whole list, one page
            let all = try await erp.client.listPurchaseOrders(costCentre: "CC-2040", limit: 200)
            #expect(all.items == erp.standIn.purchaseOrders(costCentre: "CC-2040") && all.nextCursor == nil)
        }
    }

    /// A cursor is tied to the filters that produced it: reusing it elsewhere is the ERP's 400.
    @Test func aCursorForOtherFiltersIsRejected() async throws {
        try await withERP { erp in
            let first = try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025, limit: 5)
            let cursor = try #require(first.nextCursor)
            let error = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2024, limit: 5, cursor: cursor)
            }
            guard case .rejected(400, let problem)? = error?.failure else {
                Issue.record("expected a 400 rejection, got \(String(describing: error))")
                return
            }
            #expect(problem.code == "pagination.invalid_cursor")
            #expect(error?.attempts == 1)  // a 4xx is never retried
        }
    }

    @Test func aSlowERPTimesOutQuickly() async throws {
        try await withERP(requestTimeout: .milliseconds(300)) { erp in
            erp.standIn.delayAll(.seconds(2))
            let started = ContinuousClock.now
            let error = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
            }
            let elapsed = ContinuousClock.now - started
            #expect(error?.failure == .timeout(.response, after: .milliseconds(300)))
            #expect(error?.attempts == 3)  // a timeout is retried, then given up
            #expect(erp.clock.sleeps == [.milliseconds(50), .milliseconds(100)])
            #expect(elapsed < .seconds(1.8), "three attempts of 300 ms, no hang (took \(elapsed))")
            erp.standIn.clearFaults()
        }
    }

    @Test func a5xxIsRetriedWithBackoffThenSucceeds() async throws {
        try await withERP { erp in
            erp.standIn.inject([.status(503), .status(500)])
            let page = try await erp.client.listBudgetLines(costCentre: "CC-3300", fiscalYear: 2026, limit: 50)
            #expect(page.items == erp.standIn.budgetLines(costCentre: "CC-3300", fiscalYear: 2026))
            #expect(erp.standIn.requests().map(\.status) == [503, 500, 200])
            #expect(erp.clock.sleeps == [.milliseconds(50), .milliseconds(100)])
        }
    }

    @Test func retriesStopAfterMaxAttempts() async throws {
        try await withERP { erp in
            erp.standIn.failNext(5, status: 503)
            let error = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
            }
            guard case .unavailable(.status(503, let problem))? = error?.failure else {
                Issue.record("expected unavailable 503, got \(String(describing: error))")
                return
            }
            #expect(problem?.code == "service.unavailable")
            #expect(error?.attempts == 3)
            #expect(erp.standIn.requestCount == 3)
        }
    }

    /// POST is not idempotent: a 503 is not retried (the ERP might have acted on it).
    @Test func aNonIdempotentCallIsNotRetried() async throws {
        try await withERP { erp in
            erp.standIn.failNext(1, status: 503)
            let request = ClientRequest(operation: "postProbe", method: .post, path: "/v1/cost-centres/CC-1001/budget-lines")
            let error = await expectClientError { () async throws(APIClientError) in try await erp.transport.execute(request) }
            guard case .unavailable(.status(503, _))? = error?.failure else {
                Issue.record("expected unavailable 503, got \(String(describing: error))")
                return
            }
            #expect(error?.attempts == 1)
            #expect(erp.standIn.requestCount == 1)
            #expect(erp.clock.sleeps.isEmpty)
        }
    }

    @Test func a429IsRetriedAfterRetryAfter() async throws {
        try await withERP { erp in
            erp.standIn.failNext(1, status: 429, retryAfter: 2)
            _ = try await erp.client.listPurchaseOrders(costCentre: "CC-1001")
            #expect(erp.clock.sleeps == [.seconds(2)])  // Retry-After as given, not the 50 ms backoff
            #expect(erp.standIn.requests().map(\.status) == [429, 200])
        }
    }

    @Test func aRetryAfterLongerThanTheLimitEndsTheCall() async throws {
        try await withERP { erp in
            erp.standIn.failNext(1, status: 429, retryAfter: 120)
            let error = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listPurchaseOrders(costCentre: "CC-1001")
            }
            #expect(error?.failure == .unavailable(.rateLimited(retryAfter: .seconds(120))))
            #expect(erp.clock.sleeps.isEmpty)
            let problem = ERPClient.problem(for: try #require(error))
            #expect(problem.headers.first { $0.0 == .retryAfter }?.1 == "120")
        }
    }

    @Test func theBreakerOpensAfterNFailuresAndThenFailsFast() async throws {
        try await withERP(retry: .none, breaker: .init(failureThreshold: 3, coolDown: .seconds(30))) { erp in
            erp.standIn.failNext(10, status: 500)
            for _ in 0..<3 {
                let error = await expectClientError { () async throws(APIClientError) in
                    try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
                }
                guard case .unavailable(.status(500, _))? = error?.failure else {
                    Issue.record("expected unavailable 500, got \(String(describing: error))")
                    return
                }
            }
            #expect(erp.transport.breaker.state == .open)
            let started = ContinuousClock.now
            let error = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
            }
            #expect(ContinuousClock.now - started < .milliseconds(100))
            #expect(error?.failure == .unavailable(.circuitOpen(retryAfter: .seconds(30))))
            #expect(error?.attempts == 0)
            #expect(erp.standIn.requestCount == 3)  // the fourth call never reached the ERP

            erp.clock.advance(by: .seconds(10))
            let later = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listPurchaseOrders(costCentre: "CC-1001")
            }
            #expect(later?.failure == .unavailable(.circuitOpen(retryAfter: .seconds(20))))
            #expect(erp.standIn.requestCount == 3)
        }
    }

    @Test func theBreakerHalfOpensAfterTheCoolDownAndClosesOnSuccess() async throws {
        try await withERP(retry: .none, breaker: .init(failureThreshold: 2, coolDown: .seconds(30))) { erp in
            erp.standIn.failNext(2, status: 503)
            for _ in 0..<2 { _ = try? await erp.client.listPurchaseOrders(costCentre: "CC-1001") }
            #expect(erp.transport.breaker.state == .open)

            erp.clock.advance(by: .seconds(30))
            #expect(erp.transport.breaker.state == .halfOpen)
            let page = try await erp.client.listPurchaseOrders(costCentre: "CC-1001", limit: 3)  // the probe
            #expect(page.items.count == 3)
            #expect(erp.transport.breaker.state == .closed)
            #expect(erp.transport.breaker.consecutiveFailures == 0)
            _ = try await erp.client.listPurchaseOrders(costCentre: "CC-1001", limit: 3)
            #expect(erp.standIn.requestCount == 4)
        }
    }

    @Test func aFailedProbeOpensTheBreakerAgain() async throws {
        try await withERP(retry: .none, breaker: .init(failureThreshold: 2, coolDown: .seconds(30))) { erp in
            erp.standIn.failNext(3, status: 503)
            for _ in 0..<2 { _ = try? await erp.client.listPurchaseOrders(costCentre: "CC-1001") }
            erp.clock.advance(by: .seconds(31))
            let probe = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listPurchaseOrders(costCentre: "CC-1001")
            }
            guard case .unavailable(.status(503, _))? = probe?.failure else {
                Issue.record("expected the probe to fail with 503, got \(String(describing: probe))")
                return
            }
            #expect(erp.transport.breaker.state == .open)
            let next = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listPurchaseOrders(costCentre: "CC-1001")
            }
            #expect(next?.failure == .unavailable(.circuitOpen(retryAfter: .seconds(30))))  // a fresh cool-down
            #expect(erp.standIn.requestCount == 3)
        }
    }

    @Test func anExtraFieldIsAContractViolationNamingIt() async throws {
        try await withERP { erp in
            erp.standIn.inject([.extraField("vendorNote")])
            let error = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
            }
            #expect(
                error?.failure
                    == .contractViolation(status: 200, errors: [FieldError(pointer: "/items/0/vendorNote", message: "is not a known property")]))
            #expect(error?.attempts == 1)  // drift is not retried
            #expect(erp.transport.breaker.consecutiveFailures == 0)  // the ERP answered: not a breaker failure
        }
    }

    @Test func aMissingRequiredFieldIsAContractViolationNamingIt() async throws {
        try await withERP { erp in
            erp.standIn.inject([.omitField("currency"), .omitField("status")])
            let lines = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
            }
            #expect(lines?.violations == [FieldError(pointer: "/items/0/currency", message: "is required")])
            let orders = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listPurchaseOrders(costCentre: "CC-1001")
            }
            #expect(orders?.violations == [FieldError(pointer: "/items/0/status", message: "is required")])
        }
    }

    /// Wrong types, undocumented statuses and bodies that are not JSON, through a canned transport.
    @Test func everyKindOfBadAnswerIsAContractViolation() async throws {
        let wrongType =
            #"{"items":[{"id":7,"supplier":"S","amount":"1.5","currency":"aed","status":"lost","orderedOn":"2025-02-30"}],"nextCursor":null}"#
        let client = ERPClient(
            transport: CannedTransport(
                response: ClientResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(wrongType.utf8))))
        let error = await expectClientError { () async throws(APIClientError) in try await client.listPurchaseOrders(costCentre: "CC-1") }
        #expect(
            error?.violations == [
                FieldError(pointer: "/items/0/id", message: "must be a string"),
                FieldError(pointer: "/items/0/currency", message: "must match the pattern ^[A-Z]{3}$"),
                FieldError(
                    pointer: "/items/0/status",
                    message: "must be one of: draft, pending_approval, approved, sent, partially_received, received, closed, cancelled"),
                FieldError(pointer: "/items/0/orderedOn", message: "must be a date (YYYY-MM-DD)"),
            ])

        let created = ERPClient(transport: CannedTransport(response: ClientResponse(status: 201, body: Array("{}".utf8))))
        let status = await expectClientError { () async throws(APIClientError) in try await created.listPurchaseOrders(costCentre: "CC-1") }
        #expect(status?.violations.first?.message == "status 201 is not documented for listPurchaseOrders (expected 200)")

        let html = ERPClient(
            transport: CannedTransport(
                response: ClientResponse(status: 200, headers: [("Content-Type", "text/html")], body: Array("<html>".utf8))))
        let notJSON = await expectClientError { () async throws(APIClientError) in try await html.listPurchaseOrders(costCentre: "CC-1") }
        #expect(notJSON?.violations == [FieldError(pointer: "", message: "has Content-Type text/html, not application/json")])
    }

    @Test func rejectionsCarryTheERPsProblemAndAreNeitherRetriedNorCounted() async throws {
        try await withERP(breaker: .init(failureThreshold: 1)) { erp in
            let missing = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-4040", fiscalYear: 2025)
            }
            guard case .rejected(404, let problem)? = missing?.failure else {
                Issue.record("expected a 404 rejection, got \(String(describing: missing))")
                return
            }
            #expect(problem.code == "cost_centre.not_found" && problem.status == 404 && problem.detail == "No cost centre CC-4040.")
            let forbidden = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-9000", fiscalYear: 2025)
            }
            #expect(forbidden.map { if case .rejected(403, _) = $0.failure { true } else { false } } == true)
            #expect(erp.transport.breaker.state == .closed)
            #expect(erp.standIn.requestCount == 2)
        }
    }

    @Test func aWrongKeyIsRejectedWith401() async throws {
        try await withERP(token: "not-the-key") { erp in
            let error = await expectClientError { () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
            }
            guard case .rejected(401, let problem)? = error?.failure else {
                Issue.record("expected a 401 rejection, got \(String(describing: error))")
                return
            }
            #expect(problem.code == "auth.unauthenticated")
            #expect(!(error?.description.contains("not-the-key") ?? true))
        }
    }

    @Test func anUnreachableERPIsUnavailableQuickly() async throws {
        let standIn = try await ERPStandIn.start(logger: ERPFixture.logger)
        let baseURL = standIn.baseURL
        await standIn.shutdown()  // nothing listens there now
        let configuration = HTTPTransport.Configuration(
            service: "ERP", baseURL: baseURL, bearerToken: "k", connectTimeout: .seconds(1), requestTimeout: .seconds(2), retry: .none)
        let transport = HTTPTransport(configuration: configuration, clock: ManualClientClock(), logger: ERPFixture.logger)
        let client = ERPClient(transport: transport)
        let started = ContinuousClock.now
        let error = await expectClientError { () async throws(APIClientError) in
            try await client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
        }
        await transport.shutdown()
        #expect(ContinuousClock.now - started < .seconds(2.5))
        // async-http-client keeps trying to connect until the connect timeout, then reports why.
        #expect(error?.failure == .unavailable(.connection("connection refused")))
        let problem = ERPClient.problem(for: try #require(error))
        #expect(problem.code == "erp.unavailable")
    }

    @Test func aCancelledCallEndsAsUnavailableCancelled() async throws {
        try await withERP { erp in
            erp.standIn.delayAll(.seconds(2))
            let client = erp.client
            let task = Task { () async -> APIClientError? in
                do {
                    _ = try await client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
                    return nil
                } catch {
                    return error as? APIClientError
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            task.cancel()
            guard let error = await task.value else {
                Issue.record("expected the cancelled call to fail")
                return
            }
            #expect(error.failure == .unavailable(.cancelled))
            #expect(erp.transport.breaker.consecutiveFailures == 0)
            erp.standIn.clearFaults()
        }
    }

    @Test func failuresMapToSitrepProblems() async throws {
        try await withERP(retry: .none, requestTimeout: .milliseconds(200)) { erp in
            erp.standIn.inject([.delay(.seconds(1)), .status(503), .extraField("vendorNote")])
            var errors: [APIClientError] = []
            for _ in 0..<3 {
                if let e = await expectClientError({ () async throws(APIClientError) in
                    try await erp.client.listBudgetLines(costCentre: "CC-1001", fiscalYear: 2025)
                }) {
                    errors.append(e)
                }
            }
            if let e = await expectClientError({ () async throws(APIClientError) in
                try await erp.client.listBudgetLines(costCentre: "CC-4040", fiscalYear: 2025)
            }) {
                errors.append(e)
            }
            try #require(errors.count == 4)
            let problems = errors.map(ERPClient.problem(for:))
            #expect(problems.map(\.status) == [504, 502, 502, 502])
            #expect(problems.allSatisfy { $0.code == "erp.unavailable" && $0.type == "/problems/erp.unavailable" })
            #expect(problems[0].detail == "The ERP did not answer within 200 ms (operation listBudgetLines).")
            #expect(problems[1].detail == "The ERP answered HTTP 503 (service.unavailable) (operation listBudgetLines).")
            #expect(
                problems[2].detail
                    == "The ERP answered HTTP 200 in breach of its contract: /items/0/vendorNote is not a known property (operation listBudgetLines)."
            )
            #expect(problems[3].detail == "The ERP refused the request with HTTP 404 (cost_centre.not_found) (operation listBudgetLines).")

            let open = APIClientError(
                service: "ERP", operation: "listBudgetLines", failure: .unavailable(.circuitOpen(retryAfter: .seconds(12.5))), attempts: 0)
            let problem = ERPClient.problem(for: open)
            #expect(problem.status == 502 && problem.headers.first { $0.0 == .retryAfter }?.1 == "13")
        }
    }
}

extension ERPClientTests {
    /// The breaker and the backoff on their own, on a manual clock.
    @Suite("circuit breaker and backoff")
    struct Breaker {
        @Test func opensAfterConsecutiveFailuresOnly() throws {
            let clock = ManualClientClock()
            let breaker = CircuitBreaker(name: "test", configuration: .init(failureThreshold: 3, coolDown: .seconds(10)), clock: clock)
            breaker.recordFailure(try breaker.acquire())
            breaker.recordFailure(try breaker.acquire())
            breaker.recordSuccess(try breaker.acquire())  // the count starts again
            #expect(breaker.consecutiveFailures == 0)
            for _ in 0..<3 { breaker.recordFailure(try breaker.acquire()) }
            #expect(breaker.state == .open)
            #expect(throws: CircuitBreaker.Open(retryAfter: .seconds(10))) { try breaker.acquire() }
        }

        @Test func halfOpenLetsExactlyOneProbeThrough() throws {
            let clock = ManualClientClock()
            let breaker = CircuitBreaker(name: "test", configuration: .init(failureThreshold: 1, coolDown: .seconds(10)), clock: clock)
            let stale = try breaker.acquire()
            breaker.recordFailure(try breaker.acquire())
            clock.advance(by: .seconds(10))
            let probe = try breaker.acquire()
            #expect(probe.isProbe)
            #expect(throws: CircuitBreaker.Open.self) { try breaker.acquire() }  // the probe is in flight
            breaker.recordSuccess(stale)  // a verdict from before the breaker opened changes nothing
            #expect(breaker.state == .halfOpen)
            breaker.release(probe)  // e.g. cancelled: the next call probes instead
            let second = try breaker.acquire()
            #expect(second.isProbe)
            breaker.recordSuccess(second)
            #expect(breaker.state == .closed)
            #expect(!(try breaker.acquire()).isProbe)
        }

        @Test func fullJitterBackoffIsCapped() {
            let policy = RetryPolicy(maxAttempts: 10, baseDelay: .milliseconds(100), maxDelay: .seconds(1))
            #expect(policy.backoff(retry: 1, random: 0.999_999) < .milliseconds(100))
            #expect(policy.backoff(retry: 3, random: 0.5) == .milliseconds(200))
            #expect(policy.backoff(retry: 8, random: 0.5) == .milliseconds(500))  // min(1 s, 12.8 s) × 0.5
            #expect(policy.backoff(retry: 2, random: 0) == .zero)
        }

        @Test func retryAfterReadsSecondsAndDates() {
            #expect(HTTPTransport.retryAfter(ClientResponse(status: 429, headers: [("retry-after", "7")])) == .seconds(7))
            let now = Date(timeIntervalSince1970: 1_700_000_000)
            let date = ClientResponse(status: 503, headers: [("Retry-After", "Tue, 14 Nov 2023 22:13:40 GMT")])
            #expect(HTTPTransport.retryAfter(date, now: now) == .seconds(20))
            #expect(HTTPTransport.retryAfter(ClientResponse(status: 503)) == nil)
        }

        @Test func pathSegmentsAndQueriesArePercentEncoded() {
            var request = ClientRequest(operation: "x", method: .get, path: "/v1/a/\(ClientRequest.pathSegment("b/c d?"))")
            request.addQuery("q", "a&b=c é")
            #expect(request.target == "/v1/a/b%2Fc%20d%3F?q=a%26b%3Dc%20%C3%A9")
        }
    }
}
