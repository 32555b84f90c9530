import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// SendGrid's v3 Mail Send (`POST /v3/mail/send`), over a shared `HTTPClient` the caller owns and
/// shuts down. Nothing is retried here; see ``ProviderError``.
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
