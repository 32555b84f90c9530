import Foundation
import Generated
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import PostgresNIO
import SitrepRuntime
import Storage
import Testing

@testable import Handlers

/// The unfiltered list page is written straight from database rows (`writeSignal`), not through
/// `Signal` and its generated encoder: these tests pin its bytes to what the generated encoder
/// writes for the same rows, over text that needs escaping, NULLs, empty and odd tag arrays.
@Suite(.serialized) struct SignalPageWriterTests {
    /// Rows that exercise every column's cases: quotes, backslashes, control characters, U+2028,
    /// Arabic, NULL optionals, triage fields set, empty and non-empty tags.
    static func insertTrickyRows(_ client: PostgresClient) async throws {
        try await client.query(
            #"""
            INSERT INTO signals (id, source, source_id, title, summary, source_url, category, severity, confidence, model_version,
                                 tags, region, published_at, content_hash, status, triage_note, triaged_by, triaged_at)
            VALUES
              ('0195793d-0000-7000-8000-000000000001', 'reuters', 'q-1', 'He said "stop" \ now', E'line one\nline two\ttab\u0001ctl',
               'https://example.org/a?b=%22c%22&d=1', 'security', 'critical', 0.875, 'm-1', ARRAY['ports', 'say "hi"', E'back\\slash'], 'Gulf',
               now() - interval '1 minute', 'h1', 'escalated', E'watch \u2028 this', 'oid-analyst', now() - interval '30 seconds'),
              ('0195793d-0000-7000-8000-000000000002', 'wam', 'q-2', 'ميناء جبل علي', 'تقرير موجز', NULL, 'economic', 'low', 0,
               'm-2', ARRAY[]::text[], NULL, now() - interval '2 minutes', 'h2', 'new', NULL, NULL, NULL),
              ('0195793d-0000-7000-8000-000000000003', 'x', 'q-3', ' t ', ' ', NULL, 'geopolitical', 'medium', 1,
               'm-3', ARRAY[' spaced tag '], '', now() - interval '3 minutes', 'h3', 'dismissed', '', 'oid-2', now())
            """#)
    }

    /// What the generated encoder writes for the newest `limit` rows after `after`.
    static func expected(_ client: PostgresClient, limit: Int, after: UUID?) async throws -> (bytes: [UInt8], next: UUID?) {
        var items: [Signal] = []
        // The typed path's query: the columns one cell each, read by `CellReader`.
        let rows =
            if let after {
                try await client.query(
                    """
                    SELECT \(unescaped: SitrepHandlers.signalColumns) FROM signals
                    WHERE (published_at, id) < (SELECT published_at, id FROM signals WHERE id = \(after))
                    ORDER BY published_at DESC, id DESC LIMIT \(limit + 1)
                    """)
            } else {
                try await client.query(
                    "SELECT \(unescaped: SitrepHandlers.signalColumns) FROM signals ORDER BY published_at DESC, id DESC LIMIT \(limit + 1)")
            }
        for try await row in rows { items.append(try SitrepHandlers.signal(from: row)) }
        let next = trimPage(&items, limit: limit, id: \.id)
        return (SignalPage(items: items, nextCursor: next).jsonBytes(), next.map { _ in items.last!.id })
    }

    @Test func pagesAreTheGeneratedEncodersBytes() async throws {
        try await SitrepHarness.with { client, h in
            try await Self.insertTrickyRows(h.db.client)
            for limit in [1, 2, 3, 10, 11, 26, 50, 200] {
                var after: UUID?
                var cursor: String?
                var pages = 0
                repeat {
                    let (want, next) = try await Self.expected(h.db.client, limit: limit, after: after)
                    let uri = "/v1/signals?limit=\(limit)" + (cursor.map { "&cursor=\($0)" } ?? "")
                    try await client.execute(uri: uri, method: .get, headers: .auth(h.tokens.viewer)) { r in
                        #expect(r.status == .ok)
                        #expect(r.text == String(decoding: want, as: UTF8.self), "limit \(limit), page \(pages)")
                    }
                    after = next
                    cursor = next.map { Cursor.encode($0) }
                    pages += 1
                } while after != nil && pages < 10
                #expect(pages == (3 + limit - 1) / limit)
            }
        }
    }

    /// Every page size has its statement (the LIMIT written in, rounded up to one of
    /// ``SitrepHandlers/pageRowCounts``); a page past the largest is a bug, refused rather than
    /// cut short.
    @Test func everyLimitHasAStatementAndNoneBeyondTheLargest() async throws {
        try await SitrepHarness.with { _, h in
            try await Self.insertTrickyRows(h.db.client)
            let statements = RowCallbackStatements()
            for limit in [1, 10, 11, 25, 26, 50, 51, 75, 76, 100, 101, 150, 151, 199, 200] {
                let page = try await SitrepHandlers.latestPage(
                    h.db.client, statements, limit: limit, after: nil, logger: Logger(label: "sitrep.test"))
                let want = try await Self.expected(h.db.client, limit: limit, after: nil).bytes
                #expect(page.body.buffer.readableBytesView.elementsEqual(want), "limit \(limit)")
            }
            await #expect(throws: SitrepHandlers.PageSizeError.self) {
                _ = try await SitrepHandlers.latestPage(h.db.client, statements, limit: 201, after: nil, logger: Logger(label: "sitrep.test"))
            }
        }
    }

    /// A row's version is added to the page's name as the bytes of its ETag, with or without the
    /// String in between.
    @Test func pageNamesFromVersionsAndFromETagsAgree() {
        let id = UUID()
        for version in [0, 7, 10, 99, 1_234_567, Int.max, -1, Int.min + 1] {
            var fromVersion = SitrepHandlers.PageName(capacity: 1)
            var fromTag = SitrepHandlers.PageName(capacity: 1)
            fromVersion.add(id, version: version)
            fromTag.add(id, etag: ETag.make(version))
            #expect(fromVersion.etag(next: nil) == fromTag.etag(next: nil), "version \(version)")
        }
    }

    /// The direct writer and the typed path name a page alike, so a client's `If-None-Match`
    /// keeps matching whichever path answered it (the filtered path still goes through `Signal`).
    @Test func theETagNamesRowsAndVersions() async throws {
        try await SitrepHarness.with { client, h in
            try await Self.insertTrickyRows(h.db.client)
            let first = try await client.execute(uri: "/v1/signals?limit=2", method: .get, headers: .auth(h.tokens.viewer))
            let tag = try #require(first.headers[.eTag])
            try await client.execute(uri: "/v1/signals?limit=2", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: tag)) { r in
                #expect(r.status == .notModified)
            }
            try await h.db.client.query("UPDATE signals SET version = version + 1 WHERE id = '0195793d-0000-7000-8000-000000000002'")
            try await client.execute(uri: "/v1/signals?limit=2", method: .get, headers: .auth(h.tokens.viewer, ifNoneMatch: tag)) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.eTag] != tag)
            }
        }
    }
}
