import Foundation
import SitrepRuntime

/// One request a generated client makes: the operation it belongs to, the method, the path with
/// its parameters already percent-encoded, query and header parameters, and a JSON body.
public struct ClientRequest: Sendable {
    public enum Method: String, Sendable, Equatable {
        case get = "GET"
        case head = "HEAD"
        case put = "PUT"
        case delete = "DELETE"
        case options = "OPTIONS"
        case post = "POST"
        case patch = "PATCH"

        /// GET, HEAD, PUT, DELETE and OPTIONS: sending them twice has the effect of sending them
        /// once (RFC 9110 §9.2.2), so they may be retried.
        public var isIdempotent: Bool {
            switch self {
            case .get, .head, .put, .delete, .options: true
            case .post, .patch: false
            }
        }
    }

    /// The operation's id in the contract (for errors and logs).
    public var operation: String
    public var method: Method
    /// The path, e.g. `/v1/cost-centres/CC-1001/budget-lines`; template variables encoded with
    /// ``pathSegment(_:)``.
    public var path: String
    public private(set) var query: [(name: String, value: String)] = []
    public private(set) var headers: [(name: String, value: String)] = []
    /// The JSON body's bytes, sent as `application/json`.
    public var jsonBody: [UInt8]?

    public init(operation: String, method: Method, path: String) {
        self.operation = operation
        self.method = method
        self.path = path
    }

    public mutating func addQuery(_ name: String, _ value: String) {
        query.append((name, value))
    }

    public mutating func addHeader(_ name: String, _ value: String) {
        headers.append((name, value))
    }

    /// The path and the encoded query string: `/v1/x?limit=10&cursor=abc`.
    public var target: String {
        guard !query.isEmpty else { return path }
        return path + "?" + query.map { Self.percentEncoded($0.name) + "=" + Self.percentEncoded($0.value) }.joined(separator: "&")
    }

    /// `value` as one path segment: everything but RFC 3986's unreserved characters
    /// percent-encoded, so a `/` or `?` in a value can never change the path.
    public static func pathSegment(_ value: String) -> String { percentEncoded(value) }

    /// Percent-encodes every byte outside `A–Z a–z 0–9 - . _ ~`.
    public static func percentEncoded(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0x0f)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A complete answer.
public struct ClientResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// HTTP attempts it took (retries included).
    public var attempts: Int

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [], attempts: Int = 1) {
        self.status = status
        self.headers = headers
        self.body = body
        self.attempts = attempts
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// The media type without parameters, lowercased: `application/json`.
    public var mediaType: String? {
        guard let value = header("Content-Type") else { return nil }
        let type = value.split(separator: ";", maxSplits: 1).first.map(String.init) ?? value
        return type.trimmingCharacters(in: .whitespaces).lowercased()
    }
}

/// What a generated client sends its requests through: ``HTTPTransport`` in production, anything
/// that answers in tests.
///
/// `execute` returns the answer for any status the transport does not handle itself; a transport
/// that retries (``HTTPTransport``) throws for 429 and 5xx once it gives up. Every failure is an
/// ``APIClientError``.
public protocol APITransport: Sendable {
    /// The service's name, e.g. `ERP` (for errors, logs and problems).
    var service: String { get }
    func execute(_ request: ClientRequest) async throws(APIClientError) -> ClientResponse
}

extension APITransport {
    /// Sends `request` and decodes the body of the `success` status as `T`, checking every
    /// constraint of the contract.
    public func send<T: JSONDecodable>(_ request: ClientRequest, success: Int, as type: T.Type) async throws(APIClientError) -> T {
        try await send(request, success: success) { json, errors in
            JSONDecoding.object(T.self, json, at: "", errors: &errors)
        }
    }

    /// Sends `request` and decodes the body of the `success` status with `decode`; any other
    /// status, a body that is not JSON, or a value `decode` refuses is an ``APIClientError``.
    public func send<T>(
        _ request: ClientRequest, success: Int, decode: (JSONValue, inout ValidationErrors) -> Field<T>
    ) async throws(APIClientError) -> T {
        let response = try await execute(request)
        try expect(response, success: success, for: request)
        func violation(_ errors: [FieldError]) -> APIClientError {
            APIClientError(
                service: service, operation: request.operation, failure: .contractViolation(status: response.status, errors: errors),
                attempts: response.attempts)
        }
        if let type = response.mediaType, type != "application/json", !type.hasSuffix("+json") {
            throw violation([FieldError(pointer: "", message: "has Content-Type \(type), not application/json")])
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(response.body)
        } catch {
            throw violation([FieldError(pointer: "", message: "is not valid JSON (\(error.message) at byte \(error.offset))")])
        }
        var errors = ValidationErrors()
        switch decode(json, &errors) {
        case .value(let value):
            return value
        case .null:
            errors.add("", "must not be null")
        case .missing, .invalid:
            break
        }
        if errors.isEmpty { errors.add("", "does not match the contract") }
        throw violation(errors.items)
    }

    /// Sends `request` and expects the `success` status (its body, if any, is not read).
    public func send(_ request: ClientRequest, success: Int) async throws(APIClientError) {
        let response = try await execute(request)
        try expect(response, success: success, for: request)
    }

    /// Throws unless `response` has the `success` status: a 4xx is a rejection with its problem, a
    /// 5xx the service being unavailable, anything else a status the contract does not document.
    func expect(_ response: ClientResponse, success: Int, for request: ClientRequest) throws(APIClientError) {
        let status = response.status
        guard status != success else { return }
        let failure: APIClientError.Failure
        switch status {
        case 429:
            failure = .unavailable(.rateLimited(retryAfter: HTTPTransport.retryAfter(response)))
        case 400..<500:
            failure = .rejected(status: status, problem: RemoteProblem(body: response.body) ?? RemoteProblem(status: status))
        case 500..<600:
            failure = .unavailable(.status(status, problem: RemoteProblem(body: response.body)))
        default:
            failure = .contractViolation(
                status: status,
                errors: [FieldError(pointer: "", message: "status \(status) is not documented for \(request.operation) (expected \(success))")])
        }
        throw APIClientError(service: service, operation: request.operation, failure: failure, attempts: response.attempts)
    }
}
