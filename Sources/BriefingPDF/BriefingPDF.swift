import CPangoCairo
import Dispatch
import Foundation

/// Why a briefing could not be rendered: Cairo or Pango reported an error.
public struct BriefingPDFError: Error, Sendable, CustomStringConvertible {
    /// What was being done, for example "creating the PDF surface".
    public var operation: String
    /// Cairo's description of the failure.
    public var message: String

    public init(operation: String, message: String) {
        self.operation = operation
        self.message = message
    }

    public var description: String { "briefing PDF: \(operation) failed: \(message)" }
}

/// Renders a ``BriefingDocument`` as an A4 PDF with Pango (text shaping, bidi, line
/// breaking) and Cairo (PDF output, fonts embedded as subsets).
public enum BriefingPDF {
    /// A4 PDF bytes. Throws ``BriefingPDFError`` when Cairo/Pango fail.
    ///
    /// Safe to call concurrently from several threads: every call has its own surface, Cairo
    /// context, Pango contexts and output buffer (Pango's default font map is per thread).
    /// The output depends only on the document: the PDF creation date is the approval time.
    /// ``render(_:)`` on a Dispatch thread: Cairo and Pango are CPU-heavy and blocking, so they
    /// must not hold one of the few cooperative threads every request needs.
    public static func renderInBackground(_ document: BriefingDocument) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try render(document) })
            }
        }
    }

    public static func render(_ document: BriefingDocument) throws -> [UInt8] {
        let sink = ByteSink()
        return try withExtendedLifetime(sink) { () throws -> [UInt8] in
            let closure = Unmanaged.passUnretained(sink).toOpaque()
            // Cairo calls this synchronously, on this thread, during drawing and
            // cairo_surface_finish; `closure` is the sink, kept alive above.
            let surface = cairo_pdf_surface_create_for_stream(
                { closure, data, length in
                    guard let closure else { return CAIRO_STATUS_WRITE_ERROR }
                    let sink = Unmanaged<ByteSink>.fromOpaque(closure).takeUnretainedValue()
                    if length > 0 {
                        guard let data else { return CAIRO_STATUS_WRITE_ERROR }
                        sink.bytes.append(contentsOf: UnsafeBufferPointer(start: data, count: Int(length)))
                    }
                    return CAIRO_STATUS_SUCCESS
                }, closure, PageGeometry.width, PageGeometry.height)
            guard let surface else {
                throw BriefingPDFError(operation: "creating the PDF surface", message: "no surface")
            }
            defer { cairo_surface_destroy(surface) }
            try check(cairo_surface_status(surface), "creating the PDF surface")

            let metadataTitle = document.title.isEmpty ? document.titleAr : document.title
            cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, Text.clean(metadataTitle))
            cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "Sitrep")
            if let created = Text.pdfDate(document.approvedAt) {
                cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATE_DATE, created)
            }

            try draw(document, on: surface)

            cairo_surface_finish(surface)
            try check(cairo_surface_status(surface), "writing the PDF")
            return sink.bytes
        }
    }

    private static func draw(_ document: BriefingDocument, on surface: OpaquePointer) throws {
        guard let cr = cairo_create(surface) else {
            throw BriefingPDFError(operation: "creating the Cairo context", message: "no context")
        }
        defer { cairo_destroy(cr) }
        try check(cairo_status(cr), "creating the Cairo context")

        let typesetter = Typesetter(cr: cr)
        let blocks = typesetter.compose(document)
        let pages = Paginator.paginate(blocks, top: PageGeometry.contentTop, bottom: PageGeometry.contentBottom)
        let footerTitle = document.title.isEmpty ? document.titleAr : document.title
        typesetter.draw(pages: pages, footerTitle: footerTitle)
        try check(cairo_status(cr), "drawing the pages")
    }

    private static func check(_ status: cairo_status_t, _ operation: String) throws {
        guard status != CAIRO_STATUS_SUCCESS else { return }
        throw BriefingPDFError(operation: operation, message: String(cString: cairo_status_to_string(status)))
    }
}

/// The bytes Cairo writes for one render call. Only touched by the rendering thread (Cairo
/// calls the write function synchronously), so it needs no locking and is not Sendable.
final class ByteSink {
    var bytes: [UInt8] = []

    init() {
        bytes.reserveCapacity(64 * 1024)
    }
}

/// A4 portrait, in PDF points (1/72 inch).
enum PageGeometry {
    static let width = 595.276  // 210 mm
    static let height = 841.890  // 297 mm
    static let marginLeft = 56.7  // 20 mm
    static let marginRight = 56.7
    static let contentTop = 56.7
    /// Text stops here; the footer sits below.
    static let contentBottom = height - 70.0
    static let footerRuleY = height - 52.0
    static let footerTextY = height - 46.0
    static var contentWidth: Double { width - marginLeft - marginRight }
}

/// Text clean-up and formatting that does not need Pango.
enum Text {
    /// Normalises line breaks to "\n" and drops control characters other than "\n" and "\t"
    /// (Pango rejects NUL and shows the others as boxes).
    static func clean(_ text: String) -> String {
        let unified = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        var scalars = String.UnicodeScalarView()
        for scalar in unified.unicodeScalars {
            let value = scalar.value
            if (value < 0x20 && scalar != "\n" && scalar != "\t") || (0x7F...0x9F).contains(value) {
                continue
            }
            scalars.append(scalar)
        }
        return String(scalars)
    }

    /// Paragraphs of a plain-text body: blank (or whitespace-only) lines separate them.
    static func paragraphs(_ text: String) -> [String] {
        var result: [String] = []
        var current: [Substring] = []
        func flush() {
            if !current.isEmpty {
                result.append(current.joined(separator: "\n"))
                current.removeAll()
            }
        }
        for line in clean(text).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.allSatisfy(\.isWhitespace) {
                flush()
            } else {
                current.append(line.trimmingTrailingWhitespace())
            }
        }
        flush()
        return result
    }

    /// "2025-03-09 06:30 UTC"
    static func utcDisplay(_ date: Date) -> String {
        let c = utcComponents(date)
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2)) \(pad(c.hour, 2)):\(pad(c.minute, 2)) UTC"
    }

    /// "2025-03-09T06:30:00Z", the ISO 8601 form Cairo accepts; nil outside years 1...9999.
    static func pdfDate(_ date: Date) -> String? {
        let c = utcComponents(date)
        guard (1...9999).contains(c.year) else { return nil }
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.hour, 2)):\(pad(c.minute, 2)):\(pad(c.second, 2))Z"
    }

    private static func utcComponents(_ date: Date) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0) ?? calendar.timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return (c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}

extension Substring {
    fileprivate func trimmingTrailingWhitespace() -> Substring {
        var end = endIndex
        while end > startIndex, self[index(before: end)].isWhitespace {
            end = index(before: end)
        }
        return self[startIndex..<end]
    }
}
