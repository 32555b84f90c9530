import Foundation
import HTTPTypes
import Logging
import NIOCore
import Synchronization

/// What the spec declares about one operation; generated as a static value per operation and
/// read by `APIRuntime` to enforce security, roles, MFA, rate limits and idempotency. A class: it
/// travels with every request (the runtime, the operation context, the access log), and a
/// reference is one retain where the struct was one per field.
public final class OperationInfo: Sendable {
    public let id: String
    public let tag: String
    public let method: HTTPRequest.Method
    /// OpenAPI path template, e.g. `/v1/signals/{signalId}`.
    public let path: String
    /// Security schemes, any of which authenticates the call; empty means public.
    public let security: [String]
    /// `x-roles`: the caller needs at least one.
    public let roles: [String]
    /// `x-mfa: required`.
    public let mfa: Bool
    /// `x-idempotency: required`.
    public let idempotency: Bool
    /// `x-rate-limit`: the policy name.
    public let rateLimit: String?
    /// Every status code the operation documents.
    public let statuses: Set<Int>
    /// Media types the request body may have; empty when there is no body.
    public let requestContentTypes: [String]
    public let bodyRequired: Bool
    /// `x-planned: true`: answered with a 501 problem until a later issue implements it.
    public let planned: Bool
    /// A success answer is a `text/event-stream` that stays open until the client leaves.
    public let streams: Bool
    /// `x-streaming: true` on the request body: the handler reads it as it arrives
    /// (``RequestBodyStream``) and the runtime does not collect it.
    public let streamsRequest: Bool
    /// Its metric objects in the first ``APIMetrics`` that registered it, found from here
    /// without a lookup by id (another registry, in tests, looks them up by id).
    let metrics = AtomicLazyReference<APIMetrics.Operation>()

    public init(
        id: String, tag: String, method: HTTPRequest.Method, path: String, security: [String], roles: [String],
        mfa: Bool, idempotency: Bool, rateLimit: String?, statuses: Set<Int>, requestContentTypes: [String],
        bodyRequired: Bool, planned: Bool, streams: Bool = false, streamsRequest: Bool = false
    ) {
        self.streams = streams
        self.streamsRequest = streamsRequest
        self.id = id
        self.tag = tag
        self.method = method
        self.path = path
        self.security = security
        self.roles = roles
        self.mfa = mfa
        self.idempotency = idempotency
        self.rateLimit = rateLimit
        self.statuses = statuses
        self.requestContentTypes = requestContentTypes
        self.bodyRequired = bodyRequired
        self.planned = planned
    }
}

/// What a handler knows about the call besides its typed input. Handlers never see raw HTTP.
public struct OperationContext: Sendable {
    public let operation: OperationInfo
    /// The authenticated caller; nil only for operations whose spec declares `security: []`.
    public let principal: Principal?
    public let requestId: String
    public let logger: Logger
    public let receivedAt: Date
    /// Where ``clientAddress`` comes from: given, or the connection (formatted on first use only).
    private let peer: Peer
    private enum Peer: Sendable {
        case given(String?)
        case connection(any Channel)
    }
    /// The caller's IP address.
    public var clientAddress: String? {
        switch peer {
        case .given(let address): address
        case .connection(let channel): channel.remoteAddress?.ipAddress
        }
    }
    /// For `x-idempotency` operations with a transactional store: the open transaction (a
    /// `PostgresConnection` in `sitrep serve`) the handler must write its effect in, so the
    /// effect commits together with the idempotency key. nil otherwise.
    ///
    /// Spelled `Optional<…>` and set by each initialiser: with the implicit nil of `…?` the
    /// compiler built every context aside and copied it out (see ``EncodedResponse``).
    public internal(set) var transaction: Optional<any Sendable>

    public init(operation: OperationInfo, principal: Principal?, requestId: String, clientAddress: String?, logger: Logger, receivedAt: Date = Date())
    {
        self.operation = operation
        self.principal = principal
        self.requestId = requestId
        self.peer = .given(clientAddress)
        self.logger = logger
        self.receivedAt = receivedAt
        self.transaction = nil
    }

    init(operation: OperationInfo, principal: Principal?, requestId: String, connection: any Channel, logger: Logger) {
        self.operation = operation
        self.principal = principal
        self.requestId = requestId
        self.peer = .connection(connection)
        self.logger = logger
        self.receivedAt = Date()
        self.transaction = nil
    }

    /// The caller, for operations that require authentication (always set there).
    public var caller: Principal {
        guard let principal else {
            preconditionFailure("operation \(operation.id) declares no security; it has no caller")
        }
        return principal
    }
}

/// The raw parts of a request the generated decoders read.
public struct RequestParts: Sendable {
    public let path: [String: Substring]
    public let query: [(Substring, Substring)]
    public let headers: HTTPFields
    /// The parsed JSON body, for operations with an `application/json` body.
    public let json: JSONValue?
    /// The raw body bytes, for other media types.
    public let rawBody: [UInt8]?
    /// The body as it arrives, for operations whose body is `x-streaming`.
    public var bodyStream: RequestBodyStream? { streamed?.stream }
    /// Out of line: few operations stream their body, and inline its optional was copied and
    /// destroyed through value witnesses on every request.
    private let streamed: Streamed?
    private final class Streamed: Sendable {
        let stream: RequestBodyStream
        init(_ stream: RequestBodyStream) { self.stream = stream }
    }
    /// The request's `Content-Type`, for operations that take a body (nil for the others).
    public let contentType: String?

    public init(
        path: [String: Substring], query: [(Substring, Substring)], headers: HTTPFields, json: JSONValue?, rawBody: [UInt8]?,
        bodyStream: RequestBodyStream? = nil, contentType: String?
    ) {
        self.streamed = bodyStream.map(Streamed.init)
        self.path = path
        self.query = query
        self.headers = headers
        self.json = json
        self.rawBody = rawBody
        self.contentType = contentType
    }

    public func queryValue(_ name: String) -> Substring? {
        for (k, v) in query where k == name { return v }
        return nil
    }

    public func queryValues(_ name: String) -> [Substring] {
        var out: [Substring] = []
        for (k, v) in query where k == name { out.append(v) }
        return out
    }

    /// The value of cookie `name` from the `Cookie` header(s) (RFC 6265 §5.4: `name=value` pairs
    /// separated by `; `), first occurrence; nil when absent.
    public func cookie(_ name: String) -> Substring? {
        for field in headers[values: .cookie] {
            for pair in field.split(separator: ";") {
                let trimmed = pair.drop(while: { $0 == " " })
                guard let eq = trimmed.firstIndex(of: "="), trimmed[..<eq] == name else { continue }
                var value = trimmed[trimmed.index(after: eq)...]
                while value.last == " " { value = value.dropLast() }
                return value
            }
        }
        return nil
    }

    public func header(_ name: String) -> Substring? {
        guard let n = HTTPField.Name(name) else { return nil }
        return header(n)
    }

    /// A header's value (several fields of one name joined with `, `).
    public func header(_ name: HTTPField.Name) -> Substring? {
        headers.value(of: name).map { Substring($0) }
    }
}

extension HTTPFields {
    /// What `self[name]` answers (several fields of one name joined with `, `, or `; ` for
    /// `Cookie`), without building a new string when there is one field, the usual case: the
    /// subscript joins even a single value into a fresh copy, which for a bearer token of a few
    /// hundred bytes is a measurable part of a cached read.
    /// Names are compared by length first: most fields of a request differ from the one sought
    /// in length, and a failed comparison of two short strings took the string library's slow
    /// path.
    @inlinable
    public func value(of name: HTTPField.Name) -> String? {
        var found: String?
        let length = name.canonicalName.utf8.count
        for field in self where field.name.canonicalName.utf8.count == length && field.name == name {
            guard found == nil else { return self[name] }
            found = field.value
        }
        return found
    }
}

/// A response ready for the wire: what generated `Output` enums encode into.
///
/// Its optional stored properties are spelled `Optional<…>`, not `…?`: a stored `var x: T?`
/// starts as nil before the initialiser runs, and with such defaults the compiler built each
/// answer aside, then copied it out and destroyed the first (a retain and a release of every
/// reference in it, per answer). Every initialiser sets them all instead.
public struct EncodedResponse: Sendable {
    public var status: Int
    /// The answer's header fields besides `Content-Type`: an ``Encoded`` body's ETag first, then
    /// the rest.
    public var headers: [(HTTPField.Name, String)] {
        get { etag.map { [(.eTag, $0)] + otherHeaders } ?? otherHeaders }
        set {
            otherHeaders = newValue
            etag = nil
            fields = nil
        }
    }
    /// ``headers`` after the ETag. The two are kept apart, and ``headers`` made only when read,
    /// so that an answer sent with an ``Encoded``'s prebuilt fields (a cached dashboard or list
    /// page) makes no array: that was an allocation, two generic metadata lookups and a
    /// retain and release of the tag per answer.
    @usableFromInline var otherHeaders: [(HTTPField.Name, String)]
    /// An ``Encoded`` body's ETag, the first of ``headers``; nil otherwise.
    @usableFromInline var etag: Optional<String>
    public var contentType: Optional<String> {
        didSet { fields = nil }
    }
    /// The body's bytes (empty for none). A body held in a buffer (a JSON answer's, or one shared
    /// by many answers: ``Encoded``) is copied out only when this is read; the runtime sends the
    /// buffer itself.
    public var body: [UInt8] {
        get { sharedBody.map { Array(buffer: $0) } ?? bytes }
        set {
            bytes = newValue
            sharedBody = nil
        }
    }
    private var bytes: [UInt8]
    /// The body as written by the encoder, or encoded once and shared by every answer that sends
    /// it (``Encoded``): written to the connection as it is, without a copy.
    public private(set) var sharedBody: Optional<ByteBuffer>
    /// Whether there is a body at all.
    public var hasBody: Bool { sharedBody.map { $0.readableBytes > 0 } ?? !bytes.isEmpty }
    /// A body written as it is produced (Server-Sent Events) instead of `body`.
    public var stream: EventStream? {
        get { rare?.stream }
        set { rare = Rare(stream: newValue, problem: problem) }
    }
    /// For problem answers: the problem, so the runtime can stamp the request id and instance
    /// (which a handler does not know) before the answer leaves or is kept for replays.
    public var problem: Problem? {
        get { rare?.problem }
        set { rare = Rare(stream: stream, problem: newValue) }
    }
    /// ``headers`` and ``contentType`` as HTTP fields, built once and shared (an ``Encoded`` body
    /// with its ETag); nil when they are built for this answer. Cleared when either changes.
    private(set) var fields: Optional<HTTPFields>
    /// What few answers have, kept out of line so the usual answer is a few words to copy and
    /// destroy, not a ``Problem``'s dozen fields.
    private var rare: Optional<Rare>

    private final class Rare: Sendable {
        let stream: EventStream?
        let problem: Problem?
        init?(stream: EventStream?, problem: Problem?) {
            if stream == nil && problem == nil { return nil }
            self.stream = stream
            self.problem = problem
        }
    }

    public init(status: Int, headers: [(HTTPField.Name, String)] = [], contentType: String? = nil, body: [UInt8] = []) {
        self.status = status
        self.etag = nil
        self.otherHeaders = headers
        self.contentType = contentType
        self.bytes = body
        self.sharedBody = nil
        self.fields = nil
        self.rare = nil
    }

    /// An answer whose body is held in a buffer, made in one step: setting ``sharedBody`` (and
    /// ``fields``) on an answer made first cost the generic encoders two copies and two
    /// destructions of the whole answer per request (a retain or release of each reference).
    @usableFromInline
    init(
        status: Int, etag: String? = nil, headers: [(HTTPField.Name, String)], contentType: String, sharedBody: ByteBuffer,
        fields: HTTPFields? = nil
    ) {
        self.status = status
        self.etag = etag
        self.otherHeaders = headers
        self.contentType = contentType
        self.bytes = []
        self.sharedBody = sharedBody
        self.fields = fields
        self.rare = nil
    }

    /// A JSON body encoded ahead of time, sent with its ETag and `headers`; in test builds
    /// (`validate`) it is parsed back and decoded as `T`, as ``json(_:_:headers:contentType:validate:)``
    /// does. With no other header, the ``Encoded``'s prebuilt fields are sent.
    ///
    /// Inlinable, as is the other `json`, so the generated encoders get a copy specialised for
    /// their `T`: the unspecialised generic function returned the answer through an outlined
    /// copy (five retains and as many releases per answer).
    @inlinable
    public static func json<T: JSONEncodable & JSONDecodable>(
        _ status: Int, _ value: Encoded<T>, headers: [(HTTPField.Name, String)] = [], validate: Bool
    ) throws -> EncodedResponse {
        if validate {
            try ResponseValidation.check(T.self, bytes: Array(buffer: value.buffer), status: status)
        }
        return EncodedResponse(
            status: status, etag: value.etag, headers: headers, contentType: "application/json", sharedBody: value.buffer,
            fields: headers.isEmpty ? value.tagged.fields : nil)
    }

    public init(status: Int, headers: [(HTTPField.Name, String)] = [], contentType: String, stream: EventStream) {
        self.init(status: status, headers: headers, contentType: contentType)
        self.stream = stream
    }

    /// A JSON body; in test builds (`validate`), the bytes are parsed back and decoded as `T`
    /// so a handler whose output breaks its schema fails loudly.
    @inlinable
    public static func json<T: JSONEncodable & JSONDecodable>(
        _ status: Int, _ value: T, headers: [(HTTPField.Name, String)] = [], contentType: String = "application/json", validate: Bool
    ) throws -> EncodedResponse {
        var w = JSONWriter(capacity: 1024)
        value.encodeJSON(to: &w)
        if validate {
            try ResponseValidation.check(T.self, bytes: w.bytes, status: status)
        }
        return EncodedResponse(status: status, headers: headers, contentType: contentType, sharedBody: w.byteBuffer)
    }

    public static func problem(_ p: Problem, validate: Bool) throws -> EncodedResponse {
        var all = p.headers
        all.removeAll { $0.0 == .contentType }
        var out = try json(p.status, p, headers: all, contentType: "application/problem+json", validate: validate)
        out.problem = p
        return out
    }
}

/// A response that breaks the contract (only raised when response validation is on).
public struct ContractViolation: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum ResponseValidation {
    public static func check<T: JSONDecodable>(_ type: T.Type, bytes: [UInt8], status: Int) throws {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw ContractViolation("response \(status) is not valid JSON: \(error.message)")
        }
        var errors = ValidationErrors()
        if T(json: value, at: "", errors: &errors) == nil {
            let list = errors.items.map { "\($0.pointer.isEmpty ? "/" : $0.pointer): \($0.message)" }.joined(separator: "; ")
            throw ContractViolation("response \(status) breaks schema \(T.self): \(list)")
        }
    }
}

extension Duration {
    /// The duration as fractional seconds (for `Date` arithmetic, SQL intervals, cookie ages).
    public var timeInterval: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
