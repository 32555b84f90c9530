/// The intermediate representation the renderers work from: a small, checked view of the spec
/// with every reference resolved and every name decided.
public struct APIModel: Equatable, Sendable {
    public var title: String
    public var version: String
    public var description: String? = nil
    public var schemas: [SchemaDecl]
    public var tags: [TagModel]
    public var operations: [OperationModel]
    /// Each component schema's first example as JSON text, by schema name (for round-trip tests).
    public var examples: [String: String] = [:]
}

public enum StringFormatIR: String, Equatable, Sendable {
    case none, uuid, dateTime, date, email, uri
}

public struct StringRuleIR: Equatable, Sendable {
    public var minLength: Int?
    public var maxLength: Int?
    public var pattern: String?
    public var format: StringFormatIR = .none
    public var isEmpty: Bool {
        minLength == nil && maxLength == nil && pattern == nil && (format == .none || format == .uuid || format == .dateTime || format == .date)
    }
}

public struct NumberBoundIR: Equatable, Sendable {
    public var value: Double
    public var exclusive: Bool
}

/// The type of a property, parameter, or body.
public indirect enum TypeIR: Equatable, Sendable {
    case string(StringRuleIR)
    case integer(minimum: NumberBoundIR?, maximum: NumberBoundIR?, int32: Bool)
    case number(minimum: NumberBoundIR?, maximum: NumberBoundIR?)
    case boolean
    /// A component schema (object or enum) by its Swift name.
    case named(String, isEnum: Bool)
    case array(TypeIR, minItems: Int?, maxItems: Int?)
}

public struct PropertyIR: Equatable, Sendable {
    public var jsonName: String
    public var swiftName: String
    public var type: TypeIR
    public var required: Bool
    public var nullable: Bool
    public var description: String?
}

public struct ObjectIR: Equatable, Sendable {
    public var name: String
    public var description: String?
    public var properties: [PropertyIR]
    public var closed: Bool
}

public struct EnumIR: Equatable, Sendable {
    public var name: String
    public var description: String?
    /// (Swift case name, raw value)
    public var cases: [EnumCaseIR]
}

public struct EnumCaseIR: Equatable, Sendable {
    public var name: String
    public var value: String
}

public enum SchemaDecl: Equatable, Sendable {
    case object(ObjectIR)
    case enumeration(EnumIR)

    public var name: String {
        switch self {
        case .object(let o): o.name
        case .enumeration(let e): e.name
        }
    }
}

public struct TagModel: Equatable, Sendable {
    public var name: String
    /// `SignalsAPI`
    public var protocolName: String
    public var description: String?
}

public enum ParameterLocationIR: String, Equatable, Sendable {
    case path, query, header, cookie
}

public struct ParameterIR: Equatable, Sendable {
    public var name: String
    public var swiftName: String
    public var location: ParameterLocationIR
    public var type: TypeIR
    public var required: Bool
    /// A default, as Swift source (e.g. `50`, `"x"`, `.low`).
    public var defaultValue: String?
    public var description: String?
}

public enum BodyIR: Equatable, Sendable {
    case none
    case json(TypeIR)
    case problem
    /// A non-JSON body carried as bytes (`application/pdf`, `text/csv`, …).
    case raw(contentType: String)
    /// `text/event-stream`: Server-Sent Events written as they happen (``EventStream`` at run time).
    case eventStream
}

public struct HeaderIR: Equatable, Sendable {
    public var name: String
    public var swiftName: String
    public var required: Bool
}

public struct ResponseIR: Equatable, Sendable {
    public var status: Int
    public var caseName: String
    public var contentType: String?
    public var body: BodyIR
    public var headers: [HeaderIR]
    public var description: String?
}

public struct RequestBodyIR: Equatable, Sendable {
    public var contentTypes: [String]
    public var required: Bool
    /// The JSON body's type when the body is `application/json`.
    public var type: TypeIR?
    /// `x-streaming: true`: the handler reads the body as it arrives (``RequestBodyStream``)
    /// instead of receiving it collected.
    public var streaming: Bool = false
}

public struct OperationModel: Equatable, Sendable {
    public var operationId: String
    /// `GetSignal`
    public var typeName: String
    public var tag: String
    public var method: String
    public var path: String
    public var summary: String?
    public var description: String? = nil
    public var parameters: [ParameterIR]
    public var requestBody: RequestBodyIR?
    public var responses: [ResponseIR]
    public var security: [String]
    public var roles: [String]
    public var mfa: Bool
    public var idempotency: Bool
    public var rateLimit: String?
    public var planned: Bool
}
