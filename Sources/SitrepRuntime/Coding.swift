import Foundation
import HTTPTypes
import NIOCore

/// A schema type that writes its own JSON bytes (generated for every component schema).
public protocol JSONEncodable: Sendable {
    func encodeJSON(to writer: inout JSONWriter)
}

/// A schema type that maps a parsed JSON value while checking its constraints, recording every
/// failure with its JSON pointer. Returns nil when anything failed.
public protocol JSONDecodable: Sendable {
    init?(json: JSONValue, at pointer: String, errors: inout ValidationErrors)
}

/// A string enum schema. Unknown values are refused on decode.
public protocol StringEnumSchema: JSONEncodable, JSONDecodable, RawRepresentable, CaseIterable, Hashable
where RawValue == String {}

extension StringEnumSchema {
    public func encodeJSON(to writer: inout JSONWriter) { writer.string(rawValue) }

    public init?(json: JSONValue, at pointer: String, errors: inout ValidationErrors) {
        guard case .string(let s) = json else {
            errors.add(pointer, "must be a string, one of: \(Self.allowedList)")
            return nil
        }
        guard let v = Self(rawValue: s) else {
            errors.add(pointer, "must be one of: \(Self.allowedList)")
            return nil
        }
        self = v
    }

    public static var allowedList: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

extension JSONEncodable {
    /// The value's JSON bytes.
    public func jsonBytes(capacity: Int = 512) -> [UInt8] {
        var w = JSONWriter(capacity: capacity)
        encodeJSON(to: &w)
        return w.bytes
    }
}

/// A representation encoded once and sent as often as it is asked for, with its strong ETag: what
/// a handler keeps when it serves one answer many times and has it revalidated (a cached
/// aggregate, a cached page). Only a `T` can make one, so the bytes are always `T`'s encoding, and
/// the answer that carries it is checked against `T`'s schema like any other. Every answer shares
/// the one buffer, and the ones that add no header of their own one set of header fields.
public struct Encoded<T: JSONEncodable>: Sendable {
    /// The encoded bytes.
    public let buffer: ByteBuffer
    /// The ETag, and the header fields of a JSON answer carrying these bytes (`Content-Type`,
    /// `ETag`), built once.
    @usableFromInline
    let tagged: Tagged

    @usableFromInline
    final class Tagged: Sendable {
        @usableFromInline
        let etag: String
        @usableFromInline
        let fields: HTTPFields
        init(etag: String) {
            self.etag = etag
            var fields = HTTPFields()
            // Room for what is added on the way out (X-Request-ID, Date, Content-Length).
            fields.reserveCapacity(5)
            fields.append(APIRuntime.jsonContentType)
            fields.append(HTTPField(name: .eTag, value: etag))
            self.fields = fields
        }
    }

    /// `value`'s encoding, served with `etag` (the strong tag `If-None-Match` is matched against).
    public init(_ value: T, capacity: Int = 1024, etag: String) {
        var w = JSONWriter(capacity: capacity)
        value.encodeJSON(to: &w)
        buffer = w.byteBuffer
        tagged = Tagged(etag: etag)
    }

    /// Bytes written in `T`'s wire format without a `T` in between (a page written straight from
    /// database rows). Served like any `Encoded`: where responses are validated (tests,
    /// development) they are parsed back and decoded as `T` before they leave; a test of the
    /// writer should also pin its bytes to `T`'s own encoding of the same data.
    public init(writtenAs type: T.Type, by writer: borrowing JSONWriter, etag: String) {
        buffer = writer.byteBuffer
        tagged = Tagged(etag: etag)
    }

    /// The ETag every answer carrying these bytes is sent with.
    public var etag: String { tagged.etag }

    /// How many bytes the encoding has.
    public var count: Int { buffer.readableBytes }
}

/// What decoding one member found: absent, an explicit null, a valid value, or something invalid
/// (already recorded in the errors).
public enum Field<T> {
    case missing
    case null
    case value(T)
    case invalid
}

public enum StringFormat: Sendable {
    case none, uuid, dateTime, date, email, uri
}

/// A compiled `pattern` constraint. Patterns are ECMA-262 style as in JSON Schema; the subset the
/// spec uses is also valid ICU syntax, which `NSRegularExpression` implements.
public struct Pattern: Sendable {
    public let source: String
    private let regex: NSRegularExpression

    public init(_ source: String) {
        self.source = source
        // The generator's check stage compiled the same pattern; failure here is a generator bug.
        self.regex = try! NSRegularExpression(pattern: source)
    }

    public func matches(_ s: String) -> Bool {
        let range = NSRange(s.startIndex..<s.endIndex, in: s)
        return regex.firstMatch(in: s, options: [], range: range) != nil
    }
}

public struct StringRule: Sendable {
    public var minLength: Int?
    public var maxLength: Int?
    public var pattern: Pattern?
    public var format: StringFormat
    public init(minLength: Int? = nil, maxLength: Int? = nil, pattern: Pattern? = nil, format: StringFormat = .none) {
        self.minLength = minLength
        self.maxLength = maxLength
        self.pattern = pattern
        self.format = format
    }
    public static let none = StringRule()

    /// Checks length (in Unicode scalars... JSON Schema counts code points), pattern and format.
    public func check(_ s: String, at pointer: String, errors: inout ValidationErrors) -> Bool {
        var ok = true
        if minLength != nil || maxLength != nil {
            let n = s.unicodeScalars.count
            if let minLength, n < minLength {
                errors.add(pointer, minLength == 1 ? "must not be empty" : "must be at least \(minLength) characters long")
                ok = false
            }
            if let maxLength, n > maxLength {
                errors.add(pointer, "must be at most \(maxLength) characters long")
                ok = false
            }
        }
        if let pattern, !pattern.matches(s) {
            errors.add(pointer, "must match the pattern \(pattern.source)")
            ok = false
        }
        switch format {
        case .email where !WireFormat.isEmail(s):
            errors.add(pointer, "must be an email address")
            ok = false
        case .uri where !WireFormat.isURI(s):
            errors.add(pointer, "must be an absolute URI")
            ok = false
        default: break
        }
        return ok
    }
}

public struct IntegerRule: Sendable {
    public var minimum: Int?
    public var maximum: Int?
    public var exclusiveMinimum: Bool
    public var exclusiveMaximum: Bool
    public init(minimum: Int? = nil, maximum: Int? = nil, exclusiveMinimum: Bool = false, exclusiveMaximum: Bool = false) {
        self.minimum = minimum
        self.maximum = maximum
        self.exclusiveMinimum = exclusiveMinimum
        self.exclusiveMaximum = exclusiveMaximum
    }
    public static let none = IntegerRule()
    public static let int32 = IntegerRule(minimum: Int(Int32.min), maximum: Int(Int32.max))

    public func check(_ v: Int, at pointer: String, errors: inout ValidationErrors) -> Bool {
        var ok = true
        if let minimum, exclusiveMinimum ? v <= minimum : v < minimum {
            errors.add(pointer, exclusiveMinimum ? "must be greater than \(minimum)" : "must be at least \(minimum)")
            ok = false
        }
        if let maximum, exclusiveMaximum ? v >= maximum : v > maximum {
            errors.add(pointer, exclusiveMaximum ? "must be less than \(maximum)" : "must be at most \(maximum)")
            ok = false
        }
        return ok
    }
}

public struct NumberRule: Sendable {
    public var minimum: Double?
    public var maximum: Double?
    public var exclusiveMinimum: Bool
    public var exclusiveMaximum: Bool
    public init(minimum: Double? = nil, maximum: Double? = nil, exclusiveMinimum: Bool = false, exclusiveMaximum: Bool = false) {
        self.minimum = minimum
        self.maximum = maximum
        self.exclusiveMinimum = exclusiveMinimum
        self.exclusiveMaximum = exclusiveMaximum
    }
    public static let none = NumberRule()

    public func check(_ v: Double, at pointer: String, errors: inout ValidationErrors) -> Bool {
        var ok = true
        if !v.isFinite {
            errors.add(pointer, "must be a finite number")
            return false
        }
        if let minimum, exclusiveMinimum ? v <= minimum : v < minimum {
            errors.add(pointer, exclusiveMinimum ? "must be greater than \(fmt(minimum))" : "must be at least \(fmt(minimum))")
            ok = false
        }
        if let maximum, exclusiveMaximum ? v >= maximum : v > maximum {
            errors.add(pointer, exclusiveMaximum ? "must be less than \(fmt(maximum))" : "must be at most \(fmt(maximum))")
            ok = false
        }
        return ok
    }

    private func fmt(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }
}

public struct ArrayRule: Sendable {
    public var minItems: Int?
    public var maxItems: Int?
    public init(minItems: Int? = nil, maxItems: Int? = nil) {
        self.minItems = minItems
        self.maxItems = maxItems
    }
    public static let none = ArrayRule()
}

/// Primitive decoders the generated `init?(json:at:errors:)` call, one per schema kind.
public enum JSONDecoding {
    /// No string the API accepts may hold U+0000: PostgreSQL's text cannot store it, so it would
    /// otherwise fail deep inside a query instead of as the client's error.
    @inlinable
    public static func containsNUL(_ s: String) -> Bool { s.utf8.contains(0) }

    public static let nulMessage = "must not contain the NUL character (U+0000)"

    @inlinable
    public static func string(_ v: JSONValue?, at p: @autoclosure () -> String, rule: StringRule = .none, errors: inout ValidationErrors) -> Field<
        String
    > {
        guard let v else { return .missing }
        switch v {
        case .null: return .null
        case .string(let s):
            guard !containsNUL(s) else {
                errors.add(p(), nulMessage)
                return .invalid
            }
            if rule.minLength == nil && rule.maxLength == nil && rule.pattern == nil && rule.format == .none { return .value(s) }
            return rule.check(s, at: p(), errors: &errors) ? .value(s) : .invalid
        default:
            errors.add(p(), "must be a string")
            return .invalid
        }
    }

    public static func uuid(_ v: JSONValue?, at p: @autoclosure () -> String, errors: inout ValidationErrors) -> Field<UUID> {
        guard let v else { return .missing }
        switch v {
        case .null: return .null
        case .string(let s):
            if let u = WireFormat.parseUUID(s) { return .value(u) }
            errors.add(p(), "must be a UUID")
            return .invalid
        default:
            errors.add(p(), "must be a UUID string")
            return .invalid
        }
    }

    public static func dateTime(_ v: JSONValue?, at p: @autoclosure () -> String, errors: inout ValidationErrors) -> Field<Date> {
        guard let v else { return .missing }
        switch v {
        case .null: return .null
        case .string(let s):
            if let d = WireFormat.parseDateTime(s) { return .value(d) }
            errors.add(p(), "must be an RFC 3339 date-time, e.g. 2026-11-26T08:00:00Z")
            return .invalid
        default:
            errors.add(p(), "must be an RFC 3339 date-time string")
            return .invalid
        }
    }

    public static func date(_ v: JSONValue?, at p: @autoclosure () -> String, errors: inout ValidationErrors) -> Field<CalendarDate> {
        guard let v else { return .missing }
        switch v {
        case .null: return .null
        case .string(let s):
            if let d = CalendarDate(s) { return .value(d) }
            errors.add(p(), "must be a date (YYYY-MM-DD)")
            return .invalid
        default:
            errors.add(p(), "must be a date string (YYYY-MM-DD)")
            return .invalid
        }
    }

    public static func integer(_ v: JSONValue?, at p: @autoclosure () -> String, rule: IntegerRule = .none, errors: inout ValidationErrors) -> Field<
        Int
    > {
        guard let v else { return .missing }
        switch v {
        case .null: return .null
        case .number(let n):
            var value: Int?
            if let i = n.int64 {
                value = Int(i)
            } else if !n.isInteger, n.double == n.double.rounded(), abs(n.double) < 9.007_199_254_740_992e15 {
                value = Int(n.double)  // 1.0 and 1e2 are integers in JSON Schema
            }
            guard let value else {
                errors.add(p(), "must be an integer")
                return .invalid
            }
            return rule.check(value, at: p(), errors: &errors) ? .value(value) : .invalid
        default:
            errors.add(p(), "must be an integer")
            return .invalid
        }
    }

    public static func number(_ v: JSONValue?, at p: @autoclosure () -> String, rule: NumberRule = .none, errors: inout ValidationErrors) -> Field<
        Double
    > {
        guard let v else { return .missing }
        switch v {
        case .null: return .null
        case .number(let n):
            let d = n.double
            return rule.check(d, at: p(), errors: &errors) ? .value(d) : .invalid
        default:
            errors.add(p(), "must be a number")
            return .invalid
        }
    }

    public static func bool(_ v: JSONValue?, at p: @autoclosure () -> String, errors: inout ValidationErrors) -> Field<Bool> {
        guard let v else { return .missing }
        switch v {
        case .null: return .null
        case .bool(let b): return .value(b)
        default:
            errors.add(p(), "must be true or false")
            return .invalid
        }
    }

    public static func object<T: JSONDecodable>(_ type: T.Type, _ v: JSONValue?, at p: @autoclosure () -> String, errors: inout ValidationErrors)
        -> Field<T>
    {
        guard let v else { return .missing }
        if case .null = v { return .null }
        return T(json: v, at: p(), errors: &errors).map { .value($0) } ?? .invalid
    }

    /// An array whose elements decode with `element`; a null element is an error.
    public static func array<T>(
        _ v: JSONValue?, at p: @autoclosure () -> String, rule: ArrayRule = .none, errors: inout ValidationErrors,
        element: (JSONValue, String, inout ValidationErrors) -> Field<T>
    ) -> Field<[T]> {
        guard let v else { return .missing }
        switch v {
        case .null: return .null
        case .array(let items):
            let base = p()
            var ok = true
            if let min = rule.minItems, items.count < min {
                errors.add(base, min == 1 ? "must not be empty" : "must have at least \(min) items")
                ok = false
            }
            if let max = rule.maxItems, items.count > max {
                errors.add(base, "must have at most \(max) items")
                return .invalid  // do not walk an oversized array
            }
            var out: [T] = []
            out.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                let ip = base + "/" + String(i)
                switch element(item, ip, &errors) {
                case .value(let x): out.append(x)
                case .null:
                    errors.add(ip, "must not be null")
                    ok = false
                case .missing, .invalid: ok = false
                }
            }
            return ok ? .value(out) : .invalid
        default:
            errors.add(p(), "must be an array")
            return .invalid
        }
    }

    /// A required, non-nullable member.
    @inlinable
    public static func required<T>(_ f: Field<T>, at p: @autoclosure () -> String, errors: inout ValidationErrors, ok: inout Bool) -> T? {
        switch f {
        case .value(let v): return v
        case .missing:
            errors.add(p(), "is required")
        case .null:
            errors.add(p(), "must not be null")
        case .invalid: break
        }
        ok = false
        return nil
    }

    /// A required member whose value may be null.
    @inlinable
    public static func requiredNullable<T>(_ f: Field<T>, at p: @autoclosure () -> String, errors: inout ValidationErrors, ok: inout Bool) -> T? {
        switch f {
        case .value(let v): return v
        case .null: return nil
        case .missing:
            errors.add(p(), "is required (it may be null)")
        case .invalid: break
        }
        ok = false
        return nil
    }

    /// An optional member; `nullable` says whether an explicit null is allowed.
    @inlinable
    public static func optional<T>(
        _ f: Field<T>, nullable: Bool = false, at p: @autoclosure () -> String, errors: inout ValidationErrors, ok: inout Bool
    ) -> T? {
        switch f {
        case .value(let v): return v
        case .missing: return nil
        case .null:
            if nullable { return nil }
            errors.add(p(), "must not be null (omit it instead)")
        case .invalid: break
        }
        ok = false
        return nil
    }

    /// Refuses members the schema does not declare (`additionalProperties: false`).
    public static func rejectUnknown(_ o: JSONObject, known: Set<String>, at p: String, errors: inout ValidationErrors, ok: inout Bool) {
        for k in o.keys where !known.contains(k) {
            errors.add(p + "/" + JSONPointer.escape(k), "is not a known property")
            ok = false
        }
    }
}

public enum JSONPointer {
    public static func escape(_ token: String) -> String {
        if !token.contains("~") && !token.contains("/") { return token }
        return token.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}

/// Decoders for path, query and header parameters (strings on the wire).
public enum ParamDecoding {
    public static func string(_ raw: Substring?, at p: String, rule: StringRule = .none, errors: inout ValidationErrors) -> Field<String> {
        guard let raw else { return .missing }
        let s = String(raw)
        guard !JSONDecoding.containsNUL(s) else {
            errors.add(p, JSONDecoding.nulMessage)
            return .invalid
        }
        return rule.check(s, at: p, errors: &errors) ? .value(s) : .invalid
    }

    public static func uuid(_ raw: Substring?, at p: String, errors: inout ValidationErrors) -> Field<UUID> {
        guard let raw else { return .missing }
        if let u = WireFormat.parseUUID(String(raw)) { return .value(u) }
        errors.add(p, "must be a UUID")
        return .invalid
    }

    public static func dateTime(_ raw: Substring?, at p: String, errors: inout ValidationErrors) -> Field<Date> {
        guard let raw else { return .missing }
        if let d = WireFormat.parseDateTime(String(raw)) { return .value(d) }
        errors.add(p, "must be an RFC 3339 date-time, e.g. 2026-11-26T08:00:00Z")
        return .invalid
    }

    public static func date(_ raw: Substring?, at p: String, errors: inout ValidationErrors) -> Field<CalendarDate> {
        guard let raw else { return .missing }
        if let d = CalendarDate(String(raw)) { return .value(d) }
        errors.add(p, "must be a date (YYYY-MM-DD)")
        return .invalid
    }

    public static func integer(_ raw: Substring?, at p: String, rule: IntegerRule = .none, errors: inout ValidationErrors) -> Field<Int> {
        guard let raw else { return .missing }
        guard let v = Int(raw) else {
            errors.add(p, "must be an integer")
            return .invalid
        }
        return rule.check(v, at: p, errors: &errors) ? .value(v) : .invalid
    }

    public static func number(_ raw: Substring?, at p: String, rule: NumberRule = .none, errors: inout ValidationErrors) -> Field<Double> {
        guard let raw else { return .missing }
        guard let v = Double(raw), v.isFinite else {
            errors.add(p, "must be a number")
            return .invalid
        }
        return rule.check(v, at: p, errors: &errors) ? .value(v) : .invalid
    }

    public static func bool(_ raw: Substring?, at p: String, errors: inout ValidationErrors) -> Field<Bool> {
        guard let raw else { return .missing }
        switch raw {
        case "true": return .value(true)
        case "false": return .value(false)
        default:
            errors.add(p, "must be true or false")
            return .invalid
        }
    }

    public static func enumeration<E: StringEnumSchema>(_ type: E.Type, _ raw: Substring?, at p: String, errors: inout ValidationErrors) -> Field<E> {
        guard let raw else { return .missing }
        if let v = E(rawValue: String(raw)) { return .value(v) }
        errors.add(p, "must be one of: \(E.allowedList)")
        return .invalid
    }

    /// A repeated query parameter (`?status=new&status=escalated`), each value decoded with `element`.
    public static func array<T>(
        _ raws: [Substring], at p: String, rule: ArrayRule = .none, errors: inout ValidationErrors,
        element: (Substring, String, inout ValidationErrors) -> Field<T>
    ) -> Field<[T]> {
        if raws.isEmpty { return .missing }
        if let max = rule.maxItems, raws.count > max {
            errors.add(p, "must be given at most \(max) times")
            return .invalid
        }
        var ok = true
        var out: [T] = []
        for (i, r) in raws.enumerated() {
            switch element(r, p + "/" + String(i), &errors) {
            case .value(let v): out.append(v)
            default: ok = false
            }
        }
        return ok ? .value(out) : .invalid
    }

    /// Required parameter: a missing one is an error.
    public static func required<T>(_ f: Field<T>, at p: String, errors: inout ValidationErrors, ok: inout Bool) -> T? {
        JSONDecoding.required(f, at: p, errors: &errors, ok: &ok)
    }

    public static func optional<T>(_ f: Field<T>, default d: T? = nil, ok: inout Bool) -> T? {
        switch f {
        case .value(let v): return v
        case .missing, .null: return d
        case .invalid:
            ok = false
            return nil
        }
    }
}

extension Array: JSONEncodable where Element: JSONEncodable {
    public func encodeJSON(to w: inout JSONWriter) {
        w.raw("[")
        for (i, e) in enumerated() {
            if i > 0 { w.raw(",") }
            e.encodeJSON(to: &w)
        }
        w.raw("]")
    }
}

extension Array: JSONDecodable where Element: JSONDecodable {
    public init?(json: JSONValue, at pointer: String, errors: inout ValidationErrors) {
        let f = JSONDecoding.array(json, at: pointer, errors: &errors) { v, p, errors in
            JSONDecoding.object(Element.self, v, at: p, errors: &errors)
        }
        guard case .value(let items) = f else {
            if case .null = f { errors.add(pointer, "must not be null") }
            return nil
        }
        self = items
    }
}

extension CalendarDate: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let d = CalendarDate(s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a date (YYYY-MM-DD): \(s)")
        }
        self = d
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
