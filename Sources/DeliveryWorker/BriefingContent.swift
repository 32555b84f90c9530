import BriefingPDF
import Foundation
import Logging
import PostgresNIO
import SitrepRuntime

/// What the messages of a briefing are made of.
public struct BriefingContent: Sendable {
    public struct Section: Sendable {
        public var heading: String
        public var headingAr: String
        public var body: String
        public var bodyAr: String
    }

    public var title: String
    public var titleAr: String
    /// `YYYY-MM-DD`.
    public var date: String
    public var summary: String
    public var summaryAr: String
    public var sections: [Section]
    var document: BriefingDocument?
}

/// Briefings by id, read once per worker, and their PDFs rendered once (a distributed
/// briefing's content is frozen, so neither goes stale).
actor BriefingContentCache {
    let db: PostgresClient
    let logger: Logger
    var briefings: [UUID: BriefingContent] = [:]
    var pdfs: [UUID: [UInt8]] = [:]

    init(db: PostgresClient, logger: Logger) {
        self.db = db
        self.logger = logger
    }

    struct Missing: Error, CustomStringConvertible {
        var id: UUID
        var description: String { "briefing \(id.lowercasedString) does not exist" }
    }

    func briefing(_ id: UUID) async throws -> BriefingContent {
        if let cached = briefings[id] { return cached }
        let rows = try await db.query(
            """
            SELECT title, title_ar, to_char(briefing_date, 'YYYY-MM-DD'), summary, summary_ar, sections::text, revision,
                   content_hash, coalesce(approved_by, ''), approved_at, status
            FROM briefings WHERE id = \(id)
            """, logger: logger)
        for try await (title, titleAr, date, summary, summaryAr, sectionsJSON, revision, hash, approvedBy, approvedAt, status) in rows.decode(
            (String, String, String, String, String, String, Int, String, String, Date?, String).self)
        {
            let sections = Self.sections(sectionsJSON)
            var content = BriefingContent(
                title: title, titleAr: titleAr, date: date, summary: summary, summaryAr: summaryAr, sections: sections, document: nil)
            if let approvedAt {
                content.document = BriefingDocument(
                    title: title, titleAr: titleAr, briefingDate: date, summary: summary, summaryAr: summaryAr,
                    sections: sections.map { .init(heading: $0.heading, headingAr: $0.headingAr, body: $0.body, bodyAr: $0.bodyAr) },
                    revision: revision, contentHash: hash, approvedBy: approvedBy, approvedAt: approvedAt, status: status)
            }
            briefings[id] = content
            return content
        }
        throw Missing(id: id)
    }

    /// The briefing's PDF, or nil when it cannot be rendered (the mail goes without it).
    func pdf(_ id: UUID) async -> [UInt8]? {
        if let cached = pdfs[id] { return cached }
        guard let document = try? await briefing(id).document else { return nil }
        do {
            let bytes = try await BriefingPDF.renderInBackground(document)
            pdfs[id] = bytes
            return bytes
        } catch {
            logger.warning("dispatch: the briefing PDF could not be rendered", metadata: ["briefing": "\(id.lowercasedString)", "error": "\(error)"])
            return nil
        }
    }

    static func sections(_ json: String) -> [BriefingContent.Section] {
        guard case .array(let items)? = try? JSONParser.parse(Array(json.utf8)) else { return [] }
        return items.compactMap { item in
            guard case .object(let o) = item else { return nil }
            func text(_ key: String) -> String {
                if case .string(let s)? = o[key] { return s }
                return ""
            }
            return .init(heading: text("heading"), headingAr: text("headingAr"), body: text("body"), bodyAr: text("bodyAr"))
        }
    }
}
