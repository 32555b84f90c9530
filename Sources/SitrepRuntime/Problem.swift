import Foundation
import HTTPTypes
import Hummingbird

/// One failing field of a request or response, addressed by a JSON pointer
/// (`/body/items/0/title`, `/query/limit`, `/header/If-Match`, `/path/signalId`).
public struct FieldError: Sendable, Equatable, Hashable {
    public var pointer: String
    public var message: String
    public init(pointer: String, message: String) {
        self.pointer = pointer
        self.message = message
    }
}

/// Every failure collected while decoding one input; decoding goes on after a failure so the
/// caller learns about all of them at once.
public struct ValidationErrors: Sendable, Equatable {
    public private(set) var items: [FieldError] = []
    public init() {}
    public var isEmpty: Bool { items.isEmpty }
    public mutating func add(_ pointer: String, _ message: String) {
        items.append(FieldError(pointer: pointer, message: message))
    }
}

/// RFC 9457 problem details, with Sitrep's `code`, `requestId` and `errors` members.
///
/// The spec's `components/schemas/Problem` describes exactly this shape; the generator's check
/// stage refuses a spec whose Problem schema differs.
public struct Problem: Sendable, Equatable, Error {
    public var type: String
    public var title: String
    public var status: Int
    public var detail: String?
    public var instance: String?
    public var code: String
    public var requestId: String
    /// At most ``maxListedErrors`` (longer lists are cut, whether given to `init` or assigned).
    public var errors: [FieldError]? {
        didSet {
            if let e = errors, e.count > Problem.maxListedErrors { errors = Array(e.prefix(Problem.maxListedErrors)) }
        }
    }
    /// Response headers that belong with this problem (`WWW-Authenticate`, `Retry-After`, `Allow`).
    public var headers: [(HTTPField.Name, String)]

    public init(
        status: Int, code: String, title: String? = nil, detail: String? = nil,
        type: String? = nil, instance: String? = nil, requestId: String = "",
        errors: [FieldError]? = nil, headers: [(HTTPField.Name, String)] = []
    ) {
        self.status = status
        self.code = code
        self.title = title ?? Problem.defaultTitle(status)
        self.detail = detail
        self.type = type ?? "/problems/" + code
        self.instance = instance
        self.requestId = requestId
        self.errors = errors.map { Array($0.prefix(Problem.maxListedErrors)) }
        self.headers = headers
    }

    /// The contract's `Problem.errors` `maxItems`: a request with more failing fields lists the
    /// first ones found, and `detail` gives the total.
    public static let maxListedErrors = 100

    public static func == (lhs: Problem, rhs: Problem) -> Bool {
        lhs.type == rhs.type && lhs.title == rhs.title && lhs.status == rhs.status && lhs.detail == rhs.detail
            && lhs.instance == rhs.instance && lhs.code == rhs.code && lhs.requestId == rhs.requestId
            && lhs.errors == rhs.errors
    }

    public static func defaultTitle(_ status: Int) -> String {
        switch status {
        case 400: "Bad request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not found"
        case 405: "Method not allowed"
        case 406: "Not acceptable"
        case 409: "Conflict"
        case 412: "Precondition failed"
        case 413: "Content too large"
        case 415: "Unsupported media type"
        case 422: "Unprocessable content"
        case 428: "Precondition required"
        case 429: "Too many requests"
        case 500: "Internal server error"
        case 501: "Not implemented"
        case 502: "Bad gateway"
        case 503: "Service unavailable"
        case 504: "Gateway timeout"
        default: HTTPResponse.Status(code: status).reasonPhrase
        }
    }
}

extension Problem {
    public static func badRequest(_ detail: String, code: String = "request.malformed") -> Problem {
        Problem(status: 400, code: code, detail: detail)
    }
    public static func validation(_ errors: ValidationErrors, detail: String? = nil) -> Problem {
        let n = errors.items.count
        let listed = n > maxListedErrors ? " (the first \(maxListedErrors) are listed)" : ""
        return Problem(
            status: 422, code: "validation.failed", title: "Validation failed",
            detail: detail ?? (n == 1 ? "1 field is invalid." : "\(n) fields are invalid\(listed)."),
            errors: errors.items)
    }
    public static func notFound(_ detail: String, code: String = "resource.not_found") -> Problem {
        Problem(status: 404, code: code, detail: detail)
    }
    public static func conflict(_ detail: String, code: String) -> Problem {
        Problem(status: 409, code: code, detail: detail)
    }
    public static func preconditionFailed(_ detail: String = "The resource changed since you read it; fetch it again and retry with its new ETag.")
        -> Problem
    {
        Problem(status: 412, code: "precondition.failed", detail: detail)
    }
    public static func preconditionRequired(_ detail: String = "This write needs an If-Match header with the resource's current ETag.") -> Problem {
        Problem(status: 428, code: "precondition.required", detail: detail)
    }
    public static func serviceUnavailable(_ detail: String, code: String = "dependency.unavailable", retryAfter: Int? = 5) -> Problem {
        Problem(status: 503, code: code, detail: detail, headers: retryAfter.map { [(.retryAfter, String($0))] } ?? [])
    }
    public static func internalError() -> Problem {
        Problem(status: 500, code: "internal.error", detail: "An unexpected error occurred; it has been logged with this request id.")
    }
}

extension Problem: JSONEncodable {
    public func encodeJSON(to w: inout JSONWriter) {
        w.raw("{\"type\":")
        w.string(type)
        w.raw(",\"title\":")
        w.string(title)
        w.raw(",\"status\":")
        w.int(status)
        if let detail {
            w.raw(",\"detail\":")
            w.string(detail)
        }
        if let instance {
            w.raw(",\"instance\":")
            w.string(instance)
        }
        w.raw(",\"code\":")
        w.string(code)
        w.raw(",\"requestId\":")
        w.string(requestId)
        if let errors {
            w.raw(",\"errors\":[")
            for (i, e) in errors.enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"pointer\":")
                w.string(e.pointer)
                w.raw(",\"message\":")
                w.string(e.message)
                w.raw("}")
            }
            w.raw("]")
        }
        w.raw("}")
    }
}

extension Problem: JSONDecodable {
    public init?(json: JSONValue, at pointer: String, errors: inout ValidationErrors) {
        guard case .object(let o) = json else {
            errors.add(pointer, "must be an object")
            return nil
        }
        var ok = true
        let type = JSONDecoding.required(
            JSONDecoding.string(o["type"], at: pointer + "/type", errors: &errors), at: pointer + "/type", errors: &errors, ok: &ok)
        let title = JSONDecoding.required(
            JSONDecoding.string(o["title"], at: pointer + "/title", errors: &errors), at: pointer + "/title", errors: &errors, ok: &ok)
        let status = JSONDecoding.required(
            JSONDecoding.integer(o["status"], at: pointer + "/status", rule: IntegerRule(minimum: 100, maximum: 599), errors: &errors),
            at: pointer + "/status", errors: &errors, ok: &ok)
        let code = JSONDecoding.required(
            JSONDecoding.string(o["code"], at: pointer + "/code", rule: StringRule(minLength: 1), errors: &errors), at: pointer + "/code",
            errors: &errors, ok: &ok)
        let requestId = JSONDecoding.required(
            JSONDecoding.string(o["requestId"], at: pointer + "/requestId", errors: &errors), at: pointer + "/requestId", errors: &errors, ok: &ok)
        let detail = JSONDecoding.optional(
            JSONDecoding.string(o["detail"], at: pointer + "/detail", errors: &errors), at: pointer + "/detail", errors: &errors, ok: &ok)
        let instance = JSONDecoding.optional(
            JSONDecoding.string(o["instance"], at: pointer + "/instance", errors: &errors), at: pointer + "/instance", errors: &errors, ok: &ok)
        var fieldErrors: [FieldError]?
        if let e = o["errors"] {
            if case .array(let items) = e {
                var list: [FieldError] = []
                for (i, item) in items.enumerated() {
                    let p = pointer + "/errors/\(i)"
                    guard case .object(let fe) = item,
                        case .string(let ptr)? = fe["pointer"], case .string(let msg)? = fe["message"]
                    else {
                        errors.add(p, "must be an object with string pointer and message")
                        ok = false
                        continue
                    }
                    list.append(FieldError(pointer: ptr, message: msg))
                }
                fieldErrors = list
            } else {
                errors.add(pointer + "/errors", "must be an array")
                ok = false
            }
        }
        guard ok, let type, let title, let status, let code, let requestId else { return nil }
        self.init(status: status, code: code, title: title, detail: detail, type: type, instance: instance, requestId: requestId, errors: fieldErrors)
    }
}

/// Thrown by handlers, stores and the runtime to answer with a problem. The runtime refuses to
/// send a status the operation does not document (it becomes a 500 and is logged as a contract
/// violation), so the spec stays the truth about what a client can see.
public struct ProblemError: Error, Sendable {
    public var problem: Problem
    public init(_ problem: Problem) { self.problem = problem }
}

extension Problem {
    /// The same problem with the status of the response case it is sent as.
    public func with(status: Int) -> Problem {
        var p = self
        if p.status != status {
            p.status = status
            p.title = Problem.defaultTitle(status)
        }
        return p
    }
}
