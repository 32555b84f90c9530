import Foundation
import Generated
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SitrepRuntime
import Testing

/// An in-memory store implementing the idempotency protocol's contract, to test the runtime's
/// side of `x-idempotency` (the PostgreSQL store comes with the actions issue).
actor MemoryIdempotencyStore: IdempotencyStore {
    enum Entry {
        case inFlight(String)
        case done(String, EncodedResponse)
    }
    var entries: [String: Entry] = [:]

    func execute(
        operation: String, principal: String, key: String, fingerprint: String,
        _ body: @Sendable (_ transaction: (any Sendable)?) async throws -> EncodedResponse
    ) async throws -> IdempotencyOutcome {
        let k = principal + "|" + key
        switch entries[k] {
        case .inFlight(let fp):
            return fp == fingerprint ? .inFlight : .mismatch
        case .done(let fp, let response):
            return fp == fingerprint ? .replay(response) : .mismatch
        case nil:
            entries[k] = .inFlight(fingerprint)
            do {
                let response = try await body(nil)
                entries[k] = IdempotencyPolicy.keeps(response) ? .done(fingerprint, response) : nil
                return .fresh(response)
            } catch {
                entries[k] = nil
                throw error
            }
        }
    }
}

/// Counts effects so a test can see that a replay did not run the handler again.
actor EffectCounter {
    var count = 0
    func bump() -> Int {
        count += 1
        return count
    }
}

@Suite("runtime policies")
struct PolicyTests {
    static let op = OperationInfo(
        id: "createThing", tag: "Test", method: .post, path: "/things", security: ["bearerAuth"], roles: ["Sitrep.Admin"],
        mfa: false, idempotency: true, rateLimit: nil, statuses: [201, 400, 401, 403, 409, 413, 415, 422, 500],
        requestContentTypes: ["application/json"], bodyRequired: true, planned: false)

    func app(store: MemoryIdempotencyStore, counter: EffectCounter, gate: AsyncStream<Void>? = nil) -> some ApplicationProtocol {
        makeApp(idempotency: store) { router, runtime in
            router.post("/things") { request, context in
                await runtime.serve(Self.op, request: request, context: context) { parts, _ in
                    if let gate { for await _ in gate { break } }
                    let n = await counter.bump()
                    if case .object(let o)? = parts.json, o["fail"] != nil {
                        return try EncodedResponse.problem(.validation(ValidationErrors()), validate: false)
                    }
                    return EncodedResponse(
                        status: 201, headers: [(.location, "/things/\(n)")], contentType: "application/json", body: Array("{\"n\":\(n)}".utf8))
                }
            }
        }
    }

    func headers(key: String?) -> HTTPFields {
        var h = HTTPFields.bearer("admin", json: true)
        if let key { h[HTTPField.Name("Idempotency-Key")!] = key }
        return h
    }

    @Test func sameKeySameBodyReplaysWithoutRunningAgain() async throws {
        let store = MemoryIdempotencyStore()
        let counter = EffectCounter()
        try await app(store: store, counter: counter).test(.router) { client in
            try await client.execute(uri: "/things", method: .post, headers: headers(key: "k1"), body: body(#"{"a":1}"#)) { r in
                #expect(r.status == .created)
                #expect(String(buffer: r.body) == #"{"n":1}"#)
                #expect(r.headers[HTTPField.Name("Idempotent-Replayed")!] == nil)
            }
            try await client.execute(uri: "/things", method: .post, headers: headers(key: "\"k1\""), body: body(#"{"a":1}"#)) { r in
                #expect(r.status == .created)
                #expect(String(buffer: r.body) == #"{"n":1}"#)
                #expect(r.headers[.location] == "/things/1")
                #expect(r.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            }
        }
        #expect(await counter.count == 1)
    }

    @Test func sameKeyOtherBodyIs422() async throws {
        let store = MemoryIdempotencyStore()
        try await app(store: store, counter: EffectCounter()).test(.router) { client in
            try await client.execute(uri: "/things", method: .post, headers: headers(key: "k2"), body: body(#"{"a":1}"#)) { _ in }
            try await client.execute(uri: "/things", method: .post, headers: headers(key: "k2"), body: body(#"{"a":2}"#)) { r in
                #expect(r.status == .unprocessableContent)
                #expect(field(r, "code") == "idempotency.key_reused")
            }
        }
    }

    @Test func sameKeyInFlightIs409() async throws {
        let store = MemoryIdempotencyStore()
        let (gate, open) = AsyncStream<Void>.makeStream()
        try await app(store: store, counter: EffectCounter(), gate: gate).test(.router) { client in
            async let first: Void = client.execute(uri: "/things", method: .post, headers: headers(key: "k3"), body: body(#"{"a":1}"#)) { r in
                #expect(r.status == .created)
            }
            // Wait until the first request holds the key.
            while await store.entries.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
            try await client.execute(uri: "/things", method: .post, headers: headers(key: "k3"), body: body(#"{"a":1}"#)) { r in
                #expect(r.status == .conflict)
                #expect(field(r, "code") == "idempotency.in_flight")
            }
            open.yield()
            open.finish()
            try await first
        }
    }

    @Test func missingKeyIs400AndFailuresAreNotStored() async throws {
        let store = MemoryIdempotencyStore()
        let counter = EffectCounter()
        try await app(store: store, counter: counter).test(.router) { client in
            try await client.execute(uri: "/things", method: .post, headers: headers(key: nil), body: body(#"{"a":1}"#)) { r in
                #expect(r.status == .badRequest)
                #expect(field(r, "code") == "request.invalid_parameter")
            }
            try await client.execute(uri: "/things", method: .post, headers: headers(key: String(repeating: "k", count: 256)), body: body("{}")) {
                r in
                #expect(r.status == .badRequest)
            }
            // A validation failure is not remembered: the corrected retry with the same key runs.
            try await client.execute(uri: "/things", method: .post, headers: headers(key: "k4"), body: body(#"{"fail":true}"#)) { r in
                #expect(r.status == .unprocessableContent)
            }
            #expect(await store.entries.isEmpty)
        }
    }

    @Test func runtimeRefusesToStartWithoutWhatTheSpecDeclares() {
        let bare = APIRuntime(authenticator: nil)
        #expect(throws: ContractViolation.self) { try bare.verify(operations: SitrepOperations.all) }
        let noStore = APIRuntime(authenticator: TestAuthenticator(), rateLimiter: CountingRateLimiter(limit: 1))
        let refusal = #expect(throws: ContractViolation.self) { try noStore.verify(operations: SitrepOperations.all) }
        #expect(refusal?.message.contains("createAction declares x-idempotency but no idempotency store is configured") == true)
        let complete = APIRuntime(
            authenticator: TestAuthenticator(), rateLimiter: CountingRateLimiter(limit: 1), idempotencyStore: MemoryIdempotencyStore())
        #expect(throws: Never.self) { try complete.verify(operations: SitrepOperations.all) }
    }
}
