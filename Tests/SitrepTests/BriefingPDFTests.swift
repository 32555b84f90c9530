import BriefingPDF
import Foundation
import Testing

/// The briefing PDF, read back with poppler-utils (`pdftotext`, `pdfinfo`, `pdffonts`), which
/// Tools/lib/services.sh installs: English and Arabic text recoverable, Arabic right-aligned,
/// long documents paginated with "Page N of M" footers, fonts embedded, concurrent renders.
///
/// What `pdftotext` gives back for Arabic (poppler 22, Debian 12): runs in logical order,
/// wrapped in U+202B/U+202C embedding marks; words read correctly except those with a
/// lam-alef ("الأحمر", "دولارًا"): Noto Naskh Arabic draws lam-alef as two glyphs, one with
/// zero advance, and poppler misplaces that one (it prints "البحر ا أ" … "لحمر"). So the
/// Arabic checks look for every all-letter word without a lam-alef, and for phrases of
/// such words in reading order.
@Suite("Briefing PDF")
struct BriefingPDFTests {
    static let hash = "9b2f6c1e4a7d8035c2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9"
    static let titleAr = "الموجز اليومي للوضع: الشحن في البحر الأحمر وأسواق الطاقة"
    static let englishSentence = "Brent crude rose 4.1% to $86.40 after two shipping companies suspended Red Sea transits."
    static let arabicSentence = "ارتفع خام برنت بنسبة 4.1% إلى 86.40 دولارًا بعد تعليق شركتين للشحن عبورهما في البحر الأحمر."

    static func sample() -> BriefingDocument {
        BriefingDocument(
            title: "Daily Situation Briefing: Red Sea Shipping",
            titleAr: titleAr,
            briefingDate: "2025-03-09",
            summary: "\(englishSentence) Insurers raised war-risk premiums for the third time this month.\n\n"
                + "Port congestion in Jeddah eased slightly; container dwell times fell to 5.2 days.",
            summaryAr: "\(arabicSentence) ورفعت شركات التأمين أقساط مخاطر الحرب للمرة الثالثة هذا الشهر.\n\n"
                + "OPEC+ أبقت على مستويات الإنتاج دون تغيير في اجتماعها الأخير.",
            sections: [
                .init(
                    heading: "Energy markets", headingAr: "أسواق الطاقة",
                    body: "Analysts expect volatility to persist while rerouting around the Cape of Good Hope adds ten to fourteen days "
                        + "to Asia–Europe voyages.\n\nLNG spot prices in Asia were flat.",
                    bodyAr: "يتوقع المحللون استمرار التقلبات في الأسعار مع إعادة توجيه السفن حول رأس الرجاء الصالح، "
                        + "مما يضيف ما بين عشرة وأربعة عشر يومًا إلى الرحلات بين آسيا وأوروبا."),
                .init(
                    heading: "Logistics", headingAr: "الخدمات اللوجستية",
                    body: "Freight rates on the Shanghai–Rotterdam lane rose 12% week on week.",
                    bodyAr: "ارتفعت أسعار الشحن على خط شنغهاي - روتردام بنسبة 12% مقارنة بالأسبوع الماضي."),
            ],
            revision: 3,
            contentHash: hash,
            approvedBy: "Layla Haddad",
            approvedAt: Date(timeIntervalSince1970: 1_741_501_800),  // 2025-03-09 06:30:00 UTC
            status: "approved")
    }

    /// 30 sections of several paragraphs each, and one paragraph far longer than a page whose
    /// numbered sentences ("Marker 001." …) show that it continues, in order, across pages.
    static func long() -> BriefingDocument {
        var document = sample()
        let marathon = (1...220).map { "Marker \(marker($0)) continues the very long paragraph." }
            .joined(separator: " ")
        document.sections = [.init(heading: "Chronology", headingAr: "التسلسل الزمني", body: marathon, bodyAr: arabicSentence)]
        document.sections += (1...30).map { index in
            .init(
                heading: "Section \(index)", headingAr: "القسم \(index)",
                body: [String](repeating: String(repeating: "\(englishSentence) ", count: 4), count: 3).joined(separator: "\n\n"),
                bodyAr: [String](repeating: String(repeating: "\(arabicSentence) ", count: 3), count: 2).joined(separator: "\n\n"))
        }
        return document
    }

    // MARK: - Tests

    @Test func bilingualTextIsRecoverable() async throws {
        let pdf = try await render(Self.sample())
        #expect(pdf.starts(with: Array("%PDF-".utf8)))

        let layout = try await Poppler.text(of: pdf, arguments: ["-layout"])
        let plain = try await Poppler.text(of: pdf, arguments: [])
        for (mode, text) in [("-layout", layout), ("plain", plain)] {
            let flat = collapsingWhitespace(text)
            for phrase in [
                "Daily Situation Briefing: Red Sea Shipping", Self.englishSentence,
                "Port congestion in Jeddah eased slightly; container dwell times fell to 5.2 days.",
                "Briefing date: 2025-03-09", "Approved by Layla Haddad on 2025-03-09 06:30 UTC", "Revision 3",
                "Content SHA-256: \(Self.hash)", "Energy markets", "Page 1 of 1",
            ] {
                #expect(flat.contains(phrase), "pdftotext \(mode) lost \"\(phrase)\":\n\(text)")
            }
            for word in Self.checkableArabicWords(Self.titleAr) + Self.checkableArabicWords(Self.arabicSentence) {
                #expect(text.contains(word), "pdftotext \(mode) lost the Arabic word \(word):\n\(text)")
            }
            // Phrases in logical (reading) order: shaped glyphs map back to the right letters.
            for phrase in ["الموجز اليومي للوضع", "ارتفع خام برنت بنسبة", "تعليق شركتين للشحن عبورهما في البحر", "الخدمات اللوجستية"] {
                #expect(text.contains(phrase), "pdftotext \(mode) lost the Arabic phrase \(phrase):\n\(text)")
            }
        }
    }

    @Test func englishStartsAtTheLeftMarginAndArabicEndsAtTheRightMargin() async throws {
        let pdf = try await render(Self.sample())
        let lines = try await Poppler.wordLines(of: pdf, page: 1)
        let left = 56.7
        let right = 595.276 - 56.7
        let body = lines.filter { $0.y < 770 }  // above the footer
        let arabic = body.filter { $0.text.unicodeScalars.contains { (0x0600...0x06FF).contains($0.value) } }
        let english = body.filter { !arabic.contains($0) }
        #expect(arabic.count >= 8, "\(lines)")
        #expect(english.count >= 10, "\(lines)")
        for line in arabic {
            #expect(abs(line.xMax - right) < 1.5, "Arabic line not right-aligned: \(line)")
            #expect(line.xMin > left - 0.5, "Arabic line runs into the left margin: \(line)")
        }
        for line in english {
            #expect(abs(line.xMin - left) < 1.5, "English line not left-aligned: \(line)")
            #expect(line.xMax < right + 0.5, "English line runs into the right margin: \(line)")
        }
    }

    @Test func longDocumentFlowsOntoNumberedPages() async throws {
        let pdf = try await render(Self.long())
        let info = try await Poppler.run("pdfinfo", on: pdf, arguments: [])
        let pageCount = try #require(
            info.split(separator: "\n").first { $0.hasPrefix("Pages:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) },
            "no Pages: line in pdfinfo output:\n\(info)")
        #expect(pageCount > 1)
        #expect(info.contains("A4"), "\(info)")
        #expect(info.contains("Daily Situation Briefing: Red Sea Shipping"), "PDF title metadata missing:\n\(info)")

        // pdftotext separates pages with form feeds.
        let pages = try await Poppler.text(of: pdf, arguments: ["-layout"]).split(separator: "\u{0C}", omittingEmptySubsequences: false)
            .map(String.init)
        #expect(pages.count >= pageCount)
        for number in 1...pageCount {
            #expect(pages[number - 1].contains("Page \(number) of \(pageCount)"), "page \(number) footer:\n\(pages[number - 1])")
            #expect(pages[number - 1].contains("Daily Situation Briefing: Red Sea Shipping"), "page \(number) footer title")
        }
        #expect(pages[pageCount - 1].contains("Page \(pageCount) of \(pageCount)"))

        // The long paragraph: every sentence, in order, across page breaks (footers left out,
        // so a sentence split between two pages reads on).
        let flat = pages.prefix(pageCount).map { page in
            collapsingWhitespace(page.split(separator: "\n").filter { !$0.contains(" of \(pageCount)") }.joined(separator: "\n"))
        }
        let all = flat.joined(separator: " ")
        var cursor = all.startIndex
        for number in 1...220 {
            let marker = "Marker \(Self.marker(number)) continues the very long paragraph."
            let found = try #require(all.range(of: marker, range: cursor..<all.endIndex), "\(marker) missing or out of order")
            cursor = found.upperBound
        }
        let firstPage = try #require(flat.firstIndex { $0.contains("Marker 001 ") })
        let lastPage = try #require(flat.firstIndex { $0.contains("Marker 220 ") })
        #expect(lastPage > firstPage, "the long paragraph should continue on a later page")
    }

    @Test func fontsAreEmbedded() async throws {
        let pdf = try await render(Self.sample())
        let output = try await Poppler.run("pdffonts", on: pdf, arguments: [])
        // name type... emb sub uni object-number generation
        let embedded = output.split(separator: "\n").dropFirst(2).compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 7, fields[fields.count - 5] == "yes" else { return nil }
            return String(fields[0])
        }
        #expect(embedded.contains { $0.contains("NotoNaskhArabic") }, "no Noto Naskh Arabic embedded:\n\(output)")
        #expect(embedded.contains { $0.contains("DejaVuSans") && !$0.contains("Mono") }, "no DejaVu Sans embedded:\n\(output)")
        #expect(embedded.contains { $0.contains("DejaVuSansMono") }, "no DejaVu Sans Mono (hash) embedded:\n\(output)")
        #expect(!output.contains(" no "), "a font is not embedded:\n\(output)")
    }

    @Test func concurrentRendersAreIndependentAndDeterministic() async throws {
        let document = Self.long()
        async let first = render(document)
        async let second = render(document)
        async let other = render(Self.sample())
        let (a, b, c) = try await (first, second, other)
        #expect(a.starts(with: Array("%PDF-".utf8)))
        #expect(a == b)
        let again = try await render(Self.sample())
        #expect(c == again)
        let text = try await Poppler.text(of: b, arguments: [])
        #expect(collapsingWhitespace(text).contains("Marker 220 continues the very long paragraph."))
    }

    @Test func oddInputStillRenders() async throws {
        var document = Self.sample()
        document.titleAr = ""
        document.summary = "Line one\r\nline two\u{0}with a NUL\r\n\r\n\n   \nNext paragraph."
        document.summaryAr = ""
        document.sections = [
            .init(heading: "", headingAr: "", body: "", bodyAr: ""), .init(heading: "Only a heading", headingAr: "", body: "", bodyAr: ""),
        ]
        let pdf = try await render(document)
        let text = collapsingWhitespace(try await Poppler.text(of: pdf, arguments: []))
        #expect(text.contains("Line one line twowith a NUL Next paragraph."), "\(text)")
        #expect(text.contains("Only a heading"))
        #expect(text.contains("Page 1 of 1"))
    }

    // MARK: - Helpers

    /// "007"
    static func marker(_ number: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 3 - digits.count)) + digits
    }

    func render(_ document: BriefingDocument) async throws -> [UInt8] {
        try await offCooperativePool { try BriefingPDF.render(document) }
    }

    func collapsingWhitespace(_ text: String) -> String {
        text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }

    /// Words made only of Arabic letters (punctuation trimmed), without a lam-alef.
    static func checkableArabicWords(_ text: String) -> [String] {
        text.split(separator: " ").map { $0.trimmingCharacters(in: .punctuationCharacters) }.filter { word in
            !word.isEmpty && word.unicodeScalars.allSatisfy { (0x0621...0x064A).contains($0.value) || (0x064B...0x0652).contains($0.value) }
                && !["لا", "لأ", "لإ", "لآ"].contains { word.contains($0) }
        }
    }
}

/// poppler-utils, run on a PDF written to a temporary file. A missing tool fails the test.
private enum Poppler {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct WordLine: Equatable, CustomStringConvertible {
        /// Vertical middle of the line's first word.
        var y: Double
        var height: Double
        var xMin: Double
        var xMax: Double
        var text: String
        var description: String { "y=\(y) x=\(xMin)…\(xMax) \(text)" }
    }

    static func text(of pdf: [UInt8], arguments: [String]) async throws -> String {
        try await run("pdftotext", on: pdf, arguments: arguments + ["-enc", "UTF-8"], output: "-")
    }

    /// The words of one page grouped into lines, with each line's extent. Words of one line
    /// share a baseline but not a bounding box (the Arabic font is taller than DejaVu Sans),
    /// so a word joins a line when their vertical middles are closer than half the smaller height.
    static func wordLines(of pdf: [UInt8], page: Int) async throws -> [WordLine] {
        let xhtml = try await run("pdftotext", on: pdf, arguments: ["-bbox", "-f", "\(page)", "-l", "\(page)", "-enc", "UTF-8"], output: "-")
        let pattern = try NSRegularExpression(
            pattern: #"<word xMin="([0-9.]+)" yMin="([0-9.]+)" xMax="([0-9.]+)" yMax="([0-9.]+)">([^<]*)</word>"#)
        var lines: [WordLine] = []
        let range = NSRange(xhtml.startIndex..., in: xhtml)
        for match in pattern.matches(in: xhtml, range: range) {
            func group(_ index: Int) -> String { Range(match.range(at: index), in: xhtml).map { String(xhtml[$0]) } ?? "" }
            guard let xMin = Double(group(1)), let yMin = Double(group(2)), let xMax = Double(group(3)), let yMax = Double(group(4))
            else { continue }
            let middle = (yMin + yMax) / 2
            let height = yMax - yMin
            if let index = lines.firstIndex(where: { abs($0.y - middle) < min($0.height, height) / 2 }) {
                lines[index].xMin = min(lines[index].xMin, xMin)
                lines[index].xMax = max(lines[index].xMax, xMax)
                lines[index].text += " " + group(5)
            } else {
                lines.append(WordLine(y: middle, height: height, xMin: xMin, xMax: xMax, text: group(5)))
            }
        }
        return lines
    }

    /// Runs `tool FILE [output]` and returns its standard output; throws on a missing tool or a failure.
    static func run(_ tool: String, on pdf: [UInt8], arguments: [String], output: String? = nil) async throws -> String {
        let executable = try locate(tool)
        return try await offCooperativePool {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("briefing-\(UUID().uuidString).pdf")
            try Data(pdf).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments + [file.path] + (output.map { [$0] } ?? [])
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw Failure(description: "\(tool) exited with \(process.terminationStatus): \(String(decoding: stderr, as: UTF8.self))")
            }
            return String(decoding: stdout, as: UTF8.self)
        }
    }

    static func locate(_ tool: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(tool)
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        throw Failure(
            description: "\(tool) not found on PATH: install poppler-utils (apt-get install -y poppler-utils; Tools/lib/services.sh lists it)")
    }
}
