import Auth
import Foundation
import Generated
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SitrepRuntime
import Testing

/// Every operation × every role, against the real service and real tokens, expected exactly as
/// the contract's `x-roles` declares. Operations and roles both come from the generated
/// `SitrepOperations.all` (the spec), so there is no hand-kept list to drift: a new operation or
/// role is in the matrix as soon as it is in `api/openapi.yaml`.
@Suite("role matrix from the spec", .enabled(if: SitrepHarness.isConfigured))
struct RoleMatrixTests {
    /// A path with every `{parameter}` filled by a well-formed id (a domain's 404 or a 400 for a
    /// wrong-shaped parameter both come after authorisation, so either proves the role passed).
    static func concretePath(_ template: String) -> String {
        var out = ""
        var inParam = false
        for ch in template {
            if ch == "{" {
                inParam = true
                out += "0195793d-10c0-7b9a-a4ed-db491c101707"
            } else if ch == "}" {
                inParam = false
            } else if !inParam {
                out.append(ch)
            }
        }
        return out
    }

    @Test func everyOperationTimesEveryRoleIsAllowedOrForbiddenAsDeclared() async throws {
        let operations = SitrepOperations.all.filter { !$0.security.isEmpty }
        let roles = Set(operations.flatMap(\.roles)).sorted()
        #expect(roles.count >= 5, "the contract declares the five Sitrep roles")
        let pem = try DevIssuer.loadOrCreatePrivateKey(at: SitrepHarness.keyPath)
        // One token per role (MFA satisfied, so only the role decides), and one with no role at all.
        var tokens: [(role: String?, token: String)] = []
        for role in roles {
            tokens.append(
                (role, try await DevIssuer.token(privateKeyPEM: pem, roles: [role], user: "matrix-\(role)", name: nil, mfa: true, app: false)))
        }
        tokens.append((nil, try await DevIssuer.token(privateKeyPEM: pem, roles: [], user: "matrix-none", name: nil, mfa: true, app: false)))

        let everyToken = tokens
        try await SitrepHarness.with { client, _ in
            var checked = 0
            for op in operations {
                let path = Self.concretePath(op.path)
                let body: ByteBuffer? = op.requestContentTypes.isEmpty ? nil : buffer("{}")
                // No credential at all: 401 for every secured operation.
                try await client.execute(uri: path, method: op.method, headers: [:], body: body) { r in
                    #expect(r.status == .unauthorized, "\(op.id) without a credential answered \(r.status.code)")
                    #expect(r.problemCode == "auth.unauthenticated", "\(op.id): \(r.text)")
                }
                for (role, token) in everyToken {
                    // Cookie-only operations (the session's own endpoints) do not take bearer
                    // tokens at all: 401 whatever the role. Their matrix needs browser sessions.
                    let bearer = op.security.contains("bearerAuth")
                    let allowed = bearer && (op.roles.isEmpty || role.map(op.roles.contains) == true)
                    var headers = HTTPFields.auth(token, json: body != nil)
                    headers[.xRequestID] = "matrix"
                    // An admitted stream would stay open; a resume id that breaks its pattern ends the
                    // call at 400, which the router only reaches after the role check.
                    if op.streams { headers[HTTPField.Name("Last-Event-ID")!] = "not-a-number" }
                    try await client.execute(uri: path, method: op.method, headers: headers, body: body) { r in
                        let who = role ?? "no role"
                        if allowed {
                            #expect(
                                r.status != .forbidden && r.status != .unauthorized,
                                "\(op.id) should admit \(who) (x-roles: \(op.roles)); answered \(r.status.code) \(r.text)")
                        } else if !bearer {
                            #expect(r.status == .unauthorized, "\(op.id) takes no bearer token; answered \(r.status.code)")
                        } else {
                            #expect(r.status == .forbidden, "\(op.id) should refuse \(who) (x-roles: \(op.roles)); answered \(r.status.code)")
                            #expect(r.problemCode == "auth.forbidden", "\(op.id) for \(who): \(r.text)")
                        }
                    }
                    checked += 1
                }
            }
            #expect(checked == operations.count * everyToken.count)
        }
    }

    @Test func refusalsAreAuditedWithoutCredentials() async throws {
        try await SitrepHarness.with { client, h in
            let forged = h.tokens.viewer.dropLast(4) + "AAAA"
            var headers = HTTPFields.auth(String(forged))
            headers[.xRequestID] = "audit-401"
            try await client.execute(uri: "/v1/signals", method: .get, headers: headers) { r in #expect(r.status == .unauthorized) }
            headers = HTTPFields.auth(h.tokens.viewer, json: true)
            headers[.xRequestID] = "audit-403"
            try await client.execute(
                uri: "/v1/signals/0195793d-10c0-7b9a-a4ed-db491c101707/triage", method: .post, headers: headers,
                body: buffer(#"{"status":"acknowledged"}"#)
            ) { r in #expect(r.status == .forbidden) }
            headers = HTTPFields.auth(h.tokens.executive, json: true, ifMatch: "\"1\"")
            headers[.xRequestID] = "audit-step-up"
            try await client.execute(
                uri: "/v1/posture/cyber", method: .put, headers: headers, body: buffer(#"{"level":"elevated","rationale":"drill"}"#)
            ) {
                r in #expect(r.status == .unauthorized)
            }
            let rows = try await h.db.client.query(
                """
                SELECT request_id, action, outcome, actor_id, entity_type, entity_id, coalesce(reason, '')
                FROM audit_events WHERE request_id LIKE 'audit-%' ORDER BY sequence
                """)
            var seen: [(String, String, String, String, String, String, String)] = []
            for try await row in rows.decode((String, String, String, String, String, String, String).self) { seen.append(row) }
            #expect(seen.map(\.0) == ["audit-401", "audit-403", "audit-step-up"])
            #expect(seen.map(\.1) == ["auth.unauthenticated", "auth.forbidden", "auth.step_up_required"])
            #expect(seen.allSatisfy { $0.2 == "refused" && $0.4 == "operation" })
            #expect(seen.map(\.5) == ["listSignals", "triageSignal", "setPosture"])
            #expect(seen[0].3 == "anonymous")
            #expect(seen[1].3.hasSuffix(DevIssuer.objectId(forUser: "viewer")))
            #expect(seen[0].6 == "token signature is invalid")
            for row in seen {
                for part in h.tokens.viewer.split(separator: ".") + h.tokens.executive.split(separator: ".") where part.count > 8 {
                    #expect(!row.6.contains(part), "an audit reason leaks a token")
                }
            }
        }
    }

    @Test func pathTemplatesAreFilled() {
        #expect(Self.concretePath("/v1/signals/{signalId}/triage") == "/v1/signals/0195793d-10c0-7b9a-a4ed-db491c101707/triage")
        #expect(Self.concretePath("/v1/me") == "/v1/me")
    }
}
