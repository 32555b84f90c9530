import Foundation

/// `SitrepOperationRouter` in Router.swift: the contract's operations matched by generated code (a
/// switch on the number of path segments, then their literals) before Hummingbird's router sees
/// the request. The router resolves a path in its trie with generic code it cannot specialise for
/// the server's context; that lookup cost more instructions than anything the generated route
/// does on top of it.
///
/// It answers exactly what the router would, or leaves the request to the router:
/// - the router's trie takes a path's segments one at a time, tries a literal before a capture,
///   and backtracks; the first node it reaches with as many segments as the path is the answer
///   (a node without a route, or without the request's method, is a 404, 405 or `HEAD` there);
/// - so, for each segment count, the nodes the contract's paths make are tried here in that same
///   order, and the first one matching is final: its operation for the request's method, or,
///   for any other method, the router (which finds the same node);
/// - paths not in the contract's form (see `RequestPath`) and every other case go to the router.
///
/// Routes added to the router beside the contract (documents, metrics) must not add a node
/// that the trie would try before one of the contract's: a literal segment where the contract
/// has a capture, at the same place under the same literals.
enum OperationRouterRenderer {
    /// A path segment of the contract: a literal, or a whole-segment capture (`{name}`).
    enum Segment: Equatable {
        case literal(String)
        case capture(String)

        /// The router tries literals first.
        var rank: Int {
            switch self {
            case .literal: 0
            case .capture: 1
            }
        }
    }

    /// A trie node: the segments leading to it, and the operations routed at exactly that path.
    struct Node {
        var segments: [Segment]
        var operations: [OperationModel]
    }

    static func segments(_ path: String) -> [Segment]? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].isEmpty else { return nil }
        var out: [Segment] = []
        for p in parts.dropFirst() {
            if p.hasPrefix("{") && p.hasSuffix("}") && p.count > 2 {
                let name = String(p.dropFirst().dropLast())
                guard !name.contains(where: { "{}/:*".contains($0) }) else { return nil }
                out.append(.capture(name))
            } else {
                // Empty segments, and segments the router reads as patterns (`:x`, `*`, `**`,
                // `{x}.pdf`), are not matched here.
                guard !p.isEmpty, !p.contains(where: { "{}:*".contains($0) }) else { return nil }
                out.append(.literal(String(p)))
            }
        }
        return out
    }

    /// The nodes with `depth` segments, in the order the router's trie reaches them; nil when
    /// that order is not certain (two different captures under the same literals).
    static func nodes(_ templates: [([Segment], OperationModel)], depth: Int) -> [Node]? {
        var nodes: [Node] = []
        for (segments, op) in templates where segments.count >= depth {
            let prefix = Array(segments.prefix(depth))
            if let i = nodes.firstIndex(where: { $0.segments == prefix }) {
                if segments.count == depth { nodes[i].operations.append(op) }
            } else {
                nodes.append(Node(segments: prefix, operations: segments.count == depth ? [op] : []))
            }
        }
        var certain = true
        nodes.sort { a, b in
            for (x, y) in zip(a.segments, b.segments) where x != y {
                switch (x, y) {
                case (.literal(let l), .literal(let r)): return l < r
                case (.capture, .capture):
                    certain = false
                    return false
                default: return x.rank < y.rank
                }
            }
            return false
        }
        return certain ? nodes : nil
    }

    static func render(_ model: APIModel, into w: inout SwiftWriter) {
        var templates: [([Segment], OperationModel)] = []
        var unmatched = false
        for op in model.operations {
            if let s = segments(op.path), s.count <= 8 {
                templates.append((s, op))
            } else {
                unmatched = true
            }
        }
        w.doc(
            """
            The contract's operations, matched by generated code before Hummingbird's `router`
            sees the request (the router resolves a path with generic code that cannot be
            specialised for this context). A request is answered exactly as the router would
            answer it: the first node of the router's trie that the path reaches (literals
            before captures) decides, and anything but one of its operations' methods (`HEAD`,
            405, 404), every other path, and the routes added beside the contract go to the
            router. Those routes must not put a literal where the contract has a capture.
            """)
        if unmatched {
            w.line("///")
            w.line("/// Some paths of this contract are not in a form matched here; the router answers them.")
        }
        w.open("public struct SitrepOperationRouter: HTTPResponderBuilder")
        w.doc("Each operation, as the router's route for it runs it (see `registerSitrepAPI`).")
        w.open("@usableFromInline struct Operations: Sendable")
        w.line("@usableFromInline typealias Run = @Sendable (Request, SitrepRequestContext) async -> Response")
        for op in model.operations { w.line("@usableFromInline let \(op.operationId): Run") }
        w.line()
        // Inlinable, so that the caller's module specialises each closure for its handler type
        // and the responder below, which is not generic, calls them.
        w.line("@inlinable")
        w.open("init(_ handler: some SitrepAPI, runtime: APIRuntime)")
        for op in model.operations {
            w.openRaw("\(op.operationId) = { request, context in")
            ServerRenderer.serve(op, into: &w)
            w.close()
        }
        w.close()
        w.close()
        w.line()
        w.line("@usableFromInline let operations: Operations")
        w.line("public let router: Router<SitrepRequestContext>")
        w.line()
        w.doc("`router` has the contract's routes (`registerSitrepAPI`) and any others.")
        w.line("@inlinable")
        w.open("public init(_ handler: some SitrepAPI, runtime: APIRuntime, router: Router<SitrepRequestContext>)")
        w.line("self.operations = Operations(handler, runtime: runtime)")
        w.line("self.router = router")
        w.close()
        w.line()
        w.open("public func buildResponder() -> Responder")
        w.line("Responder(operations: operations, router: router.buildResponder())")
        w.close()
        w.line()
        w.open("public struct Responder: HTTPResponder")
        w.line("public typealias Context = SitrepRequestContext")
        w.line("let operations: Operations")
        w.line("let router: RouterResponder<SitrepRequestContext>")
        w.line()
        // One await, after a synchronous match: with a call in each branch, the async frame
        // held a copy of the context for every operation (14 kB, allocated per request).
        w.open("public func respond(to request: Request, context: SitrepRequestContext) async throws -> Response")
        w.open("guard let (run, parameters) = operation(for: request) else")
        w.line("return try await router.respond(to: request, context: context)")
        w.close()
        w.open("if let parameters")
        w.line("var context = context")
        w.line("context.coreContext.parameters = parameters")
        w.line("return await run(request, context)")
        w.close()
        w.line("return await run(request, context)")
        w.close()
        w.line()
        w.doc(
            """
            The operation the router would run for `request`, and the path's captured segments
            when it has some; nil when the router answers it.
            """)
        w.open("func operation(for request: Request) -> (Operations.Run, Parameters?)?")
        w.line("let path = RequestPath(request.uri.path)")
        let depths = Set(templates.map(\.0.count)).sorted()
        if !depths.isEmpty {
            w.line("switch path.count {")
            for depth in depths {
                guard let nodes = nodes(templates, depth: depth) else { continue }
                w.line("case \(depth):")
                w.indent {
                    emit(nodes, at: 0, into: &$0)
                }
            }
            w.line("default:")
            w.line("    break")
            w.line("}")
        }
        w.line("return nil")
        w.close()
        w.close()
        w.close()
    }

    /// The nodes (all as long, sharing their first `position` segments), tried in order: a group
    /// of nodes sharing segment `position` is entered when the segment matches (a capture always
    /// does); a node reached with all its segments matched is final.
    static func emit(_ nodes: [Node], at position: Int, into w: inout SwiftWriter) {
        var i = 0
        while i < nodes.count {
            let segment = nodes[i].segments[position]
            var j = i + 1
            while j < nodes.count && nodes[j].segments[position] == segment { j += 1 }
            let group = Array(nodes[i..<j])
            let condition: String? =
                if case .literal(let l) = segment { "path.matches(\(position), \(SwiftLiteral.string(l)))" } else { nil }
            if let condition { w.open("if \(condition)") } else { w.open("do") }
            // All the nodes have as many segments as the path; at the last one, the group is one node.
            if position + 1 == group[0].segments.count {
                final(group[0], into: &w)
            } else {
                emit(group, at: position + 1, into: &w)
            }
            w.close()
            i = j
        }
    }

    /// The node the router would reach: its operations by method; nil (the router's) for any other.
    static func final(_ node: Node, into w: inout SwiftWriter) {
        let template = node.segments.map { s in
            switch s {
            case .literal(let l): "/" + l
            case .capture(let c): "/{" + c + "}"
            }
        }.joined()
        w.line("// \(template)")
        for op in node.operations {
            w.open("if request.method == .\(op.method.lowercased())")
            let captures = node.segments.enumerated().compactMap { i, s -> String? in
                if case .capture(let name) = s { return "\(SwiftLiteral.string(name)): path[\(i)]" }
                return nil
            }
            w.line("return (operations.\(op.operationId), \(captures.isEmpty ? "nil" : "[" + captures.joined(separator: ", ") + "]"))")
            w.close()
        }
        w.line("return nil")
    }
}
