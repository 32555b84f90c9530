import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// One row of SendGrid's Email Activity feed.
public struct SendGridActivity: Sendable, Equatable {
    /// SendGrid's id for this mail to this recipient; it starts with the `X-Message-Id` that
    /// ``SendGridClient/send(to:name:subject:text:html:attachment:customArgs:)`` returned.
    public var msgId: String
    public var toEmail: String
    public var subject: String
    /// `processed`, `delivered`, `not_delivered`…, as SendGrid has it now.
    public var status: String

    public init(msgId: String, toEmail: String, subject: String, status: String) {
        self.msgId = msgId
        self.toEmail = toEmail
        self.subject = subject
        self.status = status
    }
}

/// SendGrid's v3 Mail Send (`POST /v3/mail/send`) and Email Activity lookup (`GET /v3/messages`),
/// over a shared `HTTPClient` the caller owns and shuts down. Nothing is retried here; see
/// ``ProviderError``.
public final class SendGridClient: Sendable {
    public let configuration: SendGridConfiguration
    let http: ProviderHTTP

    public init(configuration: SendGridConfiguration, httpClient: HTTPClient, logger: Logger = Logger(label: "sitrep.sendgrid")) {
        self.configuration = configuration
        self.http = ProviderHTTP(
            provider: "SendGrid", client: httpClient, timeout: configuration.requestTimeout, logger: logger,
            secrets: [configuration.apiKey])
    }

    /// Sends one mail to `email` and returns SendGrid's `X-Message-Id` (the prefix of the
    /// `sg_message_id` its event webhooks carry). The body is `text` (text/plain) and, when given,
    /// `html` (text/html); `attachment` is sent base64-encoded; `customArgs` come back on every
    /// event for this mail. SendGrid answers 202 when it has queued the mail.
    public func send(
        to email: String, name: String?, subject: String, text: String, html: String?,
        attachment: (filename: String, contentType: String, bytes: [UInt8])?, customArgs: [String: String]
    ) async throws(ProviderError) -> String {
        var content = [MailContent(type: "text/plain", value: text)]
        if let html { content.append(MailContent(type: "text/html", value: html)) }
        let mail = Mail(
            personalizations: [Personalization(to: [Address(email: email, name: name)])],
            from: Address(email: configuration.fromEmail, name: configuration.fromName.isEmpty ? nil : configuration.fromName),
            subject: subject, content: content,
            attachments: attachment.map { [Attachment(content: Data($0.bytes).base64EncodedString(), type: $0.contentType, filename: $0.filename)] },
            custom_args: customArgs.isEmpty ? nil : customArgs)
        let body: Data
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            body = try encoder.encode(mail)
        } catch {
            throw ProviderError(kind: .final, cause: .invalidRequest, message: "the mail cannot be encoded")
        }

        var request = HTTPClientRequest(url: ProviderHTTP.url(configuration.baseURL, "/v3/mail/send"))
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer " + configuration.apiKey)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        let answer = try await http.execute(request)
        guard (200..<300).contains(answer.status) else { throw error(answer) }
        guard let id = answer.headers.first(name: "X-Message-Id"), !id.isEmpty else {
            throw http.malformed(answer, "an X-Message-Id")
        }
        http.logger.debug("SendGrid accepted a mail", metadata: ["messageId": "\(id)"])
        return id
    }

    /// Mails whose custom arg `name` equals `value` (Email Activity API, `GET /v3/messages?limit=<limit>&query=unique_args['<name>']="<value>"`,
    /// the query URL-encoded). Needs the Email Activity add-on on the real account.
    ///
    /// For reconciling a send whose answer was lost: every mail carries a unique custom arg
    /// (`sitrep_attempt`), and a row here means SendGrid accepted it; its ``SendGridActivity/msgId``
    /// starts with the `X-Message-Id` the send would have returned. `name` must be letters, digits
    /// and `_`, and `value` must not contain `"` (else a final ``ProviderError/Cause-swift.enum/invalidRequest``,
    /// nothing sent). `limit` is clamped to 1...1000. Errors map as for `send`.
    public func findMessages(customArg name: String, value: String, limit: Int = 10) async throws(ProviderError) -> [SendGridActivity] {
        let isNameCharacter = { (byte: UInt8) in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
        }
        guard !name.isEmpty, name.utf8.allSatisfy(isNameCharacter) else {
            throw ProviderError(kind: .final, cause: .invalidRequest, message: "\"\(name)\" is not a custom arg name")
        }
        guard !value.contains("\"") else {
            throw ProviderError(kind: .final, cause: .invalidRequest, message: "a custom arg value to look up cannot contain a quote")
        }
        let query = FormEncoding.encode([
            ("limit", String(min(max(limit, 1), 1000))), ("query", "unique_args['\(name)']=\"\(value)\""),
        ])
        var request = HTTPClientRequest(url: ProviderHTTP.url(configuration.baseURL, "/v3/messages?" + query))
        request.headers.add(name: "Authorization", value: "Bearer " + configuration.apiKey)
        request.headers.add(name: "Accept", value: "application/json")
        let answer = try await http.execute(request)
        guard (200..<300).contains(answer.status) else { throw error(answer) }
        guard let object = answer.object, let rows = object["messages"] as? [[String: Any]] else {
            throw http.malformed(answer, "a message list")
        }
        var activities: [SendGridActivity] = []
        for row in rows {
            guard let msgId = JSONValue.string(row["msg_id"]), !msgId.isEmpty else {
                throw http.malformed(answer, "a readable message list")
            }
            activities.append(
                SendGridActivity(
                    msgId: msgId, toEmail: JSONValue.string(row["to_email"]) ?? "", subject: JSONValue.string(row["subject"]) ?? "",
                    status: JSONValue.string(row["status"]) ?? ""))
        }
        return activities
    }

    /// SendGrid's error body is `{"errors": [{"message": "…", "field": "…", "help": …}]}`.
    func error(_ answer: ProviderHTTP.Answer) -> ProviderError {
        let errors = answer.object?["errors"] as? [[String: Any]] ?? []
        let messages = errors.compactMap { error -> String? in
            guard let message = error["message"] as? String else { return nil }
            if let field = error["field"] as? String, !field.isEmpty { return "\(field): \(message)" }
            return message
        }
        return http.statusError(answer, code: nil, message: messages.isEmpty ? nil : messages.joined(separator: "; "))
    }

    // MARK: The v3 mail body

    struct Mail: Encodable {
        var personalizations: [Personalization]
        var from: Address
        var subject: String
        var content: [MailContent]
        var attachments: [Attachment]?
        var custom_args: [String: String]?
    }

    struct Personalization: Encodable {
        var to: [Address]
    }

    struct Address: Encodable {
        var email: String
        var name: String?
    }

    struct MailContent: Encodable {
        var type: String
        var value: String
    }

    struct Attachment: Encodable {
        var content: String
        var type: String
        var filename: String
        var disposition = "attachment"
    }
}
