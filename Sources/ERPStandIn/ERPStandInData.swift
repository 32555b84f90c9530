import ERPClient
import SitrepRuntime

/// What a stand-in serves: seeded and deterministic (the same configuration gives the same rows
/// on every run and machine), built once at start.
public struct ERPStandInConfiguration: Sendable {
    /// The API key callers must send as `Authorization: Bearer <key>`.
    public var apiKey: String
    /// Cost centres the key may read.
    public var costCentres: [String]
    /// Cost centres that exist but the key may not read (`403`).
    public var forbiddenCostCentres: [String]
    /// Fiscal years with budget lines (other years answer an empty page).
    public var fiscalYears: ClosedRange<Int>
    public var budgetLinesPerYear: Int
    public var purchaseOrdersPerCostCentre: Int
    /// The ISO 4217 code of every amount.
    public var currency: String
    public var seed: UInt64

    public init(
        apiKey: String = "erp-stand-in-key", costCentres: [String] = ["CC-1001", "CC-2040", "CC-3300"],
        forbiddenCostCentres: [String] = ["CC-9000"], fiscalYears: ClosedRange<Int> = 2024...2026, budgetLinesPerYear: Int = 23,
        purchaseOrdersPerCostCentre: Int = 37, currency: String = "AED", seed: UInt64 = 2025
    ) {
        self.apiKey = apiKey
        self.costCentres = costCentres
        self.forbiddenCostCentres = forbiddenCostCentres
        self.fiscalYears = fiscalYears
        self.budgetLinesPerYear = budgetLinesPerYear
        self.purchaseOrdersPerCostCentre = purchaseOrdersPerCostCentre
        self.currency = currency
        self.seed = seed
    }
}

/// The seeded rows, each list in `id` order (the keyset the pages walk).
struct ERPDataSet: Sendable {
    /// cost centre → fiscal year → lines
    let budgetLines: [String: [Int: [BudgetLine]]]
    /// cost centre → orders
    let purchaseOrders: [String: [PurchaseOrder]]

    static let accounts: [(String, [String])] = [
        ("6100-01", ["Cloud compute (sovereign region)", "Cloud storage and backup", "GPU capacity for model training"]),
        ("6120-02", ["Software licences", "Data platform subscription", "Observability tooling"]),
        ("6200-10", ["Contract data engineers", "AI assurance consultancy", "Security testing services"]),
        ("6310-04", ["Staff training and certification", "Conference attendance"]),
        ("6400-01", ["Network and connectivity", "Satellite imagery feeds", "News and market data feeds"]),
        ("7100-20", ["Laptops and workstations", "Secure briefing room equipment"]),
    ]

    static let suppliers = [
        "Gulf Cloud Services LLC", "Desert Data Systems FZ-LLC", "Al Noor Consulting", "Emirates Secure Networks",
        "Falcon Analytics", "Oasis Training Institute", "Crescent Hardware Trading", "Meridian Market Data Ltd",
    ]

    static let statuses: [PurchaseOrderStatus] = [
        .draft, .pendingApproval, .approved, .approved, .sent, .sent, .partiallyReceived, .received, .received, .closed, .closed,
        .closed, .cancelled,
    ]

    init(_ configuration: ERPStandInConfiguration) {
        var lines: [String: [Int: [BudgetLine]]] = [:]
        var orders: [String: [PurchaseOrder]] = [:]
        let years = Array(configuration.fiscalYears)
        for (index, centre) in (configuration.costCentres + configuration.forbiddenCostCentres).enumerated() {
            for year in years {
                var rng = SeededGenerator(seed: configuration.seed, key: "\(centre)/\(year)")
                var list: [BudgetLine] = []
                for i in 0..<configuration.budgetLinesPerYear {
                    let (account, descriptions) = Self.accounts[Int(rng.next() % UInt64(Self.accounts.count))]
                    let budget = 5_000_000 + rng.next() % 195_000_001  // fils: 50 000.00 – 2 000 000.00
                    let committed = budget * (rng.next() % 61) / 100
                    let actual = budget * (rng.next() % 91) / 100
                    list.append(
                        BudgetLine(
                            id: "BL-\(centre)-\(year)-\(Self.padded(i + 1, 4))", account: account,
                            description: descriptions[Int(rng.next() % UInt64(descriptions.count))], budget: Self.money(budget),
                            committed: Self.money(committed), actual: Self.money(actual), currency: configuration.currency))
                }
                lines[centre, default: [:]][year] = list.sorted { $0.id < $1.id }
            }
            var rng = SeededGenerator(seed: configuration.seed, key: "\(centre)/orders")
            var list: [PurchaseOrder] = []
            let count = configuration.purchaseOrdersPerCostCentre
            for i in 0..<count {
                let year = years.isEmpty ? 2025 : years[i * years.count / max(count, 1)]
                let amount = 100_000 + rng.next() % 49_900_001  // fils: 1 000.00 – 500 000.00
                let month = 1 + Int(rng.next() % 12)
                let day = 1 + Int(rng.next() % 28)
                list.append(
                    PurchaseOrder(
                        id: "PO-\(year)-\(Self.padded((index + 1) * 1000 + i, 6))",
                        supplier: Self.suppliers[Int(rng.next() % UInt64(Self.suppliers.count))], amount: Self.money(amount),
                        currency: configuration.currency, status: Self.statuses[Int(rng.next() % UInt64(Self.statuses.count))],
                        orderedOn: CalendarDate(year: year, month: month, day: day)!))
            }
            orders[centre] = list.sorted { $0.id < $1.id }
        }
        budgetLines = lines
        purchaseOrders = orders
    }

    /// Fils → `"12345.67"`.
    static func money(_ fils: UInt64) -> String {
        "\(fils / 100).\(padded(Int(fils % 100), 2))"
    }

    static func padded(_ n: Int, _ width: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// SplitMix64 seeded from the configuration's seed and a key (FNV-1a), so each cost centre and
/// year gets its own stable stream.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64, key: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        state = seed ^ hash
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
