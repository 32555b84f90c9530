import ERPClient
import Foundation
import Generated
import SitrepRuntime
import Treasury

/// Figures from the organisation's ERP, through the client generated from `api/erp.yaml`. Its
/// transport retries, times out and breaks the circuit; here an ERP failure becomes the
/// contract's `502`/`504 erp.unavailable` and an unknown cost centre `404`.
extension SitrepHandlers {
    /// Purchase orders still to be delivered or paid for.
    static let openOrderStatuses: Set<PurchaseOrderStatus> = [.pendingApproval, .approved, .sent, .partiallyReceived]
    /// Most pages read from the ERP per list (200 rows each): a cost centre has far fewer.
    static let maximumERPPages = 100

    public func getBudgetSummary(_ input: GetBudgetSummary.Input, context: OperationContext) async throws -> GetBudgetSummary.Output {
        guard let erp else {
            return .serviceUnavailable(
                .serviceUnavailable("No ERP is configured for this deployment (SITREP_ERP_BASE_URL).", retryAfter: nil))
        }
        struct Sums {
            var budget = Decimal4.zero
            var committed = Decimal4.zero
            var actual = Decimal4.zero
            var openOrders = Decimal4.zero
        }
        var sums: [String: Sums] = [:]
        var lineCount = 0
        var openOrders = 0
        func add(_ text: String, to keyPath: WritableKeyPath<Sums, Decimal4>, currency: String) throws {
            guard let value = Decimal4(text), let total = sums[currency, default: Sums()][keyPath: keyPath].adding(value) else {
                throw ProblemError(
                    Problem(
                        status: 502, code: ERPClient.problemCode,
                        detail: "The ERP's amounts for \(currency) do not add up within the supported range (\(text))."))
            }
            sums[currency, default: Sums()][keyPath: keyPath] = total
        }
        do {
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await erp.listBudgetLines(costCentre: input.costCentre, fiscalYear: input.fiscalYear, limit: 200, cursor: cursor)
                for line in page.items {
                    try add(line.budget, to: \.budget, currency: line.currency)
                    try add(line.committed, to: \.committed, currency: line.currency)
                    try add(line.actual, to: \.actual, currency: line.currency)
                }
                lineCount += page.items.count
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < Self.maximumERPPages
            cursor = nil
            pages = 0
            repeat {
                let page = try await erp.listPurchaseOrders(costCentre: input.costCentre, limit: 200, cursor: cursor)
                for order in page.items where Self.openOrderStatuses.contains(order.status) && order.orderedOn.year == input.fiscalYear {
                    try add(order.amount, to: \.openOrders, currency: order.currency)
                    openOrders += 1
                }
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < Self.maximumERPPages
        } catch let error as ERPClientError {
            if case .rejected(404, _) = error.failure {
                return .notFound(.notFound("The ERP knows no cost centre \(input.costCentre)."))
            }
            let problem = ERPClient.problem(for: error)
            context.logger.warning(
                "ERP call failed",
                metadata: ["operation": "\(error.operation)", "attempts": "\(error.attempts)", "detail": "\(problem.detail ?? "")"])
            return problem.status == 504 ? .gatewayTimeout(problem) : .badGateway(problem)
        }
        var currencies: [BudgetCurrencySummary] = []
        for (currency, s) in sums.sorted(by: { $0.key < $1.key }) {
            guard let spent = s.committed.adding(s.actual), let remaining = s.budget.adding(Decimal4(tenThousandths: 0 &- spent.tenThousandths))
            else {
                return .badGateway(
                    Problem(status: 502, code: ERPClient.problemCode, detail: "The ERP's amounts for \(currency) are outside the supported range."))
            }
            currencies.append(
                BudgetCurrencySummary(
                    currency: currency, budget: s.budget.description, committed: s.committed.description, actual: s.actual.description,
                    remaining: remaining.description, openOrders: s.openOrders.description))
        }
        return .ok(
            BudgetSummary(
                costCentre: input.costCentre, fiscalYear: input.fiscalYear, currencies: currencies, lineCount: lineCount,
                openPurchaseOrders: openOrders, retrievedAt: Date()))
    }
}
