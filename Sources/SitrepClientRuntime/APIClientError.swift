import HTTPTypes
import SitrepRuntime

/// Every way a call through a generated client can fail, as one typed error.
///
/// ``Failure-swift.enum`` says what happened:
/// - ``Failure-swift.enum/unavailable(_:)``: no usable answer: the connection failed or was lost,
///   the service answered 5xx (or was still rate-limiting after the retries), the circuit breaker
///   is open, or the call was cancelled;
/// - ``Failure-swift.enum/timeout(_:after:)``: no complete answer in time (connecting, or the
///   answer itself);
/// - ``Failure-swift.enum/contractViolation(status:errors:)``: the service answered, but not as its
///   contract says: a missing required member, an unknown member of a closed object, a wrong type,
///   an undocumented status, a body that is not JSON. Each failure carries its JSON pointer into
///   the response body (`/items/0/currency`) and the message;
/// - ``Failure-swift.enum/rejected(status:problem:)``: the service refused this request with a 4xx
///   (other than 429), and its problem.
///
/// Never a raw NIO or HTTP client error, and never a credential in a message.
public struct APIClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Failure: Sendable, Equatable {
        case unavailable(UnavailableCause)
        case timeout(TimeoutPhase, after: Duration)
        case contractViolation(status: Int, errors: [FieldError])
        case rejected(status: Int, problem: RemoteProblem)
    }

    public enum UnavailableCause: Sendable, Equatable {
        /// No connection could be made, or it was lost before a complete answer (the text says how).
        case connection(String)
        /// The service answered with this 5xx status (and maybe a problem).
        case status(Int, problem: RemoteProblem?)
        /// The service kept answering 429; it asked to wait `retryAfter` (when it said).
        case rateLimited(retryAfter: Duration?)
        /// The circuit breaker is open after repeated failures: the call was not made.
        case circuitOpen(retryAfter: Duration)
        /// The calling task was cancelled.
        case cancelled
    }

    public enum TimeoutPhase: String, Sendable, Equatable {
        /// No connection within the connect timeout.
        case connect
        /// No complete answer within the request timeout.
        case response
    }

    /// The service's name, e.g. `ERP`.
    public var service: String
    /// The operation's id in the contract, e.g. `listBudgetLines`.
    public var operation: String
    public var failure: Failure
    /// HTTP attempts made (0 when the circuit breaker refused the first one).
    public var attempts: Int

    public init(service: String, operation: String, failure: Failure, attempts: Int) {
        self.service = service
        self.operation = operation
        self.failure = failure
        self.attempts = attempts
    }

    public var isTimeout: Bool {
        if case .timeout = failure { return true }
        return false
    }

    /// The contract violations, when that is the failure.
    public var violations: [FieldError] {
        if case .contractViolation(_, let errors) = failure { return errors }
        return []
    }

    public var description: String {
        "\(service) \(operation): \(cause)" + (attempts > 1 ? " (after \(attempts) attempts)" : "")
    }

    /// What went wrong, in one sentence fragment (no credentials, no response bodies).
    public var cause: String {
        switch failure {
        case .unavailable(.connection(let text)):
            return "could not be reached (\(text))"
        case .unavailable(.status(let status, let problem)):
            return "answered HTTP \(status)" + (problem?.code.map { " (\($0))" } ?? "")
        case .unavailable(.rateLimited(let retryAfter)):
            return "kept answering 429 Too Many Requests" + (retryAfter.map { "; it asked to wait \(Self.format($0))" } ?? "")
        case .unavailable(.circuitOpen(let retryAfter)):
            return "is not being called after repeated failures (circuit open); next try in \(Self.format(retryAfter))"
        case .unavailable(.cancelled):
            return "call was cancelled"
        case .timeout(.connect, let after):
            return "could not be connected to within \(Self.format(after))"
        case .timeout(.response, let after):
            return "did not answer within \(Self.format(after))"
        case .contractViolation(let status, let errors):
            let first = errors.first.map { ($0.pointer.isEmpty ? "the body" : $0.pointer) + " " + $0.message } ?? "unknown"
            let more = errors.count > 1 ? " (and \(errors.count - 1) more)" : ""
            return "answered HTTP \(status) in breach of its contract: \(first)\(more)"
        case .rejected(let status, let problem):
            return "refused the request with HTTP \(status)" + (problem.code.map { " (\($0))" } ?? "")
        }
    }

    /// The problem Sitrep answers with when a call it depends on failed: `504` for a timeout,
    /// `502` for everything else (unavailable, contract violation, an unexpected 4xx), with `code`
    /// (e.g. `erp.unavailable`) and a detail naming the cause. An open breaker or a rate limit
    /// adds `Retry-After`. Handlers that expect a particular 4xx (e.g. 404) check
    /// ``failure-swift.property`` first and answer their own problem.
    public func problem(code: String) -> Problem {
        let status = isTimeout ? 504 : 502
        var headers: [(HTTPField.Name, String)] = []
        switch failure {
        case .unavailable(.circuitOpen(let retryAfter)), .unavailable(.rateLimited(.some(let retryAfter))):
            headers.append((.retryAfter, String(max(1, Self.seconds(retryAfter)))))
        default:
            break
        }
        let detail = "The \(service) \(cause) (operation \(operation))."
        return Problem(status: status, code: code, detail: detail, headers: headers)
    }

    static func seconds(_ d: Duration) -> Int {
        let (s, atto) = d.components
        return Int(s) + (atto > 0 ? 1 : 0)
    }

    /// `250 ms`, `5 s`, `1.5 s`.
    static func format(_ d: Duration) -> String {
        let (s, atto) = d.components
        let ms = Int(s) * 1000 + Int(atto / 1_000_000_000_000_000)
        if ms < 1000 { return "\(ms) ms" }
        if ms % 1000 == 0 { return "\(ms / 1000) s" }
        return "\(Double(ms) / 1000) s"
    }
}

/// An RFC 9457 problem another service answered with, read leniently: it is the other side's
/// error, so members of an unexpected type are ignored rather than refused.
public struct RemoteProblem: Sendable, Equatable {
    public var type: String?
    public var title: String?
    public var status: Int?
    public var detail: String?
    public var instance: String?
    /// A stable machine-readable code, when the service sends one (`cost_centre.not_found`).
    public var code: String?

    public init(
        type: String? = nil, title: String? = nil, status: Int? = nil, detail: String? = nil, instance: String? = nil, code: String? = nil
    ) {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.instance = instance
        self.code = code
    }

    /// The problem in `body`, or nil when it is not a JSON object.
    public init?(body: [UInt8]) {
        guard !body.isEmpty, case .object(let o)? = try? JSONParser.parse(body) else { return nil }
        func string(_ key: String) -> String? {
            if case .string(let s)? = o[key] { return s }
            return nil
        }
        var status: Int?
        if case .number(let n)? = o["status"], let i = n.int64 { status = Int(i) }
        self.init(
            type: string("type"), title: string("title"), status: status, detail: string("detail"), instance: string("instance"),
            code: string("code"))
    }
}
