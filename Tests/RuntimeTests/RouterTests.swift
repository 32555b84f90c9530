import Foundation
import Generated
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SitrepRuntime
import Testing

/// The generated router's error envelope: one test per error kind, pinning the exact problem body.
@Suite("generated router")
struct RouterTests {
    static func h(_ token: String? = "admin", json: Bool = false, _ more: [(String, String)] = []) -> HTTPFields {
        var f = token.map { HTTPFields.bearer($0, json: json, more) } ?? HTTPFields()
        if token == nil {
            if json { f[.contentType] = "application/json" }
            for (k, v) in more { f[HTTPField.Name(k)!] = v }
        }
        f[.xRequestID] = "req-1"
        return f
    }

    @Test func malformedJSONIs400() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals", method: .post, headers: Self.h("ingest", json: true), body: body("{\"items\": [")) { r in
                #expect(r.status == .badRequest)
                #expect(r.headers[.contentType] == "application/problem+json")
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/request.malformed_json","title":"Bad request","status":400,"detail":"The body is not valid JSON: unexpected end of input at byte 11.","instance":"/v1/signals","code":"request.malformed_json","requestId":"req-1"}"#
                )
            }
        }
    }

    @Test func constraintFailuresAre422WithEveryPointer() async throws {
        let bad = """
            {"items":[{"source":"","sourceId":"X1","title":"T","summary":"S","category":"weather","severity":"high",
            "confidence":1.5,"modelVersion":"m1","tags":["oil"],"publishedAt":"yesterday","sourceUrl":"not a uri","extra":1}]}
            """
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals", method: .post, headers: Self.h("ingest", json: true), body: body(bad)) { r in
                #expect(r.status == .unprocessableContent)
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/validation.failed","title":"Validation failed","status":422,"detail":"6 fields are invalid.","instance":"/v1/signals","code":"validation.failed","requestId":"req-1","errors":[{"pointer":"/body/items/0/source","message":"must not be empty"},{"pointer":"/body/items/0/sourceUrl","message":"must be an absolute URI"},{"pointer":"/body/items/0/category","message":"must be one of: geopolitical, economic, security, technology, health, climate, regulatory, reputational"},{"pointer":"/body/items/0/confidence","message":"must be at most 1"},{"pointer":"/body/items/0/publishedAt","message":"must be an RFC 3339 date-time, e.g. 2026-11-26T08:00:00Z"},{"pointer":"/body/items/0/extra","message":"is not a known property"}]}"#
                )
            }
        }
    }

    /// `text/event-stream`: the handler's events are written as it produces them, with headers
    /// that stop proxies from buffering; `stream` is a literal segment, never a signal id; the
    /// resume header is checked against its pattern like any other parameter.
    @Test func eventStreamsAreWrittenAsProduced() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(
                uri: "/v1/signals/stream?category=security", method: .get, headers: Self.h("admin", [("Last-Event-ID", "41")])
            ) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType] == "text/event-stream")
                #expect(r.headers[.cacheControl] == "no-store" && r.headers[HTTPField.Name("X-Accel-Buffering")!] == "no")
                let text = String(buffer: r.body)
                #expect(
                    text.hasPrefix(": category security\n\nid: 42\nevent: signal.created\ndata: {\"id\":\"0195793d-10c0-7b9a-a4ed-db491c101707\""))
                #expect(text.hasSuffix("}\n\n") && text.contains("\n\nid: 43\nevent: signal.created\n"))
            }
            try await client.execute(
                uri: "/v1/signals/stream", method: .get, headers: Self.h("admin", [("Last-Event-ID", "1741500720000-0")])
            ) { r in
                #expect(r.status == .badRequest)
                #expect(String(buffer: r.body).contains("/header/Last-Event-ID"))
            }
            try await client.execute(uri: "/v1/signals/stream", method: .get, headers: Self.h("ingest")) { r in
                #expect(r.status == .forbidden)
            }
        }
    }

    @Test func unknownRouteIs404() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/nothing-here", method: .get, headers: Self.h()) { r in
                #expect(r.status == .notFound)
                #expect(r.headers[.xRequestID] == "req-1")
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/route.not_found","title":"Not found","status":404,"detail":"No operation is defined at /v1/nothing-here; see /openapi.yaml.","instance":"/v1/nothing-here","code":"route.not_found","requestId":"req-1"}"#
                )
            }
        }
    }

    @Test func wrongMethodIs405WithAllow() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals", method: .delete, headers: Self.h()) { r in
                #expect(r.status == .methodNotAllowed)
                #expect(r.headers[.allow] == "GET, POST, HEAD")
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/route.method_not_allowed","title":"Method not allowed","status":405,"detail":"DELETE is not supported here; use GET, POST, HEAD.","instance":"/v1/signals","code":"route.method_not_allowed","requestId":"req-1"}"#
                )
            }
        }
    }

    @Test func headAnswersLikeGetWithoutTheBody() async throws {
        try await makeApp().test(.router) { client in
            let get = try await client.execute(uri: "/v1/signals?limit=5", method: .get, headers: Self.h("viewer"))
            #expect(get.status == .ok)
            #expect(get.body.readableBytes > 0)
            try await client.execute(uri: "/v1/signals?limit=5", method: .head, headers: Self.h("viewer")) { r in
                #expect(r.status == .ok)
                #expect(r.body.readableBytes == 0)
                #expect(r.headers[.contentLength] == String(get.body.readableBytes))
                #expect(r.headers[.contentType] == "application/json")
                #expect(r.headers[.eTag] == "\"l-1\"")
                #expect(r.headers[.xRequestID] == "req-1")
            }
            // The same checks as GET: the query is validated, the caller authenticated.
            try await client.execute(uri: "/v1/signals?limit=0", method: .head, headers: Self.h("viewer")) { r in
                #expect(r.status == .badRequest)
                #expect(r.body.readableBytes == 0)
            }
            try await client.execute(uri: "/v1/signals", method: .head, headers: Self.h(nil)) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.wwwAuthenticate] != nil)
            }
        }
    }

    /// Over a real connection: a HEAD answer carries no body bytes, so the next answer on the same
    /// connection is read intact.
    @Test func headOverALiveConnectionKeepsItInStep() async throws {
        try await makeApp().test(.live) { client in
            for path in ["/v1/signals", "/v1/nothing-here", "/v1/signals/0190a8e4-0000-7000-8000-000000000001/triage"] {
                let head = try await client.execute(uri: path, method: .head, headers: Self.h("viewer"))
                #expect(head.body.readableBytes == 0)
                try await client.execute(uri: "/v1/signals", method: .get, headers: Self.h("viewer")) { r in
                    #expect(r.status == .ok)
                    #expect(r.headers[.eTag] == "\"l-1\"")
                    #expect(String(buffer: r.body).hasPrefix(#"{"items":["#))
                }
            }
        }
    }

    @Test func headWhereThereIsNoGetIs405() async throws {
        let id = "0190a8e4-0000-7000-8000-000000000001"
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals/\(id)/triage", method: .head, headers: Self.h()) { r in
                #expect(r.status == .methodNotAllowed)
                #expect(r.headers[.allow] == "POST")
                #expect(r.body.readableBytes == 0)
            }
            try await client.execute(uri: "/v1/nothing-here", method: .head, headers: Self.h()) { r in
                #expect(r.status == .notFound)
                #expect(r.body.readableBytes == 0)
                #expect(r.headers[.contentLength].flatMap { Int($0) } ?? 0 > 0)
            }
        }
    }

    @Test func wrongContentTypeIs415() async throws {
        try await makeApp().test(.router) { client in
            var h = Self.h("ingest")
            h[.contentType] = "text/plain"
            try await client.execute(uri: "/v1/signals", method: .post, headers: h, body: body(validBatch)) { r in
                #expect(r.status == .unsupportedMediaType)
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/request.unsupported_media_type","title":"Unsupported media type","status":415,"detail":"Send the body as application/json; got text/plain.","instance":"/v1/signals","code":"request.unsupported_media_type","requestId":"req-1"}"#
                )
            }
        }
    }

    @Test func bodyOverTheLimitIs413() async throws {
        let big = "{\"items\":[" + String(repeating: " ", count: 5000) + "]}"
        try await makeApp(maxBody: 4096).test(.router) { client in
            try await client.execute(uri: "/v1/signals", method: .post, headers: Self.h("ingest", json: true), body: body(big)) { r in
                #expect(r.status == .contentTooLarge)
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/request.too_large","title":"Content too large","status":413,"detail":"The body is larger than the limit of 4096 bytes.","instance":"/v1/signals","code":"request.too_large","requestId":"req-1"}"#
                )
            }
        }
    }

    struct Boom: Error, CustomStringConvertible {
        var description: String { "secret connection string postgres://user:hunter2@db" }
    }

    @Test func unexpectedErrorIs500WithoutInternals() async throws {
        try await makeApp(handler: FakeSignals(failWith: Boom())).test(.router) { client in
            try await client.execute(uri: "/v1/signals/\(FakeSignals.fixedId.uuidString.lowercased())", method: .get, headers: Self.h()) { r in
                #expect(r.status == .internalServerError)
                let text = String(buffer: r.body)
                #expect(!text.contains("hunter2"))
                #expect(
                    text
                        == #"{"type":"/problems/internal.error","title":"Internal server error","status":500,"detail":"An unexpected error occurred; it has been logged with this request id.","instance":"/v1/signals/0195793d-10c0-7b9a-a4ed-db491c101707","code":"internal.error","requestId":"req-1"}"#
                )
            }
        }
    }

    @Test func missingCredentialIs401WithChallenge() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals", method: .get, headers: Self.h(nil)) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.wwwAuthenticate] == #"Bearer realm="sitrep""#)
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/auth.unauthenticated","title":"Unauthorized","status":401,"detail":"Authentication is required: send a bearer token or a session cookie.","instance":"/v1/signals","code":"auth.unauthenticated","requestId":"req-1"}"#
                )
            }
        }
    }

    @Test func invalidTokenIs401NamingTheReason() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals", method: .get, headers: Self.h("forged")) { r in
                #expect(r.status == .unauthorized)
                #expect(
                    r.headers[.wwwAuthenticate] == #"Bearer realm="sitrep", error="invalid_token", error_description="token signature is invalid""#)
                #expect(field(r, "code") == "auth.unauthenticated")
            }
        }
    }

    @Test func roleNotInXRolesIs403() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals", method: .post, headers: Self.h("viewer", json: true), body: body(validBatch)) { r in
                #expect(r.status == .forbidden)
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/auth.forbidden","title":"Forbidden","status":403,"detail":"This operation needs one of the roles: Sitrep.Ingest.","instance":"/v1/signals","code":"auth.forbidden","requestId":"req-1"}"#
                )
            }
        }
    }

    @Test func mfaStepUpIs401WithClaimsChallenge() async throws {
        let change = #"{"level":"elevated","rationale":"Phishing wave"}"#
        try await makeApp().test(.router) { client in
            try await client.execute(
                uri: "/v1/posture/cyber", method: .put, headers: Self.h("exec", json: true, [("If-Match", "\"0\"")]), body: body(change)
            ) { r in
                #expect(r.status == .unauthorized)
                let claims = Data(#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#.utf8).base64EncodedString()
                #expect(r.headers[values: .wwwAuthenticate].count == 1)
                #expect(
                    r.headers[.wwwAuthenticate]
                        == "Bearer realm=\"sitrep\", error=\"insufficient_claims\", error_description=\"Step-up authentication is required\", claims=\"\(claims)\""
                )
                #expect(field(r, "code") == "auth.step_up_required")
            }
            try await client.execute(
                uri: "/v1/posture/cyber", method: .put, headers: Self.h("exec-mfa", json: true, [("If-Match", "\"0\"")]), body: body(change)
            ) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.eTag] == "\"1\"")
            }
        }
    }

    @Test func missingIfMatchIs428() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(
                uri: "/v1/signals/\(FakeSignals.fixedId.uuidString.lowercased())/triage", method: .post, headers: Self.h("admin", json: true),
                body: body(#"{"status":"acknowledged"}"#)
            ) { r in
                #expect(r.status == .preconditionRequired)
                #expect(field(r, "code") == "precondition.required")
            }
        }
    }

    @Test func plannedOperationIs501() async throws {
        // No operation of today's contract is x-planned; one declared like the generator does.
        let planned = OperationInfo(
            id: "listWidgets", tag: "Widgets", method: .get, path: "/v1/widgets", security: ["bearerAuth"], roles: ["Sitrep.Admin"],
            mfa: false, idempotency: false, rateLimit: nil, statuses: [200, 401, 403, 500, 501], requestContentTypes: [],
            bodyRequired: false, planned: true)
        let app = makeApp(extra: { router, runtime in
            router.get("/v1/widgets") { request, context in
                await runtime.serve(planned, request: request, context: context) { _, _ in
                    Issue.record("the handler of a planned operation ran")
                    return EncodedResponse(status: 200)
                }
            }
        })
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/widgets", method: .get, headers: Self.h()) { r in
                #expect(r.status == .notImplemented)
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/not_implemented","title":"Not implemented","status":501,"detail":"listWidgets is in the contract but not implemented yet (x-planned).","instance":"/v1/widgets","code":"not_implemented","requestId":"req-1"}"#
                )
            }
            // Who may call is still enforced first.
            try await client.execute(uri: "/v1/widgets", method: .get, headers: Self.h(nil)) { r in
                #expect(r.status == .unauthorized)
            }
        }
    }

    @Test func rateLimitIs429WithRetryAfter() async throws {
        try await makeApp(limit: 1).test(.router) { client in
            try await client.execute(uri: "/v1/signals", method: .post, headers: Self.h("ingest", json: true), body: body(validBatch)) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/v1/signals", method: .post, headers: Self.h("ingest", json: true), body: body(validBatch)) { r in
                #expect(r.status == .tooManyRequests)
                #expect(r.headers[.retryAfter] == "42")
                #expect(field(r, "code") == "rate_limit.exceeded")
            }
        }
    }

    @Test func invalidParametersAre400WithPointers() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals?limit=0&category=weather&since=soon", method: .get, headers: Self.h()) { r in
                #expect(r.status == .badRequest)
                #expect(
                    String(buffer: r.body)
                        == #"{"type":"/problems/request.invalid_parameter","title":"Invalid parameters","status":400,"detail":"3 parameters are invalid.","instance":"/v1/signals","code":"request.invalid_parameter","requestId":"req-1","errors":[{"pointer":"/query/category/0","message":"must be one of: geopolitical, economic, security, technology, health, climate, regulatory, reputational"},{"pointer":"/query/since","message":"must be an RFC 3339 date-time, e.g. 2026-11-26T08:00:00Z"},{"pointer":"/query/limit","message":"must be at least 1"}]}"#
                )
            }
            try await client.execute(uri: "/v1/signals/not-a-uuid", method: .get, headers: Self.h()) { r in
                #expect(r.status == .badRequest)
                #expect(field(r, "code") == "request.invalid_parameter")
            }
        }
    }

    @Test func literalSegmentsWinOverParameters() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/posture/history", method: .get, headers: Self.h()) { r in
                #expect(r.status == .ok)
                #expect(String(buffer: r.body) == #"{"items":[],"nextCursor":null}"#)
            }
            try await client.execute(uri: "/v1/signals/stream", method: .get, headers: Self.h()) { r in
                #expect(r.status == .ok && r.headers[.contentType] == "text/event-stream")
            }
        }
    }

    @Test func responseThatBreaksItsSchemaFailsInTestBuilds() async throws {
        try await makeApp(handler: FakeSignals(badConfidence: true)).test(.router) { client in
            try await client.execute(uri: "/v1/signals/\(FakeSignals.fixedId.uuidString.lowercased())", method: .get, headers: Self.h()) { r in
                #expect(r.status == .internalServerError)
                let o = try json(r)
                #expect(str(o, "code") == "contract.response_invalid")
                #expect(str(o, "detail") == "response 200 breaks schema Signal: /confidence: must be at most 1")
            }
        }
    }

    @Test func undocumentedStatusIsRefused() async throws {
        let teapot = ProblemError(Problem(status: 418, code: "tea.pot", detail: "short and stout"))
        try await makeApp(handler: FakeSignals(failWith: teapot)).test(.router) { client in
            try await client.execute(uri: "/v1/signals/\(FakeSignals.fixedId.uuidString.lowercased())", method: .get, headers: Self.h()) { r in
                #expect(r.status == .internalServerError)
                #expect(field(r, "detail") == "undocumented status 418 (tea.pot)")
            }
        }
    }

    @Test func requestIdIsEchoedOrMade() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals", method: .get, headers: Self.h()) { r in
                #expect(r.headers[.xRequestID] == "req-1")
            }
            try await client.execute(uri: "/v1/signals", method: .get, headers: .bearer("admin")) { r in
                let id = try #require(r.headers[.xRequestID])
                #expect(UUID(uuidString: id) != nil)
            }
        }
    }

    @Test func successEncodesTheDocumentedShape() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/signals/\(FakeSignals.fixedId.uuidString.lowercased())", method: .get, headers: Self.h("viewer")) {
                r in
                #expect(r.status == .ok)
                #expect(r.headers[.eTag] == "\"1\"")
                #expect(r.headers[.contentType] == "application/json")
                #expect(
                    String(buffer: r.body)
                        == #"{"id":"0195793d-10c0-7b9a-a4ed-db491c101707","source":"reuters","sourceId":"X1","title":"Brent rises","summary":"Oil up.","sourceUrl":null,"category":"economic","severity":"high","confidence":0.9,"modelVersion":"m1","tags":["oil"],"region":null,"publishedAt":"2025-11-26T08:00:00Z","status":"new","triageNote":null,"triagedBy":null,"triagedAt":null,"ingestedAt":"2025-11-26T08:00:00Z","etag":"\"1\""}"#
                )
            }
        }
    }
}

/// Bodies encoded ahead (`Encoded`, the `okEncoded` cases of revalidated reads).
@Suite("encoded ahead")
struct EncodedAheadTests {
    @Test func theSameBytesGoOutFromOneSharedBufferCheckedLikeAnyOtherAnswer() throws {
        let page = SignalPage(items: [FakeSignals().signal(FakeSignals.fixedId)], nextCursor: "abc")
        let fresh = try ListSignals.Output.ok(page, etag: "\"l-1\"").encoded(validate: true)
        let encoded = Encoded(page, etag: "\"l-1\"")
        let ahead = try ListSignals.Output.okEncoded(encoded).encoded(validate: true)
        let again = try ListSignals.Output.okEncoded(encoded).encoded(validate: true)
        // The same status, content type and header fields (the ETag the `Encoded` was made with).
        #expect(ahead.status == 200 && ahead.contentType == fresh.contentType && ahead.headers.map(\.1) == fresh.headers.map(\.1))
        #expect(ahead.headers.map(\.0) == [.eTag] && encoded.etag == "\"l-1\"")
        #expect(ahead.body == fresh.body && ahead.hasBody && encoded.count == fresh.body.count)
        // Both answers send the one buffer: same storage, nothing copied. A fresh answer has its own.
        let a = try #require(ahead.sharedBody)
        let b = try #require(again.sharedBody)
        let own = try #require(fresh.sharedBody)
        #expect(a.withUnsafeReadableBytes { $0.baseAddress } == b.withUnsafeReadableBytes { $0.baseAddress })
        #expect(own.withUnsafeReadableBytes { $0.baseAddress } != a.withUnsafeReadableBytes { $0.baseAddress })
        // In test builds the bytes are decoded back as the operation's schema, as for `.ok`.
        let bad = SignalPage(items: [FakeSignals(badConfidence: true).signal(FakeSignals.fixedId)], nextCursor: nil)
        #expect(throws: ContractViolation.self) { try ListSignals.Output.okEncoded(Encoded(bad, etag: "\"x\"")).encoded(validate: true) }
        // Replacing the body drops the shared buffer.
        var replaced = ahead
        replaced.body = [1, 2]
        #expect(replaced.sharedBody == nil && replaced.body == [1, 2])
    }
}
