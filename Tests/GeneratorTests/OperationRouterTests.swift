import Foundation
import Testing

@testable import GeneratorCore

/// The order in which the generated operation router tries a contract's paths is the order
/// Hummingbird's trie reaches them: literals before captures at each segment, a node without an
/// operation still final, no order where two captures differ.
@Suite("operation router render")
struct OperationRouterTests {
    typealias R = OperationRouterRenderer

    static func op(_ method: String, _ path: String) -> OperationModel {
        OperationModel(
            operationId: "op", typeName: "Op", tag: "T", method: method, path: path, summary: nil, parameters: [], requestBody: nil,
            responses: [], security: [], roles: [], mfa: false, idempotency: false, rateLimit: nil, planned: false)
    }

    static func templates(_ paths: [String]) -> [([R.Segment], OperationModel)] {
        paths.map { (R.segments($0)!, op("GET", $0)) }
    }

    static func text(_ node: R.Node) -> String {
        node.segments.map { s in
            switch s {
            case .literal(let l): l
            case .capture(let c): "{\(c)}"
            }
        }.joined(separator: "/")
    }

    @Test func segmentsOfTheContractsPaths() {
        #expect(R.segments("/v1/signals/{signalId}") == [.literal("v1"), .literal("signals"), .capture("signalId")])
        for unusual in ["/v1/{id}.pdf", "/v1/:id", "/v1/*", "/v1//x", "/v1/", "v1", "/", "/v1/{}"] {
            #expect(R.segments(unusual) == nil, "\(unusual)")
        }
    }

    @Test func literalsComeBeforeCapturesAndPrefixesAreNodes() throws {
        let t = Self.templates([
            "/v1/signals/{signalId}", "/v1/signals/stream", "/v1/posture/{domain}", "/v1/posture/history", "/v1/signals/{signalId}/triage",
            "/v1/webhooks/twilio/status",
        ])
        let three = try #require(R.nodes(t, depth: 3)).map(Self.text)
        #expect(three == ["v1/posture/history", "v1/posture/{domain}", "v1/signals/stream", "v1/signals/{signalId}", "v1/webhooks/twilio"])
        let nodes = try #require(R.nodes(t, depth: 3))
        #expect(nodes.map(\.operations.count) == [1, 1, 1, 1, 0], "the webhook prefix is a node without an operation")
        #expect(try #require(R.nodes(t, depth: 1)).map(Self.text) == ["v1"])
    }

    @Test func twoDifferentCapturesUnderTheSameLiteralsHaveNoCertainOrder() {
        let t = Self.templates(["/v1/a/{x}", "/v1/a/{y}/b", "/v1/c/{z}"])
        #expect(R.nodes(t, depth: 3) == nil)
        #expect(R.nodes(t, depth: 2) != nil)
    }
}
