import Foundation
import OpenAPIKit

/// The third stage: a checked document → `APIModel`. Assumes `Checker` found nothing.
public enum ModelBuilder {
    public static func build(_ spec: LoadedSpec) -> APIModel {
        let doc = spec.document
        let access = SpecAccess(document: doc)

        var schemas: [SchemaDecl] = []
        for (key, schema) in doc.components.schemas {
            let name = key.rawValue
            switch schema.value {
            case .object(let core, let ctx):
                let required = Set(ctx.requiredProperties)
                let props = ctx.properties.map { (jsonName, s) -> PropertyIR in
                    let (t, nullable) = typeIR(s)
                    return PropertyIR(
                        jsonName: jsonName, swiftName: Naming.lowerCamel(jsonName), type: t,
                        required: required.contains(jsonName), nullable: nullable || s.nullable,
                        description: s.description)
                }
                let closed: Bool
                if case .a(false) = ctx.additionalProperties { closed = true } else { closed = false }
                schemas.append(.object(ObjectIR(name: name, description: core.description, properties: props, closed: closed)))
            case .string(let core, _):
                let cases = (core.allowedValues ?? []).compactMap { $0.value as? String }.map {
                    EnumCaseIR(name: Naming.lowerCamel($0), value: $0)
                }
                schemas.append(.enumeration(EnumIR(name: name, description: core.description, cases: cases)))
            default:
                break
            }
        }
        let enumNames = Set(schemas.compactMap { if case .enumeration(let e) = $0 { e.name } else { nil } })

        func fixEnums(_ t: TypeIR) -> TypeIR {
            switch t {
            case .named(let n, _): .named(n, isEnum: enumNames.contains(n))
            case .array(let inner, let a, let b): .array(fixEnums(inner), minItems: a, maxItems: b)
            default: t
            }
        }
        schemas = schemas.map {
            guard case .object(var o) = $0 else { return $0 }
            o.properties = o.properties.map {
                var p = $0; p.type = fixEnums(p.type); return p
            }
            return .object(o)
        }

        var operations: [OperationModel] = []
        for e in access.endpoints {
            let op = e.operation
            guard let id = op.operationId else { continue }
            let ext = op.vendorExtensions
            var params: [ParameterIR] = []
            for p in access.parameters(of: e) {
                guard case .a(let sc) = p.schemaOrContent else { continue }
                let schema: JSONSchema
                switch sc.schema {
                case .a(let ref): schema = .reference(ref.jsonReference)
                case .b(let s): schema = s
                }
                let resolved = schema.reference.flatMap(SpecAccess.refName).flatMap(access.schema(named:)) ?? schema
                let t = fixEnums(typeIR(schema).0)
                let location: ParameterLocationIR =
                    switch p.location {
                    case .path: .path
                    case .header: .header
                    case .cookie: .cookie
                    default: .query
                    }
                params.append(
                    ParameterIR(
                        name: p.name, swiftName: Naming.lowerCamel(p.name), location: location, type: t,
                        required: p.required, defaultValue: defaultLiteral(resolved.defaultValue, type: t),
                        description: p.description))
            }

            var body: RequestBodyIR?
            if let rb = op.requestBody, let req = access.request(rb) {
                var jsonType: TypeIR?
                var types: [String] = []
                for (ct, c) in req.content {
                    let mt = SpecAccess.mediaType(ct)
                    types.append(mt)
                    if mt == "application/json", let s = access.content(c)?.schema {
                        jsonType = fixEnums(typeIR(s).0)
                    }
                }
                body = RequestBodyIR(
                    contentTypes: types, required: req.required, type: jsonType,
                    streaming: (req.vendorExtensions["x-streaming"]?.value as? Bool) ?? false)
            }

            var responses: [ResponseIR] = []
            for (code, r) in op.responses {
                guard let status = Int(code.rawValue), let resp = access.response(r) else { continue }
                var headers: [HeaderIR] = []
                for (name, h) in resp.headers ?? [:] {
                    let header = access.header(h)
                    headers.append(HeaderIR(name: name, swiftName: Naming.lowerCamel(name), required: header?.required ?? false))
                }
                var bodyIR = BodyIR.none
                var contentType: String?
                if let (ct, c) = resp.content.first {
                    let mt = SpecAccess.mediaType(ct)
                    contentType = mt
                    if status >= 400 {
                        bodyIR = .problem
                    } else if mt == "application/json" || mt.hasSuffix("+json"), let s = access.content(c)?.schema {
                        bodyIR = .json(fixEnums(typeIR(s).0))
                    } else if mt == "text/event-stream" {
                        bodyIR = .eventStream
                    } else {
                        bodyIR = .raw(contentType: mt)
                    }
                }
                if status >= 400 { headers = [] }  // problem headers travel inside the Problem value
                responses.append(
                    ResponseIR(
                        status: status, caseName: Naming.caseName(status: status), contentType: contentType, body: bodyIR,
                        headers: headers, description: resp.description))
            }
            responses.sort { $0.status < $1.status }

            operations.append(
                OperationModel(
                    operationId: id, typeName: Naming.upperCamel(id), tag: op.tags?.first ?? "Default", method: e.method,
                    path: e.path, summary: op.summary, parameters: params, requestBody: body, responses: responses,
                    security: access.security(of: op), roles: SpecAccess.stringList(ext["x-roles"]?.value) ?? [],
                    mfa: (ext["x-mfa"]?.value as? String) == "required",
                    idempotency: (ext["x-idempotency"]?.value as? String) == "required",
                    rateLimit: ext["x-rate-limit"]?.value as? String,
                    planned: (ext["x-planned"]?.value as? Bool) ?? false))
            operations[operations.count - 1].description = op.description
        }

        let tagNames = (doc.tags ?? []).map(\.name)
        let usedTags = Set(operations.map(\.tag))
        var tags = (doc.tags ?? []).filter { usedTags.contains($0.name) }.map {
            TagModel(
                name: $0.name, protocolName: Naming.upperCamel($0.name.replacingOccurrences(of: " ", with: "")) + "API", description: $0.description)
        }
        for t in usedTags.sorted() where !tagNames.contains(t) {
            tags.append(TagModel(name: t, protocolName: Naming.upperCamel(t) + "API", description: nil))
        }

        var examples: [String: String] = [:]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for (key, schema) in doc.components.schemas {
            if let first = schema.examples.first, let data = try? encoder.encode(first) {
                examples[key.rawValue] = String(decoding: data, as: UTF8.self)
            }
        }
        return APIModel(
            title: doc.info.title, version: doc.info.version, description: doc.info.description, schemas: schemas, tags: tags,
            operations: operations, examples: examples)
    }

    /// A schema's IR type and whether it is nullable.
    static func typeIR(_ s: JSONSchema) -> (TypeIR, Bool) {
        switch s.value {
        case .reference(let ref, _):
            return (.named(SpecAccess.refName(ref) ?? "Unknown", isEnum: false), false)
        case .one(of: let options, _):
            let ref = options.compactMap(\.reference).first
            return (.named(ref.flatMap(SpecAccess.refName) ?? "Unknown", isEnum: false), true)
        case .string(let core, let ctx):
            let format: StringFormatIR =
                switch core.formatString ?? "" {
                case "uuid": .uuid
                case "date-time": .dateTime
                case "date": .date
                case "email": .email
                case "uri": .uri
                default: .none
                }
            let minLength = ctx.minLength > 0 ? ctx.minLength : nil
            return (.string(StringRuleIR(minLength: minLength, maxLength: ctx.maxLength, pattern: ctx.pattern, format: format)), core.nullable)
        case .integer(let core, let ctx):
            return (
                .integer(
                    minimum: ctx.minimum.map { NumberBoundIR(value: Double($0.value), exclusive: $0.exclusive) },
                    maximum: ctx.maximum.map { NumberBoundIR(value: Double($0.value), exclusive: $0.exclusive) },
                    int32: core.formatString == "int32"),
                core.nullable
            )
        case .number(let core, let ctx):
            return (
                .number(
                    minimum: ctx.minimum.map { NumberBoundIR(value: $0.value, exclusive: $0.exclusive) },
                    maximum: ctx.maximum.map { NumberBoundIR(value: $0.value, exclusive: $0.exclusive) }),
                core.nullable
            )
        case .boolean(let core):
            return (.boolean, core.nullable)
        case .array(let core, let ctx):
            let inner = ctx.items.map { typeIR($0).0 } ?? .string(StringRuleIR())
            return (.array(inner, minItems: ctx.minItems > 0 ? ctx.minItems : nil, maxItems: ctx.maxItems), core.nullable)
        default:
            return (.string(StringRuleIR()), false)
        }
    }

    static func defaultLiteral(_ value: AnyCodable?, type: TypeIR) -> String? {
        guard let v = value?.value else { return nil }
        switch type {
        case .integer:
            if let i = v as? Int { return String(i) }
            if let d = v as? Double { return String(Int(d)) }
        case .number:
            if let d = v as? Double { return String(d) }
            if let i = v as? Int { return String(Double(i)) }
        case .boolean:
            if let b = v as? Bool { return b ? "true" : "false" }
        case .string(let rule) where rule.format == .none:
            if let s = v as? String { return SwiftLiteral.string(s) }
        case .named(_, true):
            if let s = v as? String { return "." + Naming.identifier(Naming.lowerCamel(s)) }
        default:
            break
        }
        return nil
    }
}

enum SwiftLiteral {
    /// A Swift string literal with every character that needs it escaped.
    static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\0": out += "\\0"
            default:
                if u.value < 0x20 || u.value == 0x7f {
                    out += "\\u{\(String(u.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
