/// Why a Twilio or SendGrid request did not succeed, and whether trying again can help.
///
/// - ``Kind-swift.enum/retryable``: HTTP 429, any 5xx, a timeout, a connection that could not be
///   made or was lost, a success answer that could not be read. Try again later, after ``retryAfter`` when
///   given.
/// - ``Kind-swift.enum/final``: any other 4xx (bad number, unknown template, wrong credentials…),
///   or a request that could not even be made. Trying again with the same input fails the same
///   way; move on (e.g. to the next channel).
///
/// When ``mayHaveBeenAccepted`` is true the provider may have acted on the request although no
/// answer came back: reconcile (``TwilioClient/listMessages(to:sentAfter:pageSize:)``) before
/// sending again. Messages never contain credentials.
public struct ProviderError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case retryable
        case final
    }

    /// What happened, in more detail than ``kind``.
    public enum Cause: Sendable, Equatable {
        /// The provider answered with an error status (``httpStatus``).
        case status
        /// No complete answer within the request timeout.
        case timeout
        /// The connection was lost or failed in a way that leaves open whether the request was sent.
        case connection
        /// No connection could be made (refused, unreachable, connect timeout): nothing was sent.
        case unreachable
        /// The task was cancelled while the request was in flight.
        case cancelled
        /// A success status whose body could not be read.
        case malformedResponse
        /// The request could not be built (bad URL, client shut down); nothing was sent.
        case invalidRequest
    }

    public var kind: Kind
    public var cause: Cause
    /// The HTTP status the provider answered with, if it answered.
    public var httpStatus: Int?
    /// The provider's error code: Twilio's (e.g. 21211 invalid number, 63016 outside the WhatsApp
    /// session window, 20429 too many requests, 20003 authentication); SendGrid has none.
    public var code: Int?
    /// The provider's message, or a description of the failure.
    public var message: String
    /// How long the provider asked to wait (`Retry-After`, or SendGrid's `X-RateLimit-Reset`).
    public var retryAfter: Duration?

    public init(
        kind: Kind, cause: Cause, httpStatus: Int? = nil, code: Int? = nil, message: String, retryAfter: Duration? = nil
    ) {
        self.kind = kind
        self.cause = cause
        self.httpStatus = httpStatus
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    /// Whether the provider may have accepted the request although the caller did not learn of it:
    /// a timeout, a lost connection, a cancelled request, an unreadable success answer, or a 5xx
    /// (a gateway may fail after the provider acted).
    public var mayHaveBeenAccepted: Bool {
        switch cause {
        case .timeout, .connection, .cancelled, .malformedResponse: return true
        case .status: return (httpStatus ?? 0) >= 500
        case .invalidRequest, .unreachable: return false
        }
    }

    public var description: String {
        var text = kind == .retryable ? "retryable" : "final"
        if let httpStatus { text += " HTTP \(httpStatus)" }
        if let code { text += " code \(code)" }
        text += ": \(message)"
        if let retryAfter { text += " (retry after \(retryAfter))" }
        return text
    }
}
