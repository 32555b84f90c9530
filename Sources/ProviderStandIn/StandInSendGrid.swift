import Foundation
import Hummingbird
import NIOCore
import SitrepRuntime
import Twilio

extension StandInCore {
    /// `POST /v3/mail/send`: Bearer authentication, the v3 JSON shape checked, 202 with
    /// `X-Message-Id`.
    func sendMail(_ request: Request) async -> Response {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 30 << 20)
        } catch {
            record(request, destination: nil, status: 413)
            return Self.sendGridError(413, [("The request body is too large", nil)])
        }
        let raw = String(buffer: body)
        let object = (try? JSONSerialization.jsonObject(with: Data(raw.utf8))) as? [String: Any]
        let recipients = Self.recipients(object)
        func answer(_ response: Response) -> Response {
            record(request, destination: recipients.first, status: Int(response.status.code))
            return response
        }
        guard let given = request.headers[.authorization], constantTimeEqual(given, "Bearer " + configuration.sendGridAPIKey)
        else {
            return answer(Self.sendGridError(401, [("The provided authorization grant is invalid, expired, or revoked", nil)]))
        }

        let behaviour = behaviour(for: recipients)
        switch behaviour {
        case .delay(let duration):
            try? await Task.sleep(for: duration)
        case .failOnCreate(let httpStatus, _, let message):
            return answer(Self.sendGridError(httpStatus, [(message, nil)]))
        case .tooManyRequests(let seconds):
            let reset = Int(Date().timeIntervalSince1970.rounded(.up)) + seconds
            return answer(
                Self.sendGridError(
                    429, [("too many requests", nil)],
                    headers: [
                        FieldName("X-RateLimit-Limit")!: "600", FieldName("X-RateLimit-Remaining")!: "0",
                        FieldName("X-RateLimit-Reset")!: String(reset),
                    ]))
        case .serverError:
            return answer(Self.sendGridError(500, [("Internal Server Error", nil)]))
        case .accept, .acceptAndRead, .failAfterSend, .dropCallbacks, .outOfOrderCallbacks, .neverDelivered:
            break
        }

        guard let object else { return answer(Self.sendGridError(400, [("Bad Request", nil)])) }
        switch Self.readMail(object) {
        case .failure(let problems):
            return answer(Self.sendGridError(400, problems.errors))
        case .success(var mail):
            mail.messageId = Self.mailMessageId()
            mail.rawJSON = raw
            let accepted = mail
            state.withLock { $0.mails.append(accepted) }
            logger.debug("provider stand-in accepted a mail", metadata: ["messageId": "\(accepted.messageId)"])
            return answer(
                Response(
                    status: .accepted, headers: [FieldName("X-Message-Id")!: accepted.messageId],
                    body: .init(byteBuffer: ByteBuffer())))
        }
    }

    // MARK: Email Activity

    /// `GET /v3/messages` (Email Activity "Filter all messages"): Bearer authentication, `limit`
    /// (1...1000, default 10) and a `query` of exactly one of `unique_args['NAME']="VALUE"`,
    /// `msg_id="VALUE"` or `to_email="VALUE"` (anything else is a 400 on `query`). One row per
    /// accepted mail that matches, newest first, `delivered`, its `msg_id` the mail's `X-Message-Id`
    /// + `.filter0001p1`. Scripted behaviours do not apply.
    func findMessages(_ request: Request) -> Response {
        let parameters = FormEncoding.decode(request.uri.query ?? "")
        func value(_ name: String) -> String? { parameters.first { $0.0 == name }?.1 }
        let filter = value("query").flatMap(Self.activityFilter)
        func answer(_ response: Response) -> Response {
            var destination: String?
            if case .toEmail(let email) = filter { destination = email }
            record(request, destination: destination, status: Int(response.status.code))
            return response
        }
        guard let given = request.headers[.authorization], constantTimeEqual(given, "Bearer " + configuration.sendGridAPIKey)
        else {
            return answer(Self.sendGridError(401, [("The provided authorization grant is invalid, expired, or revoked", nil)]))
        }
        var limit = 10
        if let text = value("limit") {
            guard let number = Int(text), (1...1000).contains(number) else {
                return answer(Self.sendGridError(400, [("limit must be an integer between 1 and 1000", "limit")]))
            }
            limit = number
        }
        guard let filter else {
            let message = #"unsupported query: use unique_args['NAME']="VALUE", msg_id="VALUE" or to_email="VALUE""#
            return answer(Self.sendGridError(400, [(message, "query")]))
        }
        let mails = state.withLock { $0.mails }
        let rows = mails.reversed().filter { filter.matches($0) }.prefix(limit).map(Self.activityObject)
        return answer(Self.jsonResponse(Self.json(["messages": Array(rows)])))
    }

    /// The query forms the stand-in understands.
    enum ActivityFilter: Equatable {
        case customArg(name: String, value: String)
        case msgId(String)
        case toEmail(String)

        func matches(_ mail: StandInMail) -> Bool {
            switch self {
            case .customArg(let name, let value): return mail.customArgs[name] == value
            case .msgId(let id): return StandInCore.activityMessageId(mail) == id
            case .toEmail(let email): return mail.recipients.first?.lowercased() == email.lowercased()
            }
        }
    }

    /// The filter `query` asks for, or nil when it is not one of the supported forms.
    static func activityFilter(_ query: String) -> ActivityFilter? {
        /// `"VALUE"` (no quote inside) → VALUE.
        func quoted(_ text: Substring) -> String? {
            guard text.count >= 2, text.first == "\"", text.last == "\"" else { return nil }
            let inner = text.dropFirst().dropLast()
            return inner.contains("\"") ? nil : String(inner)
        }
        if query.hasPrefix("unique_args['") {
            let rest = query.dropFirst("unique_args['".count)
            guard let end = rest.range(of: "']=") else { return nil }
            let name = rest[..<end.lowerBound]
            let isName =
                !name.isEmpty
                && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
            guard isName, let value = quoted(rest[end.upperBound...]) else { return nil }
            return .customArg(name: String(name), value: value)
        }
        if query.hasPrefix("msg_id=") { return quoted(query.dropFirst("msg_id=".count)).map(ActivityFilter.msgId) }
        if query.hasPrefix("to_email=") { return quoted(query.dropFirst("to_email=".count)).map(ActivityFilter.toEmail) }
        return nil
    }

    /// The Email Activity `msg_id` of `mail`: its `X-Message-Id` and a filter suffix, like SendGrid's.
    static func activityMessageId(_ mail: StandInMail) -> String { mail.messageId + ".filter0001p1" }

    static func activityObject(_ mail: StandInMail) -> [String: Any] {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return [
            "from_email": mail.from, "msg_id": activityMessageId(mail), "subject": mail.subject,
            "to_email": mail.recipients.first ?? "", "status": "delivered", "opens_count": 0, "clicks_count": 0,
            "last_event_time": formatter.string(from: mail.receivedAt),
        ]
    }

    struct MailProblems: Error {
        var errors: [(String, String?)]
    }

    /// Every `personalizations[].to[].email`, as sent.
    static func recipients(_ object: [String: Any]?) -> [String] {
        let personalizations = object?["personalizations"] as? [[String: Any]] ?? []
        return personalizations.flatMap { ($0["to"] as? [[String: Any]] ?? []).compactMap { $0["email"] as? String } }
    }

    /// The mail in a v3 body, or SendGrid's complaints about it (message, field).
    static func readMail(_ object: [String: Any]) -> Result<StandInMail, MailProblems> {
        var errors: [(String, String?)] = []
        let personalizations = object["personalizations"] as? [[String: Any]] ?? []
        if personalizations.isEmpty {
            errors.append(("The personalizations field is required and must have at least one personalization.", "personalizations"))
        }
        for (p, personalization) in personalizations.enumerated() {
            let to = personalization["to"] as? [[String: Any]] ?? []
            if to.isEmpty { errors.append(("The to array is required for all personalization objects.", "personalizations.\(p).to")) }
            for (t, address) in to.enumerated() where !isEmailAddress(address["email"]) {
                errors.append(("Does not contain a valid address.", "personalizations.\(p).to.\(t).email"))
            }
        }
        let from = object["from"] as? [String: Any]
        if !isEmailAddress(from?["email"]) { errors.append(("The from email does not contain a valid address.", "from.email")) }
        let subject = object["subject"] as? String
        let everySubject = !personalizations.isEmpty && personalizations.allSatisfy { !(($0["subject"] as? String) ?? "").isEmpty }
        if (subject ?? "").isEmpty && !everySubject {
            errors.append(
                (
                    "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
                    "subject"
                ))
        }
        let content = object["content"] as? [[String: Any]] ?? []
        if content.isEmpty {
            errors.append(("Unless a valid template_id is provided, the content parameter is required.", "content"))
        }
        for (c, part) in content.enumerated() {
            if ((part["type"] as? String) ?? "").isEmpty || ((part["value"] as? String) ?? "").isEmpty {
                errors.append(("The content value must be a string at least one character in length.", "content.\(c)"))
            }
        }
        if let index = content.firstIndex(where: { ($0["type"] as? String) == "text/plain" }), index != 0 {
            errors.append(("If present, text/plain content must be first, followed by text/html.", "content"))
        }
        var attachments: [StandInAttachment] = []
        if let value = object["attachments"] {
            let list = value as? [[String: Any]] ?? []
            if list.isEmpty { errors.append(("The attachments field must be an array of attachment objects.", "attachments")) }
            for (a, attachment) in list.enumerated() {
                let filename = attachment["filename"] as? String ?? ""
                if filename.isEmpty { errors.append(("The attachment filename is required.", "attachments.\(a).filename")) }
                guard let encoded = attachment["content"] as? String, let bytes = Data(base64Encoded: encoded) else {
                    errors.append(("The attachment content must be base64 encoded.", "attachments.\(a).content"))
                    continue
                }
                attachments.append(
                    StandInAttachment(
                        filename: filename, contentType: attachment["type"] as? String,
                        disposition: attachment["disposition"] as? String, bytes: Array(bytes)))
            }
        }
        var customArgs: [String: String] = [:]
        if let value = object["custom_args"] {
            if let args = value as? [String: Any], args.values.allSatisfy({ $0 is String }) {
                customArgs = args.compactMapValues { $0 as? String }
            } else {
                errors.append(("Custom args must be an object of string values.", "custom_args"))
            }
        }
        guard errors.isEmpty else { return .failure(MailProblems(errors: errors)) }
        return .success(
            StandInMail(
                messageId: "", recipients: recipients(object), from: from?["email"] as? String ?? "",
                fromName: from?["name"] as? String,
                subject: subject ?? (personalizations.first?["subject"] as? String ?? ""),
                text: content.first { ($0["type"] as? String) == "text/plain" }?["value"] as? String,
                html: content.first { ($0["type"] as? String) == "text/html" }?["value"] as? String,
                attachments: attachments, customArgs: customArgs, receivedAt: Date(), rawJSON: ""))
    }

    static func isEmailAddress(_ value: Any?) -> Bool {
        guard let text = value as? String else { return false }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !text.contains(" ")
    }

    /// SendGrid's error body: `{"errors": [{"message": …, "field": …, "help": null}]}`.
    static func sendGridError(_ status: Int, _ errors: [(String, String?)], headers: HTTPFields = [:]) -> Response {
        let list: [[String: Any]] = errors.map { ["message": $0.0, "field": $0.1.map { $0 as Any } ?? NSNull(), "help": NSNull()] }
        return jsonResponse(json(["errors": list]), status: status, headers: headers)
    }

    /// 22 URL-safe characters, like SendGrid's.
    static func mailMessageId() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return String(
            Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .prefix(22))
    }
}

/// A header name (`HTTPTypes.HTTPField.Name`, reached through the field type Hummingbird exports).
typealias FieldName = HTTPFields.Element.Name
