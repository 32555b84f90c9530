import BriefingPDF
import Foundation
import Generated
import SitrepRuntime

extension SitrepHandlers {
    public func getBriefingPdf(_ input: GetBriefingPdf.Input, context: OperationContext) async throws -> GetBriefingPdf.Output {
        let found = try await database {
            try await db.withConnection { conn in try await loadBriefing(input.briefingId, on: conn, context: context, lock: false) }
        }
        guard let (b, _, _) = found, Self.seesDrafts(context.principal) || b.status == .approved || b.status == .distributed else {
            return .notFound(Self.noBriefing(input.briefingId))
        }
        guard b.status == .approved || b.status == .distributed, let approvedAt = b.approvedAt else {
            return .conflict(
                .conflict(
                    "The briefing is \(b.status.rawValue); only approved or distributed briefings are exported.", code: "briefing.not_approved"))
        }
        let document = BriefingDocument(
            title: b.title, titleAr: b.titleAr, briefingDate: b.briefingDate.description, summary: b.summary, summaryAr: b.summaryAr,
            sections: b.sections.map { .init(heading: $0.heading, headingAr: $0.headingAr, body: $0.body, bodyAr: $0.bodyAr) },
            revision: b.revision, contentHash: b.contentHash, approvedBy: b.approvedBy ?? "", approvedAt: approvedAt,
            status: b.status.rawValue)
        let bytes = try await BriefingPDF.renderInBackground(document)
        return .ok(bytes, contentDisposition: "attachment; filename=\"briefing-\(b.briefingDate).pdf\"")
    }
}
