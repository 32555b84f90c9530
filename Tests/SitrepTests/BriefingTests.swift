import Auth
import Foundation
import Generated
import HTTPTypes
import Handlers
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import SitrepRuntime
import Testing

@Suite("briefing workflow (pure)")
struct BriefingWorkflowTests {
    typealias W = BriefingWorkflow
    static let allStatuses: [BriefingStatus] = [.draft, .pendingApproval, .approved, .distributed]
    static let roleSets: [Set<String>] = [
        [], ["Sitrep.Viewer"], ["Sitrep.Admin"], ["Sitrep.Executive"], ["Sitrep.Admin", "Sitrep.Executive"], ["Sitrep.BriefingWriter"],
    ]

    @Test func everyStateTransitionRoleAndSubmitterCombination() {
        for status in Self.allStatuses {
            for t in W.Transition.allCases {
                for roles in Self.roleSets {
                    for submitter in [nil, "me", "someone-else"] {
                        let actor = W.Actor(id: "me", roles: roles)
                        let result = W.decide(t, from: status, actor: actor, submittedBy: submitter)
                        let hasRole = !roles.isDisjoint(with: W.roles(for: t))
                        let (from, to) = W.edge(t)
                        switch result {
                        case .success(let next):
                            #expect(hasRole && status == from && next == to)
                            #expect(!(t == .approve && submitter == "me"), "four eyes")
                            if t == .return && !roles.contains("Sitrep.Executive") { #expect(submitter == "me") }
                        case .failure(.missingRole):
                            #expect(!hasRole)
                        case .failure(.invalidTransition(let f, let allowed)):
                            #expect(hasRole && status != from && f == status)
                            #expect(allowed == W.allowed(from: status))
                        case .failure(.selfApproval):
                            #expect(t == .approve && submitter == "me" && status == .pendingApproval)
                        case .failure(.notOwnSubmission):
                            #expect(t == .return && !roles.contains("Sitrep.Executive") && submitter != "me")
                        }
                    }
                }
            }
        }
    }

    @Test func theGraph() {
        #expect(W.allowed(from: .draft) == [.submit])
        #expect(W.allowed(from: .pendingApproval) == [.return, .approve])
        #expect(W.allowed(from: .approved) == [.distribute])
        #expect(W.allowed(from: .distributed) == [])
        #expect(W.isEditable(.draft) && !W.isEditable(.pendingApproval) && !W.isEditable(.approved) && !W.isEditable(.distributed))
    }
}

/// The workflow through the API on the real service: roles, MFA, four eyes, If-Match, frozen
/// content, audit, and the database refusing what the API would refuse.
@Suite("briefings", .enabled(if: SitrepHarness.isConfigured), .serialized)
struct BriefingTests {
    struct Tokens: Sendable {
        let writer, admin, admin2, exec, execNoMFA, adminExec, viewer: String
    }

    static func tokens() async throws -> Tokens {
        let pem = try DevIssuer.loadOrCreatePrivateKey(at: SitrepHarness.keyPath)
        func t(_ roles: [String], _ user: String, mfa: Bool = true, app: Bool = false) async throws -> String {
            try await DevIssuer.token(privateKeyPEM: pem, roles: roles, user: user, name: user.capitalized, mfa: mfa, app: app)
        }
        return Tokens(
            writer: try await t(["Sitrep.BriefingWriter"], "briefing-writer", mfa: false, app: true),
            admin: try await t(["Sitrep.Admin"], "admin-a"), admin2: try await t(["Sitrep.Admin"], "admin-b"),
            exec: try await t(["Sitrep.Executive"], "exec-a"), execNoMFA: try await t(["Sitrep.Executive"], "exec-b", mfa: false),
            adminExec: try await t(["Sitrep.Admin", "Sitrep.Executive"], "admin-exec"), viewer: try await t(["Sitrep.Viewer"], "viewer-a"))
    }

    static let body = """
        {"title":"Daily Leadership Briefing — 9 March 2025","titleAr":"الإحاطة اليومية للقيادة","briefingDate":"2025-03-09",
        "summary":"Oil up; phishing campaign.","summaryAr":"ارتفاع النفط؛ حملة تصيّد.",
        "sections":[{"heading":"Economy","headingAr":"الاقتصاد","body":"Brent rose 4.1%.","bodyAr":"ارتفع خام برنت.","signalIds":[]}],
        "modelVersion":"writer-1"}
        """

    static func h(_ token: String, ifMatch: String? = nil, json: Bool = false) -> HTTPFields {
        HTTPFields.auth(token, json: json, ifMatch: ifMatch)
    }

    static func create(_ client: any TestClientProtocol, _ token: String) async throws -> Briefing {
        let r = try await client.execute(uri: "/v1/briefings", method: .post, headers: h(token, json: true), body: buffer(body))
        #expect(r.status == .created, "\(r.text)")
        return try r.decode(Briefing.self)
    }

    static func act(
        _ client: any TestClientProtocol, _ id: UUID, _ action: String, _ token: String, etag: String, reason: String? = nil
    ) async throws -> TestResponse {
        let b = reason.map { buffer(#"{"reason":"\#($0)"}"#) }
        return try await client.execute(
            uri: "/v1/briefings/\(id.lowercasedString)/\(action)", method: .post, headers: h(token, ifMatch: etag, json: b != nil), body: b)
    }

    @Test func theHappyPathWithRevisionsFourEyesAndAudit() async throws {
        let t = try await Self.tokens()
        try await SitrepHarness.with { client, h in
            let created = try await Self.create(client, t.writer)
            #expect(created.status == .draft && created.revision == 1 && created.contentHash.count == 64)
            #expect(created.createdBy == "Briefing-Writer")
            let id = created.id.lowercasedString

            // Viewers do not see drafts, in lists or by id.
            #expect(try await client.execute(uri: "/v1/briefings/\(id)", method: .get, headers: Self.h(t.viewer)).status == .notFound)
            let viewerList = try await client.execute(uri: "/v1/briefings", method: .get, headers: Self.h(t.viewer)).decode(BriefingPage.self)
            #expect(viewerList.items.isEmpty)

            // Edit: If-Match required; a new revision each time.
            let edit =
                #"{"title":"Edited","titleAr":"معدل","summary":"S","summaryAr":"م","#
                + #""sections":[{"heading":"H","headingAr":"ع","body":"B","bodyAr":"ب","signalIds":[]}],"changeNote":"tighter"}"#
            #expect(
                try await client.execute(uri: "/v1/briefings/\(id)", method: .put, headers: Self.h(t.admin, json: true), body: buffer(edit)).status
                    == .preconditionRequired)
            #expect(
                try await client.execute(
                    uri: "/v1/briefings/\(id)", method: .put, headers: Self.h(t.admin, ifMatch: "\"b-99\"", json: true), body: buffer(edit)
                ).status == .preconditionFailed)
            let edited = try await client.execute(
                uri: "/v1/briefings/\(id)", method: .put, headers: Self.h(t.admin, ifMatch: created.etag, json: true), body: buffer(edit)
            ).decode(Briefing.self)
            #expect(edited.revision == 2 && edited.title == "Edited" && edited.contentHash != created.contentHash)
            let revisions = try await client.execute(uri: "/v1/briefings/\(id)/revisions", method: .get, headers: Self.h(t.exec))
                .decode(BriefingRevisionPage.self)
            #expect(revisions.items.map(\.revision) == [2, 1])
            #expect(revisions.items.first?.changeNote == "tighter")

            let early = try await client.execute(uri: "/v1/briefings/\(id)/pdf", method: .get, headers: Self.h(t.admin))
            #expect(early.status == .conflict)
            #expect(early.problemCode == "briefing.not_approved")

            // Submit (admin), then the submitter cannot approve even holding Executive (four eyes).
            let submitted = try await Self.act(client, created.id, "submit", t.adminExec, etag: edited.etag).decode(Briefing.self)
            #expect(submitted.status == .pendingApproval && submitted.submittedBy == "Admin-Exec")
            let selfApproval = try await Self.act(client, created.id, "approve", t.adminExec, etag: submitted.etag)
            #expect(selfApproval.status == .forbidden)
            #expect(selfApproval.problemCode == "briefing.self_approval_forbidden")
            // Editing is closed while pending.
            let closed = try await client.execute(
                uri: "/v1/briefings/\(id)", method: .put, headers: Self.h(t.admin, ifMatch: submitted.etag, json: true), body: buffer(edit))
            #expect(closed.status == .conflict)
            #expect(closed.problemCode == "briefing.not_editable")
            // Approval needs MFA step-up.
            let noMFA = try await Self.act(client, created.id, "approve", t.execNoMFA, etag: submitted.etag)
            #expect(noMFA.status == .unauthorized)
            #expect(noMFA.problemCode == "auth.step_up_required")
            // Return with a reason, resubmit, approve.
            let returned = try await Self.act(client, created.id, "return", t.exec, etag: submitted.etag, reason: "Add the budget impact")
                .decode(Briefing.self)
            #expect(returned.status == .draft && returned.returnReason == "Add the budget impact")
            let again = try await Self.act(client, created.id, "submit", t.admin, etag: returned.etag).decode(Briefing.self)
            let approved = try await Self.act(client, created.id, "approve", t.exec, etag: again.etag).decode(Briefing.self)
            #expect(approved.status == .approved && approved.approvedBy == "Exec-A" && approved.contentHash == edited.contentHash)

            // The PDF: refused before approval, served after, the approved content inside.
            let pdf = try await client.execute(uri: "/v1/briefings/\(id)/pdf", method: .get, headers: Self.h(t.viewer))
            #expect(pdf.status == .ok)
            #expect(pdf.headers[.contentType] == "application/pdf")
            #expect(pdf.headers[HTTPField.Name("Content-Disposition")!] == "attachment; filename=\"briefing-2025-03-09.pdf\"")
            #expect(Array(pdf.body.readableBytesView.prefix(5)) == Array("%PDF-".utf8))

            // Approved: illegal transitions are 409 naming the state and what is allowed, and audited.
            let illegal = try await Self.act(client, created.id, "submit", t.admin, etag: approved.etag)
            #expect(illegal.status == .conflict)
            #expect(illegal.problemCode == "briefing.invalid_transition")
            #expect(try illegal.decode(Problem.self).detail == "The briefing is approved; allowed from there: distribute.")
            // Viewers see it now.
            #expect(try await client.execute(uri: "/v1/briefings/\(id)", method: .get, headers: Self.h(t.viewer)).status == .ok)

            // The trail: every step, accepted or refused, in order, and the chain verifies.
            let trail = try await client.execute(uri: "/v1/briefings/\(id)/audit", method: .get, headers: Self.h(t.exec)).decode(AuditEventPage.self)
            #expect(
                trail.items.map { "\($0.action):\($0.outcome.rawValue)" } == [
                    "briefing.create:succeeded", "briefing.update:succeeded", "briefing.submit:succeeded", "briefing.approve:refused",
                    "briefing.update:refused", "briefing.return:succeeded", "briefing.submit:succeeded", "briefing.approve:succeeded",
                    "briefing.submit:refused",
                ])
            let verify = try await client.execute(uri: "/v1/audit/verify", method: .get, headers: Self.h(t.admin)).decode(AuditVerification.self)
            #expect(verify.valid && verify.eventsChecked >= 9)

            // The database itself refuses what the API refuses.
            for sql in [
                "UPDATE briefings SET title = 'tampered' WHERE id = '\(id)'",
                "UPDATE briefings SET status = 'draft' WHERE id = '\(id)'",
                "DELETE FROM briefings WHERE id = '\(id)'",
                "UPDATE briefing_revisions SET title = 'x' WHERE briefing_id = '\(id)'",
            ] {
                await #expect(throws: PSQLError.self, "\(sql)") { try await h.db.client.query(PostgresQuery(unsafeSQL: sql)) }
            }
        }
    }

    @Test func parallelApprovalsHaveExactlyOneWinner() async throws {
        let t = try await Self.tokens()
        let pem = try DevIssuer.loadOrCreatePrivateKey(at: SitrepHarness.keyPath)
        var execs: [String] = []
        for i in 0..<6 {
            execs.append(
                try await DevIssuer.token(privateKeyPEM: pem, roles: ["Sitrep.Executive"], user: "exec-\(i)", name: nil, mfa: true, app: false))
        }
        let approvers = execs
        try await SitrepHarness.with { client, h in
            let created = try await Self.create(client, t.writer)
            let submitted = try await Self.act(client, created.id, "submit", t.admin, etag: created.etag).decode(Briefing.self)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for token in approvers {
                    group.addTask { try await Self.act(client, created.id, "approve", token, etag: submitted.etag).status }
                }
                var all: [HTTPResponse.Status] = []
                for try await s in group { all.append(s) }
                return all
            }
            #expect(statuses.filter { $0 == .ok }.count == 1)
            #expect(statuses.allSatisfy { $0 == .ok || $0 == .preconditionFailed || $0 == .conflict })
            let rows = try await h.db.client.query(
                "SELECT count(*)::int8 FROM audit_events WHERE action = 'briefing.approve' AND outcome = 'succeeded'")
            for try await n in rows.decode(Int.self) { #expect(n == 1) }
        }
    }

    /// Random sequences of transitions by random callers: the state is always one the graph
    /// allows, every accepted transition has exactly one audit event, every refused one
    /// (409/403) has one too, and stale If-Match (412) changes nothing.
    @Test func randomSequencesNeverReachAnIllegalState() async throws {
        let t = try await Self.tokens()
        try await SitrepHarness.with { client, h in
            var rng = SystemRandomNumberGenerator()
            let callers = [t.admin, t.admin2, t.exec, t.adminExec, t.viewer, t.writer]
            let actions = ["submit", "return", "approve"]
            var accepted = 0
            var refused = 0
            for _ in 0..<4 {
                var current = try await Self.create(client, t.writer)
                for _ in 0..<60 {
                    let action = actions.randomElement(using: &rng)!
                    let token = callers.randomElement(using: &rng)!
                    let stale = Int.random(in: 0..<10, using: &rng) == 0
                    let r = try await Self.act(
                        client, current.id, action, token, etag: stale ? "\"b-0\"" : current.etag, reason: action == "return" ? "again" : nil)
                    switch r.status {
                    case .ok:
                        let next = try r.decode(Briefing.self)
                        let edge = BriefingWorkflow.edge(BriefingWorkflow.Transition(rawValue: action)!)
                        #expect(current.status == edge.from && next.status == edge.to)
                        current = next
                        accepted += 1
                    case .conflict, .forbidden:
                        let code = r.problemCode
                        if code != "auth.forbidden" { refused += 1 }  // role refusals come from x-roles, audited as auth.forbidden
                        let now = try await client.execute(
                            uri: "/v1/briefings/\(current.id.lowercasedString)", method: .get, headers: Self.h(t.admin)
                        ).decode(Briefing.self)
                        #expect(now.status == current.status && now.etag == current.etag)
                    case .preconditionFailed:
                        #expect(stale)
                    default:
                        Issue.record("unexpected \(r.status): \(r.text)")
                    }
                    #expect(BriefingWorkflowTests.allStatuses.contains(current.status))
                }
            }
            let rows = try await h.db.client.query(
                """
                SELECT count(*) FILTER (WHERE outcome = 'succeeded')::int8, count(*) FILTER (WHERE outcome = 'refused')::int8
                FROM audit_events WHERE action IN ('briefing.submit', 'briefing.return', 'briefing.approve')
                """)
            for try await (ok, no) in rows.decode((Int, Int).self) {
                #expect(ok == accepted)
                #expect(no == refused)
            }
            #expect(accepted > 0 && refused > 0)
        }
    }
}
