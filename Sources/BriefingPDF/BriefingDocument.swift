import Foundation

/// An approved daily briefing, as plain values: everything the PDF shows and nothing else.
///
/// The English and Arabic texts are independent; an empty string leaves that part out.
/// Bodies and summaries are plain text in which blank lines separate paragraphs (a single
/// line break inside a paragraph is kept as a line break).
public struct BriefingDocument: Sendable, Equatable {
    /// One titled section, in both languages.
    public struct Section: Sendable, Equatable {
        public var heading: String
        public var headingAr: String
        public var body: String
        public var bodyAr: String

        public init(heading: String, headingAr: String, body: String, bodyAr: String) {
            self.heading = heading
            self.headingAr = headingAr
            self.body = body
            self.bodyAr = bodyAr
        }
    }

    public var title: String
    public var titleAr: String
    /// The day the briefing is for, as shown (for example "2025-03-09").
    public var briefingDate: String
    public var summary: String
    public var summaryAr: String
    public var sections: [Section]
    public var revision: Int
    /// SHA-256 of the approved content, 64 hex characters.
    public var contentHash: String
    /// Display name of the approver.
    public var approvedBy: String
    public var approvedAt: Date
    /// "approved" or "distributed".
    public var status: String

    public init(
        title: String,
        titleAr: String,
        briefingDate: String,
        summary: String,
        summaryAr: String,
        sections: [Section],
        revision: Int,
        contentHash: String,
        approvedBy: String,
        approvedAt: Date,
        status: String
    ) {
        self.title = title
        self.titleAr = titleAr
        self.briefingDate = briefingDate
        self.summary = summary
        self.summaryAr = summaryAr
        self.sections = sections
        self.revision = revision
        self.contentHash = contentHash
        self.approvedBy = approvedBy
        self.approvedAt = approvedAt
        self.status = status
    }
}
