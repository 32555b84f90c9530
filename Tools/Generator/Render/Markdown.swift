import Foundation

/// The small Markdown subset the spec's descriptions use, rendered to HTML for `/docs`:
/// headings, paragraphs, `-` lists, pipe tables, `**bold**` and `` `code` ``. Everything is
/// escaped first, so a description can never inject markup.
enum Markdown {
    static func html(_ text: String) -> String {
        var out = ""
        var paragraph: [String] = []
        var list: [String] = []
        var table: [[String]] = []

        func flush() {
            if !paragraph.isEmpty {
                out += "<p>" + inline(paragraph.joined(separator: " ")) + "</p>"
                paragraph = []
            }
            if !list.isEmpty {
                out += "<ul>" + list.map { "<li>" + inline($0) + "</li>" }.joined() + "</ul>"
                list = []
            }
            if !table.isEmpty {
                out += "<table>"
                for (i, row) in table.enumerated() where !(i == 1 && row.allSatisfy { $0.allSatisfy { $0 == "-" || $0 == ":" } }) {
                    let tag = i == 0 ? "th" : "td"
                    out += "<tr>" + row.map { "<\(tag)>" + inline($0) + "</\(tag)>" }.joined() + "</tr>"
                }
                out += "</table>"
                table = []
            }
        }

        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty {
                flush()
            } else if line.hasPrefix("#") {
                flush()
                let level = min(6, line.prefix { $0 == "#" }.count + 2)
                out += "<h\(level)>" + inline(String(line.drop { $0 == "#" }).trimmingCharacters(in: .whitespaces)) + "</h\(level)>"
            } else if line.hasPrefix("|") {
                if !paragraph.isEmpty || !list.isEmpty { flush() }
                table.append(
                    line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map {
                        $0.trimmingCharacters(in: .whitespaces)
                    })
            } else if line.hasPrefix("- ") || line.hasPrefix("* ") {
                if !paragraph.isEmpty || !table.isEmpty { flush() }
                list.append(String(line.dropFirst(2)))
            } else if !list.isEmpty && raw.hasPrefix("  ") {
                list[list.count - 1] += " " + line  // a list item's continuation line
            } else {
                if !list.isEmpty || !table.isEmpty { flush() }
                paragraph.append(line)
            }
        }
        flush()
        return out
    }

    /// `**bold**` and `` `code` `` on an escaped line.
    static func inline(_ s: String) -> String {
        var out = ""
        var inCode = false
        var inBold = false
        var chars = Array(DocsRenderer.esc(s))
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "`" {
                out += inCode ? "</code>" : "<code>"
                inCode.toggle()
            } else if !inCode && c == "*" && i + 1 < chars.count && chars[i + 1] == "*" {
                out += inBold ? "</strong>" : "<strong>"
                inBold.toggle()
                i += 1
            } else {
                out.append(c)
            }
            i += 1
        }
        if inCode { out += "</code>" }
        if inBold { out += "</strong>" }
        chars.removeAll()
        return out
    }
}
