import ERPClient
import ERPStandIn
import Foundation
import Generated
import HTTPTypes
import HummingbirdTesting
import Logging
import Testing
import Treasury

/// `GET /v1/erp/budget-summary` end to end: the service reads the ERP stand-in through the client
/// generated from api/erp.yaml, sums exactly, and maps the ERP's failures to the contract's
/// problems.
@Suite("finance: ERP budget summary", .enabled(if: SitrepHarness.isConfigured), .serialized)
struct FinanceTests {
    static let logger = Logger(label: "sitrep.finance.tests", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The stand-in and a client for it with short timeouts, for `body`.
    static func withERP(
        requestTimeout: Duration = .seconds(2), _ body: @Sendable (ERPStandIn, ERPClient) async throws -> Void
    ) async throws {
        let standIn = try await ERPStandIn.start(logger: logger)
        let transport = HTTPTransport(
            configuration: standIn.transportConfiguration(
                requestTimeout: requestTimeout, retry: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(10), maxDelay: .milliseconds(20)),
                breaker: .init(failureThreshold: 50, coolDown: .seconds(1))),
            logger: logger)
        do {
            try await body(standIn, ERPClient(transport: transport))
        } catch {
            await transport.shutdown()
            await standIn.shutdown()
            throw error
        }
        await transport.shutdown()
        await standIn.shutdown()
    }

    @Test func theSummaryAddsUpTheERPsFiguresExactly() async throws {
        try await Self.withERP { standIn, erp in
            try await SitrepHarness.with(erp: erp) { client, h in
                let r = try await client.execute(
                    uri: "/v1/erp/budget-summary?costCentre=CC-1001&fiscalYear=2025", method: .get, headers: .auth(h.tokens.executive))
                #expect(r.status == .ok, "\(r.text)")
                let summary = try r.decode(BudgetSummary.self)
                let lines = standIn.budgetLines(costCentre: "CC-1001", fiscalYear: 2025)
                #expect(summary.lineCount == lines.count && lines.count > 0)
                let open: Set<PurchaseOrderStatus> = [.pendingApproval, .approved, .sent, .partiallyReceived]
                let orders = standIn.purchaseOrders(costCentre: "CC-1001").filter { open.contains($0.status) && $0.orderedOn.year == 2025 }
                #expect(summary.openPurchaseOrders == orders.count)
                func sum(_ values: [String]) -> Decimal4 { values.reduce(Decimal4.zero) { $0.adding(Decimal4($1)!)! } }
                for c in summary.currencies {
                    let mine = lines.filter { $0.currency == c.currency }
                    #expect(c.budget == sum(mine.map(\.budget)).description)
                    #expect(c.committed == sum(mine.map(\.committed)).description)
                    #expect(c.actual == sum(mine.map(\.actual)).description)
                    let remaining =
                        sum(mine.map(\.budget)).tenThousandths - sum(mine.map(\.committed)).tenThousandths
                        - sum(mine.map(\.actual)).tenThousandths
                    #expect(c.remaining == Decimal4(tenThousandths: remaining).description)
                    #expect(c.openOrders == sum(orders.filter { $0.currency == c.currency }.map(\.amount)).description)
                }
                #expect(summary.currencies.map(\.currency) == summary.currencies.map(\.currency).sorted())
                // Executives only.
                let viewer = try await client.execute(
                    uri: "/v1/erp/budget-summary?costCentre=CC-1001&fiscalYear=2025", method: .get, headers: .auth(h.tokens.viewer))
                #expect(viewer.status == .forbidden)
            }
        }
    }

    @Test func theERPsFailuresAreTheContractsProblems() async throws {
        try await Self.withERP(requestTimeout: .milliseconds(300)) { standIn, erp in
            try await SitrepHarness.with(erp: erp) { client, h in
                func get(_ query: String) async throws -> TestResponse {
                    try await client.execute(uri: "/v1/erp/budget-summary?" + query, method: .get, headers: .auth(h.tokens.executive))
                }
                let unknown = try await get("costCentre=CC-0000&fiscalYear=2025")
                #expect(unknown.status == .notFound && unknown.problemCode == "resource.not_found", "\(unknown.text)")
                let forbidden = try await get("costCentre=CC-9000&fiscalYear=2025")
                #expect(forbidden.status == .badGateway && forbidden.problemCode == "erp.unavailable", "\(forbidden.text)")
                let bad = try await get("costCentre=cc%201001&fiscalYear=2025")
                #expect(bad.status == .badRequest)

                standIn.failNext(10, status: 503)
                let down = try await get("costCentre=CC-1001&fiscalYear=2025")
                #expect(down.status == .badGateway && down.problemCode == "erp.unavailable", "\(down.text)")
                standIn.clearFaults()

                standIn.delayAll(.seconds(1))
                let slow = try await get("costCentre=CC-1001&fiscalYear=2025")
                #expect(slow.status == .gatewayTimeout && slow.problemCode == "erp.unavailable", "\(slow.text)")
                standIn.clearFaults()

                standIn.inject([.omitField("currency")])
                let drift = try await get("costCentre=CC-1001&fiscalYear=2025")
                #expect(drift.status == .badGateway && drift.text.contains("currency"), "\(drift.text)")
                standIn.clearFaults()

                let ok = try await get("costCentre=CC-1001&fiscalYear=2025")
                #expect(ok.status == .ok, "\(ok.text)")
            }
        }
    }

    @Test func withoutAnERPTheOperationIs503() async throws {
        try await SitrepHarness.with { client, h in
            let r = try await client.execute(
                uri: "/v1/erp/budget-summary?costCentre=CC-1001&fiscalYear=2025", method: .get, headers: .auth(h.tokens.executive))
            #expect(r.status == .serviceUnavailable && r.problemCode == "dependency.unavailable")
        }
    }
}
