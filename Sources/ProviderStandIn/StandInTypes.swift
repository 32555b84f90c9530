import Foundation
import Twilio

/// How a ``ProviderStandIn`` is set up: the credentials it demands, and how it behaves.
public struct ProviderStandInConfiguration: Sendable {
    /// The Twilio account (`AC` + 32 hex): the Basic user name and the `{AccountSid}` in paths.
    public var accountSid: String
    /// The Twilio auth token: the Basic password, and the key status callbacks are signed with.
    public var authToken: String
    /// The SendGrid API key expected as `Authorization: Bearer …`.
    public var sendGridAPIKey: String
    /// The pause before each status callback (queued, then sent, then delivered…).
    public var callbackDelay: Duration
    /// ContentSid → template text with `{{1}}`-style placeholders, rendered into the body of
    /// template messages. When nil any well-formed ContentSid is accepted and the body is the
    /// ContentSid followed by the variables' values in key order; when set, an unknown ContentSid
    /// is refused with 21655.
    public var whatsAppTemplates: [String: String]?
    /// The longest a status callback request may take.
    public var callbackTimeout: Duration

    public init(
        accountSid: String = "AC00000000000000000000000000000000", authToken: String = "stand-in-auth-token",
        sendGridAPIKey: String = "SG.stand-in-api-key", callbackDelay: Duration = .milliseconds(50),
        whatsAppTemplates: [String: String]? = nil, callbackTimeout: Duration = .seconds(5)
    ) {
        self.accountSid = accountSid
        self.authToken = authToken
        self.sendGridAPIKey = sendGridAPIKey
        self.callbackDelay = callbackDelay
        self.whatsAppTemplates = whatsAppTemplates
        self.callbackTimeout = callbackTimeout
    }
}

extension ProviderStandIn {
    /// What the stand-in does with the next request for a destination (see
    /// ``ProviderStandIn/script(_:_:)``). For SendGrid only the answer matters: the callback
    /// behaviours all answer 202, and `failOnCreate` answers its status with a SendGrid error body.
    public enum Behaviour: Sendable, Equatable {
        /// 201 `queued`, then callbacks `queued`, `sent`, `delivered`.
        case accept
        /// As ``accept``, then `read` for WhatsApp (SMS has no read receipts).
        case acceptAndRead
        /// The create request is refused with `httpStatus` and Twilio's error body (e.g. 400,
        /// 21211, "Invalid 'To' Phone Number").
        case failOnCreate(httpStatus: Int, code: Int, message: String)
        /// 429, code 20429, with `Retry-After` (SendGrid: `X-RateLimit-Reset`).
        case tooManyRequests(retryAfterSeconds: Int)
        /// 500, code 20500.
        case serverError
        /// Accepted (201 `queued`), then the callbacks report `status` with `ErrorCode` = `code`:
        /// `failed` right after `queued`, `undelivered` after `sent` (e.g. 30008).
        case failAfterSend(status: MessageStatus, code: Int)
        /// Waits this long before answering (then as ``accept``).
        case delay(Duration)
        /// Accepted and delivered (a fetch shows it), but no status callback is ever made.
        case dropCallbacks
        /// As ``accept``, but `delivered` is called back before `sent`.
        case outOfOrderCallbacks
        /// Accepted and `sent`, then nothing: never delivered, never failed (a handset that stays
        /// off). For time-outs.
        case neverDelivered
    }

    /// The channel of a Twilio message.
    public enum Channel: String, Sendable, Equatable {
        case whatsapp
        case sms
    }
}

/// A message the Twilio stand-in created (refused create requests leave none).
public struct StandInMessage: Sendable {
    public var sid: String
    public var channel: ProviderStandIn.Channel
    /// As sent (`whatsapp:+971…` on WhatsApp).
    public var to: String
    public var from: String
    /// The free-form `Body`, or the rendered template.
    public var body: String
    public var contentSid: String?
    /// The `ContentVariables` JSON, decoded.
    public var contentVariables: [String: String]?
    public var statusCallback: String?
    /// The status now (it moves as callbacks are made).
    public var status: MessageStatus
    public var errorCode: Int?
    public var errorMessage: String?
    public var dateCreated: Date
    /// The create request's form, decoded, in the order sent.
    public var form: [(String, String)]
    /// The create request's body exactly as received.
    public var rawBody: String

    /// The first value of `name` in ``form``.
    public func parameter(_ name: String) -> String? { form.first { $0.0 == name }?.1 }
}

/// A file attached to a ``StandInMail``, decoded from base64.
public struct StandInAttachment: Sendable, Equatable {
    public var filename: String
    public var contentType: String?
    public var disposition: String?
    public var bytes: [UInt8]

    public init(filename: String, contentType: String?, disposition: String?, bytes: [UInt8]) {
        self.filename = filename
        self.contentType = contentType
        self.disposition = disposition
        self.bytes = bytes
    }
}

/// A mail the SendGrid stand-in accepted (202).
public struct StandInMail: Sendable {
    /// The `X-Message-Id` it answered with.
    public var messageId: String
    /// Every `to` address of every personalization.
    public var recipients: [String]
    public var from: String
    public var fromName: String?
    public var subject: String
    /// The `text/plain` and `text/html` content, when present.
    public var text: String?
    public var html: String?
    public var attachments: [StandInAttachment]
    public var customArgs: [String: String]
    public var receivedAt: Date
    /// The request body exactly as received.
    public var rawJSON: String

    /// The request body, parsed.
    public var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(rawJSON.utf8))) as? [String: Any] ?? [:]
    }
}

/// One status callback the stand-in made (or tried to make).
public struct StandInCallback: Sendable {
    public var messageSid: String
    public var url: String
    public var status: MessageStatus
    /// The form posted, in the order sent.
    public var parameters: [(String, String)]
    /// The `X-Twilio-Signature` sent.
    public var signature: String
    /// The receiver's HTTP status, or nil when the request failed (``failure``).
    public var answeredStatus: Int?
    public var failure: String?
}

/// One request the stand-in answered, whatever the answer.
public struct StandInRequest: Sendable, Equatable {
    public var method: String
    /// Path and query.
    public var path: String
    /// `To` (Twilio) or the first recipient (SendGrid), when the request named one.
    public var destination: String?
    public var status: Int
}

/// Why a stand-in could not start.
public struct ProviderStandInError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
