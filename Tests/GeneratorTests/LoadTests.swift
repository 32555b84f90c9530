import Foundation
import Testing

@testable import GeneratorCore

@Suite("load stage")
struct LoadTests {
    @Test func loadsTheFixture() throws {
        let spec = try Loader.load(text: Fixtures.mini, file: "mini.yaml")
        #expect(spec.document.info.title == "Mini")
        #expect(spec.document.paths.count == 2)
        #expect(spec.document.components.schemas.count == 6)
    }

    @Test func reportsLinesForPaths() throws {
        let spec = try Loader.load(text: Fixtures.mini)
        // `  /v1/notes:` is on line 11 of the fixture (1-based); its `get:` on line 12.
        #expect(spec.lines.line(for: ["paths", "/v1/notes"]) == 11)
        #expect(spec.lines.line(for: ["paths", "/v1/notes", "get"]) == 12)
    }

    @Test func refusesInvalidYAML() {
        #expect(findings("openapi: 3.1.0\ninfo: [unclosed\n").first?.hasPrefix("not valid YAML") == true)
    }

    @Test func refusesOtherOpenAPIVersions() {
        let f = findings(Fixtures.mini.replacing("openapi: 3.1.0", with: "openapi: 3.0.3"))
        #expect(f == ["openapi: only OpenAPI 3.1 is supported (found 3.0.3)"])
    }

    @Test func namesThePathOfADecodingError() {
        let f = findings(Fixtures.mini.replacing("  title: Mini\n", with: ""))
        #expect(f.count == 1)
        #expect(f.first?.contains("title") == true)
    }
}
