// The ERP's typed client. `ERPClient` and the schema types (`BudgetLine`, `PurchaseOrder`, …)
// are generated at build time from api/erp.yaml by the SwiftPM plugin (`sitrep-gen client`);
// this file only re-exports what callers need with them and names the ERP's problem code.
@_exported import SitrepClientRuntime
@_exported import SitrepRuntime

/// Every failure of an ``ERPClient`` call.
public typealias ERPClientError = APIClientError

extension ERPClient {
    /// The `code` of the problem Sitrep answers with when the ERP fails it.
    public static let problemCode = "erp.unavailable"

    /// The problem to answer when an ERP call failed: `504 erp.unavailable` for a timeout, `502
    /// erp.unavailable` otherwise (unavailable, contract violation, an unexpected 4xx), with a
    /// detail naming the cause.
    public static func problem(for error: ERPClientError) -> Problem {
        error.problem(code: problemCode)
    }
}
