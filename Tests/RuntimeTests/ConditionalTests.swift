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
