import Foundation
import OpenAPIKit

/// Small read-only helpers over an OpenAPIKit document, shared by the check and model stages.
struct SpecAccess {
    let document: OpenAPI.Document

    struct Endpoint {
        let path: String
        let method: String
        let operation: OpenAPI.Operation
        let pathItem: OpenAPI.PathItem
        /// `paths./v1/signals.get`
        var specPath: [String] { ["paths", path, method.lowercased()] }
    }

    var endpoints: [Endpoint] {
        var out: [Endpoint] = []
        for (path, item) in document.paths {
            guard case .b(let pathItem) = item else { continue }
            for e in pathItem.endpoints {
                out.append(Endpoint(path: path.rawValue, method: e.method.rawValue.uppercased(), operation: e.operation, pathItem: pathItem))
            }
        }
        return out
    }

    func schema(named name: String) -> JSONSchema? {
        guard let key = OpenAPI.ComponentKey(rawValue: name) else { return nil }
        return document.components.schemas[key]
    }

    /// The component name of a `#/components/schemas/X` reference.
    static func refName(_ ref: JSONReference<JSONSchema>) -> String? {
        guard case .internal(let internalRef) = ref, case .component(let name) = internalRef else { return nil }
        return name
    }

    static func refName<T>(_ ref: OpenAPI.Reference<T>) -> String? {
        guard case .internal(let internalRef) = ref.jsonReference, case .component(let name) = internalRef else { return nil }
        return name
    }

    func parameter(_ e: Either<OpenAPI.Reference<OpenAPI.Parameter>, OpenAPI.Parameter>) -> OpenAPI.Parameter? {
        document.components[e]
    }

    func response(_ e: Either<OpenAPI.Reference<OpenAPI.Response>, OpenAPI.Response>) -> OpenAPI.Response? {
        document.components[e]
    }

    func request(_ e: Either<OpenAPI.Reference<OpenAPI.Request>, OpenAPI.Request>) -> OpenAPI.Request? {
        document.components[e]
    }

    func header(_ e: Either<OpenAPI.Reference<OpenAPI.Header>, OpenAPI.Header>) -> OpenAPI.Header? {
        document.components[e]
    }

    func content(_ e: Either<OpenAPI.Reference<OpenAPI.Content>, OpenAPI.Content>) -> OpenAPI.Content? {
        document.components[e]
    }

    /// Path-item parameters merged with the operation's (the operation's win).
    func parameters(of e: Endpoint) -> [OpenAPI.Parameter] {
        var out: [OpenAPI.Parameter] = []
        for p in e.pathItem.parameters.compactMap(parameter) { out.append(p) }
        for p in e.operation.parameters.compactMap(parameter) {
            out.removeAll { $0.name == p.name && $0.location == p.location }
            out.append(p)
        }
        return out
    }

    /// Security scheme names in force for an operation, sorted; empty means public.
    func security(of op: OpenAPI.Operation) -> [String] {
        let reqs = op.security ?? document.security
        var names = Set<String>()
        for req in reqs {
            for key in req.keys {
                if let n = key.name { names.insert(n) }
            }
        }
        return names.sorted()
    }

    static func mediaType(_ ct: OpenAPI.ContentType) -> String {
        String(ct.rawValue.split(separator: ";").first ?? "").trimmingCharacters(in: .whitespaces).lowercased()
    }

    static func extensionValue(_ ext: [String: AnyCodable], _ key: String) -> Any? {
        ext[key]?.value
    }

    static func stringList(_ value: Any?) -> [String]? {
        if let a = value as? [String] { return a }
        if let a = value as? [Any] {
            var out: [String] = []
            for x in a {
                if let s = x as? String {
                    out.append(s)
                } else if let c = x as? AnyCodable, let s = c.value as? String {
                    out.append(s)
                } else {
                    return nil
                }
            }
            return out
        }
        if let a = value as? [AnyCodable] {
            let s = a.compactMap { $0.value as? String }
            return s.count == a.count ? s : nil
        }
        return nil
    }
}

/// Naming rules shared by the model and the renderers.
enum Naming {
    static let keywords: Set<String> = [
        "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init", "inout",
        "internal", "let", "open", "operator", "private", "precedencegroup", "protocol", "public", "rethrows",
        "static", "struct", "subscript", "typealias", "var", "break", "case", "catch", "continue", "default",
        "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return", "throw", "switch",
        "where", "while", "Any", "as", "await", "false", "is", "nil", "self", "Self", "super", "throws", "true",
        "try", "Type", "Protocol",
    ]

    /// `pending_approval` → `pendingApproval`, `If-Match` → `ifMatch`, `ETag` → `etag`.
    static func lowerCamel(_ s: String) -> String {
        let parts = s.split(whereSeparator: { $0 == "_" || $0 == "-" || $0 == " " || $0 == "." }).map(String.init)
        guard let first = parts.first else { return "_" }
        var out: String
        if first == first.uppercased() && first.count > 1 {
            out = first.lowercased()  // ETag → etag, WWW → www
        } else if first.first?.isUppercase == true {
            out = first.prefix(1).lowercased() + first.dropFirst()
        } else {
            out = first
        }
        // a leading all-caps run such as "ETag" → "etag"
        if first.count > 1, first.prefix(2).allSatisfy(\.isUppercase) { out = first.lowercased() }
        for p in parts.dropFirst() {
            let lower = p == p.uppercased() ? p.lowercased() : p
            out += lower.prefix(1).uppercased() + lower.dropFirst()
        }
        if out.first?.isNumber == true { out = "_" + out }
        return out
    }

    static func upperCamel(_ s: String) -> String {
        let l = lowerCamel(s)
        return l.prefix(1).uppercased() + l.dropFirst()
    }

    static func identifier(_ s: String) -> String {
        keywords.contains(s) ? "`\(s)`" : s
    }

    static func caseName(status: Int) -> String {
        switch status {
        case 200: "ok"
        case 201: "created"
        case 202: "accepted"
        case 204: "noContent"
        case 301: "movedPermanently"
        case 302: "found"
        case 303: "seeOther"
        case 304: "notModified"
        case 307: "temporaryRedirect"
        case 400: "badRequest"
        case 401: "unauthorized"
        case 403: "forbidden"
        case 404: "notFound"
        case 405: "methodNotAllowed"
        case 406: "notAcceptable"
        case 409: "conflict"
        case 410: "gone"
        case 412: "preconditionFailed"
        case 413: "contentTooLarge"
        case 415: "unsupportedMediaType"
        case 422: "unprocessableContent"
        case 428: "preconditionRequired"
        case 429: "tooManyRequests"
        case 500: "internalServerError"
        case 501: "notImplemented"
        case 502: "badGateway"
        case 503: "serviceUnavailable"
        case 504: "gatewayTimeout"
        default: "status\(status)"
        }
    }

    static func isIdentifierLike(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, CharacterSet.letters.contains(f) || f == "_" else { return false }
        return s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || $0 == "_" } && s.allSatisfy(\.isASCII)
    }
}

extension JSONSchema {
    /// The schema's JSON type or combinator, for messages: `string`, `oneOf`, `$ref`…
    public var kindName: String {
        switch value {
        case .null: "null"
        case .boolean: "boolean"
        case .number: "number"
        case .integer: "integer"
        case .string: "string"
        case .object: "object"
        case .array: "array"
        case .all: "allOf"
        case .one: "oneOf"
        case .any: "anyOf"
        case .not: "not"
        case .reference: "$ref"
        case .fragment: "untyped schema"
        }
    }
}
