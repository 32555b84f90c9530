import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import SitrepRuntime
import Synchronization
import Twilio

/// The state and request handling of a ``ProviderStandIn``, shared by its routes, its callback
/// tasks and its controls.
final class StandInCore: Sendable {
    /// Scripted behaviour for one destination: `sequence` is used up one request at a time, then
    /// `then` (or ``ProviderStandIn/Behaviour/accept``) applies.
    struct Script: Sendable {
        var sequence: [ProviderStandIn.Behaviour]
        var then: ProviderStandIn.Behaviour?
    }

    struct State: Sendable {
        var messages: [StandInMessage] = []
        var mails: [StandInMail] = []
        var callbacks: [StandInCallback] = []
        var requests: [StandInRequest] = []
        var scripts: [String: Script] = [:]
        /// Bare E.164 numbers that wrote in on WhatsApp (the 24-hour session window is open).
        var sessions: Set<String> = []
        var callbackTasks: [Int: Task<Void, Never>] = [:]
        var nextTaskId = 0
        var stopping = false
    }

    let configuration: ProviderStandInConfiguration
    let logger: Logger
    let callbackClient: HTTPClient
    let state = Mutex(State())

    init(configuration: ProviderStandInConfiguration, logger: Logger, callbackClient: HTTPClient) {
        self.configuration = configuration
        self.logger = logger
        self.callbackClient = callbackClient
    }

    var messagesPath: String { "/2010-04-01/Accounts/\(configuration.accountSid)/Messages" }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("/2010-04-01/Accounts/:account/Messages.json") { request, context in
            await self.createMessage(request, account: context.parameters.get("account") ?? "")
        }
        router.get("/2010-04-01/Accounts/:account/Messages.json") { request, context in
            self.listMessages(request, account: context.parameters.get("account") ?? "")
        }
        router.get("/2010-04-01/Accounts/:account/Messages/{sid}.json") { request, context in
            self.fetchMessage(
                request, account: context.parameters.get("account") ?? "", sid: context.parameters.get("sid") ?? "")
        }
        router.post("/v3/mail/send") { request, _ in await self.sendMail(request) }
        router.get("/v3/messages") { request, _ in self.findMessages(request) }
    }

    // MARK: Controls

    func script(_ destination: String, _ script: Script) {
        let key = Self.scriptKey(destination)
        state.withLock { $0.scripts[key] = script }
    }

    /// The behaviour for the first of `destinations` that is scripted (using up one step of a
    /// sequence), else ``ProviderStandIn/Behaviour/accept``.
    func behaviour(for destinations: [String]) -> ProviderStandIn.Behaviour {
        state.withLock { s in
            for key in destinations.map(Self.scriptKey) {
                guard var script = s.scripts[key] else { continue }
                if !script.sequence.isEmpty {
                    let next = script.sequence.removeFirst()
                    s.scripts[key] = script
                    return next
                }
                return script.then ?? .accept
            }
            return .accept
        }
    }

    static func scriptKey(_ destination: String) -> String {
        let trimmed = destination.trimmingCharacters(in: .whitespaces)
        return trimmed.contains("@") ? trimmed.lowercased() : trimmed
    }

    func record(_ request: Request, destination: String?, status: Int) {
        let entry = StandInRequest(
            method: request.method.rawValue, path: request.uri.description, destination: destination, status: status)
        state.withLock { $0.requests.append(entry) }
    }

    // MARK: Twilio: authentication

    /// Nil when the request carries the account's Basic credentials and names the account in its
    /// path; otherwise the answer Twilio would give.
    func twilioAuthenticationFailure(_ request: Request, account: String) -> Response? {
        let expected = "Basic " + Data("\(configuration.accountSid):\(configuration.authToken)".utf8).base64EncodedString()
        guard let given = request.headers[.authorization], constantTimeEqual(given, expected) else {
            return Self.twilioError(401, code: 20003, "Authenticate", headers: [.wwwAuthenticate: #"Basic realm="Twilio API""#])
        }
        guard account == configuration.accountSid else {
            return Self.twilioError(404, code: 20404, "The requested resource \(request.uri.path) was not found")
        }
        return nil
    }

    // MARK: Twilio: create

    func createMessage(_ request: Request, account: String) async -> Response {
        let body: String
        do {
            body = String(buffer: try await request.body.collect(upTo: 1 << 20))
        } catch {
            record(request, destination: nil, status: 413)
            return Self.twilioError(413, code: 20001, "The request body is too large")
        }
        let form = FormEncoding.decode(body)
        func value(_ name: String) -> String? { form.first { $0.0 == name }?.1 }
        let to = value("To")
        func answer(_ response: Response) -> Response {
            record(request, destination: to, status: Int(response.status.code))
            return response
        }
        if let failure = twilioAuthenticationFailure(request, account: account) { return answer(failure) }

        var candidates: [String] = []
        if let to {
            candidates.append(to)
            if to.hasPrefix("whatsapp:") { candidates.append(String(to.dropFirst("whatsapp:".count))) }
        }
        let behaviour = behaviour(for: candidates)
        if case .delay(let duration) = behaviour {
            try? await Task.sleep(for: duration)
        }
        if let refusal = Self.refusal(behaviour) { return answer(refusal) }

        let draft: MessageDraft
        switch validate(form, value: value) {
        case .failure(let failure): return answer(failure.response)
        case .success(let valid): draft = valid
        }

        let now = Date()
        let message = StandInMessage(
            sid: Self.messageSid(), channel: draft.channel, to: draft.to, from: draft.from, body: draft.body,
            contentSid: draft.contentSid, contentVariables: draft.contentVariables, statusCallback: draft.statusCallback,
            status: .queued, errorCode: nil, errorMessage: nil, dateCreated: now, form: form, rawBody: body)
        let bare = String(draft.to.dropFirst(draft.channel == .whatsapp ? "whatsapp:".count : 0))
        let sessionOpen = state.withLock { $0.sessions.contains(bare) }
        let plan = Self.plan(behaviour, channel: draft.channel, freeForm: draft.contentSid == nil, sessionOpen: sessionOpen)
        state.withLock { $0.messages.append(message) }
        startCallbacks(for: message, plan: plan)
        logger.debug(
            "provider stand-in created a message",
            metadata: ["sid": "\(message.sid)", "channel": "\(message.channel.rawValue)", "behaviour": "\(behaviour)"])
        return answer(Self.jsonResponse(Self.messageJSON(message, accountSid: configuration.accountSid), status: 201))
    }

    /// The answer for a behaviour that refuses the request, nil for one that accepts it.
    static func refusal(_ behaviour: ProviderStandIn.Behaviour) -> Response? {
        switch behaviour {
        case .failOnCreate(let httpStatus, let code, let message):
            return twilioError(httpStatus, code: code, message)
        case .tooManyRequests(let seconds):
            return twilioError(429, code: 20429, "Too Many Requests", headers: [.retryAfter: String(seconds)])
        case .serverError:
            return twilioError(500, code: 20500, "Internal Server Error")
        case .accept, .acceptAndRead, .failAfterSend, .delay, .dropCallbacks, .outOfOrderCallbacks, .neverDelivered:
            return nil
        }
    }

    struct MessageDraft {
        var channel: ProviderStandIn.Channel
        var to: String
        var from: String
        var body: String
        var contentSid: String?
        var contentVariables: [String: String]?
        var statusCallback: String?
    }

    struct Refused: Error {
        var response: Response
        init(_ status: Int, _ code: Int, _ message: String) {
            response = StandInCore.twilioError(status, code: code, message)
        }
    }

    /// Checks a create request the way Twilio does, with Twilio's error codes.
    func validate(_ form: [(String, String)], value: (String) -> String?) -> Result<MessageDraft, Refused> {
        guard let to = value("To"), !to.isEmpty else { return .failure(Refused(400, 21604, "A 'To' phone number is required.")) }
        guard let from = value("From"), !from.isEmpty else {
            return .failure(Refused(400, 21603, "A 'From' phone number is required."))
        }
        let channel: ProviderStandIn.Channel = to.hasPrefix("whatsapp:") ? .whatsapp : .sms
        let bareTo = channel == .whatsapp ? String(to.dropFirst("whatsapp:".count)) : to
        guard Self.isE164(bareTo) else { return .failure(Refused(400, 21211, "Invalid 'To' Phone Number: \(to)")) }
        if from.hasPrefix("whatsapp:") != (channel == .whatsapp) {
            return .failure(Refused(400, 21910, "Invalid From and To pair. From and To should be of the same channel"))
        }
        let bareFrom = channel == .whatsapp ? String(from.dropFirst("whatsapp:".count)) : from
        guard Self.isE164(bareFrom) || (channel == .sms && Self.isAlphanumericSender(bareFrom)) else {
            return .failure(Refused(400, 21212, "Invalid From Number (caller ID): \(from)"))
        }
        if let callback = value("StatusCallback"), !callback.isEmpty {
            guard let url = URL(string: callback), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
                return .failure(Refused(400, 21609, "Invalid StatusCallback URL"))
            }
        }
        let statusCallback = value("StatusCallback").flatMap { $0.isEmpty ? nil : $0 }

        if let contentSid = value("ContentSid"), !contentSid.isEmpty {
            guard Self.isContentSid(contentSid) else { return .failure(Refused(400, 21655, "The ContentSid is Invalid")) }
            var variables: [String: String] = [:]
            if let text = value("ContentVariables"), !text.isEmpty {
                guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                    object.values.allSatisfy({ $0 is String })
                else { return .failure(Refused(400, 21656, "The ContentVariables Parameter is invalid")) }
                variables = object.compactMapValues { $0 as? String }
            }
            let body: String
            if let templates = configuration.whatsAppTemplates {
                guard let template = templates[contentSid] else {
                    return .failure(Refused(400, 21655, "The ContentSid is Invalid"))
                }
                body = variables.reduce(template) { text, variable in
                    text.replacingOccurrences(of: "{{\(variable.key)}}", with: variable.value)
                }
            } else {
                let ordered = variables.sorted { (Int($0.key) ?? .max, $0.key) < (Int($1.key) ?? .max, $1.key) }
                body = ([contentSid] + ordered.map(\.value)).joined(separator: " | ")
            }
            return .success(
                MessageDraft(
                    channel: channel, to: to, from: from, body: body, contentSid: contentSid, contentVariables: variables,
                    statusCallback: statusCallback))
        }
        guard let body = value("Body"), !body.isEmpty else {
            return .failure(Refused(400, 21602, "Message body is required."))
        }
        guard body.count <= 1600 else {
            return .failure(Refused(400, 21617, "The concatenated message body exceeds the 1600 character limit."))
        }
        return .success(MessageDraft(channel: channel, to: to, from: from, body: body, statusCallback: statusCallback))
    }

    static func isE164(_ text: String) -> Bool {
        let digits = text.utf8.dropFirst()
        return text.hasPrefix("+") && (7...15).contains(digits.count) && digits.first != UInt8(ascii: "0")
            && digits.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    static func isAlphanumericSender(_ text: String) -> Bool {
        (1...11).contains(text.count)
            && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == " ") }
            && text.unicodeScalars.contains { $0.properties.isAlphabetic }
    }

    static func isContentSid(_ text: String) -> Bool {
        text.hasPrefix("HX") && text.count == 34 && text.dropFirst(2).allSatisfy(\.isHexDigit)
    }

    // MARK: Twilio: read

    func fetchMessage(_ request: Request, account: String, sid: String) -> Response {
        let response: Response
        if let failure = twilioAuthenticationFailure(request, account: account) {
            response = failure
        } else if let message = state.withLock({ s in s.messages.first { $0.sid == sid } }) {
            response = Self.jsonResponse(Self.messageJSON(message, accountSid: configuration.accountSid))
        } else {
            response = Self.twilioError(404, code: 20404, "The requested resource \(request.uri.path) was not found")
        }
        record(request, destination: nil, status: Int(response.status.code))
        return response
    }

    /// `To`, `From`, `DateSent`, `DateSent>` (on or after that UTC day), `DateSent<` (on or
    /// before), `PageSize` (default 50) and `Page`; newest first, like Twilio.
    func listMessages(_ request: Request, account: String) -> Response {
        let query = FormEncoding.decode(request.uri.query ?? "")
        func value(_ name: String) -> String? { query.first { $0.0 == name }?.1 }
        func answer(_ response: Response) -> Response {
            record(request, destination: value("To"), status: Int(response.status.code))
            return response
        }
        if let failure = twilioAuthenticationFailure(request, account: account) { return answer(failure) }

        var filters: [(StandInMessage) -> Bool] = []
        if let to = value("To") { filters.append { $0.to == to } }
        if let from = value("From") { filters.append { $0.from == from } }
        for (name, keep) in [("DateSent>", { (day: Date, sent: Date) in sent >= day }), ("DateSent<", { day, sent in sent < day + 86_400 })] {
            guard let text = value(name) else { continue }
            guard let day = TwilioDate.parseDay(text) else {
                return answer(Self.twilioError(400, code: 20001, "Invalid value for \(name): \(text)"))
            }
            filters.append { keep(day, $0.dateCreated) }
        }
        if let text = value("DateSent") {
            guard let day = TwilioDate.parseDay(text) else {
                return answer(Self.twilioError(400, code: 20001, "Invalid value for DateSent: \(text)"))
            }
            filters.append { $0.dateCreated >= day && $0.dateCreated < day + 86_400 }
        }
        let pageSize = min(max(Int(value("PageSize") ?? "") ?? 50, 1), 1000)
        let page = max(Int(value("Page") ?? "") ?? 0, 0)

        let matching = state.withLock { s in s.messages.reversed().filter { message in filters.allSatisfy { $0(message) } } }
        let start = min(page * pageSize, matching.count)
        let end = min(start + pageSize, matching.count)
        var base = query.filter { !["Page", "PageSize", "PageToken"].contains($0.0) }
        base.append(("PageSize", String(pageSize)))
        func pageURI(_ number: Int) -> String { messagesPath + ".json?" + FormEncoding.encode(base + [("Page", String(number))]) }
        let object: [String: Any] = [
            "messages": matching[start..<end].map { Self.messageObject($0, accountSid: configuration.accountSid) },
            "page": page, "page_size": pageSize, "start": start, "end": max(start, end - 1),
            "uri": pageURI(page), "first_page_uri": pageURI(0),
            "next_page_uri": end < matching.count ? pageURI(page + 1) : NSNull(),
            "previous_page_uri": page > 0 ? pageURI(page - 1) : NSNull(),
        ]
        return answer(Self.jsonResponse(Self.json(object)))
    }

    // MARK: Twilio: JSON

    static func messageObject(_ message: StandInMessage, accountSid: String) -> [String: Any] {
        let uri = "/2010-04-01/Accounts/\(accountSid)/Messages/\(message.sid)"
        let date = TwilioDate.format(message.dateCreated)
        return [
            "account_sid": accountSid, "api_version": "2010-04-01", "body": message.body, "date_created": date,
            "date_sent": date, "date_updated": date, "direction": "outbound-api",
            "error_code": message.errorCode.map { $0 as Any } ?? NSNull(),
            "error_message": message.errorMessage.map { $0 as Any } ?? NSNull(),
            "from": message.from, "messaging_service_sid": NSNull(), "num_media": "0",
            "num_segments": String(max(1, (message.body.count + 152) / 153)), "price": NSNull(), "price_unit": "USD",
            "sid": message.sid, "status": message.status.rawValue,
            "subresource_uris": ["media": uri + "/Media.json"], "to": message.to, "uri": uri + ".json",
        ]
    }

    static func messageJSON(_ message: StandInMessage, accountSid: String) -> String {
        json(messageObject(message, accountSid: accountSid))
    }

    static func twilioError(_ status: Int, code: Int, _ message: String, headers: HTTPFields = [:]) -> Response {
        let body: [String: Any] = [
            "code": code, "message": message, "more_info": "https://www.twilio.com/docs/errors/\(code)", "status": status,
        ]
        return jsonResponse(json(body), status: status, headers: headers)
    }

    // MARK: Support

    static func json(_ object: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    static func jsonResponse(_ body: String, status: Int = 200, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// `SM` + 32 lower-case hex digits.
    static func messageSid() -> String { "SM" + randomHex(16) }

    static func randomHex(_ bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            return String(byte >> 4, radix: 16) + String(byte & 0x0F, radix: 16)
        }.joined()
    }
}
