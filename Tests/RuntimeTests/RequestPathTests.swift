import SitrepRuntime
import Testing

/// The segments the generated operation router matches, and the paths it leaves to
/// Hummingbird's router (count 0).
@Suite("request path")
struct RequestPathTests {
    @Test func contractShapedPathsAreCutAtTheirSlashes() {
        let p = RequestPath("/v1/signals/0190-abc/triage")
        #expect(p.count == 4)
        #expect(p.matches(0, "v1") && p.matches(1, "signals") && p.matches(3, "triage"))
        #expect(!p.matches(1, "signal") && !p.matches(1, "signalsx") && !p.matches(1, "Signals") && !p.matches(0, "signals"))
        #expect(p[2] == "0190-abc")
        #expect(p[0] == "v1" && p[3] == "triage")
        let one = RequestPath("/healthz")
        #expect(one.count == 1 && one.matches(0, "healthz") && one[0] == "healthz")
    }

    @Test func segmentsStayAsTheyArrived() {
        let p = RequestPath("/v1/signals/a%2Fb/%C3%A9t%C3%A9")
        #expect(p.count == 4)
        #expect(p[2] == "a%2Fb" && p[3] == "%C3%A9t%C3%A9")
        let unicode = RequestPath("/v1/été/x")
        #expect(unicode.count == 3 && unicode[1] == "été" && unicode.matches(1, "été") && unicode[2] == "x")
    }

    @Test func otherPathsAreLeftToTheRouter() {
        for path in ["", "/", "v1/signals", "//v1", "/v1//signals", "/v1/signals/", "/a/b/c/d/e/f/g/h/i", "/v1/"] {
            #expect(RequestPath(path).count == 0, "\(path)")
        }
        #expect(RequestPath("/a/b/c/d/e/f/g/h").count == RequestPath.capacity)
    }
}
