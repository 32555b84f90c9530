/// One laid-out line of a text block, in points, relative to the top-left corner of its layout.
struct LineBox: Equatable {
    /// Index of the line in its Pango layout.
    var index: Int32
    /// Top of the vertical space the line occupies.
    var top: Double
    /// Height of that space (the distance to the next line's top).
    var height: Double
    /// Baseline of the line.
    var baseline: Double
    /// Where the line's origin (its left edge) goes; includes the alignment offset.
    var originX: Double
}

/// Something placed in the page flow: a run of text lines from one layout, or a horizontal rule.
struct FlowBlock {
    enum Content {
        case text(layout: Int, lines: [LineBox])
        case rule
    }

    var content: Content
    /// Space above the block; dropped when the block starts a page.
    var spaceBefore: Double
    var spaceAfter: Double
    /// Headings: move to the next page rather than end a page (with the start of the next block).
    var keepWithNext: Bool
}

/// A positioned item on one page; `y` is the top of the item, in page coordinates.
enum Placement: Equatable {
    case line(layout: Int, line: LineBox, y: Double)
    case rule(y: Double)
}

/// Breaks blocks into pages, line by line.
///
/// Rules: a paragraph that does not fit is split between lines; at least two lines of a
/// paragraph stay together at the bottom of a page (no orphans) and the last line of a
/// paragraph does not go alone to the next page (no widows) when the paragraph is long
/// enough; a heading stays with the first lines of what follows it; a rule that would
/// start a page is dropped. A line taller than the page is placed anyway (on its own page).
enum Paginator {
    static let ruleHeight = 1.0
    static let minimumLinesTogether = 2

    static func paginate(_ blocks: [FlowBlock], top: Double, bottom: Double) -> [[Placement]] {
        var pages: [[Placement]] = [[]]
        var y = top

        func pageIsEmpty() -> Bool { pages[pages.count - 1].isEmpty }
        func breakPage() {
            pages.append([])
            y = top
        }
        func place(_ placement: Placement) { pages[pages.count - 1].append(placement) }

        for (blockIndex, block) in blocks.enumerated() {
            switch block.content {
            case .rule:
                guard !pageIsEmpty() else { continue }
                if y + block.spaceBefore + ruleHeight + block.spaceAfter > bottom {
                    breakPage()
                    continue
                }
                y += block.spaceBefore
                place(.rule(y: y + ruleHeight / 2))
                y += ruleHeight + block.spaceAfter

            case .text(let layout, let lines):
                guard !lines.isEmpty else { continue }
                if !pageIsEmpty() {
                    y += block.spaceBefore
                }
                var needed = leadHeight(lines)
                if block.keepWithNext, blockIndex + 1 < blocks.count,
                    case .text(_, let next) = blocks[blockIndex + 1].content, !next.isEmpty
                {
                    needed = totalHeight(lines) + blocks[blockIndex + 1].spaceBefore + leadHeight(next)
                }
                if !pageIsEmpty() && y + needed > bottom {
                    breakPage()
                }
                var linesOnThisPage = 0
                for (lineIndex, line) in lines.enumerated() {
                    var mustBreak = y + line.height > bottom
                    if !mustBreak, lineIndex == lines.count - 2, linesOnThisPage >= minimumLinesTogether,
                        y + line.height + lines[lineIndex + 1].height > bottom
                    {
                        // Take one more line along so the last one is not alone on the next page.
                        mustBreak = true
                    }
                    if mustBreak && !pageIsEmpty() {
                        breakPage()
                        linesOnThisPage = 0
                    }
                    place(.line(layout: layout, line: line, y: y))
                    y += line.height
                    linesOnThisPage += 1
                }
                y += block.spaceAfter
            }
        }
        return pages
    }

    private static func leadHeight(_ lines: [LineBox]) -> Double {
        lines.prefix(minimumLinesTogether).reduce(0) { $0 + $1.height }
    }

    private static func totalHeight(_ lines: [LineBox]) -> Double {
        lines.reduce(0) { $0 + $1.height }
    }
}
