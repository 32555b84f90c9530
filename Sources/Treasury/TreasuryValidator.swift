import Foundation

/// One validated data row of a treasury positions file.
public struct TreasuryRow: Sendable, Equatable {
    /// The 1-based physical line where the row starts in the file.
    public let line: Int
    public let entity: String
    public let bank: String
    public let accountRef: String
    /// An active ISO 4217 alphabetic code, upper case.
    public let currency: String
    /// The balance, exact.
    public let balance: Decimal4
    /// The value date, `YYYY-MM-DD`, the same for every row of the file.
    public let valueDate: String

    /// A row from its parts.
    public init(
        line: Int, entity: String, bank: String, accountRef: String, currency: String, balance: Decimal4, valueDate: String
    ) {
        self.line = line
        self.entity = entity
        self.bank = bank
        self.accountRef = accountRef
        self.currency = currency
        self.balance = balance
        self.valueDate = valueDate
    }
}

/// One validation failure, in the shape of the contract's `422` details: a JSON pointer to the
/// failing cell, `/rows/<line>/<column>` (or `/rows/<line>` for a whole record, `/rows` for the
/// whole file), and a message for a person.
public struct TreasuryCellError: Sendable, Equatable, CustomStringConvertible {
    /// Where: `/rows/<line>/<column>`, `/rows/<line>` or `/rows`.
    public let pointer: String
    /// What is wrong, and what is expected.
    public let message: String

    /// An error from its pointer and message.
    public init(pointer: String, message: String) {
        self.pointer = pointer
        self.message = message
    }

    public var description: String { "\(pointer): \(message)" }
}

/// The sum of one currency's balances.
public struct TreasuryCurrencyTotal: Sendable, Equatable {
    /// The ISO 4217 code.
    public let currency: String
    /// The exact sum of the balances.
    public let total: Decimal4
    /// How many rows (accounts) are in this currency.
    public let count: Int

    /// A total from its parts.
    public init(currency: String, total: Decimal4, count: Int) {
        self.currency = currency
        self.total = total
        self.count = count
    }
}

/// What an accepted file holds, for the upload's record.
public struct TreasuryFileSummary: Sendable, Equatable {
    /// Data rows (the header excluded).
    public let rowCount: Int
    /// The value date all rows share, `YYYY-MM-DD`.
    public let valueDate: String
    /// One total per currency present, sorted by currency code.
    public let totals: [TreasuryCurrencyTotal]

    /// A summary from its parts.
    public init(rowCount: Int, valueDate: String, totals: [TreasuryCurrencyTotal]) {
        self.rowCount = rowCount
        self.valueDate = valueDate
        self.totals = totals
    }

    /// The currencies present, sorted.
    public var currencies: [String] { totals.map(\.currency) }
}

/// A refused file: the first errors (up to the validator's cap) and how many there were in all.
public struct TreasuryValidationFailure: Error, Sendable, Equatable {
    /// The errors kept, in file order, at most the validator's `maxErrors`.
    public let errors: [TreasuryCellError]
    /// Every error found, including those past the cap.
    public let totalErrors: Int

    /// A failure from its parts.
    public init(errors: [TreasuryCellError], totalErrors: Int) {
        self.errors = errors
        self.totalErrors = totalErrors
    }
}

/// Validates a treasury positions file record by record, as ``CSVStreamParser`` yields them, so an
/// upload is checked while it streams and refused as a whole if any cell is wrong.
///
/// The first record must be the header, exactly ``columns`` in that order. Every later record is
/// a data row with six fields: `entity` and `bank` 1–200 characters, `account_ref` 1–50
/// characters (Unicode scalars, as JSON Schema counts them; values are taken as written, no
/// trimming), `currency` an active ISO 4217 code (``activeCurrencyCodes``), `balance` the
/// contract's exact decimal (``Decimal4``), `value_date` a real calendar date `YYYY-MM-DD`, the
/// same on every row (the first valid one sets it). A row with the wrong number of fields gets one
/// error for the record and its cells are not checked; after a wrong header no row is checked,
/// since the columns are unknown.
///
/// Errors are kept up to `maxErrors` but all are counted (``totalErrors``). Rows that pass are
/// returned as they are consumed and added to the per-currency totals; the caller still has to
/// ask ``finish()`` whether the file as a whole is accepted.
public struct TreasuryFileValidator: Sendable {
    /// The header the file must start with, in order.
    public static let columns = ["entity", "bank", "account_ref", "currency", "balance", "value_date"]

    /// The default cap on errors kept.
    public static let defaultMaxErrors = 100

    /// Active ISO 4217 alphabetic codes (list one, published 2026-01-01), less `XTS` (reserved for
    /// testing) and `XXX` (no currency), which cannot be a bank balance's currency.
    public static let activeCurrencyCodes: Set<String> = [
        "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD", "BIF", "BMD", "BND",
        "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY",
        "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP",
        "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD",
        "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
        "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN",
        "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN",
        "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
        "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX",
        "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAD", "XAF", "XAG", "XAU", "XBA",
        "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG",
    ]

    /// The most errors kept; further ones are only counted.
    public let maxErrors: Int
    /// The errors found so far, in file order, at most ``maxErrors``.
    public private(set) var errors: [TreasuryCellError] = []
    /// Every error found so far, including those past the cap.
    public private(set) var totalErrors = 0
    /// Data records consumed so far (the header excluded), valid or not.
    public private(set) var rowCount = 0
    /// The file's value date: the first valid `value_date` seen.
    public private(set) var valueDate: String?
    /// Running totals of the valid rows, by currency.
    public private(set) var totals: [String: (total: Decimal4, count: Int)] = [:]

    private var syntaxErrorReported = false
    private var headerSeen = false
    private var headerValid = false
    private var valueDateLine = 0

    /// A validator keeping at most `maxErrors` errors (at least 0); all are counted regardless.
    public init(maxErrors: Int = TreasuryFileValidator.defaultMaxErrors) {
        self.maxErrors = Swift.max(0, maxErrors)
    }

    /// The running totals, sorted by currency code.
    public var sortedTotals: [TreasuryCurrencyTotal] {
        totals.map { TreasuryCurrencyTotal(currency: $0.key, total: $0.value.total, count: $0.value.count) }
            .sorted { $0.currency < $1.currency }
    }

    /// Validates one record: the header if it is the first, a data row otherwise. Returns the
    /// row when it is valid (and counts it in the totals), `nil` when it is the header or has
    /// errors (which are recorded).
    public mutating func consume(_ record: CSVRecord) -> TreasuryRow? {
        guard headerSeen else {
            headerSeen = true
            if let problem = Self.headerProblem(record.fields) {
                addError("/rows/\(record.line)", problem)
            } else {
                headerValid = true
            }
            return nil
        }
        rowCount += 1
        guard headerValid else { return nil }
        return validateRow(record)
    }

    /// Validates records in order and returns the valid data rows among them.
    public mutating func consume(_ records: [CSVRecord]) -> [TreasuryRow] {
        records.compactMap { consume($0) }
    }

    /// Records a syntax error from the parser, which ends the file: pointer `/rows/<line>`.
    public mutating func reportSyntaxError(_ error: CSVError) {
        syntaxErrorReported = true
        addError("/rows/\(error.line)", Self.syntaxMessage(error))
    }

    /// The verdict on the whole file, once every record has been consumed: its summary, or every
    /// error if any record failed, the file is empty, or it has a header but no data rows (those
    /// two are not claimed after a syntax error, which cut the file short).
    public func finish() throws(TreasuryValidationFailure) -> TreasuryFileSummary {
        var final = self
        if syntaxErrorReported {
            // The file was cut short: whether it had a header or rows is unknown.
        } else if !headerSeen {
            final.addError("/rows", "the file is empty; it must start with the header `\(Self.columns.joined(separator: ","))`")
        } else if rowCount == 0 && headerValid {
            final.addError("/rows", "the file has a header but no data rows")
        }
        guard final.totalErrors == 0, let valueDate = final.valueDate else {
            throw TreasuryValidationFailure(errors: final.errors, totalErrors: final.totalErrors)
        }
        return TreasuryFileSummary(rowCount: rowCount, valueDate: valueDate, totals: sortedTotals)
    }

    // MARK: rows

    private mutating func validateRow(_ record: CSVRecord) -> TreasuryRow? {
        let line = record.line
        let fields = record.fields
        guard fields.count == Self.columns.count else {
            addError("/rows/\(line)", "expected \(Self.columns.count) fields (\(Self.columns.joined(separator: ","))), found \(fields.count)")
            return nil
        }
        let before = totalErrors
        let entity = fields[0]
        let bank = fields[1]
        let accountRef = fields[2]
        let currency = fields[3]
        checkLength(entity, column: "entity", line: line, maximum: 200)
        checkLength(bank, column: "bank", line: line, maximum: 200)
        checkLength(accountRef, column: "account_ref", line: line, maximum: 50)
        if !Self.activeCurrencyCodes.contains(currency) {
            addError(Self.pointer(line, "currency"), Self.currencyMessage(currency))
        }
        var balance: Decimal4?
        do {
            balance = try Decimal4(parsing: fields[4])
        } catch {
            addError(Self.pointer(line, "balance"), "`\(Self.excerpt(fields[4]))` is \(error.description)")
        }
        let date = fields[5]
        if !Self.isCalendarDate(date) {
            addError(Self.pointer(line, "value_date"), "`\(Self.excerpt(date))` is not a calendar date of the form YYYY-MM-DD")
        } else if let valueDate {
            if date != valueDate {
                addError(
                    Self.pointer(line, "value_date"),
                    "`\(date)` differs from the file's value date `\(valueDate)` (line \(valueDateLine)); all rows must share one value date")
            }
        } else {
            valueDate = date
            valueDateLine = line
        }
        guard totalErrors == before, let balance else { return nil }
        let running = totals[currency] ?? (total: .zero, count: 0)
        guard let total = running.total.adding(balance) else {
            addError(Self.pointer(line, "balance"), "adding `\(balance)` takes the \(currency) total outside the supported range")
            return nil
        }
        totals[currency] = (total: total, count: running.count + 1)
        return TreasuryRow(
            line: line, entity: entity, bank: bank, accountRef: accountRef, currency: currency, balance: balance, valueDate: date)
    }

    private mutating func checkLength(_ value: String, column: String, line: Int, maximum: Int) {
        let length = value.unicodeScalars.count
        if length == 0 {
            addError(Self.pointer(line, column), "\(column) is empty; it needs 1 to \(maximum) characters")
        } else if length > maximum {
            addError(Self.pointer(line, column), "\(column) is \(length) characters long; at most \(maximum) are allowed")
        } else if value.utf8.contains(0) {
            addError(Self.pointer(line, column), "\(column) contains the NUL character (U+0000), which no text may hold")
        }
    }

    private mutating func addError(_ pointer: String, _ message: String) {
        totalErrors += 1
        if errors.count < maxErrors {
            errors.append(TreasuryCellError(pointer: pointer, message: message))
        }
    }

    private static func pointer(_ line: Int, _ column: String) -> String {
        "/rows/\(line)/\(column)"
    }

    /// A value quoted in a message, shortened so one huge cell cannot bloat the error list.
    private static func excerpt(_ value: String) -> String {
        value.count <= 40 ? value : String(value.prefix(40)) + "…"
    }

    private static func syntaxMessage(_ error: CSVError) -> String {
        // The pointer carries the line; the message need not repeat it.
        let text = error.description
        let prefix = "line \(error.line): "
        return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
    }

    private static func currencyMessage(_ value: String) -> String {
        if value.isEmpty { return "currency is empty; it must be an ISO 4217 code such as AED" }
        if activeCurrencyCodes.contains(value.uppercased()) {
            return "`\(excerpt(value))` must be written in upper case: `\(value.uppercased())`"
        }
        return "`\(excerpt(value))` is not an active ISO 4217 currency code"
    }

    // MARK: header

    /// What is wrong with a header, naming the missing, unexpected, repeated or misordered
    /// columns; `nil` when it is exactly ``columns``.
    static func headerProblem(_ fields: [String]) -> String? {
        guard fields != columns else { return nil }
        var parts: [String] = []
        let missing = columns.filter { !fields.contains($0) }
        let unexpected = fields.filter { !columns.contains($0) }
        if !missing.isEmpty {
            parts.append("missing \(list(missing))")
        }
        if !unexpected.isEmpty {
            let hints = unexpected.map { name -> String in
                let normalized = name.trimmingCharacters(in: .whitespaces).lowercased()
                return missing.contains(normalized) ? "`\(excerpt(name))` (write `\(normalized)`)" : "`\(excerpt(name))`"
            }
            parts.append("unexpected \(hints.joined(separator: ", "))")
        }
        var seen: Set<String> = []
        var repeated: [String] = []
        for name in fields where columns.contains(name) {
            if !seen.insert(name).inserted, !repeated.contains(name) { repeated.append(name) }
        }
        if !repeated.isEmpty {
            parts.append("repeated \(list(repeated))")
        }
        if parts.isEmpty {
            parts.append("columns out of order: found `\(fields.joined(separator: ","))`")
        }
        return "the header must be exactly `\(columns.joined(separator: ","))`; " + parts.joined(separator: "; ")
    }

    private static func list(_ names: [String]) -> String {
        names.map { "`\($0)`" }.joined(separator: ", ")
    }

    // MARK: dates

    /// Whether `text` is `YYYY-MM-DD` naming a real day of the proleptic Gregorian calendar,
    /// years 0001 to 9999.
    static func isCalendarDate(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-") else { return false }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10) else { return false }
        guard year >= 1, (1...12).contains(month), day >= 1 else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return day <= days[month - 1]
    }
}
