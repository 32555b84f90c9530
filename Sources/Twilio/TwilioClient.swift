import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Twilio's Messages API (2010-04-01) for WhatsApp templates and SMS, over a shared `HTTPClient`
/// the caller owns and shuts down.
///
/// Every method either returns what Twilio answered or throws a ``ProviderError`` saying whether
/// trying again can help. Nothing is retried here: retries, backoff and the fallback to the next
/// channel belong to the caller, which also records each attempt.
public final class TwilioClient: Sendable {
    public let configuration: TwilioConfiguration
    let http: ProviderHTTP
    let authorization: String

    public init(configuration: TwilioConfiguration, httpClient: HTTPClient, logger: Logger = Logger(label: "sitrep.twilio")) {
        self.configuration = configuration
        let credentials = Data("\(configuration.accountSid):\(configuration.authToken)".utf8).base64EncodedString()
        self.authorization = "Basic " + credentials
        self.http = ProviderHTTP(
            provider: "Twilio", client: httpClient, timeout: configuration.requestTimeout, logger: logger,
            secrets: [configuration.authToken, credentials])
    }

    // MARK: Sending

    /// Sends an approved WhatsApp template (Content API): `To=whatsapp:<to>`, `From` =
    /// ``TwilioConfiguration/whatsappFrom``, `ContentSid`, `ContentVariables` (a JSON object,
    /// e.g. `{"1":"Ahmed"}`) and `StatusCallback`. `to` is E.164 (`+971…`); a `whatsapp:` prefix
    /// is accepted too. Returns the created message, normally `queued`.
    public func sendWhatsAppTemplate(
        to: String, contentSid: String, contentVariables: [String: String], statusCallback: String
    ) async throws(ProviderError) -> ProviderMessage {
        let variables: String
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            variables = String(decoding: try encoder.encode(contentVariables), as: UTF8.self)
        } catch {
            throw ProviderError(kind: .final, cause: .invalidRequest, message: "the content variables cannot be encoded")
        }
        return try await create([
            ("To", Self.whatsAppAddress(to)), ("From", configuration.whatsappFrom), ("ContentSid", contentSid),
            ("ContentVariables", variables), ("StatusCallback", statusCallback),
        ])
    }

    /// Sends an SMS: `To`, `From` = ``TwilioConfiguration/smsFrom``, `Body`, `StatusCallback`.
    public func sendSMS(to: String, body: String, statusCallback: String) async throws(ProviderError) -> ProviderMessage {
        try await create([("To", to), ("From", configuration.smsFrom), ("Body", body), ("StatusCallback", statusCallback)])
    }

    /// `whatsapp:` + `number`, unless it already carries the prefix.
    public static func whatsAppAddress(_ number: String) -> String {
        number.hasPrefix("whatsapp:") ? number : "whatsapp:" + number
    }

    func create(_ form: [(String, String)]) async throws(ProviderError) -> ProviderMessage {
        var request = HTTPClientRequest(url: ProviderHTTP.url(configuration.baseURL, messagesPath + ".json"))
        request.method = .POST
        request.headers.add(name: "Authorization", value: authorization)
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded; charset=utf-8")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(form)))
        let answer = try await http.execute(request)
        guard (200..<300).contains(answer.status) else { throw error(answer) }
        guard let object = answer.object, let message = ProviderMessage(json: object) else {
            throw http.malformed(answer, "a message")
        }
        http.logger.debug(
            "Twilio accepted a message",
            metadata: ["sid": "\(message.sid)", "status": "\(message.status)", "to": "\(Self.masked(message.to))"])
        return message
    }

    // MARK: Reading

    /// The message `sid` as Twilio has it now. A sid Twilio does not know is a final error (404,
    /// code 20404).
    public func fetchMessage(sid: String) async throws(ProviderError) -> ProviderMessage {
        guard !sid.isEmpty, sid.utf8.allSatisfy({ FormEncoding.isUnreserved($0) && $0 != UInt8(ascii: ".") }) else {
            throw ProviderError(kind: .final, cause: .invalidRequest, message: "\"\(sid)\" is not a message sid")
        }
        let answer = try await get(ProviderHTTP.url(configuration.baseURL, messagesPath + "/\(sid).json"))
        guard (200..<300).contains(answer.status) else { throw error(answer) }
        guard let object = answer.object, let message = ProviderMessage(json: object) else {
            throw http.malformed(answer, "a message")
        }
        return message
    }

    /// Every message to `to` sent on or after the UTC day of `sentAfter` (Twilio filters by day:
    /// `DateSent>=YYYY-MM-DD`), newest first, all pages followed. For reconciling an attempt whose
    /// answer was lost: match on the body, which carries the attempt's reference. `to` is as
    /// Twilio stores it: `whatsapp:+971…` for WhatsApp (see ``whatsAppAddress(_:)``), `+971…` for
    /// SMS.
    public func listMessages(to: String, sentAfter: Date, pageSize: Int = 100) async throws(ProviderError) -> [ProviderMessage] {
        let query = FormEncoding.encode([
            ("To", to), ("DateSent>", TwilioDate.day(sentAfter)), ("PageSize", String(min(max(pageSize, 1), 1000))),
        ])
        var url = ProviderHTTP.url(configuration.baseURL, messagesPath + ".json?" + query)
        var messages: [ProviderMessage] = []
        for _ in 0..<Self.maximumPages {
            let answer = try await get(url)
            guard (200..<300).contains(answer.status) else { throw error(answer) }
            guard let object = answer.object, let page = object["messages"] as? [[String: Any]] else {
                throw http.malformed(answer, "a message list")
            }
            for item in page {
                guard let message = ProviderMessage(json: item) else { throw http.malformed(answer, "a readable message list") }
                messages.append(message)
            }
            guard let next = object["next_page_uri"] as? String, !next.isEmpty, !page.isEmpty else { return messages }
            // Twilio gives the next page as a path relative to the API's origin.
            url = next.hasPrefix("http") ? next : ProviderHTTP.url(configuration.baseURL, next)
        }
        throw ProviderError(
            kind: .final, cause: .malformedResponse, message: "Twilio's message list ran past \(Self.maximumPages) pages")
    }

    static let maximumPages = 100

    func get(_ url: String) async throws(ProviderError) -> ProviderHTTP.Answer {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Authorization", value: authorization)
        request.headers.add(name: "Accept", value: "application/json")
        return try await http.execute(request)
    }

    // MARK: Support

    var messagesPath: String { "/2010-04-01/Accounts/\(FormEncoding.escape(configuration.accountSid))/Messages" }

    /// Twilio's error body is `{"code": 21211, "message": "…", "more_info": "…", "status": 400}`.
    func error(_ answer: ProviderHTTP.Answer) -> ProviderError {
        let object = answer.object
        return http.statusError(answer, code: JSONValue.int(object?["code"]), message: JSONValue.string(object?["message"]))
    }

    /// A phone number or address with all but its last four characters hidden, for logs.
    static func masked(_ address: String) -> String {
        address.count <= 4 ? address : "…" + address.suffix(4)
    }
}
