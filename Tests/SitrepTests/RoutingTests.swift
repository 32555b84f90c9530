import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The generated operation router (`SitrepOperationRouter`) in front of Hummingbird's router
/// answers every request as the router alone does: two instances over one database, one of them
/// without it, asked the same requests, including paths the operation router leaves to the
/// router (`HEAD`, 405s, trailing and doubled slashes, unknown paths, the documents, metrics) and
/// paths where a literal segment and a capture compete (`/v1/posture/history` is its own path,
/// so a `PUT` there is a 405, not a posture change of a domain called "history").
@Suite("operation router")
struct RoutingTests {
    static let zero = "00000000-0000-7000-8000-000000000000"
    static let cases: [(HTTPRequest.Method, String)] = [
        (.get, "/healthz"), (.head, "/healthz"), (.post, "/healthz"), (.get, "/readyz"), (.get, "/"), (.get, "/v1"),
        (.get, "/nope"), (.get, "/v1/nope"), (.get, "/V1/dashboard"), (.get, "/v1/Dashboard"), (.get, "/v1/dashboard"),
        (.head, "/v1/dashboard"), (.delete, "/v1/dashboard"), (.get, "/v1/dashboard/"), (.get, "//v1//dashboard"),
        (.get, "/v1/dashboard?x=1"), (.get, "/v1/me"), (.get, "/v1/signals?limit=1"), (.get, "/v1/signals?limit=0"),
        (.get, "/v1/signals/\(zero)"), (.get, "/v1/signals/not-an-id"), (.get, "/v1/signals/a%2Fb"), (.get, "/v1/signals/%7BsignalId%7D"),
        (.post, "/v1/signals/stream/triage"), (.get, "/v1/signals/stream/triage"), (.delete, "/v1/signals/stream"),
        (.get, "/v1/posture"), (.get, "/v1/posture/history"), (.put, "/v1/posture/history"), (.get, "/v1/posture/cyber"),
        (.put, "/v1/posture/cyber"), (.get, "/v1/posture/nope"), (.get, "/v1/audit"), (.get, "/v1/audit/verify"),
        (.get, "/v1/webhooks/twilio"), (.post, "/v1/webhooks/twilio/status"), (.get, "/v1/actions/x/updates/y"),
        (.get, "/v1/actions/\(zero)/updates"), (.get, "/v1/actions/\(zero)/updates/\(zero)"), (.post, "/v1/actions/\(zero)/cancel"),
        (.get, "/v1/treasury/uploads/x/progress"), (.get, "/v1/treasury/uploads/\(zero)"), (.get, "/v1/erp/budget-summary"),
        (.get, "/v1/briefings/\(zero)/pdf"), (.get, "/v1/briefings/\(zero)/audit"), (.get, "/v1/recipients/\(zero)"),
        (.get, "/v1/deliveries/\(zero)"), (.get, "/v1/a/b/c/d/e/f/g/h/i"), (.get, "/openapi.yaml"), (.get, "/docs"),
        (.get, "/metrics"), (HTTPRequest.Method("QUERY")!, "/v1/signals"), (.trace, "/v1/signals"), (.get, "/v1/auth/session"),
    ]

    @Test func theOperationRouterAnswersAsTheRouterAlone() async throws {
        try await SitrepHarness.instances(2, routerOnly: [1]) { clients, h in
            var headers = HTTPFields.auth(h.tokens.admin, json: true)
            headers[.xRequestID] = "routing-1"
            for (method, uri) in Self.cases {
                let body = method == .get || method == .head ? nil : ByteBuffer(string: "{}")
                let routed = try await clients[0].execute(uri: uri, method: method, headers: headers, body: body)
                let plain = try await clients[1].execute(uri: uri, method: method, headers: headers, body: body)
                let what = "\(method) \(uri)"
                #expect(routed.status == plain.status, "\(what)")
                #expect(routed.headers[.contentType] == plain.headers[.contentType], "\(what)")
                #expect(routed.headers[.allow] == plain.headers[.allow], "\(what)")
                #expect(routed.headers[.xRequestID] == plain.headers[.xRequestID], "\(what)")
                // Error answers are the same bytes (the request id is fixed); successes carry times.
                if plain.status.code >= 400 { #expect(String(buffer: routed.body) == String(buffer: plain.body), "\(what)") }
                if method == .head { #expect(routed.body.readableBytes == 0, "\(what)") }
            }
        }
    }
}
