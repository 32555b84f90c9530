import AsyncHTTPClient
import Crypto
import Foundation
import Generated
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import SitrepRuntime
import Testing

/// The treasury upload end to end: streamed CSV in, validated all or nothing, stored with `COPY`,
/// duplicates refused, progress observable while the file streams, positions read back.
@Suite("treasury uploads", .enabled(if: SitrepHarness.isConfigured))
struct TreasuryUploadTests {
    static let header = "entity,bank,account_ref,currency,balance,value_date"

    /// A valid file exercising the format: BOM, CRLF, a quoted field with a comma and a quote,
    /// one with a line break, an empty line.
    static let goodFile =
        "\u{FEFF}" + header + "\r\n"
        + "Data & AI Office,Gulf Commercial Bank,****4821,AED,12500000.00,2025-03-06\r\n"
        + "Data & AI Office,\"Gulf Commercial Bank, DIFC\",****7730,USD,1840000.1,2025-03-06\r\n"
        + "\r\n"
        + "\"Digital \"\"Services\"\" Fund\",\"National\nInvestment Bank\",****1029,EUR,615250.50,2025-03-06\r\n"
        + "Digital Services Fund,National Investment Bank,****1030,AED,-0.0001,2025-03-06\r\n"

    static func upload(
        _ client: any TestClientProtocol, _ token: String, _ csv: String, fileName: String = "positions.csv", uploadId: UUID? = nil,
        contentType: String = "text/csv"
    ) async throws -> TestResponse {
        var headers = HTTPFields.auth(token)
        headers[.contentType] = contentType
        var uri = "/v1/treasury/uploads?fileName=\(fileName)"
        if let uploadId { uri += "&uploadId=\(uploadId.lowercasedString)" }
        return try await client.execute(uri: uri, method: .post, headers: headers, body: buffer(csv))
    }

    static func get(_ client: any TestClientProtocol, _ uri: String, _ token: String) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .get, headers: .auth(token))
    }

    static func count(_ table: String, _ h: SitrepHarness) async throws -> Int {
        try await DistributionTests.count("SELECT count(*)::int8 FROM \(table)", h)
    }

    /// The pointers of a 422 refusal of `csv`.
    static func refusedPointers(_ client: any TestClientProtocol, _ token: String, _ csv: String) async throws -> [String] {
        let r = try await upload(client, token, csv)
        #expect(r.status == .unprocessableContent, "\(r.text)")
        return try r.decode(Problem.self).errors?.map(\.pointer) ?? []
    }

    static func sha256(_ text: String) -> String {
        SHA256.hash(data: Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test func anAcceptedFileIsStoredAndReadBack() async throws {
        try await SitrepHarness.with { client, h in
            let id = UUID()
            let r = try await Self.upload(client, h.tokens.admin, Self.goodFile, fileName: "positions-2025-03-06.csv", uploadId: id)
            #expect(r.status == .created, "\(r.text)")
            #expect(r.headers[.location] == "/v1/treasury/uploads/\(id.lowercasedString)")
            let upload = try r.decode(TreasuryUpload.self)
            #expect(upload.id == id)
            #expect(upload.rowCount == 4)
            #expect(upload.sizeBytes == Self.goodFile.utf8.count)
            #expect(upload.sha256 == Self.sha256(Self.goodFile))
            #expect(upload.currencies == ["AED", "EUR", "USD"])
            #expect(
                upload.totals == [
                    CurrencyTotal(currency: "AED", total: "12499999.9999", accountCount: 2),
                    CurrencyTotal(currency: "EUR", total: "615250.50", accountCount: 1),
                    CurrencyTotal(currency: "USD", total: "1840000.10", accountCount: 1),
                ])
            #expect(upload.asOfDate.description == "2025-03-06")
            #expect(upload.fileName == "positions-2025-03-06.csv")

            // The same upload by id, in the list, and its progress.
            do {
                let r = try await Self.get(client, "/v1/treasury/uploads/\(id.lowercasedString)", h.tokens.executive)
                #expect(r.status == .ok)
                #expect(try r.decode(TreasuryUpload.self) == upload)
            }
            do {
                let r = try await Self.get(client, "/v1/treasury/uploads", h.tokens.admin)
                #expect(try r.decode(TreasuryUploadPage.self).items == [upload])
            }
            do {
                let r = try await Self.get(client, "/v1/treasury/uploads/\(id.lowercasedString)/progress", h.tokens.admin)
                let p = try r.decode(TreasuryUploadProgress.self)
                #expect(p.state == .accepted && p.rowsParsed == 4 && p.errorCount == 0 && p.outcome == nil)
                #expect(p.bytesReceived == Self.goodFile.utf8.count && p.bytesExpected == Self.goodFile.utf8.count)
            }

            // Positions: exact balances in canonical form, quoted fields intact, totals per currency.
            var page: TreasuryPositions?
            do {
                let r = try await Self.get(client, "/v1/treasury/positions?asOf=2025-03-10", h.tokens.executive)
                #expect(r.status == .ok, "\(r.text)")
                page = try r.decode(TreasuryPositions.self)
            }
            let positions = try #require(page)
            #expect(positions.uploadId == id && positions.nextCursor == nil)
            #expect(positions.positions.map(\.balance) == ["12500000.00", "1840000.10", "615250.50", "-0.0001"])
            #expect(positions.positions[1].bank == "Gulf Commercial Bank, DIFC")
            #expect(positions.positions[2].entity == "Digital \"Services\" Fund")
            #expect(positions.positions[2].bank == "National\nInvestment Bank")
            #expect(
                positions.totals == [
                    CurrencyTotal(currency: "AED", total: "12499999.9999", accountCount: 2),
                    CurrencyTotal(currency: "EUR", total: "615250.50", accountCount: 1),
                    CurrencyTotal(currency: "USD", total: "1840000.10", accountCount: 1),
                ])

            // Paging keeps the totals on every page.
            var seen: [String] = []
            var cursor: String?
            repeat {
                let uri = "/v1/treasury/positions?asOf=2025-03-06&limit=3" + (cursor.map { "&cursor=\($0)" } ?? "")
                let r = try await Self.get(client, uri, h.tokens.admin)
                let p = try r.decode(TreasuryPositions.self)
                #expect(p.totals.count == 3)
                seen += p.positions.map(\.accountRef)
                cursor = p.nextCursor
            } while cursor != nil
            #expect(seen == ["****4821", "****7730", "****1029", "****1030"])

            // Before the value date there is nothing; a bad cursor is a 400.
            do {
                let r = try await Self.get(client, "/v1/treasury/positions?asOf=2025-03-05", h.tokens.admin)
                #expect(r.status == .notFound && r.problemCode == "resource.not_found")
            }
            do {
                let r = try await Self.get(client, "/v1/treasury/positions?cursor=bm9wZQ", h.tokens.admin)
                #expect(r.status == .badRequest && r.problemCode == "pagination.invalid_cursor")
            }

            // Audited, with the checksum and the totals.
            let rows = try await h.db.client.query(
                "SELECT outcome, details->>'sha256', details->'totals'->>'AED' FROM audit_events WHERE action = 'treasury_upload.accepted'")
            var audited: [(String, String, String)] = []
            for try await row in rows.decode((String, String, String).self) { audited.append(row) }
            #expect(audited.count == 1)
            #expect(audited.first?.0 == "succeeded" && audited.first?.1 == upload.sha256 && audited.first?.2 == "12499999.9999")
        }
    }

    @Test func theLatestUploadOnOrBeforeTheDateIsReported() async throws {
        try await SitrepHarness.with { client, h in
            let march6 = try await Self.upload(client, h.tokens.admin, Self.goodFile).decode(TreasuryUpload.self)
            let march9 = Self.header + "\nData & AI Office,Gulf Commercial Bank,****4821,AED,1.00,2025-03-09\n"
            let later = try await Self.upload(client, h.tokens.admin, march9).decode(TreasuryUpload.self)
            let again = Self.header + "\nData & AI Office,Gulf Commercial Bank,****4821,AED,2.00,2025-03-09\n"
            let newest = try await Self.upload(client, h.tokens.admin, again).decode(TreasuryUpload.self)
            for (asOf, expected) in [("2025-03-06", march6.id), ("2025-03-08", march6.id), ("2025-03-09", newest.id), ("2030-01-01", newest.id)] {
                let r = try await Self.get(client, "/v1/treasury/positions?asOf=\(asOf)", h.tokens.admin)
                #expect(try r.decode(TreasuryPositions.self).uploadId == expected, "asOf \(asOf)")
            }
            #expect(later.id != newest.id)
            // Newest first, paged.
            let first = try await client.execute(uri: "/v1/treasury/uploads?limit=2", method: .get, headers: .auth(h.tokens.admin))
                .decode(TreasuryUploadPage.self)
            #expect(first.items.map(\.id) == [newest.id, later.id])
            let cursor = try #require(first.nextCursor)
            let second = try await client.execute(uri: "/v1/treasury/uploads?limit=2&cursor=\(cursor)", method: .get, headers: .auth(h.tokens.admin))
                .decode(TreasuryUploadPage.self)
            #expect(second.items.map(\.id) == [march6.id] && second.nextCursor == nil)
        }
    }

    @Test func aFileWithBadRowsIsRefusedWholeListingEveryCell() async throws {
        try await SitrepHarness.with { client, h in
            let id = UUID()
            let csv =
                Self.header + "\n"
                + "Data & AI Office,Gulf Commercial Bank,****4821,AED,12500000.00,2025-03-06\n"
                + "Data & AI Office,Gulf Commercial Bank,****7730,XYZ,1840000.00,2025-03-06\n"
                + "Data & AI Office,Gulf Commercial Bank,****7731,USD,1.840.000,2025-03-06\n"
                + "Data & AI Office,Gulf Commercial Bank,****7732,USD,1e5,2025-03-07\n"
                + "Data & AI Office,,****7733,USD,12345678901234567,2025-02-30\n"
                + "too,few,fields\n"
            let r = try await Self.upload(client, h.tokens.admin, csv, uploadId: id)
            #expect(r.status == .unprocessableContent, "\(r.text)")
            let problem = try r.decode(Problem.self)
            #expect(problem.code == "validation.failed")
            #expect(
                problem.errors?.map(\.pointer) == [
                    "/rows/3/currency", "/rows/4/balance", "/rows/5/balance", "/rows/5/value_date", "/rows/6/bank", "/rows/6/balance",
                    "/rows/6/value_date", "/rows/7",
                ])
            #expect(problem.detail?.contains("nothing was stored") == true)
            // Nothing stored, the refusal audited, the progress says why.
            #expect(try await Self.count("treasury_uploads", h) == 0)
            #expect(try await Self.count("treasury_positions", h) == 0)
            let audited = try await DistributionTests.count(
                "SELECT count(*)::int8 FROM audit_events WHERE action = 'treasury_upload.refused' AND outcome = 'refused' AND entity_id = '\(id.lowercasedString)'",
                h)
            #expect(audited == 1)
            do {
                let r = try await Self.get(client, "/v1/treasury/uploads/\(id.lowercasedString)/progress", h.tokens.admin)
                let p = try r.decode(TreasuryUploadProgress.self)
                #expect(p.state == .refused && p.outcome == "validation.failed" && p.errorCount == 8 && p.rowsParsed == 6)
            }
            do {
                let r = try await Self.get(client, "/v1/treasury/uploads/\(id.lowercasedString)", h.tokens.admin)
                #expect(r.status == .notFound)
            }
        }
    }

    @Test func headerEmptyFileSyntaxAndOverflowAreRefused() async throws {
        try await SitrepHarness.with { client, h in
            let admin = h.tokens.admin
            let refused1 = try await Self.refusedPointers(client, admin, "entity,bank,account,currency,balance,value_date\nA,B,C,AED,1,2025-03-06\n")

            #expect(refused1 == ["/rows/1"])
            let refused2 = try await Self.refusedPointers(client, admin, "")

            #expect(refused2 == ["/rows"])
            let refused3 = try await Self.refusedPointers(client, admin, Self.header + "\r\n")

            #expect(refused3 == ["/rows"])
            let refused4 = try await Self.refusedPointers(client, admin, Self.header + "\nA,B,C,AED,1,2025-03-06\nA,\"B,C,AED,1,2025-03-06\n")

            #expect(refused4 == ["/rows/3"])
            let refused5 = try await Self.refusedPointers(client, admin, Self.header + "\nA,B\u{0},C,AED,1,2025-03-06\n")

            #expect(refused5 == ["/rows/2/bank"])
            let big = "900000000000000.00"
            let refused6 = try await Self.refusedPointers(client, admin, Self.header + "\nA,B,C,AED,\(big),2025-03-06\nA,B,D,AED,\(big),2025-03-06\n")

            #expect(refused6 == ["/rows/3/balance"])
            #expect(try await Self.count("treasury_positions", h) == 0)
        }
    }

    @Test func theSameFileTwiceIsAConflictNamingTheFirst() async throws {
        try await SitrepHarness.with { client, h in
            let first = try await Self.upload(client, h.tokens.admin, Self.goodFile).decode(TreasuryUpload.self)
            let again = try await Self.upload(client, h.tokens.admin, Self.goodFile, fileName: "copy.csv")
            #expect(again.status == .conflict)
            let problem = try again.decode(Problem.self)
            #expect(problem.code == "treasury.duplicate_file")
            #expect(problem.detail?.contains(first.id.lowercasedString) == true)
            #expect(try await Self.count("treasury_uploads", h) == 1)
            #expect(try await Self.count("treasury_positions", h) == 4)
            // One byte different is another file.
            let changed = try await Self.upload(client, h.tokens.admin, Self.goodFile + "\n")
            #expect(changed.status == .created, "\(changed.text)")
            // A chosen id used before is a conflict too.
            let reused = try await Self.upload(client, h.tokens.admin, Self.goodFile + "\n\n", uploadId: first.id)
            #expect(reused.status == .conflict && reused.problemCode == "treasury.upload_id_taken")
        }
    }

    @Test func badRequestsAreProblems() async throws {
        try await SitrepHarness.with { client, h in
            let json = try await Self.upload(client, h.tokens.admin, Self.goodFile, contentType: "application/json")
            #expect(json.status == .unsupportedMediaType && json.problemCode == "request.unsupported_media_type")
            var headers = HTTPFields.auth(h.tokens.admin)
            headers[.contentType] = "text/csv"
            let noName = try await client.execute(uri: "/v1/treasury/uploads", method: .post, headers: headers, body: buffer(Self.goodFile))
            #expect(noName.status == .badRequest && noName.problemCode == "request.invalid_parameter", "\(noName.text)")
            let badId = try await client.execute(
                uri: "/v1/treasury/uploads?fileName=x.csv&uploadId=nope", method: .post, headers: headers, body: buffer("x"))
            #expect(badId.status == .badRequest)
            // Declared too large: refused before reading.
            let tooBig = String(repeating: "x", count: SitrepHarness.maxUploadBytes + 1)
            let r = try await Self.upload(client, h.tokens.admin, tooBig)
            #expect(r.status == .contentTooLarge && r.problemCode == "request.too_large")
            // Executives read, they do not upload.
            let exec = try await Self.upload(client, h.tokens.executive, Self.goodFile)
            #expect(exec.status == .forbidden)
            do {
                let r = try await Self.get(client, "/v1/treasury/uploads/\(UUID().uuidString)/progress", h.tokens.admin)
                #expect(r.status == .notFound)
            }
            #expect(try await Self.count("treasury_uploads", h) == 0)
        }
    }

    @Test func aStreamedBodyPastItsLimitIsA413() async throws {
        let stream = RequestBodyStream(bytes: Array(repeating: 65, count: 100), limit: 50)
        var received = 0
        await #expect(throws: ProblemError.self) {
            for try await chunk in stream { received += chunk.readableBytes }
        }
        #expect(received == 0)
        var total = 0
        for try await chunk in RequestBodyStream(bytes: Array(repeating: 65, count: 50), limit: 50) { total += chunk.readableBytes }
        #expect(total == 50)
    }

    @Test func aHundredThousandRowsAreAcceptedExactly() async throws {
        try await SitrepHarness.with { client, h in
            var csv = Self.header + "\n"
            csv.reserveCapacity(8 << 20)
            var cents = 0
            for i in 0..<100_000 {
                let c = (i * 7919) % 1_000_000
                cents += c
                csv += "Entity \(i % 50),Bank \(i % 7),ACC\(i),AED,\(c / 100).\(String(format: "%02d", c % 100)),2025-03-06\n"
            }
            let r = try await Self.upload(client, h.tokens.admin, csv)
            #expect(r.status == .created, "\(r.text.prefix(500))")
            #expect(try r.decode(TreasuryUpload.self).rowCount == 100_000)
            #expect(try await Self.count("treasury_positions", h) == 100_000)
            let p = try await client.execute(uri: "/v1/treasury/positions?asOf=2025-03-06&limit=1", method: .get, headers: .auth(h.tokens.admin))
                .decode(TreasuryPositions.self)
            let expected = "\(cents / 100).\(String(format: "%02d", cents % 100))"
            #expect(p.totals == [CurrencyTotal(currency: "AED", total: expected, accountCount: 100_000)])
        }
    }

    /// A slow client: progress is readable while the body streams, a third concurrent upload is
    /// refused with 503, and the answer comes when the file ends.
    @Test func progressIsVisibleWhileTheFileStreams() async throws {
        try await SitrepHarness.instances(1, setup: .live) { clients, h in
            let client = clients[0]
            let port = try #require(client.port)
            let http = HTTPClient.shared
            let rows = (0..<3000).map { "Data & AI Office,Bank,ACC\($0),USD,\($0).25,2025-03-06\n" }
            let chunks = [Self.header + "\n"] + stride(from: 0, to: rows.count, by: 500).map { rows[$0..<min($0 + 500, rows.count)].joined() }
            let gate = Gate()
            func slowUpload(_ id: UUID, waitFor: Int?) async throws -> HTTPClientResponse {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/treasury/uploads?fileName=slow.csv&uploadId=\(id.lowercasedString)")
                request.method = .POST
                request.headers.add(name: "Authorization", value: "Bearer \(h.tokens.admin)")
                request.headers.add(name: "Content-Type", value: "text/csv")
                let body = AsyncStream<ByteBuffer> { continuation in
                    let task = Task {
                        for (i, chunk) in chunks.enumerated() {
                            if i == waitFor { await gate.wait() }
                            continuation.yield(ByteBuffer(string: chunk))
                            try? await Task.sleep(for: .milliseconds(40))
                        }
                        continuation.finish()
                    }
                    continuation.onTermination = { _ in task.cancel() }
                }
                request.body = .stream(body, length: .unknown)
                return try await http.execute(request, timeout: .seconds(60))
            }
            let first = UUID()
            let second = UUID()
            // Both stall before their fifth chunk until the gate opens; progress written during the
            // stall shows the rows read before it.
            async let a = slowUpload(first, waitFor: 4)
            async let b = slowUpload(second, waitFor: 4)
            var sawReceiving = false
            for _ in 0..<100 {
                let r = try await client.execute(
                    uri: "/v1/treasury/uploads/\(first.lowercasedString)/progress", method: .get, headers: .auth(h.tokens.admin))
                if r.status == .ok, let p = try? r.decode(TreasuryUploadProgress.self), p.state == .receiving, p.rowsParsed == 1500 {
                    #expect(p.bytesExpected == nil && p.bytesReceived > 0 && p.errorCount == 0)
                    sawReceiving = true
                    break
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(sawReceiving, "progress showed rows while the body streamed")
            // Two uploads hold both slots: a third is told to come back.
            let busy = try await Self.upload(client, h.tokens.admin, Self.goodFile)
            #expect(busy.status == .serviceUnavailable && busy.problemCode == "service.busy")
            #expect(busy.headers[.retryAfter] != nil)
            await gate.open()
            let (ra, rb) = try await (a, b)
            // Same rows, same bytes: whichever finished second is the duplicate.
            #expect(Set([ra.status.code, rb.status.code]) == [201, 409])
            let winner = ra.status.code == 201 ? first : second
            let loser = winner == first ? second : first
            let accepted = try await client.execute(
                uri: "/v1/treasury/uploads/\(winner.lowercasedString)/progress", method: .get, headers: .auth(h.tokens.admin)
            ).decode(TreasuryUploadProgress.self)
            #expect(accepted.state == .accepted && accepted.rowsParsed == 3000)
            let refused = try await client.execute(
                uri: "/v1/treasury/uploads/\(loser.lowercasedString)/progress", method: .get, headers: .auth(h.tokens.admin)
            ).decode(TreasuryUploadProgress.self)
            #expect(refused.state == .refused && refused.outcome == "treasury.duplicate_file")
            #expect(try await Self.count("treasury_positions", h) == 3000)
        }
    }
}

/// Holds the slow uploads back until the test has looked at their progress.
actor Gate {
    private var isOpen = false

    func open() { isOpen = true }

    func wait() async {
        while !isOpen { try? await Task.sleep(for: .milliseconds(20)) }
    }
}
