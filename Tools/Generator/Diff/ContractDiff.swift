import Foundation
import OpenAPIKit

/// The diff stage: compares two versions of the contract and reports what changed for clients.
///
/// Operations are matched by path and method (path-parameter names do not matter), responses by
/// status, content by media type, parameters by name and location. Schemas are compared
/// structurally, following `$ref`s into each document's components; a change inside a component
/// is reported once per direction, at `components.schemas.<Name>`.
public struct ContractDiff: Sendable {
    public struct Finding: Sendable, Equatable, CustomStringConvertible {
        /// A stable id such as `operation-removed`; see the rule functions for the full list.
        public let rule: String
        /// A spec path such as `paths./v1/signals.get.parameters.limit`.
        public let location: String
        public let message: String
        public let breaking: Bool

        public init(rule: String, location: String, message: String, breaking: Bool) {
            self.rule = rule
            self.location = location
            self.message = message
            self.breaking = breaking
        }

        /// `BREAKING rule location: message` or `ok rule location: message`.
        public var description: String {
            "\(breaking ? "BREAKING" : "ok") \(rule) \(location): \(message)"
        }
    }

    public struct Verdict: Sendable, Equatable {
        public let passes: Bool
        public let reason: String
    }

    public static func compare(old: LoadedSpec, new: LoadedSpec) -> [Finding] {
        let diff = DiffRun(old: SpecAccess(document: old.document), new: SpecAccess(document: new.document))
        diff.compareOperations()
        return diff.findings
    }

    /// Breaking findings pass only when the new `info.version` has a higher major than the old one.
    public static func verdict(old: LoadedSpec, new: LoadedSpec, findings: [Finding]) -> Verdict {
        let breaking = findings.filter(\.breaking).count
        let from = old.document.info.version
        let to = new.document.info.version
        guard breaking > 0 else { return Verdict(passes: true, reason: "no breaking changes (\(from) → \(to))") }
        guard let oldMajor = major(from), let newMajor = major(to) else {
            return Verdict(passes: false, reason: "\(breaking) breaking change(s), and the versions \(from) → \(to) are not semver X.Y.Z")
        }
        if newMajor > oldMajor {
            return Verdict(passes: true, reason: "\(breaking) breaking change(s) allowed by the major version bump \(from) → \(to)")
        }
        return Verdict(passes: false, reason: "\(breaking) breaking change(s) need a major version bump (info.version is \(from) → \(to))")
    }

    /// The command line's diff (`sitrep-gen diff`, `sitrep contract diff`): loads both files,
    /// prints one line per finding (`BREAKING rule location: message` / `ok rule location:
    /// message`) on stdout and the verdict or the load errors on stderr, and returns the exit code
    /// (0 passes, 1 breaking changes without a major version bump or a file that does not load).
    public static func runCommand(oldPath: String, newPath: String) -> Int32 {
        func load(_ path: String) -> LoadedSpec? {
            do {
                return try Loader.load(file: path)
            } catch let e as DiagnosticError {
                FileHandle.standardError.write(Data((e.diagnostics.map { $0.rendered(file: path) }.joined(separator: "\n") + "\n").utf8))
            } catch {
                FileHandle.standardError.write(Data("\(path):1: error: \(error)\n".utf8))
            }
            return nil
        }
        guard let old = load(oldPath), let new = load(newPath) else { return 1 }
        let findings = compare(old: old, new: new)
        for f in findings { print(f.description) }
        let verdict = verdict(old: old, new: new, findings: findings)
        let line = "diff \(oldPath) → \(newPath): \(verdict.passes ? "ok, " : "")\(verdict.reason)\n"
        FileHandle.standardError.write(Data(line.utf8))
        return verdict.passes ? 0 : 1
    }

    /// The major of a semver `X.Y.Z` (a `-pre`/`+build` suffix is allowed); nil when not semver.
    static func major(_ version: String) -> Int? {
        let core = version.split(whereSeparator: { $0 == "-" || $0 == "+" }).first.map(String.init) ?? ""
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && Int($0) != nil }) else { return nil }
        return Int(parts[0])
    }
}

/// Which side of the wire a schema is on: clients send requests (the server may only widen what
/// it accepts) and receive responses (the server may only narrow what it sends).
enum Direction: String {
    case request
    case response
}

/// One comparison: the two documents and the findings so far.
final class DiffRun {
    let old: SpecAccess
    let new: SpecAccess
    private(set) var findings: [ContractDiff.Finding] = []
    /// `direction|OldComponent|NewComponent` pairs already compared (cycle protection, and each
    /// component change reported once per direction).
    var visited: Set<String> = []

    /// Comparing an operation the old contract marked `x-planned`: it only ever answered `501`,
    /// so no client can depend on its shape and nothing found under it is breaking.
    var unreleased = false

    init(old: SpecAccess, new: SpecAccess) {
        self.old = old
        self.new = new
    }

    func report(_ rule: String, _ location: String, _ message: String, breaking: Bool) {
        if breaking && unreleased {
            findings.append(
                ContractDiff.Finding(
                    rule: rule, location: location, message: message + " (not breaking: the operation was x-planned, it only answered 501)",
                    breaking: false))
            return
        }
        findings.append(ContractDiff.Finding(rule: rule, location: location, message: message, breaking: breaking))
    }

    // MARK: operations

    /// `operation-removed`, `operation-added`, `operation-id-changed`, `operation-shipped`,
    /// `operation-planned`, `description-changed`; then parameters, request body and responses.
    func compareOperations() {
        let oldOps = Dictionary(old.endpoints.map { (Self.key($0), $0) }, uniquingKeysWith: { a, _ in a })
        let newOps = Dictionary(new.endpoints.map { (Self.key($0), $0) }, uniquingKeysWith: { a, _ in a })
        for o in old.endpoints where newOps[Self.key(o)] == nil {
            report("operation-removed", Self.location(o), "\(o.method) \(o.path) was removed", breaking: true)
        }
        for n in new.endpoints {
            guard let o = oldOps[Self.key(n)] else {
                report("operation-added", Self.location(n), "\(n.method) \(n.path) was added", breaking: false)
                continue
            }
            compareOperation(o, n)
        }
    }

    private func compareOperation(_ o: SpecAccess.Endpoint, _ n: SpecAccess.Endpoint) {
        let at = Self.location(n)
        if o.operation.operationId != n.operation.operationId {
            report(
                "operation-id-changed", at + ".operationId",
                "operationId changed from '\(o.operation.operationId ?? "none")' to '\(n.operation.operationId ?? "none")'", breaking: true)
        }
        let wasPlanned = (o.operation.vendorExtensions["x-planned"]?.value as? Bool) ?? false
        let isPlanned = (n.operation.vendorExtensions["x-planned"]?.value as? Bool) ?? false
        if wasPlanned && !isPlanned {
            report("operation-shipped", at + ".x-planned", "x-planned was removed: the operation is implemented", breaking: false)
        } else if !wasPlanned && isPlanned {
            report("operation-planned", at + ".x-planned", "the operation is x-planned again: it now answers 501", breaking: true)
        }
        unreleased = wasPlanned
        defer { unreleased = false }
        if o.operation.summary != n.operation.summary || o.operation.description != n.operation.description {
            report("description-changed", at, "the operation's summary or description changed", breaking: false)
        }
        compareParameters(o, n, at: at)
        compareRequestBody(o.operation.requestBody.flatMap(old.request), n.operation.requestBody.flatMap(new.request), at: at + ".requestBody")
        compareResponses(o.operation, n.operation, at: at + ".responses")
    }

    /// Path and method with path-parameter names blanked, so `{id}` → `{noteId}` is no change.
    private static func key(_ e: SpecAccess.Endpoint) -> String {
        var out = ""
        var inBraces = false
        for c in e.path {
            if c == "{" {
                inBraces = true
                out += "{}"
            } else if c == "}" {
                inBraces = false
            } else if !inBraces {
                out.append(c)
            }
        }
        return out + " " + e.method
    }

    private static func location(_ e: SpecAccess.Endpoint) -> String {
        e.specPath.joined(separator: ".")
    }

    // MARK: parameters

    /// `parameter-added-required`, `parameter-added`, `parameter-made-required`,
    /// `parameter-removed`, `description-changed`; then the parameter schemas (request side).
    private func compareParameters(_ o: SpecAccess.Endpoint, _ n: SpecAccess.Endpoint, at: String) {
        let oldParams = old.parameters(of: o)
        let newParams = new.parameters(of: n)
        func same(_ a: OpenAPI.Parameter, _ b: OpenAPI.Parameter) -> Bool { a.name == b.name && a.location == b.location }
        for p in oldParams where !newParams.contains(where: { same($0, p) }) {
            report(
                "parameter-removed", "\(at).parameters.\(p.name)", "\(p.location.rawValue) parameter '\(p.name)' was removed",
                breaking: false)
        }
        for np in newParams {
            let loc = "\(at).parameters.\(np.name)"
            guard let op = oldParams.first(where: { same($0, np) }) else {
                if np.required {
                    report(
                        "parameter-added-required", loc, "new required \(np.location.rawValue) parameter '\(np.name)'", breaking: true)
                } else {
                    report("parameter-added", loc, "new optional \(np.location.rawValue) parameter '\(np.name)'", breaking: false)
                }
                continue
            }
            if np.required && !op.required {
                report("parameter-made-required", loc, "parameter '\(np.name)' is now required", breaking: true)
            }
            if op.description != np.description {
                report("description-changed", loc, "the parameter's description changed", breaking: false)
            }
            if let os = Self.schema(of: op), let ns = Self.schema(of: np) {
                compareSchema(os, ns, at: loc, direction: .request)
            }
        }
    }

    private static func schema(of p: OpenAPI.Parameter) -> JSONSchema? {
        guard case .a(let context) = p.schemaOrContent else { return nil }
        switch context.schema {
        case .a(let ref): return .reference(ref.jsonReference)
        case .b(let s): return s
        }
    }

    // MARK: request body

    /// `request-body-made-required`, `request-body-added`, `request-body-removed`; then the
    /// request content (media types and schemas).
    private func compareRequestBody(_ o: OpenAPI.Request?, _ n: OpenAPI.Request?, at: String) {
        switch (o, n) {
        case (nil, nil):
            return
        case (nil, let n?):
            if n.required {
                report("request-body-made-required", at, "a required request body was added", breaking: true)
            } else {
                report("request-body-added", at, "an optional request body was added", breaking: false)
            }
        case (_?, nil):
            report("request-body-removed", at, "the request body was removed", breaking: false)
        case (let o?, let n?):
            if n.required && !o.required {
                report("request-body-made-required", at, "the request body is now required", breaking: true)
            }
            compareContent(o.content, n.content, at: at + ".content", direction: .request)
        }
    }

    // MARK: responses

    /// `response-status-removed`, `response-status-added`; then each response's content.
    private func compareResponses(_ o: OpenAPI.Operation, _ n: OpenAPI.Operation, at: String) {
        for (status, oe) in o.responses {
            let loc = "\(at).\(status.rawValue)"
            guard let ne = n.responses[status] else {
                report("response-status-removed", loc, "response \(status.rawValue) was removed", breaking: true)
                continue
            }
            guard let or = old.response(oe), let nr = new.response(ne) else { continue }
            compareContent(or.content, nr.content, at: loc + ".content", direction: .response)
        }
        for status in n.responses.keys where o.responses[status] == nil {
            report("response-status-added", "\(at).\(status.rawValue)", "response \(status.rawValue) was added", breaking: false)
        }
    }

    // MARK: content

    /// `event-schema-described`: a `text/event-stream` response whose schema was a plain string
    /// (which describes the stream as text and says nothing about its events) now describes each
    /// event, as OpenAPI 3.2's `itemSchema` does and tools read a 3.1 stream schema. The bytes on
    /// the wire are the same, so this documents rather than changes the response.
    private func describesEvents(old os: JSONSchema, new ns: JSONSchema) -> Bool {
        let o = ResolvedSchema(os, in: old)
        let n = ResolvedSchema(ns, in: new)
        guard case .string(_, let c) = o.schema.value, n.kind != o.kind, !o.nullable, o.enumValues == nil else { return false }
        return c.pattern == nil && c.minLength == 0 && c.maxLength == nil && o.format == nil
    }

    /// `media-type-removed`, `media-type-added`; then the schema of each media type in both.
    private func compareContent(_ o: OpenAPI.Content.Map, _ n: OpenAPI.Content.Map, at: String, direction: Direction) {
        var newByType: [String: OpenAPI.Content] = [:]
        for (type, e) in n {
            if let c = new.content(e) { newByType[SpecAccess.mediaType(type)] = c }
        }
        var oldTypes = Set<String>()
        for (type, e) in o {
            let mt = SpecAccess.mediaType(type)
            oldTypes.insert(mt)
            let loc = "\(at).\(mt)"
            guard let nc = newByType[mt] else {
                report("media-type-removed", loc, "\(direction.rawValue) media type \(mt) was removed", breaking: true)
                continue
            }
            if let oc = old.content(e), let os = oc.schema, let ns = nc.schema {
                if mt == "text/event-stream", direction == .response, describesEvents(old: os, new: ns) {
                    report(
                        "event-schema-described", loc + ".schema",
                        "the stream's events got a schema (the old plain string said nothing about them)", breaking: false)
                    continue
                }
                compareSchema(os, ns, at: loc + ".schema", direction: direction)
            }
        }
        for mt in newByType.keys.sorted() where !oldTypes.contains(mt) {
            report("media-type-added", "\(at).\(mt)", "\(direction.rawValue) media type \(mt) was added", breaking: false)
        }
    }
}
