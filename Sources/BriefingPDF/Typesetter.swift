import CPangoCairo
import Foundation

/// Writing direction of a block: English (and the metadata) left to right, Arabic right to left.
enum Script {
    case latin
    case arabic
}

struct RGB {
    var red: Double
    var green: Double
    var blue: Double

    static let ink = RGB(red: 0.10, green: 0.10, blue: 0.12)
    static let navy = RGB(red: 0.07, green: 0.17, blue: 0.33)
    static let grey = RGB(red: 0.36, green: 0.38, blue: 0.42)
    static let rule = RGB(red: 0.70, green: 0.72, blue: 0.76)
}

struct TextStyle {
    var script: Script
    /// A fontconfig family list: the first family that has a glyph wins.
    var families: String
    var size: Double
    var bold = false
    var color = RGB.ink
    /// Line height as a factor of the font's height; 0 keeps the font's own.
    var lineSpacing = 0.0

    static let latinFamilies = "DejaVu Sans, Noto Naskh Arabic"
    static let arabicFamilies = "Noto Naskh Arabic, DejaVu Sans"
    static let monoFamilies = "DejaVu Sans Mono, DejaVu Sans"

    static let titleLatin = TextStyle(script: .latin, families: latinFamilies, size: 19, bold: true, color: .navy, lineSpacing: 1.1)
    static let titleArabic = TextStyle(script: .arabic, families: arabicFamilies, size: 20, bold: true, color: .navy)
    static let meta = TextStyle(script: .latin, families: latinFamilies, size: 9.5, color: .grey, lineSpacing: 1.25)
    static let hash = TextStyle(script: .latin, families: monoFamilies, size: 8.5, color: .grey, lineSpacing: 1.25)
    static let headingLatin = TextStyle(script: .latin, families: latinFamilies, size: 13, bold: true, color: .navy, lineSpacing: 1.2)
    static let headingArabic = TextStyle(script: .arabic, families: arabicFamilies, size: 14, bold: true, color: .navy)
    static let bodyLatin = TextStyle(script: .latin, families: latinFamilies, size: 10.5, lineSpacing: 1.35)
    static let bodyArabic = TextStyle(script: .arabic, families: arabicFamilies, size: 12.5)
    static let footer = TextStyle(script: .latin, families: latinFamilies, size: 8.5, color: .grey)
}

/// Owns the Pango contexts and layouts of one render call and draws them with Cairo.
/// Not Sendable: it lives and dies on the thread that renders.
final class Typesetter {
    private let cr: OpaquePointer
    private let latinContext: OpaquePointer
    private let arabicContext: OpaquePointer
    private var layouts: [OpaquePointer] = []
    private var colors: [RGB] = []

    init(cr: OpaquePointer) {
        self.cr = cr
        latinContext = Self.makeContext(cr, direction: PANGO_DIRECTION_LTR, language: "en")
        arabicContext = Self.makeContext(cr, direction: PANGO_DIRECTION_RTL, language: "ar")
    }

    deinit {
        for layout in layouts {
            g_object_unref(UnsafeMutableRawPointer(layout))
        }
        g_object_unref(UnsafeMutableRawPointer(arabicContext))
        g_object_unref(UnsafeMutableRawPointer(latinContext))
    }

    /// A Pango context for drawing on `cr` with a fixed paragraph direction (layouts made from
    /// it have auto-direction off, so an Arabic paragraph that starts with a Latin word is
    /// still right to left). Outline metrics without hinting, as is right for PDF.
    private static func makeContext(_ cr: OpaquePointer, direction: PangoDirection, language: String) -> OpaquePointer {
        let context: OpaquePointer = pango_cairo_create_context(cr)
        if let options = cairo_font_options_create() {
            cairo_font_options_set_hint_metrics(options, CAIRO_HINT_METRICS_OFF)
            cairo_font_options_set_hint_style(options, CAIRO_HINT_STYLE_NONE)
            pango_cairo_context_set_font_options(context, options)
            cairo_font_options_destroy(options)
        }
        pango_cairo_context_set_resolution(context, 72)
        pango_context_set_round_glyph_positions(context, 0)
        pango_context_set_base_dir(context, direction)
        pango_context_set_language(context, pango_language_from_string(language))
        return context
    }

    // MARK: - Content

    /// The document as a flow of blocks: header, rule, summary, sections.
    func compose(_ document: BriefingDocument) -> [FlowBlock] {
        var blocks: [FlowBlock] = []
        let width = PageGeometry.contentWidth

        func add(_ text: String, _ style: TextStyle, before: Double, after: Double, keepWithNext: Bool = false) {
            let text = Text.clean(text)
            guard !text.allSatisfy(\.isWhitespace) else { return }
            let layout = makeLayout(text, style, width: width)
            let lines = lineBoxes(layouts[layout], lineSpacing: style.lineSpacing)
            blocks.append(FlowBlock(content: .text(layout: layout, lines: lines), spaceBefore: before, spaceAfter: after, keepWithNext: keepWithNext))
        }
        func addBody(_ text: String, _ style: TextStyle) {
            for (index, paragraph) in Text.paragraphs(text).enumerated() {
                add(paragraph, style, before: index == 0 ? 3 : 6, after: 0)
            }
        }
        func addPart(heading: String, headingAr: String, body: String, bodyAr: String) {
            add(heading, .headingLatin, before: 16, after: 0, keepWithNext: true)
            addBody(body, .bodyLatin)
            add(headingAr, .headingArabic, before: 10, after: 0, keepWithNext: true)
            addBody(bodyAr, .bodyArabic)
        }

        add(document.title, .titleLatin, before: 0, after: 0)
        add(document.titleAr, .titleArabic, before: 2, after: 0)
        add("Briefing date: \(document.briefingDate)", .meta, before: 8, after: 0)
        add("Approved by \(document.approvedBy) on \(Text.utcDisplay(document.approvedAt))", .meta, before: 0, after: 0)
        add("Revision \(document.revision) · Status: \(document.status)", .meta, before: 0, after: 0)
        add("Content SHA-256: \(document.contentHash)", .hash, before: 2, after: 0)
        blocks.append(FlowBlock(content: .rule, spaceBefore: 10, spaceAfter: 0, keepWithNext: false))

        let hasSummary = !Text.paragraphs(document.summary).isEmpty
        let hasSummaryAr = !Text.paragraphs(document.summaryAr).isEmpty
        addPart(
            heading: hasSummary ? "Summary" : "", headingAr: hasSummaryAr ? "الملخص" : "",
            body: document.summary, bodyAr: document.summaryAr)
        for section in document.sections {
            addPart(heading: section.heading, headingAr: section.headingAr, body: section.body, bodyAr: section.bodyAr)
        }
        return blocks
    }

    private func makeLayout(_ text: String, _ style: TextStyle, width: Double, alignment: PangoAlignment? = nil, ellipsize: Bool = false)
        -> Int
    {
        let layout: OpaquePointer = pango_layout_new(style.script == .arabic ? arabicContext : latinContext)
        layouts.append(layout)
        colors.append(style.color)

        pango_layout_set_auto_dir(layout, 0)
        pango_layout_set_alignment(layout, alignment ?? (style.script == .arabic ? PANGO_ALIGN_RIGHT : PANGO_ALIGN_LEFT))
        pango_layout_set_width(layout, Int32((width * Double(PANGO_SCALE)).rounded(.down)))
        pango_layout_set_wrap(layout, PANGO_WRAP_WORD_CHAR)
        if ellipsize {
            pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_END)
            pango_layout_set_single_paragraph_mode(layout, 1)
        }
        if style.lineSpacing > 0 {
            pango_layout_set_line_spacing(layout, Float(style.lineSpacing))
        }
        if let font = pango_font_description_new() {
            pango_font_description_set_family(font, style.families)
            pango_font_description_set_weight(font, style.bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL)
            pango_font_description_set_absolute_size(font, style.size * Double(PANGO_SCALE))
            pango_layout_set_font_description(layout, font)
            pango_font_description_free(font)
        }
        pango_layout_set_text(layout, text, Int32(clamping: text.utf8.count))
        return layouts.count - 1
    }

    /// The lines of a layout with their vertical space, baseline and horizontal origin, in points.
    ///
    /// A line's height runs to the next line's top, so it includes the extra leading of a
    /// line-spacing factor (Pango's line range does not); the last line gets the same leading.
    private func lineBoxes(_ layout: OpaquePointer, lineSpacing: Double) -> [LineBox] {
        guard let iterator = pango_layout_get_iter(layout) else { return [] }
        defer { pango_layout_iter_free(iterator) }
        let scale = Double(PANGO_SCALE)
        var boxes: [LineBox] = []
        var index: Int32 = 0
        repeat {
            var top: Int32 = 0
            var bottom: Int32 = 0
            pango_layout_iter_get_line_yrange(iterator, &top, &bottom)
            var inLayout = PangoRectangle()
            pango_layout_iter_get_line_extents(iterator, nil, &inLayout)
            var inLine = PangoRectangle()
            pango_layout_line_get_extents(pango_layout_iter_get_line_readonly(iterator), nil, &inLine)
            boxes.append(
                LineBox(
                    index: index,
                    top: Double(top) / scale,
                    height: Double(bottom - top) / scale,
                    baseline: Double(pango_layout_iter_get_baseline(iterator)) / scale,
                    originX: Double(inLayout.x - inLine.x) / scale))
            index += 1
        } while pango_layout_iter_next_line(iterator) != 0
        for index in boxes.indices {
            if index + 1 < boxes.count {
                boxes[index].height = max(boxes[index].height, boxes[index + 1].top - boxes[index].top)
            } else {
                boxes[index].height *= max(1, lineSpacing)
            }
        }
        return boxes
    }

    // MARK: - Drawing

    /// Draws every page, with its footer ("<title>" left, "Page N of M" right), and emits it.
    func draw(pages: [[Placement]], footerTitle: String) {
        let footerWidth = PageGeometry.contentWidth
        let singleLineTitle = Text.clean(footerTitle).replacingOccurrences(of: "\n", with: " ")
        let titleLayout = layouts[makeLayout(singleLineTitle, .footer, width: footerWidth * 0.72, ellipsize: true)]
        let numberLayout = layouts[makeLayout("", .footer, width: footerWidth * 0.25, alignment: PANGO_ALIGN_RIGHT)]

        for (pageIndex, placements) in pages.enumerated() {
            for placement in placements {
                switch placement {
                case .line(let layout, let line, let y):
                    setColor(colors[layout])
                    cairo_move_to(cr, PageGeometry.marginLeft + line.originX, y + line.baseline - line.top)
                    pango_cairo_show_layout_line(cr, pango_layout_get_line_readonly(layouts[layout], line.index))
                case .rule(let y):
                    drawRule(y: y, width: 0.8, color: .rule)
                }
            }

            drawRule(y: PageGeometry.footerRuleY, width: 0.5, color: .rule)
            setColor(TextStyle.footer.color)
            cairo_move_to(cr, PageGeometry.marginLeft, PageGeometry.footerTextY)
            pango_cairo_show_layout(cr, titleLayout)
            let pageNumber = "Page \(pageIndex + 1) of \(pages.count)"
            pango_layout_set_text(numberLayout, pageNumber, Int32(pageNumber.utf8.count))
            cairo_move_to(cr, PageGeometry.marginLeft + footerWidth * 0.75, PageGeometry.footerTextY)
            pango_cairo_show_layout(cr, numberLayout)

            cairo_show_page(cr)
        }
    }

    private func setColor(_ color: RGB) {
        cairo_set_source_rgb(cr, color.red, color.green, color.blue)
    }

    private func drawRule(y: Double, width: Double, color: RGB) {
        setColor(color)
        cairo_set_line_width(cr, width)
        cairo_move_to(cr, PageGeometry.marginLeft, y)
        cairo_line_to(cr, PageGeometry.width - PageGeometry.marginRight, y)
        cairo_stroke(cr)
    }
}
