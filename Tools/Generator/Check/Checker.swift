import Foundation
import OpenAPIKit

/// The second stage: every rule the generator relies on, checked before any code is written.
/// Each failure names the spec path and the rule, so the author can fix the spec, not guess.
///
/// Two kinds of contract: a **server** contract (`api/openapi.yaml`, what Sitrep serves, rendered
/// by ``ServerRenderer``) and a **client** contract (`api/erp.yaml`, what Sitrep consumes from
/// another system, rendered by ``ClientRenderer``). A spec is a client contract when its `info`
/// carries `x-client-name`; ``Mode`` says which rules apply.
public struct Checker {
    /// Which side of the contract Sitrep is on.
    public enum Mode: Sendable, Equatable {
        /// Sitrep serves it: every enforcement rule (`x-roles`, the statuses the router answers…).
        case server
        /// Sitrep calls it: the structural rules the types need, plus what a generated client can
        /// do (bearer auth, JSON bodies, one success response per operation). Server enforcement
        /// extensions are refused: a client cannot enforce them.
        case client

        /// `.client` when `info` declares `x-client-name`, else `.server`.
        public static func of(_ spec: LoadedSpec) -> Mode {
            spec.document.info.vendorExtensions["x-client-name"] == nil ? .server : .client
        }
    }

    /// Extensions only a server can enforce; refused in a client contract.
    static let serverOnlyExtensions = ["x-roles", "x-mfa", "x-idempotency", "x-rate-limit", "x-planned"]
    /// Names the client runtime (and the generated client) use.
    static let clientReservedNames: Set<String> = [
        "APIClientError", "APITransport", "HTTPTransport", "ClientRequest", "ClientResponse", "RemoteProblem", "RetryPolicy",
        "CircuitBreaker", "ClientClock", "SystemClientClock", "ManualClientClock",
    ]
    public static let defaultRoles: Set<String> = [
        "Sitrep.Viewer", "Sitrep.Admin", "Sitrep.Executive", "Sitrep.Ingest", "Sitrep.BriefingWriter",
    ]
    public static let supportedSchemes: [String: String] = ["bearerAuth": "http bearer", "sessionCookie": "apiKey in cookie"]
    static let problemProperties = ["type", "title", "status", "detail", "instance", "code", "requestId", "errors"]
    static let reservedNames: Set<String> = [
        "Input", "Output", "Field", "Pattern", "JSONValue", "JSONObject", "JSONWriter", "Date", "UUID", "String", "Int",
        "Double", "Bool", "Array", "Dictionary", "Optional", "Result", "Error", "Response", "Request", "Router",
        "OperationInfo", "OperationContext", "Principal", "CalendarDate", "FieldError", "ValidationErrors",
        "EncodedResponse", "APIRuntime", "RequestParts",
    ]

    let spec: LoadedSpec
    let access: SpecAccess
    let knownRoles: Set<String>
    let mode: Mode
    private var diagnostics: [Diagnostic] = []

    public init(spec: LoadedSpec, knownRoles: Set<String> = Checker.defaultRoles, mode: Mode? = nil) {
        self.spec = spec
        self.access = SpecAccess(document: spec.document)
        self.knownRoles = knownRoles
        self.mode = mode ?? Mode.of(spec)
    }

    /// Runs every rule; returns all findings (empty when the spec is fine). `mode` nil: decided by
    /// the spec (``Mode/of(_:)``).
    public static func check(_ spec: LoadedSpec, knownRoles: Set<String> = Checker.defaultRoles, mode: Mode? = nil) -> [Diagnostic] {
        var c = Checker(spec: spec, knownRoles: knownRoles, mode: mode)
        c.run()
        return c.diagnostics.sorted { ($0.line ?? 0, $0.path, $0.message) < ($1.line ?? 0, $1.path, $1.message) }
    }

    private mutating func fail(_ path: [String], _ message: String) {
        diagnostics.append(Diagnostic(path: path.joined(separator: "."), message: message, line: spec.lines.line(for: path)))
    }

    mutating func run() {
        checkSecuritySchemes()
        checkSchemas()
        switch mode {
        case .server: checkProblemSchema()
        case .client:
            checkClientName()
            checkClientProblemSchema()
        }
        checkOperations()
    }

    // MARK: security schemes

    private mutating func checkSecuritySchemes() {
        for (key, scheme) in spec.document.components.securitySchemes {
            let path = ["components", "securitySchemes", key.rawValue]
            if mode == .client && key.rawValue != "bearerAuth" {
                fail(path, "security scheme '\(key.rawValue)' is not supported in a client contract (supported: bearerAuth)")
                continue
            }
            guard Checker.supportedSchemes[key.rawValue] != nil else {
                fail(
                    path,
                    "security scheme '\(key.rawValue)' is not supported (supported: \(Checker.supportedSchemes.keys.sorted().joined(separator: ", ")))"
                )
                continue
            }
            guard case .b(let s) = scheme else { continue }
            switch (key.rawValue, s.type) {
            case ("bearerAuth", .http(let scheme, _)) where scheme.lowercased() == "bearer": break
            case ("sessionCookie", .apiKey(_, let location)) where location == .cookie: break
            default:
                fail(path, "security scheme '\(key.rawValue)' must be \(Checker.supportedSchemes[key.rawValue]!)")
            }
        }
    }

    // MARK: schemas

    private mutating func checkSchemas() {
        for (key, schema) in spec.document.components.schemas {
            let name = key.rawValue
            let path = ["components", "schemas", name]
            if !Naming.isIdentifierLike(name) || name.first?.isUppercase != true {
                fail(path, "schema name '\(name)' must be an UpperCamelCase identifier")
            }
            if Checker.reservedNames.contains(name) || (mode == .client && Checker.clientReservedNames.contains(name)) {
                fail(path, "schema name '\(name)' clashes with a name the generated code uses")
            }
            switch schema.value {
            case .object(_, let ctx):
                checkObject(ctx, path: path)
            case .string(let core, _) where core.allowedValues != nil:
                checkEnum(core.allowedValues ?? [], path: path)
            case .integer(let core, _) where core.allowedValues != nil:
                fail(path, "non-string enum is not supported; use string values")
            default:
                fail(path, "a component schema must be an object or a string enum (\(schema.kindName) is not supported)")
            }
        }
    }

    private mutating func checkEnum(_ values: [AnyCodable], path: [String]) {
        if values.isEmpty { fail(path + ["enum"], "enum has no values") }
        var seen = Set<String>()
        for v in values {
            guard let s = v.value as? String else {
                fail(path + ["enum"], "enum value \(v) is not a string; only string enums are supported")
                continue
            }
            if !seen.insert(Naming.lowerCamel(s)).inserted {
                fail(path + ["enum"], "enum value '\(s)' maps to the same Swift case as another value")
            }
        }
    }

    private mutating func checkObject(_ ctx: JSONSchema.ObjectContext, path: [String]) {
        switch ctx.additionalProperties {
        case .none, .a: break
        case .b:
            fail(path + ["additionalProperties"], "additionalProperties with a schema is not supported (only false)")
        }
        if !ctx.patternProperties.isEmpty {
            fail(path + ["patternProperties"], "patternProperties is not supported")
        }
        for name in ctx.requiredProperties where ctx.properties[name] == nil {
            fail(path + ["required"], "required property '\(name)' is not defined in properties")
        }
        var swiftNames = Set<String>()
        for (name, prop) in ctx.properties {
            let p = path + ["properties", name]
            if !Naming.isIdentifierLike(name) {
                fail(p, "property name '\(name)' must be an identifier (letters, digits, _)")
            }
            if !swiftNames.insert(Naming.lowerCamel(name)).inserted {
                fail(p, "property '\(name)' maps to the same Swift name as another property")
            }
            checkType(prop, path: p, allowNullable: true)
        }
    }

    /// A property, array item, parameter or body schema.
    private mutating func checkType(_ s: JSONSchema, path: [String], allowNullable: Bool) {
        switch s.value {
        case .reference(let ref, _):
            checkRef(ref, path: path)
        case .one(of: let options, _):
            let refs = options.compactMap { $0.reference }
            let nulls = options.filter(\.isNull)
            if options.count == 2, refs.count == 1, nulls.count == 1 {
                if !allowNullable { fail(path, "a nullable reference is not supported here") }
                checkRef(refs[0], path: path + ["oneOf", "0"])
            } else {
                fail(path + ["oneOf"], "oneOf is only supported as [$ref, {type: null}] (a nullable reference)")
            }
        case .all:
            fail(path + ["allOf"], "allOf is not supported")
        case .any:
            fail(path + ["anyOf"], "anyOf is not supported")
        case .not:
            fail(path + ["not"], "not is not supported")
        case .object:
            fail(path, "inline object schema is not supported; move it to components/schemas and use $ref")
        case .array(_, let ctx):
            guard let items = ctx.items else {
                fail(path, "array without items is not supported")
                return
            }
            if items.nullable { fail(path + ["items"], "nullable array items are not supported") }
            checkType(items, path: path + ["items"], allowNullable: false)
        case .string(let core, let ctx):
            if core.allowedValues != nil {
                fail(path, "inline enum is not supported; move it to components/schemas and use $ref")
            }
            if let f = core.formatString, !f.isEmpty, !["uuid", "date-time", "date", "email", "uri"].contains(f) {
                fail(path + ["format"], "string format '\(f)' is not supported (uuid, date-time, date, email, uri)")
            }
            if let pattern = ctx.pattern, (try? NSRegularExpression(pattern: pattern)) == nil {
                fail(path + ["pattern"], "pattern '\(pattern)' does not compile")
            }
        case .integer(let core, _):
            if let f = core.formatString, !f.isEmpty, !["int32", "int64"].contains(f) {
                fail(path + ["format"], "integer format '\(f)' is not supported (int32, int64)")
            }
        case .number, .boolean:
            break
        case .null:
            fail(path, "a schema that is only null is not supported")
        case .fragment:
            fail(path, "a schema without a type is not supported")
        }
        if s.nullable && !allowNullable {
            fail(path, "nullable is not supported here")
        }
    }

    private mutating func checkRef(_ ref: JSONReference<JSONSchema>, path: [String]) {
        guard let name = SpecAccess.refName(ref) else {
            fail(path, "$ref '\(ref.absoluteString)' is not supported (only #/components/schemas/…)")
            return
        }
        if access.schema(named: name) == nil {
            fail(path, "$ref '\(ref.absoluteString)' does not resolve")
        }
    }

    private mutating func checkProblemSchema() {
        let path = ["components", "schemas", "Problem"]
        guard let problem = access.schema(named: "Problem") else {
            fail(["components", "schemas"], "schema 'Problem' (RFC 9457 problem details) is missing")
            return
        }
        guard let ctx = problem.objectContext else { return }
        let names = Array(ctx.properties.keys)
        for p in Checker.problemProperties where !names.contains(p) {
            fail(path + ["properties"], "Problem must have property '\(p)' (the runtime's problem shape)")
        }
        for p in names where !Checker.problemProperties.contains(p) {
            fail(path + ["properties", p], "Problem property '\(p)' is not part of the runtime's problem shape")
        }
    }

    // MARK: client contracts

    /// `info.x-client-name`, when present, names the generated client type.
    private mutating func checkClientName() {
        guard let raw = spec.document.info.vendorExtensions["x-client-name"] else { return }
        let path = ["info", "x-client-name"]
        guard let name = raw.value as? String, Naming.isIdentifierLike(name), name.first?.isUppercase == true else {
            fail(path, "x-client-name must be an UpperCamelCase identifier")
            return
        }
        if spec.document.components.schemas.keys.contains(where: { $0.rawValue == name }) {
            fail(path, "x-client-name '\(name)' clashes with schema '\(name)'")
        }
        if Checker.reservedNames.contains(name) || Checker.clientReservedNames.contains(name) {
            fail(path, "x-client-name '\(name)' clashes with a name the generated code uses")
        }
    }

    /// Another system's problem: RFC 9457's `type`, `title` and `status` must be there; its own
    /// extension members are allowed (the client reads problems leniently and never renders them).
    private mutating func checkClientProblemSchema() {
        let path = ["components", "schemas", "Problem"]
        guard let problem = access.schema(named: "Problem") else {
            fail(["components", "schemas"], "schema 'Problem' (RFC 9457 problem details) is missing")
            return
        }
        guard let ctx = problem.objectContext else { return }
        let kinds: [(String, String)] = [("type", "string"), ("title", "string"), ("status", "integer")]
        for (name, kind) in kinds {
            guard let p = ctx.properties[name] else {
                fail(path + ["properties"], "Problem must have property '\(name)' (RFC 9457)")
                continue
            }
            if p.kindName != kind { fail(path + ["properties", name], "Problem property '\(name)' must be of type \(kind) (RFC 9457)") }
        }
    }

    // MARK: operations

    private mutating func checkOperations() {
        var ids: [String: [String]] = [:]
        let declaredTags = Set((spec.document.tags ?? []).map(\.name))
        let schemaNames = Set(spec.document.components.schemas.keys.map(\.rawValue))
        for e in access.endpoints {
            let op = e.operation
            let path = e.specPath
            let ext = op.vendorExtensions
            if mode == .client {
                for key in Checker.serverOnlyExtensions where ext[key] != nil {
                    fail(path + [key], "\(key) is enforced by a server; a client contract cannot declare it")
                }
            }
            let planned = (ext["x-planned"]?.value as? Bool) ?? false
            if let v = ext["x-planned"], !(v.value is Bool) {
                fail(path + ["x-planned"], "x-planned must be true or false")
            }
            // identity
            if let id = op.operationId, !id.isEmpty {
                if let other = ids[id] {
                    fail(path + ["operationId"], "operationId '\(id)' is also used by \(other.joined(separator: "."))")
                } else {
                    ids[id] = path
                }
                if !Naming.isIdentifierLike(id) || id.first?.isLowercase != true {
                    fail(path + ["operationId"], "operationId '\(id)' must be a lowerCamelCase identifier")
                }
                if schemaNames.contains(Naming.upperCamel(id)) {
                    fail(path + ["operationId"], "operationId '\(id)' clashes with schema '\(Naming.upperCamel(id))'")
                }
            } else {
                fail(path, "operation has no operationId")
            }
            let tags = op.tags ?? []
            if tags.count != 1 {
                fail(path + ["tags"], "operation must have exactly one tag (has \(tags.count))")
            } else if !declaredTags.contains(tags[0]) {
                fail(path + ["tags"], "tag '\(tags[0])' is not declared in the top-level tags")
            } else if !Naming.isIdentifierLike(tags[0].replacingOccurrences(of: " ", with: "")) {
                fail(path + ["tags"], "tag '\(tags[0])' cannot name a Swift protocol")
            }

            // security & enforcement extensions
            let security = access.security(of: op)
            for s in security where spec.document.components.securitySchemes[OpenAPI.ComponentKey(rawValue: s)!] == nil {
                fail(path + ["security"], "security scheme '\(s)' is not defined in components.securitySchemes")
            }
            var roles: [String] = []
            if let raw = ext["x-roles"], mode == .server {
                if let list = SpecAccess.stringList(raw.value), !list.isEmpty {
                    roles = list
                    for r in list where !knownRoles.contains(r) {
                        fail(path + ["x-roles"], "unknown role '\(r)' in x-roles (known: \(knownRoles.sorted().joined(separator: ", ")))")
                    }
                } else {
                    fail(path + ["x-roles"], "x-roles must be a non-empty list of role names")
                }
                if security.isEmpty { fail(path + ["x-roles"], "x-roles on an operation without security") }
            } else if !security.isEmpty && mode == .server {
                fail(path, "secured operation has no x-roles")
            }
            let mfa = checkRequiredFlag(ext, "x-mfa", path: path)
            if mfa && security.isEmpty { fail(path + ["x-mfa"], "x-mfa on an operation without security") }
            let idempotency = checkRequiredFlag(ext, "x-idempotency", path: path)
            var rateLimit = false
            if let v = ext["x-rate-limit"] {
                if let s = v.value as? String, Naming.isIdentifierLike(s) {
                    rateLimit = true
                } else {
                    fail(path + ["x-rate-limit"], "x-rate-limit must be a policy name")
                }
            }

            // parameters
            let params = access.parameters(of: e)
            for (i, p) in op.parameters.enumerated() where access.parameter(p) == nil {
                fail(path + ["parameters", String(i)], "parameter $ref does not resolve")
            }
            let templateNames = Self.templateNames(e.path)
            var hasQueryOrHeader = false
            var hasPath = false
            var requiresIfMatch = false
            var swiftNames = Set<String>()
            for p in params {
                let pp = path + ["parameters", p.name]
                if !swiftNames.insert(Naming.lowerCamel(p.name)).inserted {
                    fail(pp, "parameter '\(p.name)' maps to the same Swift name as another parameter")
                }
                switch p.location {
                case .cookie:
                    // Cookies the API reads as input (the sign-in binding cookie); the session
                    // cookie itself is a security scheme, never a parameter.
                    hasQueryOrHeader = true
                    if mode == .client { fail(pp, "cookie parameters are not supported in a client contract") }
                case .querystring:
                    fail(pp, "querystring parameters are not supported")
                case .path:
                    hasPath = true
                    if !templateNames.contains(p.name) { fail(pp, "path parameter '\(p.name)' is not in the path template") }
                case .query, .header:
                    hasQueryOrHeader = true
                    if p.location == .header && p.name.lowercased() == "if-match" && p.required { requiresIfMatch = true }
                }
                switch p.schemaOrContent {
                case .b:
                    fail(pp, "parameters with content are not supported; use schema")
                case .a(let sc):
                    let schema: JSONSchema
                    switch sc.schema {
                    case .a(let ref):
                        checkRef(ref.jsonReference, path: pp + ["schema"])
                        continue
                    case .b(let s): schema = s
                    }
                    if case .array(_, let ctx) = schema.value {
                        if p.location != .query {
                            fail(pp, "array parameters are only supported in the query")
                        } else if !(sc.style == .form && sc.explode) {
                            fail(pp, "array query parameters must use style form with explode true")
                        }
                        if let items = ctx.items, case .array = items.value {
                            fail(pp + ["schema", "items"], "nested arrays are not supported in parameters")
                        }
                    }
                    checkType(schema, path: pp + ["schema"], allowNullable: false)
                }
            }
            for t in templateNames where !params.contains(where: { $0.location == .path && $0.name == t }) {
                fail(path + ["parameters"], "path template variable '{\(t)}' has no path parameter")
            }

            // request body
            var hasBody = false
            if let rb = op.requestBody {
                if let body = access.request(rb) {
                    hasBody = true
                    if body.content.isEmpty { fail(path + ["requestBody"], "request body has no content") }
                    if mode == .client {
                        let types = body.content.keys.map(SpecAccess.mediaType)
                        if types != ["application/json"] {
                            fail(
                                path + ["requestBody", "content"],
                                "a client sends JSON request bodies only (found \(types.sorted().joined(separator: ", ")))")
                        }
                        if body.vendorExtensions["x-streaming"] != nil {
                            fail(path + ["requestBody", "x-streaming"], "x-streaming is enforced by a server; a client contract cannot declare it")
                        }
                    }
                    if let v = body.vendorExtensions["x-streaming"], mode == .server {
                        let sp = path + ["requestBody", "x-streaming"]
                        if !(v.value is Bool) {
                            fail(sp, "x-streaming must be true or false")
                        } else if (v.value as? Bool) == true {
                            if body.content.keys.contains(where: { SpecAccess.mediaType($0) == "application/json" }) {
                                fail(sp, "x-streaming is for non-JSON bodies (the handler reads the bytes as they arrive)")
                            }
                            if idempotency {
                                fail(sp, "x-streaming cannot be combined with x-idempotency (the key's fingerprint needs the whole body)")
                            }
                        }
                    }
                    for (ct, c) in body.content {
                        let mt = SpecAccess.mediaType(ct)
                        let cp = path + ["requestBody", "content", ct.rawValue]
                        guard let content = access.content(c) else {
                            fail(cp, "content $ref does not resolve")
                            continue
                        }
                        if mt == "application/json" {
                            guard let schema = content.schema else {
                                fail(cp, "JSON request body has no schema")
                                continue
                            }
                            if schema.nullable { fail(cp + ["schema"], "a nullable request body is not supported") }
                            checkType(schema, path: cp + ["schema"], allowNullable: false)
                        }
                    }
                } else {
                    fail(path + ["requestBody"], "request body $ref does not resolve")
                }
            }

            // responses
            var statuses = Set<Int>()
            var hasSuccess = false
            var successStatuses: [Int] = []
            for (code, r) in op.responses {
                let rp = path + ["responses", code.rawValue]
                guard let status = Int(code.rawValue), (100...599).contains(status) else {
                    fail(rp, "response '\(code.rawValue)' is not supported; document each status code")
                    continue
                }
                statuses.insert(status)
                guard let response = access.response(r) else {
                    fail(rp, "response $ref does not resolve")
                    continue
                }
                for (name, h) in response.headers ?? [:] where access.header(h) == nil {
                    fail(rp + ["headers", name], "header $ref does not resolve")
                }
                if status >= 400 {
                    let types = response.content.keys.map(SpecAccess.mediaType)
                    let schemaRef = response.content.first.flatMap { access.content($0.value)?.schema?.reference }.flatMap(SpecAccess.refName)
                    if types != ["application/problem+json"] || schemaRef != "Problem" {
                        fail(rp, "\(status) response is not application/problem+json with schema Problem")
                    }
                    continue
                }
                if status < 400 { hasSuccess = true }
                successStatuses.append(status)
                if response.content.count > 1 {
                    fail(rp + ["content"], "a response with more than one media type is not supported")
                }
                for (ct, c) in response.content {
                    let mt = SpecAccess.mediaType(ct)
                    let cp = rp + ["content", ct.rawValue]
                    if mode == .client && !(mt == "application/json" || mt.hasSuffix("+json")) {
                        fail(cp, "a client reads JSON success responses only (found \(mt))")
                        continue
                    }
                    guard let content = access.content(c) else {
                        fail(cp, "content $ref does not resolve")
                        continue
                    }
                    if mt == "application/json" || mt.hasSuffix("+json") {
                        guard let schema = content.schema else {
                            fail(cp, "JSON response has no schema")
                            continue
                        }
                        checkType(schema, path: cp + ["schema"], allowNullable: false)
                    }
                }
            }
            if !hasSuccess { fail(path + ["responses"], "operation documents no success response") }
            if mode == .client && successStatuses.count > 1 {
                let list = successStatuses.sorted().map(String.init).joined(separator: ", ")
                fail(
                    path + ["responses"],
                    "a client operation must document exactly one success response (has \(successStatuses.count): \(list))")
            }

            // the statuses the router itself can answer must be documented
            func need(_ status: Int, _ why: String) {
                if !statuses.contains(status) {
                    fail(path + ["responses"], "operation \(why) but does not document \(status)")
                }
            }
            need(500, "can fail unexpectedly")
            if mode == .client {
                // What the other system answers, as far as the client relies on it; the rest
                // below is what Sitrep's own router answers.
                if !security.isEmpty { need(401, "declares security") }
                if hasQueryOrHeader || hasPath || hasBody { need(400, "takes parameters or a body") }
                continue
            }
            if !security.isEmpty { need(401, "declares security") }
            if !roles.isEmpty { need(403, "declares x-roles") }
            if hasBody {
                need(400, "takes a request body")
                need(413, "takes a request body")
                need(415, "takes a request body")
                need(422, "takes a request body")
            }
            if hasQueryOrHeader || hasPath { need(400, "takes parameters") }
            if requiresIfMatch {
                need(412, "requires If-Match")
                need(428, "requires If-Match")
            }
            if rateLimit { need(429, "declares x-rate-limit") }
            if idempotency {
                need(400, "declares x-idempotency")
                need(409, "declares x-idempotency")
                need(422, "declares x-idempotency")
            }
            if planned { need(501, "is x-planned") }
        }
    }

    private mutating func checkRequiredFlag(_ ext: [String: AnyCodable], _ key: String, path: [String]) -> Bool {
        guard let v = ext[key] else { return false }
        if let s = v.value as? String, s == "required" { return true }
        fail(path + [key], "\(key) must be 'required' when present")
        return false
    }

    static func templateNames(_ path: String) -> [String] {
        var out: [String] = []
        var rest = Substring(path)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            out.append(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return out
    }
}
