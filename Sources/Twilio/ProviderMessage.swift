import Foundation

/// A Twilio message status (`queued`, `sent`, `delivered`, `read`, `failed`, `undelivered`, …).
/// Unknown statuses are kept as they came.
public struct MessageStatus: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public static let accepted: MessageStatus = "accepted"
    public static let scheduled: MessageStatus = "scheduled"
    public static let queued: MessageStatus = "queued"
    public static let sending: MessageStatus = "sending"
    public static let sent: MessageStatus = "sent"
    public static let delivered: MessageStatus = "delivered"
    public static let read: MessageStatus = "read"
    public static let failed: MessageStatus = "failed"
    public static let undelivered: MessageStatus = "undelivered"
    public static let canceled: MessageStatus = "canceled"

    /// The message will not get further: failed, undelivered or canceled.
    public var isFailure: Bool { self == .failed || self == .undelivered || self == .canceled }

    /// The recipient has it: delivered or read.
    public var isDelivered: Bool { self == .delivered || self == .read }

    /// How far along the message is (queued 1 … read 4; failures 5), so an out-of-order callback
    /// (delivered arriving before sent) never moves a message backwards. 0 for unknown statuses.
    public var progress: Int {
        switch self {
        case .accepted, .scheduled, .queued: return 1
        case .sending, .sent: return 2
        case .delivered: return 3
        case .read: return 4
        case .failed, .undelivered, .canceled: return 5
        default: return 0
        }
    }

    public var description: String { rawValue }
}

/// A Twilio Message resource, as far as delivery needs it.
public struct ProviderMessage: Sendable, Equatable {
    /// `SM…` (or `MM…` with media).
    public var sid: String
    public var status: MessageStatus
    /// As Twilio stores it: `whatsapp:+971…` for WhatsApp, `+971…` for SMS.
    public var to: String
    public var from: String?
    /// The text sent (a template's rendering for WhatsApp templates).
    public var body: String?
    /// Twilio's error code once the message failed (e.g. 63016, 30008).
    public var errorCode: Int?
    public var errorMessage: String?
    public var dateCreated: Date?
    public var dateSent: Date?

    public init(
        sid: String, status: MessageStatus, to: String, from: String? = nil, body: String? = nil, errorCode: Int? = nil,
        errorMessage: String? = nil, dateCreated: Date? = nil, dateSent: Date? = nil
    ) {
        self.sid = sid
        self.status = status
        self.to = to
        self.from = from
        self.body = body
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.dateCreated = dateCreated
        self.dateSent = dateSent
    }

    /// Reads Twilio's snake_case JSON object. Nil when `sid`, `status` or `to` is missing.
    public init?(json object: [String: Any]) {
        guard let sid = object["sid"] as? String, !sid.isEmpty, let status = object["status"] as? String,
            let to = object["to"] as? String
        else { return nil }
        self.init(
            sid: sid, status: MessageStatus(rawValue: status), to: to, from: object["from"] as? String,
            body: object["body"] as? String, errorCode: JSONValue.int(object["error_code"]),
            errorMessage: JSONValue.string(object["error_message"]),
            dateCreated: (object["date_created"] as? String).flatMap(TwilioDate.parse),
            dateSent: (object["date_sent"] as? String).flatMap(TwilioDate.parse))
    }
}

/// Twilio's RFC 2822 dates, `Thu, 05 Sep 2024 07:30:00 +0000`, and the `YYYY-MM-DD` of list filters.
public enum TwilioDate {
    public static func format(_ date: Date) -> String {
        formatter("EEE, dd MMM yyyy HH:mm:ss Z").string(from: date)
    }

    public static func parse(_ text: String) -> Date? {
        formatter("EEE, dd MMM yyyy HH:mm:ss Z").date(from: text)
    }

    /// The UTC calendar day of `date`, `YYYY-MM-DD`.
    public static func day(_ date: Date) -> String {
        formatter("yyyy-MM-dd").string(from: date)
    }

    /// The start (UTC) of a `YYYY-MM-DD` day.
    public static func parseDay(_ text: String) -> Date? {
        formatter("yyyy-MM-dd").date(from: text)
    }

    /// A new formatter each time: `DateFormatter` is not safe to share across threads, and this is
    /// not a hot path.
    static func formatter(_ format: String) -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.calendar = Calendar(identifier: .gregorian)
        formatter.dateFormat = format
        return formatter
    }
}

/// Lenient reads of JSON values that providers send as numbers or strings.
enum JSONValue {
    static func int(_ value: Any?) -> Int? {
        if let text = value as? String { return Int(text) }
        if let number = value as? Int { return number }
        if let number = value as? Double, number.rounded() == number, abs(number) < 1e15 { return Int(number) }
        return nil
    }

    static func string(_ value: Any?) -> String? {
        switch value {
        case let text as String: return text
        case let number as NSNumber: return number.stringValue
        default: return nil
        }
    }
}
