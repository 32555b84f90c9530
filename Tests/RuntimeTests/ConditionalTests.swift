import SitrepRuntime
import Testing

/// `If-None-Match` against a representation's tag (RFC 9110 §13.1.2: weak comparison, `*`, a list).
@Suite("conditional requests")
struct ConditionalTests {
    @Test(
        arguments: [
            (#""d-1""#, #""d-1""#, true), (#"W/"d-1""#, #""d-1""#, true), (#""d-1""#, #"W/"d-1""#, true),
            (#""x", W/"d-1""#, #""d-1""#, true), ("  \"d-1\"\t", #""d-1""#, true), ("*", #""d-1""#, true), (#""x" , *"#, #""d-1""#, true),
            (#""x",,"d-1""#, #""d-1""#, true), (#""x""#, #""d-1""#, false), ("", #""d-1""#, false), (#""d-1"x"#, #""d-1""#, false),
            (#""d-1"#, #""d-1""#, false), (#""D-1""#, #""d-1""#, false), (#"w/"d-1""#, #""d-1""#, false), (",", #""d-1""#, false),
        ] as [(String, String, Bool)])
    func ifNoneMatch(header: String, etag: String, matches: Bool) {
        #expect(ConditionalRequest.ifNoneMatch(header, matches: etag) == matches)
    }

    @Test func noHeaderMatchesNothing() {
        #expect(!ConditionalRequest.ifNoneMatch(nil, matches: #""d-1""#))
    }
}

/// The contract's `Problem.errors` has `maxItems: 100`.
@Suite("problem errors")
struct ProblemErrorsTests {
    @Test func atMostTheContractsMaximumIsListedWhetherGivenOrAssigned() {
        let many = (0..<250).map { FieldError(pointer: "/body/items/\($0)", message: "must not be empty") }
        var p = Problem(status: 422, code: "validation.failed", errors: many)
        #expect(p.errors?.count == Problem.maxListedErrors && p.errors?.last?.pointer == "/body/items/99")
        p.errors = many
        #expect(p.errors?.count == Problem.maxListedErrors)
        let text = String(decoding: p.jsonBytes(), as: UTF8.self)
        #expect(text.contains(#""/body/items/99""#) && !text.contains(#""/body/items/100""#))
        p.errors = Array(many.prefix(3))
        #expect(p.errors?.count == 3)
    }
}
