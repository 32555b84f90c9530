import Foundation
import Testing
import Treasury

/// The pure core of the treasury CSV upload: the streaming parser, exact decimals and the row
/// validator. No services needed.
@Suite("treasury CSV: parser, decimals, validator")
struct TreasuryCSVTests {
    static let header = "entity,bank,account_ref,currency,balance,value_date"

    // MARK: helpers

    /// Parses `bytes` fed in chunks of the given sizes (cycled), then finishes.
    static func parse(_ bytes: [UInt8], chunkSizes: [Int] = [Int.max], maxRecordBytes: Int = CSVStreamParser.defaultMaxRecordBytes)
        throws(CSVError) -> [CSVRecord]
    {
        var parser = CSVStreamParser(maxRecordBytes: maxRecordBytes)
        var records: [CSVRecord] = []
        var start = 0
        var which = 0
        while start < bytes.count {
            let size = max(1, chunkSizes[which % chunkSizes.count])
            which += 1
            let end = size >= bytes.count - start ? bytes.count : start + size
            records += try parser.feed(bytes[start..<end])
            start = end
        }
        records += try parser.finish()
        return records
    }

    static func parse(_ text: String, chunkSizes: [Int] = [Int.max]) throws(CSVError) -> [CSVRecord] {
        try parse(Array(text.utf8), chunkSizes: chunkSizes)
    }

    static func randomChunkSizes(seed: UInt64, count: Int = 64, upTo limit: Int = 17) -> [Int] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in Int.random(in: 1...limit, using: &generator) }
    }

    /// Runs the whole pipeline (parser then validator), as the endpoint will.
    static func validate(_ bytes: [UInt8], maxErrors: Int = TreasuryFileValidator.defaultMaxErrors, chunkSize: Int = 4096)
        -> (result: Result<TreasuryFileSummary, TreasuryValidationFailure>, rows: [TreasuryRow])
    {
        var parser = CSVStreamParser()
        var validator = TreasuryFileValidator(maxErrors: maxErrors)
        var rows: [TreasuryRow] = []
        do throws(CSVError) {
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + chunkSize)
                rows += validator.consume(try parser.feed(bytes[start..<end]))
                start = end
            }
            rows += validator.consume(try parser.finish())
        } catch {
            validator.reportSyntaxError(error)
        }
        do throws(TreasuryValidationFailure) {
            return (.success(try validator.finish()), rows)
        } catch {
            return (.failure(error), rows)
        }
    }

    static func validate(_ text: String, maxErrors: Int = TreasuryFileValidator.defaultMaxErrors)
        -> Result<TreasuryFileSummary, TreasuryValidationFailure>
    {
        validate(Array(text.utf8), maxErrors: maxErrors).result
    }

    static func failure(_ text: String, maxErrors: Int = TreasuryFileValidator.defaultMaxErrors) -> TreasuryValidationFailure? {
        if case .failure(let failure) = validate(text, maxErrors: maxErrors) { return failure }
        return nil
    }

    /// A file with the header and the given data lines, LF-terminated.
    static func file(_ rows: [String]) -> String {
        ([header] + rows).map { $0 + "\n" }.joined()
    }

    static func row(
        entity: String = "Data & AI Office", bank: String = "Gulf Commercial Bank", account: String = "****4821",
        currency: String = "AED", balance: String = "100.00", date: String = "2025-03-06"
    ) -> String {
        [entity, bank, account, currency, balance, date].joined(separator: ",")
    }

    // MARK: parser: format

    @Test func parsesPlainRecordsWithLineNumbers() throws {
        let records = try Self.parse("a,b,c\n1,2,3\n")
        #expect(records == [CSVRecord(fields: ["a", "b", "c"], line: 1), CSVRecord(fields: ["1", "2", "3"], line: 2)])
    }

    @Test func handlesQuotingAndEscapedQuotes() throws {
        let records = try Self.parse(#""a,b","say ""hi""","",x,"""",plain"# + "\n")
        #expect(records.count == 1)
        #expect(records[0].fields == ["a,b", #"say "hi""#, "", "x", #"""#, "plain"])
    }

    @Test func quotedFieldsKeepEmbeddedLineBreaksAndLinesCountThem() throws {
        let text = "id,note\r\n1,\"first\r\nsecond\"\r\n2,\"a\nb\nc\"\n3,last\n"
        let records = try Self.parse(text)
        #expect(records.map(\.fields) == [["id", "note"], ["1", "first\r\nsecond"], ["2", "a\nb\nc"], ["3", "last"]])
        #expect(records.map(\.line) == [1, 2, 4, 7])
    }

    @Test func acceptsCRLFAndMixedLineEndings() throws {
        #expect(try Self.parse("a,b\r\nc,d\r\n").map(\.fields) == [["a", "b"], ["c", "d"]])
        #expect(try Self.parse("a,b\r\nc,d\ne,f").map(\.fields) == [["a", "b"], ["c", "d"], ["e", "f"]])
        #expect(try Self.parse("a,\"b\"\r\n").map(\.fields) == [["a", "b"]])
    }

    @Test func lastLineWithOrWithoutLineBreak() throws {
        #expect(try Self.parse("a,b\nc,d").map(\.fields) == [["a", "b"], ["c", "d"]])
        #expect(try Self.parse("a,b\nc,d\n").map(\.fields) == [["a", "b"], ["c", "d"]])
        #expect(try Self.parse("a,b\nc,\"d\"").map(\.fields) == [["a", "b"], ["c", "d"]])
        // A trailing comma is one more, empty, field.
        #expect(try Self.parse("a,b,").map(\.fields) == [["a", "b", ""]])
        #expect(try Self.parse("a,b,\n").map(\.fields) == [["a", "b", ""]])
    }

    @Test func skipsEmptyLinesButCountsThem() throws {
        let records = try Self.parse("\n\r\na,b\n\n\r\nc,d\n\n\n")
        #expect(records == [CSVRecord(fields: ["a", "b"], line: 3), CSVRecord(fields: ["c", "d"], line: 6)])
        // Only empty lines: no records at all.
        #expect(try Self.parse("\n\r\n\n").isEmpty)
        #expect(try Self.parse("").isEmpty)
        // A line of one quoted empty field, or of spaces, is a record, not an empty line.
        #expect(try Self.parse("\"\"\n \n").map(\.fields) == [[""], [" "]])
    }

    @Test func ignoresByteOrderMarkOnlyAtTheStart() throws {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        let body = Array("a,b\n\u{FEFF}c,d\n".utf8)
        for chunk in [1, 2, 3, 100] {
            let records = try Self.parse(bom + body, chunkSizes: [chunk])
            #expect(records.map(\.fields) == [["a", "b"], ["\u{FEFF}c", "d"]])
            #expect(records.map(\.line) == [1, 2])
        }
        // A byte-order mark alone is an empty file.
        #expect(try Self.parse(bom, chunkSizes: [1]).isEmpty)
        // Something that only starts like one is data: here, broken UTF-8.
        #expect(throws: CSVError.invalidUTF8(line: 1)) { try Self.parse([0xEF, 0xBB, 0x41], chunkSizes: [1]) }
        #expect(throws: CSVError.invalidUTF8(line: 1)) { try Self.parse([0xEF, 0xBB]) }
    }

    @Test func keepsMultiByteUTF8() throws {
        let records = try Self.parse("صندوق الخدمات الرقمية,Banque Dubaï,€ 😀\n")
        #expect(records.first?.fields == ["صندوق الخدمات الرقمية", "Banque Dubaï", "€ 😀"])
    }

    @Test func acceptsAnyCollectionOfBytes() throws {
        var parser = CSVStreamParser()
        // Data, a lazy (non-contiguous) view, and an array slice.
        var records = try parser.feed(Data("a,b\nc,".utf8))
        records += try parser.feed("d\ne".utf8.lazy.map { $0 })
        records += try parser.feed(Array(",f\n".utf8)[...])
        records += try parser.finish()
        #expect(records.map(\.fields) == [["a", "b"], ["c", "d"], ["e", "f"]])
    }

    @Test func feedReturnsOnlyRecordsCompletedByThatChunk() throws {
        var parser = CSVStreamParser()
        #expect(try parser.feed(Array("a,b\nc".utf8)) == [CSVRecord(fields: ["a", "b"], line: 1)])
        #expect(try parser.feed(Array(",\"d\n".utf8)).isEmpty)
        #expect(try parser.feed(Array("e\"\r".utf8)).isEmpty)
        #expect(try parser.feed(Array("\n".utf8)) == [CSVRecord(fields: ["c", "d\ne"], line: 2)])
        #expect(try parser.finish().isEmpty)
    }

    @Test func finishResetsTheParserForAnotherFile() throws {
        var parser = CSVStreamParser()
        _ = try parser.feed(Array("a,b\nc".utf8))
        #expect(try parser.finish() == [CSVRecord(fields: ["c"], line: 2)])
        #expect(try parser.feed([0xEF, 0xBB, 0xBF] + Array("x\n".utf8)) == [CSVRecord(fields: ["x"], line: 1)])
    }

    // MARK: parser: chunk boundaries

    static let trickyFile: [UInt8] =
        [0xEF, 0xBB, 0xBF]
        + Array(
            (header + "\r\n"
                + "\"Data & AI Office\",\"Gulf \"\"Commercial\"\" Bank\",****4821,AED,12500000.00,2025-03-06\r\n"
                + "\r\n"
                + "\"صندوق, الخدمات\",\"multi\r\nline\nbank\",😀€,EUR,-615250.5,2025-03-06\n"
                + "\n"
                + "Fonds Dubaï,\"\",\"\"\"\",USD,0.0001,2025-03-06").utf8)

    @Test func sameRecordsWhateverTheChunking() throws {
        let whole = try Self.parse(Self.trickyFile)
        #expect(whole.count == 4)
        #expect(whole.map(\.line) == [1, 2, 4, 8])
        #expect(whole[2].fields == ["صندوق, الخدمات", "multi\r\nline\nbank", "😀€", "EUR", "-615250.5", "2025-03-06"])
        #expect(whole[3].fields == ["Fonds Dubaï", "", "\"", "USD", "0.0001", "2025-03-06"])
        // Byte by byte: every boundary is hit once, including inside the BOM, inside `""`, between
        // `\r` and `\n`, and inside every multi-byte character.
        #expect(try Self.parse(Self.trickyFile, chunkSizes: [1]) == whole)
        for seed in UInt64(1)...40 {
            let sizes = Self.randomChunkSizes(seed: seed)
            #expect(try Self.parse(Self.trickyFile, chunkSizes: sizes) == whole, "seed \(seed)")
        }
    }

    @Test func sameErrorsWhateverTheChunking() {
        let broken = Array("a,b\nc,\"d\ne\"x\n".utf8)
        for sizes in [[Int.max], [1], [2, 3], Self.randomChunkSizes(seed: 7)] {
            #expect(throws: CSVError.textAfterClosingQuote(line: 3)) { try Self.parse(broken, chunkSizes: sizes) }
        }
    }

    // MARK: parser: errors

    @Test func refusesQuoteInUnquotedField() {
        #expect(throws: CSVError.quoteInUnquotedField(line: 2)) { try Self.parse("a,b\nc,d\"e\n") }
        #expect(throws: CSVError.quoteInUnquotedField(line: 1)) { try Self.parse(" \"a\",b\n") }
    }

    @Test func refusesTextAfterClosingQuote() {
        #expect(throws: CSVError.textAfterClosingQuote(line: 1)) { try Self.parse("\"a\"b,c\n") }
        #expect(throws: CSVError.textAfterClosingQuote(line: 3)) { try Self.parse("x\n\"a\nb\" ,c\n") }
    }

    @Test func refusesUnterminatedQuoteAtEnd() {
        #expect(throws: CSVError.unterminatedQuote(line: 2)) { try Self.parse("a,b\nc,\"d\ne,f\n") }
        #expect(throws: CSVError.unterminatedQuote(line: 1)) { try Self.parse("\"") }
        // `"a""` is an open field holding `a"`.
        #expect(throws: CSVError.unterminatedQuote(line: 1)) { try Self.parse("\"a\"\"") }
    }

    @Test func refusesBareCarriageReturn() throws {
        #expect(throws: CSVError.bareCarriageReturn(line: 1)) { try Self.parse("a,b\rc,d\n") }
        #expect(throws: CSVError.bareCarriageReturn(line: 2)) { try Self.parse("a,b\nc,d\r") }
        // Inside quotes a carriage return is data.
        #expect(try Self.parse("\"a\rb\"\n").first?.fields == ["a\rb"])
    }

    @Test(arguments: [
        ([0x61, 0x0A, 0x62, 0xFF, 0x0A] as [UInt8], 2),  // never valid
        ([0x0A, 0x0A, 0xC0, 0xAF], 3),  // overlong `/`
        ([0xE0, 0x80, 0x80], 1),  // overlong
        ([0xED, 0xA0, 0x80], 1),  // UTF-16 surrogate
        ([0xF4, 0x90, 0x80, 0x80], 1),  // above U+10FFFF
        ([0x61, 0xC3, 0x2C, 0x62], 1),  // lead byte then a comma
        ([0x61, 0x80], 1),  // stray continuation byte
        ([0x61, 0x0A, 0xE2, 0x82], 2),  // cut short by the end of the file
        ([0x22, 0x0A, 0xC3, 0x28, 0x22], 2),  // inside a quoted field, after its line break
    ])
    func refusesInvalidUTF8WithItsLine(bytes: [UInt8], line: Int) {
        #expect(throws: CSVError.invalidUTF8(line: line)) { try Self.parse(bytes) }
        #expect(throws: CSVError.invalidUTF8(line: line)) { try Self.parse(bytes, chunkSizes: [1]) }
    }

    @Test func enforcesMaxRecordBytes() throws {
        // A record of exactly the limit passes; one byte more fails, naming the record's line.
        let exact = String(repeating: "x", count: 10) + "," + String(repeating: "y", count: 9)
        #expect(try Self.parse(Array(("h\n" + exact + "\r\n").utf8), maxRecordBytes: 20).count == 2)
        #expect(throws: CSVError.recordTooLong(line: 2, limit: 20)) {
            try Self.parse(Array(("h\n" + exact + "z\n").utf8), maxRecordBytes: 20)
        }
        // Quoted content, embedded line breaks and quotes count too; the error names where the
        // record starts.
        let quoted = "h\n\"" + String(repeating: "a\n", count: 15) + "\"\n"
        #expect(throws: CSVError.recordTooLong(line: 2, limit: 20)) {
            try Self.parse(Array(quoted.utf8), chunkSizes: [3], maxRecordBytes: 20)
        }
        // The default is 64 KiB, and the error stops a single huge line long before the file ends.
        var parser = CSVStreamParser()
        #expect(parser.maxRecordBytes == 65_536)
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 16 * 1024)
        var thrown: CSVError?
        for _ in 0..<100 {
            do throws(CSVError) {
                _ = try parser.feed(chunk)
            } catch {
                thrown = error
                break
            }
        }
        #expect(thrown == .recordTooLong(line: 1, limit: 65_536))
        // The parser stays failed.
        #expect(throws: CSVError.recordTooLong(line: 1, limit: 65_536)) { try parser.feed(Array("\n".utf8)) }
    }

    @Test func recordsBeforeAnErrorAreDeliveredAndTheErrorFollows() throws {
        var parser = CSVStreamParser()
        #expect(try parser.feed(Array("a,b\nc,d\ne\"f\n".utf8)).map(\.fields) == [["a", "b"], ["c", "d"]])
        #expect(throws: CSVError.quoteInUnquotedField(line: 3)) { try parser.feed(Array("g\n".utf8)) }
        // With nothing to deliver, the error comes at once; `finish` reports it too.
        var other = CSVStreamParser()
        _ = try other.feed(Array("a,b\nc,d\ne\"f\n".utf8))
        #expect(throws: CSVError.quoteInUnquotedField(line: 3)) { try other.finish() }
        var immediate = CSVStreamParser()
        #expect(throws: CSVError.quoteInUnquotedField(line: 1)) { try immediate.feed(Array("a\"".utf8)) }
    }

    @Test func errorsDescribeThemselves() {
        #expect(CSVError.unterminatedQuote(line: 7).line == 7)
        #expect(CSVError.recordTooLong(line: 3, limit: 10).description == "line 3: the record is longer than 10 bytes")
        #expect(CSVError.invalidUTF8(line: 2).description.contains("UTF-8"))
    }

    // MARK: Decimal4

    @Test(arguments: [
        ("0", Int64(0)), ("-0", 0), ("-0.00", 0), ("12.5", 125_000), ("615250.50", 6_152_505_000), ("-1.2345", -12_345),
        ("0.0001", 1), ("000012.3400", 123_400), ("922337203685477.5807", .max), ("-922337203685477.5808", .min),
    ])
    func parsesDecimals(text: String, tenThousandths: Int64) throws {
        #expect(try Decimal4(parsing: text).tenThousandths == tenThousandths)
        #expect(Decimal4(text) == Decimal4(tenThousandths: tenThousandths))
    }

    @Test(arguments: [
        "", "-", ".5", "5.", "1e5", "1E5", "1,000.00", "12.34567", "+1", " 1", "1 ", "--1", "1.2.3", "0x10", "١٢", "1_000",
        "1234567890123456789", "NaN", "inf", "-.5", "1.-5",
    ])
    func refusesMalformedDecimals(text: String) {
        #expect(throws: Decimal4.ParseError.malformed) { try Decimal4(parsing: text) }
    }

    @Test(arguments: ["922337203685477.5808", "-922337203685477.5809", "123456789012345678", "-999999999999999999.9999"])
    func refusesDecimalsOutOfRange(text: String) {
        #expect(throws: Decimal4.ParseError.outOfRange) { try Decimal4(parsing: text) }
    }

    @Test func formatsCanonically() {
        func text(_ units: Int64) -> String { Decimal4(tenThousandths: units).description }
        #expect(text(0) == "0.00")
        #expect(text(10_000) == "1.00")
        #expect(text(5_000) == "0.50")
        #expect(text(6_152_505_000) == "615250.50")
        #expect(text(125_000_000_000) == "12500000.00")
        #expect(text(12_345) == "1.2345")
        #expect(text(12_340) == "1.234")
        #expect(text(-1) == "-0.0001")
        #expect(text(-5_000) == "-0.50")
        #expect(text(.min) == "-922337203685477.5808")
        #expect(text(.max) == "922337203685477.5807")
        #expect(Decimal4(tenThousandths: 10_000).formatted(minimumFractionDigits: 4) == "1.0000")
        #expect(Decimal4(tenThousandths: 10_000).formatted(minimumFractionDigits: 0) == "1")
        #expect(Decimal4(tenThousandths: 12_300).formatted(minimumFractionDigits: 0) == "1.23")
        #expect(Decimal4(tenThousandths: 1).formatted(minimumFractionDigits: 9) == "0.0001")
    }

    @Test func textRoundTripsAndMatchesTheContractPattern() throws {
        let pattern = try Regex("^-?[0-9]{1,18}(\\.[0-9]{1,4})?$")
        var generator = SplitMix64(seed: 42)
        let samples = [Int64.min, .max, 0, 1, -1] + (0..<2_000).map { _ in Int64.random(in: .min ... .max, using: &generator) }
        for units in samples {
            let value = Decimal4(tenThousandths: units)
            #expect(try Decimal4(parsing: value.description) == value)
            #expect(try pattern.wholeMatch(in: value.description) != nil)
            #expect(try Decimal4(parsing: value.formatted(minimumFractionDigits: 4)) == value)
        }
    }

    @Test func sumsExactlyAndReportsOverflow() throws {
        let tenth = try Decimal4(parsing: "0.1")
        var sum = Decimal4.zero
        for _ in 0..<10 { sum = try #require(sum.adding(tenth)) }
        #expect(sum == (try Decimal4(parsing: "1")))
        #expect(sum.description == "1.00")
        #expect(sum.formatted(minimumFractionDigits: 4) == "1.0000")
        #expect(Decimal4.max.adding(Decimal4(tenThousandths: 1)) == nil)
        #expect(Decimal4.min.adding(Decimal4(tenThousandths: -1)) == nil)
        #expect(Decimal4.max.adding(Decimal4.min) == Decimal4(tenThousandths: -1))
        let wrapped = Decimal4.max.addingReportingOverflow(Decimal4(tenThousandths: 1))
        #expect(wrapped.overflow)
        #expect(wrapped.partialValue == Decimal4.min)
        #expect(Decimal4(tenThousandths: 1) < Decimal4(tenThousandths: 2))
    }

    // MARK: validator: accepted files

    @Test func acceptsTheContractExample() throws {
        let text = """
            entity,bank,account_ref,currency,balance,value_date
            Data & AI Office,Gulf Commercial Bank,****4821,AED,12500000.00,2025-03-06
            Data & AI Office,Gulf Commercial Bank,****7730,USD,1840000.00,2025-03-06
            Digital Services Fund,National Investment Bank,****1029,EUR,615250.50,2025-03-06

            """
        let (result, rows) = Self.validate(Array(text.utf8))
        let summary = try result.get()
        #expect(summary.rowCount == 3)
        #expect(summary.valueDate == "2025-03-06")
        #expect(summary.currencies == ["AED", "EUR", "USD"])
        #expect(summary.totals.map(\.total.description) == ["12500000.00", "615250.50", "1840000.00"])
        #expect(summary.totals.map(\.count) == [1, 1, 1])
        #expect(rows.count == 3)
        #expect(
            rows[2]
                == TreasuryRow(
                    line: 4, entity: "Digital Services Fund", bank: "National Investment Bank", accountRef: "****1029", currency: "EUR",
                    balance: Decimal4(tenThousandths: 6_152_505_000), valueDate: "2025-03-06"))
    }

    @Test func totalsPerCurrencyAreExact() throws {
        let rows =
            Array(repeating: Self.row(currency: "USD", balance: "0.1"), count: 10) + [
                Self.row(currency: "EUR", balance: "-5.25"), Self.row(currency: "EUR", balance: "2.0001"),
                Self.row(currency: "AED", balance: "-0"),
            ]
        let summary = try Self.validate(Self.file(rows)).get()
        #expect(summary.rowCount == 13)
        #expect(
            summary.totals == [
                TreasuryCurrencyTotal(currency: "AED", total: .zero, count: 1),
                TreasuryCurrencyTotal(currency: "EUR", total: Decimal4(tenThousandths: -32_499), count: 2),
                TreasuryCurrencyTotal(currency: "USD", total: Decimal4(tenThousandths: 10_000), count: 10),
            ])
        #expect(summary.totals.map(\.total.description) == ["0.00", "-3.2499", "1.00"])
    }

    @Test func acceptsQuotedCellsCRLFAndBOM() throws {
        let text = "\u{FEFF}" + Self.header + "\r\n\"Fund, Abu Dhabi\",\"Bank \"\"A\"\"\",\"****1\",XCG,\"-12.5\",\"2024-02-29\"\r\n"
        let (result, rows) = Self.validate(Array(text.utf8))
        #expect(try result.get().rowCount == 1)
        #expect(rows.first?.entity == "Fund, Abu Dhabi")
        #expect(rows.first?.bank == "Bank \"A\"")
        #expect(rows.first?.balance.description == "-12.50")
    }

    @Test func lengthsCountCharactersNotBytes() throws {
        let arabic200 = String(repeating: "ص", count: 200)
        #expect(throws: Never.self) {
            try Self.validate(Self.file([Self.row(entity: arabic200, bank: arabic200, account: String(repeating: "*", count: 50))])).get()
        }
    }

    // MARK: validator: refused files

    @Test func refusesEmptyFiles() {
        for text in ["", "\n\n", "\u{FEFF}", "\r\n"] {
            let failure = Self.failure(text)
            #expect(failure?.errors.map(\.pointer) == ["/rows"])
            #expect(failure?.errors.first?.message.contains("empty") == true)
        }
    }

    @Test func refusesHeaderOnly() {
        for text in [Self.header, Self.header + "\n", Self.header + "\r\n\r\n"] {
            let failure = Self.failure(text)
            #expect(failure?.errors == [TreasuryCellError(pointer: "/rows", message: "the file has a header but no data rows")])
        }
    }

    @Test(arguments: [
        ("entity,bank,account_ref,currency,balance", ["missing `value_date`"]),
        ("entity,bank,account_ref,currency,balance,value_date,notes", ["unexpected `notes`"]),
        ("entity,bank,currency,account_ref,balance,value_date", ["out of order", "entity,bank,currency,account_ref"]),
        ("Entity,bank,account_ref,currency,balance,value_date", ["missing `entity`", "`Entity` (write `entity`)"]),
        ("entity,bank,account_ref,currency, balance,value_date", ["` balance` (write `balance`)"]),
        ("entity,bank,account_ref,currency,balance,balance", ["missing `value_date`", "repeated `balance`"]),
        ("Data & AI Office,Gulf Commercial Bank,****4821,AED,12500000.00,2025-03-06", ["missing `entity`", "unexpected"]),
    ])
    func refusesWrongHeader(header: String, fragments: [String]) throws {
        let text = "\n" + header + "\n" + Self.row() + "\n" + Self.row(currency: "XYZ") + "\n"
        let failure = try #require(Self.failure(text))
        // One error, on the header's line; rows are not checked against unknown columns.
        #expect(failure.totalErrors == 1)
        #expect(failure.errors.first?.pointer == "/rows/2")
        let message = failure.errors.first?.message ?? ""
        #expect(message.hasPrefix("the header must be exactly `entity,bank,account_ref,currency,balance,value_date`"))
        for fragment in fragments {
            #expect(message.contains(fragment), "\(message)")
        }
    }

    @Test(arguments: ["XYZ", "aed", "ANG", "XXX", "XTS", "", "AED ", "US"])
    func refusesBadCurrency(code: String) throws {
        let failure = try #require(Self.failure(Self.file([Self.row(), Self.row(currency: code)])))
        #expect(failure.errors.map(\.pointer) == ["/rows/3/currency"])
        if code == "aed" {
            #expect(failure.errors.first?.message.contains("upper case") == true)
        }
    }

    @Test func acceptsCurrentCurrencyCodes() throws {
        let codes = ["XCG", "ZWG", "SLE", "VED", "XAD", "MRU", "CHF", "XAU"]
        let summary = try Self.validate(Self.file(codes.map { Self.row(currency: $0) })).get()
        #expect(summary.currencies == codes.sorted())
    }

    @Test(arguments: [
        "\"1,000.00\"", "1e5", "12.34567", ".5", "-", "", "1.", "+5", " 5", "5 ", "1 000", "NaN", "12345678901234567890",
        "922337203685477.5808",
    ])
    func refusesBadDecimal(balance: String) throws {
        let failure = try #require(Self.failure(Self.file([Self.row(balance: balance)])))
        #expect(failure.errors.map(\.pointer) == ["/rows/2/balance"])
        #expect(failure.totalErrors == 1)
    }

    @Test(arguments: [
        "2025-02-30", "2025-13-01", "2025-00-10", "2025-04-31", "1900-02-29", "2023-02-29", "0000-01-01", "2025-3-6", "06/03/2025",
        "2025-03-06T00:00:00Z", "", "٢٠٢٥-٠٣-٠٦", " 2025-03-06",
    ])
    func refusesBadDate(date: String) throws {
        let failure = try #require(Self.failure(Self.file([Self.row(date: date)])))
        #expect(failure.errors.map(\.pointer) == ["/rows/2/value_date"])
        #expect(failure.errors.first?.message.contains("YYYY-MM-DD") == true)
    }

    @Test func acceptsLeapDays() throws {
        #expect(throws: Never.self) { try Self.validate(Self.file([Self.row(date: "2024-02-29")])).get() }
        #expect(throws: Never.self) { try Self.validate(Self.file([Self.row(date: "2000-02-29")])).get() }
        #expect(throws: Never.self) { try Self.validate(Self.file([Self.row(date: "9999-12-31")])).get() }
    }

    @Test func refusesMixedValueDates() throws {
        let rows = [Self.row(date: "2025-02-30"), Self.row(), Self.row(date: "2025-03-07"), Self.row(), Self.row(date: "2025-03-05")]
        let failure = try #require(Self.failure(Self.file(rows)))
        #expect(failure.errors.map(\.pointer) == ["/rows/2/value_date", "/rows/4/value_date", "/rows/6/value_date"])
        // The first valid date (line 3) sets the file's date.
        #expect(failure.errors[1].message.contains("`2025-03-07` differs from the file's value date `2025-03-06` (line 3)"))
    }

    @Test func refusesWrongFieldCounts() throws {
        let rows = [Self.row() + ",extra", "Data & AI Office,Gulf Commercial Bank,****4821,AED,100.00", Self.row(), "x"]
        let failure = try #require(Self.failure(Self.file(rows)))
        #expect(failure.errors.map(\.pointer) == ["/rows/2", "/rows/3", "/rows/5"])
        #expect(failure.errors[0].message.hasPrefix("expected 6 fields"))
        #expect(failure.errors[0].message.hasSuffix("found 7"))
        #expect(failure.errors[1].message.hasSuffix("found 5"))
    }

    @Test func refusesBadLengths() throws {
        let rows = [
            Self.row(entity: String(repeating: "e", count: 201), bank: "", account: String(repeating: "9", count: 51)),
            Self.row(entity: String(repeating: "e", count: 200), bank: String(repeating: "b", count: 200), account: "1"),
        ]
        let failure = try #require(Self.failure(Self.file(rows)))
        #expect(failure.errors.map(\.pointer) == ["/rows/2/entity", "/rows/2/bank", "/rows/2/account_ref"])
        #expect(failure.errors[0].message == "entity is 201 characters long; at most 200 are allowed")
        #expect(failure.errors[1].message == "bank is empty; it needs 1 to 200 characters")
    }

    @Test func reportsEveryFailingCellOfARowWithTheRecordsStartingLine() throws {
        let text = Self.header + "\n\"multi\nline\",b,c,AED,1,2025-03-06\n\n\"\",\"\",\"\",usd,1.00000,2025-02-30\n"
        let failure = try #require(Self.failure(text))
        #expect(
            failure.errors.map(\.pointer) == [
                "/rows/5/entity", "/rows/5/bank", "/rows/5/account_ref", "/rows/5/currency", "/rows/5/balance", "/rows/5/value_date",
            ])
    }

    @Test func capsErrorsButCountsThemAll() throws {
        let bad = (0..<250).map { _ in Self.row(currency: "XYZ") }
        let capped = try #require(Self.failure(Self.file(bad)))
        #expect(capped.errors.count == 100)
        #expect(capped.totalErrors == 250)
        #expect(capped.errors.first?.pointer == "/rows/2/currency")
        #expect(capped.errors.last?.pointer == "/rows/101/currency")
        let five = try #require(Self.failure(Self.file(bad + [Self.row(balance: "x")]), maxErrors: 5))
        #expect(five.errors.count == 5)
        #expect(five.totalErrors == 251)
    }

    @Test func validRowsStillFlowButTheFileIsRefused() {
        let (result, rows) = Self.validate(Array(Self.file([Self.row(), Self.row(currency: "XYZ"), Self.row()]).utf8))
        #expect(rows.map(\.line) == [2, 4])
        #expect(throws: TreasuryValidationFailure.self) { try result.get() }
    }

    @Test func refusesTotalOverflow() throws {
        let rows = [Self.row(balance: "922337203685477"), Self.row(balance: "1")]
        let failure = try #require(Self.failure(Self.file(rows)))
        #expect(failure.errors.map(\.pointer) == ["/rows/3/balance"])
        #expect(failure.errors.first?.message.contains("AED total") == true)
    }

    @Test func syntaxErrorsBecomeRowErrors() throws {
        let unterminated = try #require(Self.failure(Self.file([Self.row()]) + "\"Fund,x,y,AED,1,2025-03-06\n"))
        #expect(unterminated.errors.map(\.pointer) == ["/rows/3"])
        #expect(unterminated.errors.first?.message == "a quoted field that starts here is never closed")
        var bytes = Array(Self.file([Self.row(), Self.row()]).utf8)
        bytes.insert(0xFF, at: bytes.count - 3)
        // Whatever the chunking, rows before the error are checked and the error comes last.
        for chunkSize in [1, 7, 4096] {
            var withBadRowFirst = Array(Self.file([Self.row(currency: "XYZ")]).utf8)
            withBadRowFirst += bytes.dropFirst(Self.header.utf8.count + 1)
            if case .failure(let failure) = Self.validate(withBadRowFirst, chunkSize: chunkSize).result {
                #expect(failure.errors.map(\.pointer) == ["/rows/2/currency", "/rows/4"], "chunk size \(chunkSize)")
                #expect(failure.errors.last?.message == "the file is not valid UTF-8")
            } else {
                Issue.record("invalid UTF-8 was accepted")
            }
        }
        // A syntax error in the header: no claim that the file is empty.
        let badHeader = try #require(Self.failure("entity,\"bank\n"))
        #expect(badHeader.errors.map(\.pointer) == ["/rows/1"])
    }

    // MARK: a large file

    @Test func validatesAHundredThousandRowsInChunks() throws {
        let currencies = ["AED", "EUR", "GBP", "SAR", "USD"]
        var expected: [String: (units: Int64, count: Int)] = [:]
        var text = Self.header + "\r\n"
        text.reserveCapacity(8_000_000)
        for index in 0..<100_000 {
            let currency = currencies[index % currencies.count]
            // Deterministic balances of every sign and scale, up to about a hundred million.
            let units = Int64((index &* 7_919) % 2_000_003 - 1_000_000) * Int64(index % 1_000 + 1) + Int64(index % 7)
            let magnitude = units.magnitude
            let fraction = String(magnitude % 10_000)
            let balance = (units < 0 ? "-" : "") + "\(magnitude / 10_000)." + String(repeating: "0", count: 4 - fraction.count) + fraction
            let entity = index % 3 == 0 ? "\"Fund \(index), \"\"East\"\"\"" : "Entity \(index)"
            text += "\(entity),Bank \(index % 17),****\(index % 10_000),\(currency),\(balance),2025-03-06\r\n"
            let running = expected[currency] ?? (0, 0)
            expected[currency] = (running.units + units, running.count + 1)
        }
        let bytes = Array(text.utf8)
        let (result, rows) = Self.validate(bytes, chunkSize: 64 * 1024)
        let summary = try result.get()
        #expect(summary.rowCount == 100_000)
        #expect(rows.count == 100_000)
        #expect(rows.last?.line == 100_001)
        #expect(summary.currencies == currencies)
        for total in summary.totals {
            #expect(total.total.tenThousandths == expected[total.currency]?.units)
            #expect(total.count == 20_000)
        }
    }
}
